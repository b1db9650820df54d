"""api:MODEL against a scripted chat-completions server on 127.0.0.1 (started here, no network):
request shape, parsing, retries, timeouts, cache, concurrency, cost, and evaluate-model end to end."""
from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from mr2bench.adapters import AdapterOptions, load_adapter
from mr2bench.judges.api import APIError, request_hash, retry_after_seconds
from mr2bench.media import write_test_video
from mr2bench.schema import DataError, Media, ScoringRequest

KEY_ENV, KEY = "MR2BENCH_TEST_JUDGE_KEY", "sk-test-secret-123"
USAGE = {"prompt_tokens": 100, "completion_tokens": 10}
QUALITY = ("GOOD", "OKAY", "MEH", "BAD")  # best first; every test response names its quality


# ----------------------------------------------------------------------------- the scripted server
def shown_responses(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(protocol, [(label, response text)]) read back from a rendered judge prompt."""
    if "Overall Judgment: Answer X is better" in text:
        return "vlrb", re.findall(r"Answer (\d): (.*?)\n\n", text, re.DOTALL)
    if "[The Start of Response " in text:
        return "nway", re.findall(r"\[The Start of Response ([A-Z])\]\n(.*?)\n\[The End", text, re.DOTALL)
    return "pairwise", re.findall(r"\[The Start of Assistant ([A-Z])'s Answer\]\n(.*?)\n\[The End", text, re.DOTALL)


def oracle_reply(text: str) -> str:
    """A judge that reads the quality words; '#first' in the question makes it always pick position 1."""
    protocol, shown = shown_responses(text)
    rank = sorted(shown, key=lambda lr: next(i for i, q in enumerate(QUALITY) if q in lr[1]))
    if "#first" in text:
        rank = shown
    best = rank[0][0]
    if protocol == "vlrb":
        return f"1. Accuracy: fine.\n**Overall Judgment:** Answer {best} is better."
    if protocol == "nway":
        return f"Comparison...\nBest: [[{best}]]\nRanking: [[{' > '.join(lab for lab, _ in rank)}]]"
    return f'Format: "[[A]]" or "[[B]]". Explanation... Final verdict: [[{best}]]'


class ScriptedServer:
    """Chat completions on loopback. Markers in the question choose the behaviour: '#malformed',
    '#429' (one 429 with Retry-After: 0, then fine), '#500' (always), '#slow' (sleeps past the timeout),
    '#400' (a non-retryable error)."""

    def __init__(self, slow_seconds: float = 1.0, delay: float = 0.0) -> None:
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []
        self.seen: Counter[str] = Counter()
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()
        self.slow_seconds, self.delay = slow_seconds, delay
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                try:
                    status, headers, payload = server.respond(self.path, body)
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    for k, v in {**headers, "Content-Type": "application/json",
                                 "Content-Length": str(len(data))}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def respond(self, path: str, body: dict) -> tuple[int, dict, dict]:
        if path != "/v1/chat/completions":
            return 404, {}, {"error": "not found"}
        text = next(p["text"] for p in body["messages"][0]["content"] if p["type"] == "text")
        key = json.dumps(body, sort_keys=True)
        with self.lock:
            self.seen[key] += 1
            nth = self.seen[key]
        if self.delay:
            time.sleep(self.delay)
        if "#slow" in text:
            time.sleep(self.slow_seconds)
        if "#500" in text:
            return 500, {}, {"error": {"message": "internal error"}}
        if "#400" in text:
            return 400, {}, {"error": {"message": "bad request"}}
        if "#429" in text and nth == 1:
            return 429, {"Retry-After": "0"}, {"error": {"message": "rate limited"}}
        reply = "I cannot decide between them." if "#malformed" in text else oracle_reply(text)
        return 200, {}, {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                      "finish_reason": "stop"}], "usage": dict(USAGE)}

    def texts(self) -> list[str]:
        return [next(p["text"] for p in b["messages"][0]["content"] if p["type"] == "text") for b in self.bodies]

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    with ScriptedServer(slow_seconds=1.0) as s:
        yield s


def png_bytes(w: int = 20, h: int = 10) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def adapter(server: ScriptedServer, tmp_path: Path | None = None, **extra: str):
    defaults = {"backoff": "0.01", "timeout": "5", "max_retries": "2"}
    return load_adapter("api:test-judge", AdapterOptions(
        seed=7, api_base=server.url, api_key_env=KEY_ENV, num_frames=4,
        cache_dir=None if tmp_path is None else str(tmp_path / "cache"), extra={**defaults, **extra}))


def req(question: str, responses=("BAD answer", "GOOD answer"), benchmark: str = "", media=()) -> ScoringRequest:
    return ScoringRequest(prompt=question, responses=tuple(responses), media=tuple(media),
                          item_id=question, benchmark=benchmark)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


# ----------------------------------------------------------------------------- the client, directly
def test_request_shape_parse_and_usage(server, tmp_path):
    a = adapter(server, tmp_path, price_in="2", price_out="8")
    v = a.score(req("What is shown?", media=(Media(kind="image", data=png_bytes()),), benchmark="vl-rewardbench"))
    assert v.scores == (0.0, 1.0) and "Overall Judgment" in v.raw
    body = server.bodies[0]
    assert body["model"] == "test-judge" and body["temperature"] == 0.0 and "seed" not in body
    content = body["messages"][0]["content"]
    assert [p["type"] for p in content] == ["text", "image_url"]       # VL-RB: text, then the image
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    from PIL import Image

    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (20, 10)
    assert server.auth == [f"Bearer {KEY}"]
    assert v.usage["prompt_tokens"] == 100 and v.usage["completion_tokens"] == 10
    assert v.usage["cost_usd"] == pytest.approx((100 * 2 + 10 * 8) / 1e6)
    assert v.usage["cache_hits"] == 0 and v.usage["requests"] == 1
    # the key is never written: not in the cache, not in the verdict
    cached = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert cached and KEY not in cached and KEY not in repr(v)


def test_video_frames_and_generic_prompt(server, tmp_path):
    video = write_test_video(tmp_path / "clip.mp4", frames=8)
    v = adapter(server).score(req("Which?", media=(Media(kind="video", path=str(video)),)))
    assert v.scores == (0.0, 1.0)
    content = server.bodies[0]["messages"][0]["content"]
    assert [p["type"] for p in content] == ["image_url"] * 4 + ["text"]   # 4 frames, then the prompt
    assert all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in content[:4])


def test_nway_full_ranking_becomes_descending_scores(server):
    v = adapter(server).score(req("Rank", responses=("MEH c", "GOOD a", "BAD d", "OKAY b")))
    assert v.scores == (2.0, 4.0, 1.0, 3.0)


def test_malformed_verdict_is_none(server):
    v = adapter(server).score(req("#malformed q"))
    assert v.scores is None and v.raw == "I cannot decide between them."
    assert v.usage["unreadable_samples"] == 1


def test_429_then_success_honours_retry_after(server):
    v = adapter(server).score(req("#429 q"))
    assert v.scores == (0.0, 1.0) and v.usage["retries"] == 1 and len(server.bodies) == 2


def test_500_retried_then_error(server):
    with pytest.raises(APIError, match="gave up after 3 tries: HTTP 500"):
        adapter(server).score(req("#500 q"))
    assert len(server.bodies) == 3


def test_400_not_retried(server):
    with pytest.raises(APIError, match="HTTP 400"):
        adapter(server).score(req("#400 q"))
    assert len(server.bodies) == 1


def test_slow_server_times_out(server):
    with pytest.raises(APIError, match="timed out"):
        adapter(server, timeout="0.2", max_retries="1").score(req("#slow q"))
    assert len(server.bodies) == 2


def test_cache_second_run_makes_no_request(server, tmp_path):
    first = adapter(server, tmp_path, price_in="1").score_batch([req("q1"), req("q2")])
    assert len(server.bodies) == 2
    again = adapter(server, tmp_path, price_in="1").score_batch([req("q1"), req("q2")])
    assert len(server.bodies) == 2                                      # zero new requests
    assert [v.scores for v in again] == [v.scores for v in first]
    assert [v.usage["cache_hits"] for v in again] == [1, 1]
    assert [v.usage["cost_usd"] for v in again] == [0, 0]


def test_concurrency_is_bounded_and_order_kept(tmp_path):
    with ScriptedServer(delay=0.15) as s:
        qs = [req(f"q{i}", responses=("GOOD", "BAD") if i % 2 else ("BAD", "GOOD")) for i in range(8)]
        out = adapter(s, concurrency="3").score_batch(qs)
        assert s.peak == 3
    assert [v.scores for v in out] == [(1.0, 0.0) if i % 2 else (0.0, 1.0) for i in range(8)]


def test_failed_batch_bills_paid_calls_once(server, tmp_path):
    a = adapter(server, tmp_path, price_in="1")
    with pytest.raises(APIError):
        a.score_batch([req("ok q"), req("#500 q")])
    assert len(server.bodies) == 1 + 3
    v = a.score(req("ok q"))                   # what the evaluator does next: one by one
    assert v.usage["requests"] == 1 and v.usage["cache_hits"] == 0 and v.usage["prompt_tokens"] == 100
    assert a.score(req("ok q")).usage["cache_hits"] == 1
    with pytest.raises(APIError, match="HTTP 500"):
        a.score(req("#500 q"))                 # the same error again, without 3 more tries
    assert len(server.bodies) == 1 + 3
    with pytest.raises(APIError):
        a.score(req("#500 q"))                 # a later, independent call tries again
    assert len(server.bodies) == 1 + 3 + 3


def test_k_samples_majority_vote(server):
    v = adapter(server, samples="3").score(req("q"))
    assert v.scores == (0.0, 3.0) and len(json.loads(v.raw)) == 3
    seeds = [b["seed"] for b in server.bodies]
    assert len(set(seeds)) == 3 and all(b["temperature"] == 0.2 and b["top_p"] == 0.2 for b in server.bodies)
    # the same seed and item give the same sample seeds (reproducible and cache-friendly)
    adapter(server, samples="3").score(req("q"))
    assert sorted(b["seed"] for b in server.bodies[3:]) == sorted(seeds)


def test_config_errors(server, monkeypatch):
    with pytest.raises(DataError, match="--api-base"):
        load_adapter("api:m", AdapterOptions())
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(DataError, match=f"{KEY_ENV} is not set"):
        adapter(server)


def test_retry_after_and_hash():
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: no wait
    assert retry_after_seconds("soon") is None
    assert request_hash("u", {"a": 1, "b": 2}) == request_hash("u", {"b": 2, "a": 1})
    assert request_hash("u", {"a": 1}) != request_hash("v", {"a": 1})


# ----------------------------------------------------------------------------- end to end: evaluate-model
def write_vlrb(root: Path) -> list[dict]:
    """A VL-RewardBench folder (HF layout fields, image paths) with scripted questions."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    rows = []
    spec = [("wildvision_1", "plain"), ("wildvision_2", "#first"), ("RLAIF-V_3", "plain"),
            ("RLAIF-V_4", "#malformed"), ("mathverse_5", "#429"), ("mathverse_6", "#first"),
            ("hallucination_pair-7", "#500"), ("mmmu_8", "plain")]
    for i, (rid, mode) in enumerate(spec):
        Image.fromarray(np.full((12, 16, 3), 10 * i, np.uint8)).save(root / "images" / f"{i}.png")
        good_first = i % 2 == 0
        rows.append({"id": rid, "query": f"<image>\nQuestion {i} {mode}",
                     "response": ["GOOD r", "BAD r"] if good_first else ["BAD r", "GOOD r"],
                     "human_ranking": [0, 1] if good_first else [1, 0], "image": f"images/{i}.png"})
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def run_cli(*argv: str) -> int:
    from mr2bench.cli import evaluate_model_main

    return evaluate_model_main(list(argv))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_evaluate_model_vlrb_end_to_end(server, tmp_path):
    data, out = tmp_path / "vlrb", tmp_path / "out"
    modes = {row["id"]: row["query"].split()[-1] for row in write_vlrb(data)}
    argv = ["--model", "api:test-judge", "--benchmarks", "vl-rewardbench", "--data-dir", str(data),
            "--out", str(out), "--api-base", server.url, "--api-key-env", KEY_ENV, "--batch-size", "4",
            "--seed", "3", "--no-progress", "--model-arg", "backoff=0.01", "--model-arg", "max_retries=2",
            "--model-arg", "price_in=2", "--model-arg", "price_out=8"]
    assert run_cli(*argv) == 1                                  # one item failed for good: exit 1
    assert sum("#500" in t for t in server.texts()) == 3        # its 3 tries, not repeated one by one
    bench = out / "api__test-judge" / "vl-rewardbench"
    recs = {r["id"]: r for r in read_jsonl(bench / "samples.jsonl")}
    res = json.loads((bench / "results.json").read_text())
    assert {int(re.search(r"Question (\d)", t).group(1)) for t in server.texts()} == set(range(8))

    # independently: the scripted judge picks GOOD, or shown position 1 for '#first' (= permutation[0])
    correct: dict[str, list[int]] = {"general": [], "hallucination": [], "reasoning": []}
    statuses = Counter()
    for r in recs.values():
        mode = modes[r["id"].split("@")[0]]
        statuses[mode, r["status"]] += 1
        if r["status"] != "ok":
            continue
        gold = r["rankings"].index(1)
        picked = max(range(2), key=lambda i: r["scores"][i])
        assert picked == (r["permutation"][0] if mode == "#first" else gold)
        correct[r["category"].split("/")[0]].append(int(picked == gold))  # "group/source"
    assert statuses == Counter({("plain", "ok"): 3, ("#first", "ok"): 2, ("#429", "ok"): 1,
                                ("#malformed", "parse_failure"): 1, ("#500", "failed"): 1})
    assert len({tuple(r["permutation"]) for r in recs.values()}) == 2   # both orders occur (seeded)
    acc = {c: sum(v) / len(v) for c, v in correct.items() if v}
    assert res["n_items"] == 8 and res["n_failed"] == 1 and res["n_parse_failures"] == 1
    assert res["metrics"]["macro_accuracy"] == pytest.approx(sum(acc.values()) / 3)
    n_ok = sum(len(v) for v in correct.values())
    assert res["metrics"]["accuracy"] == pytest.approx(sum(sum(v) for v in correct.values()) / n_ok)
    # cost: 7 answered calls (the 429 retried once, the 500 never answered) at 100 + 10 tokens
    usage = res["usage"]
    assert usage["prompt_tokens"] == 700 and usage["completion_tokens"] == 70
    assert usage["cost_usd"] == pytest.approx(7 * (100 * 2 + 10 * 8) / 1e6)
    failed = next(r for r in recs.values() if r["status"] == "failed")
    assert "HTTP 500" in failed["error"] and KEY not in (bench / "samples.jsonl").read_text()
    assert KEY not in (bench / "results.json").read_text()

    # re-run the same command: only the failed item is retried (3 tries), nothing else is requested
    n_before = len(server.bodies)
    assert run_cli(*argv) == 1
    assert len(server.bodies) == n_before + 3 and all("#500" in t for t in server.texts()[n_before:])

    # a fresh start over the same cache: no paid request except the failing one; same records
    import shutil

    shutil.rmtree(bench)
    n_before = len(server.bodies)
    assert run_cli(*argv) == 1
    assert len(server.bodies) == n_before + 3
    again = {r["id"]: r for r in read_jsonl(bench / "samples.jsonl")}
    strip = lambda r: {k: v for k, v in r.items() if k != "extra"}  # noqa: E731  (usage differs: cache hits)
    assert {k: strip(v) for k, v in again.items()} == {k: strip(v) for k, v in recs.items()}
    res2 = json.loads((bench / "results.json").read_text())
    assert res2["metrics"] == res["metrics"] and res2["usage"]["cache_hits"] == 7
    assert res2["usage"].get("cost_usd", 0) == 0


def test_evaluate_model_mr2bench_nway(server, tmp_path):
    from PIL import Image

    data, out = tmp_path / "mr2", tmp_path / "out"
    (data / "images").mkdir(parents=True)
    rows = []
    for i in range(5):
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(data / "images" / f"{i}.png")
        order = [(i + j) % 4 for j in range(4)]               # quality index of each stored response
        rows.append({"id": f"q{i}", "prompt": "Rank these" + (" #malformed" if i == 4 else ""),
                     "responses": [f"{QUALITY[o]} response {j}" for j, o in enumerate(order)],
                     "rankings": [o + 1 for o in order], "image": f"images/{i}.png"})
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_cli("--model", "api:nway-judge", "--benchmarks", "mr2bench-image", "--data-dir", str(data),
                   "--out", str(out), "--api-base", server.url, "--no-progress", "--batch-size", "5") == 0
    bench = out / "api__nway-judge" / "mr2bench-image"
    res = json.loads((bench / "results.json").read_text())
    recs = read_jsonl(bench / "samples.jsonl")
    assert all("[The Start of Response D]" in t for t in server.texts())
    assert res["n_parse_failures"] == 1
    bad = next(r for r in recs if r["status"] == "parse_failure")
    # the declared rule for MR^2Bench: a seeded random pick among the shown responses, stored with the item
    pick = bad["extra"]["fallback_pick"]
    expected = 1.0 if bad["rankings"][pick] == 1 else 0.0
    assert bad["credit"] == expected
    good = [r for r in recs if r["status"] == "ok"]
    assert all(r["credit"] == 1.0 for r in good)
    # full rankings came back: scores in the original order follow the gold ranking exactly
    assert all(sorted(range(4), key=lambda j: -r["scores"][j]) == sorted(range(4), key=lambda j: r["rankings"][j])
               for r in good)
    assert res["metrics"]["best_of_n"] == pytest.approx((4 + expected) / 5)
