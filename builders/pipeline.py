"""The part both builders share: kept pairwise rows -> denoised rankings -> 4-response items -> OUT.

Pure steps live in mr2bench.ranking; this module wires them to tables and files.
"""
from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mr2bench import __version__
from mr2bench.jsonl import write_json
from mr2bench.ranking import bradley_terry as bt
from mr2bench.ranking.coding import Codebook, encode
from mr2bench.ranking.ensemble import DenoiseConfig, Denoised, denoise
from mr2bench.ranking.metrics import order_to_score, tau_b, top1
from mr2bench.ranking.sampling import sample_variants
from mr2bench.seeding import rng_for


@dataclass(frozen=True)
class Thresholds:
    min_judgments: int = 10          # a question with fewer kept judgments is dropped
    separation: float = 0.9          # item best must beat each other response in this share of replicates
    tie_confidence: float = 0.9      # adjacent responses below this share are one tie group
    drop_annotator_below: float = 0.25


@dataclass
class BuildConfig:
    kind: str                        # "video" or "image"
    out: Path
    seed: int = 0
    variants: int = 3
    bootstrap: int = 50
    thresholds: Thresholds = field(default_factory=Thresholds)
    vote_weight: float = 0.1
    dp_max: int = 16
    milp_max: int = 40
    limit: int | None = None
    command: str = ""
    source: str = ""
    input_sha256: str = ""
    synthetic: bool = False
    license: str = ""


@dataclass
class Context:
    """Per-question text and media looked up from the input rows."""

    prompt: dict[str, str]
    media: dict[str, str | None]
    response: dict[tuple[str, str], str]
    category: dict[str, str]


class Timer:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = round(now - self._t, 4)
        self._t = now


def _progress(desc: str):
    from tqdm import tqdm

    return lambda it: tqdm(it, desc=desc, file=sys.stderr, leave=False, disable=not sys.stderr.isatty())


def safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:120] or "x"


def copy_media(value: str | None, root: Path | None, out: Path, key: str) -> tuple[str | None, bool]:
    """A media reference as a path relative to OUT (copied there), a URL kept, or (value, False) if absent."""
    if value is None:
        return None, True
    if "://" in value:
        return value, True
    src = Path(value) if Path(value).is_absolute() or root is None else root / value
    if not src.is_file():
        return value, False
    rel = f"media/{safe_name(key)}{src.suffix.lower()}"
    dest = out / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dest.resolve():
        shutil.copyfile(src, dest)
    return rel, True


def _filters(d: Denoised, th: Thresholds) -> dict[int, str]:
    dropped = {}
    for qi, diag in enumerate(d.diagnostics):
        if diag["judgments"] < th.min_judgments:
            dropped[qi] = "too_few_judgments"
        elif diag["components"] > 1:
            dropped[qi] = "disconnected"
    return dropped


def leaderboard(coded, cb: Codebook, w: np.ndarray, keep_q: np.ndarray, seed: int, rounds: int = 200) -> pd.DataFrame:
    """One model-level BT fit over all kept questions, multinomial-bootstrap 95 % CIs."""
    sel = keep_q[coded.q] & (w > 0)
    o, _ = bt.dedupe(bt.make_outcomes(coded.a[sel], coded.b[sel], coded.y[sel], w[sel]))
    theta = bt.fit(coded.n_models, o, alpha=0.01)
    boots = bt.bootstrap(coded.n_models, o, theta, rng_for(seed, "leaderboard"), rounds, alpha=0.01)
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    wins = np.bincount(coded.a[sel], coded.y[sel] == 1, coded.n_models) + np.bincount(coded.b[sel], coded.y[sel] == 0, coded.n_models)
    games = np.bincount(coded.a[sel], minlength=coded.n_models) + np.bincount(coded.b[sel], minlength=coded.n_models)
    ties = np.bincount(coded.a[sel], coded.y[sel] == 0.5, coded.n_models) + np.bincount(coded.b[sel], coded.y[sel] == 0.5, coded.n_models)
    # Arena rule: rank = 1 + number of models whose lower bound is above this model's upper bound
    rank = 1 + (lo[None, :] > hi[:, None]).sum(axis=1)
    df = pd.DataFrame({"rank": rank, "model": cb.models, "score": theta, "ci_low": lo, "ci_high": hi,
                       "elo": 1000 + theta * 400 / np.log(10), "judgments": games.astype(int),
                       "wins": wins.astype(int), "ties": ties.astype(int)})
    return df.sort_values(["score", "model"], ascending=[False, True]).reset_index(drop=True)


def _recovery(d: Denoised, cb: Codebook, truth: pd.DataFrame, keep: list[int]) -> dict[str, float]:
    T = truth.pivot(index="question_id", columns="model", values="theta").reindex(index=cb.questions, columns=cb.models).to_numpy()
    taus, tops = [], []
    for qi in keep:
        order = d.order[qi]
        est = order_to_score(np.arange(len(order)), len(order))
        taus.append(tau_b(T[qi, order], est))
        tops.append(top1(T[qi, order], est))
    return {"kendall_tau_b": round(float(np.mean(taus)), 4) if taus else None,
            "top1": round(float(np.mean(tops)), 4) if tops else None, "questions": len(keep)}


def _r(x: float, k: int = 6) -> float:
    return float(round(float(x), k))


def build(kept: pd.DataFrame, quarantine: list[dict], rows_in: int, ctx: Context, cfg: BuildConfig,
          root: Path | None = None, truth: pd.DataFrame | None = None, annotator_kinds: pd.DataFrame | None = None,
          timer: Timer | None = None, extra_report: dict | None = None,
          rows_kept: int | None = None) -> dict[str, Any]:
    """``rows_kept`` = input rows that passed validation when they are not ``kept`` itself (image
    rankings become many pairwise rows)."""
    timer = timer or Timer()
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    th = cfg.thresholds
    skipped = 0
    if cfg.limit is not None:
        qs = sorted(kept["question_id"].unique())[: cfg.limit]
        mask = kept["question_id"].isin(qs)
        skipped, kept = int((~mask).sum()), kept[mask]
    if kept.empty:
        from mr2bench.schema import DataError

        raise DataError("no valid judgments left after validation; see the quarantine reasons", file=cfg.source)
    coded, cb = encode(kept)
    timer.lap("encode")
    dcfg = DenoiseConfig(bootstrap=cfg.bootstrap, vote_weight=cfg.vote_weight, tie_confidence=th.tie_confidence,
                         drop_below=th.drop_annotator_below, dp_max=cfg.dp_max, milp_max=cfg.milp_max, seed=cfg.seed)
    d = denoise(coded, dcfg, progress=_progress("rank questions"))
    timer.lap("denoise")
    dropped = _filters(d, th)
    keep_q = np.array([qi not in dropped for qi in range(coded.n_questions)])

    # rankings table
    rows = []
    for qi in np.flatnonzero(keep_q):
        for pos, m in enumerate(d.order[qi], start=1):
            rows.append({"question_id": cb.questions[qi], "model": cb.models[m], "rank": int(d.rank[qi, m]),
                         "position": pos, "score": _r(d.theta[qi, m]), "ci_low": _r(d.ci_low[qi, m]),
                         "ci_high": _r(d.ci_high[qi, m])})
    rankings = pd.DataFrame(rows, columns=["question_id", "model", "rank", "position", "score", "ci_low", "ci_high"])

    # 4-response items
    items, slot_counts, no_items = [], [0, 0, 0, 0], {}
    media_missing = 0
    media_rel: dict[str, str | None] = {}
    for qi in np.flatnonzero(keep_q):
        qid = cb.questions[qi]
        if len(d.order[qi]) < 4:
            no_items[qid] = "fewer_than_4_models"
            continue
        variants = sample_variants(d.order[qi], d.rank[qi], d.share[qi], cfg.variants, separation=th.separation,
                                   rng=rng_for(cfg.seed, "items", qid), slot_start=len(items))
        if not variants:
            no_items[qid] = "not_separable"
            continue
        if qid not in media_rel:
            media_rel[qid], ok = copy_media(ctx.media.get(qid), root, out, qid)
            media_missing += not ok
        for k, v in enumerate(variants):
            models = [cb.models[m] for m in v.models]
            slot_counts[v.best_slot] += 1
            items.append({"id": f"{qid}-v{k}", "question_id": qid, "prompt": ctx.prompt.get(qid, ""),
                          "responses": [ctx.response.get((qid, m), "") for m in models],
                          "rankings": list(v.rankings), "models": models, cfg.kind: media_rel[qid],
                          "category": ctx.category.get(qid, cfg.kind), "variant": k})
    item_cols = ["id", "question_id", "prompt", "responses", "rankings", "models", cfg.kind, "category", "variant"]
    items_df = pd.DataFrame(items, columns=item_cols)
    timer.lap("sample items")

    board = leaderboard(coded, cb, d.row_weight, keep_q, cfg.seed)
    timer.lap("leaderboard")

    from . import outputs

    outputs.write_tables(out, rankings, items_df, board, quarantine, cfg.kind)
    n_kept = rows_kept if rows_kept is not None else len(kept) + skipped
    report = _report(cfg, d, coded, cb, n_kept, quarantine, rows_in, skipped, dropped, no_items, items_df,
                     slot_counts, media_missing, board, truth, annotator_kinds, extra_report)
    write_json(out / "build_report.json", report)
    outputs.plots(out, board, d, cb, keep_q, report)
    timer.lap("write outputs")
    from mr2bench.cards import benchmark_card

    (out / "README.md").write_text(benchmark_card(out, []), encoding="utf-8")
    timer.lap("card")
    write_json(out / "timings.json", {"seconds": timer.stages, "total": round(sum(timer.stages.values()), 3)})
    return report


def _report(cfg, d: Denoised, coded, cb, n_kept, quarantine, rows_in, skipped, dropped, no_items, items_df,
            slot_counts, media_missing, board, truth, annotator_kinds, extra) -> dict[str, Any]:
    reasons: dict[str, int] = {}
    for q in quarantine:
        reasons[q["reason"]] = reasons.get(q["reason"], 0) + 1
    keep = [qi for qi in range(coded.n_questions) if qi not in dropped]
    diags = [d.diagnostics[qi] for qi in keep]
    methods: dict[str, int] = {}
    for x in diags:
        for k, v in x["fas_methods"].items():
            methods[k] = methods.get(k, 0) + v
    ann = []
    if d.annotators:
        for k, name in enumerate(cb.annotators):
            ann.append({"annotator_id": name, **{s: (str(v[k]) if s == "status" else _r(v[k], 4))
                                                 for s, v in d.annotators.items()}})
    status_counts = {s: sum(a["status"] == s for a in ann) for s in ("kept", "down-weighted", "dropped")}
    n_pairs_total = sum(x["models"] * (x["models"] - 1) // 2 for x in diags)
    ties_total = sum(x["models"] - x["tie_groups"] for x in diags)
    report: dict[str, Any] = {
        "benchmark": f"mr2bench-{cfg.kind}", "kind": cfg.kind, "synthetic": cfg.synthetic, "license": cfg.license,
        "mr2bench_version": __version__, "command": cfg.command, "seed": cfg.seed,
        "source": cfg.source, "input_sha256": cfg.input_sha256,
        "counts": {
            "rows_in": rows_in, "kept": int(n_kept), "quarantined": len(quarantine),
            "skipped_by_limit": skipped, "quarantine_reasons": dict(sorted(reasons.items())),
            "questions_in": coded.n_questions, "questions_ranked": len(keep),
            "questions_filtered": dict(sorted({r: sum(v == r for v in dropped.values()) for r in set(dropped.values())}.items())),
            "questions_without_items": dict(sorted({r: sum(v == r for v in no_items.values()) for r in set(no_items.values())}.items())),
            "models": len(cb.models), "annotators": len(cb.annotators), "items": int(len(items_df)),
            "questions_with_items": int(items_df["question_id"].nunique()) if len(items_df) else 0,
            "best_slot_counts": slot_counts, "media_missing": media_missing,
            "judgments_with_zero_weight": int((d.row_weight == 0).sum()),
        },
        "thresholds": asdict(cfg.thresholds),
        "config": {"variants": cfg.variants, "bootstrap": cfg.bootstrap, "vote_weight": cfg.vote_weight,
                   "exact_dp_max_nodes": cfg.dp_max, "exact_milp_max_nodes": cfg.milp_max,
                   "prior_precision": d.prior_precision, "limit": cfg.limit},
        "diagnostics": {
            "vote_graph_3cycles": sum(x["vote_cycles3"] for x in diags),
            "ensemble_graph_3cycles_before": sum(x["graph_cycles3_before"] for x in diags),
            "ensemble_graph_3cycles_after": sum(x["graph_cycles3_after"] for x in diags),
            "questions_with_cycles": sum(x["graph_cycles3_before"] > 0 for x in diags),
            "feedback_arcs_removed": sum(x["removed_arcs"] for x in diags),
            "removed_weight_share_mean": _r(np.mean([x["removed_weight_share"] for x in diags]) if diags else 0.0),
            "fas_solver_components": dict(sorted(methods.items())),
            "tied_responses": ties_total, "response_pairs": n_pairs_total,
            "tie_groups_mean": _r(np.mean([x["tie_groups"] for x in diags]) if diags else 0.0),
            "judgments_per_question_median": float(np.median([x["judgments"] for x in diags])) if diags else 0.0,
        },
        "annotators": {"counts": status_counts, "rule": "weight = clip(competence / vote-weighted median competence, 0, 1); "
                       f"weight < {cfg.thresholds.drop_annotator_below} -> dropped; < 0.9 -> down-weighted",
                       "per_annotator": ann},
        "leaderboard": [{k: (_r(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                        for r in board.to_dict("records")],
    }
    if truth is not None:
        report["recovery"] = _recovery(d, cb, truth, keep)
        if annotator_kinds is not None and ann:
            kinds = dict(zip(annotator_kinds["annotator_id"], annotator_kinds["kind"]))
            by: dict[str, list[float]] = {}
            for a in ann:
                by.setdefault(kinds.get(a["annotator_id"], "?"), []).append(a["weight"])
            report["recovery"]["mean_weight_by_planted_kind"] = {k: _r(np.mean(v), 3) for k, v in sorted(by.items())}
    if extra:
        report.update(extra)
    return report
