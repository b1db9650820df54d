"""The ``mr2bench`` command line. Argument parsing only: each command imports what it needs in run()."""
from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Sequence

from . import __version__

# subcommand -> module under mr2bench.commands (each has HELP, EPILOG, add_arguments, run)
COMMANDS = {
    "build-benchmark": "build",
    "evaluate-model": "evaluate",
    "publish": "publish",
    "train": "train",
    "rescore": "rescore",
    "benchmarks": "benchmarks",
    "models": "models",
    "report": "report",
    "reproduce": "reproduce",
}

def _positive_int(value: str, flag: str) -> int:
    """argparse type for counts that must be >= 1 (``--limit 0`` would score nothing and exit 0)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n} (omit {flag} to use every item)")
    return n


_SHARED = {
    "seed": (("--seed",), dict(type=int, default=0, help="seed for every random choice (default: 0)")),
    "out": (("--out",), dict(metavar="DIR", help="output folder")),
    "log-level": (("--log-level",), dict(default="info", choices=["debug", "info", "warning", "error"],
                                         help="logging level (default: info)")),
    "limit": (("--limit",), dict(type=lambda v: _positive_int(v, "--limit"), default=None, metavar="N",
                                 help="use only the first N items / questions (smoke runs)")),
}


def add_shared(parser: argparse.ArgumentParser, *names: str, out_required: bool = False) -> None:
    """Declare the shared flags (--seed, --out, --log-level, --limit) the same way in every command."""
    for name in names:
        flags, kwargs = _SHARED[name]
        kwargs = dict(kwargs)
        if name == "out" and out_required:
            kwargs["required"] = True
        parser.add_argument(*flags, **kwargs)


def _module(name: str):
    return importlib.import_module(f"mr2bench.commands.{COMMANDS[name]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    if only is not None:
        mod = _module(only)
        parser = argparse.ArgumentParser(prog=only, description=mod.HELP, epilog=mod.EPILOG, formatter_class=fmt)
        mod.add_arguments(parser)
        return parser
    parser = argparse.ArgumentParser(
        prog="mr2bench", formatter_class=fmt,
        description="Build and evaluate N-way benchmarks for multimodal reward models (MR^2Bench).",
        epilog="examples:\n  mr2bench build-benchmark video --out runs/video\n"
               "  mr2bench evaluate-model --model length --benchmarks mr2bench-video --data-dir runs/video --out runs/eval\n"
               "  mr2bench <command> --help")
    parser.add_argument("--version", action="version", version=f"mr2bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        mod = _module(name)
        p = sub.add_parser(name, help=mod.HELP.splitlines()[0], description=mod.HELP, epilog=mod.EPILOG,
                           formatter_class=fmt)
        mod.add_arguments(p)
    return parser


def _run(parser: argparse.ArgumentParser, command: str, argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    from .secrets import install_log_filter, register_env, scrub

    for env in (getattr(args, "api_key_env", None), getattr(args, "token_env", None)):
        register_env(env)   # scrubbed from everything that leaves the process, like the Hub token
    # the command as typed, for provenance (build reports, results.json, cards); credentials in URLs: ***
    args.invocation = scrub(shlex.join([parser.prog, *argv]))
    # --log-level is ours; third-party loggers (matplotlib's font scan, httpx, datasets) stay at warning
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("mr2bench").setLevel(getattr(args, "log_level", "info").upper())
    install_log_filter()
    from .schema import DataError

    try:
        return int(_module(command or args.command).run(args) or 0)
    except DataError as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return _run(build_parser(), "", argv)


def build_benchmark_main(argv: Sequence[str] | None = None) -> int:
    return _run(build_parser("build-benchmark"), "build-benchmark", argv)


def evaluate_model_main(argv: Sequence[str] | None = None) -> int:
    return _run(build_parser("evaluate-model"), "evaluate-model", argv)
