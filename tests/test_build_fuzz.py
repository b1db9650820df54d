"""Fuzzed input rows: every row is kept or quarantined, or the build stops with a clear error."""
from __future__ import annotations

import json

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mr2bench.builders.inputs import (PAIRWISE_OPTIONAL, PAIRWISE_REQUIRED, RANKING_OPTIONAL,
                                      RANKING_REQUIRED, check_pairwise, check_rankings, read_table)
from mr2bench.cli import build_benchmark_main
from mr2bench.schema import DataError

ids = st.sampled_from(["q1", "q2", "q3", "", " ", None, 7, "q\n1", "ü"])
models = st.sampled_from(["m1", "m2", "m3", "m4", "m5", "", None, 3.0, "m1 "])
winners = st.sampled_from(["model_a", "model_b", "a", "B", "tie", "tie (bothbad)", "both_bad", "", None, "x", 1])
texts = st.one_of(st.none(), st.sampled_from(["r1", "r2", ""]), st.text(max_size=5))
pair_row = st.fixed_dictionaries({"question_id": ids, "model_a": models, "model_b": models, "winner": winners},
                                 optional={"annotator_id": st.sampled_from(["u1", "u2", None]),
                                           "response_a": texts, "response_b": texts})
rank_row = st.fixed_dictionaries({"prompt_id": ids, "model": models,
                                  "rank": st.one_of(st.integers(-1, 5), st.sampled_from(["1", "two", None, 2.5]))},
                                 optional={"annotator_id": st.sampled_from(["u1", "u2", None]), "response": texts})
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


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(pair_row, min_size=1, max_size=60))
def test_fuzzed_full_build_never_crashes(tmp_path, rows, capsys):
    path = _write(tmp_path, rows, "jsonl")
    out = tmp_path / "out"
    code = build_benchmark_main(["video", str(path), "--out", str(out), "--bootstrap", "3", "--min-judgments", "1"])
    if code == 0:
        c = json.loads((out / "build_report.json").read_text())["counts"]
        assert c["rows_in"] == len(rows) == c["kept"] + c["quarantined"]
    else:
        assert code == 2 and "error:" in capsys.readouterr().err
