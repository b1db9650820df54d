"""build-benchmark end to end on small generated arenas, through the CLI entry point."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mr2bench.cli import build_benchmark_main
from mr2bench.ranking.simulate import pairwise_arena, ranking_arena

BAD_ROWS = {  # injected rows -> the reason each must be quarantined with
    "unknown_winner": {"winner": "model_c"},
    "self_pair": {"model_b": "__same__"},
    "missing_field": {"question_id": None},
    "conflicting_response": {"response_a": "another text for the same response"},
    "duplicate_vote": {},
}


def votes_csv_with_bad_rows(tmp: Path, df: pd.DataFrame, first: dict, changes) -> tuple[Path, int]:
    """``df`` plus one copy of ``first`` per change (``model_b="__same__"``: a self-pair) as votes.csv."""
    bad = []
    for change in changes:
        row = dict(first, **change)
        if row["model_b"] == "__same__":
            row["model_b"] = row["model_a"]
        bad.append(row)
    df = pd.concat([df, pd.DataFrame(bad)], ignore_index=True)
    path = tmp / "votes.csv"
    df.to_csv(path, index=False)
    return path, len(df)


def _arena_csv(tmp: Path, n_questions: int = 24) -> tuple[Path, int]:
    df = pairwise_arena(2, n_questions=n_questions, votes_per_question=120, n_annotators=20,
                        setting="adversarial").judgments
    return votes_csv_with_bad_rows(tmp, df, df.iloc[3].to_dict(), BAD_ROWS.values())


@pytest.fixture(scope="module")
def video_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("video")
    src, n = _arena_csv(tmp)
    outs = []
    for k in range(2):
        out = tmp / f"out{k}"
        assert build_benchmark_main(["video", str(src), "--out", str(out), "--seed", "3"]) == 0
        outs.append(out)
    return src, n, outs


def test_rows_in_equal_kept_plus_quarantined(video_build):
    _, n, (out, _) = video_build
    report = json.loads((out / "build_report.json").read_text())
    c = report["counts"]
    assert c["rows_in"] == n == c["kept"] + c["quarantined"]
    assert c["quarantine_reasons"] == {k: 1 for k in sorted(BAD_ROWS)}
    lines = (out / "quarantine.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["reason"] for x in lines) == sorted(BAD_ROWS)
    assert report["diagnostics"]["ensemble_graph_3cycles_after"] == 0
    # adversarial annotators are read inverted (issue 13), coin-flippers down-weighted or dropped
    assert report["annotators"]["counts"]["inverted"] + report["annotators"]["counts"]["dropped"] >= 1


def test_outputs_follow_the_contract(video_build):
    import datasets

    _, _, (out, _) = video_build
    items = datasets.load_dataset(str(out), "items", split="test")
    ranks = pd.read_parquet(out / "rankings.parquet")
    assert set(["question_id", "model", "rank", "score", "ci_low", "ci_high"]) <= set(ranks.columns)
    assert len(items) > 0 and len(set(items["id"])) == len(items)
    slots = [0, 0, 0, 0]
    for it in items:
        assert len(it["responses"]) == len(it["rankings"]) == len(it["models"]) == 4
        assert it["rankings"].count(1) == 1 and min(it["rankings"]) == 1
        assert it["video"] == f"media/{it['question_id']}.mp4"  # kept as given: not found beside the CSV
        q = ranks[ranks.question_id == it["question_id"]].set_index("model")["rank"]
        best = it["models"][it["rankings"].index(1)]
        assert all(q[best] <= q[m] for m in it["models"])  # best of four is never ranked below another
        slots[it["rankings"].index(1)] += 1
    assert max(slots) - min(slots) <= 1
    for q, g in ranks.groupby("question_id"):
        assert g["rank"].min() == 1 and (g.sort_values("position")["rank"].diff().dropna() >= 0).all()
    front = (out / "README.md").read_text().split("---")[1]
    meta = yaml.safe_load(front)
    assert meta["configs"][0]["config_name"] == "items" and meta["license"]
    card = (out / "README.md").read_text()
    for section in ("## Summary", "## Configs and structure", "## Construction", "## Denoising statistics",
                    "## Intended use and limitations", "## Citation"):
        assert section in card
    for name in ("leaderboard.csv", "leaderboard.md", "leaderboard.png", "annotators.png", "rank_confidence.png"):
        assert (out / name).stat().st_size > 0


def test_two_builds_are_byte_identical(video_build):
    _, _, (a, b) = video_build
    # manifest.json holds every file's sha256, timings.json's (and the OUT path's) too: compared below
    skip = ("timings.json", "manifest.json")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name not in skip)
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name not in skip)
    ma, mb = (json.loads((x / "manifest.json").read_text())["files"] for x in (a, b))
    assert sorted(ma) == sorted(mb) == sorted([*(f.as_posix() for f in files), "timings.json"])
    assert {k: v for k, v in ma.items() if k not in ("timings.json", "README.md", "build_report.json")} == \
        {k: v for k, v in mb.items() if k not in ("timings.json", "README.md", "build_report.json")}
    for rel in files:
        if rel.name == "README.md" or rel.name == "build_report.json":
            # the command line names the output folder; everything else must match byte for byte
            ta, tb = (a / rel).read_text(), (b / rel).read_text()
            assert ta.replace(str(a), "OUT") == tb.replace(str(b), "OUT"), rel
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_image_build_from_rankings(tmp_path):
    df = ranking_arena(1, n_prompts=16, n_models=6, annotators_per_prompt=3, n_annotators=8).judgments
    df = pd.concat([df, pd.DataFrame([dict(df.iloc[0], rank="x"), dict(df.iloc[1])])], ignore_index=True)
    df = df.rename(columns={"prompt_id": "pid"})
    src = tmp_path / "ranks.jsonl"
    df.to_json(src, orient="records", lines=True)
    out = tmp_path / "out"
    assert build_benchmark_main(["image", str(src), "--out", str(out), "--column", "prompt_id=pid", "--min-judgments", "5"]) == 0
    report = json.loads((out / "build_report.json").read_text())
    c = report["counts"]
    assert c["rows_in"] == len(df) == c["kept"] + c["quarantined"]
    assert c["quarantine_reasons"] == {"bad_rank": 1, "duplicate_entry": 1}
    items = pd.read_parquet(out / "items.parquet")
    assert "image" in items.columns and len(items) > 0


def test_malformed_inputs_give_clear_errors(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("question_id,model_a,winner\nq1,a,model_a\n")
    assert build_benchmark_main(["video", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "model_b" in err and "Traceback" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": "q", "model_a": "a", "model_b": "b", "winner": "tie"}\n{oops\n')
    assert build_benchmark_main(["video", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:row 2" in err
    assert build_benchmark_main(["video", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "none.csv: no such file or folder" in capsys.readouterr().err  # at once, not after Hub retries
    assert build_benchmark_main(["video", str(bad), "--out", str(tmp_path / "o"), "--column", "nope=x"]) == 2


def test_local_dataset_folder(tmp_path):
    df = pairwise_arena(4, n_questions=6, votes_per_question=80, n_annotators=6, setting="clean").judgments
    folder = tmp_path / "ds"
    folder.mkdir()
    df.to_parquet(folder / "train.parquet", index=False)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(folder), "--out", str(out)]) == 0
    report = json.loads((out / "build_report.json").read_text())
    assert report["counts"]["rows_in"] == len(df)
    assert report["command"] == f"build-benchmark video {folder} --out {out}"  # as typed


def test_pandalm_builds_end_to_end(samples_dir, tmp_path):
    raw = json.loads((samples_dir / "pairwise" / "pandalm_testset_v1" / "testset-v1.json").read_text())
    code = {1: "model_a", 2: "model_b", 0: "tie"}
    rows = []
    for r in raw:
        a, b = r["cmp_key"].split("_")
        for k in (1, 2, 3):
            rows.append({"question_id": f"p{hash_prompt(r)}", "model_a": a, "model_b": b,
                         "winner": code[r[f"annotator{k}"]], "annotator_id": f"annotator{k}",
                         "question": r["instruction"] + "\n" + r["input"], "response_a": r["response1"],
                         "response_b": r["response2"]})
    src = tmp_path / "pandalm.jsonl"
    pd.DataFrame(rows).to_json(src, orient="records", lines=True)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), "--min-judgments", "3"]) == 0
    report = json.loads((out / "build_report.json").read_text())
    c = report["counts"]
    assert c["rows_in"] == 2997 == c["kept"] + c["quarantined"]
    assert c["quarantine_reasons"].get("conflicting_response", 0) > 0  # 17 known text conflicts
    assert c["models"] == 5 and report["leaderboard"][0]["model"] == "llama-7b"
    assert c["questions_in"] == 170  # the README's count of distinct prompts: none lost to validation


def hash_prompt(r: dict) -> str:
    import hashlib

    return hashlib.sha256((r["instruction"] + "\x00" + r["input"]).encode()).hexdigest()[:10]


def test_empty_response_text_is_not_a_conflict():
    from mr2bench.builders.inputs import check_pairwise

    df = pd.DataFrame({"_row": [1, 2, 3], "question_id": ["q", "q", "q"], "model_a": ["a", "a", "a"],
                       "model_b": ["b", "c", "b"], "winner": ["a", "b", "tie"],
                       "response_a": ["x", None, "y"], "response_b": [None, "z", None]})
    checked = check_pairwise(df)
    assert [q["row"] for q in checked.quarantine] == [3] and checked.quarantine[0]["reason"] == "conflicting_response"


def test_judgment_objects_build_like_their_file(tmp_path):
    """The Python API (Judgment objects) goes through the same validation and build as a file."""
    from mr2bench.builders.inputs import judgments_table
    from mr2bench.builders.pipeline import BuildConfig
    from mr2bench.builders.video import build_video
    from mr2bench.schema import Judgment

    df = pairwise_arena(5, n_questions=6, votes_per_question=90, n_annotators=8, setting="noisy").judgments
    df = df.drop(columns=["video"])
    src = tmp_path / "votes.csv"
    df.to_csv(src, index=False)
    assert build_benchmark_main(["video", str(src), "--out", str(tmp_path / "file")]) == 0
    judgments = [Judgment(**row) for row in df.to_dict("records")]
    build_video(judgments_table(judgments), BuildConfig(kind="video", out=tmp_path / "api"))
    for name in ("items.parquet", "rankings.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "file" / name), pd.read_parquet(tmp_path / "api" / name))
    file_report = json.loads((tmp_path / "file" / "build_report.json").read_text())
    api_report = json.loads((tmp_path / "api" / "build_report.json").read_text())
    assert api_report["counts"] == file_report["counts"] and api_report["counts"]["rows_in"] == len(df)
