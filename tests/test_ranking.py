"""The denoising core against independently computed values (choix, brute force, networkx)."""
from __future__ import annotations


import choix
import networkx as nx
import numpy as np
import pytest

from mr2bench.ranking import bradley_terry as bt
from mr2bench.ranking.coding import encode
from mr2bench.ranking.ensemble import DenoiseConfig, _tie_groups, denoise
from mr2bench.ranking.feedback_arc import (backward_weight, brute_force_order, els_order,
                                           min_feedback_arc_set)
from mr2bench.ranking.graph import net_graph, three_cycles, win_matrix
from mr2bench.ranking.recovery import tau_b, top1
from mr2bench.ranking.sampling import sample_variants
from mr2bench.ranking.simulate import pairwise_arena


def test_bt_recovers_planted_order_and_matches_choix():
    rng = np.random.default_rng(0)
    truth = np.array([1.5, 0.9, 0.3, -0.2, -0.8, -1.7])
    i = rng.integers(0, 6, 6000)
    j = (i + rng.integers(1, 6, 6000)) % 6
    won = rng.random(6000) < 1 / (1 + np.exp(truth[j] - truth[i]))
    theta = bt.fit(6, bt.dedupe(bt.make_outcomes(i, j, won.astype(float)))[0], alpha=1e-6)
    assert list(np.argsort(-theta)) == [0, 1, 2, 3, 4, 5]
    data = [(a, b) if w else (b, a) for a, b, w in zip(i, j, won)]
    ref = choix.ilsr_pairwise(6, data, alpha=0.0)
    np.testing.assert_allclose(theta - theta.mean(), ref - ref.mean(), atol=2e-3)


def test_newton_blocks_match_choix_and_the_lbfgs_fit():
    # the production fitter: two questions solved as one batch, each equal to its own choix MLE
    rng = np.random.default_rng(4)
    truth = np.array([[1.2, 0.4, -0.3, -1.1], [-0.5, 0.9, 0.1, -0.6]])
    q = rng.integers(0, 2, 8000)
    i = rng.integers(0, 4, 8000)
    j = (i + rng.integers(1, 4, 8000)) % 4
    won = (rng.random(8000) < 1 / (1 + np.exp(truth[q, j] - truth[q, i]))).astype(float)
    theta, H = bt.fit_newton(bt.aggregate(4, q, i, j, won, np.ones(8000)), np.zeros((2, 4)), 1e-8)
    for k in range(2):
        sel = q == k
        ref = choix.ilsr_pairwise(4, [(a, b) if w else (b, a) for a, b, w in zip(i[sel], j[sel], won[sel])], alpha=0.0)
        np.testing.assert_allclose(theta[k] - theta[k].mean(), ref - ref.mean(), atol=2e-3)
        lb = bt.fit(4, bt.make_outcomes(i[sel], j[sel], won[sel]), alpha=1e-8, tol=1e-10)
        np.testing.assert_allclose(theta[k] - theta[k].mean(), lb - lb.mean(), atol=1e-4)
    assert np.all(np.linalg.eigvalsh(H) > 0)     # the Laplace precision is positive definite


def test_ties_are_half_wins_like_choix_doubling():
    # A beats B twice, B beats C once, A-C tie twice: ours with y = 0.5 vs choix with the doubling trick
    rows = [(0, 1, 1.0), (0, 1, 1.0), (1, 2, 1.0), (0, 2, 0.5), (2, 0, 0.5)]
    i, j, y = map(np.array, zip(*rows))
    theta = bt.fit(3, bt.make_outcomes(i, j, y), alpha=1e-8, tol=1e-10)
    data = []
    for a, b, yy in rows:
        data += [(a, b), (a, b)] if yy == 1 else [(a, b), (b, a)]
    ref = choix.opt_pairwise(3, data, alpha=1e-8)
    # choix doubles every observation: same MLE as half-wins at weight 1
    np.testing.assert_allclose(theta - theta.mean(), ref - ref.mean(), atol=1e-3)
    only_ties = bt.fit(2, bt.make_outcomes([0, 1], [1, 0], [0.5, 0.5]), alpha=0.01)
    assert only_ties[0] == pytest.approx(only_ties[1])


def test_dedupe_sums_weights():
    o = bt.make_outcomes([0, 0, 1, 0], [1, 1, 0, 1], [1, 1, 0.5, 0], [1, 2, 1, 1])
    u, inv = bt.dedupe(o)
    assert len(u) == 3 and float(u.w.sum()) == 5.0
    assert float(u.w[inv[0]]) == 3.0


def test_weighted_three_cycle_loses_exactly_its_lightest_edge():
    W = np.zeros((3, 3))
    W[0, 1], W[1, 2], W[2, 0] = 3.0, 2.0, 0.5
    r = min_feedback_arc_set(W)
    assert r.removed == [(2, 0)] and r.removed_weight == 0.5
    assert r.order == [0, 1, 2]


@pytest.mark.parametrize("seed", range(25))
def test_exact_pruning_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 9))
    W = rng.random((n, n)) * (rng.random((n, n)) < 0.7)
    np.fill_diagonal(W, 0)
    best = backward_weight(W, brute_force_order(W))
    for kwargs in ({}, {"dp_max": 0}):  # subset DP, then the MILP on the same graph
        r = min_feedback_arc_set(W, **kwargs)
        assert r.removed_weight == pytest.approx(best, abs=1e-9)
        assert backward_weight(W, r.order) == pytest.approx(best, abs=1e-9)
        kept = W.copy()
        for u, v in r.removed:
            kept[u, v] = 0
        assert three_cycles(kept) == 0 and nx.is_directed_acyclic_graph(nx.DiGraph(kept))
    assert backward_weight(W, els_order(W)) >= best - 1e-9


def test_solver_switch_by_component_size():
    rng = np.random.default_rng(3)
    W = rng.random((10, 10))
    np.fill_diagonal(W, 0)
    assert min_feedback_arc_set(W).methods == {"dp": 1}
    assert min_feedback_arc_set(W, dp_max=4).methods == {"milp": 1}
    assert min_feedback_arc_set(W, dp_max=4, milp_max=5).methods == {"els": 1}


def test_three_cycles_match_networkx_and_net_graph():
    rng = np.random.default_rng(1)
    A = (rng.random((9, 9)) < 0.4).astype(float)
    np.fill_diagonal(A, 0)
    ref = sum(1 for c in nx.simple_cycles(nx.DiGraph(A), length_bound=3) if len(c) == 3)
    assert three_cycles(A) == ref
    M = win_matrix(2, np.array([0, 0, 1]), np.array([1, 1, 0]), np.array([1.0, 0.5, 1.0]), np.ones(3))
    assert M[0, 1] == 1.5 and M[1, 0] == 1.5 and net_graph(M).sum() == 0.0


def test_metrics_by_hand():
    assert tau_b(np.array([1, 2, 3]), np.array([1, 2, 3])) == pytest.approx(1.0)
    assert tau_b(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    # pairs: (1,2) tied in est; (1,3) and (2,3) concordant -> (2 - 0) / sqrt(3 * 2)
    assert tau_b(np.array([1, 2, 3]), np.array([1, 1, 3])) == pytest.approx(2 / np.sqrt(6))
    assert top1(np.array([0.1, 0.9, 0.5]), np.array([3, 2, 1])) == 0.0
    assert top1(np.array([0.1, 0.9, 0.5]), np.array([2, 2, 1])) == 0.5


def test_tie_groups_follow_the_group_head():
    share = np.full((4, 4), 0.5)
    share[0, 2] = share[0, 3] = 0.95
    share[2, 3] = 0.6
    assert _tie_groups([0, 1, 2, 3], share, 0.9) == [1, 1, 3, 3]


def test_sampling_balanced_distinct_and_separated():
    order = list(range(8))
    share = np.array([[0.5 if a == b else (0.97 if a < b else 0.03) for b in range(8)] for a in range(8)])
    rank = np.arange(1, 9)
    rng = np.random.default_rng(0)
    variants = sample_variants(order, rank, share, 4, separation=0.9, rng=rng, slot_start=1)
    assert len(variants) == 4 and len({frozenset(v.models) for v in variants}) == 4
    assert [v.best_slot for v in variants] == [1, 2, 3, 0]
    for v in variants:
        best = v.models[v.rankings.index(1)]
        assert v.rankings.count(1) == 1 and all(share[best, m] >= 0.9 for m in v.models if m != best)
        assert sorted(v.rankings) == [1, 2, 3, 4]
    none = sample_variants(order, rank, np.full((8, 8), 0.5), 3, separation=0.9, rng=rng, slot_start=0)
    assert none == []


def test_ensemble_reads_adversaries_inverted_and_beats_plain_bt():
    from mr2bench.ranking.reference_methods import plain_bt

    arena = pairwise_arena(5, n_questions=60, votes_per_question=150, n_annotators=30, setting="adversarial")
    c, cb = encode(arena.judgments)
    d = denoise(c, DenoiseConfig())
    kinds = dict(zip(arena.annotators.annotator_id, arena.annotators.kind))
    by = {k: [i for i, a in enumerate(cb.annotators) if kinds[a] == k] for k in ("good", "adversarial", "position")}
    status, inv, slot = d.annotators["status"], d.annotators["inverted"], d.annotators["slot_a"]
    assert by["adversarial"] and all(status[i] == "inverted" and inv[i] > 0.9 for i in by["adversarial"])
    assert np.mean(d.annotators["weight"][by["good"]]) > 0.8
    assert all(slot[i] > 0.9 for i in by["position"])     # position-biased: its slot-a votes discounted
    T = arena.truth.pivot(index="question_id", columns="model", values="theta").loc[cb.questions, cb.models].to_numpy()
    base = plain_bt(c)
    ens_tau = np.mean([tau_b(T[q, o], -np.arange(len(o))) for q, o in enumerate(d.order)])
    bt_tau = np.mean([tau_b(T[q][~np.isnan(base[q])], base[q][~np.isnan(base[q])]) for q in range(c.n_questions)])
    assert ens_tau > bt_tau + 0.1
    assert all(x["graph_cycles3_after"] == 0 for x in d.diagnostics)
