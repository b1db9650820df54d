"""Preference graphs as n x n matrices: net vote graph, directed 3-cycle counts, connectivity."""
from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components


def win_matrix(n: int, i: np.ndarray, j: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """M[u, v] = weighted wins of u over v (a tie gives half to each side)."""
    M = np.zeros((n, n))
    np.add.at(M, (i, j), w * y)
    np.add.at(M, (j, i), w * (1.0 - y))
    return M


def net_graph(M: np.ndarray) -> np.ndarray:
    """PGED's ensemble step: opposite edges cancel to their positive difference; equal counts vanish."""
    return np.clip(M - M.T, 0.0, None)


def three_cycles(W: np.ndarray) -> int:
    """Directed 3-cycles in the graph with an edge wherever W > 0: trace(A^3) / 3."""
    A = (np.asarray(W) > 0).astype(np.int64)
    return int(np.trace(A @ A @ A) // 3)


def n_components(n: int, i: np.ndarray, j: np.ndarray) -> int:
    """Weakly connected components of the comparison graph (isolated items count)."""
    from scipy.sparse import coo_matrix

    adj = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    return int(connected_components(adj, directed=False)[0])
