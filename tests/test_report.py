"""`mr2bench report`: one self-contained HTML page, opened in a real headless Chromium in CI.

The browser test loads the page from file:// with a filter in the URL fragment (the same code path as the
page's controls), lets its script run, dumps the DOM and counts the visible item rows. Without a Chromium
binary (the README's test command installs Debian's `chromium` where it is missing) those tests skip.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mr2bench.cli import main

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    build, out = root / "img", root / "eval"
    assert main(["build-benchmark", "image", "--out", str(build)]) == 0
    for model in ("random", "length"):
        assert main(["evaluate-model", "--model", model, "--benchmarks", "mr2bench-image", "--data-dir",
                     str(build), "--out", str(out), "--no-progress"]) == 0
    assert main(["report", str(out), "--data-dir", f"mr2bench-image={build}"]) == 0
    assert main(["report", str(build)]) == 0
    return build, out


def _records(out: Path, model: str) -> list[dict]:
    path = out / model / "mr2bench-image" / "samples.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _page_data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1)
    return json.loads(block.replace("<\\/", "</"))


def _dom(page: Path, fragment: str) -> str:
    res = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", f"{page.resolve().as_uri()}#{fragment}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def _visible(dom: str) -> tuple[int, list[str]]:
    matches = int(re.search(r'data-matches="(\d+)"', dom).group(1))
    return matches, re.findall(r'<tr class="item" data-id="([^"]+)"', dom)


def test_page_is_self_contained_and_holds_every_item(evaluated):
    _, out = evaluated
    page = out / "report.html"
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)   # nothing fetched from a network
    data = _page_data(page)
    assert data["kind"] == "evaluation" and data["synthetic"] is True
    assert {tuple(r) for r in data["table"][1:]} and data["table"][0][0] == "model"
    ids = {r["id"] for r in _records(out, "length")}
    assert {it["id"] for it in data["items"]} == ids
    it = data["items"][0]
    assert it["prompt"] and all(r["text"] for r in it["responses"]) and it["media"][0].startswith("data:image/")
    rec = next(r for r in _records(out, "length") if r["id"] == it["id"])
    shown_gold = [r["gold"] for r in it["responses"]]
    assert shown_gold == [rec["rankings"][k] for k in rec["permutation"]]        # in the order shown
    assert [r["scores"]["length"] for r in it["responses"]] == [rec["scores"][k] for k in rec["permutation"]]


@needs_browser
def test_filters_in_a_real_browser(evaluated):
    _, out = evaluated
    page = out / "report.html"
    wrong = [r["id"] for r in _records(out, "random") if r["credit"] == 0]
    dom = _dom(page, "correct=wrong:random&view=items")
    matches, rows = _visible(dom)
    assert re.search(r'<div id="results" hidden', dom)   # view=items: the browser alone (README screenshot)
    assert matches == len(wrong) > 0 and rows == wrong[:len(rows)] and len(rows) == min(300, len(wrong))
    right_both = {r["id"] for r in _records(out, "random") if r["credit"] == 1} & \
                 {r["id"] for r in _records(out, "length") if r["credit"] == 1}
    matches, _ = _visible(_dom(page, "correct=all-right"))
    assert matches == len(right_both)
    target = wrong[0]
    matches, rows = _visible(_dom(page, f"q={target}"))
    assert rows == [i for i in (r["id"] for r in _records(out, "random")) if target in i]


@needs_browser
def test_build_report_in_a_real_browser(evaluated):
    build, _ = evaluated
    page = build / "report.html"
    data = _page_data(page)
    assert data["kind"] == "build" and data["questions"] and all(q["ranking"] for q in data["questions"])
    dom = _dom(page, "q=p0001")
    matches, rows = _visible(dom)
    assert matches == len(rows) > 0 and all(r.startswith("p0001") for r in rows)
    assert "Synthetic data" in dom and dom.count("data:image/png;base64,") >= 3   # the build's figures inline
    q = next(q for q in data["questions"] if q["removed"])
    e = q["removed"][0]
    assert f"{e['winner']} &gt; {e['loser']} (" in dom       # the removed edges, rendered


def test_build_page_lists_the_vote_graph_edges_the_order_removed(evaluated):
    build, _ = evaluated
    import pandas as pd

    data = _page_data(build / "report.html")
    report = json.loads((build / "build_report.json").read_text())
    arcs = pd.read_parquet(build / "removed_arcs.parquet")
    shown = [(q["id"], e["winner"], e["loser"]) for q in data["questions"] for e in q["removed"]]
    assert sorted(shown) == sorted(arcs[["question_id", "winner", "loser"]].itertuples(index=False, name=None))
    assert len(shown) == report["diagnostics"]["feedback_arcs_removed"] > 0
    for q in data["questions"]:
        place = {r["model"]: k for k, r in enumerate(q["ranking"])}
        # each removed edge won on net votes, yet its winner is placed below its loser
        assert all(e["weight"] > 0 and place[e["winner"]] > place[e["loser"]] for e in q["removed"])


def test_report_of_a_folder_without_results_is_one_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no evaluation results" in err and "Traceback" not in err
