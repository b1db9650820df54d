"""`mr2bench reproduce`: the paper's table for the paper's models, our number beside the paper's."""
from __future__ import annotations

import argparse
from pathlib import Path

from mr2bench.cli import add_shared

HELP = """Run the paper's table (arXiv 2604.10966): every entry that can run here, each through evaluate-model's
runner (same folders, same resume: rerun the command after a crash), then OUT/reproduce.md and
OUT/reproduce.json with ours [95% CI] / the paper's / the difference per benchmark and Avg. An entry that
cannot run here is marked with its reason (no key, no weights in the Hugging Face cache, no GPU).
The table config is versioned in the package (mr2bench/tables/paper_table_v1.json); --config uses another."""
EPILOG = """examples:
  mr2bench reproduce --only length,random --data-dir mr2bench-image=runs/demo-image \\
      --data-dir mr2bench-video=runs/demo-video --out runs/table
  mr2bench reproduce --out runs/table                        # every entry, all six benchmarks from the Hub
  mr2bench reproduce --only ixc-2.5-reward,skywork-vl-reward --benchmarks vl-rewardbench --out runs/table
  mr2bench reproduce --list                                  # entries, their specs, what each needs"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="FILE.json", help="another table config")
    parser.add_argument("--only", default="", metavar="A,B", help="run only these entries (names: --list)")
    parser.add_argument("--skip", default="", metavar="A,B", help="leave these entries out")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument("--benchmarks", default=None, metavar="A,B",
                        help="benchmarks to run (default: those given a --data-dir, else all six)")
    parser.add_argument("--data-dir", action="append", default=[], metavar="BENCH=DIR|DIR",
                        help="as evaluate-model: a local folder per benchmark (default: the Hub)")
    add_shared(parser, "seed", "out", "log-level", "limit", out_required=False)
    parser.add_argument("--batch-size", type=int, default=1, metavar="N")
    parser.add_argument("--num-frames", type=int, default=16, metavar="N", help="video frames (default 16)")
    parser.add_argument("--device", default="auto", help="torch device (default: auto)")
    parser.add_argument("--dtype", default="auto", help="torch dtype (default: auto)")
    parser.add_argument("--allow-cpu", action="store_true", help="run GPU-sized entries on CPU too")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--overwrite", action="store_true", help="as evaluate-model --overwrite")


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _benchmarks(args: argparse.Namespace, columns: tuple[str, ...]) -> list[str]:
    from mr2bench.registry import UnknownNameError, get_benchmark
    from mr2bench.schema import DataError

    if args.benchmarks:
        names = _names(args.benchmarks)
    else:  # a BENCH=DIR names its benchmark; a bare DIR holds one folder per benchmark
        given = [v.partition("=")[0] for v in args.data_dir if "=" in v and v.partition("=")[0] in columns]
        bare = [v for v in args.data_dir if v.partition("=")[0] not in columns]
        names = given + [c for c in columns if bare and (Path(bare[0]) / c).is_dir() and c not in given]
        names = names or list(columns)
    for n in names:
        try:
            get_benchmark(n)
        except UnknownNameError as exc:
            raise DataError(str(exc), field="--benchmarks") from None
    return names


def run(args: argparse.Namespace) -> int:
    from mr2bench.reproduce import ReproduceConfig, load_table, run_table, select
    from mr2bench.schema import DataError

    from .evaluate import parse_data_dirs

    table = load_table(args.config)
    entries = select(table.entries, _names(args.only), _names(args.skip))
    if args.list:
        for e in entries:
            paper = "paper row" if e.paper else "no paper numbers"
            print(f"{e.name:20s} {e.model:60s} {paper}{'; needs a GPU' if e.needs_gpu else ''}"
                  f"{'; key ' + e.api_key_env if e.api_key_env else ''}")
        return 0
    if not args.out:
        raise DataError("required (where the runs and the table go)", field="--out")
    if args.batch_size < 1:
        raise DataError("must be >= 1", field="--batch-size")
    names = _benchmarks(args, table.columns)
    rc = ReproduceConfig(out=Path(args.out), benchmarks=tuple(names), data_dirs=parse_data_dirs(args.data_dir, names),
                         seed=args.seed, limit=args.limit, batch_size=args.batch_size, num_frames=args.num_frames,
                         device=args.device, dtype=args.dtype, allow_cpu=args.allow_cpu,
                         progress=not args.no_progress, overwrite=args.overwrite, command=args.invocation)
    rows, problems = run_table(table, entries, rc)
    print((rc.out / "reproduce.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {rc.out / 'reproduce.md'} and {rc.out / 'reproduce.json'} ({len(rows)} entries, "
          f"{sum(r['status'].startswith('ran') for r in rows)} ran)")
    return 1 if problems else 0
