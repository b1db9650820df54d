"""Discovery from the CLI: `mr2bench benchmarks`, `mr2bench models`, and a mistyped --model kind."""
from __future__ import annotations

import json

from mr2bench.cli import main

SIX = {"mr2bench-image", "mr2bench-video", "vl-rewardbench", "multimodal-rewardbench",
       "mm-rlhf-rewardbench", "videorewardbench"}


def test_benchmarks_lists_the_six_with_source_metric_and_protocol(capsys):
    assert main(["benchmarks", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["name"] for r in rows} == SIX
    for r in rows:
        assert r["source"] and r["metric"] and r["protocol"] and r["version"]


def test_benchmarks_table_has_one_line_per_benchmark(capsys):
    assert main(["benchmarks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["name", "version", "metric"]
    assert {ln.split()[0] for ln in lines[1:] if not ln.startswith(" ")} == SIX


def test_models_lists_every_kind_with_usage(capsys):
    from mr2bench.adapters import MODEL_KINDS

    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in rows] == MODEL_KINDS.names()
    assert all(r["usage"].startswith(r["kind"]) and r["description"] for r in rows)


def test_misspelled_model_kind_is_one_line_with_the_close_match(tmp_path, capsys):
    code = main(["evaluate-model", "--model", "lenght", "--benchmarks", "mr2bench-image",
                 "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Did you mean length?" in err[0] and "--model" in err[0]
