"""Files in OUT: Parquet tables, quarantine, leaderboard (csv + md) and PNG plots (matplotlib Agg)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mr2bench.build_folder import crash_point
from mr2bench.jsonl import write_jsonl


def _parquet(df: pd.DataFrame, path: Path, schema=None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    pq.write_table(table, path)


def items_schema(kind: str):
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("question_id", pa.string()), ("prompt", pa.string()),
                      ("responses", pa.list_(pa.string())), ("rankings", pa.list_(pa.int64())),
                      ("models", pa.list_(pa.string())), (kind, pa.string()), ("category", pa.string()),
                      ("variant", pa.int64())])


def leaderboard_markdown(board: pd.DataFrame) -> str:
    lines = ["| rank | model | score | 95% CI | Elo | judgments |", "|---:|---|---:|---|---:|---:|"]
    for r in board.itertuples(index=False):
        lines.append(f"| {r.rank} | {r.model} | {r.score:.3f} | [{r.ci_low:.3f}, {r.ci_high:.3f}] | "
                     f"{r.elo:.0f} | {r.judgments} |")
    return "\n".join(lines) + "\n"


def write_tables(out: Path, rankings: pd.DataFrame, items: pd.DataFrame, board: pd.DataFrame,
                 quarantine: list[dict], kind: str) -> None:
    _parquet(rankings, out / "rankings.parquet")
    crash_point("between-tables")
    _parquet(items, out / "items.parquet", items_schema(kind))
    write_jsonl(out / "quarantine.jsonl", quarantine)
    board.round(4).to_csv(out / "leaderboard.csv", index=False, float_format="%.4f", lineterminator="\n")
    (out / "leaderboard.md").write_text(leaderboard_markdown(board), encoding="utf-8")
    crash_point("tables")


def plots(out: Path, board: pd.DataFrame, d, cb, keep_q: np.ndarray, report: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = {"Software": None}  # no version string: byte-identical PNGs across runs
    names = []
    b = board.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(b) + 1.2))
    # a percentile bootstrap interval need not contain the point estimate: clip, matplotlib rejects < 0
    xerr = np.clip([b["score"] - b["ci_low"], b["ci_high"] - b["score"]], 0.0, None)
    ax.errorbar(b["score"], range(len(b)), xerr=xerr,
                fmt="o", color="tab:blue", ecolor="gray", capsize=3)
    ax.set_yticks(range(len(b)), b["model"])
    ax.set_xlabel("Bradley-Terry strength (log-odds), 95% bootstrap CI")
    ax.set_title("Model leaderboard over all ranked questions")
    fig.tight_layout()
    fig.savefig(out / "leaderboard.png", dpi=100, metadata=meta)
    plt.close(fig)
    names.append("leaderboard.png")

    ann = report["annotators"]["per_annotator"]
    if ann:
        fig, ax = plt.subplots(figsize=(6, 4))
        colors = {"kept": "tab:green", "down-weighted": "tab:orange", "dropped": "tab:red"}
        for status, color in colors.items():
            sel = [a for a in ann if a["status"] == status]
            ax.scatter([a["votes"] for a in sel], [a["agreement"] for a in sel], c=color, label=status, s=18)
        ax.set_xscale("log")
        ax.set_xlabel("votes (log scale)")
        ax.set_ylabel("agreement with leave-out consensus")
        ax.set_title("Annotator reliability")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "annotators.png", dpi=100, metadata=meta)
        plt.close(fig)
        names.append("annotators.png")

    top_share = [float(d.share[qi][d.order[qi][0], d.order[qi][1]]) for qi in np.flatnonzero(keep_q)
                 if len(d.order[qi]) > 1]
    groups = [d.diagnostics[qi]["tie_groups"] for qi in np.flatnonzero(keep_q)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].hist(top_share, bins=np.linspace(0.5, 1.0, 11), color="tab:blue")
    axes[0].set_xlabel("bootstrap share: #1 above #2")
    axes[0].set_ylabel("questions")
    axes[0].set_title("Confidence in the top response")
    axes[1].hist(groups, bins=np.arange(0.5, max(groups + [1]) + 1.5), color="tab:purple")
    axes[1].set_xlabel("tie groups per question")
    axes[1].set_title("Separable rank levels")
    fig.tight_layout()
    fig.savefig(out / "rank_confidence.png", dpi=100, metadata=meta)
    plt.close(fig)
    names.append("rank_confidence.png")
    crash_point("plots")
    return names
