"""The denoising core: judgments (integer-coded) -> per-question rankings with calibrated confidence.

Members (each kept because bench_denoise shows it helps; the README says by how much):
1. Annotator classes (annotators.py): Dawid-Skene style EM puts every annotator in one latent class
   (honest, inverted, noisy, slot-biased) from all its votes; a vote's weight is its posterior
   probability of following BT (inverted votes read flipped).
2. Bradley-Terry per question with a pooled model-level prior, theta[q, m] ~ N(skill[m], 1/lambda):
   skill = the mean of theta over questions, lambda by held-out likelihood; alternated with member 1.
3. A Gaussian (Laplace) posterior around the MAP: P[i above j] = Phi(gap / sd) per question. It widens
   with thin data and links a disconnected question's parts through the prior, so confidence says how
   much the prior decided.
Orders are the MAP point estimates (equal estimates: lower model code first), never a resampling draw:
every step works on rows canonicalised to (lower code, higher code), so swapping model_a/model_b in
every row (winner swapped too) gives bit-identical estimates and orders. Adjacent responses whose
posterior share stays below ``tie_confidence`` form one tie group. The old vote-graph / feedback-arc
member added nothing measurable (-0.001 tau, issue 13) and is gone; the vote graph stays a diagnostic
(3-cycles, and the votes that point against the final order).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import ndtr

from . import bradley_terry as bt
from .annotators import PROFILES, class_bt_share, class_report, class_step, degenerate, initial_state

CV_AFTER = 3   # EM iterations before lambda is chosen (annotator weights have settled by then)
DRAWS, DRAW_SEED = 1000, 20260413   # posterior draws for the joint best-of-four check


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
    alpha: float = 0.01                  # L2 precision when the pooled prior is off
    use_annotators: bool = True
    use_prior: bool = True
    em_iters: int = 8
    slot_classes: bool = True            # False for pairs decomposed from rankings (no screen slots)
    tie_confidence: float = 0.9
    drop_below: float = 0.0              # annotator weight below this -> its votes count 0 (0: soft weights only)
    min_evidence: float = 0.05           # weighted judgments a response needs to be ranked
    rank_disconnected: bool = True       # rank a disconnected question through an informative prior
    prior_precision: float | None = None  # fix lambda instead of choosing it by held-out likelihood
    prior_grid: tuple[float, ...] = (0.125, 0.5, 2.0, 8.0, 32.0)
    cv_folds: int = 3
    cv_questions: int = 200
    seed: int = 0


@dataclass
class Denoised:
    theta: np.ndarray          # [Q, M] MAP estimates (NaN where a response is absent or unevidenced)
    ci_low: np.ndarray         # 95 % posterior interval
    ci_high: np.ndarray
    share: np.ndarray          # [Q, M, M] posterior probability that i is above j
    order: list[list[int]]     # per question, best first, ranked (evidenced) responses only
    rank: np.ndarray           # [Q, M] competition rank (1 = best, ties share), 0 where not ranked
    present: np.ndarray        # [Q, M] bool: ranked (appears in the judgments with weighted evidence)
    skill: np.ndarray          # [M] pooled model-level skill (the prior mean)
    prior_precision: float
    row_weight: np.ndarray     # per judgment row: honest + inverted weight
    annotators: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostics: list[dict] = field(default_factory=list)
    row_target: np.ndarray | None = None   # per row: P(model_a wins) as the fit reads it (inverted votes flipped)
    cov: np.ndarray | None = None          # [Q, M, M] Laplace posterior covariance
    prior_informative: bool = False
    unevidenced: list[tuple[int, int, str]] = field(default_factory=list)   # (question, model, reason)

    def draws(self, qi: int, n: int = DRAWS) -> np.ndarray:
        """[n, M] Laplace-posterior draws for question ``qi`` (-inf for unranked responses): a fixed
        function of the estimates (the normal variates come from one constant seed), so equal inputs
        give equal draws whatever the slot order or the build seed."""
        M = self.theta.shape[1]
        m = np.flatnonzero(self.present[qi])
        out = np.full((n, M), -np.inf)
        if len(m):
            z = _normal_variates(n, M)[:, : len(m)]
            L = np.linalg.cholesky(self.cov[qi][np.ix_(m, m)])
            out[:, m] = self.theta[qi, m] + z @ L.T
        return out


@lru_cache(maxsize=4)
def _normal_variates(n: int, m: int) -> np.ndarray:
    z = np.random.default_rng(DRAW_SEED).standard_normal((n, m))
    z.setflags(write=False)
    return z


@dataclass(frozen=True)
class _Rows:
    """Rows in canonical orientation (lo < hi) plus the fixed row -> pair map used by every refit."""

    y_lo: np.ndarray
    first_won: np.ndarray     # decisive and the winner sat in slot a
    pair_of_row: np.ndarray
    pairs: bt.Pairs


def _canonical(c: Coded) -> _Rows:
    lo = np.minimum(c.a, c.b)
    y_lo = np.where(c.a == lo, c.y, 1.0 - c.y)
    key = (c.q * c.n_models + lo) * c.n_models + np.maximum(c.a, c.b)
    uniq, inv = np.unique(key, return_inverse=True)
    qq, rest = np.divmod(uniq, c.n_models * c.n_models)
    pairs = bt.Pairs(qq, rest // c.n_models, rest % c.n_models, np.zeros(len(uniq)), np.zeros(len(uniq)))
    return _Rows(y_lo, c.y == 1.0, inv, pairs)


def _weighted(r: _Rows, w_h: np.ndarray, w_f: np.ndarray) -> bt.Pairs:
    n = len(r.pairs.q)
    w = np.bincount(r.pair_of_row, w_h + w_f, n)
    wy = np.bincount(r.pair_of_row, w_h * r.y_lo + w_f * (1.0 - r.y_lo), n)
    return bt.Pairs(r.pairs.q, r.pairs.i, r.pairs.j, w, wy)


def _global_skill(c: Coded, p: bt.Pairs, alpha: float = 0.01) -> np.ndarray:
    """Model-level BT over all questions (the prior mean's starting point)."""
    model = bt.aggregate(c.n_models, np.zeros(len(p.q), dtype=np.int64), p.i, p.j,
                         np.divide(p.wy, p.w, out=np.full(len(p.w), 0.5), where=p.w > 0), p.w)
    return bt.fit_newton(model, np.zeros((1, c.n_models)), alpha)[0][0]


def _pooled_skill(theta: np.ndarray, present: np.ndarray) -> np.ndarray:
    """skill[m] = mean of theta[q, m] over the questions m appears in (its MAP given the thetas)."""
    n = present.sum(axis=0)
    return np.where(n > 0, np.where(present, theta, 0.0).sum(axis=0) / np.maximum(n, 1), 0.0)


def _prior_precision(lam: float, present: np.ndarray, pooled: bool) -> np.ndarray | float:
    """Per response, the precision of the prior around the pooled skill, counting that skill itself is
    estimated: var = 1/lam + 1/(lam * n_m), n_m = the questions model m appears in. With a few
    questions the prior is wider (confidence is not borrowed from a skill seen twice)."""
    if not pooled:
        return lam
    n = np.maximum(present.sum(axis=0), 1)
    return np.broadcast_to(lam / (1.0 + 1.0 / n), present.shape)


def _subset(c: Coded, rows: np.ndarray, n_questions: int, q_new: np.ndarray) -> Coded:
    return Coded(q_new[c.q[rows]], c.a[rows], c.b[rows], c.y[rows], c.annotator[rows], n_questions,
                 c.n_models, c.n_annotators)


def choose_lambda(c: Coded, w_h: np.ndarray, w_f: np.ndarray, cfg: "DenoiseConfig") -> tuple[float, bool]:
    """(lambda, informative): the prior precision with the best K-fold held-out log-likelihood of the
    weighted votes, and whether the pooled prior predicts held-out votes better than a zero-mean prior
    at its own best precision. On at most ``cv_questions`` questions (a seeded subset; lambda is one
    number per build). Empirical Bayes on the Laplace posterior drifts to over-shrinkage on thin binary
    data (the PQL bias), so held-out likelihood decides."""
    from mr2bench.seeding import rng_for

    rng = rng_for(cfg.seed, "cv")
    Q = c.n_questions
    qs = np.sort(rng.choice(Q, cfg.cv_questions, replace=False)) if Q > cfg.cv_questions else np.arange(Q)
    q_new = np.full(Q, -1)
    q_new[qs] = np.arange(len(qs))
    rows = np.flatnonzero(q_new[c.q] >= 0)
    sub = _subset(c, rows, len(qs), q_new)
    r = _canonical(sub)
    wh, wf = w_h[rows], w_f[rows]
    fold = rng.integers(0, cfg.cv_folds, len(rows))
    scores = {}
    train = [_weighted(r, wh * (fold != k), wf * (fold != k)) for k in range(cfg.cv_folds)]
    # the prior mean is refitted on each fold's training votes: no held-out vote informs its own prior
    means = {"pooled": [np.tile(_global_skill(sub, t), (len(qs), 1)) for t in train],
             "zero": [np.zeros((len(qs), c.n_models))] * cfg.cv_folds}
    warm: dict = {}

    def cv(kind: str, lam: float) -> float:
        if (kind, lam) not in scores:
            ll = 0.0
            for k in range(cfg.cv_folds):
                theta, _ = bt.fit_newton(train[k], means[kind][k], lam, init=warm.get((kind, k)), tol=1e-6)
                warm[(kind, k)] = theta
                d = theta[sub.q, sub.a] - theta[sub.q, sub.b]
                te = fold == k
                # log P(vote) = w_h log s(+-d) + w_f log s(-+d), with ties as half-wins
                ll -= float(np.sum((wh * (np.logaddexp(0.0, d) - sub.y * d)
                                    + wf * (np.logaddexp(0.0, d) - (1.0 - sub.y) * d))[te]))
            scores[(kind, lam)] = ll
        return scores[(kind, lam)]

    grid = sorted(float(x) for x in cfg.prior_grid)
    best = {}
    for kind in means:
        vals = [cv(kind, lam) for lam in grid]
        k = int(np.argmax(vals))
        # one refinement: the geometric midpoints beside the best grid point
        near = (k - 1, k + 1) if kind == "pooled" else ()   # the zero-mean prior is only a yardstick
        cands = [grid[k]] + [float(np.sqrt(grid[k] * grid[j])) for j in near if 0 <= j < len(grid)]
        best[kind] = max(cands, key=lambda lam: (cv(kind, lam), -lam))
    return best["pooled"], bool(scores[("pooled", best["pooled"])] > scores[("zero", best["zero"])])


def _margin(c: Coded, theta: np.ndarray) -> np.ndarray:
    """theta_winner - theta_loser per decisive row (0 for ties); the same float for either slot order."""
    d_ab = theta[c.q, c.a] - theta[c.q, c.b]
    d_ba = theta[c.q, c.b] - theta[c.q, c.a]
    return np.where(c.y == 1.0, d_ab, np.where(c.y == 0.0, d_ba, 0.0))


def _posterior(theta: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cov = np.linalg.inv(H)
    var = np.diagonal(cov, axis1=1, axis2=2)
    gap_var = var[:, :, None] + var[:, None, :] - 2 * cov
    gap = theta[:, :, None] - theta[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = ndtr(gap / np.sqrt(np.maximum(gap_var, 1e-300)))
    M = theta.shape[1]
    share[:, np.arange(M), np.arange(M)] = 0.5
    return cov, share


def fit_posterior(c: Coded, cfg: DenoiseConfig) -> dict:
    """Members 1 and 2 alternated to a fixed point, then the Laplace posterior (member 3)."""
    Q, M = c.n_questions, c.n_models
    rows = _canonical(c)
    n_ann = max(c.n_annotators, 0)
    reason = degenerate(c.annotator, n_ann, c.y, rows.first_won, slots=cfg.slot_classes)
    zero = reason != ""
    known = c.annotator >= 0
    k = np.maximum(c.annotator, 0)
    w_h = np.where(known & zero[k], 0.0, 1.0) if n_ann else np.ones(len(c.q))
    w_f = np.zeros(len(c.q))
    state = initial_state(n_ann)
    present = np.zeros((Q, M), dtype=bool)
    present[c.q, c.a] = present[c.q, c.b] = True
    p = _weighted(rows, w_h, w_f)
    skill = _global_skill(c, p) if cfg.use_prior else np.zeros(M)
    lam = (cfg.prior_precision or 2.0) if cfg.use_prior else cfg.alpha
    theta, informative = None, False
    use_ann = cfg.use_annotators and n_ann >= 3
    iters = cfg.em_iters if (use_ann or cfg.use_prior) else 1
    for it in range(iters):
        if cfg.use_prior and cfg.prior_precision is None and it == min(CV_AFTER, iters - 1):
            lam, informative = choose_lambda(c, w_h, w_f, cfg)
        # inside EM a few warm-started Newton steps suffice; the final fit below converges fully
        theta, H = bt.fit_newton(p, np.tile(skill, (Q, 1)), lam, init=theta, max_iter=3)
        if use_ann:
            w_h, w_f, state = class_step(c.annotator, n_ann, _margin(c, theta), c.y, rows.first_won, state, zero,
                                         slots=cfg.slot_classes)
        if cfg.use_prior:
            skill = _pooled_skill(theta, present)
        p = _weighted(rows, w_h, w_f)
    weight = class_bt_share(state.post, state.eps, state.rho)
    off = zero | (weight < cfg.drop_below) if use_ann else zero
    if use_ann:
        w_h = np.where(known & off[k], 0.0, w_h)
        w_f = np.where(known & off[k], 0.0, w_f)
        p = _weighted(rows, w_h, w_f)
    theta, H = bt.fit_newton(p, np.tile(skill, (Q, 1)), _prior_precision(lam, present, cfg.use_prior), init=theta)
    cov, share = _posterior(theta, H)
    ann = (class_report(c.annotator, n_ann, c.y, rows.first_won, _margin(c, theta), state.post, weight, PROFILES,
                        reason, off)
           if n_ann else {})
    if ann and not use_ann:   # too few annotators to tell classes apart: every vote counts 1
        ann["weight"] = np.where(zero, 0.0, 1.0)
        ann["status"] = np.where(zero, "dropped", "kept").astype(object)
    return {"theta": theta, "cov": cov, "share": share, "skill": skill, "lam": lam, "w_h": w_h, "w_f": w_f,
            "pairs": p, "present": present, "annotators": ann,
            "informative": informative}


def _tie_groups(order: list[int], share: np.ndarray, conf: float) -> list[int]:
    """Competition ranks along ``order``: a response joins the current tie group unless the group's
    first response is above it with posterior probability at least ``conf``."""
    ranks, head = [], 0
    for k, v in enumerate(order):
        if k and share[order[head], v] >= conf:
            head = k
        ranks.append(head + 1)
    return ranks


def _components(Q: int, M: int, p: bt.Pairs, ranked: np.ndarray) -> np.ndarray:
    """Per question: connected components of the weighted comparison graph over ranked responses."""
    use = (p.w > 0) & ranked[p.q, p.i] & ranked[p.q, p.j]
    u, v = p.q[use] * M + p.i[use], p.q[use] * M + p.j[use]
    adj = coo_matrix((np.ones(len(u)), (u, v)), shape=(Q * M, Q * M))
    labels = connected_components(adj, directed=False)[1].reshape(Q, M)
    out = np.zeros(Q, dtype=np.int64)
    for qi in range(Q):
        out[qi] = len(np.unique(labels[qi][ranked[qi]]))
    return out


def _vote_matrices(c: Coded, w: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[Q, M, M] weighted wins of i over j as the fit reads the votes (inverted votes flipped, tie = half
    each way)."""
    Q, M = c.n_questions, c.n_models
    flat = np.bincount((c.q * M + c.a) * M + c.b, w * target, Q * M * M)
    flat += np.bincount((c.q * M + c.b) * M + c.a, w * (1.0 - target), Q * M * M)
    return flat.reshape(Q, M, M)


def _cycles3(A: np.ndarray) -> np.ndarray:
    A = (A > 0).astype(np.float64)
    return np.round(np.einsum("qij,qjk,qki->q", A, A, A) / 3).astype(np.int64)


def denoise(c: Coded, cfg: DenoiseConfig, progress=None) -> Denoised:
    """Rankings, confidence and per-question diagnostics (the builder's filters read ``judgments``,
    ``components`` and ``prior_links``)."""
    Q, M = c.n_questions, c.n_models
    f = fit_posterior(c, cfg)
    theta, share, present = f["theta"], f["share"], f["present"]
    w = f["w_h"] + f["w_f"]
    target = np.where(w > 0, (f["w_h"] * c.y + f["w_f"] * (1.0 - c.y)) / np.maximum(w, 1e-300), c.y)
    evidence = np.zeros((Q, M))
    np.add.at(evidence, (c.q, c.a), w)
    np.add.at(evidence, (c.q, c.b), w)
    ranked = present & (evidence >= cfg.min_evidence)
    skill, lam = f["skill"], f["lam"]
    informative = bool(f["informative"])
    comps = _components(Q, M, f["pairs"], ranked)
    votes = _vote_matrices(c, w, target)
    net = np.clip(votes - votes.transpose(0, 2, 1), 0.0, None)
    W = np.clip(2 * share - 1, 0.0, None) * (ranked[:, :, None] & ranked[:, None, :])
    vote_cyc, graph_cyc = _cycles3(net * (ranked[:, :, None] & ranked[:, None, :])), _cycles3(W)
    by_q = np.bincount(c.q, minlength=Q)
    wq = np.bincount(c.q, w, Q)
    rank = np.zeros((Q, M), dtype=np.int64)
    orders, diags, unev = [], [], []
    for qi in (progress(range(Q)) if progress else range(Q)):
        models = np.flatnonzero(ranked[qi])
        order = [int(m) for m in models[np.lexsort((models, -theta[qi, models]))]]
        for m, r in zip(order, _tie_groups(order, share[qi], cfg.tie_confidence)):
            rank[qi, m] = r
        orders.append(order)
        unev += [(qi, int(m), "no_weighted_evidence") for m in np.flatnonzero(present[qi] & ~ranked[qi])]
        sub = net[qi][np.ix_(order, order)]
        back = np.tril(sub, -1)           # votes of a lower-placed response over a higher one
        back[back < 1e-9] = 0.0           # net weights that cancel up to float rounding are no edge
        total = float(sub.sum())
        diags.append({
            "judgments": int(by_q[qi]), "weighted_judgments": float(wq[qi]), "models": int(len(models)),
            "components": int(comps[qi]),
            "prior_links": bool(comps[qi] > 1 and informative and cfg.rank_disconnected),
            "unevidenced": int((present[qi] & ~ranked[qi]).sum()),
            "vote_cycles3": int(vote_cyc[qi]), "graph_cycles3_before": int(graph_cyc[qi]),
            "graph_cycles3_after": int(graph_cyc[qi]), "removed_arcs": int((back > 0).sum()),
            "removed_weight_share": float(back.sum() / total) if total > 0 else 0.0,
            "fas_methods": {"map_order": 1} if len(order) > 1 else {},
            "tie_groups": int(len(set(rank[qi, models]))),
        })
    sd = np.sqrt(np.diagonal(f["cov"], axis1=1, axis2=2))
    nan = lambda x: np.where(ranked, x, np.nan)  # noqa: E731
    return Denoised(nan(theta), nan(theta - 1.96 * sd), nan(theta + 1.96 * sd), share, orders, rank, ranked,
                    skill, float(lam), w, f["annotators"], diags, row_target=target, cov=f["cov"],
                    prior_informative=informative, unevidenced=unev)


__all__ = ["PROFILES", "Coded", "DenoiseConfig", "Denoised", "denoise", "fit_posterior"]
