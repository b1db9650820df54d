"""Run integrity of evaluate-model, attacked from the command line: a resume into a folder that holds a
different run, two writers on one --out, adapters that return garbage, records an older version wrote,
and runs with nothing to score. Each test performs the attack and asserts the promised outcome."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mr2bench.cli import main
from test_evaluate import REPO, VOLATILE, adapters_file, build_nway, evaluate, results, write_parquet
from test_evaluate_dist import free_port

BENCH = "mr2bench-image"


def run(out: Path, data: Path, *extra: str, model: str = "random") -> int:
    return evaluate("--model", model, "--benchmarks", BENCH, "--data-dir", str(data), "--out", str(out), *extra)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mr2bench", "evaluate-model", "--no-progress", *args], cwd=REPO,
                            env=env or dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---------------------------------------------------------------- 1. fingerprint: resume only the same run
def test_resume_into_a_different_run_is_refused_before_anything_is_written(tmp_path, capsys):
    data, out = tmp_path / "img", tmp_path / "out"
    rows = build_nway(data, 12, "image")
    assert run(out, data) == 0
    bench = out / "random" / BENCH
    before = folder_bytes(bench)
    # a rebuilt benchmark whose ids match but whose gold rankings differ, as build-benchmark would write it
    rebuilt = tmp_path / "rebuilt"
    build_nway(rebuilt, 12, "image")
    write_parquet(rebuilt / "items.parquet", [dict(r, rankings=r["rankings"][::-1]) for r in rows])
    attacks = {("--seed", "1"): "seed 0 -> 1", ("--permutations", "3"): "permutations 1 -> 3",
               ("--limit", "5"): "data.n_items 12 -> 5", ("--model-arg", "temperature=0.7"): "model_args.temperature"}
    capsys.readouterr()
    for flags, named in attacks.items():
        assert run(out, data, *flags) == 2
        line = one_error_line(capsys.readouterr().err)
        assert named in line and "--overwrite" in line and "another --out" in line, line
    assert run(out, rebuilt) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "data.digest" in line and "data.n_items" not in line, line
    assert folder_bytes(bench) == before                      # nothing appended, nothing rewritten
    assert main(["rescore", str(out / "random")]) == 0         # the earlier, valid run still rescores
    # batch size and progress bars do not change scores: the same run resumes
    assert run(out, data, "--batch-size", "4") == 0 and "0 scored now, 12 resumed" in capsys.readouterr().out


def test_overwrite_replaces_the_run_and_a_killed_overwrite_keeps_the_old_one(tmp_path, monkeypatch):
    data, out = tmp_path / "img", tmp_path / "out"
    build_nway(data, 12, "image")
    spec = f"python:{adapters_file(tmp_path)}:Killer"
    monkeypatch.setenv("MR2_CALLS", str(tmp_path / "calls0"))
    assert run(out, data, model=spec) == 0
    slug = next(p.name for p in out.iterdir() if p.is_dir())
    bench = out / slug / BENCH
    before = folder_bytes(bench)
    env = dict(os.environ, MR2_CALLS=str(tmp_path / "calls1"), MR2_KILL_AT="6")
    killed = cli("--model", spec, "--benchmarks", BENCH, "--data-dir", str(data), "--out", str(out), "--seed", "1",
                 "--overwrite", env=env)
    assert killed.wait(timeout=120) == 137
    assert folder_bytes(bench) == before and main(["rescore", str(bench)]) == 0
    monkeypatch.setenv("MR2_CALLS", str(tmp_path / "calls2"))
    assert run(out, data, "--seed", "1", "--overwrite", model=spec) == 0
    assert len((tmp_path / "calls2").read_text().splitlines()) == 7   # the killed overwrite resumed
    assert results(out, slug, BENCH)["seed"] == 1 and json.loads((bench / "fingerprint.json").read_text())["seed"] == 1
    assert not (out / slug / ".overwrite").exists() and not list((out / slug).glob(".*.replaced"))
    assert main(["rescore", str(bench)]) == 0


def test_rescore_checks_the_fingerprint(tmp_path, capsys):
    data, out = tmp_path / "img", tmp_path / "out"
    build_nway(data, 6, "image")
    assert run(out, data) == 0
    fp_path = out / "random" / BENCH / "fingerprint.json"
    fp = json.loads(fp_path.read_text())
    fp_path.write_text(json.dumps(dict(fp, seed=5)))
    capsys.readouterr()
    assert main(["rescore", str(out / "random")]) == 1
    assert "seed: fingerprint 5 != results.json 0" in capsys.readouterr().out
    fp_path.unlink()
    assert main(["rescore", str(out / "random")]) == 1
    assert "fingerprint.json: missing" in capsys.readouterr().out


# ---------------------------------------------------------------- 2. one writer per run folder
GATED = '''
import os, time
class Gated:
    """Holds its first item until the test opens the gate, so that two runs surely overlap."""
    def score(self, request):
        gate = os.environ["MR2_GATE"]
        deadline = time.time() + 60
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.05)
        return [float(len(r)) for r in request.responses]
'''


def test_two_identical_runs_at_once_one_writes_the_other_gets_one_line(tmp_path, monkeypatch):
    data, out = tmp_path / "img", tmp_path / "out"
    build_nway(data, 8, "image")
    (tmp_path / "gated.py").write_text(GATED)
    gate = tmp_path / "gate"
    args = ("--model", f"python:{tmp_path / 'gated.py'}:Gated", "--benchmarks", BENCH, "--data-dir", str(data))
    env = dict(os.environ, MR2_GATE=str(gate))
    procs = [cli(*args, "--out", str(out), env=env) for _ in range(2)]
    deadline = time.time() + 90
    while all(p.poll() is None for p in procs) and time.time() < deadline:  # the loser leaves at once
        time.sleep(0.05)
    gate.touch()
    done = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 2], done
    loser = next(err for code, _, err in done if code == 2)
    assert "is writing this run" in one_error_line(loser)
    slug = next(p.name for p in out.iterdir() if p.is_dir())
    gate_free = tmp_path / "clean"
    monkeypatch.setenv("MR2_GATE", str(gate))
    assert evaluate(*args, "--out", str(gate_free)) == 0

    strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k not in VOLATILE}
    assert strip(out / slug / BENCH / "results.json") == strip(gate_free / slug / BENCH / "results.json")
    assert (out / slug / BENCH / "samples.jsonl").read_bytes() == (gate_free / slug / BENCH / "samples.jsonl").read_bytes()
    assert not list((out / slug).glob(".*.lock"))               # released at the end


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_stale_lock_is_taken_over_a_live_one_is_not(tmp_path, capsys):
    data, out = tmp_path / "img", tmp_path / "out"
    build_nway(data, 6, "image")
    lock = out / "random" / f".{BENCH}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{os.getpid()} {socket.gethostname()}\n")      # a live writer on this host
    assert run(out, data) == 2
    assert f"process {os.getpid()}" in one_error_line(capsys.readouterr().err)
    assert not (out / "random" / BENCH).exists()
    lock.write_text(f"{dead_pid()} {socket.gethostname()}\n")       # killed with -9: its pid is gone
    assert run(out, data) == 0 and not lock.exists()


def test_a_locked_folder_stops_every_rank_of_a_multi_process_run(tmp_path):
    data, out = tmp_path / "img", tmp_path / "out"
    build_nway(data, 6, "image")
    lock = out / "random" / f".{BENCH}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{os.getpid()} {socket.gethostname()}\n")
    port = str(free_port())
    procs = [cli("--model", "random", "--benchmarks", BENCH, "--data-dir", str(data), "--out", str(out),
                 env=dict(os.environ, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=port, ACCELERATE_USE_CPU="true"))
             for r in range(2)]
    for p in procs:     # no rank waits forever at a barrier rank 0 never reaches
        assert p.wait(timeout=180) == 2
        assert "is writing this run" in p.communicate()[1]
    assert not (out / "random" / BENCH).exists()


# ---------------------------------------------------------------- 3. adapter output is untrusted
HOSTILE = '''
BAD = {1: [float("inf"), 0, 0, 0], 2: [float("nan"), 0, 0, 0], 3: [None, 0, 0, 0], 4: ["1.5", 0, 0, 0],
       5: [True, False, 0, 0], 6: [[1.0], 0, 0, 0], 7: [1.0, 2.0], 8: "1234", 9: None}
class Hostile:
    def score(self, request):
        q = int(request.item_id[1:].split("-")[0])
        return BAD.get(q, [float(len(r)) for r in request.responses])
'''


def test_hostile_scores_fail_their_items_and_the_run_finishes(tmp_path, capsys):
    data, out = tmp_path / "img", tmp_path / "out"
    build_nway(data, 12, "image")
    (tmp_path / "hostile.py").write_text(HOSTILE)
    model = f"python:{tmp_path / 'hostile.py'}:Hostile"
    assert run(out, data, model=model) == 1
    err = capsys.readouterr().err
    assert "9 items failed" in err and "rerun the same command" not in err and "Traceback" not in err
    slug = next(p.name for p in out.iterdir() if p.is_dir())
    res = results(out, slug, BENCH)
    assert (res["n_items"], res["n_failed"], res["n_scored"]) == (12, 9, 3)
    recs = {int(r["id"][1:].split("-")[0]): r for r in map(json.loads, (out / slug / BENCH / "samples.jsonl")
                                                              .read_text().splitlines())}
    assert "non-finite score at position 0: inf" in recs[1]["error"] and "NaN" in recs[2]["error"]
    assert all(recs[q]["status"] == "failed" and recs[q]["scores"] is None for q in range(1, 10))
    assert "non-numeric" in recs[5]["error"] and "2 scores for 4" in recs[7]["error"]
    assert sum(res["failure_reasons"].values()) == 9
    assert main(["rescore", str(out / slug)]) == 0
    assert run(out, data, model=model) == 1                      # a rerun retries them and survives again


def test_records_an_older_version_wrote_with_null_scores_are_retried(tmp_path, capsys):
    data, out = tmp_path / "img", tmp_path / "out"
    build_nway(data, 6, "image")
    assert run(out, data, model="length") == 0
    path = out / "length" / BENCH / "samples.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[2]["scores"][0] = None     # what the old writer made of inf: a null inside an 'ok' record
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    assert main(["rescore", str(out / "length")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "samples.jsonl:row 3" in line and "finite" in line
    assert run(out, data, model="length") == 0
    assert "1 scored now, 5 resumed" in capsys.readouterr().out
    assert main(["rescore", str(out / "length")]) == 0


# ---------------------------------------------------------------- 4. exit codes that mean something
def test_nothing_to_score_is_an_error(tmp_path, capsys):
    data, out = tmp_path / "img", tmp_path / "out"
    build_nway(data, 6, "image")
    capsys.readouterr()
    assert evaluate("--model", "random", "--benchmarks", "mr2bench-video", "--data-dir", str(data),
                    "--out", str(out)) == 2                    # an image folder given to the video benchmark
    line = one_error_line(capsys.readouterr().err)
    assert "mr2bench-video: 0 items to score" in line and "none of its rows is a mr2bench-video item" in line
    empty = tmp_path / "empty"
    write_parquet(empty / "items.parquet", [])
    assert run(out, empty) == 2 and "0 items to score" in one_error_line(capsys.readouterr().err)
    assert not list(out.rglob("*.json*"))
    for limit in ("0", "-5"):
        with pytest.raises(SystemExit) as exc:
            run(out, data, "--limit", limit)
        assert exc.value.code == 2 and "--limit: must be >= 1" in capsys.readouterr().err


def test_a_build_folder_given_to_another_benchmark_is_refused_before_it_is_read(tmp_path, capsys):
    from mr2bench.evaluate import _built_for

    # build-benchmark writes build_report.json naming the benchmark it built (README, build-benchmark outputs)
    (tmp_path / "build_report.json").write_text(json.dumps({"benchmark": "mr2bench-image", "kind": "image"}))
    for bench in ("mr2bench-video", "vl-rewardbench"):   # the other modality, and a benchmark of another layout
        assert run(tmp_path / f"out-{bench}", tmp_path, "--benchmarks", bench) == 2
        msg = one_error_line(capsys.readouterr().err)
        assert f"is a build-benchmark folder of mr2bench-image (build_report.json), not {bench} data" in msg
        assert "--benchmarks and --data-dir" in msg
    (tmp_path / "build_report.json").write_text("[1, 2]")      # not an object: no claim, no crash
    assert _built_for(tmp_path) is None


FLAKY = '''
class Flaky:
    def score(self, request):
        if request.item_id.startswith(("q1-", "q2-")):
            raise TimeoutError("read timed out after 2.0 s")
        return [float(len(r)) for r in request.responses]
'''


def test_rerun_hint_only_for_failures_a_rerun_can_fix(tmp_path, capsys):
    data, out = tmp_path / "img", tmp_path / "out"
    rows = build_nway(data, 8, "image")
    rows[3]["image"] = "media/missing.png"
    rows[5]["image"] = "media/gone.png"
    write_parquet(data / "items.parquet", rows)
    assert run(out, data, model="length") == 1
    err = capsys.readouterr().err
    assert "2 x media.path: image not found" in err, err

    assert "rerun the same command" not in err and "a rerun repeats them" in err
    (tmp_path / "flaky.py").write_text(FLAKY)
    assert run(tmp_path / "o2", data, model=f"python:{tmp_path / 'flaky.py'}:Flaky") == 1
    err = capsys.readouterr().err
    assert "2 x adapter error: TimeoutError" in err and "retry the 2 adapter error(s)" in err
    slug = next(p.name for p in (tmp_path / "o2").iterdir() if p.is_dir())
    res = results(tmp_path / "o2", slug, BENCH)
    assert res["failure_reasons"]["adapter error: TimeoutError"] == 2 and sum(res["failure_reasons"].values()) == 4
    path = tmp_path / "o2" / slug / BENCH / "results.json"
    path.write_text(json.dumps(dict(res, failure_reasons={})))
    assert main(["rescore", str(path.parent)]) == 1 and "failure_reasons" in capsys.readouterr().out
