"""`mr2bench publish`: stage a benchmark build (or an evaluation run) as a Hub dataset, validate it, upload it."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from mr2bench.cli import add_shared

HELP = ("publish a build-benchmark folder (or an evaluate-model run) to the Hugging Face Hub\n\n"
        "Stages a folder that datasets.load_dataset reads without code (Parquet shards per config, images\n"
        "embedded, videos as files, a generated data card), checks that it loads back exactly as built, then\n"
        "uploads it as ONE commit. The token is read from the environment variable named by --token-env;\n"
        "HF_ENDPOINT selects another Hub.")
EPILOG = """examples:
  mr2bench publish runs/video --stage-only runs/video-hub          # stage + validate, no upload
  HF_TOKEN=hf_... mr2bench publish runs/video --repo-id me/mr2bench-video
  mr2bench publish runs/image --repo-id me/mr2bench-image --public --revision v1 --tag v1.0
  mr2bench publish --results runs/eval/length --repo-id me/mr2bench-results-length"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bench_dir", nargs="?", metavar="BENCH_DIR", help="a build-benchmark output folder")
    parser.add_argument("--results", metavar="RUN_DIR",
                        help="publish an evaluate-model run folder OUT/<model> instead of a benchmark")
    parser.add_argument("--repo-id", metavar="ORG/NAME", help="Hub dataset repo (required unless --stage-only)")
    vis = parser.add_mutually_exclusive_group()
    vis.add_argument("--private", dest="private", action="store_true", default=True,
                     help="create the repo private (default; an existing repo keeps its visibility)")
    vis.add_argument("--public", dest="private", action="store_false", help="create the repo public")
    parser.add_argument("--revision", metavar="BRANCH", default=None,
                        help="branch to commit to, created from main if missing (default: main)")
    parser.add_argument("--tag", metavar="TAG", default=None, help="tag the new commit")
    parser.add_argument("--stage-only", metavar="STAGE_DIR", default=None,
                        help="write and validate the Hub folder here, upload nothing")
    parser.add_argument("--token-env", metavar="VAR", default="HF_TOKEN",
                        help="environment variable holding the write token (default: HF_TOKEN)")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="give up when the Hub sends nothing for S seconds (per request; default: 300)")
    add_shared(parser, "log-level")


def _stage(args: argparse.Namespace, stage_dir: Path):
    """Stage + validate; returns (staged object, commit message, commit description)."""
    if args.results:
        from mr2bench.hub.stage_run import stage_results, validate_results_stage

        staged = stage_results(args.results, stage_dir, repo_id=args.repo_id)
        validate_results_stage(staged)
        print(f"staged {staged.stage_dir}: evaluation of {staged.model} on {len(staged.benchmarks)} "
              f"benchmark(s): {', '.join(staged.benchmarks)}; run {staged.run_hash[:12]}")
        message = f"mr2bench results: {staged.model} (run {staged.run_hash[:12]})"
        description = f"run hash sha256:{staged.run_hash}\nbenchmarks: {', '.join(staged.benchmarks)}"
        return staged, message, description
    from mr2bench.hub.stage import stage_benchmark
    from mr2bench.hub.validate import validate_benchmark_stage

    staged = stage_benchmark(args.bench_dir, stage_dir)
    validate_benchmark_stage(staged.stage_dir, staged.build_dir, staged.card_configs)
    rows = ", ".join(f"{c.config_name} {c.num_rows} rows in {len(c.shards)} shard(s)" for c in staged.configs)
    print(f"staged {staged.stage_dir}: {rows}; media {staged.media_kind or 'none'}; "
          f"build {staged.build_hash[:12]}; validated (load_dataset round trip + card)")
    message = f"mr2bench benchmark build {staged.build_hash[:12]}"
    description = (f"build hash sha256:{staged.build_hash}\ninput hash {staged.input_hash or 'not recorded'}\n"
                   + "\n".join(f"{c.config_name}: {c.num_rows} rows" for c in staged.configs))
    return staged, message, description


def run(args: argparse.Namespace) -> int:
    import logging

    from mr2bench.hub.upload import UploadError, check_repo_id, read_token, upload_stage
    from mr2bench.schema import DataError

    if args.log_level != "debug":   # one INFO line per HTTP request drowns the summary; debug keeps them
        for name in ("httpx2", "httpcore2"):
            logging.getLogger(name).setLevel(logging.WARNING)

    if bool(args.bench_dir) == bool(args.results):
        raise DataError("give exactly one of BENCH_DIR or --results RUN_DIR", field="BENCH_DIR")
    if args.stage_only is None:
        if not args.repo_id:
            raise DataError("--repo-id ORG/NAME is required to upload (or use --stage-only STAGE_DIR)",
                            field="--repo-id")
        check_repo_id(args.repo_id)
        try:
            token = read_token(args.token_env)   # fail before any staging work
        except UploadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    elif args.repo_id:
        check_repo_id(args.repo_id)

    if args.stage_only is not None:
        _stage(args, Path(args.stage_only))
        print("stage only: nothing uploaded")
        return 0
    with tempfile.TemporaryDirectory(prefix="mr2bench-publish-") as tmp:
        staged, message, description = _stage(args, Path(tmp) / "stage")
        try:
            pub = upload_stage(staged.stage_dir, args.repo_id, token=token, commit_message=message,
                               commit_description=description, private=args.private,
                               revision=args.revision, tag=args.tag, timeout_s=args.timeout)
        except UploadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"published {args.repo_id}@{pub.revision}: {pub.added} file(s), {pub.deleted} stale file(s) removed"
          + (f", tagged {pub.tag}" if pub.tag else ""))
    print(pub.commit_url)
    return 0
