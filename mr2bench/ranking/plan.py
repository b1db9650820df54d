"""Active collection: which (question, model pair) votes to ask for next, so more questions yield a
separable 4-response item (the build's ``--separation``) per vote.

The objective is the benchmark's yield at label precision >= separation, not global ranking accuracy.
A question's state is
S = max over best candidates b (the top 3 by posterior mean) of P(b above its three surest inferiors at
once), read from the same fixed Laplace-posterior draws the build uses, capped by the three pairwise
shares (the build needs both). A question is planned up to S >= aim (default a fifth of the way
from the separation to 1: 0.92 at 0.9) and one that yields an item with S >= aim gets no requests. The
margin absorbs optional-stopping bias: over bench_plan seeds 0-2 the final label precision is 0.92-1.00
(the former halfway aim, 0.95, dips as low mid-run), and the halfway aim spent ~20% more votes.

One vote on (i, j) adds Fisher information f = w * p(1 - p) (p = sigmoid(theta_i - theta_j), w = the
mean weight a vote of this crowd gets) along e_i - e_j; the covariance shrinks by Sherman-Morrison with
the mean held fixed. A request's ``gain`` = the increase of S that one vote buys. Questions are served
in order of ``votes_to_separation`` (n*): how many such votes, each on the currently limiting pair, S
needs to reach the separation (the cheapest yield first; a coin-flip question whose mean gap is ~0 has
n* beyond the horizon and waits). After each pick the question's covariance is updated as if the vote
had arrived, so requests spread over pairs and stop once the question would yield.
Left/right: an Euler-tour orientation of each batch's pairs puts every model left within one of half
its requests in that batch; path reversals then steer the batches so the whole plan stays near balance
too (within 1 in ~90% of random plans, never beyond 3 in the tests).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import expit, ndtr

from .ensemble import DRAWS, Denoised, _normal_variates

CANDIDATES = 3      # best candidates per question
SPARE = 1           # inferiors beyond the three an item needs, as alternative pairs
HORIZON = 40        # votes_to_separation beyond this reads as "not reachable by more votes now"
AIM_MARGIN = 0.2    # default aim = separation + AIM_MARGIN * (1 - separation)


@dataclass(frozen=True)
class PlanConfig:
    budget: int
    separation: float = 0.9
    per_question_cap: int = 8        # requests per question in one batch
    per_pair_cap: int = 3            # requests per (question, model pair) in one batch
    batch: int | None = None         # requests per batch (None: the whole budget is one batch)
    seed: int = 0
    target: float | None = None      # S a question is planned up to (None: see AIM_MARGIN)

    @property
    def aim(self) -> float:
        """Stopping exactly at the separation leaves items whose best is right only ~separation of the
        time before optional-stopping bias; a small margin above it keeps label precision >= separation
        without buying certainty the yield does not need (each step toward 1 costs more votes)."""
        return self.target if self.target is not None else self.separation + AIM_MARGIN * (1.0 - self.separation)


@dataclass(frozen=True)
class Request:
    question: int
    left: int
    right: int
    gain: float                 # increase of the question's separation probability from this vote
    separation_prob: float      # the question's state when this request was chosen (after earlier picks)
    votes_to_separation: int    # n* at that point (HORIZON + 1: not reachable by votes alone now)
    best: int                   # the question's best candidate at that point
    batch: int


@dataclass
class _Question:
    qi: int
    idx: np.ndarray      # ranked model codes of this question
    theta: np.ndarray
    cov: np.ndarray
    allowed: np.ndarray  # [n] bool: model may be asked about


def _chol(cov: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:   # rounding after many rank-one updates: a tiny ridge
        return np.linalg.cholesky(cov + 1e-9 * np.eye(len(cov)))


def _others(theta: np.ndarray, cov: np.ndarray, b: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k responses b is most surely above, and those pairwise shares."""
    var = np.diag(cov)
    gv = np.maximum(var[b] + var - 2 * cov[b], 1e-300)
    share = ndtr((theta[b] - theta) / np.sqrt(gv))
    share[b] = -1.0
    o = np.lexsort((np.arange(len(theta)), -share))[:k]
    return o, share[o]


def state(theta: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[float, int, np.ndarray]:
    """(S, best, its three others) for one question's ranked responses (local indices)."""
    n = len(theta)
    draws = theta + z[:, :n] @ _chol(cov).T
    best_s, best_b, best_o = -1.0, -1, np.zeros(0, dtype=np.int64)
    for b in np.lexsort((np.arange(n), -theta))[:CANDIDATES]:
        o, sh = _others(theta, cov, int(b), 3)
        joint = float(np.mean(np.all(draws[:, [b]] > draws[:, o], axis=1)))
        s = min(joint, float(sh.min()))
        if s > best_s:
            best_s, best_b, best_o = s, int(b), o
    return best_s, best_b, best_o


def _updated(cov: np.ndarray, theta: np.ndarray, i: int, j: int, w: float) -> np.ndarray:
    """Covariance after one vote on (i, j) (Sherman-Morrison, mean held fixed)."""
    p = expit(theta[i] - theta[j])
    f = w * p * (1 - p)
    cu = cov[:, i] - cov[:, j]
    return cov - np.outer(cu, cu) * (f / (1.0 + f * (cu[i] - cu[j])))


def _pairs(q: _Question) -> list[tuple[int, int]]:
    """Candidate pairs: each best candidate with its surest inferiors (+ a spare), askable models only."""
    out = set()
    for b in np.lexsort((np.arange(len(q.theta)), -q.theta))[:CANDIDATES]:
        o, _ = _others(q.theta, q.cov, int(b), 3 + SPARE)
        for j in o:
            if q.allowed[b] and q.allowed[j]:
                out.add((min(int(b), int(j)), max(int(b), int(j))))
    return sorted(out)


def _votes_to_separation(q: _Question, sep: float, w: float, z: np.ndarray) -> int:
    """Votes on the limiting pair (best vs its least sure inferior), one at a time, until S >= sep."""
    cov = q.cov
    for n in range(1, HORIZON + 1):
        s, b, o = state(q.theta, cov, z)
        if s >= sep:
            return n - 1
        _, sh = _others(q.theta, cov, b, 3)
        j = int(o[int(np.argmin(sh))])
        cov = _updated(cov, q.theta, b, j, w)
    return HORIZON + 1


@dataclass
class _Scored:
    s: float
    best: int
    n_star: int
    pair: tuple[int, int] | None
    gain: float


def _score(q: _Question, sep: float, w: float, z: np.ndarray, blocked: set[tuple[int, int]],
           tiebreak: np.ndarray) -> _Scored:
    s, b, _ = state(q.theta, q.cov, z)
    if s >= sep:
        return _Scored(s, b, 0, None, 0.0)
    best_pair, best_key = None, (-np.inf, 0.0)
    for i, j in _pairs(q):
        if (int(q.idx[i]), int(q.idx[j])) in blocked:
            continue
        key = (state(q.theta, _updated(q.cov, q.theta, i, j, w), z)[0] - s, float(tiebreak[q.idx[i], q.idx[j]]))
        if key > best_key:
            best_pair, best_key = (i, j), key
    return _Scored(s, b, _votes_to_separation(q, sep, w, z), best_pair, float(max(best_key[0], 0.0)))


def separation_probs(d: Denoised) -> np.ndarray:
    """[Q] the state S of every question (NaN where fewer than 4 responses are ranked)."""
    z = _normal_variates(DRAWS, d.theta.shape[1])
    out = np.full(d.theta.shape[0], np.nan)
    for qi in np.flatnonzero(d.present.sum(axis=1) >= 4):
        idx = np.flatnonzero(d.present[qi])
        out[qi] = state(d.theta[qi, idx], d.cov[qi][np.ix_(idx, idx)], z)[0]
    return out


def open_questions(d: Denoised, yielding: np.ndarray, excluded_q: np.ndarray, aim: float) -> np.ndarray:
    """Questions more votes can help: >= 4 ranked responses, not excluded, and not already done
    (yielding an item with S >= aim)."""
    s = separation_probs(d)
    return ~excluded_q & (d.present.sum(axis=1) >= 4) & ~(yielding & (np.nan_to_num(s) >= aim))


def plan_requests(d: Denoised, yielding: np.ndarray, excluded_q: np.ndarray, excluded_m: np.ndarray,
                  vote_weight: float, cfg: PlanConfig) -> list[Request]:
    """Up to ``cfg.budget`` requests, in the order they should be asked (fewer if the caps leave no pair).

    Greedy: the open question with the fewest votes_to_separation (then the larger gain, then a seeded
    tie-break) gets its best pair; its covariance is updated as if the vote had come, and only its
    score is recomputed. A batch closes at ``cfg.batch`` requests or when its caps leave nothing."""
    from collections import Counter

    from mr2bench.seeding import rng_for

    Q, M = d.theta.shape
    z = _normal_variates(DRAWS, M)
    noise = rng_for(cfg.seed, "plan-tiebreak").random((Q, M, M))
    noise = np.minimum(noise, noise.transpose(0, 2, 1))   # symmetric in the pair
    qs = [int(qi) for qi in np.flatnonzero(open_questions(d, yielding, excluded_q, cfg.aim))]
    qstate = {}
    for qi in qs:
        idx = np.flatnonzero(d.present[qi])
        qstate[qi] = _Question(qi, idx, d.theta[qi, idx], d.cov[qi][np.ix_(idx, idx)].copy(), ~excluded_m[idx])
    size = cfg.batch or cfg.budget
    out: list[Request] = []
    k, per_q, per_pair, cache = 0, Counter(), Counter(), {}
    while len(out) < cfg.budget:
        for qi in qs:
            if qi not in cache and per_q[qi] < cfg.per_question_cap:
                blocked = {(a, b) for (q2, a, b), n in per_pair.items() if q2 == qi and n >= cfg.per_pair_cap}
                cache[qi] = _score(qstate[qi], cfg.aim, vote_weight, z, blocked, noise[qi])
        live = [qi for qi in cache if cache[qi].pair is not None and per_q[qi] < cfg.per_question_cap]
        if not live:
            if not per_q:
                break   # nothing askable even in a fresh batch
            k, per_q, per_pair, cache = k + 1, Counter(), Counter(), {}
            continue
        qi = max(live, key=lambda x: (-cache[x].n_star, cache[x].gain, noise[x, 0, 0]))
        sc, q = cache.pop(qi), qstate[qi]
        i, j = sc.pair
        a, b = int(q.idx[i]), int(q.idx[j])
        out.append(Request(qi, a, b, sc.gain, sc.s, sc.n_star, int(q.idx[sc.best]), k))
        q.cov = _updated(q.cov, q.theta, i, j, vote_weight)
        per_q[qi] += 1
        per_pair[(qi, a, b)] += 1
        if sum(per_q.values()) >= size:
            k, per_q, per_pair, cache = k + 1, Counter(), Counter(), {}
    return orient_batches(out)


def orient_batches(reqs: list[Request]) -> list[Request]:
    """``orient`` batch by batch (a campaign sends a batch and plans again, so each batch is balanced on
    its own: every model left within one of half its requests in the batch), then steered toward the
    running balance: reversing a directed path from a model one-up in this batch to one one-down swaps
    their surpluses and changes no other model's, so such paths are reversed while that brings the
    running left-minus-right counts nearer zero."""
    out: list[Request] = []
    running: dict[int, int] = {}
    for k in sorted({r.batch for r in reqs}):
        part = _steer(orient([r for r in reqs if r.batch == k]), running)
        for r in part:
            running[r.left] = running.get(r.left, 0) + 1
            running[r.right] = running.get(r.right, 0) - 1
        out += part
    return out


def _steer(part: list[Request], running: dict[int, int]) -> list[Request]:
    """Path reversals (see orient_batches) that lower sum |running + this batch's surplus|; each one
    lowers it by at least 2, so this ends."""
    part = list(part)
    while True:
        bal: dict[int, int] = {}
        out_edges: dict[int, list[int]] = {}
        for i, r in enumerate(part):
            bal[r.left] = bal.get(r.left, 0) + 1
            bal[r.right] = bal.get(r.right, 0) - 1
            out_edges.setdefault(r.left, []).append(i)
        cost = lambda m, b: abs(running.get(m, 0) + b)  # noqa: E731
        best = None
        for x in sorted((m for m, b in bal.items() if b == 1), key=lambda m: (-running.get(m, 0), m)):
            via, queue = {x: -1}, [x]
            for v in queue:   # breadth-first along left -> right
                for i in out_edges.get(v, []):
                    u = part[i].right
                    if u not in via:
                        via[u] = i
                        queue.append(u)
            for y in sorted((m for m in via if bal.get(m) == -1), key=lambda m: (running.get(m, 0), m)):
                gain = cost(x, 1) + cost(y, -1) - cost(x, -1) - cost(y, 1)
                if gain > 0:
                    best = (x, y, via)
                    break
            if best:
                break
        if best is None:
            return part
        x, y, via = best
        v = y
        while v != x:   # reverse the path x -> ... -> y
            i = via[v]
            v = part[i].left
            part[i] = replace(part[i], left=part[i].right, right=part[i].left)


def orient(reqs: list[Request]) -> list[Request]:
    """Left/right by an Euler-tour orientation (odd-degree models paired through a virtual vertex), so
    each model sits left within one of half its requests; the request order is unchanged."""
    if not reqs:
        return reqs
    virtual = -1
    adj: dict[int, list[tuple[int, int]]] = {}
    edges: list[tuple[int, int]] = []
    for r in reqs:
        edges.append((r.left, r.right))
    deg: dict[int, int] = {}
    for a, b in edges:
        deg[a] = deg.get(a, 0) + 1
        deg[b] = deg.get(b, 0) + 1
    for m in sorted(v for v, n in deg.items() if n % 2):
        edges.append((m, virtual))
    for e, (a, b) in enumerate(edges):
        adj.setdefault(a, []).append((b, e))
        adj.setdefault(b, []).append((a, e))
    used = [False] * len(edges)
    direction: dict[int, tuple[int, int]] = {}
    ptr = {v: 0 for v in adj}
    for start in sorted(adj):
        stack = [start]
        while stack:   # Hierholzer: walk unused edges, orienting each the way it is walked
            v = stack[-1]
            while ptr[v] < len(adj[v]) and used[adj[v][ptr[v]][1]]:
                ptr[v] += 1
            if ptr[v] == len(adj[v]):
                stack.pop()
                continue
            u, e = adj[v][ptr[v]]
            used[e] = True
            direction[e] = (v, u)
            stack.append(u)
    return [replace(r, left=direction[e][0], right=direction[e][1]) for e, r in enumerate(reqs)]
