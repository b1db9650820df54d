"""`mr2bench benchmarks`: the registered benchmarks, as --benchmarks takes them."""
from __future__ import annotations

import argparse

from .catalog import add_arguments  # noqa: F401  (the CLI reads it from this module)

HELP = """List the registered benchmarks: name, version, headline metric, source, split, protocol."""
EPILOG = """examples:
  mr2bench benchmarks
  mr2bench benchmarks --json"""


def run(args: argparse.Namespace) -> int:
    from .catalog import benchmark_rows, print_rows

    print_rows(benchmark_rows(), args.json, ("name", "version", "metric", "source", "split", "revision"),
               ("description", "protocol"))
    return 0
