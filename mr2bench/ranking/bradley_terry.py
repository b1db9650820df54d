"""Bradley-Terry fits: many independent questions at once.

Production path (``aggregate`` + ``fit_newton``): judgments aggregated per (question, i < j) with their
weights and soft targets, then batched Newton steps, one [Q, M, M] solve per step, with per-question
step halving; the final Hessian is the Laplace posterior precision. The L2 term pulls each response
toward ``mean`` (the pooled model-level prior) with precision ``lam``: it makes undefeated or
never-compared responses finite (ranking.md 1.3). ``fit`` (L-BFGS on deduplicated outcome rows, the
choix layout) is the reference the tests cross-check against choix.

Outcomes: y = 1 if i won, 0 if j won, 0.5 for a tie or "both bad" (Chatbot Arena's half-win).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit


@dataclass(frozen=True)
class Outcomes:
    """Unique pairwise outcome rows with their counts (the choix data layout, plus weights)."""

    i: np.ndarray  # int64 item ids
    j: np.ndarray
    y: np.ndarray  # float64 in {0, 0.5, 1}: share of the win that goes to i
    w: np.ndarray  # float64 weights (counts x annotator weight)

    def __len__(self) -> int:
        return len(self.i)

    def take(self, mask: np.ndarray) -> "Outcomes":
        return Outcomes(self.i[mask], self.j[mask], self.y[mask], self.w[mask])

    def reweighted(self, w: np.ndarray) -> "Outcomes":
        return Outcomes(self.i, self.j, self.y, np.asarray(w, dtype=float))


def make_outcomes(i, j, y, w=None) -> Outcomes:
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    y = np.asarray(y, dtype=float)
    w = np.ones(len(i)) if w is None else np.asarray(w, dtype=float)
    if not (len(i) == len(j) == len(y) == len(w)):
        raise ValueError("i, j, y, w must have equal length")
    if np.any(i == j):
        raise ValueError("an item cannot meet itself")
    return Outcomes(i, j, y, w)


def dedupe(o: Outcomes) -> tuple[Outcomes, np.ndarray]:
    """Collapse identical (i, j, y) rows, summing weights; returns the unique rows and row -> unique index."""
    if len(o) == 0:
        return o, np.zeros(0, dtype=np.int64)
    n = int(max(o.i.max(), o.j.max())) + 1
    y2 = np.round(o.y * 2).astype(np.int64)
    key = (o.i * n + o.j) * 3 + y2  # one int64 per row: a 1-D unique is far faster than unique(axis=0)
    uniq, inverse = np.unique(key, return_inverse=True)
    w = np.bincount(inverse, weights=o.w, minlength=len(uniq))
    ij, y2u = np.divmod(uniq, 3)
    return Outcomes(ij // n, ij % n, y2u / 2.0, w), inverse


def fit(n_items: int, o: Outcomes, *, alpha: float | np.ndarray = 0.01,
        prior_mean: np.ndarray | None = None, init: np.ndarray | None = None,
        tol: float = 1e-7, max_iter: int = 1000) -> np.ndarray:
    """MAP log-strengths theta (length n_items) under BT with an L2 prior toward ``prior_mean``."""
    m = np.zeros(n_items) if prior_mean is None else np.asarray(prior_mean, dtype=float)
    prec = np.broadcast_to(np.asarray(alpha, dtype=float), (n_items,))
    if np.any(prec <= 0):
        raise ValueError("alpha must be > 0 (unregularised BT has no finite MLE on sparse data)")
    i, j, y, w = o.i, o.j, o.y, o.w

    def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[i] - theta[j]
        # softplus(d) - y*d is the negative log-likelihood of a (possibly half) win
        nll = np.sum(w * (np.logaddexp(0.0, d) - y * d))
        g = w * (expit(d) - y)
        r = theta - m
        grad = np.bincount(i, g, n_items) - np.bincount(j, g, n_items) + prec * r
        return nll + 0.5 * np.sum(prec * r * r), grad

    x0 = m.copy() if init is None else np.asarray(init, dtype=float).copy()
    res = minimize(f, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-12})
    if not np.all(np.isfinite(res.x)):
        raise RuntimeError(f"Bradley-Terry fit diverged: {res.message}")
    return res.x


def _bincount(idx: np.ndarray, w: np.ndarray | None = None, n: int = 0) -> np.ndarray:
    """np.bincount that is float64 even for no rows (numpy returns int64 zeros then)."""
    return np.bincount(idx, w, n).astype(float, copy=False)


@dataclass(frozen=True)
class Pairs:
    """Judgments of many questions aggregated per (question, i, j), i < j: ``w`` = total weight and
    ``wy`` = the weight of i's wins (soft targets allowed). The BT likelihood is linear in the
    targets, so this aggregation is exact, and it is the same for any slot order of the input rows."""

    q: np.ndarray
    i: np.ndarray
    j: np.ndarray
    w: np.ndarray
    wy: np.ndarray


def aggregate(n_models: int, q, i, j, y, w) -> Pairs:
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    y_lo = np.where(i == lo, y, 1.0 - y)
    key = (np.asarray(q, dtype=np.int64) * n_models + lo) * n_models + hi
    uniq, inv = np.unique(key, return_inverse=True)
    W = _bincount(inv, w, len(uniq))
    WY = _bincount(inv, w * y_lo, len(uniq))
    qq, rest = np.divmod(uniq, n_models * n_models)
    keep = W > 0
    return Pairs(qq[keep], rest[keep] // n_models, rest[keep] % n_models, W[keep], WY[keep])


def block_objective(theta: np.ndarray, p: Pairs, mean: np.ndarray, lam: float | np.ndarray) -> np.ndarray:
    """Per-question negative log posterior (up to a constant); theta and mean are [Q, M]."""
    d = theta[p.q, p.i] - theta[p.q, p.j]
    row = p.w * np.logaddexp(0.0, d) - p.wy * d
    lam = np.broadcast_to(np.asarray(lam, dtype=float), theta.shape)
    return _bincount(p.q, row, len(theta)) + 0.5 * np.sum(lam * (theta - mean) ** 2, axis=1)


def hessian(theta: np.ndarray, p: Pairs, lam: float | np.ndarray) -> np.ndarray:
    """[Q, M, M] Hessian of the negative log posterior: the weighted comparison Laplacian + prior."""
    Q, M = theta.shape
    s = expit(theta[p.q, p.i] - theta[p.q, p.j])
    h = p.w * s * (1.0 - s)
    off = _bincount((p.q * M + p.i) * M + p.j, h, Q * M * M).reshape(Q, M, M)
    H = -(off + off.transpose(0, 2, 1))     # each unordered pair is one row (aggregate: i < j)
    diag = _bincount(p.q * M + p.i, h, Q * M) + _bincount(p.q * M + p.j, h, Q * M)
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (Q, M))
    H[:, np.arange(M), np.arange(M)] += diag.reshape(Q, M) + lam
    return H


def fit_newton(p: Pairs, mean: np.ndarray, lam: float | np.ndarray, *, init: np.ndarray | None = None,
               tol: float = 1e-9, max_iter: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """MAP theta [Q, M] under BT with the prior N(mean, 1/lam) per response, and its Hessian.

    Every question is an independent M-dimensional strictly convex problem: batched Newton steps
    (one [Q, M, M] solve each) with per-question step halving converge in a handful of iterations,
    and the final Hessian is the Laplace posterior precision."""
    theta = (mean if init is None else init).astype(float).copy()
    obj = block_objective(theta, p, mean, lam)
    Q, M = theta.shape
    lamq = np.broadcast_to(np.asarray(lam, dtype=float), (Q, M))
    for _ in range(max_iter):
        s = expit(theta[p.q, p.i] - theta[p.q, p.j])
        g = p.w * s - p.wy
        grad = (_bincount(p.q * M + p.i, g, Q * M) - _bincount(p.q * M + p.j, g, Q * M)).reshape(Q, M)
        grad += lamq * (theta - mean)
        step = np.linalg.solve(hessian(theta, p, lam), grad[..., None])[..., 0]
        t = np.ones(Q)
        for _half in range(30):
            cand = theta - t[:, None] * step
            new = block_objective(cand, p, mean, lam)
            worse = new > obj + 1e-12 * np.abs(obj)
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
        theta, obj = cand, new
        if np.max(np.abs(t[:, None] * step), initial=0.0) < tol:
            break
    if not np.all(np.isfinite(theta)):
        raise RuntimeError("Bradley-Terry Newton fit diverged")
    return theta, hessian(theta, p, lam)
