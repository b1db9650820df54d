"""``build-benchmark plan``: from the pairwise judgments so far, the next votes to collect.

The same reading, validation, quarantine and posterior as ``build-benchmark video``; the choice of
requests is mr2bench.ranking.plan. Writes PLAN/requests.csv, requests.jsonl, plan_report.json and
quarantine.jsonl, into a temporary sibling swapped in whole (mr2bench.build_folder): a kill leaves the old
plan or the new one, never a mixture; a plan that fails after validation replaces PLAN with its quarantine
and a ``"status": "failed"`` report, so no earlier plan's requests survive to be sent again. PLAN must be
new, empty or an earlier plan folder (a build folder is refused).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mr2bench import __version__
from mr2bench.build_folder import atomic_output
from mr2bench.jsonl import write_json, write_jsonl
from mr2bench.ranking.coding import encode
from mr2bench.ranking.ensemble import denoise
from mr2bench.ranking.plan import PlanConfig, Request, open_questions, plan_requests
from mr2bench.schema import DataError

from .inputs import PAIRWISE_OPTIONAL, PAIRWISE_REQUIRED, Table, check_pairwise, read_table
from .pipeline import BuildConfig, denoise_config, has_item, neutral_shared_ids

REPORT = "plan_report.json"
COLUMNS = ["order", "batch", "question_id", "model_a", "model_b", "gain", "separation_prob", "separation",
           "separation_gap", "votes_to_separation", "best_model", "judgments_so_far"]


@dataclass(frozen=True)
class Exclusions:
    models: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()


def _demo_table(seed: int) -> tuple[Table, pd.DataFrame]:
    """The build's demo arena (with its malformed rows), without writing its media."""
    from mr2bench.ranking.simulate import Arena, pairwise_arena

    from .demo import DEMO_VIDEO, _bad_pairwise_rows, demo_table

    arena = pairwise_arena(seed, **DEMO_VIDEO)
    return demo_table(Arena(_bad_pairwise_rows(arena.judgments), arena.truth, arena.annotators),
                      "demo:video-arena", Path(".")), arena.truth


def _mask(names: list[str], chosen: tuple[str, ...], flag: str) -> np.ndarray:
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise DataError(f"{unknown} not in the judgments (known: {len(names)}, e.g. {names[:5]})", field=flag)
    return np.isin(np.array(names, dtype=object), list(chosen))


def _nothing_to_plan(n_q: int, done: np.ndarray, excl_q: np.ndarray, few: np.ndarray, sep: float,
                     aim: float) -> DataError:
    parts = [f"{int(done.sum())} already yield an item at --separation {sep} with confidence >= {aim:g}",
             f"{int((excl_q & ~done).sum())} excluded by --exclude-questions",
             f"{int((few & ~done & ~excl_q).sum())} have fewer than 4 ranked models"]
    return DataError(f"nothing to plan: of {n_q} questions, " + ", ".join(parts)
                     + " (lower --separation, or add questions / models)", field="--budget")


@atomic_output(report=REPORT, seal=False)   # cfg.out is a temporary sibling while this runs
def plan(source: str | Table | None, cfg: BuildConfig, pcfg: PlanConfig, excl: Exclusions,
         column_map: dict[str, str] | None = None, split: str | None = None) -> dict:
    """Read, validate (quarantine as the build does), denoise, plan, write cfg.out; returns the report."""
    if source is None:
        table, _ = _demo_table(cfg.seed)
    elif isinstance(source, Table):
        table = source
    else:
        table = read_table(source, PAIRWISE_REQUIRED, PAIRWISE_OPTIONAL, column_map, split, cfg.value_map)
    root = cfg.media_root or table.root
    checked = check_pairwise(table.df, root)
    kept = checked.kept.drop(columns="_row")
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "quarantine.jsonl", checked.quarantine)
    base = {"mr2bench_version": __version__, "command": cfg.command, "seed": cfg.seed, "source": table.label,
            "input_sha256": table.sha256, "plan": asdict(pcfg), "separation": cfg.thresholds.separation,
            "exclude_models": list(excl.models), "exclude_questions": list(excl.questions)}
    counts = {"rows_in": len(table.df), "kept": len(checked.kept), "quarantined": len(checked.quarantine),
              "quarantine_reasons": checked.reasons()}

    def fail(err: DataError) -> DataError:
        """The failed plan's report (readable in PLAN, which replaces any earlier plan) and its error."""
        write_json(out / REPORT, {**base, "status": "failed", "error": str(err), "counts": counts})
        return err

    if cfg.limit is not None:
        kept = kept[kept["question_id"].isin(sorted(kept["question_id"].unique())[: cfg.limit])]
    if kept.empty:
        raise fail(DataError(f"0 of {len(table.df)} rows kept; see quarantine.jsonl in the output folder",
                             file=table.label))
    kept, _ = neutral_shared_ids(kept)
    coded, cb = encode(kept)
    d = denoise(coded, denoise_config(cfg))
    th = cfg.thresholds
    yielding = np.array([has_item(d, qi, qid, th, cfg.seed) for qi, qid in enumerate(cb.questions)])
    try:
        excl_q = _mask(cb.questions, excl.questions, "--exclude-questions")
        excl_m = _mask(cb.models, excl.models, "--exclude-models")
    except DataError as err:
        raise fail(err) from None
    few = d.present.sum(axis=1) < 4
    is_open = open_questions(d, yielding, excl_q, pcfg.aim)
    if not is_open.any():
        raise fail(_nothing_to_plan(coded.n_questions, ~excl_q & ~few, excl_q, few, th.separation, pcfg.aim))
    w = float(np.mean(d.row_weight)) if len(d.row_weight) else 1.0
    reqs = plan_requests(d, yielding, excl_q, excl_m, max(w, 1e-3), pcfg)
    if not reqs:
        raise fail(DataError("nothing to plan: every open question's pairs involve an excluded model "
                             "(--exclude-models)", field="--exclude-models"))
    n_by_q = np.bincount(coded.q, minlength=coded.n_questions)
    df = _table(reqs, cb, th.separation, n_by_q)
    df.to_csv(out / "requests.csv", index=False, lineterminator="\n")
    write_jsonl(out / "requests.jsonl", df.to_dict("records"))
    report = {
        **base, "status": "planned",
        "counts": {**counts, "questions": coded.n_questions,
                   "questions_yielding": int(yielding.sum()),
                   "questions_open": int(is_open.sum()), "aim": pcfg.aim,
                   "questions_excluded": int(excl_q.sum()), "questions_fewer_than_4_models": int(few.sum()),
                   "requests": len(reqs), "questions_requested": int(df["question_id"].nunique()),
                   "short_of_budget": pcfg.budget - len(reqs)},
        "objective": "questions with at least one 4-response item whose best is above the other three at "
                     "once with posterior probability >= separation",
    }
    write_json(out / REPORT, report)
    return report


def _table(reqs: list[Request], cb, sep: float, n_by_q: np.ndarray) -> pd.DataFrame:
    rows = [{"order": k + 1, "batch": r.batch + 1, "question_id": cb.questions[r.question],
             "model_a": cb.models[r.left], "model_b": cb.models[r.right], "gain": round(r.gain, 4),
             "separation_prob": round(r.separation_prob, 4), "separation": sep,
             "separation_gap": round(max(sep - r.separation_prob, 0.0), 4),
             "votes_to_separation": r.votes_to_separation, "best_model": cb.models[r.best],
             "judgments_so_far": int(n_by_q[r.question])} for k, r in enumerate(reqs)]
    return pd.DataFrame(rows, columns=COLUMNS)
