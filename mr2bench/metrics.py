"""The official scoring rules as pure functions of stored scores (no I/O, no hidden randomness).

Per item: ``item_outcome(rankings, scores, tie_policy)`` gives the top-1 credit and, for N > 2, the
ranking metrics. Per benchmark: ``MetricAccumulator`` collects outcomes one record at a time (compact
arrays, so 100K items stay small) and ``compute()`` returns metrics, per-category metrics, a seeded
bootstrap CI of the primary metric and permutation consistency.

Rules (see ../shared/reference/benchmarks.md):
- top-1 credit, ``strict``: 1 iff exactly one response has the maximum score and it is gold-best
  (two responses: ``score(chosen) > score(rejected)``, a tie is wrong: RewardBench v1, MM-RLHF).
- top-1 credit, ``split``: k responses share the maximum, m of them gold-best -> m/k
  (1/k with one gold-best: RewardBench v2 best-of-4, MR^2Bench).
- pairwise accuracy: over response pairs with different gold ranks, the share ordered as gold;
  a model tie on such a pair earns 1/2 (its expected value under a random tie-break).
- Kendall tau-b between gold order (-rank) and scores; 0.0 when undefined (all scores equal).
- exact order: every pair with different gold ranks strictly ordered as gold.
- ``acc_plus``: share of groups (MM-RLHF prompt ids) whose items are all correct; a group holding a
  failed item is not all correct (declared deviation: the official script never sees a failed pair).
- ``n_score_ties``: scored items whose maximum score is shared by two or more responses (the case the
  tie policy decides); ``n_groups_with_failures``: groups holding a failed item.
- parse policy ``ordered_random`` (Multimodal RewardBench ``2_get_accuracy.py``): one ``random.Random(123)``
  for the run and one ``random() < 0.5`` draw (A, else B) per unreadable verdict or failed call, in the
  loader's order (``ordered_fallback_picks``; the same at scoring and at rescore).
- judge protocol ``agree_unless_rejected`` (VL-RewardBench ``cal.py``): each of a judge's k samples agrees
  unless its answer names the rejected response (an out-of-range number agrees); strict majority of k,
  else the item is excluded (``agree_unless_rejected``; from the samples stored in the record).
- ``macro_accuracy``: mean over top-level categories of their accuracy (VL-RewardBench).
A category ``a/b`` counts in both ``a/b`` and ``a`` (Multimodal RewardBench sub-splits).
"""
from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .seeding import rng_for

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0          # fixed, so rescore needs nothing but the samples
RANKING_METRICS = ("pairwise_accuracy", "kendall_tau_b", "exact_order")

# primary metric -> the metrics reported for that benchmark (first = micro credit name)
METRIC_SETS: dict[str, tuple[str, ...]] = {
    "best_of_n": ("best_of_n",) + RANKING_METRICS,
    "accuracy": ("accuracy",),
    "macro_accuracy": ("accuracy", "macro_accuracy"),
    "acc": ("acc", "acc_plus"),
}


# ---------------------------------------------------------------- per item
def top1_credit(rankings: Sequence[int], scores: Sequence[float], tie_policy: str) -> float:
    top = max(scores)
    tied = [i for i, s in enumerate(scores) if s == top]
    best_rank = min(rankings)
    hits = sum(1 for i in tied if rankings[i] == best_rank)
    if tie_policy == "strict":
        return 1.0 if len(tied) == 1 and hits == 1 else 0.0
    if tie_policy == "split":
        return hits / len(tied)
    raise ValueError(f"unknown tie policy {tie_policy!r}")


def pairwise_accuracy(rankings: Sequence[int], scores: Sequence[float]) -> float | None:
    total = agree = 0.0
    n = len(rankings)
    for i in range(n):
        for j in range(i + 1, n):
            if rankings[i] == rankings[j]:
                continue
            total += 1
            better, worse = (i, j) if rankings[i] < rankings[j] else (j, i)
            if scores[better] > scores[worse]:
                agree += 1
            elif scores[better] == scores[worse]:
                agree += 0.5
    return None if total == 0 else agree / total


def kendall_tau_b(rankings: Sequence[int], scores: Sequence[float]) -> float:
    """tau-b between gold (lower rank = better) and scores; 0.0 when either side is all-tied."""
    n = len(rankings)
    conc = disc = tie_x = tie_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = rankings[j] - rankings[i]   # > 0: i better in gold
            dy = scores[i] - scores[j]       # > 0: i better by the model
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tie_x += 1
            elif dy == 0:
                tie_y += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tie_x) * (conc + disc + tie_y))
    return 0.0 if denom == 0 else (conc - disc) / denom


def exact_order(rankings: Sequence[int], scores: Sequence[float]) -> float:
    n = len(rankings)
    for i in range(n):
        for j in range(n):
            if rankings[i] < rankings[j] and not scores[i] > scores[j]:
                return 0.0
    return 1.0


def fallback_scores(n: int, pick: int) -> tuple[float, ...]:
    """Scores that stand for a seeded random pick of response ``pick`` (parse policy seeded_random)."""
    return tuple(1.0 if i == pick else 0.0 for i in range(n))


@dataclass(frozen=True)
class Outcome:
    credit: float | None                    # None: excluded from every denominator
    pairwise: float | None = None
    tau: float | None = None
    exact: float | None = None
    tie: bool = False                       # the top score is shared (the tie policy decided)


FALLBACK_SEED = 123  # multimodal_rewardbench scripts/2_get_accuracy.py: random.seed(123), once


def ordered_fallback_picks(needs_fallback: Sequence[bool], seed: int = FALLBACK_SEED) -> list[int | None]:
    """One ``random.random() < 0.5`` draw (0 = A, else 1 = B) per True, in order, from one seeded stream."""
    import random

    rnd = random.Random(seed)
    return [(0 if rnd.random() < 0.5 else 1) if need else None for need in needs_fallback]


def with_ordered_fallbacks(records: Iterable[Any], parse_policy: str) -> Iterable[Any]:
    """Records in loader order (``extra.index``) with ``extra.fallback_pick`` set on each unreadable or
    failed one, for the ``ordered_random`` parse policy; other policies: the records unchanged."""
    if parse_policy != "ordered_random":
        return records
    from dataclasses import replace

    recs = sorted(records, key=lambda r: r.extra.get("index", 0))
    picks = ordered_fallback_picks([r.scores is None and bool(r.rankings) for r in recs])
    return [r if p is None else replace(r, extra={**r.extra, "fallback_pick": r.permutation[p] if r.permutation else p})
            for r, p in zip(recs, picks)]


def agree_unless_rejected(rankings: Sequence[int], samples: Sequence[Mapping[str, Any]]) -> float | None:
    """VL-RewardBench cal.py over a judge's k samples (orders over original indices, answers 1-based as shown).

    A sample agrees when it named a position (any number, 'Answer 3' on two responses included) whose
    response is not a rejected one (rank below the best), rejects when it named a rejected one, and does
    not match when unreadable. 1.0 when agree > k/2, 0.0 when reject > k/2, else None (left out of
    numerator and denominator, as cal.py's 'doesntMatch' and 'other').
    """
    best = min(rankings)
    agree = reject = 0
    for s in samples:
        answer, order = s.get("answer"), s["order"]
        if answer is None:
            continue
        named = order[answer - 1] if 1 <= answer <= len(order) else None
        if named is not None and rankings[named] != best:
            reject += 1
        else:
            agree += 1
    k = len(samples)
    if 2 * agree > k:
        return 1.0
    if 2 * reject > k:
        return 0.0
    return None


def is_tie(scores: Sequence[float]) -> bool:
    top = max(scores)
    return sum(1 for s in scores if s == top) > 1


def item_outcome(rankings: Sequence[int], scores: Sequence[float] | None, tie_policy: str,
                 *, status: str = "ok", parse_policy: str = "exclude",
                 fallback_pick: int | None = None, judge_samples: Sequence[Mapping[str, Any]] | None = None
                 ) -> Outcome:
    """One item's contribution. ``scores`` is None for failed items and unreadable verdicts.
    ``judge_samples`` (a judge's per-sample orders and answers, judge_protocol agree_unless_rejected)
    decide the credit instead of the scores."""
    if judge_samples is not None and status != "failed":
        return Outcome(agree_unless_rejected(rankings, judge_samples))
    if status == "failed" and not (parse_policy == "ordered_random" and fallback_pick is not None):
        return Outcome(None)
    if status == "failed" or scores is None:
        if parse_policy == "ordered_random":
            if fallback_pick is None:  # decided when every record is known (ordered_fallback_picks)
                return Outcome(None)
            scores = fallback_scores(len(rankings), fallback_pick)
        elif parse_policy == "exclude":
            return Outcome(None)
        elif parse_policy == "wrong":
            return Outcome(0.0, 0.0, 0.0, 0.0)
        elif parse_policy == "seeded_random":
            if fallback_pick is None:
                raise ValueError("seeded_random parse policy needs the stored fallback pick")
            scores = fallback_scores(len(rankings), fallback_pick)
        else:
            raise ValueError(f"unknown parse policy {parse_policy!r}")
    return Outcome(top1_credit(rankings, scores, tie_policy), pairwise_accuracy(rankings, scores),
                   kendall_tau_b(rankings, scores), exact_order(rankings, scores), tie=is_tie(scores))


def top_choice(scores: Sequence[float]) -> tuple[int, ...]:
    top = max(scores)
    return tuple(i for i, s in enumerate(scores) if s == top)


# ---------------------------------------------------------------- aggregation
def _category_keys(category: str) -> list[str]:
    keys = [category or "(none)"]
    if "/" in category:
        keys.append(category.split("/", 1)[0])
    return keys


class MetricAccumulator:
    """Collect per-item outcomes for one benchmark; memory is a few numbers per item."""

    def __init__(self, primary_metric: str) -> None:
        if primary_metric not in METRIC_SETS:
            raise ValueError(f"no metric set for primary metric {primary_metric!r}")
        self.primary = primary_metric
        self.names = METRIC_SETS[primary_metric]
        self.credit = array("d")          # scored items only
        self.cat_code = array("l")         # top-level category code per scored item
        self.group_code = array("l")
        self.ranking: dict[str, array] = {m: array("d") for m in RANKING_METRICS}
        self._cats: dict[str, int] = {}
        self._groups: dict[str, int] = {}
        self.sub: dict[str, list[Any]] = {}  # category key -> [credits, ranking lists, group codes]
        self.n_items = self.n_failed = self.n_parse_failures = self.n_scored = self.n_ties = 0
        self.failed_groups: dict[str, set[int]] = {}  # category key ("" = all) -> groups with a failure
        self.perm_runs = self.perm_consistent = 0
        self.usage: dict[str, float] = {}

    def add(self, *, category: str, group: str, outcome: Outcome, status: str,
            top_choices: Sequence[Sequence[int]] = (), usage: Mapping[str, Any] | None = None) -> None:
        self.n_items += 1
        self.n_failed += status == "failed"
        self.n_parse_failures += status == "parse_failure"
        for key, value in (usage or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.usage[key] = self.usage.get(key, 0) + value
        if len(top_choices) > 1:
            self.perm_runs += 1
            self.perm_consistent += all(tuple(t) == tuple(top_choices[0]) for t in top_choices)
        g = self._groups.setdefault(group, len(self._groups))
        if status == "failed":
            for key in ("", *_category_keys(category)):
                self.failed_groups.setdefault(key, set()).add(g)
        if outcome.credit is None:
            return
        self.n_scored += 1
        self.n_ties += outcome.tie
        top = category.split("/", 1)[0] or "(none)"
        self.credit.append(outcome.credit)
        self.cat_code.append(self._cats.setdefault(top, len(self._cats)))
        self.group_code.append(g)
        values = {"pairwise_accuracy": outcome.pairwise, "kendall_tau_b": outcome.tau,
                  "exact_order": outcome.exact}
        for m in RANKING_METRICS:
            v = values[m]
            self.ranking[m].append(float("nan") if v is None else v)
        for key in _category_keys(category):
            bucket = self.sub.setdefault(key, [array("d"), {m: array("d") for m in RANKING_METRICS},
                                               array("l")])
            bucket[0].append(outcome.credit)
            for m in RANKING_METRICS:
                bucket[1][m].append(float("nan") if values[m] is None else values[m])
            bucket[2].append(g)

    # -- metric values on arrays (shared by the totals, the categories and the bootstrap)
    def _acc_plus(self, credit: np.ndarray, groups: np.ndarray, failed: set[int]) -> float | None:
        """Groups with every item scored and correct / groups seen (failed items included)."""
        n_codes = len(self._groups)
        present = np.zeros(n_codes, dtype=bool)
        present[groups] = True
        bad = np.bincount(groups, weights=(credit < 1.0).astype(float), minlength=n_codes) > 0
        if failed:
            idx = np.fromiter(failed, dtype=np.int64)
            present[idx] = True
            bad[idx] = True
        return float((present & ~bad).sum() / present.sum()) if present.any() else None

    def _values(self, credit: np.ndarray, ranking: Mapping[str, np.ndarray], groups: np.ndarray,
                cats: np.ndarray | None, failed: set[int] | None = None) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        if credit.size == 0 and "acc_plus" in self.names and failed:
            return {m: (self._acc_plus(credit, groups, failed) if m == "acc_plus" else None) for m in self.names}
        if credit.size == 0:
            return {m: None for m in self.names if not (m == "macro_accuracy" and cats is None)}
        for m in self.names:
            if m in ("best_of_n", "accuracy", "acc"):
                out[m] = float(credit.mean())
            elif m in RANKING_METRICS:
                v = ranking[m][~np.isnan(ranking[m])]
                out[m] = float(v.mean()) if v.size else None
            elif m == "acc_plus":
                out[m] = self._acc_plus(credit, groups, failed or set())
            elif m == "macro_accuracy" and cats is not None:
                sums = np.bincount(cats, weights=credit)
                counts = np.bincount(cats)
                out[m] = float((sums[counts > 0] / counts[counts > 0]).mean())
        return out

    def compute(self, *, bootstrap_samples: int = BOOTSTRAP_SAMPLES, bootstrap_key: str = "") -> dict[str, Any]:
        credit = np.frombuffer(self.credit, dtype=np.float64) if len(self.credit) else np.zeros(0)
        groups = np.asarray(self.group_code, dtype=np.int64)
        cats = np.asarray(self.cat_code, dtype=np.int64)
        ranking = {m: np.asarray(self.ranking[m], dtype=np.float64) for m in RANKING_METRICS}
        metrics = self._values(credit, ranking, groups, cats, self.failed_groups.get(""))
        if self.perm_runs:
            metrics["permutation_consistency"] = self.perm_consistent / self.perm_runs
        per_category: dict[str, dict[str, Any]] = {}
        for key in sorted(self.sub):
            c, r, g = self.sub[key]
            vals = self._values(np.asarray(c, dtype=np.float64),
                                {m: np.asarray(r[m], dtype=np.float64) for m in RANKING_METRICS},
                                np.asarray(g, dtype=np.int64), None, self.failed_groups.get(key))
            vals["n"] = len(c)
            per_category[key] = vals
        failed_only = set(self.failed_groups) - set(self.sub) - {""} if "acc_plus" in self.names else set()
        for key in sorted(failed_only):  # every item of the category failed: Acc+ 0, not absent
            per_category[key] = {**self._values(np.zeros(0), {m: np.zeros(0) for m in RANKING_METRICS},
                                                np.zeros(0, dtype=np.int64), None, self.failed_groups[key]),
                                 "n": 0}
        ci = self.bootstrap(credit, groups, cats, ranking, bootstrap_samples, bootstrap_key)
        return {"metrics": metrics, "per_category": per_category, "ci95": ci,
                "n_items": self.n_items, "n_scored": self.n_scored, "n_failed": self.n_failed,
                "n_parse_failures": self.n_parse_failures, "n_score_ties": self.n_ties,
                "n_groups_with_failures": len(self.failed_groups.get("", ())),
                "usage": dict(sorted(self.usage.items()))}

    def bootstrap(self, credit: np.ndarray, groups: np.ndarray, cats: np.ndarray,
                  ranking: Mapping[str, np.ndarray], samples: int, key: str) -> dict[str, Any] | None:
        """Percentile 95% CI of the primary metric; resamples items (groups for acc_plus)."""
        if credit.size == 0 or samples <= 0:
            return None
        rng = rng_for(BOOTSTRAP_SEED, "bootstrap", key, self.primary)
        n = credit.size
        stats = np.empty(samples)
        chunk = max(1, min(samples, 2_000_000 // n))
        if self.primary == "acc_plus":  # pragma: no cover - no bundled spec uses it as primary
            raise ValueError("acc_plus as primary metric is not supported")
        for start in range(0, samples, chunk):
            b = min(chunk, samples - start)
            idx = rng.integers(0, n, size=(b, n))
            if self.primary in ("best_of_n", "accuracy", "acc"):
                stats[start:start + b] = credit[idx].mean(axis=1)
            elif self.primary == "macro_accuracy":
                for k in range(b):
                    sums = np.bincount(cats[idx[k]], weights=credit[idx[k]])
                    counts = np.bincount(cats[idx[k]])
                    stats[start + k] = (sums[counts > 0] / counts[counts > 0]).mean()
        lo, hi = np.percentile(stats, [2.5, 97.5])
        return {"metric": self.primary, "low": float(lo), "high": float(hi), "samples": samples,
                "unit": "item"}
