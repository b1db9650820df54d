"""mr2bench reproduce: the packaged table, availability reasons, and a run over a test config (fake and tiny
models) that writes ours beside the paper's, marks what cannot run, and resumes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mr2bench.adapters import MODEL_KINDS, split_spec
from mr2bench.reproduce import Entry, Probes, load_table, select, unavailable
from mr2bench.schema import DataError

sys.path.insert(0, str(Path(__file__).parent))
from test_evaluate import build_nway  # noqa: E402


def test_packaged_table_matches_the_release_readme():
    t = load_table()
    rows = {e.name: e for e in t.entries}
    paper = [e for e in t.entries if e.paper]
    assert len(paper) == 12 and t.columns[0] == "vl-rewardbench" and t.columns[-1] == "mr2bench-video"
    # benchmarks.md section 1 / mr2-paper.md: GPT-5 and IXC rows, Avg as reported
    assert rows["gpt-5"].paper["mr2bench-image"] == 87.1 and rows["gpt-5"].paper_avg == 69.5
    assert rows["ixc-2.5-reward"].paper["vl-rewardbench"] == 70.0 and rows["ixc-2.5-reward"].avg_source == "reported"
    claude = rows["claude-sonnet-4.5"]
    assert claude.avg_source == "mean of the six" and claude.paper_avg == round(sum(claude.paper.values()) / 6, 1)
    for e in paper:   # every reported Avg is the mean of its six (the README's rule)
        assert abs(e.paper_avg - sum(e.paper.values()) / 6) < 0.06, e.name
    for e in t.entries:  # every spec names a registered kind; nothing runs by model name
        assert split_spec(e.model)[0] in MODEL_KINDS, e.model
    assert rows["ixc-2.5-reward"].trust_remote_code and rows["gpt-5"].api_key_env == "OPENAI_API_KEY"
    assert rows["length"].paper is None and rows["random"].paper is None


def test_unknown_entry_and_bad_config(tmp_path):
    t = load_table()
    with pytest.raises(DataError, match="Did you mean length"):
        select(t.entries, ["lenght"])
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"columns": ["mr2bench-image"], "entries": [{"name": "x", "model": "length",
                                                                           "colour": 1}]}))
    with pytest.raises(DataError, match="unknown keys"):
        load_table(bad)


def test_availability_reasons(tmp_path):
    none = Probes(env={}, cuda=False, cached=lambda repo: False)
    assert unavailable(Entry("a", "a", "api:gpt-5", api_key_env="OPENAI_API_KEY"), none).startswith("no key")
    keyed = Probes(env={"OPENAI_API_KEY": "x"}, cuda=False, cached=lambda repo: False)
    assert unavailable(Entry("a", "a", "api:gpt-5", api_key_env="OPENAI_API_KEY"), keyed) is None
    assert unavailable(Entry("s", "s", "skywork-vl:org/rm"), none).startswith("no weights")
    cached = Probes(env={}, cuda=False, cached=lambda repo: repo == "org/rm")
    assert unavailable(Entry("s", "s", "skywork-vl:org/rm", needs_gpu=True), cached).startswith("no GPU")
    assert unavailable(Entry("s", "s", "skywork-vl:org/rm", needs_gpu=True), cached, allow_cpu=True) is None
    assert unavailable(Entry("s", "s", f"seqcls:{tmp_path}"), none) is None          # a folder is enough
    assert unavailable(Entry("l", "l", "length"), none) is None


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nway-image")
    build_nway(root, 8, "image")
    return root


def test_reproduce_a_test_table(tmp_path, image_dir, monkeypatch, capsys):
    from mr2bench.cli import main

    monkeypatch.delenv("P1_TEST_KEY", raising=False)
    cols = ["mr2bench-image", "mr2bench-video"]
    cfg = {"id": "test_table", "version": 1, "source": "made up for the test", "columns": cols, "entries": [
        {"name": "length", "label": "length", "model": "length", "paper": {"mr2bench-image": 40.0,
                                                                          "mr2bench-video": 30.0}},
        {"name": "random", "label": "random", "model": "random", "paper": None},
        {"name": "api-judge", "label": "API", "model": "api:some-model", "api_key_env": "P1_TEST_KEY",
         "paper": None},
        {"name": "missing", "label": "missing RM", "model": "skywork-vl:nobody/no-such-rm-p1", "paper": None}]}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "out"
    argv = ["reproduce", "--config", str(path), "--data-dir", f"mr2bench-image={image_dir}", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| length | - / - / - |" not in printed and "/ 40.0 /" in printed
    rep = json.loads((out / "reproduce.json").read_text())
    rows = {r["name"]: r for r in rep["rows"]}
    assert rep["benchmarks_run"] == ["mr2bench-image"]            # only the benchmark given a folder
    cell = rows["length"]["cells"]["mr2bench-image"]
    res = json.loads((out / "length" / "mr2bench-image" / "results.json").read_text())
    assert cell["ours"] == pytest.approx(100 * res["metrics"][res["headline_metric"]])
    assert cell["diff"] == pytest.approx(cell["ours"] - 40.0) and len(cell["ci95"]) == 2
    assert rows["length"]["cells"]["mr2bench-video"]["ours"] is None and rows["length"]["avg"]["ours"] is None
    assert rows["length"]["status"] == "ran" and rows["random"]["status"] == "ran"
    assert rows["api-judge"]["status"] == "not run: no key: set P1_TEST_KEY"
    assert rows["missing"]["status"].startswith("not run: no weights: nobody/no-such-rm-p1")
    lines = (out / "length" / "mr2bench-image" / "samples.jsonl").read_text()
    # rerun: the same runner resumes (nothing rescored, the same table)
    assert main(argv) == 0
    assert (out / "length" / "mr2bench-image" / "samples.jsonl").read_text() == lines
    assert json.loads((out / "reproduce.json").read_text())["rows"] == rep["rows"]
    # --only / --skip
    assert main(argv + ["--only", "random,api-judge", "--skip", "api-judge"]) == 0
    assert [r["name"] for r in json.loads((out / "reproduce.json").read_text())["rows"]] == ["random"]


def test_reproduce_with_a_tiny_published_model(tmp_path, image_dir):
    """A tiny Skywork-VL-Reward folder (Qwen2.5-VL + value head) runs through the table like a real entry."""
    pytest.importorskip("torch")
    from test_published_pointwise import tiny_skywork

    from mr2bench.reproduce import ReproduceConfig, run_table

    model = tiny_skywork(tmp_path / "sky")
    table = load_table()
    entry = Entry("tiny-skywork", "tiny Skywork", f"skywork-vl:{model}", needs_gpu=True,
                  paper={c: 50.0 for c in table.columns}, paper_avg=50.0, avg_source="reported")
    rc = ReproduceConfig(out=tmp_path / "out", benchmarks=("mr2bench-image",),
                         data_dirs={"mr2bench-image": image_dir}, device="cpu", limit=2, progress=False)
    rows, problems = run_table(table, [entry], rc, Probes(env={}, cuda=False, cached=lambda r: False))
    assert rows[0]["status"].startswith("not run: no GPU")
    rows, problems = run_table(table, [entry], rc.__class__(**{**rc.__dict__, "allow_cpu": True}),
                               Probes(env={}, cuda=False, cached=lambda r: False))
    assert problems == 0 and rows[0]["status"] == "ran"
    assert rows[0]["cells"]["mr2bench-image"]["ours"] is not None
    assert rows[0]["cells"]["mr2bench-image"]["paper"] == 50.0


def test_presets_are_valid_model_args_for_their_kind():
    from mr2bench.judges.config import judge_config
    from mr2bench.published.api_presets import PRESETS, evaluate_model_args, get_preset

    for name in PRESETS.names():
        p = get_preset(name)
        kind = split_spec(p.model)[0]
        judge_config(p.model_args, kind=kind)           # an unknown or mistyped key would raise here
        assert (p.api_key_env is not None) == (kind == "api")
    flags = evaluate_model_args(get_preset("gpt-5"))
    assert flags[:6] == ["--model", "api:gpt-5", "--api-base", "https://api.openai.com/v1", "--api-key-env",
                         "OPENAI_API_KEY"] and "max_tokens=16384" in flags
