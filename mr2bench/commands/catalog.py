"""The rows `mr2bench benchmarks` and `mr2bench models` print: what can be evaluated, and with what."""
from __future__ import annotations

import argparse
import json

from mr2bench.cli import add_shared


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags both listing commands take."""
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    add_shared(parser, "log-level")


def benchmark_rows() -> list[dict[str, str]]:
    from mr2bench.registry import benchmark_names, get_benchmark

    rows = []
    for name in benchmark_names():
        s = get_benchmark(name)
        rows.append({"name": s.name, "version": s.version, "source": s.hub_id, "split": s.split,
                     "revision": s.revision or "main (unpinned)", "metric": s.headline_metric,
                     "description": s.description, "protocol": s.protocol})
    return rows


def model_rows() -> list[dict[str, str]]:
    from mr2bench.adapters import MODEL_KINDS

    return [{"kind": k, "usage": MODEL_KINDS.get(k).usage, "description": MODEL_KINDS.get(k).description}
            for k in MODEL_KINDS.names()]


def print_rows(rows: list[dict[str, str]], as_json: bool, head: tuple[str, ...], tail: tuple[str, ...]) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in head}
    print("  ".join(k.ljust(widths[k]) for k in head))
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) for k in head))
        for k in tail:
            if r.get(k):
                print(f"    {k}: {r[k]}")
