"""Check a staged Hub folder before anything is uploaded.

Two checks, both collecting every problem rather than stopping at the first:
- round trip: ``datasets.load_dataset(STAGE_DIR, CONFIG)`` returns every built row and feature unchanged
  (images compared byte for byte, video paths resolve to copies identical to the build's files);
- card: the README's YAML parses with a loader that rejects duplicate keys, carries the metadata the Hub
  needs, its ``configs`` name the staged shards, and the body has every required section with real values.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ..schema import DataError

REQUIRED_YAML = ("license", "task_categories", "size_categories", "pretty_name", "tags", "configs")
# section -> words one of its headings must contain (case-insensitive)
BENCHMARK_SECTIONS = {
    "summary": ("summary",),
    "structure": ("structure", "fields"),
    "construction": ("construction", "provenance"),
    "denoising statistics": ("denois",),
    "intended use": ("intended use",),
    "limitations": ("limitation",),
    "citation": ("citation",),
}
RESULTS_SECTIONS = {
    "leaderboard": ("leaderboard", "results"),
    "provenance": ("provenance", "reproduc"),
}
# Text that means someone forgot to fill a value in (or a template did not render).
PLACEHOLDERS = re.compile(r"\{\{|\}\}|\{%|%\}|\bTODO\b|\bTBD\b|\bFIXME\b|\bXXX\b|<placeholder>|lorem ipsum"
                          r"|\bUndefined\b|\[more information needed\]", re.IGNORECASE)


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml_strict(text: str) -> Any:
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass


def split_card(readme: str) -> tuple[dict[str, Any], str]:
    """(front matter, body) of a card; malformed front matter is a DataError naming the line."""
    if not readme.startswith("---\n"):
        raise DataError("card does not start with a '---' YAML front matter block", file="README.md")
    end = readme.find("\n---\n", 4)
    if end < 0:
        raise DataError("card front matter has no closing '---'", file="README.md")
    try:
        meta = load_yaml_strict(readme[4:end + 1])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"invalid YAML front matter: {exc}", file="README.md",
                        row=None if mark is None else mark.line + 2) from None
    if not isinstance(meta, dict):
        raise DataError("front matter must be a YAML mapping", file="README.md")
    return meta, readme[end + 5:]


def sections(body: str) -> dict[str, str]:
    """Markdown heading (lower-cased) -> text up to the next heading of the same or higher level."""
    out: dict[str, str] = {}
    lines = body.split("\n")
    heads = [(i, len(m.group(1)), m.group(2).strip().lower())
             for i, line in enumerate(lines) if (m := re.match(r"^(#{1,6})\s+(.*)$", line))]
    for k, (i, level, title) in enumerate(heads):
        stop = next((j for j, lv, _ in heads[k + 1:] if lv <= level), len(lines))
        out[title] = "\n".join(lines[i + 1:stop])
    return out


def find_section(secs: dict[str, str], words: Sequence[str]) -> str | None:
    for title, text in secs.items():
        if any(w in title for w in words):
            return text
    return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def check_card_text(readme: str, *, required_sections: dict[str, tuple[str, ...]],
                    must_mention: dict[str, Iterable[str]], expected_configs: list[dict[str, Any]] | None,
                    stage_dir: Path | None = None) -> list[str]:
    """Every problem with a card; ``must_mention`` maps a section to values it must contain verbatim."""
    problems: list[str] = []
    try:
        meta, body = split_card(readme)
    except DataError as exc:
        return [str(exc)]
    for key in REQUIRED_YAML:
        if key not in meta:
            problems.append(f"YAML front matter lacks '{key}'")
        elif _empty(meta[key]):
            problems.append(f"YAML front matter '{key}' is empty")
    if expected_configs is not None and "configs" in meta:
        got = meta["configs"]
        if got != expected_configs:
            problems.append(f"YAML configs {got!r} differ from the staged shards {expected_configs!r}")
    if stage_dir is not None and isinstance(meta.get("configs"), list):
        for cfg in meta["configs"]:
            for df in (cfg or {}).get("data_files") or []:
                paths = df.get("path")
                for pattern in [paths] if isinstance(paths, str) else paths or []:
                    if not list(stage_dir.glob(pattern)):
                        problems.append(f"config {cfg.get('config_name')!r}: data_files {pattern!r} matches no file")
    for m in PLACEHOLDERS.finditer(readme):
        line = readme.count("\n", 0, m.start()) + 1
        problems.append(f"README.md line {line}: placeholder or unrendered template text {m.group(0)!r}")
    secs = sections(body)
    for name, words in required_sections.items():
        text = find_section(secs, words)
        if text is None:
            problems.append(f"card has no '{name}' section (a heading containing one of {list(words)})")
        elif not re.search(r"\w", text):
            problems.append(f"card section '{name}' is empty")
    for name, values in must_mention.items():
        text = find_section(secs, required_sections[name]) or ""
        for value in values:
            if str(value) not in text:
                problems.append(f"card section '{name}' does not state {value!r}")
    return problems


def benchmark_card_problems(stage_dir: Path, report: dict[str, Any], configs: list[dict[str, Any]],
                            fields: dict[str, Sequence[str]]) -> list[str]:
    """Card checks for a staged benchmark: required sections, every field, the build's real provenance."""
    from .stage import find_input_hash

    readme = (stage_dir / "README.md").read_text(encoding="utf-8")
    provenance: list[str] = []
    problems: list[str] = []
    for label, value in (("seed", report.get("seed")), ("input hash", find_input_hash(report)),
                         ("command", report.get("command")),
                         ("version", report.get("mr2bench_version", report.get("version")))):
        if _empty(value):
            problems.append(f"build_report.json has no {label}: the card cannot state it")
        else:
            provenance.append(value if isinstance(value, str) else str(value))
    all_fields = sorted({f for names in fields.values() for f in names})
    problems += check_card_text(readme, required_sections=BENCHMARK_SECTIONS,
                                must_mention={"structure": all_fields, "construction": provenance},
                                expected_configs=configs, stage_dir=stage_dir)
    return problems


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """No "Generating test split" bars while validating: the command prints one summary line instead."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (a missing CI is NaN in both the build and the load)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def roundtrip_problems(stage_dir: Path, build_dir: Path, *, limit: int = 20) -> list[str]:
    """Load every staged config with ``datasets.load_dataset`` and compare it with the build, row by row."""
    import tempfile

    from .stage import CONFIG_SOURCES

    problems: list[str] = []
    # A private cache: validation must not read (or leave) stale Arrow files in the user's HF cache.
    with tempfile.TemporaryDirectory(prefix="mr2bench-validate-") as cache, quiet_datasets():
        for config, source in CONFIG_SOURCES.items():
            problems += _compare_config(stage_dir, build_dir, config, source, cache, limit - len(problems))
            if len(problems) >= limit:
                return problems + [f"(stopped after {limit} problems)"]
    return problems


def _compare_config(stage_dir: Path, build_dir: Path, config: str, source: str, cache: str,
                    limit: int) -> list[str]:
    import datasets
    import pyarrow.parquet as pq

    from ..media import resolve_inside
    from ..jsonl import file_sha256
    from .stage import SPLIT, expected_features, media_column

    built = pq.read_table(build_dir / source)
    media = media_column(built.column_names) if config == "items" else None
    want_features = expected_features(built, media)
    try:
        ds = datasets.load_dataset(str(stage_dir), config, split=SPLIT, cache_dir=cache)
    except Exception as exc:  # any failure to load is the finding
        return [f"load_dataset({str(stage_dir)!r}, {config!r}) failed: {type(exc).__name__}: {exc}"]
    if ds.features != want_features:
        return [f"{config}: features {ds.features} differ from the build's {want_features}"]
    if ds.num_rows != built.num_rows:
        return [f"{config}: {ds.num_rows} rows loaded, {built.num_rows} built"]
    if media == "image":
        ds = ds.cast_column("image", datasets.Image(decode=False))
    problems: list[str] = []
    for row, (got, want) in enumerate(zip(ds.to_list(), built.to_pylist()), start=1):
        if media == "image":
            got_img, rel = got.pop("image"), want.pop("image")
            rel = rel.get("path") if isinstance(rel, dict) else rel
            if rel is None:
                ok = got_img is None
            else:
                src = resolve_inside(build_dir, rel).read_bytes()
                ok = got_img is not None and got_img["bytes"] == src and got_img["path"] == rel
            if not ok:
                problems.append(f"{config} row {row}: image differs from the built file {rel!r}")
        if media == "video" and want.get("video"):
            copy, orig = stage_dir / want["video"], build_dir / want["video"]
            if not copy.exists():
                problems.append(f"{config} row {row}: video {want['video']!r} missing from the stage")
            elif copy.is_file() and file_sha256(copy) != file_sha256(orig):
                problems.append(f"{config} row {row}: video {want['video']!r} differs from the build")
        if not _same(got, want):
            diff = sorted(k for k in want if not _same(got.get(k), want[k]))
            problems.append(f"{config} row {row}: fields {diff} differ from the build")
        if len(problems) >= limit:
            break
    return problems


def validate_benchmark_stage(stage_dir: str | Path, build_dir: str | Path,
                             configs: list[dict[str, Any]]) -> None:
    """Raise DataError listing every problem; silent when the stage is ready to publish."""
    import pyarrow.parquet as pq

    from .stage import CONFIG_SOURCES, read_build_report

    stage_dir, build_dir = Path(stage_dir), Path(build_dir)
    report = read_build_report(build_dir)
    fields = {cfg: pq.read_schema(build_dir / src).names for cfg, src in CONFIG_SOURCES.items()}
    problems = benchmark_card_problems(stage_dir, report, configs, fields)
    problems += roundtrip_problems(stage_dir, build_dir)
    if problems:
        raise DataError("staged folder is not publishable:\n  - " + "\n  - ".join(problems), file=str(stage_dir))
