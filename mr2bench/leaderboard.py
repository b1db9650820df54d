"""summary.json per model and the paper's table (leaderboard.md + leaderboard.png): one row in OUT/<model>/,
every model of OUT in OUT/.

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
    return {"model": model, "benchmarks": benches,
            "avg": sum(values) / len(values) if complete else None,
            "avg_note": "mean of the six headline metrics" if complete else
            f"not computed: {sum(v is not None for v in values)}/6 benchmarks present"}


def write_summary(model_dir: Path, model: str) -> dict[str, Any]:
    summary = summarize(model_dir, model)
    write_json(model_dir / "summary.json", summary)
    return summary


def _cell(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def leaderboard_rows(out: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(out.glob("*/summary.json")):
        rows.append(json.loads(path.read_text(encoding="utf-8")))
    return rows


def render_markdown(rows: list[dict[str, Any]]) -> str:
    head = "| model | " + " | ".join(c for c, _ in COLUMNS) + " | Avg |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for row in rows:
        cells = [_cell(row["benchmarks"].get(name, {}).get("headline")) for _, name in COLUMNS]
        avg = _cell(row["avg"]) if row["avg"] is not None else "n/a"
        lines.append(f"| {row['model']} | " + " | ".join(cells) + f" | {avg} |")
    lines += ["", "Headline metric per column (x100): VL-RB macro accuracy over general / hallucination / "
              "reasoning; MM-RB micro accuracy; MMRLHF Acc (pairs); MR2B-I and MR2B-V best-of-4 accuracy "
              "(1/k credit on a k-way top tie); VRB micro accuracy. Avg = mean of the six, shown only when all "
              "six are present. Per-benchmark details: `<model>/<benchmark>/results.json`."]
    warnings = [f"- warning: {r['model']}: {b['n_failed']} failed items on {name}"
                for r in rows for name, b in sorted(r["benchmarks"].items()) if b["n_failed"]]
    if warnings:
        lines += [""] + warnings
    return "\n".join(lines) + "\n"


def render_plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [c for c, _ in COLUMNS]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(labels) + 0.4 * len(rows)), 3.6), dpi=100)
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(labels))
    for i, row in enumerate(rows):
        vals = [row["benchmarks"].get(name, {}).get("headline") for _, name in COLUMNS]
        ax.bar(x + i * width, [100 * v if v is not None else 0 for v in vals], width, label=row["model"])
    ax.set_xticks(x + width * (len(rows) - 1) / 2, labels)
    ax.set_ylabel("headline metric (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Reward models on the six benchmarks (missing = 0 bar)")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def write_leaderboard(folder: Path, rows: list[dict[str, Any]]) -> str:
    text = render_markdown(rows)
    (folder / "leaderboard.md").write_text(text, encoding="utf-8")
    render_plot(rows, folder / "leaderboard.png")
    return text


def write_leaderboards(out: Path, model_dir: Path, summary: dict[str, Any]) -> None:
    """The model's own row beside its summary.json, and the table over every model in OUT."""
    write_leaderboard(model_dir, [summary])
    write_leaderboard(out, leaderboard_rows(out))
