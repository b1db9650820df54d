"""evaluate-model end to end on real sample records converted into the Hub layout, plus goldens,
failures, parse failures, resume after a kill and rescore. Expected values are computed here, from the
raw rows, without mr2bench's metric code."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from mr2bench.cli import main

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "data" / "golden"
VOLATILE = ("packages", "git_sha", "command", "data_dir")  # data_dir: the test's temporary folder


def png_bytes(seed: int, size=(8, 8)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (seed % 256, (seed * 7) % 256, 40)).save(buf, format="PNG")
    return buf.getvalue()


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def evaluate(*args: str) -> int:
    return main(["evaluate-model", "--no-progress", *args])


def results(out: Path, model: str, bench: str) -> dict:
    return json.loads((out / model / bench / "results.json").read_text())


def samples(out: Path, model: str, bench: str) -> list[dict]:
    return [json.loads(l) for l in (out / model / bench / "samples.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- fixtures in the Hub layout
def vlrb_rows(samples_dir: Path) -> list[dict]:
    return [json.loads(l) for l in (samples_dir / "vl-rewardbench" / "vlrb_r1reward_format_sample.jsonl")
            .read_text().splitlines() if l.strip()]


def build_vlrb(samples_dir: Path, root: Path) -> list[dict]:
    """HF parquet layout: id, query, response[2], image {bytes, path}, human_ranking (0 = better)."""
    raw = vlrb_rows(samples_dir)
    rows = []
    for i, r in enumerate(raw):
        swap = i % 3 == 1
        rows.append({"id": r["id"], "query": r["prompt"],
                     "response": [r["rejected"], r["chosen"]] if swap else [r["chosen"], r["rejected"]],
                     "human_ranking": [1, 0] if swap else [0, 1], "models": ["m1", "m2"],
                     "image": {"bytes": png_bytes(i), "path": None}})
    write_parquet(root / "data" / "test-00000-of-00001.parquet", rows)
    return raw


def build_mmrlhf(samples_dir: Path, root: Path) -> list[dict]:
    """Hub layout: mm_reward_bench.jsonl + images/<path> (PNG files, video frame folders)."""
    from PIL import Image

    raw = [json.loads(l) for l in (samples_dir / "mm-rlhf-rewardbench" / "mm_reward_bench_sample.jsonl")
           .read_text().splitlines() if l.strip()]
    root.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(raw):
        if r.get("image"):
            p = root / "images" / r["image"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(png_bytes(i))
        else:
            d = root / "images" / r["video"]
            d.mkdir(parents=True, exist_ok=True)
            for k in range(3):
                Image.new("RGB", (8, 8), (k * 40, 0, 0)).save(d / f"c01_{k:04d}.jpeg")
    (root / "mm_reward_bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in raw))
    return raw


def build_nway(root: Path, n_items: int = 12, kind: str = "image") -> list[dict]:
    """A folder as build-benchmark writes it: items.parquet + media relative to it."""
    import random

    rnd = random.Random(5)
    rows = []
    for i in range(n_items):
        rel = f"media/q{i % 4}.png" if kind == "image" else f"media/v{i % 3}"
        p = root / rel
        if kind == "image" and not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(png_bytes(i))
        if kind == "video" and not p.exists():
            from PIL import Image
            p.mkdir(parents=True, exist_ok=True)
            for k in range(4):
                Image.new("RGB", (8, 8), (k * 30, 9, 9)).save(p / f"{k:03d}.png")
        responses = ["x" * rnd.randint(1, 40) for _ in range(4)]
        rankings = rnd.sample([1, 2, 3, 4], 4) if i % 4 else [1, 1, 3, 4]
        if i % 5 == 0:
            responses[1] = responses[0]  # a length tie, possibly at the top
        rows.append({"id": f"q{i}-v{i % 2}", "question_id": f"q{i}", "prompt": f"question {i}",
                     "responses": responses, "rankings": rankings, "models": ["a", "b", "c", "d"],
                     kind: rel, "video" if kind == "image" else "image": None,
                     "category": ["chart", "photo"][i % 2], "variant": i % 2})
    write_parquet(root / "items.parquet", rows)
    return rows


def vlrb_group(raw_id: str) -> str:
    if raw_id.startswith(("hallucination_pair", "RLAIF-V", "RLHF-V")):
        return "hallucination"
    if raw_id.startswith(("mathverse", "mmmu")):
        return "reasoning"
    return "general"


# ---------------------------------------------------------------- real records
def test_vl_rewardbench_length_matches_independent_values(samples_dir, tmp_path):
    raw = build_vlrb(samples_dir, tmp_path / "vlrb")
    out = tmp_path / "out"
    assert evaluate("--model", "length", "--benchmarks", "vl-rewardbench", "--data-dir",
                    str(tmp_path / "vlrb"), "--out", str(out)) == 0
    res = results(out, "length", "vl-rewardbench")
    assert res["command"].startswith("mr2bench evaluate-model --no-progress --model length --benchmarks vl-rew")
    by_group = defaultdict(list)
    for r in raw:
        by_group[vlrb_group(r["id"])].append(len(r["chosen"]) > len(r["rejected"]))
    assert {g: len(v) for g, v in by_group.items()} == {"general": 15, "hallucination": 18, "reasoning": 14}
    overall = sum(sum(v) for v in by_group.values()) / len(raw)
    macro = sum(sum(v) / len(v) for v in by_group.values()) / 3
    assert res["metrics"]["accuracy"] == pytest.approx(overall)
    assert res["metrics"]["macro_accuracy"] == pytest.approx(macro)
    for g, v in by_group.items():
        assert res["per_category"][g] == {"accuracy": pytest.approx(sum(v) / len(v)), "n": len(v)}
    assert res["n_items"] == res["n_scored"] == 47 and res["n_failed"] == 0
    assert res["ci95"]["low"] <= macro <= res["ci95"]["high"]
    recs = samples(out, "length", "vl-rewardbench")
    assert len({r["id"] for r in recs}) == 47  # duplicated source ids stay distinct items
    assert sum(r["id"].startswith("mathverse_1063") for r in recs) == 2
    # the permutation is stored and the scores are in the original order
    for r in recs:
        assert sorted(r["permutation"]) == [0, 1]
    assert main(["rescore", str(out / "length")]) == 0
    summary = json.loads((out / "length" / "summary.json").read_text())
    assert summary["benchmarks"]["vl-rewardbench"]["headline"] == pytest.approx(macro)
    assert summary["avg"] is None
    for folder in (out, out / "length"):  # every model of OUT, and the model's own row beside its summary
        board = (folder / "leaderboard.md").read_text()
        assert f"| length | {100 * macro:.1f} [" in board and "] | - |" in board and (folder / "leaderboard.png").stat().st_size > 0


def test_mm_rlhf_length_acc_and_acc_plus(samples_dir, tmp_path):
    raw = build_mmrlhf(samples_dir, tmp_path / "mmrlhf")
    out = tmp_path / "out"
    assert evaluate("--model", "length", "--benchmarks", "mm-rlhf-rewardbench", "--data-dir",
                    str(tmp_path / "mmrlhf"), "--out", str(out)) == 0
    res = results(out, "length", "mm-rlhf-rewardbench")
    correct = [len(r["chosen"]) > len(r["rejected"]) for r in raw]
    groups = defaultdict(list)
    cats = defaultdict(list)
    for r, c in zip(raw, correct):
        groups[r["id"]].append(c)
        path = r.get("image") or r.get("video")
        cats[next(k for k in ("mcq", "long", "short", "safety", "video") if k in path)].append(c)
    assert res["metrics"]["acc"] == pytest.approx(sum(correct) / len(raw))
    assert res["metrics"]["acc_plus"] == pytest.approx(sum(all(v) for v in groups.values()) / len(groups))
    assert len(groups) == 10 and res["n_items"] == 40
    for cat, v in cats.items():
        assert res["per_category"][cat]["acc"] == pytest.approx(sum(v) / len(v))
        assert res["per_category"][cat]["n"] == len(v)
    assert res["headline_metric"] == "acc" and res["n_failed"] == 0


def test_hub_code_path_reads_the_same_items(samples_dir, tmp_path):
    """datasets.load_dataset (the real Hub path) on a local folder gives the same items as the reader."""
    from dataclasses import replace

    from mr2bench.evaluators import vl_rewardbench as vl

    build_vlrb(samples_dir, tmp_path / "vlrb")
    local = list(vl.load(tmp_path / "vlrb", vl.SPEC, 5))
    hub = list(vl.load(None, replace(vl.SPEC, hub_id=str(tmp_path / "vlrb")), 5))
    assert [i.id for i in hub] == [i.id for i in local]
    assert [i.media[0].data for i in hub] == [i.media[0].data for i in local]


# ---------------------------------------------------------------- goldens for the fake adapters
@pytest.mark.parametrize("model", ["length", "random"])
def test_golden_results_for_fake_adapters(tmp_path, model):
    build_nway(tmp_path / "img", 12, "image")
    build_nway(tmp_path / "vid", 6, "video")
    out = tmp_path / "out"
    assert evaluate("--model", model, "--benchmarks", "mr2bench-image,mr2bench-video", "--data-dir",
                    f"mr2bench-image={tmp_path / 'img'}", "--data-dir", f"mr2bench-video={tmp_path / 'vid'}",
                    "--out", str(out), "--permutations", "2", "--seed", "3", "--batch-size", "4") == 0
    for bench in ("mr2bench-image", "mr2bench-video"):
        got = {k: v for k, v in results(out, model, bench).items() if k not in VOLATILE}
        path = GOLDEN / f"{model}__{bench}.json"
        if os.environ.get("MR2BENCH_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
        assert got == json.loads(path.read_text()), f"{path} differs (MR2BENCH_UPDATE_GOLDEN=1 to accept)"
    assert main(["rescore", str(out / model)]) == 0


def test_length_best_of_n_by_hand(tmp_path):
    rows = build_nway(tmp_path / "img", 12, "image")
    out = tmp_path / "out"
    assert evaluate("--model", "length", "--benchmarks", "mr2bench-image", "--data-dir", str(tmp_path / "img"),
                    "--out", str(out)) == 0
    credits = []
    for r in rows:
        lens = [len(x) for x in r["responses"]]
        top = [i for i, v in enumerate(lens) if v == max(lens)]
        credits.append(sum(r["rankings"][i] == 1 for i in top) / len(top))
    res = results(out, "length", "mr2bench-image")
    assert res["metrics"]["best_of_n"] == pytest.approx(sum(credits) / len(credits))
    recs = samples(out, "length", "mr2bench-image")
    for rec, row in zip(recs, rows):   # scores back in the original order, whatever the shown order
        assert rec["scores"] == [float(len(x)) for x in row["responses"]]


# ---------------------------------------------------------------- failures, verdicts, user adapters
ADAPTERS = '''
import os
from mr2bench.media import load_image
from mr2bench.schema import Verdict

class ImageLoading:
    def score(self, request):
        for m in request.media:
            load_image(m, request.media_root)
        return [float(len(r)) for r in request.responses]

class Judge:
    def __init__(self, target, options):
        self.seed = options.seed
    def score(self, request):
        if request.item_id.startswith("q3"):
            raise RuntimeError("backend exploded")
        if int(request.item_id[1:].split("-")[0]) % 2:
            return Verdict(None, raw="I cannot decide", usage={"prompt_tokens": 7, "model": "x"})
        return Verdict([float(len(r)) for r in request.responses], raw="[[A]]", usage={"prompt_tokens": 5})

class Killer:
    def score(self, request):
        log = os.environ["MR2_CALLS"]
        with open(log, "a") as fh:
            fh.write(request.item_id + "\\n")
        if sum(1 for _ in open(log)) == int(os.environ.get("MR2_KILL_AT", "0")):
            os._exit(137)
        return [float(len(r)) for r in request.responses]
'''


def adapters_file(tmp_path: Path) -> Path:
    p = tmp_path / "my_adapters.py"
    p.write_text(ADAPTERS)
    return p


def test_failed_items_are_recorded_counted_and_reported(tmp_path, capsys):
    root = tmp_path / "img"
    rows = build_nway(root, 8, "image")
    rows[1]["image"] = "../outside.png"          # escapes the dataset root
    rows[2]["image"] = "media/missing.png"       # missing file
    rows[3]["image"] = "media/corrupt.png"       # not an image
    (root / "media" / "corrupt.png").write_bytes(b"not a png")
    write_parquet(root / "items.parquet", rows)
    out = tmp_path / "out"
    spec = f"python:{adapters_file(tmp_path)}:ImageLoading"
    assert evaluate("--model", spec, "--benchmarks", "mr2bench-image", "--data-dir", str(root),
                    "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "3 items failed" in err
    slug = next(p.name for p in out.iterdir() if p.is_dir())
    res = results(out, slug, "mr2bench-image")
    assert (res["n_items"], res["n_failed"], res["n_scored"], res["status"]) == (8, 3, 5, "complete_with_failures")
    recs = {r["id"]: r for r in samples(out, slug, "mr2bench-image")}
    assert "escapes the dataset root" in recs["q1-v1@row2"]["error"] and recs["q1-v1@row2"]["status"] == "failed"
    assert "not found" in recs["q2-v0"]["error"] and recs["q2-v0"]["status"] == "failed"
    assert "unreadable image" in recs["q3-v1"]["error"]
    assert "failed items on mr2bench-image" in (out / "leaderboard.md").read_text()


def test_verdicts_parse_failures_usage_and_adapter_errors(tmp_path):
    build_nway(tmp_path / "img", 8, "image")
    build_vlrb_like = tmp_path / "img"
    out = tmp_path / "out"
    spec = f"python:{adapters_file(tmp_path)}:Judge"
    assert evaluate("--model", spec, "--benchmarks", "mr2bench-image", "--data-dir", str(build_vlrb_like),
                    "--out", str(out)) == 1
    slug = next(p.name for p in out.iterdir() if p.is_dir())
    res = results(out, slug, "mr2bench-image")
    # q1, q5, q7 unreadable (seeded random pick), q3 raised (failed)
    assert res["n_parse_failures"] == 3 and res["n_failed"] == 1 and res["n_scored"] == 7
    assert res["usage"] == {"prompt_tokens": 4 * 5 + 3 * 7}
    recs = {r["id"]: r for r in samples(out, slug, "mr2bench-image")}
    assert recs["q1-v1"]["status"] == "parse_failure" and recs["q1-v1"]["extra"]["raw"] == "I cannot decide"
    pick = recs["q1-v1"]["extra"]["fallback_pick"]
    assert recs["q1-v1"]["credit"] == (1.0 if recs["q1-v1"]["rankings"][pick] == 1 else 0.0)
    assert "backend exploded" in recs["q3-v1"]["error"]
    assert main(["rescore", str(out / slug)]) == 0


def test_rescore_detects_a_tampered_result(tmp_path, capsys):
    build_nway(tmp_path / "img", 6, "image")
    out = tmp_path / "out"
    assert evaluate("--model", "random", "--benchmarks", "mr2bench-image", "--data-dir", str(tmp_path / "img"),
                    "--out", str(out)) == 0
    path = out / "random" / "mr2bench-image" / "results.json"
    res = json.loads(path.read_text())
    res["metrics"]["best_of_n"] += 0.01
    path.write_text(json.dumps(res))
    capsys.readouterr()
    assert main(["rescore", str(out / "random")]) == 1
    assert "metrics.best_of_n" in capsys.readouterr().out


def test_resume_after_a_kill(tmp_path):
    root = tmp_path / "img"
    build_nway(root, 12, "image")
    out, clean = tmp_path / "out", tmp_path / "clean"
    spec = f"python:{adapters_file(tmp_path)}:Killer"
    cmd = [sys.executable, "-m", "mr2bench", "evaluate-model", "--no-progress", "--model", spec,
           "--benchmarks", "mr2bench-image", "--data-dir", str(root), "--permutations", "1"]
    env = dict(os.environ, MR2_CALLS=str(tmp_path / "calls1"), MR2_KILL_AT="6")
    killed = subprocess.run(cmd + ["--out", str(out)], env=env, capture_output=True, text=True, cwd=REPO)
    assert killed.returncode == 137, killed.stderr
    slug = next(p.name for p in out.iterdir() if p.is_dir())
    path = out / slug / "mr2bench-image" / "samples.jsonl"
    assert len(path.read_text().splitlines()) == 5
    with open(path, "a") as fh:
        fh.write('{"id": "q5-v1", "categ')       # a torn last line
    env = dict(os.environ, MR2_CALLS=str(tmp_path / "calls2"))
    again = subprocess.run(cmd + ["--out", str(out)], env=env, capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 0, again.stderr
    assert len((tmp_path / "calls2").read_text().splitlines()) == 7   # only the unfinished items
    env = dict(os.environ, MR2_CALLS=str(tmp_path / "calls3"))
    ref = subprocess.run(cmd + ["--out", str(clean)], env=env, capture_output=True, text=True, cwd=REPO)
    assert ref.returncode == 0, ref.stderr
    assert path.read_bytes() == (clean / slug / "mr2bench-image" / "samples.jsonl").read_bytes()
    strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k not in VOLATILE}
    assert strip(out / slug / "mr2bench-image" / "results.json") == strip(
        clean / slug / "mr2bench-image" / "results.json")


def test_bad_data_dir_and_unknown_benchmark(tmp_path, capsys):
    assert evaluate("--model", "length", "--benchmarks", "vl-rewardbnch", "--out", str(tmp_path)) == 2
    assert "Did you mean vl-rewardbench" in capsys.readouterr().err
    code = evaluate("--model", "length", "--benchmarks", "vl-rewardbench", "--data-dir", str(tmp_path / "nope"),
                    "--out", str(tmp_path / "o"))
    assert code == 2 and "data folder not found" in capsys.readouterr().err
