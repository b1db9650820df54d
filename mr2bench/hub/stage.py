"""Stage a build-benchmark folder as a Hub dataset folder that ``datasets.load_dataset`` reads without code.

Layout written into STAGE_DIR (same build + same code -> byte-identical files):

    README.md                               card from data_cards/ (YAML ``configs`` point at the shards)
    data/items/test-00000-of-0000N.parquet  4-response items; images embedded as ``Image`` (bytes + path)
    data/full_rankings/test-....parquet     one row per (question_id, model)
    <video paths as built>                  videos copied unchanged; the ``video`` column keeps the path
    build_report.json, quarantine.jsonl, timings.json, leaderboard.*, *.png, plots/  (provenance)

pyarrow and datasets are imported inside the functions: the CLI imports this module lazily anyway.
"""
from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..build_folder import verify_build_folder
from ..jsonl import file_sha256, read_json
from ..media import resolve_inside
from ..schema import DataError

SPLIT = "test"
ITEMS, RANKINGS = "items", "full_rankings"
# build file -> config it becomes
CONFIG_SOURCES = {ITEMS: "items.parquet", RANKINGS: "rankings.parquet"}
MEDIA_COLUMNS = ("image", "video")
# Hub guidance: keep Parquet shards well under 1 GB so the viewer and streaming stay fast.
MAX_SHARD_BYTES = 256 * 1024 * 1024
# Top-level build files that travel with the data (provenance, leaderboard, plots).
EXTRA_SUFFIXES = (".json", ".jsonl", ".csv", ".md", ".png", ".txt")
EXTRA_DIRS = ("plots",)
# manifest.json seals the build folder's own files; the stage is checked by hub.validate instead
NOT_COPIED = ("README.md", "manifest.json", *CONFIG_SOURCES.values())


@dataclass(frozen=True)
class StagedConfig:
    config_name: str
    shards: tuple[str, ...]          # paths relative to the stage folder
    num_rows: int

    def card_entry(self) -> dict[str, Any]:
        """The README ``configs`` entry (one split; a glob over this config's shards)."""
        return {"config_name": self.config_name,
                "data_files": [{"split": SPLIT, "path": f"data/{self.config_name}/{SPLIT}-*.parquet"}]}


@dataclass(frozen=True)
class StageResult:
    stage_dir: Path
    build_dir: Path
    media_kind: str | None                  # "image", "video" or None (text only)
    configs: tuple[StagedConfig, ...]
    build_hash: str                         # sha256 of the build's data files + report
    input_hash: str | None
    copied: tuple[str, ...] = field(default=())   # extra files and videos, relative paths

    @property
    def card_configs(self) -> list[dict[str, Any]]:
        return [c.card_entry() for c in self.configs]


def plan_shards(row_bytes: Sequence[int], max_bytes: int = MAX_SHARD_BYTES) -> list[tuple[int, int]]:
    """Split rows into consecutive [start, stop) ranges of at most ``max_bytes`` each (at least one row)."""
    ranges: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, n in enumerate(row_bytes):
        if i > start and size + n > max_bytes:
            ranges.append((start, i))
            start, size = i, 0
        size += n
    ranges.append((start, len(row_bytes)))
    return ranges


def shard_name(config: str, index: int, total: int) -> str:
    return f"data/{config}/{SPLIT}-{index:05d}-of-{total:05d}.parquet"


def folder_digest(root: Path, names: Sequence[str]) -> str:
    """sha256 over (relative path, content digest) of the named files, in sorted order."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode() + b"\0" + file_sha256(root / name).encode() + b"\n")
    return h.hexdigest()


def build_hash(build_dir: Path) -> str:
    """Identity of a build: its two data files and its report (what a reader would re-derive)."""
    names = [n for n in (*CONFIG_SOURCES.values(), "build_report.json") if (build_dir / n).is_file()]
    return folder_digest(build_dir, names)


def read_build_report(build_dir: Path) -> dict[str, Any]:
    path = build_dir / "build_report.json"
    if not path.is_file():
        raise DataError("build folder has no build_report.json (run build-benchmark first)", file=str(build_dir))
    return read_json(path)


def find_input_hash(report: dict[str, Any]) -> str | None:
    """The builder's input hash, wherever the report keeps it (top level or under ``input``)."""
    for key in ("input_hash", "input_sha256"):
        if isinstance(report.get(key), str):
            return report[key]
    inp = report.get("input")
    if isinstance(inp, dict):
        for key in ("hash", "sha256", "input_hash"):
            if isinstance(inp.get(key), str):
                return inp[key]
    return None


def media_column(names: Sequence[str]) -> str | None:
    found = [c for c in MEDIA_COLUMNS if c in names]
    if len(found) > 1:
        raise DataError(f"items have both {found}: a benchmark is image or video, not both", field="items")
    return found[0] if found else None


def _read_table(path: Path):
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError("missing (run build-benchmark first)", file=str(path))
    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"unreadable Parquet: {exc}", file=str(path)) from None


def _media_path(value: Any, row: int, column: str, file: str) -> str | None:
    """The relative path a media cell holds: a string, or a ``{"path": ...}`` struct (already-built Image)."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("path")
        if value is None:
            return None
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"must be a relative path, got {value!r}", field=column, row=row, file=file)
    return value


def _resolve_media(build_dir: Path, rel: str, row: int, column: str, file: str) -> Path:
    try:
        path = resolve_inside(build_dir, rel)
    except DataError as exc:
        raise exc.located(file=file, row=row) from None
    if not path.exists():
        raise DataError(f"{column} file not found: {rel}", field=column, row=row, file=file)
    return path


def _embed_images(table, build_dir: Path, file: str):
    """Replace the ``image`` path column with ``{"bytes", "path"}`` structs (the ``datasets.Image`` storage)."""
    import pyarrow as pa

    col = table.column("image").to_pylist()
    cells: list[dict[str, Any] | None] = []
    for row, value in enumerate(col, start=1):
        if isinstance(value, dict) and value.get("bytes") is not None:
            cells.append({"bytes": value["bytes"], "path": value.get("path")})
            continue
        rel = _media_path(value, row, "image", file)
        if rel is None:
            cells.append(None)
            continue
        path = _resolve_media(build_dir, rel, row, "image", file)
        cells.append({"bytes": path.read_bytes(), "path": rel})
    storage = pa.array(cells, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    return table.set_column(table.schema.get_field_index("image"), "image", storage)


def _copy_videos(table, build_dir: Path, stage_dir: Path, file: str) -> list[str]:
    """Copy each referenced video (file or frame folder) to the same relative path in the stage."""
    copied: list[str] = []
    for row, value in enumerate(table.column("video").to_pylist(), start=1):
        rel = _media_path(value, row, "video", file)
        if rel is None:
            continue
        src = _resolve_media(build_dir, rel, row, "video", file)
        dst = stage_dir / Path(rel)
        if dst.exists():
            continue  # several items share one question's video
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
            copied.extend(sorted(str(p.relative_to(stage_dir).as_posix()) for p in dst.rglob("*") if p.is_file()))
        else:
            shutil.copyfile(src, dst)
            copied.append(Path(rel).as_posix())
    return copied


def _row_bytes(table, media: str | None) -> list[int]:
    """Approximate bytes per row: media payload plus an even share of everything else."""
    n = table.num_rows
    if n == 0:
        return []
    if media == "image":
        sizes = [0 if c is None or c.get("bytes") is None else len(c["bytes"])
                 for c in table.column("image").to_pylist()]
        rest = table.drop_columns(["image"]).nbytes
    else:
        sizes, rest = [0] * n, table.nbytes
    return [s + rest // n for s in sizes]


def expected_features(table, media: str | None):
    """The ``datasets.Features`` a config is published with: the built schema, images as ``Image``."""
    import datasets

    features = datasets.Features.from_arrow_schema(table.schema)
    if media == "image":
        features["image"] = datasets.Image()
    return features


def _write_config(table, features, stage_dir: Path, config: str, max_bytes: int, media: str | None) -> StagedConfig:
    import pyarrow.parquet as pq

    schema = features.arrow_schema  # carries the "huggingface" features metadata
    table = table.cast(schema)
    ranges = plan_shards(_row_bytes(table, media), max_bytes) if table.num_rows else [(0, 0)]
    names = []
    for i, (start, stop) in enumerate(ranges):
        name = shard_name(config, i, len(ranges))
        out = stage_dir / name
        out.parent.mkdir(parents=True, exist_ok=True)
        # Fixed writer options: same rows -> same bytes (no timestamps in Parquet metadata).
        pq.write_table(table.slice(start, stop - start), out, compression="zstd", write_statistics=True)
        names.append(name)
    return StagedConfig(config, tuple(names), table.num_rows)


def _copy_extras(build_dir: Path, stage_dir: Path) -> list[str]:
    copied = []
    for src in sorted(build_dir.iterdir()):
        if src.is_file() and src.suffix.lower() in EXTRA_SUFFIXES and src.name not in NOT_COPIED:
            shutil.copyfile(src, stage_dir / src.name)
            copied.append(src.name)
    for d in EXTRA_DIRS:
        if (build_dir / d).is_dir():
            shutil.copytree(build_dir / d, stage_dir / d)
            copied.extend(p.relative_to(stage_dir).as_posix() for p in sorted((stage_dir / d).rglob("*"))
                          if p.is_file())
    return copied


def prepare_stage_dir(stage_dir: Path) -> None:
    """Refuse to mix a new stage with old files: the folder must be new or empty."""
    if stage_dir.exists():
        if not stage_dir.is_dir():
            raise DataError("stage path exists and is not a folder", file=str(stage_dir))
        if any(stage_dir.iterdir()):
            raise DataError("stage folder is not empty; remove it or pick a new one", file=str(stage_dir))
    stage_dir.mkdir(parents=True, exist_ok=True)


def stage_benchmark(build_dir: str | Path, stage_dir: str | Path, *,
                    max_shard_bytes: int = MAX_SHARD_BYTES) -> StageResult:
    """Turn a build-benchmark folder into a Hub dataset folder; returns what was written."""
    from ..cards import benchmark_card  # issue 3's renderer (data_cards/benchmark.md.j2)

    build_dir, stage_dir = Path(build_dir), Path(stage_dir)
    verify_build_folder(build_dir)   # refuse a missing, interrupted, failed or modified build (its manifest)
    report = read_build_report(build_dir)
    tables = {cfg: _read_table(build_dir / src) for cfg, src in CONFIG_SOURCES.items()}
    items_file = str(build_dir / CONFIG_SOURCES[ITEMS])
    media = media_column(tables[ITEMS].column_names)
    prepare_stage_dir(stage_dir)

    copied: list[str] = []
    items = tables[ITEMS]
    if media == "image":
        items = _embed_images(items, build_dir, items_file)
    elif media == "video":
        copied += _copy_videos(items, build_dir, stage_dir, items_file)
    staged = [
        _write_config(items, expected_features(tables[ITEMS], media), stage_dir, ITEMS, max_shard_bytes, media),
        _write_config(tables[RANKINGS], expected_features(tables[RANKINGS], None), stage_dir, RANKINGS,
                      max_shard_bytes, None),
    ]
    copied += _copy_extras(build_dir, stage_dir)
    result = StageResult(stage_dir=stage_dir, build_dir=build_dir, media_kind=media, configs=tuple(staged),
                         build_hash=build_hash(build_dir), input_hash=find_input_hash(report),
                         copied=tuple(copied))
    card = benchmark_card(stage_dir, result.card_configs, embedded_images=media == "image")
    (stage_dir / "README.md").write_text(card, encoding="utf-8")
    return result
