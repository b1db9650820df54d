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


def removed_arcs(coded, d, cb, keep_q: np.ndarray) -> pd.DataFrame:
    """The vote graph's edges the final order overrules, per ranked question: ``winner`` beat ``loser``
    on net weighted votes (inverted-voter and annotator weights applied), yet is placed below it. The
    same net graph as the ensemble's ``removed_arcs`` diagnostic (mr2bench/ranking/ensemble.py: tie =
    half a win each way), so the rows of a question are as many as its diagnostic counts."""
    Q, M = coded.n_questions, coded.n_models
    w = d.row_weight
    y = d.row_target   # the votes as the fit reads them: an inverted voter's vote counts for the other side
    flat = np.bincount((coded.q * M + coded.a) * M + coded.b, w * y, Q * M * M)
    flat += np.bincount((coded.q * M + coded.b) * M + coded.a, w * (1.0 - y), Q * M * M)
    votes = flat.reshape(Q, M, M)
    rows = []
    for qi in np.flatnonzero(keep_q):
        order = d.order[qi]
        sub = votes[qi][np.ix_(order, order)]
        net = np.clip(sub - sub.T, 0.0, None)
        for lo, hi in zip(*np.nonzero(np.tril(net, -1) > 0)):   # lo placed below hi, yet it won on net
            rows.append((cb.questions[qi], cb.models[order[lo]], cb.models[order[hi]], float(net[lo, hi])))
    df = pd.DataFrame(rows, columns=["question_id", "winner", "loser", "weight"])
    return df.sort_values(["question_id", "weight", "winner", "loser"], ascending=[True, False, True, True],
                          ignore_index=True)


def write_removed_arcs(out: Path, coded, d, cb, keep_q: np.ndarray) -> None:
    import pyarrow as pa

    schema = pa.schema([("question_id", pa.string()), ("winner", pa.string()), ("loser", pa.string()),
                        ("weight", pa.float64())])
    _parquet(removed_arcs(coded, d, cb, keep_q), out / "removed_arcs.parquet", schema)


def write_tables(out: Path, rankings: pd.DataFrame, items: pd.DataFrame, board: pd.DataFrame,
                 quarantine: list[dict], kind: str) -> None:
    _parquet(rankings, out / "rankings.parquet")
    crash_point("between-tables")
    _parquet(items, out / "items.parquet", items_schema(kind))
    write_jsonl(out / "quarantine.jsonl", quarantine)
    board.round(4).to_csv(out / "leaderboard.csv", index=False, float_format="%.4f", lineterminator="\n")
    (out / "leaderboard.md").write_text(leaderboard_markdown(board), encoding="utf-8")
    crash_point("tables")


# an annotator's status from its weight (mr2bench/ranking/annotators.py mixture_report): dropped (weight
# below --drop-annotator-below, or degenerate voting) -> weight 0; < 0.9 -> down-weighted; else kept.
# "inverted" is decided by the class posterior, not the weight (its votes count, flipped)
DOWN_WEIGHTED_BELOW = 0.9
STATUS_COLORS = {"kept": "tab:green", "down-weighted": "tab:orange", "dropped": "tab:red", "inverted": "tab:purple"}
_META = {"Software": None}  # no version string: byte-identical PNGs across runs


def _figure(w: float, h: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))   # no pyplot: no global figure state, nothing to close
    return fig, fig.subplots(1, ncols)


def _no_data(ax, why: str) -> None:
    ax.text(0.5, 0.5, f"no data\n{why}", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def leaderboard_figure(board: pd.DataFrame):
    b = board.iloc[::-1]
    fig, ax = _figure(7, 0.3 * len(b) + 1.2)
    # matplotlib rejects negative error lengths: clip, should an interval not contain its point estimate
    xerr = np.clip([b["score"] - b["ci_low"], b["ci_high"] - b["score"]], 0.0, None)
    ax.errorbar(b["score"], range(len(b)), xerr=xerr, fmt="o", color="tab:blue", ecolor="gray", capsize=3)
    ax.set_yticks(range(len(b)), b["model"])
    ax.set_xlabel("Bradley-Terry strength (log-odds), 95% Laplace interval")
    ax.set_title("Model leaderboard over all ranked questions")
    fig.tight_layout()
    return fig


def annotators_figure(ann: list[dict], drop_below: float, down_below: float = DOWN_WEIGHTED_BELOW):
    """Votes (x) against the weight that decides the colour (y), with the two thresholds. Fixed limits
    around [0, 1]: a spread of 0.001 stays a flat line instead of filling the height."""
    fig, ax = _figure(6.5, 4.2)
    statuses = list(STATUS_COLORS) + sorted({a["status"] for a in ann} - set(STATUS_COLORS))
    for status in statuses:
        sel = [a for a in ann if a["status"] == status]
        if sel:
            ax.scatter([max(a["votes"], 1) for a in sel], [a["weight"] for a in sel], s=20, alpha=0.8,
                       c=STATUS_COLORS.get(status, "tab:gray"), label=f"{status} ({len(sel)})")
    ax.axhline(down_below, color="tab:orange", ls="--", lw=1, label=f"down-weighted below {down_below:g}")
    if drop_below > 0:   # 0 (the default): no weight threshold; only degenerate voters are dropped (weight 0)
        ax.axhline(drop_below, color="tab:red", ls=":", lw=1, label=f"dropped below {drop_below:g}")
    ys = [a["weight"] for a in ann]
    ax.set_ylim(min([0.0] + ys) - 0.05, max([1.0] + ys) + 0.05)
    ax.set_xscale("log")
    ax.set_xlabel("votes (log scale)")
    ax.set_ylabel("annotator weight (share of its votes that count)")
    ax.set_title("Annotator weights")
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    fig.tight_layout()
    return fig


def rank_confidence_figure(top_share: list[float], groups: list[int], separation: float):
    fig, axes = _figure(9.5, 3.6, ncols=2)
    ax = axes[0]
    if top_share:
        ax.hist(np.clip(top_share, 0.5, 1.0), bins=np.linspace(0.5, 1.0, 11), color="tab:blue")
        ax.axvline(separation, color="black", ls="--", lw=1, label=f"--separation {separation:g}")
        ax.legend(fontsize=8, loc="best")
        ax.set_xlabel("P(#1 above #2)")
        ax.set_ylabel("questions")
    else:
        _no_data(ax, "no ranked question has 2+ responses")
    ax.set_title("Confidence in the top response")
    ax = axes[1]
    if groups:
        ax.hist(groups, bins=np.arange(0.5, max(groups) + 1.5), color="tab:purple")
        ax.set_xlabel("tie groups per question")
        ax.set_ylabel("questions")
    else:
        _no_data(ax, "no ranked question")
    ax.set_title("Separable rank levels")
    fig.tight_layout()
    return fig


def plots(out: Path, board: pd.DataFrame, d, cb, keep_q: np.ndarray, report: dict) -> list[str]:
    """leaderboard.png, annotators.png (when there are annotator ids) and rank_confidence.png."""
    figs = {"leaderboard.png": leaderboard_figure(board)}
    ann = report["annotators"]["per_annotator"]
    if ann:
        figs["annotators.png"] = annotators_figure(ann, report["thresholds"]["drop_annotator_below"])
    qs = np.flatnonzero(keep_q)
    top_share = [float(d.share[qi][d.order[qi][0], d.order[qi][1]]) for qi in qs if len(d.order[qi]) > 1]
    groups = [d.diagnostics[qi]["tie_groups"] for qi in qs]
    figs["rank_confidence.png"] = rank_confidence_figure(top_share, groups, report["thresholds"]["separation"])
    from mr2bench.progress import track

    for name, fig in track(figs.items(), "write plots", unit="files"):
        fig.savefig(out / name, dpi=100, metadata=_META)
    crash_point("plots")
    return list(figs)
