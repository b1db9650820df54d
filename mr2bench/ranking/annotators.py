"""Annotator reliability from agreement with a leave-one-group-out consensus.

Model (a NoisyBT-style check): annotator k votes for model_a with probability
sigmoid(c_k * delta + b_k), where delta = theta_a - theta_b from a Bradley-Terry consensus fitted
WITHOUT k's group. c_k is competence (1 ~ typical, 0 = coin flips, < 0 = adversarial), b_k position
bias toward the first slot. Each (c_k, b_k) gets a Gaussian prior (c ~ N(1, 1/PRIOR), b ~ N(0, 1/PRIOR))
so that an annotator with a handful of votes keeps a weight near 1.

Weight rule (documented in the card): weight_k = clip(c_k / c_ref, 0, 1), c_ref = the vote-weighted
median competence; weight < ``drop_below`` -> dropped (weight 0); weight < 0.9 -> down-weighted.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

PRIOR = 2.0


def fit_competence(ann: np.ndarray, n_ann: int, delta: np.ndarray, vote_a: np.ndarray,
                   iters: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Per-annotator (c, b) by vectorised Newton steps on the penalised logistic likelihood."""
    c, b = np.ones(n_ann), np.zeros(n_ann)
    for _ in range(iters):
        p = expit(c[ann] * delta + b[ann])
        r = vote_a - p
        h = p * (1 - p)
        gc = np.bincount(ann, r * delta, n_ann) - PRIOR * (c - 1)
        gb = np.bincount(ann, r, n_ann) - PRIOR * b
        hcc = np.bincount(ann, h * delta * delta, n_ann) + PRIOR
        hbb = np.bincount(ann, h, n_ann) + PRIOR
        hcb = np.bincount(ann, h * delta, n_ann)
        det = hcc * hbb - hcb * hcb
        c = c + (hbb * gc - hcb * gb) / det
        b = b + (hcc * gb - hcb * gc) / det
    return c, b


def annotator_stats(ann: np.ndarray, n_ann: int, delta: np.ndarray, y: np.ndarray, *,
                    drop_below: float = 0.25) -> dict[str, np.ndarray]:
    """Statistics and weights for annotators 0..n_ann-1 (rows with ann < 0 are anonymous, skipped).

    ``delta`` = consensus theta_a - theta_b for each row (leave-group-out), ``y`` = 1/0/0.5 for
    model_a / model_b / tie-or-both-bad.
    """
    known = ann >= 0
    a, d, yy = ann[known], delta[known], y[known]
    decisive = yy != 0.5
    n = np.bincount(a, minlength=n_ann).astype(float)
    nd = np.bincount(a[decisive], minlength=n_ann).astype(float)
    ties = n - nd
    a_votes = np.bincount(a[decisive], (yy[decisive] == 1.0).astype(float), n_ann)
    agree = np.bincount(a[decisive], ((d[decisive] > 0) == (yy[decisive] == 1.0)).astype(float), n_ann)
    c, b = fit_competence(a[decisive], n_ann, d[decisive], yy[decisive])
    with np.errstate(invalid="ignore", divide="ignore"):
        order = np.argsort(c)
        cum = np.cumsum(nd[order])
        c_ref = c[order][np.searchsorted(cum, cum[-1] / 2)] if cum.size and cum[-1] > 0 else 1.0
        c_ref = c_ref if c_ref > 0 else 1.0
        weight = np.clip(c / c_ref, 0.0, 1.0)
    weight[weight < drop_below] = 0.0
    status = np.where(weight == 0, "dropped", np.where(weight < 0.9, "down-weighted", "kept"))
    safe = np.maximum(nd, 1)
    return {"votes": n, "decisive": nd, "tie_rate": ties / np.maximum(n, 1), "a_share": a_votes / safe,
            "agreement": agree / safe, "competence": c, "position_bias": b, "weight": weight,
            "status": status}
