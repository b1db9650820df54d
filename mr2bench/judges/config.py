"""Judge settings from ``--model-arg key=value``: typed, validated, unknown keys rejected."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..schema import DataError
from .verdict import VOTE_RULES


MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
OMITTABLE = ("temperature", "top_p")


@dataclass(frozen=True)
class JudgeConfig:
    """Every judge setting; a benchmark's ``judge_defaults`` fill what ``--model-arg`` leaves out.

    API request options (what the body carries; defaults send the classic chat-completions fields):
    ``max_tokens_field`` names the budget's key: ``max_completion_tokens`` for OpenAI reasoning models
    (GPT-5), which refuse ``max_tokens``; ``reasoning_effort`` (none | minimal | low | medium | high) is sent
    only when set; ``omit`` lists body fields left out, comma-separated, from ``temperature`` and ``top_p``
    (newer Claude models refuse the two together; GPT-5 accepts only its default temperature).
    """

    prompt: str = ""              # template id; empty: the benchmark's judge_prompt, else by N
    samples: int = 1              # k verdicts per item, combined by ``vote`` (or the benchmark's judge_protocol)
    vote: str = "majority"
    temperature: float | None = None  # None: 0 (greedy) for k = 1; sample_temperature for k > 1
    top_p: float | None = None        # None: 1.0 for k = 1; sample_top_p for k > 1
    sample_temperature: float = 0.2   # k > 1 defaults (VL-RewardBench inference: T 0.2, top_p 0.2)
    sample_top_p: float = 0.2
    max_tokens: int = 1024
    # API only
    max_tokens_field: str = "max_tokens"
    reasoning_effort: str = ""
    omit: str = ""
    concurrency: int = 4
    timeout: float = 120.0        # total seconds per HTTP try, connect to last byte
    max_response_bytes: int = 10_000_000  # a longer reply fails the item without being read
    max_retries: int = 5          # retries after the first try, on 429 / 5xx / timeouts / dropped connections
    backoff: float = 1.0          # first wait in seconds, doubled each retry (Retry-After wins when sent)
    max_backoff: float = 60.0
    price_in: float = 0.0         # USD per 1M prompt tokens
    price_out: float = 0.0        # USD per 1M completion tokens

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise DataError("must be >= 1", field="model-arg samples")
        if self.vote not in VOTE_RULES:
            raise DataError(f"must be one of {VOTE_RULES}", field="model-arg vote")
        if self.concurrency < 1:
            raise DataError("must be >= 1", field="model-arg concurrency")
        if self.max_tokens < 1:
            raise DataError("must be >= 1", field="model-arg max_tokens")
        if self.timeout <= 0:
            raise DataError("must be > 0", field="model-arg timeout")
        if self.max_response_bytes < 1:
            raise DataError("must be >= 1", field="model-arg max_response_bytes")
        if self.max_tokens_field not in MAX_TOKENS_FIELDS:
            raise DataError(f"must be one of {MAX_TOKENS_FIELDS}", field="model-arg max_tokens_field")
        if self.reasoning_effort and self.reasoning_effort not in REASONING_EFFORTS:
            raise DataError(f"must be one of {REASONING_EFFORTS}", field="model-arg reasoning_effort")
        bad = sorted(set(self.omitted) - set(OMITTABLE))
        if bad:
            raise DataError(f"cannot omit {bad}; omit takes a comma-separated list of {OMITTABLE}",
                            field="model-arg omit")
        if self.samples > 1 and "temperature" not in self.omitted and self.sampling_temperature <= 0:
            raise DataError("k > 1 samples need temperature > 0", field="model-arg temperature")

    @property
    def omitted(self) -> tuple[str, ...]:
        return tuple(x.strip() for x in self.omit.split(",") if x.strip())

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.samples == 1 else self.sample_temperature

    @property
    def sampling_top_p(self) -> float:
        if self.top_p is not None:
            return self.top_p
        return 1.0 if self.samples == 1 else self.sample_top_p

    def request_fields(self) -> dict[str, Any]:
        """The generation fields of one chat-completions body, as the request options say."""
        body: dict[str, Any] = {self.max_tokens_field: self.max_tokens, "temperature": self.sampling_temperature,
                                "top_p": self.sampling_top_p}
        for name in self.omitted:
            body.pop(name, None)
        if self.reasoning_effort:
            body["reasoning_effort"] = self.reasoning_effort
        return body


API_ONLY = frozenset({"max_tokens_field", "reasoning_effort", "omit", "concurrency", "timeout",
                      "max_response_bytes", "max_retries", "backoff", "max_backoff", "price_in", "price_out"})


def judge_config(extra: Mapping[str, Any], *, kind: str,
                 defaults: Sequence[tuple[str, str]] = ()) -> JudgeConfig:
    """Build the config for ``kind`` ('judge' or 'api'); a key the kind does not use is an error.

    ``defaults`` (a benchmark's ``judge_defaults``) apply where ``extra`` does not set the key; those a
    kind does not use (API request options on a local judge) are skipped."""
    allowed = {f.name for f in fields(JudgeConfig)}
    if kind != "api":
        allowed -= API_ONLY
    values: dict[str, Any] = {k: _coerce(k, v) for k, v in defaults if k in allowed}
    for key, raw in extra.items():
        name = key.replace("-", "_")
        if name not in allowed:
            raise DataError(f"unknown --model-arg {key!r} for {kind}:; known: {', '.join(sorted(allowed))}",
                            field="model-arg")
        values[name] = _coerce(name, raw)
    return JudgeConfig(**values)


def _coerce(name: str, raw: Any) -> Any:
    kind = {f.name: f.type for f in fields(JudgeConfig)}[name]
    text = str(raw).strip()
    try:
        if "int" in kind:
            return int(text)
        if "float" in kind:
            return float(text)
    except ValueError:
        raise DataError(f"expected a number, got {raw!r}", field=f"model-arg {name}") from None
    return text
