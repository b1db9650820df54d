"""Quality of the denoising ensemble vs plain Bradley-Terry (choix ILSR) and a PGED-style order.

Part 1: planted-truth arenas (19 models, ~190 votes per question) at three annotator-noise levels;
mean Kendall tau-b and top-1 recovery of each question's true order, plus ensemble ablations.
Part 2: PandaLM's real human labels (3 per pair): build from two annotators, score each method's
order against the held-out third (decisive labels only), for each choice of held-out annotator.

Run: python benchmarks/bench_denoise.py [--questions 300] [--seeds 2]
Last line: ``recovery tau: ensemble X.XXX bt X.XXX pged X.XXX`` (the noisiest setting).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mr2bench.ranking.baselines import plain_bt, pged
from mr2bench.ranking.coding import encode
from mr2bench.ranking.ensemble import DenoiseConfig, denoise
from mr2bench.ranking.metrics import tau_b, top1
from mr2bench.ranking.simulate import SETTINGS, pairwise_arena

SAMPLES = Path(os.environ.get("MR2BENCH_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "samples"))
VARIANTS = {
    "ensemble": DenoiseConfig(bootstrap=30),
    "  - no annotator weights": DenoiseConfig(bootstrap=30, use_annotators=False),
    "  - no model prior": DenoiseConfig(bootstrap=30, use_prior=False),
    "  - no vote graph": DenoiseConfig(bootstrap=30, vote_weight=0.0),
    "  vote graph x5": DenoiseConfig(bootstrap=30, vote_weight=0.5),
}


def order_scores(d, c) -> np.ndarray:
    est = np.full((c.n_questions, c.n_models), np.nan)
    for q, o in enumerate(d.order):
        est[q, o] = np.arange(len(o), 0, -1)
    return est


def recovery(T: np.ndarray, est: np.ndarray) -> tuple[float, float]:
    taus, tops = [], []
    for q in range(len(T)):
        m = ~np.isnan(est[q])
        taus.append(tau_b(T[q, m], est[q, m]))
        tops.append(top1(T[q, m], est[q, m]))
    return float(np.mean(taus)), float(np.mean(tops))


def methods(c) -> dict[str, np.ndarray]:
    out = {"plain BT (choix ILSR)": plain_bt(c), "PGED-style": pged(c)}
    for name, cfg in VARIANTS.items():
        out[name] = order_scores(denoise(c, cfg), c)
    return out


def planted(n_questions: int, seeds: int) -> dict[str, dict[str, tuple[float, float]]]:
    table: dict[str, dict[str, list]] = {}
    for setting in SETTINGS:
        for seed in range(seeds):
            arena = pairwise_arena(100 + seed, n_questions=n_questions, setting=setting)
            c, cb = encode(arena.judgments)
            T = arena.truth.pivot(index="question_id", columns="model", values="theta").loc[cb.questions, cb.models].to_numpy()
            for name, est in methods(c).items():
                table.setdefault(setting, {}).setdefault(name, []).append(recovery(T, est))
    return {s: {m: tuple(np.mean(v, axis=0)) for m, v in row.items()} for s, row in table.items()}


def pandalm() -> dict[str, float] | None:
    path = SAMPLES / "pairwise" / "pandalm_testset_v1" / "testset-v1.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    code = {1: "model_a", 2: "model_b", 0: "tie"}
    rows = []
    for r in raw:
        a, b = r["cmp_key"].split("_")
        q = r["instruction"] + "\x00" + r["input"]
        for k in (1, 2, 3):
            rows.append((q, a, b, code[r[f"annotator{k}"]], f"annotator{k}"))
    df = pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner", "annotator_id"])
    agree: dict[str, list[float]] = {}
    for held in ("annotator1", "annotator2", "annotator3"):
        train, test = df[df.annotator_id != held], df[(df.annotator_id == held) & (df.winner != "tie")]
        c, cb = encode(train)
        qi, mi = {q: k for k, q in enumerate(cb.questions)}, {m: k for k, m in enumerate(cb.models)}
        for name, est in methods(c).items():
            if name.startswith(" "):
                continue
            sa = est[test.question_id.map(qi), test.model_a.map(mi)]
            sb = est[test.question_id.map(qi), test.model_b.map(mi)]
            want_a = (test.winner == "model_a").to_numpy()
            hit = np.where(sa == sb, 0.5, (sa > sb) == want_a)
            agree.setdefault(name, []).append(float(np.mean(hit)))
    return {k: float(np.mean(v)) for k, v in agree.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = planted(args.questions, args.seeds)
    print(f"planted-truth arenas: {args.questions} questions x {args.seeds} seeds, 19 models, ~190 votes/question")
    print(f"{'method':<28}" + "".join(f"{s + ' tau / top1':>26}" for s in res))
    for name in next(iter(res.values())):
        print(f"{name:<28}" + "".join(f"{res[s][name][0]:>17.3f} / {res[s][name][1]:.3f}" for s in res))
    clean_gap = res["clean"]["ensemble"][0] - res["clean"]["plain BT (choix ILSR)"][0]
    noisy_gap = res["adversarial"]["ensemble"][0] - res["adversarial"]["plain BT (choix ILSR)"][0]
    print(f"ensemble - plain BT tau: clean {clean_gap:+.3f}, adversarial {noisy_gap:+.3f}")
    held = pandalm()
    if held is None:
        print("PandaLM held-out agreement: skipped (samples folder absent)")
    else:
        print("PandaLM held-out annotator agreement (decisive labels, mean over 3 held-out annotators): "
              + ", ".join(f"{k} {v:.3f}" for k, v in held.items()))
    print(f"seconds: {time.perf_counter() - t0:.1f}")
    worst = res["adversarial"]
    print(f"recovery tau: ensemble {worst['ensemble'][0]:.3f} bt {worst['plain BT (choix ILSR)'][0]:.3f} "
          f"pged {worst['PGED-style'][0]:.3f}")


if __name__ == "__main__":
    main()
