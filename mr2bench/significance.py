"""Is model A's lead over model B on a benchmark real? A paired test on the items both scored.

A pure function of two ``samples.jsonl`` files, so ``rescore`` and the leaderboard recompute it:
- items are paired by id; an item counts when both models have a credit for it (failed or excluded
  verdicts drop the pair, and the count of dropped pairs is reported);
- the statistic is the benchmark's headline metric of A minus that of B (a credit mean, or the mean of
  per-category means for a macro headline such as VL-RewardBench's);
- p-value: a paired sign-flip permutation test (swap the two models' credits on each item with
  probability 1/2; two-sided, ``(1 + #|d*| >= |d|) / (1 + samples)``), exact under the null that the
  two models are exchangeable on every item;
- the minimum detectable difference: the gap this many paired items detect with 80% power at alpha 0.05,
  ``(z_0.975 + z_0.8) * SE(d)`` with SE from a paired bootstrap of the same items.
The draws come from a fixed seed keyed by the benchmark and the two model names, so results are stable.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .results import ItemRecord
from .seeding import rng_for

SAMPLES = 2000
SIGNIFICANCE_SEED = 0
ALPHA = 0.05
Z_POWER = 1.959964 + 0.841621     # two-sided alpha 0.05, power 0.8


@dataclass(frozen=True)
class Paired:
    """Credits of two models on the items both scored, and each item's top-level category code."""

    a: np.ndarray
    b: np.ndarray
    cats: np.ndarray
    n_dropped: int


def pair_records(a: Iterable[ItemRecord], b: Iterable[ItemRecord]) -> Paired:
    """Align two runs of one benchmark by item id (ids of one run only are ignored, and counted)."""
    credit_a = {r.id: (r.credit, r.category) for r in a}
    rows: list[tuple[float, float, str]] = []
    dropped = 0
    for r in b:
        other = credit_a.pop(r.id, None)
        if other is None or other[0] is None or r.credit is None:
            dropped += 1
            continue
        rows.append((float(other[0]), float(r.credit), r.category.split("/", 1)[0] or "(none)"))
    dropped += len(credit_a)
    names: dict[str, int] = {}
    cats = np.array([names.setdefault(c, len(names)) for _, _, c in rows], dtype=np.int64)
    return Paired(np.array([x for x, _, _ in rows], dtype=np.float64),
                  np.array([y for _, y, _ in rows], dtype=np.float64), cats, dropped)


def _headline(d: np.ndarray, cats: np.ndarray, macro: bool) -> np.ndarray:
    """Headline of each row of ``d`` (shape [B, n]): its mean, or the mean of its per-category means
    (``cats`` of shape [n] or [B, n]). Both are linear, so the headline of A - B is A's minus B's."""
    if not macro:
        return d.mean(axis=1)
    rows, _ = d.shape
    cats = np.broadcast_to(cats, d.shape)
    k = int(cats.max()) + 1
    flat = (np.arange(rows)[:, None] * k + cats).ravel()
    sums = np.bincount(flat, weights=d.ravel(), minlength=rows * k).reshape(rows, k)
    counts = np.bincount(flat, minlength=rows * k).reshape(rows, k)
    present = counts > 0
    return np.where(present, sums / np.maximum(counts, 1), 0.0).sum(axis=1) / present.sum(axis=1)


def compare(p: Paired, *, macro: bool, key: Sequence[str], samples: int = SAMPLES) -> dict[str, float | int | None]:
    """Difference A - B of the headline, its p-value and the minimum detectable difference."""
    n = p.a.size
    if n == 0:
        return {"n_paired": 0, "n_dropped": p.n_dropped, "diff": None, "p_value": None, "mde": None,
                "significant": False}
    observed = float(_headline((p.a - p.b)[None, :], p.cats, macro)[0])
    rng = rng_for(SIGNIFICANCE_SEED, "significance", *key)
    beyond = 0
    boot = np.empty(samples)
    chunk = max(1, min(samples, 2_000_000 // n))
    for start in range(0, samples, chunk):
        m = min(chunk, samples - start)
        flip = rng.random((m, n)) < 0.5
        d = np.where(flip, p.b - p.a, p.a - p.b)
        beyond += int((np.abs(_headline(d, p.cats, macro)) >= abs(observed) - 1e-12).sum())
        idx = rng.integers(0, n, size=(m, n))
        boot[start:start + m] = _headline((p.a - p.b)[idx], p.cats[idx], macro)
    p_value = (1 + beyond) / (1 + samples)
    return {"n_paired": n, "n_dropped": p.n_dropped, "diff": observed, "p_value": p_value,
            "mde": float(Z_POWER * boot.std(ddof=1)) if samples > 1 else None,
            "significant": p_value < ALPHA}
