"""Stage an evaluation run folder (``OUT/<model>`` from evaluate-model) as a Hub dataset folder.

    README.md                       card: leaderboard table, per-benchmark metrics, provenance
    <benchmark>/samples.jsonl       per-item records, one ``datasets`` config per benchmark
    <benchmark>/results.json        metrics + provenance as evaluate-model wrote them
    summary.json, leaderboard.md, *.png   copied unchanged
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from ..jsonl import read_json
from ..schema import DataError
from .stage import EXTRA_SUFFIXES, SPLIT, folder_digest, prepare_stage_dir
from .validate import RESULTS_SECTIONS, check_card_text, quiet_datasets

RUN_FILES = ("samples.jsonl", "results.json")
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class ResultsStage:
    stage_dir: Path
    run_dir: Path
    model: str
    benchmarks: tuple[str, ...]
    run_hash: str                       # sha256 over the run's samples + results files
    configs: tuple[dict[str, Any], ...]


def find_benchmarks(run_dir: Path) -> list[str]:
    """Benchmark sub-folders of a run: those with results.json (samples.jsonl must sit beside it)."""
    names = sorted(p.parent.name for p in run_dir.glob("*/results.json"))
    if not names:
        raise DataError("no <benchmark>/results.json inside: is this an evaluate-model OUT/<model> folder?",
                        file=str(run_dir))
    for name in names:
        if not (run_dir / name / "samples.jsonl").is_file():
            raise DataError("samples.jsonl missing beside results.json", file=str(run_dir / name))
    return names


def run_extras(run_dir: Path) -> dict[str, Path]:
    """Top-level files that travel with the run: summary.json, the model's leaderboard.md / .png, ..."""
    return {p.name: p for p in sorted(run_dir.iterdir())
            if p.is_file() and p.suffix.lower() in EXTRA_SUFFIXES and p.name != "README.md"}


def _text(value: Any) -> str:
    if value is None or value == "" or value == {} or value == []:
        return NOT_RECORDED
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
    return str(value)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return _text(value)


def _ci(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"[{value[0]:.4f}, {value[1]:.4f}]"
    if isinstance(value, dict) and {"low", "high"} <= value.keys():
        return _ci([value["low"], value["high"]])
    return _text(value)


def _model_name(results: list[dict[str, Any]], run_dir: Path) -> str:
    for r in results:
        m = r.get("model")
        if isinstance(m, dict):
            m = m.get("spec") or m.get("name")
        if isinstance(m, str) and m:
            return m
    return run_dir.name


def results_context(run_dir: Path, benchmarks: list[str], repo_id: str | None) -> dict[str, Any]:
    """Everything the results card states, taken from the run's own files (pure apart from reading them)."""
    results = [read_json(run_dir / b / "results.json") for b in benchmarks]
    model = _model_name(results, run_dir)
    rows, provenance = [], []
    for name, r in zip(benchmarks, results):
        primary = r.get("primary_metric")
        metrics = r.get("metrics") or {}
        if primary is None or primary not in metrics:
            raise DataError(f"primary metric {primary!r} not among metrics {sorted(metrics)}",
                            field="primary_metric", file=str(run_dir / name / "results.json"))
        rows.append({"name": name, "version": _text(r.get("benchmark_version")), "primary_metric": primary,
                     "value": _number(metrics[primary]), "ci95": _ci(r.get("ci95")),
                     "n_items": _text(r.get("n_items")), "n_scored": _text(r.get("n_scored")),
                     "n_failed": _text(r.get("n_failed")), "n_parse_failures": _text(r.get("n_parse_failures", 0))})
        provenance.append({"benchmark": name, "command": _text(r.get("command")), "seed": _text(r.get("seed")),
                           "model": _text(r.get("model") if isinstance(r.get("model"), str) else model),
                           "permutations": _text(r.get("permutations", 1)),
                           "schema_version": _text(r.get("schema_version")), "git_sha": _text(r.get("git_sha")),
                           "packages": _text(r.get("packages"))})
    extras = run_extras(run_dir)
    board = extras.get("leaderboard.md")
    leaderboard = board.read_text(encoding="utf-8").strip() if board else ""
    # Headings inside the copied table file would split the card's own sections: keep only table lines.
    leaderboard = "\n".join(line for line in leaderboard.splitlines() if not line.lstrip().startswith("#")).strip()
    configs = [{"config_name": b, "data_files": [{"split": SPLIT, "path": f"{b}/samples.jsonl"}]}
               for b in benchmarks]
    n_items = sum(int(r.get("n_items") or 0) for r in results)
    front = {
        "pretty_name": f"mr2bench evaluation: {model}",
        "license": "apache-2.0",
        "task_categories": ["visual-question-answering", "video-text-to-text"],
        "size_categories": [_size_category(n_items)],
        "tags": ["mr2bench", "reward-model", "evaluation", "multimodal", *benchmarks],
        "configs": configs,
    }
    plots = sorted(n for n in extras if n.endswith(".png"))
    others = sorted(n for n in extras if not n.endswith(".png"))
    return {
        "front_matter": yaml.safe_dump(front, sort_keys=False, allow_unicode=True),
        "front": front, "pretty_name": front["pretty_name"], "model": model, "benchmarks": rows,
        "leaderboard": leaderboard or "(no leaderboard.md in the run folder; per-benchmark table below)",
        "plots": plots, "other_files": others, "provenance": provenance,
        "repo_hint": repo_id or "ORG/NAME", "mr2bench_version": __version__, "configs": configs,
    }


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def stage_results(run_dir: str | Path, stage_dir: str | Path, *, repo_id: str | None = None) -> ResultsStage:
    from ..cards import render_card

    run_dir, stage_dir = Path(run_dir), Path(stage_dir)
    if not run_dir.is_dir():
        raise DataError("evaluation run folder not found", file=str(run_dir))
    benchmarks = find_benchmarks(run_dir)
    ctx = results_context(run_dir, benchmarks, repo_id)
    prepare_stage_dir(stage_dir)
    names = []
    for b in benchmarks:
        (stage_dir / b).mkdir()
        for f in RUN_FILES:
            shutil.copyfile(run_dir / b / f, stage_dir / b / f)
            names.append(f"{b}/{f}")
    for name, src in run_extras(run_dir).items():
        shutil.copyfile(src, stage_dir / name)
    (stage_dir / "README.md").write_text(render_card("results.md.j2", ctx), encoding="utf-8")
    refuse_secrets(stage_dir, [*names, *run_extras(run_dir), "README.md"], run_dir)
    return ResultsStage(stage_dir=stage_dir, run_dir=run_dir, model=ctx["model"], benchmarks=tuple(benchmarks),
                        run_hash=folder_digest(run_dir, names), configs=tuple(ctx["configs"]))


def refuse_secrets(stage_dir: Path, names: list[str], run_dir: Path) -> None:
    """The write edge: evaluate-model scrubs at the source, so a credential here came from elsewhere."""
    from ..secrets import has_secret

    for name in names:
        path = stage_dir / name
        if path.suffix.lower() == ".png" or not has_secret(path.read_text(encoding="utf-8", errors="replace")):
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        row = next((i for i, line in enumerate(lines, 1) if has_secret(line)), None)
        raise DataError("holds what looks like a credential (an API key, a token, or a URL with user info or a "
                        "key); nothing was uploaded. Remove it, or rerun evaluate-model, which scrubs them",
                        file=str(run_dir / name if (run_dir / name).is_file() else path), row=row)


def validate_results_stage(staged: ResultsStage) -> None:
    """Card checks plus a load of every benchmark's samples through ``datasets``; DataError lists problems."""
    import tempfile

    import datasets

    from ..jsonl import read_jsonl

    readme = (staged.stage_dir / "README.md").read_text(encoding="utf-8")
    results = [read_json(staged.stage_dir / b / "results.json") for b in staged.benchmarks]
    mention = [_text(r.get("command")) for r in results] + [f"Seed: {_text(r.get('seed'))}" for r in results]
    problems = check_card_text(readme, required_sections=RESULTS_SECTIONS,
                               must_mention={"provenance": mention}, expected_configs=list(staged.configs),
                               stage_dir=staged.stage_dir)
    with tempfile.TemporaryDirectory(prefix="mr2bench-validate-") as cache, quiet_datasets():
        for b in staged.benchmarks:
            want = [row["id"] for row in read_jsonl(staged.stage_dir / b / "samples.jsonl")]
            try:
                ds = datasets.load_dataset(str(staged.stage_dir), b, split=SPLIT, cache_dir=cache)
            except Exception as exc:  # the finding is that it does not load
                problems.append(f"load_dataset(stage, {b!r}) failed: {type(exc).__name__}: {exc}")
                continue
            if list(ds["id"]) != want:
                problems.append(f"{b}: loaded ids differ from samples.jsonl ({ds.num_rows} vs {len(want)} rows)")
    if problems:
        raise DataError("staged results are not publishable:\n  - " + "\n  - ".join(problems),
                        file=str(staged.stage_dir))
