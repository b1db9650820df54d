"""The per-item record (``samples.jsonl``) and ``results.json``: one schema, versioned.

Scores are stored in the item's original response order; ``permutation[k]`` is the original index of
the response shown k-th, so any metric can be recomputed from the records alone (``mr2bench rescore``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1
STATUSES = ("ok", "parse_failure", "failed")


@dataclass(frozen=True)
class ItemRecord:
    id: str
    category: str
    group: str
    rankings: tuple[int, ...]                  # gold, original order (1 = best)
    permutation: tuple[int, ...]               # shown position -> original index
    scores: tuple[float, ...] | None           # original order; None when failed / unreadable
    credit: float | None                       # primary-metric credit; None when excluded
    status: Literal["ok", "parse_failure", "failed"] = "ok"
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # raw verdicts, usage, permutation runs

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if sorted(self.permutation) != list(range(len(self.rankings))):
            raise ValueError(f"permutation {self.permutation} is not a permutation of {len(self.rankings)}")
        if self.status == "ok" and self.scores is None:
            raise ValueError("status 'ok' without scores")
        _check_stored_scores(self.scores, len(self.rankings))
        for run in self.extra.get("permutation_runs", ()):
            _check_stored_scores(run.get("scores"), len(self.rankings))

    def to_json(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies and was a third of the evaluator's per-item time
        return {"id": self.id, "category": self.category, "group": self.group, "rankings": list(self.rankings),
                "permutation": list(self.permutation),
                "scores": None if self.scores is None else list(self.scores), "credit": self.credit,
                "status": self.status, "error": self.error, "extra": self.extra}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "ItemRecord":
        return cls(id=row["id"], category=row.get("category", ""), group=row.get("group", row["id"]),
                   rankings=tuple(row["rankings"]), permutation=tuple(row["permutation"]),
                   scores=None if row.get("scores") is None else tuple(row["scores"]),
                   credit=row.get("credit"), status=row.get("status", "ok"), error=row.get("error"),
                   extra=row.get("extra") or {})


def _check_stored_scores(scores: Any, n: int) -> None:
    """Stored scores are None or n finite numbers (records of older versions may hold null for inf)."""
    if scores is None:
        return
    if len(scores) != n or not all(type(s) in (float, int) and math.isfinite(s) for s in scores):
        raise ValueError(f"scores must be {n} finite numbers, got {list(scores)!r}"[:200])


def usable(row: dict[str, Any]) -> bool:
    """A stored row that is a valid, finished record (failed or malformed ones are retried on resume)."""
    if row.get("status") == "failed":
        return False
    try:
        ItemRecord.from_json(row)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return True


RESULTS_KEYS = (
    "schema_version", "benchmark", "benchmark_version", "hub_id", "revision", "split", "protocol",
    "primary_metric", "headline_metric", "metrics", "per_category", "ci95", "n_items", "n_scored",
    "n_failed", "n_parse_failures", "failure_reasons", "seed", "model", "permutations", "packages", "git_sha",
    "command",
)
