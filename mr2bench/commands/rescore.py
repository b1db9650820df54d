"""`mr2bench rescore`: recompute every metric from samples.jsonl alone and check results.json."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mr2bench.cli import add_shared

HELP = """Recompute every metric from samples.jsonl alone and check that it equals results.json.

Takes evaluate-model's OUT (every model in it), OUT/<model> (every benchmark folder in it) or one
OUT/<model>/<benchmark> folder. Exits 1 and lists
every differing field when a results.json does not match its samples, or when fingerprint.json is missing or
disagrees with results.json (model, seed, permutations, benchmark version, policies, item count)."""

EPILOG = """examples:
  mr2bench rescore runs/eval
  mr2bench rescore runs/eval/length
  mr2bench rescore runs/eval/length/vl-rewardbench"""

CHECKED = ("metrics", "per_category", "ci95", "n_items", "n_scored", "n_failed", "n_parse_failures",
           "failure_reasons", "usage")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="DIR", help="OUT, OUT/<model> or OUT/<model>/<benchmark>")
    add_shared(parser, "log-level")


def diff(a, b, path: str = "") -> list[str]:
    """Human-readable differences between two JSON values (floats compared exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}{key}: {'missing in results.json' if key not in a else 'not recomputed'}")
            else:
                out += diff(a[key], b[key], f"{path}{key}.")
        return out
    return [] if a == b else [f"{path.rstrip('.')}: results.json {a!r} != recomputed {b!r}"]


def fingerprint_problems(folder: Path, stored: dict) -> list[str]:
    """fingerprint.json must be present and agree with results.json on what both record."""
    from mr2bench.run_guard import FINGERPRINT, read_fingerprint, results_mismatch

    fp = read_fingerprint(folder)
    if fp is None:
        return [f"{FINGERPRINT}: missing (the run's settings and data digest are unknown)"]
    if "unreadable" in fp:
        return [f"{FINGERPRINT}: not valid JSON"]
    return results_mismatch(fp, stored)


def _label(root: Path, folder: Path) -> str:
    return folder.name if folder == root else str(folder.relative_to(root))


def run(args: argparse.Namespace) -> int:
    import json

    from mr2bench.evaluate import RESULTS, metrics_from_records
    from mr2bench.sample_files import SAMPLES, read_records
    from mr2bench.registry import get_benchmark
    from mr2bench.schema import DataError

    root = Path(args.path)
    # one benchmark folder, OUT/<model>, or evaluate-model's OUT (every model in it)
    folders = [root] if (root / RESULTS).is_file() else sorted(
        p.parent for p in [*root.glob(f"*/{RESULTS}"), *root.glob(f"*/*/{RESULTS}")])
    if not folders:
        raise DataError(f"no {RESULTS} found in {root} or its subfolders", field="path")
    bad = 0
    for folder in folders:
        stored = json.loads((folder / RESULTS).read_text(encoding="utf-8"))
        spec = get_benchmark(stored["benchmark"])
        if (spec.version, spec.tie_policy, spec.parse_policy) != (
                stored["benchmark_version"], stored["policies"]["tie"], stored["policies"]["parse"]):
            print(f"{_label(root, folder)}: note: spec is now version {spec.version}; results were made with "
                  f"{stored['benchmark_version']}", file=sys.stderr)
        samples = folder / SAMPLES
        if not samples.is_file():
            raise DataError(f"missing {SAMPLES}", file=str(folder))
        computed = metrics_from_records(read_records(samples), spec,
                                        (stored.get("ci95") or {}).get("samples", 1000))
        diffs = [d for key in CHECKED for d in diff({key: stored.get(key)}, {key: computed[key]})]
        diffs += fingerprint_problems(folder, stored)
        if diffs:
            bad += 1
            print(f"{_label(root, folder)}: MISMATCH ({len(diffs)} fields)")
            for d in diffs:
                print(f"  {d}")
        else:
            head = computed["metrics"].get(stored["headline_metric"])
            print(f"{_label(root, folder)}: ok ({stored['headline_metric']} = "
                  f"{'n/a' if head is None else f'{100 * head:.1f}'}, n={computed['n_items']})")
    return 1 if bad else 0
