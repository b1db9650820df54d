"""Build MR^2Bench-Video or -Image: denoise human judgments into full rankings and 4-response items.

Video input: pairwise judgments (question_id, model_a, model_b, winner, ...). Image input: ranking
rows (prompt_id, model, rank, ...). With no INPUT, a seeded synthetic demo arena is built.
"""
from __future__ import annotations

import argparse
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
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["video", "image"], help="video = pairwise judgments, image = rankings")
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
    allowed = (PAIRWISE_REQUIRED + PAIRWISE_OPTIONAL) if args.kind == "video" else (RANKING_REQUIRED + RANKING_OPTIONAL)
    column_map = parse_column_map(args.column, allowed)
    cfg = BuildConfig(
        kind=args.kind, out=Path(args.out), seed=args.seed, variants=args.variants,
        thresholds=Thresholds(args.min_judgments, args.separation, args.tie_confidence, args.drop_annotator_below,
                              args.drop_disconnected),
        limit=args.limit,
        command=args.invocation,
        synthetic=args.input is None, license=args.license, media_root=args.media_root,
        value_map=parse_value_map(args.value, allowed))
    if args.kind == "video":
        from mr2bench.builders.video import build_video as builder
    else:
        from mr2bench.builders.image import build_image as builder
    report = builder(args.input, cfg, column_map, args.split)
    print(summary(report, cfg.out))
    return 0


def summary(report: dict, out) -> str:
    import json

    c, d = report["counts"], report["diagnostics"]
    timings = json.loads((out / "timings.json").read_text())
    rows = [("benchmark", report["benchmark"] + (" (SYNTHETIC demo)" if report["synthetic"] else "")),
            ("rows in / kept / quarantined", f"{c['rows_in']} / {c['kept']} / {c['quarantined']}"),
            ("quarantine reasons", ", ".join(f"{k} {v}" for k, v in c["quarantine_reasons"].items()) or "-"),
            ("annotators kept / down-weighted / dropped",
             " / ".join(str(report["annotators"]["counts"][k]) for k in ("kept", "down-weighted", "dropped"))),
            ("questions in / ranked / with items", f"{c['questions_in']} / {c['questions_ranked']} / {c['questions_with_items']}"),
            ("items", str(c["items"])),
            ("3-cycles before / after pruning", f"{d['ensemble_graph_3cycles_before']} / {d['ensemble_graph_3cycles_after']}"),
            ("top model", report["leaderboard"][0]["model"] if report["leaderboard"] else "-")]
    if "recovery" in report:
        r = report["recovery"]
        rows.append(("recovery vs planted truth", f"tau-b {r['kendall_tau_b']}, top-1 {r['top1']}"))
    rows += [("seconds", f"{timings['total']:.1f}"), ("output", str(out))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
