"""Speed of build-benchmark through the CLI at the paper's scale and beyond (19 models, ~188 votes/question).

Each build runs as its own process, exactly as a user runs it (``python -m mr2bench build-benchmark video
FILE --out DIR``): wall time includes interpreter start, imports, validation, the denoising posterior,
items, leaderboard, plots and card; peak memory is that process's maximum resident set. Sizes:
  94K   500 questions (the paper's scale; target <= 5 s on an idle machine)
  940K  5,000 questions (10x: target time ratio <= 10x)
  3M    16,000 questions (``--3m``; target <= 90 s and 2 GB peak; slow to generate, run it rarely)
On a shared machine absolute times are inflated: the ratios are measured in the same run, and the load
average before each build is printed so the conditions can be read off.
The per-stage breakdown comes from the build's timings.json.
Peak memory is the build process's own: inputs are generated in a separate process and the benchmark
process imports only the standard library, because Linux charges the parent's resident set at fork/exec
to the child's maximum (an earlier version of this script reported 3.2 GB for a 3M build whose own peak
was 1.9 GB); the figure is read with ``os.wait4`` for that one child.

Run: python benchmarks/bench_build.py [--skip-10x] [--3m]
Last line: ``build 94K: X.X s``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"94K": 500, "940K": 5000, "3M": 16000}
WRITER = """import sys
from mr2bench.ranking.simulate import pairwise_arena
df = pairwise_arena(7, n_questions=int(sys.argv[1]), votes_per_question=188, setting="adversarial").judgments
df.to_parquet(sys.argv[2], index=False)
print(len(df))
"""


def write_input(n_questions: int, tmp: Path, tag: str) -> tuple[Path, int]:
    """The planted arena as Parquet, written by a child process (this process stays small)."""
    src = tmp / f"{tag}.parquet"
    proc = subprocess.run([sys.executable, "-c", WRITER, str(n_questions), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"writing {tag} failed:\n{proc.stderr[-2000:]}")
    return src, int(proc.stdout.split()[-1])


def cli_build(src: Path, tmp: Path, tag: str) -> tuple[float, float, dict]:
    """(wall seconds, peak RSS in GiB of that process alone, per-stage seconds) of one CLI build."""
    out = tmp / f"out-{tag}"
    t = time.perf_counter()
    with open(tmp / f"{tag}.stderr", "w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mr2bench", "build-benchmark", "video", str(src), "--out",
                                 str(out)], stdout=subprocess.DEVNULL, stderr=err,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"build {tag} failed:\n{err.read()[-2000:]}")
    stages = json.loads((out / "timings.json").read_text())["seconds"]
    return wall, usage.ru_maxrss / 1024 ** 2, stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-10x", action="store_true")
    ap.add_argument("--3m", dest="three_m", action="store_true", help="also build 3M judgments (slow)")
    args = ap.parse_args()
    sizes = ["94K"] + ([] if args.skip_10x else ["940K"]) + (["3M"] if args.three_m else [])
    res = {}
    print(f"benchmark process peak RSS (the floor of every child's figure): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for tag in sizes:
            src, n = write_input(SIZES[tag], tmp, tag)
            load = os.getloadavg()[0]
            wall, peak, stages = cli_build(src, tmp, tag)
            res[tag] = (wall, n, stages)
            print(f"{tag}: {n} judgments, {SIZES[tag]} questions: {wall:.1f} s end to end through the CLI, "
                  f"peak {peak:.2f} GiB (1-min load average before it: {load:.1f} on {os.cpu_count()} cores)")
            for k, v in sorted(stages.items(), key=lambda kv: -kv[1]):
                print(f"  {k:<14} {v:7.2f} s")
    base = res["94K"][0]
    for tag in sizes[1:]:
        wall, n, _ = res[tag]
        ratio = n / res["94K"][1]
        print(f"{tag} / 94K: {ratio:.1f}x the judgments, {wall / base:.2f}x the time (target <= {ratio:.0f}x)")
    print(f"build 94K: {base:.1f} s")


if __name__ == "__main__":
    main()
