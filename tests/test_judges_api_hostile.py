"""api: judges against hostile chat-completions servers on 127.0.0.1 (started here, no network).

Each test performs the attack and asserts the promise: a server that trickles one byte per second meets a
TOTAL deadline per try; replies over the size cap fail the item unread; a huge reply below a raised cap is
stored capped; a key echoed back by the server is stored nowhere; credentials in --api-base are recorded
redacted. The trickle fixtures mirror real-artifacts.md, "Libraries as installed": "httpx/urllib timeouts
bound one socket read, not a whole request: a server that trickles one byte per second keeps a request
alive indefinitely"; each has a variant that differs the way servers do (headers trickled instead of the
body; Content-Length announced, close-delimited or chunked).
"""
from __future__ import annotations

import base64
import json
import logging
import re
import resource
import threading
import time
import tracemalloc
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mr2bench.adapters import AdapterOptions, load_adapter
from mr2bench.judges.api import STORED_CHARS, APIError
from mr2bench.schema import DataError, ScoringRequest
from mr2bench.secrets import ScrubFilter, has_secret, redact_url, register_secret, scrub

KEY_ENV = "MR2BENCH_HOSTILE_KEY"
KEY = "k3y-known-only-to-the-env-0042"      # not token-shaped: only the registered value can catch it
HUB_TOKEN = "plainhubtoken0042abcd"          # likewise, for HF_TOKEN
VERDICT = "Best: [[A]]\nRanking: [[A > B > C > D]]"   # the N-way judge's answer format (nway_best_v1)
TRICKLE_S = 30                               # how long a trickling handler keeps going at most
MIB = 2**20

Behaviour = Callable[[BaseHTTPRequestHandler, dict], None]


class HostileServer:
    """Loopback HTTP server whose ``behaviour(handler, request_body)`` writes the whole reply itself."""

    def __init__(self, behaviour: Behaviour, protocol: str = "HTTP/1.0") -> None:
        self.behaviour = behaviour
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        self.sent = 0                         # body bytes written by the handlers
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = protocol

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.paths.append(self.path)
                    server.auth.append(self.headers.get("Authorization"))
                try:
                    server.behaviour(self, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass                      # the client gave up first: the point of most tests here

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def count(self, n: int) -> None:
        with self.lock:
            self.sent += n

    def __enter__(self) -> "HostileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(content: str, **fields) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", **fields,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()


def send_json(h: BaseHTTPRequestHandler, status: int, data: bytes, **headers: str) -> None:
    h.send_response(status)
    for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)


def trickle_body(server: HostileServer) -> Behaviour:
    def behave(h: BaseHTTPRequestHandler, body: dict) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        h.wfile.flush()
        for _ in range(TRICKLE_S):
            h.wfile.write(b" ")
            h.wfile.flush()
            server.count(1)
            time.sleep(1)
    return behave


def trickle_headers(server: HostileServer) -> Behaviour:
    def behave(h: BaseHTTPRequestHandler, body: dict) -> None:
        h.wfile.write(b"HTTP/1.0 200 OK\r\n")
        h.wfile.flush()
        for _ in range(TRICKLE_S):             # one header line, one byte a second, never finished
            h.wfile.write(b"X")
            h.wfile.flush()
            server.count(1)
            time.sleep(1)
    return behave


def huge_body(server: HostileServer, framing: str, size: int = 300 * MIB) -> Behaviour:
    """``size`` bytes streamed lazily (64 KiB at a time: nothing of that size is allocated here)."""
    block = b"a" * 65536

    def behave(h: BaseHTTPRequestHandler, body: dict) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if framing == "content-length":
            h.send_header("Content-Length", str(size))
        if framing == "chunked":
            h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for _ in range(size // len(block)):
            h.wfile.write(b"10000\r\n" + block + b"\r\n" if framing == "chunked" else block)
            server.count(len(block))
    return behave


def adapter(url: str, tmp_path: Path | None = None, *, key_env: str | None = KEY_ENV, **extra: str):
    args = {"timeout": "2", "max_retries": "0", "backoff": "0.01", **extra}
    return load_adapter("api:hostile", AdapterOptions(
        seed=0, api_base=url, api_key_env=key_env, num_frames=2,
        cache_dir=None if tmp_path is None else str(tmp_path / "cache"), extra=args))


def nway_req(question: str = "Rank these") -> ScoringRequest:
    return ScoringRequest(prompt=question, responses=("r0", "r1", "r2", "r3"), item_id=question)


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)


# ----------------------------------------------------------------------------- (a) total deadline
@pytest.mark.parametrize("make", [trickle_body, trickle_headers], ids=["body", "headers"])
def test_trickle_meets_total_deadline(make, capsys):
    with HostileServer(lambda h, b: None) as s:
        s.behaviour = make(s)
        start = time.monotonic()
        with pytest.raises(APIError, match="timed out: no complete reply within 2 s"):
            adapter(s.url).score(nway_req())
        wall = time.monotonic() - start
    with capsys.disabled():
        print(f"\ntrickle ({make.__name__}), timeout=2, max_retries=0: {wall:.2f} s wall")
    assert 1.9 <= wall < 5, wall          # before: as long as the server trickled (TRICKLE_S)
    assert 1 <= s.sent < TRICKLE_S        # it was still trickling when the client gave up


@pytest.mark.parametrize("resolver", ["hangs", "answers"])
def test_dns_lookup_is_under_the_deadline(resolver, monkeypatch):
    """A resolver that hangs (real-artifacts.md: urllib/httpx timeouts do not cover name resolution,
    getaddrinfo blocks for the OS resolver's own timeouts) fails the try at the deadline; a resolver that
    answers still connects (the variant: the same name, resolved, reaching the local server)."""
    import socket

    real = socket.getaddrinfo
    release = threading.Event()

    def getaddrinfo(host, port, *a, **k):
        if host == "judge.example" and resolver == "hangs":
            release.wait(30)
        return real("127.0.0.1" if host == "judge.example" else host, port, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("no_proxy", "*")

    def reply(h: BaseHTTPRequestHandler, body: dict) -> None:
        out = json.dumps({"choices": [{"message": {"content": "[[1, 2, 3, 4]]"}}]}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(out)))
        h.end_headers()
        h.wfile.write(out)

    with HostileServer(reply) as s:
        url = s.url.replace("127.0.0.1", "judge.example")
        start = time.monotonic()
        try:
            if resolver == "hangs":
                with pytest.raises(APIError, match="timed out: .*DNS lookup of 'judge.example'"):
                    adapter(url).score(nway_req())
            else:
                assert "[[1, 2, 3, 4]]" in adapter(url).score(nway_req()).raw   # the reply arrived
        finally:
            release.set()
        wall = time.monotonic() - start
    assert wall < 5, wall                  # before: as long as the resolver hung (30 s here)
    if resolver == "hangs":
        assert wall >= 1.9, wall


# ----------------------------------------------------------------------------- (b) body size cap
def test_content_length_over_cap_fails_unread():
    with HostileServer(lambda h, b: None) as s:
        s.behaviour = huge_body(s, "content-length")
        start = time.monotonic()
        with pytest.raises(APIError, match=r"314,572,800 bytes \(Content-Length\) is over max_response_bytes="
                                           r"10,000,000; not read"):
            adapter(s.url, max_retries="3").score(nway_req())
        assert time.monotonic() - start < 5
    assert len(s.paths) == 1                              # not retried: the same reply would come
    assert s.sent < 64 * MIB                              # the socket buffers, not the 300 MB


@pytest.mark.parametrize("framing", ["close-delimited", "chunked"])
def test_streamed_body_over_cap_stops_reading(framing):
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    try:
        with HostileServer(lambda h, b: None, protocol="HTTP/1.1" if framing == "chunked" else "HTTP/1.0") as s:
            s.behaviour = huge_body(s, framing)
            start = time.monotonic()
            with pytest.raises(APIError, match="over max_response_bytes=10,000,000; stopped reading"):
                adapter(s.url, timeout="30").score(nway_req())
            wall = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    assert wall < 10 and s.sent < 100 * MIB, (wall, s.sent)
    assert peak < 40 * MIB, peak / MIB                    # before: the whole 300 MB body was held
    assert rss_growth < 150, rss_growth                   # MiB (process peak; before: about 700)


def test_cap_is_an_option_and_validated():
    with HostileServer(lambda h, b: send_json(h, 200, completion(VERDICT))) as s:
        with pytest.raises(APIError, match="over max_response_bytes=50"):
            adapter(s.url, max_response_bytes="50").score(nway_req())
        assert adapter(s.url, max_response_bytes="100000").score(nway_req()).scores is not None
        with pytest.raises(DataError, match="max_response_bytes"):
            adapter(s.url, max_response_bytes="0")


# ----------------------------------------------------------------------------- (c) stored replies capped
def test_large_reply_below_raised_cap_is_stored_capped(tmp_path):
    content = "thinking " * (50 * MIB // 9) + VERDICT         # ~50 MB, the verdict at the very end
    data = completion(content)
    with HostileServer(lambda h, b: send_json(h, 200, data)) as s:
        v = adapter(s.url, tmp_path, max_response_bytes=str(60 * MIB), timeout="30").score(nway_req())
        assert v.scores == (4.0, 3.0, 2.0, 1.0)              # parsed from the full reply
        assert len(v.raw) < STORED_CHARS + 100 and "characters cut]" in v.raw and v.raw.endswith(VERDICT)
        cached = list((tmp_path / "cache").rglob("*.json"))
        assert len(cached) == 1 and cached[0].stat().st_size < 2 * STORED_CHARS
        again = adapter(s.url, tmp_path, max_response_bytes=str(60 * MIB)).score(nway_req())
        assert len(s.paths) == 1 and again.scores == v.scores  # served by the capped cache entry


# ----------------------------------------------------------------------------- (d) the key is stored nowhere
def echo_server(mode: dict) -> HostileServer:
    """Echoes the Authorization header it got (and HF_TOKEN's value) in a 503 body, or in a 200 reply."""
    def behave(h: BaseHTTPRequestHandler, body: dict) -> None:
        echo = f"you sent Authorization: {h.headers.get('Authorization')} and {HUB_TOKEN}"
        if mode["status"] == 503:
            send_json(h, 503, json.dumps({"error": {"message": echo}}).encode(), **{"Retry-After": "0"})
        else:
            send_json(h, 200, completion(f"{echo}\n{VERDICT}", system_fingerprint=echo))
    return HostileServer(behave)


@pytest.fixture(scope="module")
def image_bench(tmp_path_factory) -> Path:
    from mr2bench.cli import build_benchmark_main

    out = tmp_path_factory.mktemp("bench") / "image"
    assert build_benchmark_main(["image", "--out", str(out), "--limit", "6", "--log-level", "warning"]) == 0
    return out


def run_eval(url: str, bench: Path, out: Path, *extra: str, key_env: str | None = KEY_ENV) -> int:
    from mr2bench.cli import evaluate_model_main

    argv = ["--model", "api:echo-judge", "--benchmarks", "mr2bench-image", "--data-dir", str(bench),
            "--out", str(out), "--api-base", url, "--limit", "3", "--no-progress",
            "--model-arg", "max_retries=1", "--model-arg", "backoff=0.01", *extra]
    return evaluate_model_main(argv + (["--api-key-env", key_env] if key_env else []))


def files_text(root: Path) -> str:
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.rglob("*"))
                   if p.is_file() and p.suffix != ".png")


@pytest.mark.parametrize("status", [503, 200])
def test_echoed_key_never_leaves_the_process(status, image_bench, tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO)
    out = tmp_path / "runs"
    with echo_server({"status": status}) as s:
        rc = run_eval(s.url, image_bench, out)
    assert s.auth and all(a == f"Bearer {KEY}" for a in s.auth)    # the key was sent, and echoed back
    printed = capsys.readouterr()
    bench = out / "api__echo-judge" / "mr2bench-image"
    records = [json.loads(line) for line in (bench / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 3
    if status == 503:
        assert rc == 1 and all(r["status"] == "failed" for r in records)
        assert all("HTTP 503: " in r["error"] and "Authorization: ***" in r["error"] for r in records)
    else:
        assert rc == 0 and all(r["status"] == "ok" for r in records)
        assert all("Authorization: ***" in r["extra"]["raw"] for r in records)
        assert list((out / "api__echo-judge" / "cache").rglob("*.json"))
    stored = files_text(out)                # samples.jsonl, results.json, the cache, summaries, leaderboard
    outside = printed.out + printed.err + caplog.text
    for secret in (KEY, HUB_TOKEN):
        assert secret not in stored and secret not in outside
    assert "results.json" in {p.name for p in out.rglob("*")}
    if status == 503:
        assert "retrying" in caplog.text and "***" in caplog.text    # the echo was logged, scrubbed


def test_trickle_end_to_end_cli(image_bench, tmp_path):
    with HostileServer(lambda h, b: None) as s:
        s.behaviour = trickle_body(s)
        start = time.monotonic()
        rc = run_eval(s.url, image_bench, tmp_path / "runs", "--model-arg", "timeout=2",
                      "--model-arg", "max_retries=0")
        wall = time.monotonic() - start
    bench = tmp_path / "runs" / "api__echo-judge" / "mr2bench-image"
    records = [json.loads(line) for line in (bench / "samples.jsonl").read_text().splitlines()]
    assert rc == 1 and len(records) == 3
    assert all(r["status"] == "failed" and "timed out: no complete reply within 2 s" in r["error"] for r in records)
    assert wall < 15, wall                   # before: TRICKLE_S per call


def test_publish_refuses_a_planted_credential(image_bench, tmp_path, capsys):
    from mr2bench.cli import main

    out = tmp_path / "runs"
    with echo_server({"status": 200}) as s:
        assert run_eval(s.url, image_bench, out) == 0
    run_dir = out / "api__echo-judge"
    assert main(["publish", "--results", str(run_dir), "--stage-only", str(tmp_path / "stage1")]) == 0
    assert KEY not in files_text(tmp_path / "stage1")
    # a run written by an older version (or by hand) that still holds the Hub token
    samples = run_dir / "mr2bench-image" / "samples.jsonl"
    lines = samples.read_text().splitlines()
    row = json.loads(lines[1])
    row["extra"]["raw"] = f"leaked {HUB_TOKEN}"
    lines[1] = json.dumps(row)
    samples.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["publish", "--results", str(run_dir), "--stage-only", str(tmp_path / "stage2")]) == 2
    err = capsys.readouterr().err
    assert "samples.jsonl:row 2" in err and "looks like a credential" in err and HUB_TOKEN not in err


# ----------------------------------------------------------------------------- (e) credentials in --api-base
def test_api_base_credentials_recorded_redacted(image_bench, tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO)
    out = tmp_path / "runs"
    with HostileServer(lambda h, b: send_json(h, 200, completion(VERDICT))) as s:
        base = f"http://user:s3cr3tpass@127.0.0.1:{s.port}/v1?key=abc123key456"
        assert run_eval(base, image_bench, out, key_env=None) == 0
    assert set(s.paths) == {"/v1/chat/completions?key=abc123key456"}             # the query is kept
    assert set(s.auth) == {"Basic " + base64.b64encode(b"user:s3cr3tpass").decode()}  # user info: Basic auth
    results = json.loads((out / "api__echo-judge" / "mr2bench-image" / "results.json").read_text())
    assert f"http://***@127.0.0.1:{s.port}/v1?key=***" in results["command"]
    printed = capsys.readouterr()
    everything = files_text(out) + printed.out + printed.err + caplog.text
    assert "s3cr3tpass" not in everything and "abc123key456" not in everything


# ----------------------------------------------------------------------------- the scrubber itself
def test_scrub_rules():
    register_secret("registered-value-0042")
    cases = {
        "Authorization: Bearer sk-abcdefghijklmnopqrstuvwx": "Authorization: ***",
        '{"authorization": "Bearer short"}': '{"authorization": "***"}',
        "got registered-value-0042 back": "got *** back",
        "curl -H 'Bearer eyJhbGciOi.JIUzI1NiJ9'": "curl -H 'Bearer ***'",
        "token hf_abcdefghijklmnopqrstuvwxyz12": "token ***",
        "https://u:p@host/v1?api-key=zz&api-version=2024": "https://***@host/v1?api-key=***&api-version=2024",
        "basic reasoning; the bearer of news": "basic reasoning; the bearer of news",   # prose stays
        "see https://example.org/a?b=c": "see https://example.org/a?b=c",
        "http://h/v1/chat/completions?key=abc: gave up": "http://h/v1/chat/completions?key=***: gave up",
    }
    for text, want in cases.items():
        assert scrub(text) == want and scrub(want) == want          # and idempotent
    blob = json.dumps({"raw": 'Authorization: Bearer abc\\"x registered-value-0042'})
    assert "registered-value-0042" not in json.loads(scrub(blob))["raw"]          # still valid JSON
    assert has_secret(f"x {HUB_TOKEN} y") and not has_secret("x *** y")
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize("offset", [-len(KEY) + 1, -5, 0, 3])
def test_stored_text_cut_never_splits_a_secret(offset):
    from mr2bench.judges.api import stored_text

    register_secret(KEY)
    half = STORED_CHARS // 2
    for text in ("a" * (half + offset) + KEY + "b" * 200_000, "a" * 200_000 + KEY + "b" * (half + offset)):
        kept = stored_text(text)
        assert "characters cut]" in kept and KEY[:8] not in kept and KEY[-8:] not in kept


def test_log_filter_scrubs_message_args_and_traceback():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sent %s", (f"Bearer {KEY}",), None)
    try:
        raise RuntimeError(f"echo {HUB_TOKEN}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert ScrubFilter().filter(record)
    text = logging.Formatter().format(record)
    assert KEY not in text and HUB_TOKEN not in text and "sent Bearer ***" in text
    assert re.search(r"RuntimeError: echo \*\*\*", text)
