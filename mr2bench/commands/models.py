"""`mr2bench models`: the model kinds --model takes."""
from __future__ import annotations

import argparse

from mr2bench.cli import add_shared

HELP = """List the model kinds --model accepts (KIND:TARGET) with what each one runs."""
EPILOG = """examples:
  mr2bench models
  mr2bench models --json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    add_shared(parser, "log-level")


def run(args: argparse.Namespace) -> int:
    from .catalog import model_rows, print_rows

    print_rows(model_rows(), args.json, ("kind", "usage"), ("description",))
    return 0
