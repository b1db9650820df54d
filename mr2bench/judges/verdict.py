"""Parsed verdicts -> scores for the evaluator (best = highest), and the k-sample vote.

Scores are in the order the responses were shown. One sample: a best-only verdict gives 1 to the best
and 0 to the rest; a full ranking gives N, N-1, ..., 1 down the ranking. Several samples: each response
scores the number of samples that named it best, and the vote must produce a single winner under the
declared rule, otherwise the verdict is unreadable (None) and the benchmark's parse policy decides.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..schema import DataError
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


def tally(samples: Sequence[Mapping[str, Any]], n: int) -> tuple[float, ...] | None:
    """Per response (request order), the samples naming it; out-of-range answers name none. None: no
    sample readable at all (what a readable one counts for is the benchmark's judge_protocol)."""
    if all(s.get("answer") is None for s in samples):
        return None
    counts = [0.0] * n
    for s in samples:
        answer = s.get("answer")
        if answer is not None and 1 <= answer <= n:
            counts[s["order"][answer - 1]] += 1.0
    return tuple(counts)


def samples_in_original(samples: Sequence[Any], perm: Sequence[int]) -> list[dict[str, Any]]:
    """Verdict.samples (orders over the request's responses) -> orders over original indices, checked:
    adapter output is untrusted, so a malformed sample is a DataError (the item fails)."""
    n = len(perm)
    out = []
    for j, s in enumerate(samples):
        order = s.get("order") if isinstance(s, Mapping) else None
        answer = s.get("answer") if isinstance(s, Mapping) else None
        if (not isinstance(order, (list, tuple)) or sorted(order) != list(range(n))
                or not all(type(i) is int for i in order)):
            raise DataError(f"sample {j}: 'order' must be a permutation of {n} indices, got {order!r}"[:200],
                            field="samples")
        if answer is not None and type(answer) is not int:
            raise DataError(f"sample {j}: 'answer' must be an integer or None, got {answer!r}"[:200],
                            field="samples")
        out.append({"order": [perm[i] for i in order], "answer": answer})
    return out
