"""The build's figures read what they claim: checked on the matplotlib objects, not only on a PNG.

annotators.png: y is the weight that decides the colour (issue 14: the old y, agreement, put a
down-weighted annotator above kept ones), with its thresholds, and limits that do not blow a 0.001
spread up to the full height. rank_confidence.png: the --separation line, y labels, "no data" panels.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from mr2bench.builders.outputs import DOWN_WEIGHTED_BELOW, annotators_figure, rank_confidence_figure
from mr2bench.cli import build_benchmark_main
from mr2bench.ranking.simulate import pairwise_arena


def _points(ax) -> dict[str, np.ndarray]:
    """label (without its count) -> [n, 2] scatter offsets."""
    return {c.get_label().split(" (")[0]: np.asarray(c.get_offsets()) for c in ax.collections}


def _hlines(ax) -> list[float]:
    return sorted(float(ln.get_ydata()[0]) for ln in ax.lines)


def _texts(ax) -> str:
    return " ".join(t.get_text() for t in ax.texts)


def _ann(i: int, status: str, weight: float, agreement: float, votes: float = 100.0) -> dict:
    return {"annotator_id": f"a{i}", "status": status, "weight": weight, "agreement": agreement, "votes": votes}


def test_annotator_y_axis_is_the_weight_that_decides_the_colour():
    # the case: a down-weighted annotator AGREES more with the consensus than a kept one
    ann = [_ann(0, "kept", 1.0, 0.55), _ann(1, "kept", 0.95, 0.6), _ann(2, "down-weighted", 0.5, 0.8),
           _ann(3, "dropped", 0.0, 0.3), _ann(4, "inverted", 1.0, 0.2, votes=0)]
    ax = annotators_figure(ann, drop_below=0.25).axes[0]
    pts = _points(ax)
    assert set(pts) == {"kept", "down-weighted", "dropped", "inverted"}
    assert pts["kept"][:, 1].min() >= DOWN_WEIGHTED_BELOW > pts["down-weighted"][:, 1].max()
    assert pts["down-weighted"][:, 1].min() >= 0.25 > pts["dropped"][:, 1].max()
    assert pts["inverted"][0, 0] == 1   # 0 votes plotted at 1 on the log axis, not dropped silently
    assert _hlines(ax) == [0.25, DOWN_WEIGHTED_BELOW]
    assert "weight" in ax.get_ylabel()
    # no weight threshold (the default 0): no drop line, the degenerate voter still sits at 0 in red
    ax = annotators_figure(ann, drop_below=0.0).axes[0]
    assert _hlines(ax) == [DOWN_WEIGHTED_BELOW] and _points(ax)["dropped"][0, 1] == 0.0


def test_a_tiny_spread_is_not_zoomed_into_the_full_height():
    ann = [_ann(i, "kept", 1.0 - 0.0002 * i, 0.7) for i in range(6)]
    lo, hi = annotators_figure(ann, drop_below=0.25).axes[0].get_ylim()
    assert lo <= 0.0 and hi >= 1.0 and hi - lo <= 1.2


def test_rank_confidence_has_the_separation_line_and_y_labels():
    fig = rank_confidence_figure([0.55, 0.7, 0.93, 1.0], [2, 3, 3, 4], separation=0.8)
    left, right = fig.axes
    assert [float(ln.get_xdata()[0]) for ln in left.lines] == [0.8]
    assert "--separation 0.8" in [t.get_text() for t in left.get_legend().get_texts()]
    assert left.get_ylabel() == right.get_ylabel() == "questions"
    assert sum(p.get_height() for p in left.patches) == 4 and sum(p.get_height() for p in right.patches) == 4
    assert "no data" not in _texts(left) + _texts(right)


def test_empty_panels_say_no_data(tmp_path):
    fig = rank_confidence_figure([], [], separation=0.9)
    for ax in fig.axes:
        assert "no data" in _texts(ax) and not ax.patches
    fig.savefig(tmp_path / "x.png")   # renders
    assert (tmp_path / "x.png").stat().st_size > 0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plots")
    src = tmp / "votes.csv"
    pairwise_arena(5, n_questions=20, votes_per_question=120, n_annotators=20,
                   setting="adversarial").judgments.to_csv(src, index=False)
    out = tmp / "out"
    assert build_benchmark_main(["video", str(src), "--out", str(out), "--seed", "1"]) == 0
    return out


def test_a_real_build_colours_agree_with_the_plotted_axis(built):
    report = json.loads((built / "build_report.json").read_text())
    ann = report["annotators"]["per_annotator"]
    drop = report["thresholds"]["drop_annotator_below"]
    assert (built / "annotators.png").stat().st_size > 0 and (built / "rank_confidence.png").stat().st_size > 0
    pts = _points(annotators_figure(ann, drop).axes[0])
    assert sum(len(v) for v in pts.values()) == len(ann)
    # what the builder decided (build_report.json) matches where the plot puts each colour
    assert pts.get("kept", np.zeros((0, 2)))[:, 1].min(initial=1.0) >= DOWN_WEIGHTED_BELOW
    dw = pts.get("down-weighted", np.zeros((0, 2)))[:, 1]
    assert ((dw < DOWN_WEIGHTED_BELOW) & (dw >= drop)).all()
    dropped = pts.get("dropped", np.zeros((0, 2)))[:, 1]
    assert ((dropped < drop) | (dropped == 0.0)).all()
