"""`mr2bench evaluate-model`: score a reward model on the benchmarks, each by its official protocol."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mr2bench.cli import add_shared

HELP = """Score a reward model on the six benchmarks, each by its official protocol.

Writes OUT/<model>/<benchmark>/samples.jsonl (one record per item: permutation, scores in the original
order, credit, status, error) and results.json (all metrics, per category, bootstrap 95% CI, counts,
provenance), OUT/<model>/summary.json + leaderboard.md + leaderboard.png (the paper's table: six
columns + Avg), and OUT/leaderboard.md over every model evaluated into OUT.
Rerun the same command after a crash: finished items are skipped, failed ones retried.
Models: random, length, python:FILE.py:Class, seqcls:HUB_ID_OR_DIR, mr2:PATH, mr2-single:PATH,
judge:MODEL, api:MODEL. Several processes (GPUs, or CPU processes): accelerate launch --multi_gpu
--num_processes N -m mr2bench evaluate-model ... (or torchrun --nproc_per_node N -m mr2bench ...); items
are split across ranks and rank 0 merges: the result equals a one-process run."""
EPILOG = """examples:
  mr2bench evaluate-model --model length --benchmarks vl-rewardbench --data-dir data/vlrb --out runs/eval
  mr2bench evaluate-model --model random --benchmarks mr2bench-image,mr2bench-video \\
      --data-dir mr2bench-image=runs/image --data-dir mr2bench-video=runs/video --out runs/eval --permutations 3
  mr2bench evaluate-model --model seqcls:path/to/rm --data-dir data/ --out runs/eval --batch-size 8
  accelerate launch --multi_gpu --num_processes 2 -m mr2bench evaluate-model --model length --data-dir data/ --out runs/eval
  mr2bench rescore runs/eval/length"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="SPEC", help="KIND:TARGET, e.g. length, seqcls:org/rm")
    parser.add_argument("--benchmarks", default=None, metavar="A,B",
                        help="comma-separated benchmark names (default: all six)")
    parser.add_argument("--data-dir", action="append", default=[], metavar="BENCH=DIR|DIR",
                        help="local folder in the Hub layout; BENCH=DIR per benchmark, or one DIR (with one "
                             "benchmark: its folder; with several: DIR/<benchmark>). Default: the Hub")
    add_shared(parser, "seed", "out", "log-level", "limit", out_required=True)
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="requests per adapter call (score_batch when the adapter has it; default 1)")
    parser.add_argument("--permutations", type=int, default=1, metavar="K",
                        help="score each item under K response orders; reports permutation consistency")
    parser.add_argument("--num-frames", type=int, default=16, metavar="N", help="video frames (default 16)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="adapter-specific option (repeatable)")
    parser.add_argument("--api-base", default=None, metavar="URL", help="OpenAI-compatible endpoint (api:)")
    parser.add_argument("--api-key-env", default=None, metavar="NAME",
                        help="environment variable holding the API key (api:)")
    parser.add_argument("--device", default="auto", help="torch device (default: auto)")
    parser.add_argument("--dtype", default="auto", help="torch dtype (default: auto)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow custom model code from the Hub (off by default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_data_dirs(values: list[str], benchmarks: list[str]) -> dict[str, Path]:
    from mr2bench.schema import DataError

    out: dict[str, Path] = {}
    bare: list[str] = []
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in benchmarks:
            out[name] = Path(path)
        elif sep and not Path(value).exists():
            raise DataError(f"{name!r} is not a selected benchmark ({', '.join(benchmarks)})", field="--data-dir")
        else:
            bare.append(value)
    if len(bare) > 1:
        raise DataError("give at most one bare DIR; use BENCH=DIR for the others", field="--data-dir")
    if bare:
        root = Path(bare[0])
        if len(benchmarks) == 1:
            out.setdefault(benchmarks[0], root)
        else:
            for name in benchmarks:
                if name not in out:
                    if not (root / name).is_dir():
                        raise DataError(f"{root / name} not found (with several benchmarks a bare DIR must "
                                        "hold one folder per benchmark)", field="--data-dir")
                    out[name] = root / name
    return out


def run(args: argparse.Namespace) -> int:
    from mr2bench.adapters import AdapterOptions, model_slug
    from mr2bench.evaluate import EvalConfig, evaluate
    from mr2bench.registry import benchmark_names, get_benchmark
    from mr2bench.schema import DataError

    names = [b.strip() for b in (args.benchmarks or ",".join(benchmark_names())).split(",") if b.strip()]
    from mr2bench.registry import UnknownNameError

    for name in names:
        try:
            get_benchmark(name)
        except UnknownNameError as exc:  # close matches + the list
            raise DataError(str(exc), field="--benchmarks") from None
    if args.permutations < 1 or args.batch_size < 1:
        raise DataError("must be >= 1", field="--permutations" if args.permutations < 1 else "--batch-size")
    extra = {}
    for kv in args.model_arg:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise DataError(f"expected KEY=VALUE, got {kv!r}", field="--model-arg")
        extra[key] = value
    out = Path(args.out)
    options = AdapterOptions(seed=args.seed, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                             num_frames=args.num_frames, trust_remote_code=args.trust_remote_code,
                             api_base=args.api_base, api_key_env=args.api_key_env,
                             cache_dir=str(out / model_slug(args.model) / "cache"), extra=extra)
    cfg = EvalConfig(model=args.model, benchmarks=tuple(names), out=out,
                     data_dirs=parse_data_dirs(args.data_dir, names), seed=args.seed, limit=args.limit,
                     batch_size=args.batch_size, permutations=args.permutations,
                     command=args.invocation,
                     progress=not args.no_progress)
    outcomes = evaluate(cfg, options)
    failures = 0
    for o in outcomes:
        if o.results is None:
            continue
        r = o.results
        head = r["metrics"].get(r["headline_metric"])
        ci = r.get("ci95") or {}
        ci_text = f" [95% CI {100 * ci['low']:.1f}-{100 * ci['high']:.1f}]" if ci else ""
        print(f"{o.name}: {r['headline_metric']} = {'n/a' if head is None else f'{100 * head:.1f}'}{ci_text}"
              f"  n={r['n_items']} scored={r['n_scored']} failed={r['n_failed']} "
              f"parse_failures={r['n_parse_failures']}  ({o.n_new} scored now, {o.n_resumed} resumed, "
              f"{o.n_new / o.seconds if o.seconds > 0 else 0:.0f} items/s)")
        failures += r["n_failed"]
    if outcomes and outcomes[0].results is not None:
        print(f"wrote {out / model_slug(args.model)} and {out / 'leaderboard.md'}")
    if failures:
        print(f"error: {failures} items failed (status 'failed' in samples.jsonl, with the error); "
              "rerun the same command to retry them", file=sys.stderr)
        return 1
    return 0
