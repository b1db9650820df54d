"""Data cards: Jinja2 templates shipped in ``mr2bench.data_cards``, filled from build outputs."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_CONFIGS = [
    {"config_name": "items", "data_files": [{"split": "test", "path": "items.parquet"}]},
    {"config_name": "full_rankings", "data_files": [{"split": "test", "path": "rankings.parquet"}]},
]
TASK = {"video": "video-text-to-text", "image": "image-text-to-text"}


def render_card(template_name: str, context: dict[str, Any]) -> str:
    """Render a template from the mr2bench.data_cards package; a missing variable is an error."""
    import jinja2

    source = resources.files("mr2bench.data_cards").joinpath(template_name).read_text(encoding="utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    return env.from_string(source).render(**context)


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def front_matter(report: dict[str, Any], configs: list[dict]) -> str:
    import yaml

    kind = report["kind"]
    meta = {
        "license": report.get("license") or ("apache-2.0" if report.get("synthetic") else "other"),
        "task_categories": [TASK.get(kind, "text-classification")],
        "size_categories": [size_category(report["counts"]["items"])],
        "pretty_name": f"MR^2Bench-{kind.capitalize()}" + (" (synthetic demo)" if report.get("synthetic") else ""),
        "tags": ["reward-modeling", "multimodal", "preference", "human-judgments", "benchmark", "mr2bench"]
                + (["synthetic"] if report.get("synthetic") else []),
        "configs": configs,
    }
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip("\n")


def benchmark_card(out_dir: Path, configs: list[dict] | None = None, *, embedded_images: bool = False) -> str:
    """The README.md card of a build folder (``configs`` = the Hub configs; default: items + full_rankings
    with paths relative to the build folder). ``embedded_images``: the staged Hub folder stores images
    inside the Parquet shards as ``datasets`` Image features rather than as paths."""
    out_dir = Path(out_dir)
    report = json.loads((out_dir / "build_report.json").read_text(encoding="utf-8"))
    configs = configs or DEFAULT_CONFIGS
    board = (out_dir / "leaderboard.md").read_text(encoding="utf-8") if (out_dir / "leaderboard.md").is_file() else ""
    plots = [p for p in ("leaderboard.png", "annotators.png", "rank_confidence.png") if (out_dir / p).is_file()]
    c = report["counts"]
    return render_card("benchmark.md.j2", {
        "front_matter": front_matter(report, configs), "r": report, "c": c, "d": report["diagnostics"],
        "kind": report["kind"], "media_field": report["kind"],
        "media_embedded": embedded_images and report["kind"] == "image", "leaderboard_md": board.rstrip("\n"),
        "plots": plots, "configs": configs, "recovery": report.get("recovery"),
        "ann": report["annotators"]["counts"], "ann_rule": report["annotators"]["rule"],
    })
