"""The data model: judgments in, benchmark items and scoring requests through, validated on construction.

Every class is a frozen dataclass that checks its fields in ``__post_init__`` and raises ``DataError``
naming the offending field, so a bad row is reported where it is made, not three stages later.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

WINNERS = ("model_a", "model_b", "tie", "both_bad")
# Spellings seen in the wild (FastChat / GenAI-Arena battle logs, short forms) -> canonical winner.
WINNER_ALIASES = {
    "model_a": "model_a", "a": "model_a",
    "model_b": "model_b", "b": "model_b",
    "tie": "tie", "both_bad": "both_bad", "tie (bothbad)": "both_bad", "bothbad": "both_bad",
}
MEDIA_KINDS = ("image", "video")


class DataError(ValueError):
    """A value that breaks the data model; says which file, row and field when those are known."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None,
                 file: str | None = None) -> None:
        self.message, self.field, self.row, self.file = message, field, row, file
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [p for p in (self.file, None if self.row is None else f"row {self.row}") if p]
        prefix = ":".join(where)
        fld = f"field '{self.field}': " if self.field else ""
        return f"{prefix}: {fld}{self.message}" if prefix else f"{fld}{self.message}"

    def located(self, *, file: str | None = None, row: int | None = None) -> "DataError":
        """The same error with the file and row filled in by the caller that knows them."""
        return DataError(self.message, field=self.field, row=self.row if row is None else row,
                         file=self.file if file is None else file)


def _text(name: str, value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {type(value).__name__}", field=name)
    if not allow_empty and not value.strip():
        raise DataError("must not be empty", field=name)
    return value


def _optional_text(name: str, value: Any) -> str | None:
    return None if value is None else _text(name, value, allow_empty=True)


def normalize_winner(value: Any) -> str:
    """Map a winner code (any known spelling, any case) to one of ``WINNERS``."""
    if not isinstance(value, str) or value.strip().lower() not in WINNER_ALIASES:
        raise DataError(f"unknown winner {value!r}; expected one of {sorted(WINNER_ALIASES)}",
                        field="winner")
    return WINNER_ALIASES[value.strip().lower()]


@dataclass(frozen=True, slots=True)
class Media:
    """An image or a video: a path (file, or a folder of frames for video), a URL, or raw bytes."""

    kind: Literal["image", "video"]
    path: str | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        if self.kind not in MEDIA_KINDS:
            raise DataError(f"must be one of {MEDIA_KINDS}, got {self.kind!r}", field="media.kind")
        if (self.path is None) == (self.data is None):
            raise DataError("give exactly one of path or data", field="media")
        if self.path is not None:
            _text("media.path", self.path)
        if self.data is not None and not isinstance(self.data, (bytes, bytearray)):
            raise DataError("must be bytes", field="media.data")


@dataclass(frozen=True, slots=True)
class Judgment:
    """One pairwise human vote over two models' responses to one question."""

    question_id: str
    model_a: str
    model_b: str
    winner: str
    annotator_id: str | None = None
    question: str | None = None
    media: Media | None = None
    response_a: str | None = None
    response_b: str | None = None
    timestamp: str | None = None     # tells two identical votes of one annotator apart
    category: str | None = None

    def __post_init__(self) -> None:
        for name in ("question_id", "model_a", "model_b"):
            _text(name, getattr(self, name))
        if self.model_a == self.model_b:
            raise DataError(f"self-pair: model_a equals model_b ({self.model_a!r})", field="model_b")
        object.__setattr__(self, "winner", normalize_winner(self.winner))
        for name in ("annotator_id", "question", "response_a", "response_b", "timestamp", "category"):
            _optional_text(name, getattr(self, name))
        if self.media is not None and not isinstance(self.media, Media):
            raise DataError("must be a Media", field="media")


@dataclass(frozen=True, slots=True)
class BenchmarkItem:
    """One evaluation item: a prompt, N >= 2 responses and their human ranking (1 = best, ties share a rank).

    Two-response benchmarks are N = 2 items with rankings (1, 2). ``group`` ties items that a metric
    scores together (MM-RLHF Acc+: every pair of one prompt id); it defaults to the item id.
    """

    id: str
    prompt: str
    responses: tuple[str, ...]
    rankings: tuple[int, ...]
    media: tuple[Media, ...] = ()
    models: tuple[str, ...] = ()
    category: str = ""
    group: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _text("id", self.id)
        _text("prompt", self.prompt, allow_empty=True)
        responses = tuple(self.responses) if isinstance(self.responses, (list, tuple)) else None
        if responses is None:
            raise DataError("must be a list of strings", field="responses")
        if len(responses) < 2:
            raise DataError(f"need at least 2 responses, got {len(responses)}", field="responses")
        for i, r in enumerate(responses):
            _text(f"responses[{i}]", r, allow_empty=True)
        rankings = tuple(self.rankings) if isinstance(self.rankings, (list, tuple)) else None
        if rankings is None:
            raise DataError("must be a list of integers", field="rankings")
        if len(rankings) != len(responses):
            raise DataError(f"has {len(rankings)} entries for {len(responses)} responses", field="rankings")
        for i, r in enumerate(rankings):
            if isinstance(r, bool) or not isinstance(r, int) or r < 1:
                raise DataError(f"rankings[{i}] must be an integer >= 1 (1 = best), got {r!r}",
                                field="rankings")
        if min(rankings) != 1:
            raise DataError("the best response must have rank 1", field="rankings")
        media = tuple(self.media)
        if not all(isinstance(m, Media) for m in media):
            raise DataError("must be a list of Media", field="media")
        models = tuple(self.models)
        if models and len(models) != len(responses):
            raise DataError(f"has {len(models)} entries for {len(responses)} responses", field="models")
        _text("category", self.category, allow_empty=True)
        _text("group", self.group, allow_empty=True)
        if not isinstance(self.meta, Mapping):
            raise DataError("must be a mapping", field="meta")
        object.__setattr__(self, "responses", responses)
        object.__setattr__(self, "rankings", rankings)
        object.__setattr__(self, "media", media)
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "group", self.group or self.id)
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def n(self) -> int:
        return len(self.responses)

    @property
    def best(self) -> tuple[int, ...]:
        """Indices of the gold-best responses (several when tied for first)."""
        return tuple(i for i, r in enumerate(self.rankings) if r == 1)


@dataclass(frozen=True, slots=True)
class ScoringRequest:
    """What an adapter sees: the prompt, the media and the responses in the order the evaluator chose.

    ``benchmark`` and ``category`` let a judge pick the benchmark's prompt template; they never carry
    the gold answer.
    """

    prompt: str
    responses: tuple[str, ...]
    media: tuple[Media, ...] = ()
    item_id: str = ""
    benchmark: str = ""
    category: str = ""
    media_root: str | None = None

    def __post_init__(self) -> None:
        _text("prompt", self.prompt, allow_empty=True)
        if not isinstance(self.responses, (list, tuple)) or len(self.responses) < 1:
            raise DataError("must be a non-empty list of strings", field="responses")
        for i, r in enumerate(self.responses):
            _text(f"responses[{i}]", r, allow_empty=True)
        object.__setattr__(self, "responses", tuple(self.responses))
        object.__setattr__(self, "media", tuple(self.media))


@dataclass(frozen=True, slots=True)
class Verdict:
    """A generative judge's answer: scores (best = highest) or None when the verdict was unreadable.

    Adapters may return a plain list of floats instead; a Verdict lets the evaluator count parse
    failures and apply the benchmark's declared rule to them instead of a hidden guess.
    """

    scores: tuple[float, ...] | None
    raw: str = ""
    usage: Mapping[str, float] = field(default_factory=dict)
    # per sample, for benchmarks that score each sample (judge_protocol agree_unless_rejected):
    # {"order": shown position -> index in the request's responses, "answer": the 1-based label named or None}
    samples: tuple[Mapping[str, Any], ...] = ()


@runtime_checkable
class ModelAdapter(Protocol):
    """A reward model as mr2bench sees it: one float per response, higher is better.

    ``score_batch`` is optional; the evaluator uses it when present. A user's adapter needs no import
    from mr2bench: any class with a matching ``score`` method works.
    """

    def score(self, request: ScoringRequest) -> Sequence[float] | Verdict: ...


def _score_value(value: Any, pos: int) -> float:
    """One adapter score as a finite float; bools, strings, None and nested sequences are refused (float()
    would accept True and "1.5" and pass inf, which no ranking can use)."""
    kind = getattr(getattr(value, "dtype", None), "kind", "")  # numpy / torch scalars carry a dtype
    if (isinstance(value, (bool, str, bytes)) or value is None or kind == "b"
            or getattr(value, "ndim", 0) or isinstance(value, (Sequence, Mapping))):
        raise DataError(f"adapter returned a non-numeric score at position {pos}: "
                        f"{type(value).__name__} {str(value)[:40]!r}", field="scores")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"adapter returned a non-numeric score at position {pos}: "
                        f"{type(value).__name__} {str(value)[:40]!r}", field="scores") from None
    if not math.isfinite(out):
        raise DataError(f"adapter returned a non-finite score at position {pos}: "
                        f"{'NaN' if math.isnan(out) else out}", field="scores")
    return out


def check_scores(scores: Sequence[float] | Verdict, n: int) -> tuple[float, ...] | None:
    """Validate an adapter's output for n responses: n finite numbers; None means an unreadable verdict.
    Adapter output is untrusted: anything else is a DataError (the item fails, the run goes on)."""
    if isinstance(scores, Verdict):
        if scores.scores is None:
            return None
        scores = scores.scores
    if isinstance(scores, (str, bytes, Mapping)) or not hasattr(scores, "__iter__"):
        raise DataError(f"adapter returned {type(scores).__name__}, not a list of {n} scores", field="scores")
    values = tuple(_score_value(s, i) for i, s in enumerate(scores))
    if len(values) != n:
        raise DataError(f"adapter returned {len(values)} scores for {n} responses", field="scores")
    return values
