"""`mr2bench train`: not built yet."""
from __future__ import annotations

import argparse
import sys

from mr2bench.cli import add_shared

HELP = "train (not built yet)"
EPILOG = "example:\n  mr2bench train --help"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_shared(parser, "seed", "out", "log-level", "limit")


def run(args: argparse.Namespace) -> int:
    print("mr2bench train is not built yet", file=sys.stderr)
    return 2
