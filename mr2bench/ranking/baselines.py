"""The two reference methods the ensemble is measured against (benchmarks and tests only)."""
from __future__ import annotations

import choix
import networkx as nx
import numpy as np

from .ensemble import Coded
from .feedback_arc import els_order
from .graph import net_graph, win_matrix


def _per_question(c: Coded):
    by_q = np.argsort(c.q, kind="stable")
    bounds = np.searchsorted(c.q[by_q], np.arange(c.n_questions + 1))
    for qi in range(c.n_questions):
        rows = by_q[bounds[qi]:bounds[qi + 1]]
        models = np.unique(np.concatenate([c.a[rows], c.b[rows]]))
        loc = np.full(c.n_models, -1)
        loc[models] = np.arange(len(models))
        yield qi, rows, models, loc[c.a[rows]], loc[c.b[rows]]


def plain_bt(c: Coded, alpha: float = 0.01) -> np.ndarray:
    """choix ILSR per question; a decisive vote counts twice, a tie once each way (half-wins)."""
    out = np.full((c.n_questions, c.n_models), np.nan)
    for qi, rows, models, ia, ib in _per_question(c):
        y = c.y[rows]
        data = []
        for u, v, yy in zip(ia, ib, y):
            if yy == 1.0:
                data += [(u, v), (u, v)]
            elif yy == 0.0:
                data += [(v, u), (v, u)]
            else:
                data += [(u, v), (v, u)]
        out[qi, models] = choix.ilsr_pairwise(len(models), data, alpha=alpha)
    return out


def pged(c: Coded, seed: int = 0) -> np.ndarray:
    """PGED-style: net vote graph -> Eades-Lin-Smyth per SCC -> drop backward edges -> score by number
    of descendants in the DAG (equal counts broken by a seeded jitter)."""
    rng = np.random.default_rng(seed)
    out = np.full((c.n_questions, c.n_models), np.nan)
    for qi, rows, models, ia, ib in _per_question(c):
        W = net_graph(win_matrix(len(models), ia, ib, c.y[rows], np.ones(len(rows))))
        g = nx.DiGraph()
        g.add_nodes_from(range(len(models)))
        g.add_edges_from(zip(*np.nonzero(W)))
        for comp in nx.strongly_connected_components(g):
            if len(comp) > 1:
                mem = sorted(comp)
                order = els_order(W[np.ix_(mem, mem)])
                pos = {mem[k]: r for r, k in enumerate(order)}
                g.remove_edges_from([(u, v) for u in mem for v in mem if W[u, v] > 0 and pos[u] > pos[v]])
        desc = np.array([len(nx.descendants(g, v)) for v in range(len(models))], dtype=float)
        out[qi, models] = desc + 0.1 * rng.random(len(models))
    return out
