"""Recovery metrics against a planted truth (higher score = better)."""
from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau


def tau_b(score_true: np.ndarray, score_est: np.ndarray) -> float:
    """Kendall tau-b (handles ties in either input); 0 when either side is constant."""
    t = kendalltau(score_true, score_est, variant="b").statistic
    return 0.0 if not np.isfinite(t) else float(t)


def top1(score_true: np.ndarray, score_est: np.ndarray) -> float:
    """1 if the estimated best is a true best; shared first places score 1/k (k tied for first)."""
    est = np.flatnonzero(score_est == np.max(score_est))
    true_best = np.flatnonzero(score_true == np.max(score_true))
    return float(np.isin(est, true_best).mean())


def order_to_score(order: list[int] | np.ndarray, n: int) -> np.ndarray:
    """A best-first order as scores (first = n, last = 1)."""
    s = np.zeros(n)
    s[np.asarray(order, dtype=np.int64)] = np.arange(n, 0, -1)
    return s
