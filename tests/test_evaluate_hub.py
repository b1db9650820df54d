"""evaluate-model on the benchmarks as they are on the Hub: the MM-RLHF tree, Hub mode from a pre-populated
HF cache, an unreachable Hub, configs, field maps and the layout refusal, the published round trip, and
differential tests where each official rule is re-implemented here from ../shared/reference (not by
calling mr2bench's metric code) and compared with evaluate-model on the sample records."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from mr2bench.cli import main
from test_evaluate import build_vlrb, evaluate, png_bytes, results, write_parquet

REPO = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"
CATS = ("mcq", "long", "short", "safety", "video")


def mmrlhf_rows(samples_dir: Path) -> list[dict]:
    path = samples_dir / "mm-rlhf-rewardbench" / "mm_reward_bench_sample.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def build_mmrlhf_hub_tree(samples_dir: Path, root: Path) -> list[dict]:
    """Mirrors real-artifacts.md, "Benchmarks on the Hub", MM-RLHF-RewardBench line: repo tree
    ``data/train-00000-of-00001.parquet``, ``mm_reward_bench.jsonl``, ``images/``; video frame folders sit
    DIRECTLY under ``images/`` (``images/-77dfCjTbSc/``) while rows name them ``video/<name>``. Images under
    ``images/<row path>`` (benchmarks.md 5.1). The variant that differs the way r1_reward's copy does
    (``images/video/<name>``) is tests/test_evaluate_converters.py's fixture."""
    from PIL import Image

    raw = mmrlhf_rows(samples_dir)
    for i, r in enumerate(raw):
        if r.get("image"):
            p = root / "images" / r["image"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(png_bytes(i))
        else:
            d = root / "images" / r["video"].split("/", 1)[1]
            d.mkdir(parents=True, exist_ok=True)
            for k in range(3):
                Image.new("RGB", (8, 8), (k * 40, 0, 0)).save(d / f"c01_{k + 1:04d}.jpeg")
    (root / "mm_reward_bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in raw))
    write_parquet(root / "data" / "train-00000-of-00001.parquet",
                  [{k: r.get(k) for k in ("id", "image", "video", "prompt", "chosen", "rejected")} for r in raw])
    return raw


# ---------------------------------------------------------------- the official rules, written out here
def official_mmrlhf(raw: list[dict], rewards: list[tuple[float, float] | None]) -> tuple[float, float]:
    """cal_performance_mmreweard_bench.py: correct iff rewards[0] > rewards[1]; Acc+ = every pair of an
    id right. A pair we could not score (None) counts as wrong (our declared rule for failed pairs)."""
    by_id = defaultdict(list)
    for r, rw in zip(raw, rewards):
        by_id[r["id"]].append(rw is not None and rw[0] > rw[1])
    flat = [c for v in by_id.values() for c in v]
    return sum(flat) / len(flat), sum(all(v) for v in by_id.values()) / len(by_id)


def official_vlrb_source(raw_id: str) -> str:
    """cal.py get_dataset_from_id: prefix before the first '_' or '-'."""
    cut = [i for i in (raw_id.find("_"), raw_id.find("-")) if i != -1]
    prefix = raw_id[:min(cut)] if cut else raw_id
    return {"RLAIF": "rlaif-v", "RLHF": "rlhf-v", "mathverse": "reasoning_tasks", "mmmu": "reasoning_tasks",
            "wildvision": "wildvision-battle", "hallucination": "povid"}.get(prefix, "vlfeedback")


VLRB_GROUP = {"vlfeedback": "general", "povid": "hallucination", "reasoning_tasks": "reasoning",
              "rlhf-v": "hallucination", "rlaif-v": "hallucination", "wildvision-battle": "general"}


def official_vlrb(raw: list[dict], agree: list[bool]) -> dict:
    """cal.py distribution_dataset for a scalar RM (agree = r(chosen) > r(rejected), never unreadable)."""
    per_source = defaultdict(list)
    for r, a in zip(raw, agree):
        per_source[official_vlrb_source(r["id"])].append(a)
    groups = defaultdict(list)
    for src, v in per_source.items():
        groups[VLRB_GROUP[src]] += v
    return {"sources": {s: sum(v) / len(v) for s, v in per_source.items()},
            "overall": sum(map(sum, groups.values())) / sum(map(len, groups.values())),
            "macro": sum(sum(groups[g]) / len(groups[g]) for g in ("reasoning", "hallucination", "general")) / 3}


# ---------------------------------------------------------------- adapters
ADAPTERS = '''
from mr2bench.media import load_image, load_video_frames

class Shorter:
    def score(self, request):
        return [-float(len(r)) for r in request.responses]

class AllTies:
    def score(self, request):
        return [1.0 for _ in request.responses]

class FramesOrLength:
    """Reads every frame folder and image (so unresolved media fail the item), then scores by length."""
    def score(self, request):
        for m in request.media:
            if m.kind == "video":
                load_video_frames(m, request.media_root, 2)
            else:
                load_image(m, request.media_root)
        return [float(len(r)) for r in request.responses]

class FailOne:
    def score(self, request):
        if request.item_id.startswith("lnO2W7cq1DA"):
            raise RuntimeError("backend down")
        return [float(len(r)) for r in request.responses]
'''


@pytest.fixture
def adapters(tmp_path) -> Path:
    path = tmp_path / "adapters.py"
    path.write_text(ADAPTERS)
    return path


# ---------------------------------------------------------------- 1. MM-RLHF on the Hub tree
def test_mmrlhf_hub_tree_sample_gives_70_and_50(samples_dir, tmp_path, adapters):
    raw = build_mmrlhf_hub_tree(samples_dir, tmp_path / "mmrlhf")
    for model in ("length", f"python:{adapters}:FramesOrLength"):
        out = tmp_path / model.split(":")[-1]
        assert evaluate("--model", model, "--benchmarks", "mm-rlhf-rewardbench", "--data-dir",
                        str(tmp_path / "mmrlhf"), "--out", str(out)) == 0
        res = next(out.glob("*/mm-rlhf-rewardbench/results.json"))
        res = json.loads(res.read_text())
        acc, acc_plus = official_mmrlhf(raw, [(len(r["chosen"]), len(r["rejected"])) for r in raw])
        assert (round(100 * acc, 1), round(100 * acc_plus, 1)) == (70.0, 50.0)
        assert res["metrics"] == {"acc": pytest.approx(acc), "acc_plus": pytest.approx(acc_plus)}
        assert res["n_failed"] == 0 and res["n_items"] == 40
        assert res["per_category"]["video"]["n"] == 5


def test_mmrlhf_failed_pair_leaves_its_group_not_all_correct(samples_dir, tmp_path, adapters):
    raw = build_mmrlhf_hub_tree(samples_dir, tmp_path / "mmrlhf")
    out = tmp_path / "out"
    assert evaluate("--model", f"python:{adapters}:FailOne", "--benchmarks", "mm-rlhf-rewardbench",
                    "--data-dir", str(tmp_path / "mmrlhf"), "--out", str(out)) == 1
    res = next(out.glob("*/mm-rlhf-rewardbench/results.json"))
    res = json.loads(res.read_text())
    rewards = [None if r["id"].startswith("lnO2W7cq1DA") else (len(r["chosen"]), len(r["rejected"])) for r in raw]
    _, acc_plus = official_mmrlhf(raw, rewards)
    assert res["metrics"]["acc_plus"] == pytest.approx(acc_plus)
    assert res["n_failed"] == 3 and res["n_groups_with_failures"] == 1
    assert res["per_category"]["video"]["acc_plus"] == pytest.approx(0.5)  # 2 video groups, 1 failed


# ---------------------------------------------------------------- differential, VL-RewardBench
@pytest.mark.parametrize("model", ["length", "Shorter", "AllTies"])
def test_vlrb_matches_cal_py_rules(samples_dir, tmp_path, adapters, model):
    raw = build_vlrb(samples_dir, tmp_path / "vlrb")
    spec = model if model == "length" else f"python:{adapters}:{model}"
    out = tmp_path / "out"
    assert evaluate("--model", spec, "--benchmarks", "vl-rewardbench", "--data-dir", str(tmp_path / "vlrb"),
                    "--out", str(out)) == 0
    res = json.loads(next(out.glob("*/vl-rewardbench/results.json")).read_text())
    score = {"length": len, "Shorter": lambda s: -len(s), "AllTies": lambda s: 1}[model]
    agree = [score(r["chosen"]) > score(r["rejected"]) for r in raw]
    want = official_vlrb(raw, agree)
    assert res["metrics"]["accuracy"] == pytest.approx(want["overall"])
    assert res["metrics"]["macro_accuracy"] == pytest.approx(want["macro"])
    for src, value in want["sources"].items():
        assert res["per_category"][f"{VLRB_GROUP[src]}/{src}"]["accuracy"] == pytest.approx(value), src
    ties = sum(score(r["chosen"]) == score(r["rejected"]) for r in raw)
    assert res["n_score_ties"] == ties and (model != "AllTies" or ties == 47)


# ---------------------------------------------------------------- differential, Multimodal RewardBench
MMRB_JUDGE = '''
from mr2bench.schema import Verdict
SCRIPT = {SCRIPT!r}

class Scripted:
    """Replays one verdict text per item; 'FAIL' is a call that failed outright."""
    def score(self, request):
        text = SCRIPT[request.item_id]
        if text == "FAIL":
            raise RuntimeError("API call failed 10 times")
        if "[[A]]" in text:
            return Verdict([1.0, 0.0], raw=text)
        if "[[B]]" in text:
            return Verdict([0.0, 1.0], raw=text)
        return Verdict(None, raw=text)
'''


def test_mmrb_fallback_is_the_official_seed_123_stream(tmp_path):
    """2_get_accuracy.py: random.seed(123) once; per line in file order, '[[A]]' then '[[B]]', else one
    random.random() < 0.5 draw (A); a failed call's output is the string 'None' and takes that draw."""
    texts = ["[[A]]", "hmm", "FAIL", "[[B]]", "no idea", "neither", "FAIL", "[[A]] [[B]]", "?", "x", "y",
             "[[B]]", "z"]
    rows = [{"ID": f"nocaps_{i}", "Text": "t", "Image": None, "Output1": "a" * (i + 1), "Output2": "b",
             "Better": "Output1" if i % 3 else "Output2", "Category": "vqa"} for i in range(len(texts))]
    folder = tmp_path / "mmrb"
    folder.mkdir()
    (folder / "all_data.json").write_text(json.dumps(rows))
    judge = tmp_path / "judge.py"
    judge.write_text(MMRB_JUDGE.replace("{SCRIPT!r}", repr({r["ID"]: t for r, t in zip(rows, texts)})))

    random.seed(123)   # the official script, line by line
    hits = []
    for r, t in zip(rows, texts):
        out = "None" if t == "FAIL" else t
        pred = "A" if "[[A]]" in out else "B" if "[[B]]" in out else ("A" if random.random() < 0.5 else "B")
        hits.append(pred == ("B" if r["Better"] == "Output2" else "A"))
    official = sum(hits) / len(hits)

    out = tmp_path / "out"
    assert evaluate("--model", f"python:{judge}:Scripted", "--benchmarks", "multimodal-rewardbench",
                    "--data-dir", str(folder), "--out", str(out), "--batch-size", "4") == 1  # two failed calls
    res_path = next(out.glob("*/multimodal-rewardbench/results.json"))
    res = json.loads(res_path.read_text())
    assert res["metrics"]["accuracy"] == pytest.approx(official)
    assert res["n_failed"] == 2 and res["n_parse_failures"] == 7 and res["n_items"] == 13
    assert main(["rescore", str(res_path.parent.parent)]) == 0   # the same from the records alone
    assert json.loads(res_path.read_text())["metrics"]["accuracy"] == pytest.approx(official)


# ---------------------------------------------------------------- 2. layout refusal and field maps
def test_build_folder_given_to_vl_rewardbench_is_refused_once(tmp_path, capsys):
    from test_evaluate import build_nway

    build_nway(tmp_path / "build", 12, "video")
    out = tmp_path / "out"
    assert evaluate("--model", "length", "--benchmarks", "vl-rewardbench", "--data-dir", str(tmp_path / "build"),
                    "--out", str(out)) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1, err
    assert "required field(s) response, human_ranking" in err[0] and "columns found:" in err[0]
    assert "responses" in err[0] and "rankings" in err[0] and "--field vl-rewardbench:" in err[0]
    assert not list(out.glob("*/vl-rewardbench/samples.jsonl")) or \
        not next(out.glob("*/vl-rewardbench/samples.jsonl")).read_text().strip()


def test_field_map_reads_an_unverified_schema(tmp_path):
    """VideoRewardBench's schema is UNVERIFIED (real-artifacts.md): a release that names its columns
    response_a / response_b is refused, then read with --field."""
    rows = [{"qid": str(i), "question": "q", "response_a": "a" * (i + 2), "response_b": "b" * 3,
             "video": f"v{i}", "dimension": "Safety"} for i in range(4)]
    for i in range(4):
        (tmp_path / "vrb" / f"v{i}").mkdir(parents=True)
        (tmp_path / "vrb" / f"v{i}" / "0001.png").write_bytes(png_bytes(i))
    (tmp_path / "vrb" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["--model", "length", "--benchmarks", "videorewardbench", "--data-dir", str(tmp_path / "vrb")]
    assert evaluate(*args, "--out", str(tmp_path / "o1")) == 2
    assert evaluate(*args, "--out", str(tmp_path / "o2"), "--field", "videorewardbench:chosen=response_a",
                    "--field", "videorewardbench:rejected=response_b", "--field", "videorewardbench:id=qid") == 0
    res = results(tmp_path / "o2", "length", "videorewardbench")
    assert res["n_items"] == 4 and res["metrics"]["accuracy"] == pytest.approx(2 / 4)  # lengths 2..5 vs 3
    assert res["n_score_ties"] == 1


# ---------------------------------------------------------------- 4. Hub mode from the HF cache
def populate_cache(cache: Path, repo_id: str, source: Path, sha: str = SHA, links: bool = True) -> Path:
    """The HF hub cache layout (huggingface_hub's cache docs, "Manage huggingface_hub cache-system"):
    datasets--OWNER--NAME/refs/main holds the commit; snapshots/<sha>/ holds every file as a relative symlink
    into ../blobs/<hash> (folders are real). ``links=False`` is the variant the world also has: a cache on a
    file system without symlinks (Windows without developer mode) stores plain copies in the snapshot."""
    import hashlib
    import os

    repo = cache / f"datasets--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(sha)
    snap = repo / "snapshots" / sha
    if not links:
        shutil.copytree(source, snap)
        return snap
    (repo / "blobs").mkdir(exist_ok=True)
    for path in sorted(source.rglob("*")):
        dest = snap / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(os.path.relpath(blob, dest.parent))
    return snap


@pytest.mark.parametrize("links", [True, False], ids=["blob-symlinks", "plain-copies"])
def test_hub_mode_reads_rows_and_media_from_the_cache(samples_dir, tmp_path, adapters, monkeypatch, links):
    from huggingface_hub import constants

    build_mmrlhf_hub_tree(samples_dir, tmp_path / "tree")
    cache = tmp_path / "hf"
    populate_cache(cache, "yifanzhang114/MM-RLHF-RewardBench", tmp_path / "tree", links=links)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "out"
    assert evaluate("--model", f"python:{adapters}:FramesOrLength", "--benchmarks", "mm-rlhf-rewardbench",
                    "--out", str(out)) == 0
    res = json.loads(next(out.glob("*/mm-rlhf-rewardbench/results.json")).read_text())
    assert res["metrics"]["acc"] == pytest.approx(0.70) and res["metrics"]["acc_plus"] == pytest.approx(0.50)
    assert res["n_failed"] == 0 and res["data_source"] == "hub"
    assert res["revision"] == SHA and res["requested_revision"] is None  # the commit actually read
    # a pinned revision that is not in the cache: skipped with the one line, exit 1
    out2 = tmp_path / "out2"
    assert evaluate("--model", "length", "--benchmarks", "mm-rlhf-rewardbench", "--out", str(out2), "--source",
                    "mm-rlhf-rewardbench=yifanzhang114/MM-RLHF-RewardBench@" + "f" * 40) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_hub_skips_with_one_line_and_runs_the_others(samples_dir, tmp_path):
    build_mmrlhf_hub_tree(samples_dir, tmp_path / "mmrlhf")
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_ENDPOINT":
           f"http://127.0.0.1:{_closed_port()}", "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "mr2bench", "evaluate-model", "--no-progress", "--model", "length",
           "--benchmarks", "vl-rewardbench,mm-rlhf-rewardbench,multimodal-rewardbench",
           "--data-dir", f"mm-rlhf-rewardbench={tmp_path / 'mmrlhf'}", "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for name, hub_id in (("vl-rewardbench", "MMInstruction/VL-RewardBench"),
                         ("multimodal-rewardbench", "syhuggingface/multimodal_rewardbench")):
        lines = [l for l in proc.stderr.splitlines() if hub_id in l]
        assert len(lines) == 1, proc.stderr   # one line, not doubled
        assert f"--data-dir {name}=DIR" in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]
    assert re.search(r"skipped 2 benchmark\(s\).*vl-rewardbench, multimodal-rewardbench", proc.stderr)
    res = results(tmp_path / "out", "length", "mm-rlhf-rewardbench")   # the other one still ran
    assert res["metrics"]["acc"] == pytest.approx(0.70)


# ---------------------------------------------------------------- 3 / 7. configs and the round trip
def test_published_folder_evaluates_like_its_build(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from test_publish import make_build

    build = make_build(tmp_path / "build", "video", n_questions=3)
    assert main(["publish", str(build), "--stage-only", str(tmp_path / "stage")]) == 0
    assert list((tmp_path / "stage" / "data" / "full_rankings").glob("*.parquet"))
    got = {}
    for name, folder in (("build", build), ("stage", tmp_path / "stage")):
        out = tmp_path / f"out-{name}"
        assert evaluate("--model", "length", "--benchmarks", "mr2bench-video", "--data-dir", str(folder),
                        "--out", str(out)) == 0
        got[name] = results(out, "length", "mr2bench-video")
    assert got["stage"]["n_items"] == got["build"]["n_items"] == 6 and got["stage"]["n_failed"] == 0
    assert got["stage"]["metrics"] == got["build"]["metrics"]
    # the same repo "on the Hub": the stage as a cached snapshot
    cache = tmp_path / "hf"
    populate_cache(cache, "someone/my-bench", tmp_path / "stage")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "out-hub"
    assert evaluate("--model", "length", "--benchmarks", "mr2bench-video", "--source",
                    "mr2bench-video=someone/my-bench:items", "--out", str(out)) == 0
    hub = results(out, "length", "mr2bench-video")
    assert hub["metrics"] == got["build"]["metrics"] and hub["revision"] == SHA and hub["config"] == "items"
    # a config that is not in the card is one clear error
    capsys.readouterr()
    assert evaluate("--model", "length", "--benchmarks", "mr2bench-video", "--source",
                    "mr2bench-video=someone/my-bench:nope", "--out", str(tmp_path / "o4")) == 2
    assert "no config 'nope'" in capsys.readouterr().err


def test_several_configs_without_a_name_is_one_error(tmp_path):
    from mr2bench.evaluators._loading import local_files
    from mr2bench.schema import DataError

    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "a" / "test-0.parquet").write_bytes(b"")
    (tmp_path / "README.md").write_text("---\nconfigs:\n- config_name: a\n  data_files:\n  - split: test\n"
                                        "    path: data/a/test-*.parquet\n- config_name: b\n  data_files: "
                                        "data/b/*.parquet\n---\n# card\n")
    with pytest.raises(DataError, match=r"several configs \(a, b\)"):
        local_files(tmp_path, "test")
    assert local_files(tmp_path, "test", config="a") == [tmp_path / "data" / "a" / "test-0.parquet"]


def test_source_and_field_flags_parse():
    from mr2bench.evaluators._loading import parse_field
    from mr2bench.hub.source import parse_source
    from mr2bench.schema import DataError

    assert parse_source("vl-rewardbench=me/fork:default@abc") == ("vl-rewardbench", "me/fork", "default", "abc")
    assert parse_source("x=me/fork") == ("x", "me/fork", None, None)
    assert parse_field("videorewardbench:chosen=response_a") == ("videorewardbench", "chosen", "response_a")
    for bad in ("x=fork", "me/fork", "x=a/b/c"):
        with pytest.raises(DataError, match="--source"):
            parse_source(bad)
    with pytest.raises(DataError, match="--field"):
        parse_field("videorewardbench:chosen")
