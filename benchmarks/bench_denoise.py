"""Denoising quality: the ensemble vs plain BT, PGED, NoisyBT (gradient corrected) and the strongest
annotation-aware anchor we know (Dawid-Skene EM + BT + pooled prior, real-artifacts.md last section).

Part 1, planted-truth arenas (19 models; ``--questions`` per arena, 300 by default as in a real build),
``--seeds`` arenas per regime (20 by default: the ensemble's top-1 lead over the anchor is 2-3 points, and
5 arenas of 120 questions give paired intervals of +-0.05, wider than the lead):
  default     ~190 votes per question, adversarial mix (50 % good, 20 % coin, 15 % adversarial, 15 % slot-a)
  thin        ~40 votes per question, same mix
  unrelated   per-question quality unrelated to global skill (model_sd 0.1, question_sd 1.0)
  hostile     40 % good, 10 % coin, 20 % adversarial, 30 % position-biased annotators
Per method and regime: Kendall tau-b of the strict order and top-1 (mean over arenas, 95 % t-interval
over arenas), the paired gap ensemble - anchor with its interval, and the ensemble's label precision:
the share of sampled 4-response items whose designated best is truly the best of the four, against
the declared ``--separation``. Questions the builder would not rank count as chance (tau 0, top-1 1/k).
Part 2: PandaLM's human labels (3 per pair): fit on two annotators, agreement with the held-out third
on decisive labels, and coverage (share of held-out rows the method orders).

Run: python benchmarks/bench_denoise.py [--questions 300] [--seeds 20] [--separation 0.9] [--ablations]
(about 8 minutes on one core; ``--questions 120 --seeds 5`` for a 1-minute look).
Per regime a verdict line: whether every paired interval (ensemble - baseline, tau and top-1) lies above
0 and label precision >= separation. Last line: ``recovery tau: ensemble X.XXX anchor X.XXX bt X.XXX``
(the default regime).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from mr2bench.ranking.reference_methods import em_anchor, noisy_bt, pged, plain_bt
from mr2bench.ranking.coding import encode
from mr2bench.ranking.ensemble import DenoiseConfig, Denoised, denoise
from mr2bench.ranking.recovery import tau_b, top1
from mr2bench.ranking.sampling import sample_variants
from mr2bench.ranking.simulate import pairwise_arena
from mr2bench.seeding import rng_for

SAMPLES = Path(os.environ.get("MR2BENCH_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "samples"))
REGIMES: dict[str, dict] = {
    "default": {},
    "thin": {"votes_per_question": 40},
    "unrelated": {"model_sd": 0.1, "question_sd": 1.0},
    "hostile": {"setting": "hostile"},
}
MIN_JUDGMENTS = 1    # the builder's default --min-judgments


def kept_questions(d: Denoised) -> np.ndarray:
    """The builder's question filter (builders/pipeline.py _filters)."""
    return np.array([x["judgments"] >= MIN_JUDGMENTS and (x["components"] == 1 or x.get("prior_links", False))
                     for x in d.diagnostics])


def order_scores(d: Denoised, c) -> np.ndarray:
    """Best-first orders as scores; a present response the method leaves unranked ties for last."""
    present = np.zeros((c.n_questions, c.n_models), dtype=bool)
    present[c.q, c.a] = present[c.q, c.b] = True
    est = np.where(present, 0.0, np.nan)
    for q, o in enumerate(d.order):
        est[q, o] = np.arange(len(o), 0, -1)
    return est


def ensemble_method(cfg: DenoiseConfig) -> Callable:
    def run(c):
        d = denoise(c, cfg)
        return order_scores(d, c), d
    return run


METHODS: dict[str, Callable] = {
    "ensemble": ensemble_method(DenoiseConfig()),
    "anchor: EM + BT + pooled prior": lambda c: (em_anchor(c), None),
    "NoisyBT (gradient corrected)": lambda c: (noisy_bt(c), None),
    "plain BT (choix ILSR)": lambda c: (plain_bt(c), None),
    "PGED-style": lambda c: (pged(c), None),
}
ABLATIONS: dict[str, Callable] = {
    "  - no annotator classes": ensemble_method(DenoiseConfig(use_annotators=False)),
    "  - no pooled prior": ensemble_method(DenoiseConfig(use_prior=False)),
}


def recovery(T: np.ndarray, est: np.ndarray, keep: np.ndarray | None) -> tuple[float, float]:
    taus, tops = [], []
    for q in range(len(T)):
        m = ~np.isnan(est[q])
        if keep is not None and not keep[q]:
            taus.append(0.0)
            tops.append(1.0 / max(m.sum(), 1))
            continue
        taus.append(tau_b(T[q, m], est[q, m]))
        tops.append(top1(T[q, m], est[q, m]))
    return float(np.mean(taus)), float(np.mean(tops))


def label_precision(d: Denoised, T: np.ndarray, keep: np.ndarray, separation: float) -> tuple[int, int]:
    """(items whose designated best is truly the best of its four, items) as the builder samples them."""
    hits = n = 0
    for qi in np.flatnonzero(keep):
        if len(d.order[qi]) < 4:
            continue
        for v in sample_variants(d.order[qi], d.rank[qi], d.share[qi], 3, separation=separation,
                                 rng=rng_for(0, "items", qi), slot_start=n, draws=d.draws(qi)):
            best = v.models[v.best_slot]
            hits += int(T[qi, best] >= max(T[qi, m] for m in v.models))
            n += 1
    return hits, n


def planted(regime: str, n_questions: int, seeds: int, separation: float, methods: dict) -> dict:
    res: dict[str, list] = {"_precision": []}
    for seed in range(seeds):
        arena = pairwise_arena(100 + seed, n_questions=n_questions, **REGIMES[regime])
        c, cb = encode(arena.judgments)
        T = arena.truth.pivot(index="question_id", columns="model", values="theta").loc[cb.questions, cb.models].to_numpy()
        for name, fn in methods.items():
            est, d = fn(c)
            keep = kept_questions(d) if d is not None else None
            res.setdefault(name, []).append(recovery(T, est, keep))
            if name == "ensemble":
                res["_precision"].append(label_precision(d, T, keep, separation))
    return res


def interval(x: list[float]) -> tuple[float, float]:
    x = np.asarray(x, dtype=float)
    half = student_t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
    return float(x.mean()), float(half)


def pandalm(methods: dict) -> dict[str, tuple[float, float]] | None:
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
    agree: dict[str, list[tuple[float, float]]] = {}
    for held in ("annotator1", "annotator2", "annotator3"):
        train, test = df[df.annotator_id != held], df[(df.annotator_id == held) & (df.winner != "tie")]
        c, cb = encode(train)
        qi, mi = {q: k for k, q in enumerate(cb.questions)}, {m: k for k, m in enumerate(cb.models)}
        for name, fn in methods.items():
            est, d = fn(c)
            if d is not None:
                keep = kept_questions(d)
                est = np.where(keep[:, None], est, np.nan)
            sa = est[test.question_id.map(qi), test.model_a.map(mi)]
            sb = est[test.question_id.map(qi), test.model_b.map(mi)]
            covered = ~(np.isnan(sa) | np.isnan(sb))
            want_a = (test.winner == "model_a").to_numpy()
            hit = np.where(sa == sb, 0.5, (sa > sb) == want_a)[covered]
            agree.setdefault(name, []).append((float(np.mean(hit)), float(covered.mean())))
    return {k: tuple(np.mean(v, axis=0)) for k, v in agree.items()}


def print_regime(regime: str, res: dict, separation: float) -> None:
    print(f"\n[{regime}] {REGIMES[regime] or 'pairwise_arena defaults'}")
    print(f"  {'method':<32}{'tau [95% CI]':>24}{'top-1 [95% CI]':>24}")
    for name, vals in res.items():
        if name.startswith("_"):
            continue
        (tm, th), (pm, ph) = interval([v[0] for v in vals]), interval([v[1] for v in vals])
        print(f"  {name:<32}{tm:>10.3f} [{tm - th:.3f}, {tm + th:.3f}]{pm:>10.3f} [{pm - ph:.3f}, {pm + ph:.3f}]")
    ens = res["ensemble"]
    behind = []
    for name in res:
        if name.startswith("_") or name == "ensemble" or name.startswith(" "):
            continue
        (dt, ht) = interval([e[0] - b[0] for e, b in zip(ens, res[name])])
        (dp, hp) = interval([e[1] - b[1] for e, b in zip(ens, res[name])])
        print(f"  ensemble - {name:<28} tau {dt:+.3f} +- {ht:.3f}   top-1 {dp:+.3f} +- {hp:.3f}")
        behind += [f"{name} ({what})" for what, lo in (("tau", dt - ht), ("top-1", dp - hp)) if not lo > 0]
    hits, n = map(sum, zip(*res["_precision"]))
    per = [h / k for h, k in res["_precision"] if k]
    precision = hits / max(n, 1)
    print(f"  label precision at --separation {separation}: {precision:.3f} of {n} items "
          f"(per arena min {min(per) if per else float('nan'):.3f})")
    ok = not behind and precision >= separation
    why = "; ".join(behind + ([] if precision >= separation else [f"label precision {precision:.3f}"]))
    print(f"  verdict [{regime}]: " + ("ensemble ahead of every baseline on tau and top-1 (paired 95% intervals "
                                      "above 0), label precision >= separation" if ok else f"NOT met: {why}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--separation", type=float, default=0.9)
    ap.add_argument("--regimes", default=",".join(REGIMES))
    ap.add_argument("--ablations", action="store_true", help="also run the ensemble without each member")
    args = ap.parse_args()
    t0 = time.perf_counter()
    methods = {**METHODS, **(ABLATIONS if args.ablations else {})}
    print(f"planted-truth arenas: {args.questions} questions x {args.seeds} seeds per regime, 19 models")
    first = None
    for regime in args.regimes.split(","):
        res = planted(regime, args.questions, args.seeds, args.separation, methods)
        print_regime(regime, res, args.separation)
        first = first or res
    held = pandalm(METHODS)
    if held is None:
        print("\nPandaLM held-out agreement: skipped (samples folder absent)")
    else:
        print("\nPandaLM held-out annotator agreement (decisive labels, mean over 3 held-out annotators), coverage:")
        for k, (a, cov) in held.items():
            print(f"  {k:<32} {a:.4f}  coverage {cov:.3f}")
        (ea, ec), (ba, bc) = held["ensemble"], held["plain BT (choix ILSR)"]
        print("  verdict [PandaLM]: " + ("agreement and coverage >= plain BT's" if ea >= ba and ec >= bc else
                                        f"NOT met: {ea:.4f} / {ec:.3f} vs plain BT {ba:.4f} / {bc:.3f}"))
    print(f"seconds: {time.perf_counter() - t0:.1f}")
    m = {k: np.mean([v[0] for v in first[k]]) for k in ("ensemble", "anchor: EM + BT + pooled prior",
                                                         "plain BT (choix ILSR)")}
    print(f"recovery tau: ensemble {m['ensemble']:.3f} anchor {m['anchor: EM + BT + pooled prior']:.3f} "
          f"bt {m['plain BT (choix ILSR)']:.3f}")


if __name__ == "__main__":
    main()
