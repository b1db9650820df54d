"""`mr2bench benchmarks`: the registered benchmarks, as --benchmarks takes them."""
from __future__ import annotations

import argparse

from mr2bench.cli import add_shared

HELP = """List the registered benchmarks: name, version, headline metric, source, split, protocol."""
EPILOG = """examples:
  mr2bench benchmarks
  mr2bench benchmarks --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    add_shared(parser, "log-level")


def run(args: argparse.Namespace) -> int:
    from .catalog import benchmark_rows, print_rows

    print_rows(benchmark_rows(), args.json, ("name", "version", "metric", "source", "split", "revision"),
               ("description", "protocol"))
    return 0
