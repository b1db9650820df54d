"""kill -9 at named points of a build (MR2BENCH_TEST_CRASH_AT) leaves OUT as the old complete build, the new
complete build, or a folder every reader refuses in one line: never a mixture, never a stale file."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mr2bench.build_folder import (CRASH_ENV, build_atomically, leftover_siblings, verify_build_folder,
                                   write_manifest)
from mr2bench.cli import main
from mr2bench.schema import DataError

# a small image demo build: every crash point of a full build, in a few seconds
IMAGE = ["build-benchmark", "image", "--out", "OUT", "--limit", "8", "--variants", "1"]
BEFORE_SWAP = ["between-tables", "tables", "plots", "before-manifest", "after-manifest"]
POINTS = [*BEFORE_SWAP, "between-renames", "before-trash-removed"]
FRESH_POINTS = ["between-tables", "plots", "after-manifest", "between-renames", "before-trash-removed"]
STALE = "annotators-2023.png"
NOT_COMPARED = ("timings.json", "manifest.json")   # timings differ run to run; the manifest holds their hash


def _spawn(cwd: Path, seed: int, crash: str | None = None, argv: list[str] = IMAGE) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash:
        env[CRASH_ENV] = crash
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "mr2bench", *argv, "--seed", str(seed)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_all(procs: dict) -> dict:
    codes = {}
    for name, p in procs.items():
        _, err = p.communicate(timeout=600)
        codes[name] = p.returncode
        assert p.returncode in (0, -signal.SIGKILL), (name, err[-2000:])
    return codes


def _run_all(jobs: dict, width: int = 4) -> dict:
    """Run (cwd, seed, crash) jobs, ``width`` at a time (two cores: more only costs memory)."""
    codes, items = {}, list(jobs.items())
    for k in range(0, len(items), width):
        codes.update(_wait_all({name: _spawn(*job) for name, job in items[k:k + width]}))
    return codes


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _same_build(out: Path, ref: Path) -> bool:
    """File for file the reference build (same command, so README and report match byte for byte)."""
    if _files(out) != _files(ref):
        return False
    return all((out / f).read_bytes() == (ref / f).read_bytes() for f in _files(ref) if f not in NOT_COMPARED)


def state(out: Path, refs: dict[int, Path]) -> str:
    """'absent', 'refused', 'seed N' (verifies and equals the seed-N build) or 'MIXTURE'."""
    if not out.exists():
        return "absent"
    try:
        verify_build_folder(out)
    except DataError:
        return "refused"
    return next((f"seed {s}" for s, ref in refs.items() if _same_build(out, ref)), "MIXTURE")


def refused_by_readers(out: Path, tmp: Path, capsys) -> str:
    """evaluate-model and publish --stage-only both exit 2 with the same one-line error; returns it."""
    errors = []
    for argv in (["evaluate-model", "--model", "random", "--benchmarks", "mr2bench-image", "--data-dir", str(out),
                  "--out", str(tmp / "eval")], ["publish", str(out), "--stage-only", str(tmp / "stage")]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert "validated" not in captured.out and "Traceback" not in captured.err
        lines = [x for x in captured.err.splitlines() if x.startswith("error:")]
        assert len(lines) == 1, captured.err
        errors.append(lines[0])
    assert f"build folder {out}" in errors[0] and f"{out}" in errors[1]
    return errors[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Reference builds of seed 0 and 1, then one build per crash point into a fresh OUT and into a copy
    of the seed-0 build (rebuilt with seed 1), all run side by side."""
    root = tmp_path_factory.mktemp("crash")
    assert _run_all({s: (root / f"ref{s}", s, None) for s in (0, 1)}) == {0: 0, 1: 0}
    refs = {s: root / f"ref{s}" / "OUT" for s in (0, 1)}
    # the older build also holds a plot the new one does not make (as annotators.png once was): it must go
    (refs[0] / STALE).write_bytes((refs[0] / "annotators.png").read_bytes())
    write_manifest(refs[0])
    jobs = {}
    for point in POINTS:
        if point in FRESH_POINTS:
            jobs[("fresh", point)] = (root / "fresh" / point, 1, point)
        shutil.copytree(refs[0], root / "old" / point / "OUT")
        jobs[("old", point)] = (root / "old" / point, 1, point)
    codes = _run_all(jobs)
    assert all(code == -signal.SIGKILL for code in codes.values()), codes   # every point was reached
    return root, refs


@pytest.mark.parametrize("point", FRESH_POINTS)
def test_kill_into_fresh_out(runs, point):
    root, refs = runs
    out = root / "fresh" / point / "OUT"
    want = "seed 1" if point == "before-trash-removed" else "absent"
    assert state(out, refs) == want


@pytest.mark.parametrize("point", POINTS)
def test_kill_while_rebuilding_an_existing_out(runs, point):
    root, refs = runs
    out = root / "old" / point / "OUT"
    want = {"between-renames": "absent", "before-trash-removed": "seed 1"}.get(point, "seed 0")
    assert state(out, refs) == want
    assert (out / STALE).exists() == (want == "seed 0")     # seed 1 == the new build's files, exactly
    if want == "seed 0":
        assert json.loads((out / "build_report.json").read_text())["seed"] == 0
        assert json.loads((out / "manifest.json").read_text())["build"]["seed"] == 0


def test_killed_swap_is_refused_then_repaired(runs, tmp_path, capsys):
    """Killed between the two renames: OUT is absent, readers name the leftovers; the next build cleans up."""
    root, refs = runs
    work = root / "old" / "between-renames"
    out = work / "OUT"
    names = sorted(p.name.split("-")[0] for p in leftover_siblings(out))
    assert names == ["OUT.tmp", "OUT.trash"]       # the new sealed build and the old one
    error = refused_by_readers(out, tmp_path, capsys)
    assert "not found; an interrupted build left OUT.t" in error
    _wait_all({"rerun": _spawn(work, 1)})
    assert state(out, refs) == "seed 1" and leftover_siblings(out) == []


def test_readers_refuse_damaged_and_unsealed_folders(runs, tmp_path, capsys):
    """A truncated table, an extra file, an unsealed (pre-manifest) build: refused in one line."""
    _, refs = runs
    cases = {"truncated": "file items.parquet changed", "stale": "file annotators_old.png is not in manifest.json",
             "unsealed": "manifest.json missing"}
    for case, why in cases.items():
        out = tmp_path / case
        shutil.copytree(refs[0], out)
        if case == "truncated":   # what a writer killed mid-file leaves
            data = (out / "items.parquet").read_bytes()
            (out / "items.parquet").write_bytes(data[: len(data) // 2])
        elif case == "stale":     # a plot an earlier build wrote and this one did not
            shutil.copyfile(out / "annotators.png", out / "annotators_old.png")
        else:
            (out / "manifest.json").unlink()
        error = refused_by_readers(out, tmp_path / f"r-{case}", capsys)
        assert why in error and "rebuild it with mr2bench build-benchmark image --out OUT" in error, error
    assert main(["evaluate-model", "--model", "random", "--benchmarks", "mr2bench-image", "--data-dir",
                 str(refs[0]), "--out", str(tmp_path / "ok")]) == 0   # the intact build is read


def test_failed_build_is_swapped_in_without_manifest(tmp_path, capsys):
    """A build that fails after writing its reports replaces OUT with them, unsealed: readers refuse it."""
    out = tmp_path / "OUT"

    def good(tmp: Path) -> None:
        (tmp / "build_report.json").write_text('{"seed": 0, "command": "build-benchmark image --out OUT"}\n')
        (tmp / "items.parquet").write_bytes(b"old")
        (tmp / "annotators.png").write_bytes(b"old plot")

    def failing(tmp: Path) -> None:
        (tmp / "build_report.json").write_text('{"seed": 1, "command": "build-benchmark image --out OUT"}\n')
        (tmp / "quarantine.jsonl").write_text('{"reason": "bad_rank"}\n')
        raise DataError("0 items sampled")

    build_atomically(out, good)
    verify_build_folder(out)
    with pytest.raises(DataError, match="0 items sampled"):
        build_atomically(out, failing)
    assert _files(out) == ["build_report.json", "quarantine.jsonl"]   # the old items and plot are gone
    error = refused_by_readers(out, tmp_path, capsys)
    assert "is from a failed build (no manifest.json): build_report.json and quarantine.jsonl say why" in error


def test_input_errors_and_bugs_leave_out_untouched(tmp_path):
    out = tmp_path / "OUT"
    build_atomically(out, lambda tmp: (tmp / "build_report.json").write_text("{}\n"))
    before = (out / "manifest.json").read_bytes()
    for exc in (DataError("no such file"), KeyboardInterrupt()):
        def boom(tmp: Path, exc=exc) -> None:
            (tmp / "items.parquet").write_bytes(b"partial")
            raise exc
        with pytest.raises(type(exc)):
            build_atomically(out, boom)
        assert (out / "manifest.json").read_bytes() == before and leftover_siblings(out) == []
    verify_build_folder(out)
    # a folder build-benchmark did not write is never replaced (OUT is swapped as a whole)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a build-benchmark folder"):
        build_atomically(mine, lambda tmp: None)
    assert (mine / "todo.txt").read_text() == "keep me"


def test_sigkill_of_a_demo_video_build_mid_write(runs, tmp_path):
    """The 55,926-judgment video demo, killed by a real SIGKILL as soon as it starts writing items.parquet
    (the file may be truncated), over an older complete build: OUT is still that build, intact."""
    _, refs = runs
    work = tmp_path / "video"
    shutil.copytree(refs[0], work / "OUT")
    argv = ["build-benchmark", "video", "--out", "OUT", "--limit", "10", "--variants", "1"]
    proc = _spawn(work, 1, argv=argv)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        tmps = [p for p in leftover_siblings(work / "OUT") if ".tmp-" in p.name]
        if tmps and (tmps[0] / "items.parquet").exists():
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    tmps = [p for p in leftover_siblings(work / "OUT") if ".tmp-" in p.name]
    assert len(tmps) == 1 and (tmps[0] / "items.parquet").exists()     # it died mid-build, unsealed
    assert not (tmps[0] / "manifest.json").exists()
    assert state(work / "OUT", refs) == "seed 0"


def test_python_api_builds_are_sealed_and_swapped_too(runs, tmp_path):
    """build_image(...) from Python goes through the same temporary folder and swap as the CLI."""
    from mr2bench.builders.image import build_image
    from mr2bench.builders.pipeline import BuildConfig

    _, refs = runs
    out = tmp_path / "api"
    shutil.copytree(refs[0], out)          # an older sealed build holding a plot the new one does not make
    cfg = BuildConfig(kind="image", out=out, seed=1, variants=1, limit=8, synthetic=True)
    build_image(None, cfg)
    assert cfg.out == out and leftover_siblings(out) == []
    verify_build_folder(out)
    assert not (out / STALE).exists()
    assert json.loads((out / "manifest.json").read_text())["build"]["seed"] == 1


@pytest.mark.slow
def test_kill_9_at_several_points_of_a_paper_size_build(tmp_path):
    """The paper's scale (about 94K crowd judgments over 300 questions and 19 models) from a user CSV:
    a complete seed-0 build, then seed-1 rebuilds killed at named points and by a real SIGKILL while the
    build runs. Each leaves the old complete build, the new complete build, or a folder readers refuse."""
    from mr2bench.ranking.simulate import pairwise_arena

    votes = pairwise_arena(5, n_questions=300, votes_per_question=315).judgments
    assert 85_000 < len(votes) < 105_000
    src = tmp_path / "votes.csv"
    votes.to_csv(src, index=False)
    argv = ["build-benchmark", "video", str(src), "--out", "OUT", "--variants", "1"]
    ref = {s: tmp_path / f"ref{s}" for s in (0, 1)}
    assert _wait_all({s: _spawn(ref[s], s, argv=argv) for s in (0, 1)}) == {0: 0, 1: 0}
    refs = {s: ref[s] / "OUT" for s in (0, 1)}
    for point in ("between-tables", "before-manifest", "between-renames"):
        work = tmp_path / point
        shutil.copytree(refs[0], work / "OUT")
        assert _wait_all({point: _spawn(work, 1, crash=point, argv=argv)}) == {point: -signal.SIGKILL}
        assert state(work / "OUT", refs) == ("absent" if point == "between-renames" else "seed 0"), point
    work = tmp_path / "sigkill"
    shutil.copytree(refs[0], work / "OUT")
    proc = _spawn(work, 1, argv=argv)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:   # killed while it denoises, before any table
        if [p for p in leftover_siblings(work / "OUT") if ".tmp-" in p.name]:
            time.sleep(1.0)
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state(work / "OUT", refs) in ("seed 0", "seed 1")
    assert _wait_all({"rerun": _spawn(work, 1, argv=argv)}) == {"rerun": 0}   # the next build cleans up
    assert state(work / "OUT", refs) == "seed 1" and not leftover_siblings(work / "OUT")
