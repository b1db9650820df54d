"""Shared loader plumbing: rows from a local folder in the Hub layout (a Hub snapshot is one, see
``mr2bench.hub.source``) or ``datasets.load_dataset``, tolerant field lookup, field maps, the layout
check, media from paths / bytes / Hub Image features, unique item ids.

A local folder is read with pyarrow / json directly (streaming, no Arrow cache): files are searched in
this order: the loader's preferred files (the official ones, e.g. MM-RLHF ``mm_reward_bench.jsonl``,
Multimodal RewardBench ``all_data.json``), the README's ``configs`` entry for the spec's config and split
(as the Hub reads it: a published MR^2Bench folder holds ``items`` and ``full_rankings``),
``data/**/<split>-*.parquet``, any other ``*.parquet`` under ``data/`` or the root, then ``*.jsonl`` /
``*.json`` at the root.

Field maps (``--field NAME:canonical=theirs``) rename a column before the converter reads it. A folder
whose first row lacks every layout the benchmark reads is refused once (``LayoutError``), naming the
missing fields and the columns found, instead of failing every row.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from mr2bench.media import resolve_inside
from mr2bench.registry import BenchmarkSpec
from mr2bench.schema import BenchmarkItem, DataError, Media

Row = Mapping[str, Any]


def pick(row: Row, *names: str, default: Any = None) -> Any:
    """The first present, non-None field among ``names`` (tolerant schema mapping)."""
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    return default


def short_hash(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:8]


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=1024):
        yield from batch.to_pylist()


def _json_rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for i, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"invalid JSON: {exc.msg}", file=str(path), row=i) from None
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):  # {"data": [...]} or {"pairs": [...]}
        data = next((v for v in data.values() if isinstance(v, list)), [])
    yield from data


def card_configs(root: Path) -> list[dict[str, Any]]:
    """The ``configs`` list of a dataset folder's README YAML header (empty when there is none)."""
    readme = root / "README.md"
    if not readme.is_file():
        return []
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return []
    import yaml

    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except (yaml.YAMLError, IndexError):
        return []
    configs = meta.get("configs") if isinstance(meta, dict) else None
    return [c for c in configs or [] if isinstance(c, dict) and c.get("config_name")]


def config_files(root: Path, split: str, config: str | None) -> list[Path] | None:
    """The files the README's ``configs`` entry names for ``split``; None when the card declares none.

    Without a config name: the one called ``default`` or marked ``default: true``, or the only one."""
    configs = card_configs(root)
    if not configs:
        return None
    names = [str(c["config_name"]) for c in configs]
    if config is None:
        chosen = [c for c in configs if c["config_name"] == "default" or c.get("default")] or \
            (configs if len(configs) == 1 else [])
        if not chosen:
            raise DataError(f"{root} has several configs ({', '.join(names)}); name one with "
                            "--source NAME=HUB_ID:CONFIG", field="config")
        entry = chosen[0]
    else:
        entry = next((c for c in configs if c["config_name"] == config), None)
        if entry is None:
            raise DataError(f"no config {config!r} in {root / 'README.md'} (configs: {', '.join(names)})",
                            field="config")
    files = entry.get("data_files")
    if isinstance(files, str):
        patterns = [files]
    elif isinstance(files, list) and all(isinstance(f, str) for f in files):
        patterns = list(files)
    else:  # [{"split": ..., "path": str | [str]}]
        patterns = []
        for f in files or []:
            if isinstance(f, dict) and f.get("split") == split:
                patterns += [f["path"]] if isinstance(f.get("path"), str) else list(f.get("path") or [])
    found = sorted({p for pat in patterns for p in root.glob(pat) if p.is_file()})
    if not found:
        raise DataError(f"config {entry['config_name']!r} has no files for split {split!r} in {root}",
                        field="config")
    return found


def local_files(root: Path, split: str, prefer: Iterable[str] = (), config: str | None = None) -> list[Path]:
    """The data files of a local folder (see the module docstring for the search order)."""
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}", field="--data-dir")
    for name in prefer:
        if (root / name).is_file():
            return [root / name]
    from_card = config_files(root, split, config)
    if from_card is not None:
        return from_card
    data = root / "data"
    found = sorted(data.rglob(f"{split}-*.parquet")) if data.is_dir() else []
    found = found or (sorted(data.rglob("*.parquet")) if data.is_dir() else [])
    found = found or sorted(root.glob("*.parquet"))
    found = found or sorted(root.glob("*.jsonl")) or sorted(p for p in root.glob("*.json"))
    if not found:
        raise DataError(f"no data files (data/**/*.parquet, *.parquet, *.jsonl, *.json) in {root}",
                        field="--data-dir")
    return found


def iter_rows(data_dir: Path | None, spec: BenchmarkSpec, prefer: Iterable[str] = ()
              ) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(file label, row number, row) from the local folder or, without one, from the Hub."""
    rows = _hub_rows(spec) if data_dir is None else _local_rows(Path(data_dir), spec, prefer)
    if not spec.field_map:
        yield from rows
        return
    for label, i, row in rows:
        yield label, i, apply_field_map(row, spec.field_map)


def _local_rows(root: Path, spec: BenchmarkSpec, prefer: Iterable[str]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for path in local_files(root, spec.split, prefer, spec.config):
        reader = _parquet_rows if path.suffix == ".parquet" else _json_rows
        for i, row in enumerate(reader(path), start=1):
            yield str(path), i, row


# ---------------------------------------------------------------- field maps and the layout check
def parse_field(value: str) -> tuple[str, str, str]:
    """``NAME:canonical=theirs`` -> (benchmark, canonical, theirs)."""
    name, sep, rest = value.partition(":")
    canonical, sep2, theirs = rest.partition("=")
    if not (sep and sep2 and name and canonical and theirs):
        raise DataError(f"expected NAME:canonical=theirs (e.g. videorewardbench:chosen=response_a), got {value!r}",
                        field="--field")
    return name.strip(), canonical.strip(), theirs.strip()


def apply_field_map(row: Row, field_map: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Their column under our name (the original stays, so other lookups still see it)."""
    out = dict(row)
    for canonical, theirs in field_map:
        if theirs in row:
            out[canonical] = row[theirs]
    return out


class LayoutError(DataError):
    """The folder is not in the benchmark's layout: refused once, before any item is scored."""


def check_layout(row: Row, layouts: Sequence[Sequence[str]], benchmark: str, label: str) -> None:
    """The row must hold every field of at least one layout; otherwise one error naming the missing
    fields of the closest layout and the columns found."""
    if not layouts or not isinstance(row, Mapping):
        return
    missing = [[f for f in layout if f not in row or row[f] is None] for layout in layouts]
    if any(not m for m in missing):
        return
    closest = min(missing, key=len)
    read = " | ".join(", ".join(layout) for layout in layouts)
    raise LayoutError(f"{benchmark}: rows lack the required field(s) {', '.join(closest)} (layouts read: "
                      f"{read}); columns found: "
                      f"{', '.join(sorted(map(str, row))) or '(none)'}. Point --data-dir at a folder in the "
                      f"{benchmark} layout, or map a column with --field {benchmark}:{closest[0]}=THEIRS",
                      file=label, row=1)


def _hub_rows(spec: BenchmarkSpec) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """The real path: ``datasets.load_dataset(hub_id, split, revision)``; Image / Video features are
    kept undecoded (``{bytes, path}``) so both paths hand the converters the same row shapes."""
    import datasets

    ds = datasets.load_dataset(spec.hub_id, name=spec.config, split=spec.split, revision=spec.revision)
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
    for i, row in enumerate(ds, start=1):
        yield f"{spec.hub_id}@{spec.revision or 'main'}", i, row


def media_from(value: Any, kind: str) -> Media | None:
    """A path string, raw bytes, a Hub Image feature dict ``{bytes, path}`` or a PIL image -> Media."""
    if value is None or value == "":
        return None
    if isinstance(value, (bytes, bytearray)):
        return Media(kind=kind, data=bytes(value))
    if isinstance(value, str):
        return Media(kind=kind, path=value)
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return Media(kind=kind, data=bytes(value["bytes"]))
        if value.get("path"):
            return Media(kind=kind, path=str(value["path"]))
        return None
    if hasattr(value, "save"):  # a decoded PIL image (datasets with decode=True)
        import io

        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return Media(kind=kind, data=buf.getvalue())
    raise DataError(f"unsupported media value of type {type(value).__name__}", field=kind)


def check_path(root: Path | None, media: Media | None) -> None:
    """Reject a media path that escapes the dataset root when the item is made (not when scored)."""
    if media is not None and media.path is not None and root is not None:
        _inside(str(root), media.path)


@functools.lru_cache(maxsize=4096)
def _inside(root: str, rel: str) -> None:
    resolve_inside(root, rel)  # raises DataError (not cached) when the path escapes


class UniqueIds:
    """Suffix ``~2``, ``~3`` ... to ids seen before, so that no two items share an id."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, item_id: str) -> str:
        k = self.seen.get(item_id, 0) + 1
        self.seen[item_id] = k
        return item_id if k == 1 else f"{item_id}~{k}"


@dataclass(frozen=True)
class BadRow:
    """A source row that could not become an item: the evaluator records it as failed, never drops it."""

    id: str
    error: str
    category: str = ""


def converted(rows: Iterable[tuple[str, int, dict[str, Any]]], convert, limit: int | None,
              root: Path | None = None, *, layouts: Sequence[Sequence[str]] = (), benchmark: str = ""
              ) -> Iterator[BenchmarkItem | BadRow]:
    """Apply a row converter; a row it rejects becomes a ``BadRow`` whose error names file, row and
    field. The first row is checked against ``layouts`` (``LayoutError`` for the whole folder). Media
    paths are checked against ``root``. Stops after ``limit`` items."""
    unique = UniqueIds()
    n = 0
    first = True
    for label, i, row in rows:
        if limit is not None and n >= limit:
            return
        if first:
            check_layout(row, layouts, benchmark, label)
            first = False
        try:
            item = convert(row, index=i)
            if item is not None:
                for m in item.media:
                    check_path(root, m)
        except DataError as exc:
            raw_id = pick(row, "id", "ID", "item_id", default=None) if isinstance(row, Mapping) else None
            n += 1
            yield BadRow(unique(f"{raw_id if raw_id is not None else 'row'}@row{i}"),
                         str(exc.located(file=label, row=i)))
            continue
        if item is None:
            continue
        new_id = unique(item.id)
        if new_id != item.id:
            from dataclasses import replace
            item = replace(item, id=new_id, group=item.group)
        n += 1
        yield item
