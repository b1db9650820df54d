"""The part both builders share: kept pairwise rows -> denoised rankings -> 4-response items -> OUT.

Pure steps live in mr2bench.ranking; this module wires them to tables and files.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import resource
import stat
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mr2bench import __version__
from mr2bench.jsonl import write_json
from mr2bench.ranking.coding import Codebook, encode
from mr2bench.ranking.ensemble import DRAWS, DenoiseConfig, Denoised, denoise
from mr2bench.ranking.recovery import order_to_score, tau_b, top1
from mr2bench.ranking.annotators import RULE as ANNOTATOR_RULE
from mr2bench.ranking.vote_leaderboard import model_leaderboard
from mr2bench.ranking.sampling import sample_variants
from mr2bench.schema import DataError
from mr2bench.seeding import rng_for

from .inputs import media_problem


@dataclass(frozen=True)
class Thresholds:
    min_judgments: int = 1           # a question with fewer kept judgments is dropped
    separation: float = 0.9          # item best must beat each other response in this share of replicates
    tie_confidence: float = 0.9      # adjacent responses below this share are one tie group
    drop_annotator_below: float = 0.0   # 0: every vote keeps its soft class weight
    drop_disconnected: bool = False     # True: drop disconnected questions even when the pooled prior links them


@dataclass
class BuildConfig:
    kind: str                        # "video" or "image"
    out: Path
    seed: int = 0
    variants: int = 3
    thresholds: Thresholds = field(default_factory=Thresholds)
    limit: int | None = None
    command: str = ""
    source: str = ""
    input_sha256: str = ""
    synthetic: bool = False
    license: str = ""
    media_root: Path | None = None   # --media-root: where media paths resolve (default: the input's folder)
    value_map: dict[str, dict[str, str]] = field(default_factory=dict)   # --value column:theirs=ours


@dataclass
class Context:
    """Per-question text and media looked up from the input rows."""

    prompt: dict[str, str]
    media: dict[str, str | None]
    response: dict[tuple[str, str], str]
    category: dict[str, str]


STAGES = ("read input", "validate", "encode", "denoise", "sample items", "leaderboard", "write outputs", "card")


class Timer:
    """Seconds per stage (timings.json), and the build's progress over STAGES (mr2bench.progress)."""

    def __init__(self) -> None:
        from mr2bench.progress import Progress

        self.stages: dict[str, float] = {}
        self._t = time.perf_counter()
        self._bar = Progress("build", total=len(STAGES), unit="stages")

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = round(now - self._t, 4)
        logging.getLogger(__name__).debug("stage %s: %.2f s, peak RSS so far %.0f MiB", name, now - self._t,
                                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        self._t = now
        self._bar.update(1, note=f"{name} done")
        if name == STAGES[-1]:
            self._bar.close()


def _progress(desc: str):
    from mr2bench.progress import track

    return lambda it: track(it, desc, unit="questions")


def _suffix(path: Path) -> str:
    s = path.suffix.lower()
    return s if re.fullmatch(r"\.[a-z0-9]{1,8}", s) else ""


def _copy_by_digest(src: Path, media: Path) -> str | None:
    """Copy a regular file to ``media/<sha256 of its bytes><ext>``: two questions never share a name unless
    their files are identical, and the name is the same on every run. None if it is not a regular file
    by the time it is opened (O_NOFOLLOW | O_NONBLOCK: a swapped-in link or FIFO is refused, not read)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(src, flags)
    except OSError:
        return None
    media.mkdir(parents=True, exist_ok=True)
    part = media / ".partial"
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        h = hashlib.sha256()
        with open(part, "wb") as dst:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
                dst.write(block)
    name = h.hexdigest() + _suffix(src)
    if (media / name).exists():
        part.unlink()
    else:
        os.replace(part, media / name)
    return f"media/{name}"


def copy_media(value: str | None, root: Path | None, out: Path) -> tuple[str | None, bool]:
    """A media reference as a path relative to OUT, and whether it was found. Files are copied by content
    digest; a file already inside OUT (the demo's generated media) is referenced in place; a missing one
    is kept as given. Validation quarantined every reference outside ``root``; one that fails the check
    now (changed since) gives no media at all."""
    if value is None:
        return None, True
    base = Path.cwd() if root is None else root
    if media_problem(value, base) is not None:
        return None, False
    src = Path(os.path.realpath(base / value))
    out_real = Path(os.path.realpath(out))
    if not src.is_file():
        return value, False
    if src.is_relative_to(out_real):
        return src.relative_to(out_real).as_posix(), True
    rel = _copy_by_digest(src, out / "media")
    return (rel, True) if rel else (None, False)


# An id on most votes is a channel or a judge type, not a person (GenAI-Arena's "arena_user_::1").
SHARED_ID_SHARE, SHARED_ID_MIN_ROWS = 0.5, 20
SHARED_ID_RULE = (f"an annotator id on more than {SHARED_ID_SHARE:.0%} of the kept judgments (when there are more "
                  f"than {SHARED_ID_MIN_ROWS}) is not one person: its judgments count with weight 1, unscored")


def neutral_shared_ids(kept: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Blank annotator ids shared by most rows, so reliability weighting never scores a crowd as one
    person (its rows become anonymous: weight 1, kept); the ids are returned for the report."""
    if "annotator_id" not in kept.columns or len(kept) <= SHARED_ID_MIN_ROWS:
        return kept, []
    counts = kept["annotator_id"].value_counts()
    ids = [str(a) for a, n in counts.items() if n > SHARED_ID_SHARE * len(kept)]
    if not ids:
        return kept, []
    shared = [{"annotator_id": a, "judgments": int(counts[a]), "share": _r(counts[a] / len(kept), 4)} for a in ids]
    col = kept["annotator_id"]
    return kept.assign(annotator_id=col.where(~col.isin(ids), None)), shared


def denoise_config(cfg: BuildConfig) -> DenoiseConfig:
    """The build's denoising settings (``plan`` reads the same posterior the build would)."""
    th = cfg.thresholds
    return DenoiseConfig(tie_confidence=th.tie_confidence, drop_below=th.drop_annotator_below, seed=cfg.seed,
                         rank_disconnected=not th.drop_disconnected, slot_classes=cfg.kind == "video")


def has_item(d: Denoised, qi: int, qid: str, th: Thresholds, seed: int) -> bool:
    """Whether the build samples at least one 4-response item for question ``qi`` (the same draws and rng)."""
    if len(d.order[qi]) < 4:
        return False
    return bool(sample_variants(d.order[qi], d.rank[qi], d.share[qi], 1, separation=th.separation,
                                rng=rng_for(seed, "items", qid), slot_start=0, draws=d.draws(qi)))


class EmptyBuildError(DataError):
    """Nothing to publish; the quarantine and the report were written into the build folder first."""


def quarantine_values(quarantine: list[dict], top: int = 20) -> dict[str, dict[str, Any]]:
    """Per reason: the field and its most frequent offending values with counts (all reasons)."""
    by: dict[str, tuple[str, Counter]] = {}
    for q in quarantine:
        fld, counter = by.setdefault(q["reason"], (q["field"], Counter()))
        value = q["record"].get(fld)
        if value is not None:
            counter[str(value)] += 1
    return {r: {"field": f, "distinct": len(c), "values": dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:top])}
            for r, (f, c) in sorted(by.items())}


def _row_losses(quarantine: list[dict]) -> list[str]:
    """The three largest quarantine reasons, with example values ("unknown_winner 180 (winner: 'left' 95)")."""
    vals = quarantine_values(quarantine)
    counts = Counter(q["reason"] for q in quarantine)
    out = []
    for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]:
        v = vals[reason]
        shown = list(v["values"].items())[: 10 if reason == "unknown_winner" else 3]
        ex = ", ".join(f"{k!r} {c}" for k, c in shown) + (", ..." if v["distinct"] > len(shown) else "")
        hint = "; map codes with --value winner:CODE=model_a|model_b|tie|both_bad" if reason == "unknown_winner" else ""
        out.append(f"{reason} {n} ({v['field']}" + (f": {ex}" if ex else "") + f"{hint})")
    return out


_QUESTION_HINTS = {"too_few_judgments": "--min-judgments", "not_separable": "--separation",
                   "disconnected": "more votes linking the models", "fewer_than_4_models": "4+ models a question"}


def _question_losses(why: dict, d: Denoised, cb: Codebook, th: Thresholds) -> list[str]:
    """Per reason a question was lost: count, example question ids (with judgments/models) and the knob."""
    qi_of = {q: k for k, q in enumerate(cb.questions)}
    by: dict[str, list] = {}
    for key, reason in why.items():
        by.setdefault(reason, []).append(qi_of.get(key, key))
    out = []
    for reason, qis in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:3]:
        ex = ", ".join(f"{cb.questions[qi]!r} ({d.diagnostics[qi]['judgments']} judgments, "
                       f"{d.diagnostics[qi]['models']} models)" for qi in sorted(qis)[:3])
        knob = _QUESTION_HINTS.get(reason, "")
        if reason == "too_few_judgments":
            knob += f" {th.min_judgments}"
        out.append(f"{reason} {len(qis)} ({ex}; see {knob})")
    return out


def _fail(cfg: BuildConfig, quarantine: list[dict], counts: dict[str, Any], what: str, losses: list[str],
          dropped: dict | None = None, no_items: dict | None = None) -> None:
    """Write quarantine.jsonl and a failed build_report.json into the build folder, then raise."""
    from mr2bench.jsonl import write_jsonl

    msg = (f"nothing to build: {what}; largest losses: " + "; ".join(losses or ["none recorded"])
           + " (every loss is in quarantine.jsonl and build_report.json in the output folder)")
    counts = dict(counts, quarantine_reasons=dict(sorted(Counter(q["reason"] for q in quarantine).items())))
    for name, why in (("questions_filtered", dropped), ("questions_without_items", no_items)):
        if why is not None:
            counts[name] = dict(sorted(Counter(why.values()).items()))
    report = {"benchmark": f"mr2bench-{cfg.kind}", "kind": cfg.kind, "status": "failed", "error": msg,
              "mr2bench_version": __version__, "command": cfg.command, "seed": cfg.seed, "source": cfg.source,
              "input_sha256": cfg.input_sha256, "synthetic": cfg.synthetic, "counts": counts,
              "quarantine_values": quarantine_values(quarantine), "thresholds": asdict(cfg.thresholds),
              "config": {"value_map": cfg.value_map, "limit": cfg.limit,
                         "media_root": None if cfg.media_root is None else str(cfg.media_root)}}
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(cfg.out / "quarantine.jsonl", quarantine)
    write_json(cfg.out / "build_report.json", report)
    raise EmptyBuildError(msg, file=cfg.source)


def _warn_unknown_winners(values: dict[str, dict[str, Any]]) -> None:
    if "unknown_winner" in values:
        logging.getLogger(__name__).warning(
            "rows with unknown winner codes %s were quarantined; map them with --value winner:CODE=model_a",
            values["unknown_winner"]["values"])


def _filters(d: Denoised, th: Thresholds) -> dict[int, str]:
    dropped = {}
    for qi, diag in enumerate(d.diagnostics):
        if diag["judgments"] < th.min_judgments:
            dropped[qi] = "too_few_judgments"
        elif diag["components"] > 1 and not diag.get("prior_links", False):
            dropped[qi] = "disconnected"
    return dropped


def leaderboard(coded, cb: Codebook, d: Denoised, keep_q: np.ndarray) -> tuple[pd.DataFrame, list[dict]]:
    """Model-level BT over the kept questions' weighted votes, ranked within connected model sets only
    (mr2bench.ranking.vote_leaderboard); models without weighted judgments come back apart."""
    return model_leaderboard(coded.q, coded.a, coded.b, coded.y, d.row_target, d.row_weight, keep_q, cb.models)


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
          rows_kept: int | None = None, checks: dict[str, int] | None = None) -> dict[str, Any]:
    """``rows_kept`` = input rows that passed validation when they are not ``kept`` itself (image
    rankings become many pairwise rows); ``checks`` = validation counts for the report. A build with
    nothing to show (0 judgments, 0 questions ranked, 0 items) writes its quarantine and report, then
    raises EmptyBuildError naming the largest losses."""
    timer = timer or Timer()
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    th = cfg.thresholds
    skipped = 0
    if cfg.limit is not None:
        qs = sorted(kept["question_id"].unique())[: cfg.limit]
        mask = kept["question_id"].isin(qs)
        skipped, kept = int((~mask).sum()), kept[mask]
    base = {"rows_in": rows_in, "kept": 0, "quarantined": len(quarantine), "skipped_by_limit": skipped}
    if kept.empty:
        _fail(cfg, quarantine, base, f"0 of {rows_in} rows kept", _row_losses(quarantine))
    kept, shared = neutral_shared_ids(kept)
    coded, cb = encode(kept)
    timer.lap("encode")
    d = denoise(coded, denoise_config(cfg), progress=_progress("rank questions"))
    timer.lap("denoise")
    dropped = _filters(d, th)
    keep_q = np.array([qi not in dropped for qi in range(coded.n_questions)])
    base.update(kept=int(rows_kept if rows_kept is not None else len(kept) + skipped),
                questions_in=coded.n_questions)
    if not keep_q.any():
        _fail(cfg, quarantine, base, f"0 of {coded.n_questions} questions ranked",
              _question_losses(dropped, d, cb, th) + _row_losses(quarantine), dropped=dropped)

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
    for qi in _progress("sample items")(np.flatnonzero(keep_q)):
        qid = cb.questions[qi]
        if len(d.order[qi]) < 4:
            no_items[qid] = "fewer_than_4_models"
            continue
        variants = sample_variants(d.order[qi], d.rank[qi], d.share[qi], cfg.variants, separation=th.separation,
                                   rng=rng_for(cfg.seed, "items", qid), slot_start=len(items), draws=d.draws(qi))
        if not variants:
            no_items[qid] = "not_separable"
            continue
        if qid not in media_rel:
            media_rel[qid], ok = copy_media(ctx.media.get(qid), root, out)
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
    if items_df.empty:
        _fail(cfg, quarantine, dict(base, questions_ranked=int(keep_q.sum())), "0 items sampled",
              _question_losses(no_items, d, cb, th) + _row_losses(quarantine), dropped=dropped, no_items=no_items)

    board, board_apart = leaderboard(coded, cb, d, keep_q)
    timer.lap("leaderboard")

    from . import outputs

    outputs.write_tables(out, rankings, items_df, board, quarantine, cfg.kind)
    outputs.write_removed_arcs(out, coded, d, cb, keep_q)   # the report shows them per question
    n_kept = rows_kept if rows_kept is not None else len(kept) + skipped
    report = _report(cfg, d, coded, cb, n_kept, quarantine, rows_in, skipped, dropped, no_items, items_df,
                     slot_counts, media_missing, board, truth, annotator_kinds, extra_report)
    report["counts"].update(checks or {})
    report["counts"]["responses_unevidenced"] = len(d.unevidenced)
    report["responses_unevidenced"] = [{"question_id": cb.questions[qi], "model": cb.models[m], "reason": why}
                                       for qi, m, why in d.unevidenced]
    report["leaderboard_apart"] = board_apart
    report["config"]["posterior"] = "laplace"
    report["config"]["prior_informative"] = d.prior_informative
    report["quarantine_values"] = quarantine_values(quarantine)
    report["config"].update(media_root=None if cfg.media_root is None else str(cfg.media_root),
                            value_map=cfg.value_map)
    report["annotators"].update(not_per_person=shared, not_per_person_rule=SHARED_ID_RULE)
    _warn_unknown_winners(report["quarantine_values"])
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
            ann.append({"annotator_id": name, **{s: (str(v[k]) if s == "status" or isinstance(v[k], str) else _r(v[k], 4))
                                                 for s, v in d.annotators.items()}})
    status_counts = {s: sum(a["status"] == s for a in ann) for s in ("kept", "down-weighted", "inverted", "dropped")}
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
        "config": {"variants": cfg.variants, "posterior_draws": DRAWS, "prior_precision": d.prior_precision,
                   "limit": cfg.limit},
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
        "annotators": {"counts": status_counts, "rule": ANNOTATOR_RULE + f"; weight < {cfg.thresholds.drop_annotator_below}"
                       " -> dropped (its votes count 0); < 0.9 -> down-weighted",
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
