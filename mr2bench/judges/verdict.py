"""Parsed verdicts -> scores for the evaluator (best = highest), and the k-sample vote.

Scores are in the order the responses were shown. One sample: a best-only verdict gives 1 to the best
and 0 to the rest; a full ranking gives N, N-1, ..., 1 down the ranking. Several samples: each response
scores the number of samples that named it best, and the vote must produce a single winner under the
declared rule, otherwise the verdict is unreadable (None) and the benchmark's parse policy decides.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .parse import Order

# majority: the winner needs more than half of ALL k samples, unreadable ones included (VL-RewardBench
# cal.py: agree/reject/doesntMatch by strict majority, anything else dropped).
# plurality: the most-named response among readable samples; a tie for most is unreadable.
VOTE_RULES = ("majority", "plurality")


def scores_from_order(order: Order, n: int) -> tuple[float, ...]:
    """(best,) -> one-hot; a full ranking (every index once, best first) -> N .. 1."""
    if len(order) == n and sorted(order) == list(range(n)):
        scores = [0.0] * n
        for pos, idx in enumerate(order):
            scores[idx] = float(n - pos)
        return tuple(scores)
    if not order or not 0 <= order[0] < n:
        raise ValueError(f"order {order} does not fit {n} responses")
    return tuple(1.0 if i == order[0] else 0.0 for i in range(n))


def vote(orders: Sequence[Order | None], n: int, rule: str = "majority") -> tuple[float, ...] | None:
    """k parsed samples -> scores, or None when unreadable; k = 1 keeps a full ranking's information."""
    if rule not in VOTE_RULES:
        raise ValueError(f"vote rule must be one of {VOTE_RULES}, got {rule!r}")
    if not orders:
        return None
    if len(orders) == 1:
        return None if orders[0] is None else scores_from_order(orders[0], n)
    counts = Counter(o[0] for o in orders if o is not None)
    if not counts:
        return None
    top = max(counts.values())
    leaders = [i for i, c in counts.items() if c == top]
    if len(leaders) > 1:
        return None
    if rule == "majority" and 2 * top <= len(orders):
        return None
    return tuple(float(counts.get(i, 0)) for i in range(n))
