"""4-response items from a full ranking: seeded, best confidently separated, best slot balanced."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Variant:
    models: tuple[int, ...]     # model ids in slot order
    rankings: tuple[int, ...]   # 1 = best within the four
    best_slot: int


def within_ranks(global_rank: np.ndarray, best: int, others: list[int]) -> list[int]:
    """Best gets 1; the other three get 2 + the number of others ranked strictly better globally."""
    return [1] + [2 + sum(global_rank[o2] < global_rank[o] for o2 in others) for o in others]


def sample_variants(order: list[int], rank: np.ndarray, share: np.ndarray, k: int, *, separation: float,
                    rng: np.random.Generator, slot_start: int, size: int = 4, tries: int = 50,
                    draws: np.ndarray | None = None) -> list[Variant]:
    """Up to ``k`` distinct variants for one question.

    The best of a variant is above each of the other three with posterior probability at least
    ``separation`` (``share``); with ``draws`` ([S, n_models] posterior draws), it must also be above
    all three at once in at least ``separation`` of the draws, so the designated best is the true best
    of its four with that probability, not only pairwise. Best candidates are the responses with
    >= size-1 such inferiors. The best's slot is (slot_start + variant) % size, so slots stay balanced.
    """
    idx = np.asarray(order, dtype=np.int64)
    sep = share[np.ix_(idx, idx)] >= separation
    np.fill_diagonal(sep, False)
    below = {b: idx[sep[r]].tolist() for r, b in enumerate(order)}
    candidates = [b for b in order if len(below[b]) >= size - 1]
    variants: list[Variant] = []
    seen: set[frozenset[int]] = set()
    for _ in range(tries):
        if len(variants) >= k or not candidates:
            break
        best = candidates[int(rng.integers(len(candidates)))]
        others = [below[best][i] for i in sorted(rng.choice(len(below[best]), size - 1, replace=False))]
        key = frozenset([best, *others])
        if key in seen:
            continue
        seen.add(key)
        if draws is not None and np.mean(np.all(draws[:, [best]] > draws[:, others], axis=1)) < separation:
            continue
        rng.shuffle(others)
        slot = (slot_start + len(variants)) % size
        ranks = within_ranks(rank, best, others)
        models = others[:slot] + [best] + others[slot:]
        rk = ranks[1:slot + 1] + [1] + ranks[slot + 1:]
        variants.append(Variant(tuple(models), tuple(rk), slot))
    return variants
