"""Judge settings from ``--model-arg key=value``: typed, validated, unknown keys rejected."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..schema import DataError
from .verdict import VOTE_RULES


@dataclass(frozen=True)
class JudgeConfig:
    prompt: str = ""              # template id; empty: the benchmark's judge_prompt, else by N
    samples: int = 1              # k verdicts per item, combined by ``vote``
    vote: str = "majority"
    temperature: float | None = None  # None: 0 (greedy) for k = 1; 0.2 for k > 1 (VL-RewardBench)
    top_p: float | None = None        # None: 1.0 for k = 1; 0.2 for k > 1 (VL-RewardBench)
    max_tokens: int = 1024
    # API only
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
        if self.samples > 1 and self.sampling_temperature <= 0:
            raise DataError("k > 1 samples need temperature > 0", field="model-arg temperature")

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.samples == 1 else 0.2

    @property
    def sampling_top_p(self) -> float:
        if self.top_p is not None:
            return self.top_p
        return 1.0 if self.samples == 1 else 0.2


API_ONLY = frozenset({"concurrency", "timeout", "max_response_bytes", "max_retries", "backoff", "max_backoff",
                      "price_in", "price_out"})


def judge_config(extra: Mapping[str, Any], *, kind: str) -> JudgeConfig:
    """Build the config for ``kind`` ('judge' or 'api'); a key the kind does not use is an error."""
    allowed = {f.name for f in fields(JudgeConfig)}
    if kind != "api":
        allowed -= API_ONLY
    values: dict[str, Any] = {}
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
