"""JSON Lines and canonical JSON (sorted keys, fixed separators, so equal data gives equal bytes), and
the file readers and digests the edges share."""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .schema import DataError


def _clean(value: Any) -> Any:
    """NaN/inf are not JSON; store them as None rather than writing invalid files. Per-item records never
    rely on this: adapter scores are checked finite before a record is made (schema.check_scores)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dumps(obj: Any) -> str:
    try:  # the common case has no NaN/inf: skip the recursive copy (a fifth of the evaluator's write time)
        return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):  # NaN/inf, or keys of mixed types: the cleaned copy
        return json.dumps(_clean(obj), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON file holding one object; bad JSON or another type is a DataError naming file and row."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", file=str(path), row=exc.lineno) from None
    if not isinstance(obj, dict):
        raise DataError("must be a JSON object", file=str(path))
    return obj


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json(path: str | Path, obj: Any) -> None:
    Path(path).write_text(json.dumps(_clean(obj), sort_keys=True, ensure_ascii=False, indent=2, allow_nan=False)
                          + "\n", encoding="utf-8")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
            n += 1
    return n


def append_jsonl(path: str | Path, row: Any) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(dumps(row) + "\n")
        fh.flush()


def read_jsonl(path: str | Path, *, tolerate_torn_tail: bool = False) -> Iterator[dict[str, Any]]:
    """Stream rows; a malformed line raises DataError with file and row, except a torn last line
    (a killed writer: unparseable and without its newline) when ``tolerate_torn_tail`` is set."""
    with open(path, encoding="utf-8") as fh:
        torn: int | None = None
        for i, line in enumerate(fh, start=1):
            if torn is not None:  # the unparseable line was not the last one after all
                raise DataError("invalid JSON", file=str(path), row=torn)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                if tolerate_torn_tail and not line.endswith("\n"):
                    torn = i
                    continue
                raise DataError(f"invalid JSON: {exc.msg}", file=str(path), row=i) from None
            if not isinstance(row, dict):
                raise DataError("each line must be a JSON object", file=str(path), row=i)
            yield row
