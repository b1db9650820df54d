"""Reading and validating build inputs: CSV, JSONL, Parquet, a local dataset folder or a Hub id.

Every input row ends up either kept or in the quarantine with a reason (rows in = kept + quarantined).
A file that cannot be parsed at all raises DataError naming the file, row and column.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mr2bench.jsonl import file_sha256
from mr2bench.schema import WINNER_ALIASES, DataError, Judgment

PAIRWISE_REQUIRED = ("question_id", "model_a", "model_b", "winner")
PAIRWISE_OPTIONAL = ("annotator_id", "question", "video", "response_a", "response_b", "timestamp", "vote_id",
                     "category")
RANKING_REQUIRED = ("prompt_id", "model", "rank")
RANKING_OPTIONAL = ("annotator_id", "prompt", "image", "response", "category")
# Free text keeps its spacing and may hold newlines; every other field is an id or a code: stripped, and
# a control character (newline, NUL, bidi override) in it is a rejection, not data.
TEXT_FIELDS = frozenset({"question", "response_a", "response_b", "prompt", "response"})
MEDIA_FIELDS = ("video", "image")
VOTE_KEYS = ("timestamp", "vote_id")       # what tells two identical votes of one annotator apart
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Rejected:
    """A cell that cannot be a field value (a list, a bool, an id with a newline): the row is quarantined."""

    reason: str                 # not_a_scalar | control_character
    value: str                  # a short repr for the quarantine record


@dataclass
class Table:
    df: pd.DataFrame            # canonical columns as str, None or Rejected, plus "_row" (1-based record number)
    label: str                  # file name / dataset id for messages
    sha256: str                 # hash of the input bytes (or of the canonical table)
    root: Path | None = None    # folder that relative media paths refer to


@dataclass
class Checked:
    kept: pd.DataFrame
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)   # kept-row facts for the report

    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for q in self.quarantine:
            out[q["reason"]] = out.get(q["reason"], 0) + 1
        return dict(sorted(out.items()))


def parse_column_map(pairs: list[str] | None, allowed: tuple[str, ...]) -> dict[str, str]:
    """``--column canonical=theirs`` flags -> {theirs: canonical}; two sources for one name are refused."""
    out: dict[str, str] = {}
    for p in pairs or []:
        canon, sep, theirs = p.partition("=")
        if not sep or not canon or not theirs:
            raise DataError(f"--column expects canonical=theirs, got {p!r}", field="--column")
        if canon not in allowed:
            raise DataError(f"unknown canonical column {canon!r}; expected one of {list(allowed)}",
                            field="--column")
        clash = [t for t, c in out.items() if c == canon or t == theirs]
        if clash:
            raise DataError(f"--column {p} clashes with --column {out[clash[0]]}={clash[0]}: one input column "
                            f"per canonical name, one name per input column", field="--column")
        out[theirs] = canon
    return out


def parse_value_map(pairs: list[str] | None, allowed: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``--value column:theirs=ours`` flags -> {column: {theirs: ours}} (column = a canonical name)."""
    out: dict[str, dict[str, str]] = {}
    for p in pairs or []:
        col, sep1, rest = p.partition(":")
        theirs, sep2, ours = rest.rpartition("=")
        if not (sep1 and sep2 and col and theirs.strip() and ours.strip()):
            raise DataError(f"--value expects column:theirs=ours (e.g. winner:left=model_a), got {p!r}",
                            field="--value")
        if col not in allowed:
            raise DataError(f"unknown canonical column {col!r}; expected one of {list(allowed)}", field="--value")
        key = theirs if col in TEXT_FIELDS else theirs.strip()
        seen = out.setdefault(col, {})
        if seen.get(key, ours.strip()) != ours.strip():
            raise DataError(f"--value {p} maps {key!r} a second time (already to {seen[key]!r})", field="--value")
        seen[key] = ours.strip()
    return out


def judgments_table(judgments: Iterable[Judgment], label: str = "judgments") -> Table:
    """Judgment objects (the Python API) as an input Table: the same validation as a file's rows."""
    rows = [{"question_id": j.question_id, "model_a": j.model_a, "model_b": j.model_b, "winner": j.winner,
             "annotator_id": j.annotator_id, "question": j.question,
             "video": None if j.media is None else j.media.path, "response_a": j.response_a,
             "response_b": j.response_b, "timestamp": j.timestamp, "category": j.category} for j in judgments]
    df = pd.DataFrame(rows, columns=[*PAIRWISE_REQUIRED, *PAIRWISE_OPTIONAL], dtype=object)
    df = df.astype(object).where(df.notna(), None)
    df = normalize_cells(df[[c for c in df.columns if df[c].notna().any() or c in PAIRWISE_REQUIRED]])
    df.insert(0, "_row", range(1, len(df) + 1))
    return Table(df, label, hash_frame(df.drop(columns="_row")))


def first_per_key(df: pd.DataFrame, key: str, col: str) -> dict:
    """key -> the first non-null value of col (prompt text, media path, category per question)."""
    if col not in df.columns:
        return {}
    s = df[[key, col]].dropna().drop_duplicates(key)
    return dict(zip(s[key], s[col]))


def hash_frame(df: pd.DataFrame) -> str:
    return hashlib.sha256(df.to_csv(index=False).encode("utf-8")).hexdigest()


FILE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object_pairs_hook: a repeated key is an error (json keeps the last one silently)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _read_json_records(path: Path, lines: bool) -> pd.DataFrame:
    """JSONL (one object a line) or a JSON array of objects; duplicate keys refused with their row."""
    text = path.read_text(encoding="utf-8")
    chunks = [(i, ln) for i, ln in enumerate(text.split("\n"), start=1) if ln.strip()] if lines else [(1, text)]
    records: list[dict] = []
    for i, chunk in chunks:
        try:
            obj = json.loads(chunk, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            raise DataError(f"duplicate key {exc.args[0]!r} in one record; keep one", file=str(path),
                            row=i if lines else None) from None
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", file=str(path), row=i if lines else exc.lineno) from None
        objs = [obj] if lines else obj
        if not isinstance(objs, list) or not all(isinstance(o, dict) for o in objs):
            raise DataError("each line must be a JSON object" if lines else "must be a JSON array of objects",
                            file=str(path), row=i if lines else None)
        records += objs
    return pd.DataFrame(records)


def _csv_header(path: Path) -> list[str]:
    """The header as written: pandas renames a repeated name (winner, winner.1), hiding the clash."""
    import csv

    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        header = next(csv.reader(fh), [])
    return [h.lstrip("\ufeff") if k == 0 else h for k, h in enumerate(header)]


def _refuse_duplicate_columns(names: list[str], label: str) -> None:
    dup = sorted({n for n in names if n.strip() and names.count(n) > 1})  # blank names: trailing commas
    if dup:
        raise DataError(f"duplicate column(s) {dup} in the header; keep one of each (which one is meant "
                        f"cannot be guessed)", file=label, field=dup[0])


def _read_parquet(path: Path) -> pd.DataFrame:
    """String columns stay dictionary-encoded (pandas categoricals): ids, model names and response texts
    repeat across votes, so 3M rows take the memory of their distinct values, not of every cell."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    strings = {f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)}
    if len(set(schema.names)) != len(schema.names):
        return pq.read_table(path, read_dictionary=list(strings)).to_pandas()  # duplicates: refused by name later
    # one column at a time: the Arrow buffers of a column are freed before the next is read
    cols = {name: pq.read_table(path, columns=[name], read_dictionary=[name] if name in strings else None)
            .column(0).to_pandas() for name in schema.names}
    pa.default_memory_pool().release_unused()
    return pd.DataFrame(cols)


def _read_raw(source: str, split: str | None) -> tuple[pd.DataFrame, str, str, Path | None]:
    path = Path(source)
    if path.is_file():
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                _refuse_duplicate_columns(_csv_header(path), str(path))
                df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            elif suffix in (".jsonl", ".json"):
                df = _read_json_records(path, lines=suffix == ".jsonl")
            elif suffix == ".parquet":
                df = _read_parquet(path)
            else:
                raise DataError(f"unsupported file type {suffix!r} (csv, jsonl, json, parquet)", file=str(path))
        except DataError:
            raise
        except pd.errors.ParserError as exc:
            raise DataError(f"cannot parse CSV: {exc}", file=str(path)) from None
        except (ValueError, OSError) as exc:
            raise DataError(f"cannot read: {exc}", file=str(path)) from None
        return df, str(path), file_sha256(path), path.parent
    if not path.exists() and (path.suffix.lower() in FILE_SUFFIXES or source.startswith((".", "/", "~"))):
        # a path, not a Hub id: say so now rather than after the Hub client's retries
        raise DataError("no such file or folder", file=source)
    # a local dataset folder or a Hub id: the datasets library does both
    import datasets

    try:
        ds = datasets.load_dataset(source, split=split)
    except Exception as exc:  # datasets raises many types; the message is what the user needs
        raise DataError(f"cannot load dataset: {type(exc).__name__}: {exc}", file=source) from None
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise DataError(f"dataset has splits {sorted(ds)}; pick one with --split", file=source)
        ds = next(iter(ds.values()))
    df = ds.to_pandas()
    root = path if path.is_dir() else None
    return df, source, hash_frame(df), root


_SCALARS = (str, int, float, np.integer, np.floating, datetime.date)


def _cell(v: Any, text: bool = False) -> str | None | Rejected:
    """One input value as a canonical string, None (absent) or Rejected. Ids are stripped; 1.0 -> "1"."""
    if type(v) is not str:  # the common case skips all of this
        if v is None or v is pd.NA or v is pd.NaT:
            return None
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, _SCALARS):
            return Rejected("not_a_scalar", _short(v))
        if isinstance(v, (float, np.floating)):
            f = float(v)
            if math.isnan(f):
                return None
            v = int(f) if f.is_integer() and abs(f) < 2 ** 53 else f  # beyond 2**53 the digits are noise
        v = str(int(v)) if isinstance(v, np.integer) else str(v)
    if text:
        return v if v.strip() else None
    v = v.strip()
    if _CONTROL.search(v):
        return Rejected("control_character", _short(v))
    return v or None


def _short(v: Any) -> str:
    r = repr(v.tolist() if isinstance(v, np.ndarray) else v)
    return r if len(r) <= 80 else r[:77] + "..."


def _column(col: pd.Series, text: bool) -> np.ndarray:
    """``_cell`` of every value, computed once per distinct value. A typed column (strings, numbers, as
    CSV and Parquet give) is factorised without making a Python object per cell; an object column
    (JSON's mixed types, where ``1 == True`` must not merge) is cached per exact string only. Ids and texts
    repeat across millions of votes, so the result holds one object per distinct value."""
    if col.dtype != object:
        if isinstance(col.dtype, pd.CategoricalDtype):   # Parquet strings: the codes are the factorisation
            codes, uniques = col.cat.codes.to_numpy(), col.cat.categories
        else:
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
        clean = np.empty(len(uniques) + 1, dtype=object)   # the last slot is the NA sentinel's (-1)
        clean[:-1] = [_cell(u, text) for u in np.asarray(uniques, dtype=object)]
        clean[-1] = None
        return clean[codes]
    seen: dict[str, Any] = {}
    out = np.empty(len(col), dtype=object)
    for k, v in enumerate(col.to_numpy(dtype=object)):
        if type(v) is str:
            c = seen.get(v)
            out[k] = c if c is not None or v in seen else seen.setdefault(v, _cell(v, text))
        else:
            out[k] = _cell(v, text)
    return out


def normalize_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Every canonical column through ``_cell`` (the one place input values get their types checked)."""
    cols = [c for c in df.columns if c != "_row"]
    out = pd.DataFrame({c: _column(df[c], c in TEXT_FIELDS) for c in cols}, dtype=object, index=df.index)
    if "_row" in df.columns:
        out.insert(0, "_row", df["_row"])
    return out


def _rename(raw: pd.DataFrame, column_map: dict[str, str], label: str) -> pd.DataFrame:
    names = [str(c) for c in raw.columns]
    _refuse_duplicate_columns(names, label)
    for theirs, canon in column_map.items():
        if theirs not in names:
            raise DataError(f"--column {canon}={theirs}: the input has no column {theirs!r}; found {sorted(names)}",
                            file=label, field="--column")
        if canon != theirs and canon in names:
            raise DataError(f"--column {canon}={theirs}: the input already has a column {canon!r}; drop or rename "
                            f"one of them", file=label, field="--column")
    return raw.set_axis(names, axis=1).rename(columns=column_map)


def apply_value_map(df: pd.DataFrame, value_map: dict[str, dict[str, str]], label: str) -> pd.DataFrame:
    """``--value`` maps on canonical columns (after --column), on the normalised strings."""
    for col, mapping in value_map.items():
        if col not in df.columns:
            raise DataError(f"--value {col}:...: the input has no column {col!r} (after --column)", file=label,
                            field="--value")
        df[col] = [mapping.get(v, v) if isinstance(v, str) else v for v in df[col]]
    return df


def read_table(source: str, required: tuple[str, ...], optional: tuple[str, ...],
               column_map: dict[str, str] | None = None, split: str | None = None,
               value_map: dict[str, dict[str, str]] | None = None) -> Table:
    raw, label, digest, root = _read_raw(source, split)
    raw = _rename(raw, column_map or {}, label)
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise DataError(f"missing required column(s) {missing}; found {sorted(map(str, raw.columns))} "
                        f"(map yours with --column canonical=theirs)", field=missing[0], file=label)
    cols = [c for c in (*required, *optional) if c in raw.columns]
    df = normalize_cells(raw[cols].reset_index(drop=True))
    del raw  # the normalised frame holds its own (deduplicated) strings: free the reader's copies now
    df = apply_value_map(df, value_map or {}, label)
    df.insert(0, "_row", range(1, len(df) + 1))
    return Table(df, label, digest, root)


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, Rejected) else v


def _quarantine(df: pd.DataFrame, mask: pd.Series, reason: str, fld: str, out: list[dict]) -> pd.DataFrame:
    for rec in df[mask].to_dict("records"):
        row = rec.pop("_row")
        out.append({"row": int(row), "reason": reason, "field": fld,
                    "record": {k: _plain(v) for k, v in rec.items() if v is not None}})
    return df[~mask]


def _rejected_cells(df: pd.DataFrame, q: list[dict]) -> pd.DataFrame:
    """Rows holding a Rejected cell (a list, a dict, a bool, a control character in an id) -> quarantine."""
    for col in [c for c in df.columns if c != "_row"]:
        if not df[col].map(type).eq(Rejected).any():  # the common case: one cheap pass
            continue
        kinds = df[col].map(lambda v: v.reason if isinstance(v, Rejected) else "")
        for reason in sorted(set(kinds) - {""}):
            df = _quarantine(df, kinds.loc[df.index] == reason, reason, col, q)
    return df


def media_problem(value: str, root: Path) -> str | None:
    """Why a media reference may not be read (a quarantine reason), or None. Nothing is opened here.

    The path, symlinks resolved, must lie inside ``root``; a file that exists must be a regular file or a
    folder (of video frames); a missing one is kept and counted as media_missing by the build.
    """
    if _URL.match(value):
        return "media_url_unsupported"
    from mr2bench.media import contained

    try:
        real = contained(root, value)
        if real is None:
            return "media_outside_root"
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, DataError):
        return "media_unreadable"
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "media_not_a_file"


def _check_media(df: pd.DataFrame, root: Path | None, q: list[dict]) -> pd.DataFrame:
    base = Path.cwd() if root is None else root
    for col in [c for c in MEDIA_FIELDS if c in df.columns]:
        verdict = {v: media_problem(v, base) for v in df[col].dropna().unique()}  # once per distinct path
        why = df[col].map(lambda v: None if v is None else verdict[v])
        for reason in sorted(set(why.dropna())):
            df = _quarantine(df, why.loc[df.index] == reason, reason, col, q)
    return df


def _conflicts(df: pd.DataFrame, key: str, pairs: list[tuple[str, str]]) -> pd.Series:
    """Rows whose response text for (key, model) differs from the first text seen for it."""
    first: dict[tuple[str, str], str] = {}
    bad = []
    for rec in df[[key, *[c for p in pairs for c in p]]].itertuples(index=False):
        q, vals = rec[0], rec[1:]
        conflict = False
        for k in range(0, len(vals), 2):
            model, text = vals[k], vals[k + 1]
            if not isinstance(text, str):  # None / NaN: no text to conflict with
                continue
            seen = first.setdefault((q, model), text)
            conflict |= seen != text
        bad.append(conflict)
    return pd.Series(bad, index=df.index, dtype=bool)


def _duplicate_votes(df: pd.DataFrame, q: list[dict]) -> tuple[pd.DataFrame, int]:
    """A vote is a repeat only when annotator, question, pair, winner AND a per-vote key (timestamp or
    vote_id) all repeat. Identical rows without such a key are kept (two people, or one person twice,
    can agree) and counted."""
    keys = [c for c in VOTE_KEYS if c in df.columns]
    if keys:
        subset = [c for c in ("annotator_id", *PAIRWISE_REQUIRED, *keys) if c in df.columns]
        repeat = df[keys].notna().any(axis=1) & df.duplicated(subset=subset, keep="first")
        df = _quarantine(df, repeat, "duplicate_vote", keys[0], q)
    content = [c for c in df.columns if c != "_row"]
    return df, int(df.duplicated(subset=content, keep="first").sum()) if len(df) else 0


def check_pairwise(df: pd.DataFrame, media_root: Path | None = None) -> Checked:
    """Quarantine every row that cannot be a vote; ``media_root`` = where relative media paths point
    (default: the current folder)."""
    q: list[dict] = []
    df = _rejected_cells(df, q)
    for col in PAIRWISE_REQUIRED:
        df = _quarantine(df, df[col].isna(), "missing_field", col, q)
    canon = df["winner"].str.strip().str.lower().map(WINNER_ALIASES)
    df = _quarantine(df, canon.isna(), "unknown_winner", "winner", q)
    df = df.assign(winner=canon[canon.notna()])
    df = _quarantine(df, df["model_a"] == df["model_b"], "self_pair", "model_b", q)
    df = _check_media(df, media_root, q)
    pairs = [(m, r) for m, r in (("model_a", "response_a"), ("model_b", "response_b")) if r in df.columns]
    if pairs:
        df = _quarantine(df, _conflicts(df, "question_id", pairs), "conflicting_response", "response", q)
    df, identical = _duplicate_votes(df, q)
    q.sort(key=lambda r: r["row"])
    return Checked(df.reset_index(drop=True), q, {"identical_rows_kept": identical})


def _rank_value(s: str) -> int | None:
    """A rank cell as a positive integer, or None: "2" and "2.0" pass; 2.5, 0, inf, nan, 1e30 overflow do not."""
    if re.fullmatch(r"\+?\d{1,9}", s):
        r = int(s)
    else:
        try:
            f = float(s)
        except ValueError:
            return None
        if not (math.isfinite(f) and f.is_integer() and 1 <= f < 1e9):
            return None
        r = int(f)
    return r if r >= 1 else None


def check_rankings(df: pd.DataFrame, media_root: Path | None = None) -> Checked:
    """Rank = an integer from 1 to the number of responses in that (prompt, annotator) ranking."""
    q: list[dict] = []
    if "annotator_id" not in df.columns:
        df = df.assign(annotator_id=None)
    # the number of responses in each ranking as submitted (rows later quarantined included): a rank
    # above it cannot be real
    size = df.groupby([df["prompt_id"].map(repr), df["annotator_id"].map(repr)])["_row"].transform("size")
    df = _rejected_cells(df, q)
    for col in RANKING_REQUIRED:
        df = _quarantine(df, df[col].isna(), "missing_field", col, q)
    rank = df["rank"].map(_rank_value)
    bad = rank.isna()
    df = _quarantine(df, bad, "bad_rank", "rank", q)
    df = df.assign(rank=rank[~bad].astype("int64"))
    df = _quarantine(df, df["rank"] > size.loc[df.index], "rank_out_of_range", "rank", q)
    df = _check_media(df, media_root, q)
    dup = df.duplicated(subset=["prompt_id", "model", "annotator_id"], keep="first")
    df = _quarantine(df, dup, "duplicate_entry", "model", q)
    if "response" in df.columns:
        df = _quarantine(df, _conflicts(df, "prompt_id", [("model", "response")]), "conflicting_response",
                         "response", q)
    size = df.groupby(["prompt_id", df["annotator_id"].fillna("")])["model"].transform("size")
    df = _quarantine(df, size < 2, "single_response_ranking", "model", q)
    q.sort(key=lambda r: r["row"])
    return Checked(df.reset_index(drop=True), q)


def rankings_to_pairwise(df: pd.DataFrame) -> pd.DataFrame:
    """Each (prompt, annotator) ranking -> all its pairs; equal ranks -> tie. model_a < model_b by name."""
    out = []
    ann = df["annotator_id"].where(df["annotator_id"].notna(), None)
    for (pid, a), g in df.assign(annotator_id=ann.fillna("")).groupby(["prompt_id", "annotator_id"], sort=True):
        g = g.sort_values("model")
        ms, rs = g["model"].tolist(), g["rank"].tolist()
        for x in range(len(ms)):
            for y in range(x + 1, len(ms)):
                w = "model_a" if rs[x] < rs[y] else "model_b" if rs[x] > rs[y] else "tie"
                out.append((pid, ms[x], ms[y], w, a or None))
    return pd.DataFrame(out, columns=["question_id", "model_a", "model_b", "winner", "annotator_id"])
