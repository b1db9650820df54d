"""The data model rejects bad values with messages that name the field, and accepts good ones."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from mr2bench.schema import (WINNERS, BenchmarkItem, DataError, Judgment, Media, ScoringRequest, Verdict,
                             check_scores, normalize_winner)


def item(**kw):
    base = dict(id="q1", prompt="What is shown?", responses=["a", "b", "c", "d"], rankings=[1, 2, 3, 4])
    return BenchmarkItem(**{**base, **kw})


def test_item_normalises_and_defaults():
    it = item(rankings=[2, 1, 1, 4], media=[Media("image", path="x.png")])
    assert it.responses == ("a", "b", "c", "d") and it.rankings == (2, 1, 1, 4)
    assert it.best == (1, 2) and it.n == 4 and it.group == "q1"
    with pytest.raises(TypeError):
        it.meta["x"] = 1  # read-only view


@pytest.mark.parametrize("kw, field, text", [
    (dict(id=""), "id", "must not be empty"),
    (dict(responses=["only"], rankings=[1]), "responses", "at least 2"),
    (dict(rankings=[1, 2, 3]), "rankings", "3 entries for 4 responses"),
    (dict(rankings=[0, 1, 2, 3]), "rankings", "integer >= 1"),
    (dict(rankings=[2, 2, 3, 4]), "rankings", "rank 1"),
    (dict(rankings=[1, 2.0, 3, 4]), "rankings", "integer"),
    (dict(rankings=[1, True, 3, 4]), "rankings", "integer"),
    (dict(responses=["a", None, "c", "d"]), "responses[1]", "must be a string"),
    (dict(models=["m1", "m2"]), "models", "2 entries for 4 responses"),
    (dict(media=["x.png"]), "media", "list of Media"),
    (dict(meta=[1]), "meta", "mapping"),
])
def test_item_rejects_with_field(kw, field, text):
    with pytest.raises(DataError) as err:
        item(**kw)
    assert err.value.field == field and text in str(err.value) and f"'{field}'" in str(err.value)


@pytest.mark.parametrize("code, expected", [("model_a", "model_a"), ("A", "model_a"), ("b", "model_b"),
                                            ("tie", "tie"), ("tie (bothbad)", "both_bad"),
                                            (" Both_Bad ", "both_bad")])
def test_winner_aliases(code, expected):
    assert normalize_winner(code) == expected
    assert Judgment("q", "m1", "m2", code).winner == expected


def test_judgment_rejects():
    with pytest.raises(DataError, match="self-pair") as err:
        Judgment("q", "m1", "m1", "tie")
    assert err.value.field == "model_b"
    with pytest.raises(DataError, match="unknown winner 'c'"):
        Judgment("q", "m1", "m2", "c")
    with pytest.raises(DataError, match="'question_id': must not be empty"):
        Judgment(" ", "m1", "m2", "a")


def test_media_needs_exactly_one_source():
    with pytest.raises(DataError, match="exactly one"):
        Media("image")
    with pytest.raises(DataError, match="exactly one"):
        Media("image", path="a.png", data=b"x")
    with pytest.raises(DataError, match="media.kind"):
        Media("audio", path="a.wav")


def test_error_location_formatting():
    err = DataError("bad code", field="winner").located(file="votes.csv", row=7)
    assert str(err) == "votes.csv:row 7: field 'winner': bad code"


def test_check_scores():
    assert check_scores([1, 2], 2) == (1.0, 2.0)
    assert check_scores(Verdict(scores=None, raw="??"), 2) is None
    assert check_scores(Verdict(scores=(0.0, 1.0)), 2) == (0.0, 1.0)
    with pytest.raises(DataError, match="3 scores for 2"):
        check_scores([1, 2, 3], 2)
    with pytest.raises(DataError, match="NaN"):
        check_scores([float("nan"), 1], 2)
    with pytest.raises(DataError, match="non-numeric"):
        check_scores(["x", 1], 2)


def test_scoring_request_tuples():
    req = ScoringRequest(prompt="p", responses=["a", "b"])
    assert req.responses == ("a", "b") and req.media == ()
    with pytest.raises(DataError, match="responses"):
        ScoringRequest(prompt="p", responses=[])


anything = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=5),
                     st.lists(st.integers(-2, 5), max_size=5), st.booleans())


@settings(max_examples=300, deadline=None)
@given(id_=anything, responses=st.one_of(anything, st.lists(st.one_of(st.text(max_size=3), st.none()), max_size=5)),
       rankings=anything)
def test_item_fuzz_either_valid_or_dataerror(id_, responses, rankings):
    """Any garbage yields a valid item or a DataError naming a field: never another exception."""
    try:
        it = BenchmarkItem(id=id_, prompt="p", responses=responses, rankings=rankings)
    except DataError as exc:
        assert exc.field
    else:
        assert len(it.responses) == len(it.rankings) >= 2 and min(it.rankings) == 1


@settings(max_examples=200, deadline=None)
@given(a=st.text(max_size=4), b=st.text(max_size=4), w=st.text(max_size=12))
def test_judgment_fuzz(a, b, w):
    try:
        j = Judgment("q", a, b, w)
    except DataError as exc:
        assert exc.field in {"model_a", "model_b", "winner"}
    else:
        assert j.winner in WINNERS and j.model_a != j.model_b
