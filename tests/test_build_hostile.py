"""Hostile and real-world-shaped inputs to build-benchmark: each test performs one attack of issue 11
through the CLI (or build_video) and asserts that it is quarantined or refused, never built wrong."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pandas as pd
import pytest

from mr2bench.cli import build_benchmark_main

MODELS = ["m0", "m1", "m2", "m3", "m4"]
FAST = ["--min-judgments", "3"]


def votes(qids: list[str], per: int = 40, codes: tuple[str, str] = ("model_a", "model_b"), seed: int = 0,
          annotators: int = 6, **extra) -> list[dict]:
    """Consistent votes (m0 > m1 > ... > m4, 10 % noise) with distinct timestamps: easy to rank."""
    rng = random.Random(seed)
    rows, t = [], 0
    for q in qids:
        for _ in range(per):
            a, b = rng.sample(MODELS, 2)
            first = MODELS.index(a) < MODELS.index(b)
            first ^= rng.random() < 0.1
            t += 1
            rows.append({"question_id": q, "model_a": a, "model_b": b, "winner": codes[0] if first else codes[1],
                         "annotator_id": f"u{rng.randrange(annotators)}", "timestamp": str(t),
                         **{k: (v(q) if callable(v) else v) for k, v in extra.items()}})
    return rows


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    return path


def report(out: Path) -> dict:
    return json.loads((out / "build_report.json").read_text())


def quarantine(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]


def balanced(out: Path, n: int) -> None:
    c = report(out)["counts"]
    assert c["rows_in"] == n == c["kept"] + c["quarantined"]


# ---------------------------------------------------------------- 1. containment
def test_media_outside_the_input_folder_are_quarantined_never_read(tmp_path, capsys):
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"SECRET-BYTES")
    data = tmp_path / "data"
    data.mkdir()
    (data / "ok.mp4").write_bytes(b"good clip")
    (data / "link.mp4").symlink_to(secret)            # inside by name, outside once resolved
    os.mkfifo(data / "pipe.mp4")                       # opening it would block the build forever
    media = {"good": "ok.mp4", "abs": str(secret), "dots": "../secret.mp4", "link": "link.mp4",
             "fifo": "pipe.mp4", "url": "https://example.com/v.mp4", "etc": "/etc/passwd"}
    rows = votes(list(media), video=lambda q: media[q])
    src = write(data / "votes.csv", rows)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 0
    balanced(out, len(rows))
    by_q: dict[str, set] = {}
    for q in quarantine(out):
        by_q.setdefault(q["record"]["question_id"], set()).add(q["reason"])
    assert by_q == {"abs": {"media_outside_root"}, "dots": {"media_outside_root"}, "link": {"media_outside_root"},
                    "etc": {"media_outside_root"}, "fifo": {"media_not_a_file"}, "url": {"media_url_unsupported"}}
    copied = [p.read_bytes() for p in (out / "media").iterdir()]
    assert copied == [b"good clip"]
    items = pd.read_parquet(out / "items.parquet")
    assert set(items["question_id"]) == {"good"}
    assert "Traceback" not in capsys.readouterr().err


def test_media_root_flag_moves_the_boundary(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(b"clip a")
    (tmp_path / "beside.mp4").write_bytes(b"beside the csv")
    rows = votes(["qa", "qb"], video=lambda q: {"qa": "a.mp4", "qb": "../beside.mp4"}[q])
    src = write(tmp_path / "in" / "votes.csv", rows)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), "--media-root", str(clips), *FAST]) == 0
    assert {q["reason"] for q in quarantine(out)} == {"media_outside_root"}
    items = pd.read_parquet(out / "items.parquet").drop_duplicates("question_id")
    assert list(items["question_id"]) == ["qa"] and (out / items["video"].iloc[0]).read_bytes() == b"clip a"
    assert report(out)["config"]["media_root"] == str(clips)


def test_python_api_media_are_contained_too(tmp_path, monkeypatch):
    from mr2bench.builders.inputs import judgments_table
    from mr2bench.builders.pipeline import BuildConfig
    from mr2bench.builders.video import build_video
    from mr2bench.schema import Judgment, Media

    monkeypatch.chdir(tmp_path)
    (tmp_path / "inside.mp4").write_bytes(b"inside")
    js = [Judgment(**{k: v for k, v in r.items() if k != "video"},
                   media=Media("video", path="inside.mp4" if r["question_id"] == "q1" else "/etc/hostname"))
          for r in votes(["q1", "q2"])]
    rep = build_video(judgments_table(js), BuildConfig(kind="video", out=tmp_path / "out"))
    assert rep["counts"]["quarantine_reasons"] == {"media_outside_root": 40}


# ---------------------------------------------------------------- 2. collision-free names
def test_media_names_never_collide_and_are_stable(tmp_path):
    ids = ["clip/1", "clip_1", "clip 1", "x" * 120 + "A", "x" * 120 + "B", "问题一", "وثيقة", "same"]
    data = tmp_path / "data"
    data.mkdir()
    for k, q in enumerate(ids[:-1]):
        (data / f"v{k}.mp4").write_bytes(f"video of {q}".encode())
    names = {q: f"v{k}.mp4" for k, q in enumerate(ids[:-1])} | {"same": "v0.mp4"}  # identical bytes to clip/1
    rows = votes(ids, video=lambda q: names[q])
    src = write(data / "votes.jsonl", rows)
    got = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 0
        items = pd.read_parquet(out / "items.parquet").drop_duplicates("question_id").set_index("question_id")
        assert set(items.index) == set(ids)
        for q in ids:
            assert (out / items.loc[q, "video"]).read_bytes() == (data / names[q]).read_bytes(), q
        got.append(items["video"].to_dict())
    assert got[0] == got[1]                                    # the same names on every run
    assert got[0]["same"] == got[0]["clip/1"]                  # identical files share one copy
    assert len(set(got[0].values())) == len(ids) - 1


# ---------------------------------------------------------------- 3. numbers
def rank_rows(bad: dict[int, object]) -> list[dict]:
    rng = random.Random(1)
    rows = []
    for p in range(8):
        order = sorted(MODELS, key=lambda _: rng.random())   # annotators agree: a ranking with signal
        for u in range(3):
            for k, m in enumerate(order):
                rows.append({"prompt_id": f"p{p}", "model": m, "rank": k + 1, "annotator_id": f"a{u}"})
    for i, v in bad.items():
        rows[i]["rank"] = v
    return rows


def test_ranks_must_be_integers_within_the_ranking(tmp_path, capsys):
    bad = {0: 1e30, 5: float("inf"), 10: 2.5, 15: True, 20: float("nan"), 25: 0, 30: 6, 35: -3, 40: "2.0"}
    rows = rank_rows(bad)
    src = tmp_path / "ranks.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))  # json writes Infinity / NaN tokens
    out = tmp_path / "out"
    assert build_benchmark_main(["image", str(src), "--out", str(out), *FAST]) == 0
    balanced(out, len(rows))
    reasons = {q["row"] - 1: q["reason"] for q in quarantine(out)}
    assert reasons == {0: "bad_rank", 5: "bad_rank", 10: "bad_rank", 15: "not_a_scalar", 20: "missing_field",
                       25: "bad_rank", 30: "rank_out_of_range", 35: "bad_rank"}  # "2.0" is rank 2
    csv = write(tmp_path / "ranks.csv", rank_rows({0: "inf", 1: "1e30"}))
    assert build_benchmark_main(["image", str(csv), "--out", str(tmp_path / "o2"), *FAST]) == 0
    assert report(tmp_path / "o2")["counts"]["quarantine_reasons"] == {"bad_rank": 2}
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------- 4. structured values, headers, maps, ids
def test_structured_values_are_quarantined_not_stringified(tmp_path):
    rows = votes(["q1", "q2"])
    rows[0]["model_a"] = ["m1", "m2"]
    rows[1]["question_id"] = {"id": "q1"}
    rows[2]["winner"] = True
    rows[3]["annotator_id"] = False
    rows[4]["model_b"] = 3.5           # a number is a scalar: kept as the model "3.5"
    src = write(tmp_path / "v.jsonl", rows)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 0
    balanced(out, len(rows))
    got = {q["row"]: (q["reason"], q["field"]) for q in quarantine(out)}
    assert got == {1: ("not_a_scalar", "model_a"), 2: ("not_a_scalar", "question_id"),
                   3: ("not_a_scalar", "winner"), 4: ("not_a_scalar", "annotator_id")}
    board = pd.read_csv(out / "leaderboard.csv")
    assert not any("[" in m or "{" in m for m in board["model"])


def test_duplicate_header_is_refused(tmp_path, capsys):
    rows = votes(["q1"])
    src = tmp_path / "dup.csv"
    lines = ["question_id,model_a,model_b,winner,winner"] + [
        f"{r['question_id']},{r['model_a']},{r['model_b']},{r['winner']},"
        f"{'model_b' if r['winner'] == 'model_a' else 'model_a'}" for r in rows]  # the columns disagree
    src.write_text("\n".join(lines) + "\n")
    assert build_benchmark_main(["video", str(src), "--out", str(tmp_path / "o"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "duplicate column(s) ['winner']" in err and "dup.csv" in err and "Traceback" not in err
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"question_id": "q", "model_a": "a", "model_b": "b", "winner": "tie", "winner": "model_a"}\n')
    assert build_benchmark_main(["video", str(dup), "--out", str(tmp_path / "o")]) == 2
    assert "dup.jsonl:row 1: duplicate key 'winner'" in capsys.readouterr().err


def test_clashing_column_maps_are_refused(tmp_path, capsys):
    rows = [dict(r, vote=r["winner"]) for r in votes(["q1"])]
    src = write(tmp_path / "v.csv", rows)
    out = str(tmp_path / "o")
    assert build_benchmark_main(["video", str(src), "--out", out, "--column", "winner=vote"]) == 2
    err = capsys.readouterr().err
    assert "--column winner=vote" in err and "already has a column 'winner'" in err
    assert build_benchmark_main(["video", str(src), "--out", out, "--column", "winner=vote",
                                 "--column", "winner=timestamp"]) == 2
    assert "clashes with --column winner=vote" in capsys.readouterr().err
    assert build_benchmark_main(["video", str(src), "--out", out, "--column", "category=nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


def test_ids_are_stripped_and_control_characters_rejected(tmp_path):
    rows = votes(["q1", "q2"])
    for k, r in enumerate(rows):
        if r["model_a"] == "m0" and k % 2:
            r["model_a"] = " m0 "                              # one model, however it is padded
    rows[0]["model_b"] = "m9\nrank 1 | evil"                   # would break leaderboard.md
    rows[1]["question_id"] = "q1\x00"
    rows[2]["annotator_id"] = "u\u202eevil"                    # a bidi override reorders what readers see
    src = write(tmp_path / "v.jsonl", rows)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 0
    balanced(out, len(rows))
    assert {q["row"]: q["reason"] for q in quarantine(out)} == {1: "control_character", 2: "control_character",
                                                               3: "control_character"}
    assert sorted(pd.read_csv(out / "leaderboard.csv")["model"]) == MODELS
    assert len((out / "leaderboard.md").read_text().splitlines()) == 2 + len(MODELS)


# ---------------------------------------------------------------- 5. value maps
@pytest.mark.parametrize("codes", [("left", "right"), ("A>B", "B>A"), ("1", "2")])
def test_other_winner_codes_build_with_value_maps(tmp_path, capsys, codes):
    """real-artifacts.md, "Human pairwise data in the wild": other logs use left/right, A>B, 1/2."""
    rows = votes(["q1", "q2", "q3"], codes=codes)
    src = write(tmp_path / "log.csv", rows)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    n = {c: sum(r["winner"] == c for r in rows) for c in codes}
    assert f"unknown_winner {len(rows)}" in err and f"{codes[0]!r} {n[codes[0]]}" in err and "--value" in err
    assert report(out)["quarantine_values"]["unknown_winner"]["values"] == n
    assert len(quarantine(out)) == len(rows)
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST, "--value", f"winner:{codes[0]}=model_a",
                                 "--value", f"winner:{codes[1]}=model_b"]) == 0
    balanced(out, len(rows))
    assert report(out)["counts"]["quarantined"] == 0 and report(out)["leaderboard"][0]["model"] == "m0"


def test_value_maps_apply_to_any_column_after_column_maps(tmp_path, capsys):
    rows = [dict(r, who=r.pop("model_a")) for r in votes(["q1", "q2"])]
    src = write(tmp_path / "v.csv", rows)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST, "--column", "model_a=who",
                                 "--value", "model_a:m0=m4", "--value", "model_b:m0=m4"]) == 0
    assert "m0" not in set(pd.read_csv(out / "leaderboard.csv")["model"])
    assert build_benchmark_main(["video", str(src), "--out", str(out), "--value", "winner=model_a"]) == 2
    assert "--value expects column:theirs=ours" in capsys.readouterr().err


# ---------------------------------------------------------------- 6. duplicates by evidence
def test_repeat_votes_are_dropped_only_on_evidence(tmp_path):
    """real-artifacts.md: legitimate repeat votes exist (same annotator, same pair, different times)."""
    rows = votes(["q1", "q2"])
    rows.append(dict(rows[0], timestamp="9999"))    # the same person again, later: a real vote
    rows.append(dict(rows[1]))                       # same timestamp: a double submission
    src = write(tmp_path / "v.csv", rows)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 0
    assert report(out)["counts"]["quarantine_reasons"] == {"duplicate_vote": 1}
    keyless = [{k: v for k, v in r.items() if k != "timestamp"} for r in rows]
    src = write(tmp_path / "nokey.csv", keyless)
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 0
    c = report(out)["counts"]
    assert c["quarantined"] == 0 and c["identical_rows_kept"] >= 2


def test_constant_annotator_id_is_not_a_person(tmp_path):
    """real-artifacts.md: some exports put one constant string in the annotator column."""
    rows = [dict(r, annotator_id="judge") for r in votes(["q1", "q2", "q3"], per=60)]
    for r in rows:
        del r["timestamp"]
    src = write(tmp_path / "v.csv", rows)
    out = tmp_path / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 0
    rep = report(out)
    assert rep["counts"]["kept"] == len(rows) and rep["counts"]["quarantined"] == 0
    assert rep["annotators"]["not_per_person"] == [{"annotator_id": "judge", "judgments": len(rows), "share": 1.0}]
    assert rep["annotators"]["per_annotator"] == []


def test_genai_arena_battles_keep_their_votes(samples_dir, tmp_path):
    """The GenAI-Arena log (judge "arena_user_::1" on all 2,061 battles) lost 92 % of its votes as
    duplicates; with and without its timestamps every vote is kept now."""
    raw = json.loads((samples_dir / "pairwise" / "genai_arena_battles_20240220" /
                      "clean_battle_20240220.json").read_text())
    rows = [{"question_id": r["model_a"].rsplit("_", 1)[1], "model_a": r["model_a"], "model_b": r["model_b"],
             "winner": r["winner"], "judge": r["judge"], "tstamp": r["tstamp"]} for r in raw]
    for variant, cols in (("with_time", ["--column", "timestamp=tstamp"]), ("no_time", [])):
        data = [dict(r) for r in rows] if cols else [{k: v for k, v in r.items() if k != "tstamp"} for r in rows]
        src = write(tmp_path / f"{variant}.jsonl", data)
        out = tmp_path / variant
        code = build_benchmark_main(["video", str(src), "--out", str(out), "--min-judgments", "3",
                                     "--separation", "0.5", "--column", "annotator_id=judge", *cols])
        assert code == 0, variant
        rep = report(out)
        balanced(out, 2061)
        assert rep["counts"]["quarantine_reasons"].get("duplicate_vote", 0) == 0
        assert rep["counts"]["kept"] >= 2061 - 5
        assert rep["annotators"]["not_per_person"][0]["annotator_id"] == "arena_user_::1"


# ---------------------------------------------------------------- 7. empty is an error
def test_empty_builds_fail_and_name_their_losses(tmp_path, capsys):
    rows = votes(["q1", "q2"], codes=("left", "right"))
    src = write(tmp_path / "v.csv", rows)
    out = tmp_path / "o1"
    assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert "nothing to build: 0 of 80 rows kept" in err and "unknown_winner 80" in err
    assert len(quarantine(out)) == 80 and report(out)["status"] == "failed"
    assert not (out / "items.parquet").exists() and not (out / "manifest.json").exists()

    good = write(tmp_path / "g.csv", votes(["q1", "q2"]))
    out = tmp_path / "o2"
    assert build_benchmark_main(["video", str(good), "--out", str(out), "--min-judgments", "1000"]) == 2
    err = capsys.readouterr().err
    assert "0 of 2 questions ranked" in err and "too_few_judgments 2" in err and "'q1' (40 judgments" in err
    assert report(out)["counts"]["questions_filtered"] == {"too_few_judgments": 2}
    assert (out / "quarantine.jsonl").exists()

    three = write(tmp_path / "t.csv", [r for r in votes(["q1"]) if {r["model_a"], r["model_b"]} <= {"m0", "m1", "m2"}])
    out = tmp_path / "o3"
    assert build_benchmark_main(["video", str(three), "--out", str(out), "--min-judgments", "1"]) == 2
    err = capsys.readouterr().err
    assert "0 items sampled" in err and "fewer_than_4_models 1" in err and "Traceback" not in err
    assert report(out)["counts"]["questions_without_items"] == {"fewer_than_4_models": 1}


def test_an_empty_build_names_its_row_losses_beside_its_question_losses(tmp_path, capsys):
    """90% of the votes carry codes nobody mapped: the build ends with too few votes per question, and the
    error must still name the rows it lost and their values, the loss that explains it."""
    rows = votes(["q1", "q2"])
    for k, r in enumerate(rows):
        if k % 10:
            r["winner"] = "left" if k % 2 else "right"
    src = write(tmp_path / "lr.csv", rows)
    assert build_benchmark_main(["video", str(src), "--out", str(tmp_path / "o"), "--min-judgments", "10"]) == 2   # 4 votes a question are too few
    err = capsys.readouterr().err
    assert "nothing to build" in err and "unknown_winner 72" in err and "'left'" in err and "--value" in err


def test_the_removed_bootstrap_flag_warns_instead_of_being_silently_obeyed(tmp_path, caplog):
    """0.1 scripts pass --bootstrap N; confidence is a posterior now, so the flag is named as ignored."""
    src = write(tmp_path / "v.csv", votes(["q1", "q2"]))
    with caplog.at_level("WARNING"):
        assert build_benchmark_main(["video", str(src), "--out", str(tmp_path / "o"), "--bootstrap", "6", *FAST]) == 0
    assert any("--bootstrap is ignored" in r.getMessage() for r in caplog.records)


def test_parquet_input_is_validated_like_csv(tmp_path):
    """Parquet string columns are read dictionary-encoded (memory of the distinct values); the values they
    hold must still meet every rule: padded ids merged, control characters, unknown codes, missing ids."""
    rows = votes(["q1", "q2"])
    rows[0]["model_a"] = " m0 "
    rows[1]["question_id"] = "q1\nq2"
    rows[2]["winner"] = "left"
    rows[3]["question_id"] = None
    csv = write(tmp_path / "v.csv", rows)
    pq = tmp_path / "v.parquet"
    pd.DataFrame(rows).to_parquet(pq, index=False)
    outs = {}
    for src in (csv, pq):
        out = tmp_path / f"out-{src.suffix[1:]}"
        assert build_benchmark_main(["video", str(src), "--out", str(out), *FAST]) == 0
        balanced(out, len(rows))
        outs[src.suffix] = report(out)["counts"]
    assert outs[".parquet"]["quarantine_reasons"] == outs[".csv"]["quarantine_reasons"] == {
        "control_character": 1, "missing_field": 1, "unknown_winner": 1}
    assert outs[".parquet"]["kept"] == outs[".csv"]["kept"] and outs[".parquet"]["models"] == 5
