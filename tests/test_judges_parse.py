"""Verdict parsers, the vote, judge settings and prompt templates: pure functions, no model."""
from __future__ import annotations

import pytest

from mr2bench.judges.config import judge_config
from mr2bench.judges.parse import parse_mmrb, parse_nway, parse_pairwise_last, parse_vlrb
from mr2bench.judges.prompts import (DEFAULT_NWAY, DEFAULT_PAIRWISE, get_template, template_id_for,
                                     template_ids)
from mr2bench.judges.verdict import scores_from_order, vote
from mr2bench.registry import get_benchmark
from mr2bench.schema import DataError, ScoringRequest


@pytest.mark.parametrize("text, expected", [
    ("Accuracy: ...\nOverall Judgment: Answer 2 is better.", (1,)),
    ("**Overall Judgment:** Answer 1 is slightly better", (0,)),
    ("overall judgment\n: answer 2 is the better one", (1,)),          # case-insensitive, newline dropped
    ("Overall Judgment: Answer 2 is clearly better", None),             # only (the) (slightly) may intervene
    ("Therefore, Answer 1 is the better answer.", (0,)),
    ("Overall Judgment: Answer 1 is better. On reflection, Answer 2 is better.", (1,)),  # greedy: last wins
    ("Answer 2 is better.", None),                                      # no 'Overall Judgment' / 'Therefore'
    ("Overall Judgment: Answer 3 is better", None),                     # out of range: unreadable (declared)
    ("Overall\nJudgment: Answer 2 is better", None),                    # newlines removed -> 'OverallJudgment'
    ("", None),
])
def test_parse_vlrb(text, expected):
    assert parse_vlrb(text, 2) == expected


@pytest.mark.parametrize("text, expected", [
    ("explanation ... [[B]]", (1,)),
    ("[[A]]", (0,)),
    ('"[[A]]" if A is better, "[[B]]" if B is better ... [[B]]', (0,)),  # official: A is checked first
    ("[A] or [[ B ]]", None),
    ("Final verdict: B", None),
])
def test_parse_mmrb(text, expected):
    assert parse_mmrb(text, 2) == expected


@pytest.mark.parametrize("text, expected", [
    ('"[[A]]" if A is better, "[[B]]" if B is better. Verdict: [[B]]', (1,)),  # the last one counts
    ("[[ A ]]", (0,)),
    ("[[C]]", None),                                                    # not a label for 2 responses
    ("[[B]] then [[C]]", (1,)),
    ("no verdict", None),
])
def test_parse_pairwise_last(text, expected):
    assert parse_pairwise_last(text, 2) == expected


@pytest.mark.parametrize("text, expected", [
    ("Best: [[C]]\nRanking: [[C > A > D > B]]", (2, 0, 3, 1)),
    ("Best: [[C]]", (2,)),
    ("Ranking: [[B > A > D > C]]", (1, 0, 3, 2)),
    ("Best: [[C]]\nRanking: [[A > C > D > B]]", (2,)),                  # disagreement: Best wins, ranking dropped
    ("Best: [[C]]\nRanking: [[C > A > A > B]]", (2,)),                  # not a permutation: ignored
    ("Best: [[C]]\nRanking: [[C > A > D]]", (2,)),                      # incomplete: ignored
    ("Best: [[X]]\nRanking: [[X > Y > ...]]", None),                    # the instructions echoed
    ("Best: [[E]]", None),
    ("Best: [[B]]\nRanking: [[B, D, A, C]]", (1, 3, 0, 2)),
])
def test_parse_nway(text, expected):
    assert parse_nway(text, 4) == expected


def test_scores_from_order():
    assert scores_from_order((1,), 2) == (0.0, 1.0)
    assert scores_from_order((2, 0, 3, 1), 4) == (3.0, 1.0, 4.0, 2.0)
    assert scores_from_order((2,), 4) == (0.0, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        scores_from_order((5,), 4)


def test_vote_rules():
    # k = 1 keeps a full ranking
    assert vote([(2, 0, 3, 1)], 4) == (3.0, 1.0, 4.0, 2.0)
    assert vote([None], 2) is None
    # majority of ALL k samples (VL-RewardBench cal.py): 6 of 10 wins, 5 of 10 does not
    assert vote([(0,)] * 6 + [(1,)] * 3 + [None], 2) == (6.0, 3.0)
    assert vote([(0,)] * 5 + [(1,)] * 5, 2) is None
    assert vote([(0,)] * 4 + [(1,)] * 2 + [None] * 4, 2) is None
    # plurality among readable samples; a tie for the most is unreadable, never a coin
    assert vote([(0,)] * 4 + [(1,)] * 2 + [None] * 4, 2, "plurality") == (4.0, 2.0)
    assert vote([(0,), (1,), None], 2, "plurality") is None
    assert vote([(2, 0, 1, 3), (2,), (1,)], 4) == (0.0, 1.0, 2.0, 0.0)   # votes count the top choice
    with pytest.raises(ValueError):
        vote([(0,)], 2, "coin")


def test_judge_config_strict():
    cfg = judge_config({"samples": "10", "price_in": "2.5", "prompt": "mmrb_pairwise_v1"}, kind="api")
    assert (cfg.samples, cfg.price_in, cfg.sampling_temperature, cfg.sampling_top_p) == (10, 2.5, 0.2, 0.2)
    assert judge_config({}, kind="judge").sampling_temperature == 0.0
    with pytest.raises(DataError, match="unknown --model-arg 'concurrency'"):
        judge_config({"concurrency": "4"}, kind="judge")            # an API-only key on a local judge
    with pytest.raises(DataError, match="unknown --model-arg 'temprature'"):
        judge_config({"temprature": "1"}, kind="api")
    with pytest.raises(DataError, match="expected a number"):
        judge_config({"samples": "ten"}, kind="api")
    with pytest.raises(DataError, match="temperature > 0"):
        judge_config({"samples": "3", "temperature": "0"}, kind="api")


def test_template_selection():
    two = ScoringRequest(prompt="q", responses=("a", "b"))
    four = ScoringRequest(prompt="q", responses=("a", "b", "c", "d"))
    assert template_id_for(two) == DEFAULT_PAIRWISE
    assert template_id_for(four) == DEFAULT_NWAY
    assert template_id_for(ScoringRequest(prompt="q", responses=("a", "b"), benchmark="no-such-bench")) \
        == DEFAULT_PAIRWISE
    assert template_id_for(two, "vlrb_pairwise_v1") == "vlrb_pairwise_v1"
    assert set(template_ids()) == {"vlrb_pairwise_v1", "mmrb_pairwise_v1", "pairwise_v1", "nway_best_v1"}
    assert get_template(get_benchmark("vl-rewardbench").judge_prompt).id == "vlrb_pairwise_v1"


def test_template_render_rules():
    vlrb = get_template("vlrb_pairwise_v1")
    text = vlrb.render("<image>\nWhat is it?", ("a cat", "a dog"))
    assert "<image>" not in text and "Question: What is it?" in text
    assert text.index("Answer 1: a cat") < text.index("Answer 2: a dog")
    with pytest.raises(DataError, match="takes 2 responses"):
        vlrb.render("q", ("a", "b", "c"))
    nway = get_template("nway_best_v1")
    six = nway.render("q", tuple("uvwxyz"))
    assert "labelled A, B, C, D, E, F" in six and "[The Start of Response F]\nz\n" in six
    # braces and Jinja syntax inside data are data, not template code
    assert "{{ x }} {% if %}" in nway.render("{{ x }} {% if %}", ("a", "b", "c"))
