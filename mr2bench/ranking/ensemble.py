"""The denoising core: judgments (integer-coded) -> per-question rankings with confidence.

Members of the preference-graph ensemble, all on one per-question weighted graph:
1. Bradley-Terry with annotator weights and a model-level prior pooled across questions
   (theta[q, m] ~ N(skill[m], 1/lambda); lambda chosen by held-out likelihood) -> bootstrap share
   P[i above j]; edge weight max(2P - 1, 0).
2. The net vote graph (PGED's ensemble step): (wins - losses) / votes per pair, weighted by annotators.
The combined graph loses a minimum-weight feedback arc set per strongly connected component (exact
where stated, feedback_arc.py); the total order is a topological sort with BT tie-breaks; adjacent
responses whose bootstrap share stays below ``tie_confidence`` share a tie group.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import bradley_terry as bt
from .annotators import annotator_stats
from .feedback_arc import DP_MAX, MILP_MAX, min_feedback_arc_set
from .graph import n_components, net_graph, three_cycles, win_matrix


@dataclass(frozen=True)
class Coded:
    """Pairwise judgments as integer codes: question q, models a/b, outcome y, annotator (-1 = none)."""

    q: np.ndarray
    a: np.ndarray
    b: np.ndarray
    y: np.ndarray
    annotator: np.ndarray
    n_questions: int
    n_models: int
    n_annotators: int


@dataclass(frozen=True)
class DenoiseConfig:
    bootstrap: int = 50
    alpha: float = 0.01                  # L2 floor when the prior is off
    use_annotators: bool = True
    use_prior: bool = True
    prior_grid: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    cv_folds: int = 3
    vote_weight: float = 0.1             # net-vote member weight relative to the BT-bootstrap member
    tie_confidence: float = 0.9
    drop_below: float = 0.25
    dp_max: int = DP_MAX
    milp_max: int = MILP_MAX
    seed: int = 0


@dataclass
class Denoised:
    theta: np.ndarray          # [Q, M] point estimates (NaN where a model never appears in a question)
    ci_low: np.ndarray
    ci_high: np.ndarray
    share: np.ndarray          # [Q, M, M] bootstrap share of replicates with i above j
    order: list[list[int]]     # per question, best first, present models only
    rank: np.ndarray           # [Q, M] competition rank (1 = best, ties share), 0 where absent
    present: np.ndarray        # [Q, M] bool
    skill: np.ndarray          # [M] model-level BT (pooled over questions)
    prior_precision: float
    row_weight: np.ndarray     # per judgment row
    annotators: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: list[dict] = field(default_factory=list)


def _outcomes(c: Coded, w: np.ndarray, rows: np.ndarray | None = None) -> bt.Outcomes:
    sel = slice(None) if rows is None else rows
    i = c.q[sel] * c.n_models + c.a[sel]
    j = c.q[sel] * c.n_models + c.b[sel]
    o, _ = bt.dedupe(bt.make_outcomes(i, j, c.y[sel], w[sel]))
    return o.take(o.w > 0)


def model_skill(c: Coded, w: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    o, _ = bt.dedupe(bt.make_outcomes(c.a, c.b, c.y, w))
    return bt.fit(c.n_models, o.take(o.w > 0), alpha=alpha)


def _fit_joint(c: Coded, o: bt.Outcomes, prior: np.ndarray, lam: float, init=None) -> np.ndarray:
    return bt.fit_blocks(c.n_questions * c.n_models, o, block=c.n_models, alpha=lam, prior_mean=prior, init=init)


def choose_prior(c: Coded, w: np.ndarray, skill: np.ndarray, grid, folds: int, rng) -> tuple[float, dict]:
    """Held-out log-likelihood of each prior precision (K-fold over judgment rows)."""
    fold = rng.integers(0, folds, len(c.q))
    prior = np.tile(skill, c.n_questions)
    scores = {}
    for lam in grid:
        ll = 0.0
        for k in range(folds):
            theta = _fit_joint(c, _outcomes(c, w, fold != k), prior, lam)
            ll += bt.log_likelihood(theta, _outcomes(c, w, fold == k))
        scores[float(lam)] = ll
    return max(scores, key=lambda k: (scores[k], -k)), scores


def annotator_weights(c: Coded, skill: np.ndarray, rng, drop_below: float, groups: int = 5):
    """Leave-one-group-out consensus (annotators split into ``groups``), then the weight rule."""
    group = rng.integers(0, groups, max(c.n_annotators, 1))
    row_group = np.where(c.annotator >= 0, group[np.maximum(c.annotator, 0)], -1)
    prior = np.tile(skill, c.n_questions)
    delta = np.zeros(len(c.q))
    ones = np.ones(len(c.q))
    for g in range(groups):
        held = row_group == g
        if not held.any():
            continue
        theta = _fit_joint(c, _outcomes(c, ones, ~held), prior, 1.0).reshape(c.n_questions, c.n_models)
        delta[held] = theta[c.q[held], c.a[held]] - theta[c.q[held], c.b[held]]
    stats = annotator_stats(c.annotator, c.n_annotators, delta, c.y, drop_below=drop_below)
    w = np.where(c.annotator >= 0, stats["weight"][np.maximum(c.annotator, 0)], 1.0)
    return w, stats


def _tie_groups(order: list[int], share: np.ndarray, conf: float) -> list[int]:
    """Competition ranks along ``order``: a response joins the current tie group unless the group's
    first response is above it in at least ``conf`` of the bootstrap replicates."""
    ranks, head = [], 0
    for k, v in enumerate(order):
        if k and share[order[head], v] >= conf:
            head = k
        ranks.append(head + 1)
    return ranks


def question_graph(share: np.ndarray, votes: np.ndarray, vote_weight: float) -> np.ndarray:
    """Combine the members: bootstrap BT confidence and the net vote share, netted to one direction."""
    total = votes + votes.T
    with np.errstate(invalid="ignore", divide="ignore"):
        vote = np.where(total > 0, (votes - votes.T) / total, 0.0)
    W = (2 * share - 1) + vote_weight * vote
    return np.clip(W, 0.0, None)


def denoise(c: Coded, cfg: DenoiseConfig, progress=None) -> Denoised:
    from mr2bench.seeding import rng_for

    Q, M = c.n_questions, c.n_models
    present = np.zeros((Q, M), dtype=bool)
    present[c.q, c.a] = True
    present[c.q, c.b] = True
    w = np.ones(len(c.q))
    ann_stats: dict[str, np.ndarray] = {}
    skill = model_skill(c, w)
    if cfg.use_annotators and c.n_annotators >= 3:
        w, ann_stats = annotator_weights(c, skill, rng_for(cfg.seed, "annotators"), cfg.drop_below)
        skill = model_skill(c, w)
    if cfg.use_prior:
        lam, _ = choose_prior(c, w, skill, cfg.prior_grid, cfg.cv_folds, rng_for(cfg.seed, "cv"))
        prior = np.tile(skill, Q)
    else:
        lam, prior = cfg.alpha, np.zeros(Q * M)
    o = _outcomes(c, w)
    theta = _fit_joint(c, o, prior, lam)
    boots = bt.bootstrap(Q * M, o, theta, rng_for(cfg.seed, "bootstrap"), cfg.bootstrap, alpha=lam,
                         prior_mean=prior, block=M).reshape(cfg.bootstrap, Q, M)
    theta = theta.reshape(Q, M)
    share = np.zeros((Q, M, M))
    for rep in boots:
        share += rep[:, :, None] > rep[:, None, :]
    share /= max(cfg.bootstrap, 1)
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0) if cfg.bootstrap else (theta, theta)
    rank = np.zeros((Q, M), dtype=np.int64)
    orders, diags = [], []
    by_q = np.argsort(c.q, kind="stable")
    bounds = np.searchsorted(c.q[by_q], np.arange(Q + 1))
    for qi in (progress(range(Q)) if progress else range(Q)):
        rows = by_q[bounds[qi]:bounds[qi + 1]]
        models = np.flatnonzero(present[qi])
        loc = {m: k for k, m in enumerate(models)}
        ia = np.array([loc[m] for m in c.a[rows]], dtype=np.int64)
        ib = np.array([loc[m] for m in c.b[rows]], dtype=np.int64)
        votes = win_matrix(len(models), ia, ib, c.y[rows], w[rows])
        sh = share[qi][np.ix_(models, models)]
        W = question_graph(sh, votes, cfg.vote_weight)
        fas = min_feedback_arc_set(W, dp_max=cfg.dp_max, milp_max=cfg.milp_max, tiebreak=theta[qi, models])
        kept = W.copy()
        for u, v in fas.removed:
            kept[u, v] = 0.0
        order = [int(models[k]) for k in fas.order]
        for m, r in zip(order, _tie_groups(order, share[qi], cfg.tie_confidence)):
            rank[qi, m] = r
        orders.append(order)
        diags.append({
            "judgments": int(len(rows)), "weighted_judgments": float(w[rows].sum()),
            "models": int(len(models)), "components": n_components(len(models), ia, ib),
            "vote_cycles3": three_cycles(net_graph(votes)), "graph_cycles3_before": three_cycles(W),
            "graph_cycles3_after": three_cycles(kept), "removed_arcs": len(fas.removed),
            "removed_weight_share": fas.removed_weight / W.sum() if W.sum() > 0 else 0.0,
            "fas_methods": fas.methods, "tie_groups": int(len(set(rank[qi, models]))),
        })
    theta = np.where(present, theta, np.nan)
    return Denoised(theta, np.where(present, lo, np.nan), np.where(present, hi, np.nan), share, orders, rank,
                    present, skill, float(lam), w, ann_stats, diags)
