"""summary.json per model and the paper's table (leaderboard.md + leaderboard.png): one row in OUT/<model>/,
every model of OUT in OUT/, sorted by Avg, with 95% intervals and, for every two models evaluated on the
same items, whether their gap is real (``mr2bench.significance``; also ``OUT/significance.json``).

Columns follow the MR^2 release README: VL-RB, MM-RB, MMRLHF, MR2B-I, VRB, MR2B-V, Avg. Each cell is the
benchmark's headline metric x 100 (VL-RB: macro accuracy; MMRLHF: Acc; MR2B: best-of-4). ``Avg`` is the
unweighted mean of the six and is only printed when all six are present (never over a subset).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .jsonl import write_json

COLUMNS = (("VL-RB", "vl-rewardbench"), ("MM-RB", "multimodal-rewardbench"), ("MMRLHF", "mm-rlhf-rewardbench"),
           ("MR2B-I", "mr2bench-image"), ("VRB", "videorewardbench"), ("MR2B-V", "mr2bench-video"))
# what a coin flip scores: pairwise benchmarks 50%, best-of-4 25% (drawn as the plot's chance lines)
CHANCE = {"vl-rewardbench": 0.5, "multimodal-rewardbench": 0.5, "mm-rlhf-rewardbench": 0.5,
          "mr2bench-image": 0.25, "videorewardbench": 0.5, "mr2bench-video": 0.25}


def summarize(model_dir: Path, model: str) -> dict[str, Any]:
    benches: dict[str, Any] = {}
    for path in sorted(model_dir.glob("*/results.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        headline = res["headline_metric"]
        benches[res["benchmark"]] = {
            "headline_metric": headline, "headline": res["metrics"].get(headline),
            "primary_metric": res["primary_metric"], "primary": res["metrics"].get(res["primary_metric"]),
            "ci95": res.get("ci95"), "n_items": res["n_items"], "n_failed": res["n_failed"],
            "n_parse_failures": res["n_parse_failures"], "benchmark_version": res["benchmark_version"],
        }
    values = [benches.get(name, {}).get("headline") for _, name in COLUMNS]
    complete = all(v is not None for v in values)
    return {"model": model, "folder": model_dir.name, "benchmarks": benches,
            "avg": sum(values) / len(values) if complete else None,
            "avg_note": "mean of the six headline metrics" if complete else
            f"not computed: {sum(v is not None for v in values)}/6 benchmarks present"}


def write_summary(model_dir: Path, model: str) -> dict[str, Any]:
    summary = summarize(model_dir, model)
    write_json(model_dir / "summary.json", summary)
    return summary


def _cell(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _ci_cell(bench: dict[str, Any] | None) -> str:
    """'39.6 [36.1-43.0]': the headline x100 and its 95% interval when the interval is of the headline."""
    if not bench or bench.get("headline") is None:
        return "-"
    ci = bench.get("ci95") or {}
    if ci.get("metric") == bench.get("headline_metric") and ci.get("low") is not None:
        return f"{100 * bench['headline']:.1f} [{100 * ci['low']:.1f}-{100 * ci['high']:.1f}]"
    return _cell(bench["headline"])


def sort_key(row: dict[str, Any]) -> tuple[bool, float, str]:
    """By Avg, best first; rows without an Avg after them, by the mean of the columns they have."""
    if row.get("avg") is not None:
        return (False, -row["avg"], row["model"])
    present = [b["headline"] for b in row["benchmarks"].values() if b.get("headline") is not None]
    return (True, -sum(present) / len(present) if present else 0.0, row["model"])


def leaderboard_rows(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(path.read_text(encoding="utf-8")) for path in out.glob("*/summary.json")]
    return sorted(rows, key=sort_key)


def table_lines(rows: list[dict[str, Any]], sep: str = " | ", edge: str = "| ") -> list[str]:
    """The paper's table, one line per model (markdown by default; the terminal uses padded columns)."""
    cells = [["model", *(c for c, _ in COLUMNS), "Avg"]]
    for row in rows:
        cells.append([row["model"], *(_ci_cell(row["benchmarks"].get(name)) for _, name in COLUMNS),
                      _cell(row["avg"]) if row.get("avg") is not None else "n/a"])
    if edge:
        lines = [edge + sep.join(r) + edge[::-1] for r in cells]
        return [lines[0], "|" + "---|" * len(cells[0]), *lines[1:]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return [sep.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


def pairwise_significance(out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every two models of OUT on every benchmark both ran: the paired test of their headline gap."""
    from .sample_files import SAMPLES, read_records
    from .significance import compare, pair_records

    from .adapters import model_slug

    found = []
    for _, name in COLUMNS:
        runs = [(r["model"], out / r.get("folder", model_slug(r["model"])) / name, r["benchmarks"][name])
                for r in rows if name in r["benchmarks"]]
        runs = [(m, d, b) for m, d, b in runs if (d / SAMPLES).is_file()]
        for i, (ma, da, bench) in enumerate(runs):
            for mb, db, _ in runs[i + 1:]:
                paired = pair_records(read_records(da / SAMPLES), read_records(db / SAMPLES))
                res = compare(paired, macro=bench["headline_metric"] == "macro_accuracy", key=(name, ma, mb))
                found.append({"benchmark": name, "model_a": ma, "model_b": mb, **res})
    return found


def render_markdown(rows: list[dict[str, Any]], significance: list[dict[str, Any]] | None = None) -> str:
    lines = table_lines(rows)
    lines += ["", "Headline metric per column (x100) with its 95% bootstrap interval: VL-RB macro accuracy over "
              "general / hallucination / reasoning; MM-RB micro accuracy; MMRLHF Acc (pairs); MR2B-I and MR2B-V "
              "best-of-4 accuracy (1/k credit on a k-way top tie); VRB micro accuracy. Avg = mean of the six, "
              "shown only when all six are present; rows sorted by Avg. Per-benchmark details: "
              "`<model>/<benchmark>/results.json`."]
    if significance:
        lines += ["", "## Is the gap real?", "",
                  "Paired sign-flip permutation test on the items both models scored (two-sided); MDE = the "
                  "smallest gap these items detect with 80% power at alpha 0.05. `*` = p < 0.05.", "",
                  "| benchmark | A | B | A - B | p | MDE | items |", "|---|---|---|---|---|---|---|"]
        for s in significance:
            if s["diff"] is None:
                lines.append(f"| {s['benchmark']} | {s['model_a']} | {s['model_b']} | n/a | n/a | n/a | 0 |")
                continue
            mark = " *" if s["significant"] else ""
            lines.append(f"| {s['benchmark']} | {s['model_a']} | {s['model_b']} | {100 * s['diff']:+.1f}{mark} | "
                         f"{s['p_value']:.4f} | {100 * s['mde']:.1f} | {s['n_paired']} |")
    warnings = [f"- warning: {r['model']}: {b['n_failed']} failed items on {name}"
                for r in rows for name, b in sorted(r["benchmarks"].items()) if b["n_failed"]]
    if warnings:
        lines += [""] + warnings
    return "\n".join(lines) + "\n"


def render_plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars with 95% whiskers; a missing benchmark is written n/a, never drawn as 0; chance lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [c for c, _ in COLUMNS]
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(labels) + 0.5 * len(rows)), 4.2), dpi=120)
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(labels))
    for j, (_, name) in enumerate(COLUMNS):
        ax.hlines(100 * CHANCE[name], j - 0.45, j + 0.45, colors="0.35", linestyles="--", linewidth=1,
                  label="chance" if j == 0 else None, zorder=3)
    for i, row in enumerate(rows):
        xs, heights, errs = [], [], [[], []]
        for j, (_, name) in enumerate(COLUMNS):
            b = row["benchmarks"].get(name) or {}
            pos = x[j] + (i - (len(rows) - 1) / 2) * width
            if b.get("headline") is None:
                ax.text(pos, 2, "n/a", ha="center", va="bottom", fontsize=8, rotation=90, color="0.4")
                continue
            ci = b.get("ci95") or {}
            lo = hi = 100 * b["headline"]
            if ci.get("metric") == b.get("headline_metric") and ci.get("low") is not None:
                lo, hi = 100 * ci["low"], 100 * ci["high"]
            xs.append(pos)
            heights.append(100 * b["headline"])
            errs[0].append(max(0.0, 100 * b["headline"] - lo))
            errs[1].append(max(0.0, hi - 100 * b["headline"]))
        ax.bar(xs, heights, width, yerr=errs, capsize=3, label=row["model"], zorder=2)
    ax.set_xticks(x, labels)
    ax.set_ylabel("headline metric (%), 95% CI")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Reward models on the six benchmarks (n/a = not evaluated)")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def write_leaderboard(folder: Path, rows: list[dict[str, Any]],
                      significance: list[dict[str, Any]] | None = None) -> str:
    text = render_markdown(rows, significance)
    (folder / "leaderboard.md").write_text(text, encoding="utf-8")
    render_plot(rows, folder / "leaderboard.png")
    return text


def write_leaderboards(out: Path, model_dir: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's own row beside its summary.json, and the table over every model in OUT (with the
    significance of every gap, also in OUT/significance.json). Returns OUT's rows, sorted."""
    write_leaderboard(model_dir, [summary])
    rows = leaderboard_rows(out)
    significance = pairwise_significance(out, rows)
    write_json(out / "significance.json", {"test": "paired sign-flip permutation, two-sided", "alpha": 0.05,
                                          "pairs": significance})
    write_leaderboard(out, rows, significance)
    return rows
