"""Two processes (the env variables accelerate launch sets) give the same files as one process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from test_evaluate import REPO, VOLATILE, build_nway


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    build_nway(tmp_path / "img", 11, "image")
    build_nway(tmp_path / "vid", 5, "video")
    args = ["-m", "mr2bench", "evaluate-model", "--no-progress", "--model", "random", "--seed", "4",
            "--benchmarks", "mr2bench-image,mr2bench-video", "--data-dir", f"mr2bench-image={tmp_path / 'img'}",
            "--data-dir", f"mr2bench-video={tmp_path / 'vid'}", "--permutations", "2"]
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], cwd=REPO,
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, ACCELERATE_USE_CPU="true")
        procs.append(subprocess.Popen([sys.executable, *args, "--out", str(tmp_path / "two")], cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        outs.append(out)
    assert "n=11" in outs[0] and "(6 scored now" in outs[0] and "(3 scored now" in outs[0]  # rank 0's share
    assert outs[1] == ""  # rank 1 scored its share and left the merge to rank 0
    for bench in ("mr2bench-image", "mr2bench-video"):
        a, b = tmp_path / "one" / "random" / bench, tmp_path / "two" / "random" / bench
        assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes()
        assert (a / "fingerprint.json").read_bytes() == (b / "fingerprint.json").read_bytes()

        assert not list(b.glob("samples.rank*"))
        # runtime says how each run ran (its device and process count), so it differs by design
        strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k not in (*VOLATILE, "runtime")}
        assert strip(a / "results.json") == strip(b / "results.json")
        assert json.loads((b / "results.json").read_text())["runtime"]["processes"] == 2
    assert json.loads((tmp_path / "one" / "random" / "summary.json").read_text()) == json.loads(
        (tmp_path / "two" / "random" / "summary.json").read_text())
