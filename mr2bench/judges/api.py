"""``api:MODEL``: a judge behind an OpenAI-compatible chat completions endpoint (standard library only).

One user turn per call: the rendered judge prompt plus images (PNG) and sampled video frames (JPEG) as
data URLs. The generation fields follow the request options (``JudgeConfig.request_fields``: the budget as
``max_tokens`` or ``max_completion_tokens``, ``reasoning_effort`` when set, ``temperature``/``top_p`` unless
omitted) over the benchmark's ``judge_defaults``; each of the k samples is shown in the order
``base.sample_orders`` gives (a fresh one per sample on VL-RewardBench). Calls run in a bounded thread pool, retry on 429 / 5xx / timeouts with exponential backoff
(a Retry-After header wins), and land in a response cache keyed by the SHA-256 of the request, so a
re-run pays nothing for what it already has. The API key is read from the environment variable named
by ``--api-key-env`` and goes only into the Authorization header: never logged, hashed or written.

Hostile servers are bounded (``urllib``/``httpx`` timeouts bound one socket read only, so a server that
trickles one byte per second would keep a try alive indefinitely; ``real-artifacts.md``, Libraries):
- ``timeout`` is a TOTAL deadline per try, connect to last byte: the body is read in chunks against a
  monotonic deadline with the socket timeout set to the time left, and a watchdog shuts the socket at the
  deadline for the phases ``http.client`` reads itself (status line, headers). The DNS lookup and the TCP
  connect count too: a resolver that hangs fails the try at the deadline.
- ``max_response_bytes`` (default 10 MB) caps a reply: a larger Content-Length fails the item before the
  body is read, a longer body fails it once the cap is passed; not retried (the same reply would come).
- What is stored of a reply (``Verdict.raw`` in samples.jsonl, the cache) is scrubbed of secrets
  (``mr2bench.secrets``) and capped at ``STORED_CHARS``: head and tail around a marker naming the cut.
  The verdict is parsed from the full reply; a later run served from the cache parses the stored text.
- Every error message is scrubbed (``APIError`` scrubs its own message); ``--api-base`` may carry user
  info (sent as Basic auth when no key is given) and a query (kept after ``/chat/completions``), both
  redacted wherever the URL is shown.
"""
from __future__ import annotations

import base64
import email.message
import email.utils
import functools
import hashlib
import http.client
import io
import json
import logging
import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..media import load_image, load_video_frames
from ..schema import DataError, Media, ScoringRequest, Verdict
from ..secrets import redact_url, register_secret, register_url, scrub
from ..seeding import derive_seed
from .base import JudgeConfigs, JudgePrompt, render_samples, verdict_from_texts
from .config import JudgeConfig

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
STORED_CHARS = 64_000       # of one reply, kept in samples.jsonl and the cache
ERROR_BODY_BYTES = 4096     # of an error reply, read for its message
CHUNK_BYTES = 65_536
SCRUB_MARGIN = 4096         # longer than any secret: what a cut may split is scrubbed before the cut


class APIError(RuntimeError):
    """A call that failed for good (non-retryable status, or retries exhausted); its message is scrubbed."""

    def __init__(self, message: str) -> None:
        super().__init__(scrub(message))


class ReplyTooLarge(APIError):
    """The reply passed ``max_response_bytes``: not retried, the same reply would come again."""


@dataclass(frozen=True)
class CallResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    retries: int
    key: str = ""


def media_parts(media: Sequence[Media], root: str | None, num_frames: int) -> list[dict[str, Any]]:
    """Images as PNG data URLs, videos as their uniformly sampled frames (JPEG data URLs)."""
    from PIL import Image

    parts: list[dict[str, Any]] = []
    for m in media:
        if m.kind == "image":
            parts.append(_image_part(load_image(m, root), "PNG"))
        else:
            for frame in load_video_frames(m, root, num_frames):
                parts.append(_image_part(Image.fromarray(frame), "JPEG"))
    return parts


def _image_part(img: Any, fmt: str) -> dict[str, Any]:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    url = f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


def build_messages(prompt: JudgePrompt, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    text = [{"type": "text", "text": prompt.text}]
    return [{"role": "user", "content": parts + text if prompt.media_first else text + parts}]


def request_hash(api_base: str, body: dict[str, Any]) -> str:
    blob = json.dumps({"api_base": api_base, "body": body}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """One JSON file per request hash under ``root/ab/<hash>.json``, written atomically."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root else None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.root is None:
            return None
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            log.warning("ignoring unreadable cache entry %s", path)
            return None

    def put(self, key: str, response: dict[str, Any]) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(response, f, sort_keys=True, ensure_ascii=False)
        os.replace(tmp, path)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def stored_text(text: str, limit: int = STORED_CHARS) -> str:
    """``text`` scrubbed and, when longer than ``limit``, its head and tail around a marker naming the cut.

    Head and tail are scrubbed with a margin before they are trimmed, so a secret across a cut is removed
    whole and the scrub costs O(limit), not O(len(text)).
    """
    if len(text) <= limit + 2 * SCRUB_MARGIN:
        text = scrub(text)
        if len(text) <= limit:
            return text
    half = limit // 2
    head = scrub(text[:half + SCRUB_MARGIN])[:half]
    tail = scrub(text[-(half + SCRUB_MARGIN):])[-half:]
    return f"{head}\n[mr2bench: about {len(text) - 2 * half} of {len(text)} characters cut]\n{tail}"


@dataclass(frozen=True)
class Endpoint:
    """``{api_base}/chat/completions`` split for ``http.client``; ``shown`` is the URL for messages."""

    scheme: str
    host: str
    port: int | None
    target: str                  # path and query
    url: str                     # without user info
    shown: str                   # credentials redacted
    basic_auth: str | None       # from user info in the URL


def parse_endpoint(api_base: str) -> Endpoint:
    register_url(api_base)   # an echoed password or query key is scrubbed like the API key
    parts = urllib.parse.urlsplit(api_base.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise DataError(f"expected http(s)://HOST[:PORT]/PATH, got {redact_url(api_base)!r}", field="api-base")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path.rstrip("/") + "/chat/completions"
    target = path + (f"?{parts.query}" if parts.query else "")
    url = urllib.parse.urlunsplit((parts.scheme, netloc, path, parts.query, ""))
    return Endpoint(parts.scheme, parts.hostname, port, target, url, redact_url(url),
                    _basic(parts.username, parts.password))


def _basic(user: str | None, password: str | None) -> str | None:
    if user is None and password is None:
        return None
    pair = f"{urllib.parse.unquote(user or '')}:{urllib.parse.unquote(password or '')}"
    token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
    register_secret(token)
    return f"Basic {token}"


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()   # loads the CA store once; shared by the pool's threads


def _connection(ep: Endpoint, timeout: float) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """A connection for one try, the request target and extra headers (through $http(s)_proxy as urllib)."""
    context = _ssl_context() if ep.scheme == "https" else None
    proxy = None if urllib.request.proxy_bypass(ep.host) else urllib.request.getproxies().get(ep.scheme)
    if not proxy:
        if context is None:
            return http.client.HTTPConnection(ep.host, ep.port, timeout=timeout), ep.target, {}
        return http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout, context=context), ep.target, {}
    proxy = proxy if "://" in proxy else f"http://{proxy}"
    register_url(proxy)
    p = urllib.parse.urlsplit(proxy)
    auth = _basic(p.username, p.password)
    extra = {"Proxy-Authorization": auth} if auth else {}
    if context is None:   # plain http: the proxy gets the absolute URL
        return http.client.HTTPConnection(p.hostname, p.port, timeout=timeout), ep.url, extra
    conn = http.client.HTTPSConnection(p.hostname, p.port, timeout=timeout, context=context)
    conn.set_tunnel(ep.host, ep.port, headers=extra)
    return conn, ep.target, {}


def _resolve(host: str, port: int, deadline: float) -> list[tuple]:
    """``getaddrinfo`` within the deadline. The C resolver cannot be interrupted, so the lookup runs in a
    daemon thread that a stuck lookup is left in (it ends when the OS resolver gives up; it never holds
    the process open)."""
    out: dict[str, Any] = {}

    def lookup() -> None:
        try:
            out["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:
            out["error"] = exc

    t = threading.Thread(target=lookup, daemon=True, name="mr2bench-dns")
    t.start()
    t.join(max(0.0, deadline - time.monotonic()))
    if t.is_alive():
        raise TimeoutError(f"DNS lookup of {host!r} did not finish by the deadline")
    if "error" in out:
        raise out["error"]
    return out["infos"]


def _connector(deadline: float) -> Callable[..., socket.socket]:
    """A stand-in for ``socket.create_connection`` (what ``http.client`` calls through the connection's
    ``_create_connection`` attribute) whose DNS lookup and TCP connect both end by ``deadline``."""
    def create(address: tuple[str, int], timeout: float | None = None, source_address=None, *_a, **_k):
        host, port = address
        last: OSError | None = None
        for family, kind, proto, _, addr in _resolve(host, port, deadline):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(left if timeout is None else min(timeout, left))
                if source_address:
                    sock.bind(source_address)
                sock.connect(addr)
                return sock
            except OSError as exc:
                last = exc
                sock.close()
        raise last or TimeoutError(f"no connection to {host!r} by the deadline")
    return create


def _shut(sock: socket.socket | None) -> None:
    """Wake a read blocked on ``sock`` (the base method: SSLSocket.shutdown would drop its SSL object)."""
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def _read_body(resp: http.client.HTTPResponse, sock: socket.socket | None, deadline: float, limit: int,
               *, fail_over: bool) -> bytes:
    """The body in chunks until ``deadline``; past ``limit`` bytes: ReplyTooLarge, or the head if not fail_over."""
    length = resp.getheader("Content-Length", "")
    if fail_over and length.strip().isdigit() and int(length) > limit:
        raise ReplyTooLarge(f"reply of {int(length):,} bytes (Content-Length) is over max_response_bytes="
                            f"{limit:,}; not read. Raise it with --model-arg max_response_bytes=N if the reply "
                            "is legitimate")
    body = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{len(body):,} bytes of the reply read")
        if sock is not None:
            sock.settimeout(left)
        chunk = resp.read1(CHUNK_BYTES)
        if not chunk:
            if time.monotonic() >= deadline:   # the watchdog's shutdown, not the server's end of reply
                raise TimeoutError(f"{len(body):,} bytes of the reply read")
            return bytes(body)
        body += chunk
        if len(body) > limit:
            if not fail_over:
                return bytes(body[:limit])
            raise ReplyTooLarge(f"reply is over max_response_bytes={limit:,}; stopped reading it. Raise it with "
                                "--model-arg max_response_bytes=N if the reply is legitimate")


class ChatClient:
    """POST {api_base}/chat/completions with retries, a total deadline per try, a size cap and the cache."""

    def __init__(self, api_base: str, api_key: str | None, config: JudgeConfig, cache: ResponseCache,
                 sleep=time.sleep) -> None:
        self.endpoint = parse_endpoint(api_base)
        self.url = self.endpoint.shown
        self.api_base = redact_url(api_base.strip().rstrip("/"))   # cache keys never depend on credentials
        register_secret(api_key)
        self._api_key = api_key
        self.config = config
        self.cache = cache
        self._sleep = sleep

    def complete(self, body: dict[str, Any]) -> CallResult:
        key = request_hash(self.api_base, body)
        hit = self.cache.get(key)
        if hit is not None:
            return _result(hit, cached=True, retries=0, key=key)
        response, retries = self._post_with_retries(body)
        result = _result(response, cached=False, retries=retries, key=key)  # validates before caching
        self.cache.put(key, _cache_record(result))
        return result

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif self.endpoint.basic_auth:
            headers["Authorization"] = self.endpoint.basic_auth
        return headers

    def _post_with_retries(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = self._headers()
        cfg = self.config
        last = ""
        for attempt in range(cfg.max_retries + 1):
            wait: float | None = None
            try:
                status, reply_headers, payload = self._attempt(data, headers)
            except ReplyTooLarge as exc:
                raise APIError(f"{self.url}: {exc}") from None
            except TimeoutError as exc:   # socket.timeout is TimeoutError
                last = f"timed out: no complete reply within {cfg.timeout:g} s" + (
                    f" ({exc})" if str(exc) not in ("", "timed out") else "")
            except (OSError, http.client.HTTPException) as exc:
                last = f"connection failed: {type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    try:
                        return json.loads(payload), attempt
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        last = f"response is not JSON: {payload[:200]!r}"
                else:
                    last = f"HTTP {status}: {payload[:300].decode('utf-8', 'replace')}"
                    if status not in RETRY_STATUSES:
                        raise APIError(f"{self.url}: {last}")
                    wait = retry_after_seconds(reply_headers.get("Retry-After"))
            last = scrub(last)
            if attempt == cfg.max_retries:
                break
            delay = min(cfg.max_backoff, wait if wait is not None else cfg.backoff * 2 ** attempt)
            log.info("retrying %s in %.2f s (%s)", self.url, delay, last)
            self._sleep(delay)
        raise APIError(f"{self.url}: gave up after {cfg.max_retries + 1} tries: {last}")

    def _attempt(self, data: bytes, headers: dict[str, str]) -> tuple[int, email.message.Message, bytes]:
        """One try, connect to last byte within ``timeout`` seconds: (status, headers, body)."""
        cfg = self.config
        deadline = time.monotonic() + cfg.timeout
        conn, target, extra = _connection(self.endpoint, cfg.timeout)
        conn._create_connection = _connector(deadline)   # DNS under the deadline too (http.client's hook)
        sock: list[socket.socket | None] = [None]
        watchdog = threading.Timer(cfg.timeout, lambda: _shut(sock[0] or conn.sock))
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.connect()
            sock[0] = conn.sock        # kept: http.client drops conn.sock once a reply says "close"
            conn.request("POST", target, body=data, headers={**headers, **extra})
            resp = conn.getresponse()
            ok = 200 <= resp.status < 300
            payload = _read_body(resp, sock[0], deadline, cfg.max_response_bytes if ok else ERROR_BODY_BYTES,
                                 fail_over=ok)
            return resp.status, resp.headers, payload
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() >= deadline and not isinstance(exc, TimeoutError):  # the watchdog's doing
                raise TimeoutError(f"cut off at the deadline: {type(exc).__name__}") from None
            raise
        finally:
            watchdog.cancel()
            conn.close()


def _result(response: dict[str, Any], *, cached: bool, retries: int, key: str = "") -> CallResult:
    """The reply's text and token counts; a reply of any other shape is an APIError (never a crash)."""
    try:
        text = response["choices"][0]["message"]["content"]
        if isinstance(text, list):  # some servers return content parts
            text = "".join(str(p.get("text", "")) for p in text if isinstance(p, dict))
        usage = response.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise APIError("malformed chat completion (expected choices[0].message.content and numeric usage): "
                       f"{str(response)[:200]}") from None
    return CallResult(text=str(text or ""), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                      cached=cached, retries=retries, key=key)


def _cache_record(result: CallResult) -> dict[str, Any]:
    """What the cache keeps of a reply: its text (scrubbed, capped) and token counts, nothing else."""
    return {"choices": [{"message": {"role": "assistant", "content": stored_text(result.text)}}],
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}}


def stored_raw(texts: Sequence[str]) -> str:
    """Verdict.raw as ``verdict_from_texts`` lays it out (one text, or a JSON list for k > 1), each text stored."""
    if len(texts) == 1:
        return stored_text(texts[0])
    return json.dumps([stored_text(t, STORED_CHARS // len(texts)) for t in texts], ensure_ascii=False)


class APIJudgeAdapter:
    """``api:MODEL`` with ``--api-base URL [--api-key-env VAR] [--model-arg key=value ...]``."""

    def __init__(self, target: str, options) -> None:
        if not target:
            raise DataError("give the served model name: api:MODEL", field="model")
        if not options.api_base:
            raise DataError("api: judges need --api-base URL (an OpenAI-compatible endpoint)", field="api-base")
        self.model = target
        self.options = options
        self.configs = JudgeConfigs(options.extra, kind="api")
        self.config = self.configs.base       # transport settings (timeouts, retries, prices): never per benchmark
        api_key = None
        if options.api_key_env:
            api_key = os.environ.get(options.api_key_env)
            register_secret(api_key)
            if not api_key:
                raise DataError(f"environment variable {options.api_key_env} is not set", field="api-key-env")
        self.client = ChatClient(options.api_base, api_key, self.config, ResponseCache(options.cache_dir))
        # After a batch fails as a whole the evaluator scores its items one by one: calls paid for in
        # the batch are billed then (once), and calls that failed for good fail again without new tries.
        self._unbilled: dict[str, CallResult] = {}
        self._failed: dict[str, BaseException] = {}
        self._lock = threading.Lock()

    def bodies(self, request: ScoringRequest) -> tuple[JudgePrompt, list[dict[str, Any]]]:
        """The first sample's prompt and the k request bodies for one item (for snapshots and tests)."""
        prompts, bodies = self.prepare(request)
        return prompts[0], bodies

    def prepare(self, request: ScoringRequest) -> tuple[list[JudgePrompt], list[dict[str, Any]]]:
        """Each sample's prompt (in its order, see ``base.sample_orders``) and request body."""
        cfg = self.configs.for_request(request)
        prompts = render_samples(request, cfg, self.options.seed)
        parts = media_parts(request.media, request.media_root, self.options.num_frames)
        out = []
        for k, prompt in enumerate(prompts):
            body: dict[str, Any] = {"model": self.model, "messages": build_messages(prompt, parts),
                                    **cfg.request_fields()}
            if cfg.samples > 1:  # distinct, reproducible samples (and distinct cache keys)
                body["seed"] = derive_seed(self.options.seed, "judge-sample", request.item_id, k) % 2**31
            out.append(body)
        return prompts, out

    def score(self, request: ScoringRequest) -> Verdict:
        return self.score_batch([request])[0]

    def score_batch(self, requests: Sequence[ScoringRequest]) -> list[Verdict]:
        """All k calls of all items through one bounded pool; results keep the request order.

        If any call fails, the others still finish (and are cached) before the first error is raised,
        so scoring the items again one by one costs only the failed calls.
        """
        prepared = [self.prepare(r) for r in requests]
        calls = [(i, body) for i, (_, bodies) in enumerate(prepared) for body in bodies]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, max(1, len(calls)))) as pool:
            futures = [pool.submit(self._complete, body) for _, body in calls]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors and len(requests) > 1:  # the evaluator will score these items one by one next
            with self._lock:
                for (_, body), f in zip(calls, futures):
                    if f.exception() is not None:
                        self._failed[request_hash(self.client.api_base, body)] = f.exception()
                    elif not f.result().cached:
                        self._unbilled[f.result().key] = f.result()
        if errors:
            raise errors[0]
        results: list[list[CallResult]] = [[] for _ in requests]
        for (i, _), fut in zip(calls, futures):
            results[i].append(self._bill(fut.result()))
        return [self._verdict(prompts, req, res) for req, (prompts, _), res in zip(requests, prepared, results)]

    def _complete(self, body: dict[str, Any]) -> CallResult:
        with self._lock:
            failed = self._failed.pop(request_hash(self.client.api_base, body), None)
        if failed is not None:
            raise failed
        return self.client.complete(body)

    def _bill(self, result: CallResult) -> CallResult:
        """A cache hit on a call this run paid for in a failed batch counts as paid, once."""
        if not result.cached:
            return result
        with self._lock:
            return self._unbilled.pop(result.key, result)

    def _verdict(self, prompts: list[JudgePrompt], request: ScoringRequest, results: list[CallResult]) -> Verdict:
        cfg = self.configs.for_request(request)
        fresh = [r for r in results if not r.cached]
        pt = sum(r.prompt_tokens for r in fresh)
        ct = sum(r.completion_tokens for r in fresh)
        usage = {"prompt_tokens": float(pt), "completion_tokens": float(ct),
                 "cost_usd": (pt * cfg.price_in + ct * cfg.price_out) / 1e6,
                 "requests": float(len(fresh)), "cache_hits": float(len(results) - len(fresh)),
                 "retries": float(sum(r.retries for r in results))}
        verdict = verdict_from_texts(prompts, [r.text for r in results], len(request.responses), cfg, usage,
                                     request.benchmark)  # parsed in full
        return replace(verdict, raw=stored_raw([r.text for r in results]))
