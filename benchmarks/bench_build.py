"""Speed of build-benchmark at the paper's scale (94K judgments, 500 questions, 19 models).

Times the full CLI build (validation, annotator weights, model prior CV, 50 bootstrap rounds, exact
cycle pruning, items, leaderboard, plots, card) with its per-stage breakdown, then a straightforward
per-question choix + networkx build (ILSR fit + 50 ILSR bootstrap refits + networkx SCCs + the same
exact pruning) measured on a subset of questions and scaled linearly (questions are independent),
then the same build on 10x the judgments (10x the questions).

Run: python benchmarks/bench_build.py [--skip-10x]
Last line: ``build 94K: X.X s``.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import choix  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

from mr2bench.cli import build_benchmark_main  # noqa: E402
from mr2bench.ranking.coding import encode  # noqa: E402
from mr2bench.ranking.feedback_arc import min_feedback_arc_set  # noqa: E402
from mr2bench.ranking.simulate import pairwise_arena  # noqa: E402

BOOTSTRAP = 50


def timed_build(n_questions: int, tmp: Path, tag: str) -> tuple[float, dict, int]:
    df = pairwise_arena(7, n_questions=n_questions, votes_per_question=188, setting="adversarial").judgments
    src = tmp / f"{tag}.parquet"
    df.to_parquet(src, index=False)
    out = tmp / f"out-{tag}"
    t = time.perf_counter()
    code = build_benchmark_main(["video", str(src), "--out", str(out), "--bootstrap", str(BOOTSTRAP)])
    elapsed = time.perf_counter() - t
    assert code == 0
    return elapsed, json.loads((out / "timings.json").read_text())["seconds"], len(df)


def naive_per_question(n_questions: int, subset: int) -> float:
    """choix ILSR + bootstrap refits + networkx, one question at a time; seconds for ``subset`` questions."""
    df = pairwise_arena(7, n_questions=n_questions, votes_per_question=188, setting="adversarial").judgments
    c, _ = encode(df)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for q in range(subset):
        rows = np.flatnonzero(c.q == q)
        models = np.unique(np.concatenate([c.a[rows], c.b[rows]]))
        loc = {m: k for k, m in enumerate(models)}
        data = []
        for r in rows:
            a, b, y = loc[c.a[r]], loc[c.b[r]], c.y[r]
            data.append([(a, b), (a, b)] if y == 1 else [(b, a), (b, a)] if y == 0 else [(a, b), (b, a)])
        flat = [p for d in data for p in d]
        theta = choix.ilsr_pairwise(len(models), flat, alpha=0.01)
        boots = []
        for _ in range(BOOTSTRAP):
            pick = rng.integers(0, len(data), len(data))
            boots.append(choix.ilsr_pairwise(len(models), [p for k in pick for p in data[k]], alpha=0.01))
        share = np.mean([b[:, None] > b[None, :] for b in boots], axis=0)
        g = nx.DiGraph()
        g.add_weighted_edges_from((u, v, 2 * share[u, v] - 1) for u in range(len(models))
                                  for v in range(len(models)) if share[u, v] > 0.5)
        W = nx.to_numpy_array(g, nodelist=range(len(models)))
        min_feedback_arc_set(W, tiebreak=theta)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-10x", action="store_true")
    ap.add_argument("--naive-subset", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t1, stages, n1 = timed_build(500, tmp, "94k")
        print(f"mr2bench build: {n1} judgments, 500 questions, 19 models, {BOOTSTRAP} bootstrap rounds: {t1:.1f} s")
        for k, v in sorted(stages.items(), key=lambda kv: -kv[1]):
            print(f"  {k:<14} {v:7.2f} s")
        sub = args.naive_subset
        tn = naive_per_question(500, sub) * 500 / sub
        print(f"straightforward per-question choix + networkx build (measured on {sub} questions, x{500 // sub}): "
              f"{tn:.1f} s  -> mr2bench is {tn / t1:.1f}x faster")
        if not args.skip_10x:
            t10, stages10, n10 = timed_build(5000, tmp, "940k")
            print(f"10x judgments ({n10}): {t10:.1f} s, time ratio {t10 / t1:.2f}x (target <= 12x); per stage:")
            for k, v in sorted(stages10.items(), key=lambda kv: -kv[1]):
                print(f"  {k:<14} {v:7.2f} s  ({v / max(stages.get(k, 0.0), 1e-9):5.1f}x)")
    print(f"build 94K: {t1:.1f} s")


if __name__ == "__main__":
    main()
