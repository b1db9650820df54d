"""`mr2bench models`: the model kinds --model takes."""
from __future__ import annotations

import argparse

from .catalog import add_arguments  # noqa: F401  (the CLI reads it from this module)

HELP = """List the model kinds --model accepts (KIND:TARGET) with what each one runs."""
EPILOG = """examples:
  mr2bench models
  mr2bench models --json"""


def run(args: argparse.Namespace) -> int:
    from .catalog import model_rows, print_rows

    print_rows(model_rows(), args.json, ("kind", "usage"), ("description",))
    return 0
