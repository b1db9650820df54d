"""The paired test between two models: exact where it can be checked, and on the leaderboard."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from mr2bench.results import ItemRecord
from mr2bench.significance import Paired, compare, pair_records


def _rec(i: int, credit: float | None, category: str = "general") -> ItemRecord:
    return ItemRecord(id=f"q{i}", category=category, group=f"q{i}", rankings=(1, 2), permutation=(0, 1),
                      scores=None if credit is None else (1.0, 0.0), credit=credit,
                      status="ok" if credit is not None else "failed")


def _exact_p(a: np.ndarray, b: np.ndarray) -> float:
    """Every one of the 2^n sign flips, the definition of the two-sided paired permutation p-value."""
    d = a - b
    obs = abs(d.mean())
    flips = [abs(np.mean([x if s else -x for x, s in zip(d, signs)])) >= obs - 1e-12
             for signs in itertools.product((True, False), repeat=d.size)]
    return float(np.mean(flips))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_p_value_matches_exact_enumeration(seed):
    rng = np.random.default_rng(seed)
    a = (rng.random(12) < 0.8).astype(float)
    b = (rng.random(12) < 0.4).astype(float)
    res = compare(Paired(a, b, np.zeros(12, dtype=np.int64), 0), macro=False, key=("t", str(seed)), samples=4000)
    assert res["p_value"] == pytest.approx(_exact_p(a, b), abs=0.03)  # Monte Carlo error of 4000 draws
    assert res["diff"] == pytest.approx(a.mean() - b.mean())


def test_equal_models_are_not_significant_and_a_clear_gap_is():
    rng = np.random.default_rng(3)
    a = (rng.random(600) < 0.7).astype(float)
    same = compare(Paired(a, a.copy(), np.zeros(600, dtype=np.int64), 0), macro=False, key=("same",))
    assert same["p_value"] == 1.0 and not same["significant"]
    b = (rng.random(600) < 0.5).astype(float)
    gap = compare(Paired(a, b, np.zeros(600, dtype=np.int64), 0), macro=False, key=("gap",))
    assert gap["significant"] and gap["p_value"] < 0.01 and 0 < gap["mde"] < abs(gap["diff"])


def test_macro_difference_is_the_difference_of_macro_accuracies():
    rng = np.random.default_rng(4)
    cats = rng.integers(0, 3, 90)
    a, b = (rng.random(90) < 0.6).astype(float), (rng.random(90) < 0.5).astype(float)
    macro = lambda x: np.mean([x[cats == c].mean() for c in range(3)])  # noqa: E731
    res = compare(Paired(a, b, cats, 0), macro=True, key=("m",))
    assert res["diff"] == pytest.approx(macro(a) - macro(b))


def test_pairs_only_items_both_scored():
    a = [_rec(0, 1.0), _rec(1, 0.0), _rec(2, None), _rec(3, 1.0)]
    b = [_rec(1, 1.0), _rec(0, 1.0), _rec(2, 1.0), _rec(4, 0.0)]
    p = pair_records(a, b)
    assert p.a.tolist() == [0.0, 1.0] and p.b.tolist() == [1.0, 1.0]   # q1 and q0, in b's order
    assert p.n_dropped == 3                                           # q2 failed in a; q4 and q3 unpaired


def test_leaderboard_is_sorted_and_marks_real_gaps(tmp_path):
    from mr2bench.cli import main

    build, out = tmp_path / "img", tmp_path / "eval"
    assert main(["build-benchmark", "image", "--out", str(build)]) == 0
    for model in ("random", "length"):
        assert main(["evaluate-model", "--model", model, "--benchmarks", "mr2bench-image", "--data-dir",
                     str(build), "--out", str(out), "--no-progress"]) == 0
    sig = json.loads((out / "significance.json").read_text())
    (pair,) = sig["pairs"]
    assert pair["benchmark"] == "mr2bench-image" and pair["n_paired"] > 0 and 0 < pair["p_value"] <= 1
    board = (out / "leaderboard.md").read_text()
    assert "## Is the gap real?" in board and f"| {pair['n_paired']} |" in board
    rows = [ln for ln in board.splitlines() if ln.startswith("| random") or ln.startswith("| length")]
    assert len(rows) == 2 and all("[" in r for r in rows)           # every cell carries its interval
