"""`mr2bench report`: one self-contained static HTML page for an evaluation OUT or a build folder.

No server and no network: the data travel as one JSON block inside the page, plots and thumbnails as
``data:`` URIs. The page has the results (the paper's table with intervals, the significance of every
gap, the plots) and an item browser: filter by benchmark, category and correctness (any model, or one
model right / wrong), search ids and text. Each item shows its prompt, its media (image thumbnail, video
poster frames), the responses in the order shown to the model, the gold ranking, every model's scores
and which model got it right. A build folder gets its questions (the ranking with intervals), its
sampled items and its report figures instead.

The browser's state can be set from the URL fragment (``#bench=...&cat=...&correct=wrong:MODEL&q=...``;
``view=items`` shows the browser alone), the same code path as the controls; that is how the headless-browser
test applies a filter.
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .schema import DataError

THUMB_PX = 160
POSTER_FRAMES = 3
DEFAULT_MAX_ITEMS = 2000     # per benchmark: keeps the page light; the page says when it is cut


# ---------------------------------------------------------------- media -> data URIs
def _png_uri(path: Path) -> str | None:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() if path.is_file() else None


def _thumb_uri(img: Any) -> str:
    img = img.copy()
    img.thumbnail((THUMB_PX, THUMB_PX))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def media_thumbs(media: Iterable[Any], root: str | Path | None) -> list[str]:
    """Thumbnails of an item's media (poster frames for a video); unreadable media are left out."""
    from PIL import Image

    from .media import load_image, load_video_frames

    out: list[str] = []
    for m in media:
        try:
            if m.kind == "image":
                out.append(_thumb_uri(load_image(m, root)))
            else:
                out += [_thumb_uri(Image.fromarray(f)) for f in load_video_frames(m, root, POSTER_FRAMES)]
        except (DataError, OSError, ValueError):
            continue  # the browser shows the item without its media; the run's record says why
    return out


# ---------------------------------------------------------------- evaluation OUT
def _model_dirs(out: Path) -> list[tuple[str, Path]]:
    found = []
    for summary in sorted(out.glob("*/summary.json")):
        found.append((json.loads(summary.read_text(encoding="utf-8"))["model"], summary.parent))
    return found


def _records(path: Path, limit: int) -> dict[str, dict[str, Any]]:
    from .jsonl import read_jsonl

    out: dict[str, dict[str, Any]] = {}
    for row in read_jsonl(path):
        if len(out) >= limit:
            break
        out[row["id"]] = row
    return out


def _items_by_id(bench: str, data_dir: Path | None, ids: set[str]) -> dict[str, Any]:
    """The benchmark's items whose ids the records hold (text and media for the browser)."""
    import importlib

    from .evaluators._loading import BadRow
    from .registry import get_benchmark

    spec = get_benchmark(bench)
    module, _, attr = spec.loader.partition(":")
    found: dict[str, Any] = {}
    for item in getattr(importlib.import_module(module), attr)(data_dir, spec, None):
        if not isinstance(item, BadRow) and item.id in ids:
            found[item.id] = item
            if len(found) == len(ids):
                break
    return found


def evaluation_items(out: Path, data_dirs: Mapping[str, Path], max_items: int) -> tuple[list[dict], list[str]]:
    """Browser rows for every benchmark in OUT, with one column of scores and correctness per model."""
    models = _model_dirs(out)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    benches = sorted({p.name for _, d in models for p in d.iterdir() if (p / "samples.jsonl").is_file()})
    for bench in benches:
        runs = {m: _records(d / bench / "samples.jsonl", max_items) for m, d in models
                if (d / bench / "samples.jsonl").is_file()}
        ids = list(dict.fromkeys(i for recs in runs.values() for i in recs))[:max_items]
        root = data_dirs.get(bench) or _recorded_data_dir(models, bench)
        items: dict[str, Any] = {}
        if root is not None:
            try:
                items = _items_by_id(bench, Path(root), set(ids))
            except DataError as exc:
                notes.append(f"{bench}: item text not shown ({exc})")
        else:
            notes.append(f"{bench}: item text not shown (pass --data-dir {bench}=DIR)")
        for item_id in ids:
            first = next(recs[item_id] for recs in runs.values() if item_id in recs)
            item = items.get(item_id)
            perm = first.get("permutation") or list(range(len(first["rankings"])))
            responses = []
            for orig in perm:
                responses.append({
                    "text": item.responses[orig] if item is not None else "",
                    "gold": first["rankings"][orig] if orig < len(first["rankings"]) else None,
                    "model": item.models[orig] if item is not None and len(item.models) > orig else "",
                    "scores": {m: (recs[item_id]["scores"] or [None] * len(perm))[orig]
                               if item_id in recs and recs[item_id].get("scores") else None
                               for m, recs in runs.items()},
                })
            verdicts = {}
            for m, recs in runs.items():
                rec = recs.get(item_id)
                credit = None if rec is None else rec.get("credit")
                verdicts[m] = ("n/a" if credit is None else "right" if credit >= 1 else
                               "wrong" if credit <= 0 else "partial")
            rows.append({"bench": bench, "id": item_id, "category": first.get("category") or "",
                         "prompt": item.prompt if item is not None else "",
                         "media": media_thumbs(item.media, root) if item is not None else [],
                         "responses": responses, "verdicts": verdicts,
                         "errors": {m: recs[item_id].get("error") for m, recs in runs.items()
                                    if item_id in recs and recs[item_id].get("error")}})
        if any(len(r) >= max_items for r in runs.values()):
            notes.append(f"{bench}: the first {max_items} items are shown (--max-items)")
    return rows, notes


def _recorded_data_dir(models: list[tuple[str, Path]], bench: str) -> Path | None:
    """The local data folder a run recorded in its results.json, if it still exists."""
    for _, d in models:
        res = d / bench / "results.json"
        if res.is_file():
            value = json.loads(res.read_text(encoding="utf-8")).get("data_dir")
            if value and Path(value).is_dir():
                return Path(value)
    return None


def evaluation_page(out: Path, data_dirs: Mapping[str, Path], max_items: int) -> dict[str, Any]:
    from .leaderboard import leaderboard_rows, table_lines

    rows = leaderboard_rows(out)
    if not rows:
        raise DataError("no evaluation results here (no <model>/summary.json); give evaluate-model's --out "
                        "or a build-benchmark folder", file=str(out))
    sig_path = out / "significance.json"
    significance = json.loads(sig_path.read_text(encoding="utf-8"))["pairs"] if sig_path.is_file() else []
    items, notes = evaluation_items(out, data_dirs, max_items)
    return {"kind": "evaluation", "title": f"mr2bench evaluation: {out.name}",
            "table": [ln.strip("| ").split(" | ") for ln in table_lines(rows) if not ln.startswith("|---")],
            "significance": significance, "plots": {"leaderboard": _png_uri(out / "leaderboard.png")},
            "models": [r["model"] for r in rows], "items": items, "notes": notes,
            "synthetic": any(_synthetic(out, r) for r in rows)}


def _synthetic(out: Path, row: Mapping[str, Any]) -> bool:
    return any(json.loads(p.read_text(encoding="utf-8")).get("synthetic") is True
               for p in (out / row.get("folder", "")).glob("*/results.json"))


# ---------------------------------------------------------------- build folder
def build_page(folder: Path, max_items: int) -> dict[str, Any]:
    import pandas as pd

    from .schema import Media

    report = json.loads((folder / "build_report.json").read_text(encoding="utf-8"))
    kind = report.get("kind", "video")
    ranks = pd.read_parquet(folder / "rankings.parquet") if (folder / "rankings.parquet").is_file() else None
    items_df = pd.read_parquet(folder / "items.parquet") if (folder / "items.parquet").is_file() else None
    arcs_file = folder / "removed_arcs.parquet"
    removed: dict[str, list[dict[str, Any]]] = {}
    if arcs_file.is_file():   # builds before this file existed show their rankings without it
        for r in pd.read_parquet(arcs_file).itertuples():
            removed.setdefault(str(r.question_id), []).append(
                {"winner": str(r.winner), "loser": str(r.loser), "weight": float(r.weight)})
    questions = []
    if ranks is not None:
        for qid, g in ranks.groupby("question_id", sort=True):
            g = g.sort_values("position")
            questions.append({"id": str(qid), "ranking": [
                {"model": str(r.model), "rank": int(r.rank), "score": float(r.score),
                 "ci": [float(r.ci_low), float(r.ci_high)]} for r in g.itertuples()],
                "removed": removed.get(str(qid), []) if arcs_file.is_file() else None})
    items = []
    if items_df is not None:
        for r in items_df.head(max_items).itertuples():
            path = getattr(r, kind, None)
            media = [Media(kind=kind, path=str(path))] if isinstance(path, str) and path else []
            items.append({"bench": report.get("benchmark", kind), "id": str(r.id), "category": str(r.category or ""),
                          "prompt": str(r.prompt or ""), "media": media_thumbs(media, folder),
                          "responses": [{"text": str(t), "gold": int(g), "model": str(m), "scores": {}}
                                        for t, g, m in zip(r.responses, r.rankings, r.models)],
                          "verdicts": {}, "errors": {}})
    counts = report.get("counts", {})
    diag = report.get("diagnostics", {})
    facts = [["rows in", counts.get("rows_in", report.get("ranking_rows", {}).get("rows_in"))],
             ["kept / quarantined", f"{counts.get('kept')} / {counts.get('quarantined')}"],
             ["questions ranked", counts.get("questions_ranked")], ["items", counts.get("items")],
             ["removed edges (votes against the order)", diag.get("feedback_arcs_removed")],
             ["3-cycles before / after", f"{diag.get('ensemble_graph_3cycles_before')} / "
                                         f"{diag.get('ensemble_graph_3cycles_after')}"],
             ["seed", report.get("seed")], ["synthetic", report.get("synthetic")]]
    return {"kind": "build", "title": f"mr2bench build: {folder.name} ({report.get('benchmark', kind)})",
            "facts": [[k, "" if v is None else str(v)] for k, v in facts],
            "plots": {name: _png_uri(folder / f"{name}.png")
                      for name in ("leaderboard", "annotators", "rank_confidence")},
            "questions": questions, "items": items, "models": [], "notes":
            [f"the first {max_items} items are shown (--max-items)"] if items_df is not None and len(items_df) > max_items else [],
            "synthetic": bool(report.get("synthetic"))}


# ---------------------------------------------------------------- the page
def render(page: Mapping[str, Any]) -> str:
    data = json.dumps(page, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")
    return _TEMPLATE.replace("__TITLE__", html.escape(page["title"])).replace("__DATA__", data)


def write_report(path: Path, out_file: Path | None = None, data_dirs: Mapping[str, Path] | None = None,
                 max_items: int = DEFAULT_MAX_ITEMS) -> Path:
    """Write PATH/report.html (or ``out_file``) for an evaluation OUT or a build folder."""
    import os

    if not path.is_dir():
        raise DataError("not a folder; give evaluate-model's --out or a build-benchmark folder", file=str(path))
    page = build_page(path, max_items) if (path / "build_report.json").is_file() else \
        evaluation_page(path, data_dirs or {}, max_items)
    target = out_file or path / "report.html"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render(page), encoding="utf-8")
    os.replace(tmp, target)  # a reader sees the old page or the new one, never half of one
    return target


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d232a;max-width:1400px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d6d9dc;padding:4px 8px;vertical-align:top}
th{background:#f3f4f6;text-align:left}.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;margin-right:4px}
.right{background:#d7f5dd}.wrong{background:#fadadd}.partial{background:#fff3c4}.na{background:#eee}
.controls{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid #ddd;z-index:1}
.controls select,.controls input{margin-right:10px;font-size:14px}
.resp{border-left:3px solid #ccd;padding:2px 8px;margin:4px 0;white-space:pre-wrap}
.resp.best{border-left-color:#2a9d4b}.thumbs img{margin:2px;border:1px solid #ccc;max-height:120px}
.warn{background:#fff3c4;padding:6px 10px;border-radius:4px}.muted{color:#667}
img.plot{max-width:100%;border:1px solid #eee}
</style></head><body>
<h1 id="title"></h1><div id="synthetic"></div><div id="notes"></div>
<div id="results"></div>
<h2 id="browser-title">Items</h2>
<div class="controls">
<label>benchmark <select id="f-bench"></select></label>
<label>category <select id="f-cat"></select></label>
<label>correct <select id="f-correct"></select></label>
<label>search <input id="f-q" type="search" placeholder="id or text" size="28"></label>
<span id="count" class="muted"></span>
</div>
<table id="items"><thead><tr><th>item</th><th>prompt and media</th><th>responses (order shown to the model)</th>
<th>verdicts</th></tr></thead><tbody></tbody></table>
<div id="more" class="muted"></div>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const SHOW = 300;
function table(rows, head) {
  let h = "<table><thead><tr>" + head.map((c) => "<th>" + esc(c) + "</th>").join("") + "</tr></thead><tbody>";
  for (const r of rows) h += "<tr>" + r.map((c) => "<td>" + esc(c) + "</td>").join("") + "</tr>";
  return h + "</tbody></table>";
}
function plots() {
  let h = "";
  for (const [name, uri] of Object.entries(D.plots || {})) {
    h += uri ? "<h3>" + esc(name.replace("_", " ")) + "</h3><img class='plot' alt='" + esc(name) + "' src='" + uri + "'>" :
               "<h3>" + esc(name.replace("_", " ")) + "</h3><p class='muted'>no data</p>";
  }
  return h;
}
function header() {
  $("title").textContent = D.title;
  if (D.synthetic) $("synthetic").innerHTML = "<p class='warn'>Synthetic data: a seeded demo arena with a planted signal, not human judgments.</p>";
  $("notes").innerHTML = (D.notes || []).map((n) => "<p class='muted'>" + esc(n) + "</p>").join("");
  let h = "";
  if (D.kind === "evaluation") {
    h += "<h2>Results</h2>" + table(D.table.slice(1), D.table[0]);
    if (D.significance.length) {
      h += "<h2>Is the gap real?</h2><p class='muted'>Paired sign-flip permutation test on the items both models scored; MDE = smallest gap detectable with 80% power at alpha 0.05.</p>";
      h += table(D.significance.map((s) => [s.benchmark, s.model_a, s.model_b,
        s.diff === null ? "n/a" : (100 * s.diff).toFixed(1) + (s.significant ? " *" : ""),
        s.p_value === null ? "n/a" : s.p_value.toFixed(4), s.mde === null ? "n/a" : (100 * s.mde).toFixed(1), s.n_paired]),
        ["benchmark", "A", "B", "A - B", "p", "MDE", "items"]);
    }
  } else {
    h += "<h2>Build</h2>" + table(D.facts, ["", ""]);
    h += "<h2>Questions</h2><p class='muted'>" + D.questions.length + " ranked questions; score with 95% interval.</p>";
    h += "<p class='muted'>Removed edges: the vote graph's net wins (weighted votes) that the final order overrules, as winner &gt; loser (weight): the winner is ranked below the loser.</p>";
    h += "<div style='max-height:420px;overflow:auto'>" + table(D.questions.slice(0, 500).map((q) => [q.id,
      q.ranking.map((r) => r.rank + ". " + r.model + " " + r.score.toFixed(2) + " [" + r.ci[0].toFixed(2) + ", " + r.ci[1].toFixed(2) + "]").join("  |  "),
      q.removed === null ? "not recorded" : q.removed.length ? q.removed.map((e) => e.winner + " > " + e.loser + " (" + e.weight.toPrecision(3) + ")").join("; ") : "none"]),
      ["question", "ranking (rank. model score [95% CI])", "removed edges"]) + "</div>";
  }
  h += "<h2>Plots</h2>" + plots();
  $("results").innerHTML = h;
}
function options(sel, values, all) {
  sel.innerHTML = "<option value=''>" + esc(all) + "</option>" + values.map((v) => "<option value='" + esc(v) + "'>" + esc(v) + "</option>").join("");
}
function controls() {
  options($("f-bench"), [...new Set(D.items.map((i) => i.bench))].sort(), "all");
  options($("f-cat"), [...new Set(D.items.map((i) => i.category).filter((c) => c))].sort(), "all");
  const c = ["all-right", "any-wrong"];
  for (const m of D.models) c.push("right:" + m, "wrong:" + m);
  options($("f-correct"), D.kind === "evaluation" ? c : [], "any");
  for (const id of ["f-bench", "f-cat", "f-correct"]) $(id).addEventListener("change", apply);
  $("f-q").addEventListener("input", apply);
}
function matches(it, st) {
  if (st.bench && it.bench !== st.bench) return false;
  if (st.cat && it.category !== st.cat && !it.category.startsWith(st.cat + "/")) return false;
  const v = Object.values(it.verdicts);
  if (st.correct === "all-right" && !(v.length && v.every((x) => x === "right"))) return false;
  if (st.correct === "any-wrong" && !v.some((x) => x === "wrong")) return false;
  if (st.correct.includes(":")) {
    const [want, m] = [st.correct.slice(0, st.correct.indexOf(":")), st.correct.slice(st.correct.indexOf(":") + 1)];
    if (it.verdicts[m] !== want) return false;
  }
  if (st.q) {
    const hay = (it.id + " " + it.prompt + " " + it.responses.map((r) => r.text).join(" ")).toLowerCase();
    if (!hay.includes(st.q.toLowerCase())) return false;
  }
  return true;
}
function row(it) {
  const best = Math.min(...it.responses.map((r) => r.gold ?? 99));
  const resp = it.responses.map((r, k) => "<div class='resp" + (r.gold === best ? " best" : "") + "'><b>#" + (k + 1) +
    "</b> gold rank " + esc(r.gold) + (r.model ? " <span class='muted'>(" + esc(r.model) + ")</span>" : "") +
    (Object.keys(r.scores).length ? " <span class='muted'>scores: " + Object.entries(r.scores).map(([m, s]) => esc(m) + " " + (s === null ? "-" : Number(s).toPrecision(4))).join(", ") + "</span>" : "") +
    "<br>" + esc(r.text) + "</div>").join("");
  const verdicts = Object.entries(it.verdicts).map(([m, v]) => "<span class='badge " + (v === "n/a" ? "na" : v) + "'>" + esc(m) + ": " + esc(v) + "</span>").join("<br>") +
    Object.entries(it.errors).map(([m, e]) => "<div class='muted'>" + esc(m) + ": " + esc(e) + "</div>").join("");
  return "<tr class='item' data-id='" + esc(it.id) + "'><td><b>" + esc(it.id) + "</b><br><span class='muted'>" + esc(it.bench) + "<br>" + esc(it.category) + "</span></td><td>" +
    esc(it.prompt) + "<div class='thumbs'>" + it.media.map((u) => "<img alt='media' src='" + u + "'>").join("") + "</div></td><td>" + resp + "</td><td>" + verdicts + "</td></tr>";
}
function state() {
  return {bench: $("f-bench").value, cat: $("f-cat").value, correct: $("f-correct").value, q: $("f-q").value.trim()};
}
function apply() {
  const st = state();
  const hits = D.items.filter((it) => matches(it, st));
  document.querySelector("#items tbody").innerHTML = hits.slice(0, SHOW).map(row).join("");
  $("count").textContent = hits.length + " of " + D.items.length + " items";
  $("more").textContent = hits.length > SHOW ? (hits.length - SHOW) + " more match; narrow the filter to see them" : "";
  document.body.dataset.matches = String(hits.length);
}
function fromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const set = (id, key) => { if (p.has(key)) $(id).value = p.get(key); };
  set("f-bench", "bench"); set("f-cat", "cat"); set("f-correct", "correct"); set("f-q", "q");
  $("results").hidden = p.get("view") === "items";   // the item browser alone (e.g. for a screenshot)
}
header(); controls(); fromHash(); apply();
window.addEventListener("hashchange", () => { fromHash(); apply(); });
</script></body></html>
"""
