"""build-benchmark plan: the next votes to collect, through the CLI entry point."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mr2bench.cli import build_benchmark_main
from mr2bench.ranking.plan import PlanConfig, Request, orient, orient_batches
from mr2bench.ranking.simulate import pairwise_arena
from test_build import votes_csv_with_bad_rows

BAD = [{"winner": "left"}, {"model_b": "__same__"}, {"question_id": None}, {}]   # + one exact repeat (timestamp)
REASONS = ["duplicate_vote", "missing_field", "self_pair", "unknown_winner"]


def _csv(tmp: Path, **kw) -> tuple[Path, int]:
    """A thin pairwise arena as a user CSV, with malformed rows the build quarantines."""
    args = dict(n_questions=20, n_models=8, votes_per_question=14, n_annotators=15, setting="noisy",
                model_sd=0.5, question_sd=1.0)
    df = pairwise_arena(4, **{**args, **kw}).judgments
    return votes_csv_with_bad_rows(tmp, df, df.iloc[0].to_dict(), BAD)


def _requests(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "requests.csv")


PLAN_FLAGS = ["--budget", "90", "--batch", "30", "--per-question-cap", "3", "--per-pair-cap", "1",
              "--exclude-models", "aurora-7b", "--exclude-questions", "q0001,q0002", "--seed", "5"]


@pytest.fixture(scope="module")
def csv_plan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    src, n = _csv(tmp)
    flags = PLAN_FLAGS
    outs = []
    for k in range(2):
        out = tmp / f"out{k}"
        assert build_benchmark_main(["plan", str(src), "--out", str(out), *flags]) == 0
        outs.append(out)
    return src, n, outs


def test_user_csv_quarantined_like_the_build(csv_plan):
    _, n, (out, _) = csv_plan
    c = json.loads((out / "plan_report.json").read_text())["counts"]
    assert c["rows_in"] == n == c["kept"] + c["quarantined"]
    assert c["quarantine_reasons"] == {r: 1 for r in REASONS}
    lines = (out / "quarantine.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["reason"] for x in lines) == REASONS


def test_constraints_respected(csv_plan):
    _, _, (out, _) = csv_plan
    df = _requests(out)
    assert 0 < len(df) <= 90 and df["order"].tolist() == list(range(1, len(df) + 1))
    assert df.groupby("batch").size().max() <= 30
    assert df.groupby(["batch", "question_id"]).size().max() <= 3
    pair = df.apply(lambda r: tuple(sorted((r.model_a, r.model_b))), axis=1)
    assert df.assign(pair=pair).groupby(["batch", "question_id", "pair"]).size().max() <= 1
    assert "aurora-7b" not in set(df["model_a"]) | set(df["model_b"])
    assert not set(df["question_id"]) & {"q0001", "q0002"}
    assert (df["model_a"] != df["model_b"]).all()
    for _, b in df.groupby("batch"):   # each batch balanced on its own (a campaign sends one and replans)
        left, right = Counter(b["model_a"]), Counter(b["model_b"])
        assert max(abs(left[m] - right[m]) for m in set(left) | set(right)) <= 1
    left, right = Counter(df["model_a"]), Counter(df["model_b"])
    assert max(abs(left[m] - right[m]) for m in set(left) | set(right)) <= 2
    assert (df["gain"] >= 0).all() and (df["separation_prob"] < 1).all()
    jl = [json.loads(x) for x in (out / "requests.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in jl] == df["question_id"].tolist()


def test_questions_are_planned_up_to_the_aim_only(csv_plan):
    _, _, (out, _) = csv_plan
    rep = json.loads((out / "plan_report.json").read_text())
    assert rep["counts"]["aim"] == pytest.approx(0.92)   # a fifth of the way from --separation 0.9 to 1
    df = _requests(out)
    # a request is only chosen while its question's state is below the aim (done questions get none)
    assert (df["separation_prob"] < rep["counts"]["aim"]).all()
    assert PlanConfig(1, separation=0.8).aim == pytest.approx(0.84)
    assert PlanConfig(1, separation=0.8, target=0.97).aim == 0.97


def test_a_higher_aim_keeps_asking_about_questions_the_default_calls_done(tmp_path):
    counts = {}
    for name, extra in (("default", []), ("high", ["--aim", "0.99"])):
        out = tmp_path / name
        assert build_benchmark_main(["plan", "--out", str(out), "--budget", "20", *extra]) == 0   # the demo arena
        counts[name] = json.loads((out / "plan_report.json").read_text())["counts"]
        assert (_requests(out)["separation_prob"] <= counts[name]["aim"]).all()   # (rounded to 3 places)
    assert (counts["default"]["aim"], counts["high"]["aim"]) == (pytest.approx(0.92), 0.99)
    assert counts["high"]["questions_open"] > counts["default"]["questions_open"]


def test_byte_identical_and_seeded(csv_plan, tmp_path):
    src, _, (a, b) = csv_plan
    for name in ("requests.csv", "requests.jsonl", "quarantine.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    other = tmp_path / "seed6"
    assert build_benchmark_main(["plan", str(src), "--out", str(other), "--budget", "90", "--seed", "6"]) == 0
    assert len(_requests(other)) > 0


def test_demo_arena(tmp_path):
    out = tmp_path / "demo"
    assert build_benchmark_main(["plan", "--budget", "20", "--out", str(out)]) == 0
    rep = json.loads((out / "plan_report.json").read_text())
    assert rep["source"] == "demo:video-arena"
    assert rep["counts"]["rows_in"] == rep["counts"]["kept"] + rep["counts"]["quarantined"]
    assert rep["counts"]["quarantined"] == 5
    assert 0 < len(_requests(out)) <= 20


@pytest.mark.parametrize("flags, says", [
    (["--budget", "0"], "--budget"), ([], "needs --budget"), (["--budget", "5", "--per-pair-cap", "0"], "--per-pair-cap"),
    (["--budget", "5", "--exclude-models", "no-such-model"], "--exclude-models"),
    (["--budget", "5", "--aim", "0.5"], "--aim"), (["--budget", "5", "--aim", "1"], "--aim"),
    (["--budget", "5", "--aim", "nan"], "--aim"), (["--budget", "5", "--separation", "1"], "--separation < 1"),
])
def test_bad_flags(tmp_path, capsys, flags, says):
    src, _ = _csv(tmp_path)
    assert build_benchmark_main(["plan", str(src), "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and says in err and "Traceback" not in err


def test_everything_excluded_is_an_error(tmp_path, capsys):
    src, _ = _csv(tmp_path, n_questions=3)
    assert build_benchmark_main(["plan", str(src), "--out", str(tmp_path / "o"), "--budget", "5",
                                 "--exclude-questions", "q0000,q0001,q0002"]) == 2
    err = capsys.readouterr().err
    assert "nothing to plan: of 3 questions" in err and "excluded by --exclude-questions" in err


def test_every_question_done_is_an_error(tmp_path, capsys):
    src, _ = _csv(tmp_path, n_questions=3, n_models=5, votes_per_question=600, setting="clean", model_sd=1.5,
                  question_sd=0.3)
    assert build_benchmark_main(["plan", str(src), "--out", str(tmp_path / "o"), "--budget", "5",
                                 "--separation", "0.6"]) == 2
    err = capsys.readouterr().err
    assert "nothing to plan: of 3 questions, 3 already yield" in err


def test_orientation_balances_every_model():
    rng = np.random.default_rng(0)
    for _ in range(20):
        reqs = [Request(0, int(a), int(b), 0.0, 0.5, 1, int(a), 0)
                for a, b in (rng.choice(7, 2, replace=False) for _ in range(int(rng.integers(1, 60))))]
        got = orient(reqs)
        assert [{r.left, r.right} for r in got] == [{r.left, r.right} for r in reqs]
        bal = Counter()
        for r in got:
            bal[r.left] += 1
            bal[r.right] -= 1
        assert max(abs(v) for v in bal.values()) <= 1


def test_batches_are_balanced_on_their_own_and_steered_together():
    rng = np.random.default_rng(1)
    worst = Counter()
    for _ in range(200):
        reqs = [Request(0, int(a), int(b), 0.0, 0.5, 1, int(a), k)
                for k in range(int(rng.integers(1, 12)))
                for a, b in (rng.choice(9, 2, replace=False) for _ in range(int(rng.integers(1, 50))))]
        got = orient_batches(reqs)
        assert [({r.left, r.right}, r.batch) for r in got] == [({r.left, r.right}, r.batch) for r in reqs]
        total = Counter()
        for k in {r.batch for r in got}:
            bal = Counter()
            for r in got:
                if r.batch == k:
                    bal[r.left] += 1
                    bal[r.right] -= 1
            assert max(abs(v) for v in bal.values()) <= 1      # guaranteed per batch (Euler tour)
            total.update(bal)
        worst[max(abs(v) for v in total.values())] += 1
    # steering keeps the whole plan near balance too: one batch after another would drift to ~sqrt(batches)
    assert max(worst) <= 3 and worst[0] + worst[1] >= 0.8 * sum(worst.values())


def test_plan_output_is_replaced_whole_and_never_over_a_build(tmp_path, capsys):
    """PLAN is swapped in whole: a build folder is refused (a plan would break its manifest), and a plan
    that fails after validation leaves its quarantine and a failed report, not the previous requests."""
    src, _ = _csv(tmp_path)
    build = tmp_path / "build"
    assert build_benchmark_main(["video", str(src), "--out", str(build), "--separation", "0.5"]) == 0
    before = {p.name: p.read_bytes() for p in build.iterdir()}
    assert build_benchmark_main(["plan", str(src), "--out", str(build), "--budget", "10"]) == 2
    assert "--out" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in build.iterdir()} == before

    out = tmp_path / "plan"
    assert build_benchmark_main(["plan", str(src), "--out", str(out), "--budget", "10"]) == 0
    assert (out / "requests.csv").is_file()
    assert build_benchmark_main(["plan", str(src), "--out", str(out), "--budget", "10",
                                 "--exclude-models", "no-such-model"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["plan_report.json", "quarantine.jsonl"]
    rep = json.loads((out / "plan_report.json").read_text())
    assert rep["status"] == "failed" and "no-such-model" in rep["error"]
    assert not list(tmp_path.glob("plan.tmp-*")) and not list(tmp_path.glob("plan.trash-*"))
