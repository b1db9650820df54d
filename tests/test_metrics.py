"""Metric cases from tests/data/metric_cases.json, cross-checked against scipy and brute force."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from mr2bench.metrics import (MetricAccumulator, Outcome, exact_order, item_outcome, kendall_tau_b,
                              pairwise_accuracy, top1_credit)

CASES = json.loads((Path(__file__).parent / "data" / "metric_cases.json").read_text())


@pytest.mark.parametrize("case", CASES["item_cases"], ids=lambda c: c["name"])
def test_item_case(case):
    r, s = case["rankings"], case["scores"]
    assert top1_credit(r, s, case["tie_policy"]) == pytest.approx(case["credit"])
    assert pairwise_accuracy(r, s) == pytest.approx(case["pairwise"])
    assert kendall_tau_b(r, s) == pytest.approx(case["tau"])
    assert exact_order(r, s) == case["exact"]


@pytest.mark.parametrize("case", CASES["aggregate_cases"], ids=lambda c: c["name"])
def test_aggregate_case(case):
    acc = MetricAccumulator(case["primary_metric"])
    for rec in case["records"]:
        acc.add(category=rec["category"], group=rec.get("group", str(id(rec))),
                outcome=Outcome(None if rec["credit"] is None else float(rec["credit"])),
                status=rec.get("status", "ok"))
    out = acc.compute(bootstrap_samples=50, bootstrap_key="case")
    assert out["metrics"] == pytest.approx(case["metrics"])
    assert out["per_category"] == case["per_category"]
    assert out["n_items"] == len(case["records"])
    assert out["n_scored"] == sum(r["credit"] is not None for r in case["records"])


def test_tau_and_split_credit_against_independent_computations():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(2, 6))
        ranks = [int(x) for x in rng.integers(1, 4, n)]
        ranks = [r - min(ranks) + 1 for r in ranks]
        scores = [float(x) for x in rng.integers(0, 3, n)]
        expected = kendalltau([-r for r in ranks], scores).statistic
        got = kendall_tau_b(ranks, scores)
        assert got == pytest.approx(0.0 if np.isnan(expected) else expected)
        # split credit = probability that a uniform tie-break among the top picks a gold-best
        top = [i for i, x in enumerate(scores) if x == max(scores)]
        assert top1_credit(ranks, scores, "split") == pytest.approx(
            np.mean([ranks[i] == 1 for i in top]))
        # pairwise by brute force over ordered pairs
        pairs = [(i, j) for i, j in itertools.permutations(range(n), 2) if ranks[i] < ranks[j]]
        if pairs:
            want = np.mean([1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0
                            for i, j in pairs])
            assert pairwise_accuracy(ranks, scores) == pytest.approx(want)


def test_parse_policies():
    r = (1, 2, 3, 4)
    assert item_outcome(r, None, "split", status="parse_failure", parse_policy="exclude").credit is None
    assert item_outcome(r, None, "split", status="parse_failure", parse_policy="wrong").credit == 0.0
    assert item_outcome(r, None, "split", status="parse_failure", parse_policy="seeded_random",
                        fallback_pick=0).credit == 1.0
    assert item_outcome(r, None, "split", status="parse_failure", parse_policy="seeded_random",
                        fallback_pick=2).credit == 0.0
    assert item_outcome(r, (4, 3, 2, 1), "split", status="failed").credit is None


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    def run():
        acc = MetricAccumulator("best_of_n")
        for i in range(300):
            acc.add(category="c", group=str(i), outcome=Outcome(float(i % 3 == 0), 0.5, 0.0, 0.0), status="ok")
        return acc.compute(bootstrap_samples=200, bootstrap_key="b")
    a, b = run(), run()
    assert a["ci95"] == b["ci95"]
    assert a["ci95"]["low"] < a["metrics"]["best_of_n"] < a["ci95"]["high"]
    assert a["metrics"]["best_of_n"] == pytest.approx(100 / 300)


def test_permutation_consistency_and_usage():
    acc = MetricAccumulator("accuracy")
    acc.add(category="", group="a", outcome=Outcome(1.0), status="ok", top_choices=[(0,), (0,), (0,)],
            usage={"prompt_tokens": 10, "cost": 0.5})
    acc.add(category="", group="b", outcome=Outcome(1.0), status="ok", top_choices=[(0,), (1,), (0,)],
            usage={"prompt_tokens": 5, "note": "x"})
    out = acc.compute(bootstrap_samples=10)
    assert out["metrics"]["permutation_consistency"] == 0.5
    assert out["usage"] == {"cost": 0.5, "prompt_tokens": 15}
