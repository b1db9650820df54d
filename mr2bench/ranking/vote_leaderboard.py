"""Model leaderboard from the denoised votes: ranked only within connected parts of the model graph.

Scores from different connected components are not comparable (ranking.md 1.4), so every model gets
its component (0 = the one with the most judgments), its score is centred within the component, and
its rank counts only models of the same component (Arena rule: 1 + the number of models whose lower
bound is above this model's upper bound). Intervals are 95 % Laplace intervals of the centred
model-level BT fit: they widen as a model's judgments get fewer. Models without weighted judgments in
the ranked questions are not on the board; they are returned apart with the reason.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from . import bradley_terry as bt

ALPHA = 0.01   # ridge that keeps undefeated models finite; its effect on the centred scores is tiny


def model_leaderboard(q, a, b, y, target, weight, keep_q: np.ndarray, models: list[str]
                      ) -> tuple[pd.DataFrame, list[dict]]:
    """(board, apart). ``target`` = the fitted reading of each row (P(model_a wins), inverted votes
    flipped), ``weight`` = its weight; rows of questions outside ``keep_q`` are ignored."""
    M = len(models)
    sel = keep_q[q] & (weight > 0)
    a, b, y, t, w = a[sel], b[sel], y[sel], target[sel], weight[sel]
    games = np.bincount(a, minlength=M) + np.bincount(b, minlength=M)
    wins = np.bincount(a, y == 1, M) + np.bincount(b, y == 0, M)
    ties = np.bincount(a, y == 0.5, M) + np.bincount(b, y == 0.5, M)
    on = games > 0
    adj = coo_matrix((np.ones(len(a)), (a, b)), shape=(M, M))
    labels = connected_components(adj, directed=False)[1]
    size = np.bincount(labels, games, labels.max() + 1)
    comp_order = np.argsort(-size, kind="stable")   # component 0 = most judgments
    comp = np.empty_like(labels)
    comp[comp_order] = np.arange(len(comp_order))
    comp = comp[labels]
    p = bt.aggregate(M, np.zeros(len(a), dtype=np.int64), a, b, t, w)
    theta, H = bt.fit_newton(p, np.zeros((1, M)), ALPHA)
    theta, cov = theta[0], np.linalg.inv(H[0])
    score, sd = np.zeros(M), np.zeros(M)
    for k in np.unique(comp[on]):
        idx = np.flatnonzero(on & (comp == k))
        P = np.eye(len(idx)) - 1.0 / len(idx)        # centring within the component
        score[idx] = P @ theta[idx]
        sd[idx] = np.sqrt(np.maximum(np.diag(P @ cov[np.ix_(idx, idx)] @ P), 0.0))
    lo, hi = score - 1.96 * sd, score + 1.96 * sd
    same = comp[:, None] == comp[None, :]
    rank = 1 + ((lo[None, :] > hi[:, None]) & same & on[None, :]).sum(axis=1)
    df = pd.DataFrame({"rank": rank, "model": models, "score": score, "ci_low": lo, "ci_high": hi,
                       "elo": 1000 + score * 400 / np.log(10), "judgments": games.astype(int),
                       "wins": wins.astype(int), "ties": ties.astype(int), "component": comp})[on]
    board = df.sort_values(["component", "score", "model"], ascending=[True, False, True]).reset_index(drop=True)
    apart = [{"model": models[m], "judgments": 0, "reason": "no_weighted_judgments_in_ranked_questions"}
             for m in np.flatnonzero(~on)]
    return board, apart
