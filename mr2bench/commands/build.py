"""Build MR^2Bench-Video or -Image: denoise human judgments into full rankings and 4-response items.

Video input: pairwise judgments (question_id, model_a, model_b, winner, ...). Image input: ranking
rows (prompt_id, model, rank, ...). With no INPUT, a seeded synthetic demo arena is built.
``plan`` reads pairwise judgments like ``video`` and writes the next --budget votes to collect (OUT/requests.csv
and .jsonl, ordered), chosen so the most questions reach a separable 4-response item per vote.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from mr2bench.cli import add_shared

HELP = __doc__
EPILOG = """examples:
  build-benchmark video --out runs/demo-video                      # synthetic demo arena
  build-benchmark image --out runs/demo-image
  build-benchmark video votes.csv --out runs/video --variants 3 --separation 0.95
  build-benchmark video battles.jsonl --out runs/v --column question_id=qid --column winner=vote
  build-benchmark image rankings.parquet --out runs/image --min-judgments 5
  build-benchmark video path/to/dataset_folder --split train --out runs/v
  build-benchmark video arena.jsonl --out runs/v --value winner:left=model_a --value winner:right=model_b
  build-benchmark video votes.csv --out runs/v --media-root /data/clips
  build-benchmark plan --budget 300 --out runs/plan                # next 300 votes for the demo arena
  build-benchmark plan votes.csv --budget 500 --batch 100 --per-question-cap 5 --exclude-models old-7b --out runs/plan
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["video", "image", "plan"],
                        help="video = pairwise judgments, image = rankings, plan = the next votes to collect "
                             "for pairwise judgments")
    parser.add_argument("input", nargs="?", default=None, metavar="INPUT",
                        help="CSV / JSONL / Parquet file, local dataset folder or Hub dataset id "
                             "(default: the embedded synthetic demo arena)")
    add_shared(parser, "seed", "out", "log-level", "limit", out_required=True)
    parser.add_argument("--column", action="append", metavar="CANONICAL=THEIRS",
                        help="map an input column to a canonical name (repeatable)")
    parser.add_argument("--value", action="append", metavar="COLUMN:THEIRS=OURS",
                        help="map a value of a canonical column after --column, e.g. winner:left=model_a "
                             "(repeatable; exact match on the stripped cell)")
    parser.add_argument("--media-root", type=Path, default=None, metavar="DIR",
                        help="folder that media paths resolve inside (default: the input file's folder); "
                             "paths resolving outside it are quarantined, never read")
    parser.add_argument("--split", default=None, help="split to read from a dataset folder / Hub id")
    parser.add_argument("--variants", type=int, default=3, help="4-response variants per question (default: 3)")
    parser.add_argument("--bootstrap", type=int, default=None, help=argparse.SUPPRESS)  # removed; warns
    parser.add_argument("--min-judgments", type=int, default=1,
                        help="drop questions with fewer kept judgments (default: 1; the posterior already says how "
                             "sure a thinly judged question is, and items need --separation)")
    parser.add_argument("--separation", type=float, default=0.9,
                        help="posterior probability that an item's best is above all three others at once "
                             "(and above each one) (default: 0.9)")
    parser.add_argument("--tie-confidence", type=float, default=0.9,
                        help="adjacent responses ordered with a lower posterior probability share a rank (default: 0.9)")
    parser.add_argument("--drop-annotator-below", type=float, default=0.0,
                        help="annotators whose weight (expected share of their votes that follow Bradley-Terry) "
                             "falls below this are dropped; 0 keeps every vote at its soft weight (default: 0)")
    parser.add_argument("--drop-disconnected", action="store_true",
                        help="drop questions whose comparison graph is disconnected even when the pooled "
                             "model-level prior is informative and links the parts (default: rank them)")
    parser.add_argument("--license", default="", help="license for the card (default: apache-2.0 for the demo, else other)")
    g = parser.add_argument_group("plan (build-benchmark plan only)")
    g.add_argument("--budget", type=int, default=None, metavar="N", help="number of votes to request (required)")
    g.add_argument("--batch", type=int, default=None, metavar="K",
                   help="requests per batch; the caps apply per batch (default: the whole budget is one batch)")
    g.add_argument("--per-question-cap", type=int, default=8, metavar="N",
                   help="requests per question in one batch (default: 8)")
    g.add_argument("--per-pair-cap", type=int, default=3, metavar="N",
                   help="requests per (question, model pair) in one batch (default: 3)")
    g.add_argument("--aim", type=float, default=None, metavar="P",
                   help="plan each question until its best is separated with probability P, in [--separation, 1) "
                        "(default: a fifth of the way from --separation to 1, 0.92 at 0.9)")
    g.add_argument("--exclude-models", action="append", default=[], metavar="A,B",
                   help="models never to ask about (comma-separated, repeatable)")
    g.add_argument("--exclude-questions", action="append", default=[], metavar="Q1,Q2",
                   help="questions never to ask about (comma-separated, repeatable)")


def _check(args: argparse.Namespace) -> None:
    from mr2bench.schema import DataError

    if args.variants < 1:
        raise DataError("must be >= 1", field="--variants")
    if args.bootstrap is not None:  # scripts from 0.1 keep running; the number is not silently obeyed
        import logging

        logging.getLogger("mr2bench.commands.build").warning(
            "--bootstrap is ignored: confidence now comes from the Laplace posterior of the ensemble, not "
            "from bootstrap resamples; drop the flag")
    for name in ("separation", "tie_confidence"):
        if not 0.5 <= getattr(args, name) <= 1.0:
            raise DataError("must be within [0.5, 1]", field=f"--{name.replace('_', '-')}")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mr2bench.builders.inputs import PAIRWISE_OPTIONAL, PAIRWISE_REQUIRED, RANKING_OPTIONAL, RANKING_REQUIRED, parse_column_map
    from mr2bench.builders.inputs import parse_value_map
    from mr2bench.builders.pipeline import BuildConfig, Thresholds

    _check(args)
    pairwise = args.kind in ("video", "plan")
    allowed = (PAIRWISE_REQUIRED + PAIRWISE_OPTIONAL) if pairwise else (RANKING_REQUIRED + RANKING_OPTIONAL)
    column_map = parse_column_map(args.column, allowed)
    cfg = BuildConfig(
        kind=args.kind, out=Path(args.out), seed=args.seed, variants=args.variants,
        thresholds=Thresholds(args.min_judgments, args.separation, args.tie_confidence, args.drop_annotator_below,
                              args.drop_disconnected),
        limit=args.limit,
        command=args.invocation,
        synthetic=args.input is None, license=args.license, media_root=args.media_root,
        value_map=parse_value_map(args.value, allowed))
    if args.kind == "plan":
        return _plan(args, cfg, column_map)
    if args.kind == "video":
        from mr2bench.builders.video import build_video as builder
    else:
        from mr2bench.builders.image import build_image as builder
    report = builder(args.input, cfg, column_map, args.split)
    print(summary(report, cfg.out))
    return 0


def _names(values: list[str]) -> tuple[str, ...]:
    return tuple(sorted({v.strip() for x in values for v in x.split(",") if v.strip()}))


def _plan(args: argparse.Namespace, cfg, column_map: dict[str, str]) -> int:
    from mr2bench.builders.plan import Exclusions, plan
    from mr2bench.ranking.plan import PlanConfig
    from mr2bench.schema import DataError

    if args.budget is None:
        raise DataError("build-benchmark plan needs --budget N (the number of votes to request)", field="--budget")
    for flag, v in (("--budget", args.budget), ("--batch", args.batch), ("--per-question-cap", args.per_question_cap),
                    ("--per-pair-cap", args.per_pair_cap)):
        if v is not None and v < 1:
            raise DataError(f"must be >= 1, got {v}", field=flag)
    if args.separation >= 1:
        raise DataError(f"build-benchmark plan needs --separation < 1, got {args.separation} (no posterior "
                        "separates a best response with probability 1, so every question would stay open)",
                        field="--separation")
    if args.aim is not None and not (math.isfinite(args.aim) and args.separation <= args.aim < 1):
        raise DataError(f"must be in [--separation {args.separation}, 1), got {args.aim}", field="--aim")
    pcfg = PlanConfig(budget=args.budget, separation=args.separation, per_question_cap=args.per_question_cap,
                      per_pair_cap=args.per_pair_cap, batch=args.batch, seed=args.seed, target=args.aim)
    report = plan(args.input, cfg, pcfg, Exclusions(_names(args.exclude_models), _names(args.exclude_questions)),
                  column_map, args.split)
    c = report["counts"]
    rows = [("rows in / kept / quarantined", f"{c['rows_in']} / {c['kept']} / {c['quarantined']}"),
            ("questions / yielding / open", f"{c['questions']} / {c['questions_yielding']} / {c['questions_open']}"),
            ("requests / questions asked", f"{c['requests']} / {c['questions_requested']}"),
            ("output", str(cfg.out))]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    if c["short_of_budget"]:
        import logging

        logging.getLogger("mr2bench.commands.build").warning(
            "%d of --budget %d requests planned: the caps (--per-question-cap, --per-pair-cap) and the open "
            "questions allow no more", c["requests"], args.budget)
    return 0


def summary(report: dict, out) -> str:
    import json

    c, d = report["counts"], report["diagnostics"]
    timings = json.loads((out / "timings.json").read_text())
    rows = [("benchmark", report["benchmark"] + (" (SYNTHETIC demo)" if report["synthetic"] else "")),
            ("rows in / kept / quarantined", f"{c['rows_in']} / {c['kept']} / {c['quarantined']}"),
            ("quarantine reasons", ", ".join(f"{k} {v}" for k, v in c["quarantine_reasons"].items()) or "-"),
            ("annotators kept / down-weighted / inverted / dropped",
             " / ".join(str(report["annotators"]["counts"].get(k, 0))
                        for k in ("kept", "down-weighted", "inverted", "dropped"))),
            ("questions in / ranked / with items", f"{c['questions_in']} / {c['questions_ranked']} / {c['questions_with_items']}"),
            ("items", str(c["items"])),
            ("vote 3-cycles / edges the order overrules", f"{d['vote_graph_3cycles']} / {d['feedback_arcs_removed']}"),
            ("top model", report["leaderboard"][0]["model"] if report["leaderboard"] else "-")]
    if "recovery" in report:
        r = report["recovery"]
        rows.append(("recovery vs planted truth", f"tau-b {r['kendall_tau_b']}, top-1 {r['top1']}"))
    rows += [("seconds", f"{timings['total']:.1f}"), ("output", str(out))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
