"""Votes to yield: `build-benchmark plan` against uniform random pairs and round robin, on planted arenas.

Per regime (mr2bench.ranking.simulate.pairwise_arena: noise setting and seed coverage), every strategy
starts from the same small seed set of votes, then alternates: choose a batch of requests -> simulated
annotators answer (simulate.answer: planted truth, the arena's annotator kinds) -> denoise again (the
build's posterior, not the whole CLI). Yield = questions with a 4-response item at --separation (the
build's own sampler); label precision = share of those items whose designated best is truly the best of
its four. A strategy reaches a level at the first round whose yield >= level * Y* with precision >=
separation, Y* = the best final yield of any strategy in that regime; "min p" = the lowest label
precision over the rounds at or above 80% of Y* (does stopping at the aim cost precision?). Votes are
the new votes after the seed set. Uniform = a uniformly random question and pair; round robin = questions in turn, each its
least-asked pair. Candidate models per question = those in its seed votes, for every strategy.

Batches of 100 votes (60 rounds, 6000 new votes at most) for every strategy: a real campaign plans
again after each small batch, and coarse batches (300 for 60 questions) both blunt an adaptive method
and round every "votes to" figure up to a multiple of the batch. A round where plan asks nothing
reuses the last measurement (same votes, same posterior: the build is deterministic).

    python benchmarks/bench_plan.py            # default run: 3 seeds x 3 regimes, about 4 minutes on one core
    python benchmarks/bench_plan.py --rounds 24 --batch 300 --curves --regimes noisy
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from mr2bench.builders.pipeline import BuildConfig, Thresholds, denoise_config, has_item
from mr2bench.ranking.coding import encode
from mr2bench.ranking.ensemble import denoise
from mr2bench.ranking.plan import PlanConfig, plan_requests
from mr2bench.ranking.sampling import sample_variants
from mr2bench.ranking.simulate import answer, pairwise_arena
from mr2bench.seeding import rng_for

# name -> pairwise_arena kwargs (coverage: seed votes per question); question_sd > model_sd, so the
# pooled prior cannot decide a question alone and the seed set yields few items
HARD = {"model_sd": 0.5, "question_sd": 1.0}
REGIMES = {
    "clean, 10 seed votes/q": {"setting": "clean", "votes_per_question": 10, **HARD},
    "noisy, 10 seed votes/q": {"setting": "noisy", "votes_per_question": 10, **HARD},
    "adversarial, 20 seed votes/q": {"setting": "adversarial", "votes_per_question": 20, **HARD},
}
LEVELS = (0.8, 0.95)


def measure(df: pd.DataFrame, truth: dict, sep: float, seed: int):
    """(denoised, codebook, yielding mask, yield, label precision) for the votes so far."""
    coded, cb = encode(df)
    cfg = BuildConfig(kind="video", out=None, seed=seed, thresholds=Thresholds(separation=sep))
    d = denoise(coded, denoise_config(cfg))
    yielding, correct = np.zeros(coded.n_questions, dtype=bool), 0
    for qi, qid in enumerate(cb.questions):
        if not has_item(d, qi, qid, cfg.thresholds, seed):
            continue
        yielding[qi] = True
        v = sample_variants(d.order[qi], d.rank[qi], d.share[qi], 1, separation=sep,
                            rng=rng_for(seed, "items", qid), slot_start=0, draws=d.draws(qi))[0]
        t = [truth[(qid, cb.models[m])] for m in v.models]
        correct += int(np.argmax(t)) == v.best_slot
    n = int(yielding.sum())
    return d, cb, yielding, n, correct / n if n else 1.0


def plan_batch(d, cb, yielding, k: int, sep: float, seed: int, target: float | None = None) -> pd.DataFrame:
    Q, M = d.theta.shape
    from mr2bench.ranking.plan import open_questions

    if not open_questions(d, yielding, np.zeros(Q, bool), PlanConfig(1, sep, target=target).aim).any():
        return pd.DataFrame(columns=["question_id", "model_a", "model_b"])
    reqs = plan_requests(d, yielding, np.zeros(Q, bool), np.zeros(M, bool), float(d.row_weight.mean()),
                         PlanConfig(budget=k, separation=sep, seed=seed, target=target))
    return pd.DataFrame({"question_id": [cb.questions[r.question] for r in reqs],
                         "model_a": [cb.models[r.left] for r in reqs], "model_b": [cb.models[r.right] for r in reqs]})


def uniform_batch(cands: dict, k: int, rng: np.random.Generator) -> pd.DataFrame:
    qids = sorted(cands)
    rows = []
    for _ in range(k):
        q = qids[int(rng.integers(len(qids)))]
        a, b = rng.choice(cands[q], 2, replace=False)
        rows.append((q, a, b))
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b"])


class RoundRobin:
    """Questions in turn; on each, the pair asked least so far (ties: the fixed pair order)."""

    def __init__(self, cands: dict) -> None:
        self.pairs = {q: [(a, b) for i, a in enumerate(ms) for b in ms[i + 1:]] for q, ms in cands.items()}
        self.count = {q: np.zeros(len(p), dtype=int) for q, p in self.pairs.items()}
        self.qids, self.turn = sorted(cands), 0

    def batch(self, k: int) -> pd.DataFrame:
        rows = []
        for _ in range(k):
            q = self.qids[self.turn % len(self.qids)]
            self.turn += 1
            j = int(np.argmin(self.count[q]))
            self.count[q][j] += 1
            a, b = self.pairs[q][j]
            rows.append((q, a, b) if self.count[q][j] % 2 else (q, b, a))
        return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b"])


def run_regime(kw: dict, args, seed: int) -> dict[str, list[tuple[int, int, float]]]:
    arena = pairwise_arena(seed, n_questions=args.questions, n_models=args.models, n_annotators=30, **kw)
    seed_df = arena.judgments[["question_id", "model_a", "model_b", "winner", "annotator_id"]]
    truth = dict(zip(zip(arena.truth["question_id"], arena.truth["model"]), arena.truth["theta"]))
    cands = {q: sorted(set(g["model_a"]) | set(g["model_b"])) for q, g in seed_df.groupby("question_id")}
    curves = {}
    for name in ("plan", "uniform", "round-robin"):
        df, added, curve = seed_df, 0, []
        rng, rr = rng_for(seed, "bench-plan", name), RoundRobin(cands)
        req = None
        for r in range(args.rounds + 1):
            if req is None or len(req):
                d, cb, yielding, y, prec = measure(df, truth, args.separation, seed)
            curve.append((added, y, prec))
            if r == args.rounds:
                break
            if name == "plan":
                req = plan_batch(d, cb, yielding, args.batch, args.separation, seed + r, args.target)
            elif name == "uniform":
                req = uniform_batch(cands, args.batch, rng)
            else:
                req = rr.batch(args.batch)
            new = answer(arena, req, seed=seed * 1000 + r)
            df, added = pd.concat([df, new], ignore_index=True), added + len(req)
        curves[name] = curve
    return curves


def votes_to(curve, target: float, sep: float) -> int | None:
    return next((v for v, y, p in curve if y >= target and p >= sep), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--separation", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0, help="the first arena seed")
    ap.add_argument("--seeds", type=int, default=3,
                    help="arenas per regime (seeds seed .. seed+seeds-1); the last line sums over all of them")
    ap.add_argument("--aim", dest="target", type=float, default=None,
                    help="plan's aim (default: PlanConfig.aim, 0.92 at separation 0.9)")
    ap.add_argument("--regimes", default="", help="comma-separated regime prefixes (default: all)")
    ap.add_argument("--curves", action="store_true", help="print yield/precision per round per strategy")
    args = ap.parse_args()
    t0 = time.perf_counter()
    fmt = lambda v: "-" if v is None else str(v)  # noqa: E731
    totals = {"plan": 0, "uniform": 0}
    by_regime: dict[str, dict[str, int]] = {}
    short = {"plan": False, "uniform": False}   # not reached: counted as the whole budget (a bound)
    aim = PlanConfig(1, args.separation, target=args.target).aim
    print(f"{args.questions} questions, {args.models} models, batches of {args.batch}, {args.rounds} rounds, "
          f"separation {args.separation}, plan aim {aim:g}; votes = new votes after the seed set "
          "('-': not reached)")
    print(f"{'seed':>4} {'regime':30} {'Y*':>4} {'strategy':12} {'final':>5} {'prec':>5} {'min p':>5} {'80%':>6} {'95%':>6}")
    chosen = [r for r in REGIMES if not args.regimes or any(r.startswith(x) for x in args.regimes.split(","))]
    for seed, regime in ((k, r) for k in range(args.seed, args.seed + args.seeds) for r in chosen):
        curves = run_regime(REGIMES[regime], args, seed)
        if args.curves:
            for name, c in curves.items():
                print(f"  {name:12} " + " ".join(f"{v}:{y}/{p:.2f}" for v, y, p in c))
        ystar = max(c[-1][1] for c in curves.values())
        for name, c in curves.items():
            v80, v95 = (votes_to(c, lvl * ystar, args.separation) for lvl in LEVELS)
            low = min(p for _, y, p in c if y >= LEVELS[0] * ystar) if c[-1][1] >= LEVELS[0] * ystar else c[-1][2]
            print(f"{seed:>4} {regime:30} {ystar:>4} {name:12} {c[-1][1]:>5} {c[-1][2]:>5.2f} {low:>5.2f} {fmt(v80):>6} "
                  f"{fmt(v95):>6}")
        r = {lvl: (votes_to(curves["plan"], lvl * ystar, args.separation),
                   votes_to(curves["uniform"], lvl * ystar, args.separation)) for lvl in LEVELS}
        ratio = {lvl: (f"{u / p:.2f}" if p and u else (f">{args.rounds * args.batch / p:.2f}" if p else "-"))
                 for lvl, (p, u) in r.items()}
        print(f"{seed:>4} {regime:30} ratio uniform/plan: 80% {ratio[0.8]}, 95% {ratio[0.95]}")
        p95, u95 = r[0.95]
        for name, v in (("plan", p95), ("uniform", u95)):
            totals[name] += v if v is not None else args.rounds * args.batch
            by_regime.setdefault(regime, {"plan": 0, "uniform": 0})[name] += v if v is not None else args.rounds * args.batch
            short[name] |= v is None
    print(f"\nvotes to 95% yield per regime, summed over {args.seeds} seed(s) (not reached: the whole budget, a bound):")
    for regime, v in by_regime.items():
        print(f"  {regime:30} plan {v['plan']:>6}  uniform {v['uniform']:>6}  ratio {v['uniform'] / max(v['plan'], 1):.2f}")
    print(f"seconds: {time.perf_counter() - t0:.0f}")
    bound = ">" if short["uniform"] and not short["plan"] else "~" if short["plan"] else ""
    mark = {k: ">" if v else "" for k, v in short.items()}
    print(f"votes to 95% yield: plan {mark['plan']}{totals['plan']}, uniform {mark['uniform']}{totals['uniform']} "
          f"(ratio {bound}{totals['uniform'] / max(totals['plan'], 1):.2f})")


if __name__ == "__main__":
    main()
