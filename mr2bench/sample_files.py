"""samples.jsonl on disk: append records as they finish, resume after a kill, merge per-rank files.

Each rank appends to its own file (``samples.rank{r}-of-{w}.jsonl``; rank 0 of one process writes
``samples.jsonl``); a torn last line from a killed writer is cut before appending; failed records are
dropped on resume so they are retried; rank 0 merges everything into ``samples.jsonl`` ordered by the
item's index, one row per id.
"""
from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .jsonl import dumps, read_jsonl
from .results import ItemRecord, usable
from .schema import DataError

SAMPLES = "samples.jsonl"
FSYNC_EVERY = 256


def read_records(path: Path) -> Iterator[ItemRecord]:
    for i, row in enumerate(read_jsonl(path), start=1):
        try:
            yield ItemRecord.from_json(row)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"not a valid record: {exc}", file=str(path), row=i) from None


def repair_tail(path: Path) -> None:
    """Cut a torn last line (a killed writer) so that appending goes on from a clean line."""
    if not path.is_file():
        return
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        block = min(size, 1 << 20)
        while True:
            fh.seek(size - block)
            data = fh.read(block)
            cut = data.rfind(b"\n")
            if cut >= 0 or block == size:
                fh.truncate(size - block + cut + 1 if cut >= 0 else 0)
                return
            block = min(size, block * 2)


def _part_files(bench_dir: Path) -> list[Path]:
    return sorted(bench_dir.glob("samples.rank*-of-*.jsonl"))


def prepare_resume(bench_dir: Path) -> int:
    """Rank 0, before scoring: repair tails and drop failed records and records that are not valid (an
    older version's null scores): they are retried. Returns how many."""
    dropped = 0
    for path in [bench_dir / SAMPLES, *_part_files(bench_dir)]:
        if not path.is_file():
            continue
        repair_tail(path)
        n_bad = sum(not usable(r) for r in read_jsonl(path))
        if n_bad:
            dropped += n_bad
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for r in read_jsonl(path):
                    if usable(r):
                        fh.write(dumps(r) + "\n")
            tmp.replace(path)
    return dropped


def finished_ids(bench_dir: Path) -> set[str]:
    done: set[str] = set()
    for path in [bench_dir / SAMPLES, *_part_files(bench_dir)]:
        if path.is_file():
            for row in read_jsonl(path, tolerate_torn_tail=True):
                done.add(row["id"])
    return done


def _is_sorted(path: Path) -> bool:
    last = -1
    for row in read_jsonl(path):
        idx = row.get("extra", {}).get("index", -1)
        if idx < last:
            return False
        last = idx
    return True


def _sorted_rows(path: Path) -> Iterator[dict[str, Any]]:
    if _is_sorted(path):
        yield from read_jsonl(path)
    else:  # rows appended out of order (retried failures): sort this file in memory
        yield from sorted(read_jsonl(path), key=lambda r: r.get("extra", {}).get("index", -1))


def merge_samples(bench_dir: Path) -> None:
    """Rank 0: merge samples.jsonl and the per-rank files into samples.jsonl ordered by index."""
    main = bench_dir / SAMPLES
    sources = [p for p in [main, *_part_files(bench_dir)] if p.is_file()]
    if sources == [main] and _is_sorted(main):
        return
    tmp = bench_dir / "samples.merge.tmp"
    last_id = None
    with open(tmp, "w", encoding="utf-8") as fh:
        merged = heapq.merge(*(_sorted_rows(p) for p in sources),
                             key=lambda r: (r.get("extra", {}).get("index", -1), r["id"]))
        for row in merged:
            if row["id"] == last_id:
                continue
            last_id = row["id"]
            fh.write(dumps(row) + "\n")
    tmp.replace(main)
    for p in _part_files(bench_dir):
        p.unlink()


class RecordWriter:
    """Append-only JSONL, flushed per record, fsynced every FSYNC_EVERY records and on close."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "a", encoding="utf-8")
        self.pending = 0

    def write(self, rec: ItemRecord) -> None:
        self.fh.write(dumps(rec.to_json()) + "\n")
        self.fh.flush()
        self.pending += 1
        if self.pending >= FSYNC_EVERY:
            os.fsync(self.fh.fileno())
            self.pending = 0

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
