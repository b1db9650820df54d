"""Fuzzed input rows: every row is kept or quarantined, or the build stops with a clear error."""
from __future__ import annotations

import json

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mr2bench.builders.inputs import (PAIRWISE_OPTIONAL, PAIRWISE_REQUIRED, RANKING_OPTIONAL,
                                      RANKING_REQUIRED, check_pairwise, check_rankings, read_table)
from mr2bench.cli import build_benchmark_main
from mr2bench.schema import DataError

# Hostile scalars (issue 11): structures, bools, huge and non-finite numbers, control characters.
hostile = st.one_of(st.lists(st.sampled_from(["m1", 2]), max_size=2), st.dictionaries(st.sampled_from(["k"]), st.integers(0, 2)),
                    st.booleans(), st.sampled_from([1e30, -1e30, float("inf"), float("nan"), 2 ** 70, "m1\n", "q\x00",
                                                    "a\u202eb", "\t"]))
ids = st.one_of(st.sampled_from(["q1", "q2", "q3", "", " ", None, 7, "q\n1", "ü", " q1"]), hostile)
models = st.one_of(st.sampled_from(["m1", "m2", "m3", "m4", "m5", "", None, 3.0, "m1 "]), hostile)
winners = st.one_of(st.sampled_from(["model_a", "model_b", "a", "B", "tie", "tie (bothbad)", "both_bad", "", None, "x", 1,
                                     "left", "right"]), hostile)
texts = st.one_of(st.none(), st.sampled_from(["r1", "r2", ""]), st.text(max_size=5), hostile)
stamps = st.one_of(st.none(), st.sampled_from(["t1", "t2"]), hostile)
pair_row = st.fixed_dictionaries({"question_id": ids, "model_a": models, "model_b": models, "winner": winners},
                                 optional={"annotator_id": st.one_of(st.sampled_from(["u1", "u2", None]), hostile),
                                           "timestamp": stamps, "vote_id": stamps,
                                           "video": st.sampled_from(["clip.mp4", "../x.mp4", "/etc/passwd",
                                                                     "http://h/v.mp4", None]),
                                           "response_a": texts, "response_b": texts})
rank_row = st.fixed_dictionaries({"prompt_id": ids, "model": models,
                                  "rank": st.one_of(st.integers(-1, 5), st.sampled_from(["1", "two", None, 2.5, "2.0"]),
                                                    hostile)},
                                 optional={"annotator_id": st.sampled_from(["u1", "u2", None]), "response": texts})
value_flags = st.lists(st.sampled_from(["winner:left=model_a", "winner:right=model_b", "model_a:m5=m1",
                                        "question_id:q3=q1"]), max_size=3, unique=True)
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(tmp_path, rows, fmt):
    path = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    return path


@FUZZ
@given(rows=st.lists(pair_row, min_size=1, max_size=40), fmt=st.sampled_from(["csv", "jsonl"]))
def test_pairwise_rows_are_kept_or_quarantined(tmp_path, rows, fmt):
    path = _write(tmp_path, rows, fmt)
    try:
        table = read_table(str(path), PAIRWISE_REQUIRED, PAIRWISE_OPTIONAL)
    except DataError as exc:  # e.g. a column that never appears: a clear, located message
        assert str(path) in str(exc)
        return
    if fmt == "jsonl":  # (a CSV writer may split a text with a bare carriage return into records)
        assert len(table.df) == len(rows)
    checked = check_pairwise(table.df)
    n = len(table.df)
    assert len(checked.kept) + len(checked.quarantine) == n
    assert sorted(checked.kept["_row"].tolist() + [q["row"] for q in checked.quarantine]) == list(range(1, n + 1))
    assert set(checked.kept["winner"]) <= {"model_a", "model_b", "tie", "both_bad"}


@FUZZ
@given(rows=st.lists(rank_row, min_size=1, max_size=40))
def test_ranking_rows_are_kept_or_quarantined(tmp_path, rows):
    path = _write(tmp_path, rows, "jsonl")
    try:
        table = read_table(str(path), RANKING_REQUIRED, RANKING_OPTIONAL)
    except DataError:
        return
    checked = check_rankings(table.df)
    assert len(checked.kept) + len(checked.quarantine) == len(rows)


# consistent votes m1 > m2 > ... > m5 on two questions, 5 annotators, distinct timestamps
BASE = [{"question_id": f"q{1 + k % 2}", "model_a": f"m{1 + a}", "model_b": f"m{1 + b}", "winner": "model_a",
         "annotator_id": f"u{k % 5}", "timestamp": f"b{k}", "video": "clip.mp4"}
        for k, (a, b) in enumerate([(a, b) for a in range(5) for b in range(a + 1, 5)] * 8)]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(pair_row, min_size=0, max_size=30), values=value_flags, media_root=st.booleans())
def test_fuzzed_full_build_never_crashes(tmp_path, rows, values, media_root, capsys):
    rows = BASE + rows  # a buildable core, so the fuzz reaches the outputs and not only the errors
    path = _write(tmp_path, rows, "jsonl")
    (tmp_path / "clip.mp4").write_bytes(b"clip")
    flags = [x for v in values for x in ("--value", v)] + (["--media-root", str(tmp_path)] if media_root else [])
    outs = [tmp_path / "out0", tmp_path / "out1"]
    codes = [build_benchmark_main(["video", str(path), "--out", str(o), "--min-judgments", "1",
                                   *flags]) for o in outs]
    assert codes[0] == codes[1]
    event(f"exit {codes[0]}")
    if codes[0] == 0:
        c = json.loads((outs[0] / "build_report.json").read_text())["counts"]
        assert c["rows_in"] == len(rows) == c["kept"] + c["quarantined"]
        _assert_same_files(*outs)
    else:
        err = capsys.readouterr().err
        assert codes[0] == 2 and "error:" in err and "Traceback" not in err


SKIP = ("timings.json", "manifest.json")  # wall times; the manifest hashes files that name their OUT


def _assert_same_files(a, b):
    """Two builds with one seed: the same files, byte for byte (timings.json and the OUT path aside)."""
    def files(root):
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name not in SKIP)
    assert files(a) == files(b)
    for rel in files(a):
        x, y = (a / rel).read_bytes(), (b / rel).read_bytes()
        if rel.name in ("README.md", "build_report.json"):
            x, y = x.replace(str(a).encode(), b"OUT"), y.replace(str(b).encode(), b"OUT")
        assert x == y, rel
