"""Secrets scrubbed at the source: one function for every string that leaves the process.

``scrub(text)`` removes (replaces with ``***``):
- the values registered with ``register_secret`` / ``register_env`` (the API key named by
  ``--api-key-env``, the Hub token named by ``--token-env``), and the Hub token itself: ``HF_TOKEN``,
  ``HUGGING_FACE_HUB_TOKEN`` and the token file ``huggingface-cli login`` stores (read directly: no import);
- token-shaped strings: an echoed ``Authorization: ...`` value, ``Bearer <token>`` / ``Basic <token>``
  (a token with a digit or one of ``-_~+/=``, so prose such as "basic reasoning" stays), ``sk-...`` and
  ``hf_...`` keys;
- credentials in URLs: ``user:pass@`` user info and ``key`` / ``token`` / ``api_key`` / ``access_token``-style
  query parameters.

Secret values shorter than ``MIN_SECRET_LEN`` characters are not scrubbed as free text (they would match
ordinary words); an echoed ``Authorization: ...`` header and URL credentials still are. ``scrub`` is
idempotent: already scrubbed text is its own fixed point (``has_secret`` relies on that).
"""
from __future__ import annotations

import functools
import logging
import os
import re
import threading
import urllib.parse
from pathlib import Path

REDACTED = "***"
MIN_SECRET_LEN = 8
HUB_TOKEN_ENVS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# query parameter names that carry credentials (compared lower-case, '-' read as '_')
SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "token", "access_token", "auth", "password", "secret",
                           "sig", "signature", "client_secret", "refresh_token", "id_token", "code"})

# No class below crosses a quote, backslash or space, so scrubbing JSON text keeps it valid JSON.
_TOKEN_SHAPES = re.compile(
    r"(?i:((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?))(?!\*\*\*)"    # an echoed Authorization header
    r"(?i:(?:bearer|basic|token)\s+)?[^\s\"'\\,;]+"
    r"|\b(Bearer|Basic)(\s+)(?!\*\*\*)(?=[A-Za-z.:]*[0-9_~+/=-])[A-Za-z0-9._~+/=:-]{8,}"  # a credential
    r"|\bsk-[A-Za-z0-9_-]{16,}"                                 # OpenAI-style keys (sk-..., sk-proj-...)
    r"|\bhf_[A-Za-z0-9]{20,}")                                  # Hugging Face tokens
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`\\]+")

_lock = threading.Lock()
_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Scrub this value from everything from now on (no-op for empty values)."""
    value = (value or "").strip()
    if not value:
        return
    with _lock:
        new = value not in _registered
        _registered.add(value)
    if new and len(value) < MIN_SECRET_LEN:
        logging.getLogger(__name__).warning(
            "a secret shorter than %d characters is scrubbed only where it looks like one (an echoed "
            "Authorization header, a URL)", MIN_SECRET_LEN)


def register_env(name: str | None) -> None:
    """Register the value of the environment variable ``name`` (if set)."""
    if name:
        register_secret(os.environ.get(name))


def _stored_hub_token() -> str | None:
    """The token ``huggingface-cli login`` saved (huggingface_hub's path rules), read once per path."""
    path = os.environ.get("HF_TOKEN_PATH")
    if not path:
        home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
        path = os.path.join(home, "token")
    return _read_token_file(path)


@functools.lru_cache(maxsize=8)
def _read_token_file(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip()[:1000] or None
    except (OSError, UnicodeDecodeError):
        return None


def known_secrets() -> list[str]:
    """Every secret value to scrub, longest first (so a key containing another is removed whole)."""
    with _lock:
        values = set(_registered)
    values.update(v.strip() for v in (os.environ.get(n) for n in HUB_TOKEN_ENVS) if v and v.strip())
    stored = _stored_hub_token()
    if stored:
        values.add(stored)
    return sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


def register_url(url: str | None) -> None:
    """Register the credentials a URL carries: its password and credential-like query values."""
    if not url:
        return
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return
    register_secret(password and urllib.parse.unquote(password))
    for name, value in urllib.parse.parse_qsl(parts.query):
        if _secret_param(name) and len(value) >= MIN_SECRET_LEN:
            register_secret(value)


def _secret_param(name: str) -> bool:
    name = name.lower().replace("-", "_")
    return name in SECRET_PARAMS or name.endswith(("_key", "_token", "_secret", "_password"))


def redact_url(url: str) -> str:
    """``url`` with user info and credential-like query values replaced by ``***`` (else unchanged)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = [p.partition("=") for p in query.split("&")]
        query = "&".join(f"{k}={REDACTED}" if sep and _secret_param(urllib.parse.unquote_plus(k)) else k + sep + v
                         for k, sep, v in pairs)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _token_shape(m: re.Match[str]) -> str:
    if m.group(1):
        return m.group(1) + REDACTED
    return f"{m.group(2)}{m.group(3)}{REDACTED}" if m.group(2) else REDACTED


def _url_match(m: re.Match[str]) -> str:
    url = m.group(0)
    core = url.rstrip(".,;:!?)]}")     # sentence punctuation after a URL is not part of it
    return redact_url(core) + url[len(core):]


def scrub(text: str) -> str:
    """``text`` without known secrets, token-shaped strings or URL credentials."""
    if not text:
        return text
    for value in known_secrets():
        text = text.replace(value, REDACTED)
    text = _URL.sub(_url_match, text)
    return _TOKEN_SHAPES.sub(_token_shape, text)


def has_secret(text: str) -> bool:
    return scrub(text) != text


class ScrubFilter(logging.Filter):
    """A handler filter: the formatted message, traceback and stack of every record, scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add one ScrubFilter to every handler of ``logger`` (default: root), idempotently."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
