"""``api:MODEL``: a judge behind an OpenAI-compatible chat completions endpoint (standard library only).

One user turn per call: the rendered judge prompt plus images (PNG) and sampled video frames (JPEG) as
data URLs. Calls run in a bounded thread pool, retry on 429 / 5xx / timeouts with exponential backoff
(a Retry-After header wins), and land in a response cache keyed by the SHA-256 of the request, so a
re-run pays nothing for what it already has. The API key is read from the environment variable named
by ``--api-key-env`` and goes only into the Authorization header: never logged, hashed or written.
"""
from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import io
import json
import logging
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..media import load_image, load_video_frames
from ..schema import DataError, Media, ScoringRequest, Verdict
from ..seeding import derive_seed
from .base import JudgePrompt, render, verdict_from_texts
from .config import JudgeConfig, judge_config

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class APIError(RuntimeError):
    """A call that failed for good (non-retryable status, or retries exhausted)."""


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


class ChatClient:
    """POST {api_base}/chat/completions with retries, a timeout and the response cache."""

    def __init__(self, api_base: str, api_key: str | None, config: JudgeConfig, cache: ResponseCache,
                 sleep=time.sleep) -> None:
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.api_base = api_base.rstrip("/")
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
        self.cache.put(key, response)
        return result

    def _post_with_retries(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        cfg = self.config
        last = ""
        for attempt in range(cfg.max_retries + 1):
            wait: float | None = None
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:
                    payload = resp.read()
                try:
                    return json.loads(payload), attempt
                except json.JSONDecodeError:
                    last = f"response is not JSON: {payload[:200]!r}"
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                last = f"HTTP {exc.code}: {detail}"
                if exc.code not in RETRY_STATUSES:
                    raise APIError(f"{self.url}: {last}") from None
                wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
            except (TimeoutError, socket.timeout) as exc:
                last = f"timed out after {cfg.timeout:g} s ({exc})"
            except urllib.error.URLError as exc:
                last = f"connection failed: {exc.reason}"
            except (ConnectionError, http.client.HTTPException) as exc:
                last = f"connection failed: {exc}"
            if attempt == cfg.max_retries:
                break
            delay = min(cfg.max_backoff, wait if wait is not None else cfg.backoff * 2 ** attempt)
            log.info("retrying %s in %.2f s (%s)", self.url, delay, last)
            self._sleep(delay)
        raise APIError(f"{self.url}: gave up after {cfg.max_retries + 1} tries: {last}")


def _result(response: dict[str, Any], *, cached: bool, retries: int, key: str = "") -> CallResult:
    try:
        text = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise APIError(f"malformed chat completion (no choices[0].message.content): {str(response)[:200]}") from None
    if isinstance(text, list):  # some servers return content parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    usage = response.get("usage") or {}
    return CallResult(text=text or "", prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0), cached=cached, retries=retries,
                      key=key)


class APIJudgeAdapter:
    """``api:MODEL`` with ``--api-base URL [--api-key-env VAR] [--model-arg key=value ...]``."""

    def __init__(self, target: str, options) -> None:
        if not target:
            raise DataError("give the served model name: api:MODEL", field="model")
        if not options.api_base:
            raise DataError("api: judges need --api-base URL (an OpenAI-compatible endpoint)", field="api-base")
        self.model = target
        self.options = options
        self.config = judge_config(options.extra, kind="api")
        api_key = None
        if options.api_key_env:
            api_key = os.environ.get(options.api_key_env)
            if not api_key:
                raise DataError(f"environment variable {options.api_key_env} is not set", field="api-key-env")
        self.client = ChatClient(options.api_base, api_key, self.config, ResponseCache(options.cache_dir))
        # After a batch fails as a whole the evaluator scores its items one by one: calls paid for in
        # the batch are billed then (once), and calls that failed for good fail again without new tries.
        self._unbilled: dict[str, CallResult] = {}
        self._failed: dict[str, BaseException] = {}
        self._lock = threading.Lock()

    def bodies(self, request: ScoringRequest) -> tuple[JudgePrompt, list[dict[str, Any]]]:
        """The k request bodies for one item (exposed for snapshots and tests)."""
        cfg = self.config
        prompt = render(request, cfg)
        parts = media_parts(request.media, request.media_root, self.options.num_frames)
        messages = build_messages(prompt, parts)
        out = []
        for k in range(cfg.samples):
            body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": cfg.max_tokens,
                                    "temperature": cfg.sampling_temperature, "top_p": cfg.sampling_top_p}
            if cfg.samples > 1:  # distinct, reproducible samples (and distinct cache keys)
                body["seed"] = derive_seed(self.options.seed, "judge-sample", request.item_id, k) % 2**31
            out.append(body)
        return prompt, out

    def score(self, request: ScoringRequest) -> Verdict:
        return self.score_batch([request])[0]

    def score_batch(self, requests: Sequence[ScoringRequest]) -> list[Verdict]:
        """All k calls of all items through one bounded pool; results keep the request order.

        If any call fails, the others still finish (and are cached) before the first error is raised,
        so scoring the items again one by one costs only the failed calls.
        """
        prepared = [self.bodies(r) for r in requests]
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
        return [self._verdict(prompt, len(req.responses), res)
                for req, (prompt, _), res in zip(requests, prepared, results)]

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

    def _verdict(self, prompt: JudgePrompt, n: int, results: list[CallResult]) -> Verdict:
        cfg = self.config
        fresh = [r for r in results if not r.cached]
        pt = sum(r.prompt_tokens for r in fresh)
        ct = sum(r.completion_tokens for r in fresh)
        usage = {"prompt_tokens": float(pt), "completion_tokens": float(ct),
                 "cost_usd": (pt * cfg.price_in + ct * cfg.price_out) / 1e6,
                 "requests": float(len(fresh)), "cache_hits": float(len(results) - len(fresh)),
                 "retries": float(sum(r.retries for r in results))}
        return verdict_from_texts(prompt, [r.text for r in results], n, cfg, usage)
