"""`mr2bench evaluate-model`: score a reward model on the benchmarks, each by its official protocol."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mr2bench.cli import add_shared

HELP = """Score a reward model on the six benchmarks, each by its official protocol.

Writes OUT/<model>/<benchmark>/samples.jsonl (one record per item: permutation, scores in the original
order, credit, status, error) and results.json (all metrics, per category, bootstrap 95% CI, counts,
provenance), OUT/<model>/summary.json + leaderboard.md + leaderboard.png (the paper's table: six
columns + Avg), and OUT/leaderboard.md over every model evaluated into OUT.
Rerun the same command after a crash: finished items are skipped, failed ones retried. A run folder holds
one run: fingerprint.json records the model, options, seed, permutations, benchmark version, limit and a
digest of the data, and a run whose fingerprint differs is refused (exit 2) unless --overwrite is given;
one process writes a folder at a time (a lock beside it).

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


# canonical torch dtype names, and the short spellings users type for them
DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _dtype(value: str) -> str:
    if value not in DTYPES:
        raise argparse.ArgumentTypeError(f"unknown dtype {value!r}; choose from {', '.join(DTYPES)}")
    return DTYPES[value]


def _device(value: str) -> str:
    if not DEVICE.match(value):
        raise argparse.ArgumentTypeError(f"unknown device {value!r}; choose from auto, cpu, cuda, cuda:N, mps")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mr2bench.adapters import MODEL_KINDS
    from mr2bench.registry import benchmark_names

    parser.add_argument("--model", required=True, metavar="SPEC",
                        help=f"KIND:TARGET; kinds: {', '.join(MODEL_KINDS.names())} (mr2bench models describes them)")
    parser.add_argument("--model-name", default=None, metavar="NAME",
                        help="the model's name in tables and its folder under OUT (default: from --model)")
    parser.add_argument("--benchmarks", default=None, metavar="A,B",
                        help=f"comma-separated, from: {', '.join(benchmark_names())} (default: all six; "
                             "mr2bench benchmarks describes them)")
    parser.add_argument("--data-dir", action="append", default=[], metavar="BENCH=DIR|DIR",
                        help="local folder in the Hub layout; BENCH=DIR per benchmark, or one DIR (with one "
                             "benchmark: its folder; with several: DIR/<benchmark>). Default: the Hub")
    parser.add_argument("--source", action="append", default=[], metavar="BENCH=HUB_ID[:CONFIG][@REVISION]",
                        help="read BENCH from another Hub repo, config or revision (a fork, a newer release)")
    parser.add_argument("--field", action="append", default=[], metavar="BENCH:canonical=theirs",
                        help="rename a column before BENCH's loader reads it (schemas we could not verify)")
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
    parser.add_argument("--device", default="auto", type=_device, metavar="DEVICE",
                        help="auto, cpu, cuda, cuda:N or mps (default: auto = cuda when available)")
    parser.add_argument("--dtype", default="auto", type=_dtype, metavar="DTYPE",
                        help=f"{', '.join(DTYPES)} (default: auto = bfloat16 on GPU, float32 on CPU)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow custom model code from the Hub (off by default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run folder that holds a different run (another seed, model, data...); "
                             "the old run stays whole until the new one is complete")


def parse_data_dirs(values: list[str], benchmarks: list[str]) -> dict[str, Path]:
    from mr2bench.schema import DataError

    out: dict[str, Path] = {}
    bare: list[str] = []
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in benchmarks:
            out[name] = _folder(Path(path))
        elif sep and not Path(value).exists():
            raise DataError(f"{name!r} is not a selected benchmark ({', '.join(benchmarks)})", field="--data-dir")
        else:
            bare.append(value)
    if len(bare) > 1:
        raise DataError("give at most one bare DIR; use BENCH=DIR for the others", field="--data-dir")
    if bare:
        root = _folder(Path(bare[0]))
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


def _folder(path: Path) -> Path:
    from mr2bench.schema import DataError

    if path.exists() and not path.is_dir():
        raise DataError(f"{path} is a file; --data-dir takes the benchmark's folder (the one holding the data "
                        "files, or a build-benchmark output folder)", field="--data-dir")
    return path


def parse_sources(values: list[str]) -> dict[str, str]:
    from mr2bench.hub.source import parse_source

    return {parse_source(v)[0]: v for v in values}


def parse_fields(values: list[str]) -> dict[str, tuple[tuple[str, str], ...]]:
    from mr2bench.evaluators._loading import parse_field

    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for v in values:
        name, canonical, theirs = parse_field(v)
        out[name] = out.get(name, ()) + ((canonical, theirs),)
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
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; --out takes a folder (new or one evaluate-model wrote)", field="--out")
    if args.model_name is not None and (not args.model_name.strip() or any(c in args.model_name for c in "/\\\n")):
        raise DataError(f"expected a plain name without slashes or newlines, got {args.model_name!r}",
                        field="--model-name")
    options = AdapterOptions(seed=args.seed, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                             num_frames=args.num_frames, trust_remote_code=args.trust_remote_code,
                             api_base=args.api_base, api_key_env=args.api_key_env,
                             cache_dir=str(out / model_slug(args.model_name or args.model) / "cache"), extra=extra)
    cfg = EvalConfig(model=args.model, model_name=args.model_name, benchmarks=tuple(names), out=out,
                     data_dirs=parse_data_dirs(args.data_dir, names), seed=args.seed, limit=args.limit,
                     batch_size=args.batch_size, permutations=args.permutations,
                     command=args.invocation, sources=parse_sources(args.source), fields=parse_fields(args.field),
                     progress=not args.no_progress, overwrite=args.overwrite)
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
    if any(o.results is not None for o in outcomes):
        from mr2bench.leaderboard import leaderboard_rows, table_lines

        print("\n" + "\n".join(table_lines(leaderboard_rows(out), sep="  ", edge="")) + "\n")
        print(f"wrote {out / model_slug(args.model_name or args.model)} and {out / 'leaderboard.md'}")
    skipped = [o.name for o in outcomes if o.skipped]
    if skipped:
        print(f"error: skipped {len(skipped)} benchmark(s), Hub dataset unavailable: {', '.join(skipped)}",
              file=sys.stderr)
    if failures:
        print(failure_summary([o.results for o in outcomes if o.results is not None], failures), file=sys.stderr)
    return 1 if failures or skipped else 0


def failure_summary(results: list[dict], failures: int, top: int = 5) -> str:
    """The closing lines of a run with failures: the top reasons with counts, and the rerun hint only
    when some failures are of a kind a rerun can cure (adapter exceptions), never for bad data."""
    from collections import Counter

    from mr2bench.evaluate import RETRYABLE

    reasons: Counter[str] = Counter()
    for r in results:
        reasons.update(r.get("failure_reasons") or {})
    retryable = sum(n for reason, n in reasons.items() if reason.startswith(RETRYABLE))
    lines = [f"error: {failures} items failed (status 'failed' in samples.jsonl, with the error); top reasons:"]
    lines += [f"  {n} x {reason}" for reason, n in reasons.most_common(top)]
    if len(reasons) > top:
        lines.append(f"  ... and {len(reasons) - top} more reasons (results.json failure_reasons)")
    if retryable:
        lines.append(f"rerun the same command to retry the {retryable} adapter error(s); finished items are kept")
    if retryable < failures:
        lines.append(f"{failures - retryable} failure(s) come from the data or the adapter's output: a rerun "
                     "repeats them; fix those, then rerun")
    return "\n".join(lines)
