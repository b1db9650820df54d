"""Reading and validating build inputs: CSV, JSONL, Parquet, a local dataset folder or a Hub id.

Every input row ends up either kept or in the quarantine with a reason (rows in = kept + quarantined).
A file that cannot be parsed at all raises DataError naming the file, row and column.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mr2bench.jsonl import file_sha256
from mr2bench.schema import WINNER_ALIASES, DataError, Judgment

PAIRWISE_REQUIRED = ("question_id", "model_a", "model_b", "winner")
PAIRWISE_OPTIONAL = ("annotator_id", "question", "video", "response_a", "response_b", "timestamp", "category")
RANKING_REQUIRED = ("prompt_id", "model", "rank")
RANKING_OPTIONAL = ("annotator_id", "prompt", "image", "response", "category")


@dataclass
class Table:
    df: pd.DataFrame            # canonical columns as str or None, plus "_row" (1-based record number)
    label: str                  # file name / dataset id for messages
    sha256: str                 # hash of the input bytes (or of the canonical table)
    root: Path | None = None    # folder that relative media paths refer to


@dataclass
class Checked:
    kept: pd.DataFrame
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for q in self.quarantine:
            out[q["reason"]] = out.get(q["reason"], 0) + 1
        return dict(sorted(out.items()))


def parse_column_map(pairs: list[str] | None, allowed: tuple[str, ...]) -> dict[str, str]:
    """``--column canonical=theirs`` flags -> {theirs: canonical}."""
    out: dict[str, str] = {}
    for p in pairs or []:
        canon, sep, theirs = p.partition("=")
        if not sep or not canon or not theirs:
            raise DataError(f"--column expects canonical=theirs, got {p!r}", field="--column")
        if canon not in allowed:
            raise DataError(f"unknown canonical column {canon!r}; expected one of {list(allowed)}",
                            field="--column")
        out[theirs] = canon
    return out


def judgments_table(judgments: Iterable[Judgment], label: str = "judgments") -> Table:
    """Judgment objects (the Python API) as an input Table: the same validation as a file's rows."""
    rows = [{"question_id": j.question_id, "model_a": j.model_a, "model_b": j.model_b, "winner": j.winner,
             "annotator_id": j.annotator_id, "question": j.question,
             "video": None if j.media is None else j.media.path, "response_a": j.response_a,
             "response_b": j.response_b, "timestamp": j.timestamp, "category": j.category} for j in judgments]
    df = pd.DataFrame(rows, columns=[*PAIRWISE_REQUIRED, *PAIRWISE_OPTIONAL], dtype=object)
    df = df.astype(object).where(df.notna(), None)
    df = df[[c for c in df.columns if df[c].notna().any() or c in PAIRWISE_REQUIRED]]
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


def _read_raw(source: str, split: str | None) -> tuple[pd.DataFrame, str, str, Path | None]:
    path = Path(source)
    if path.is_file():
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            elif suffix in (".jsonl", ".json"):
                from mr2bench.jsonl import read_jsonl

                df = pd.DataFrame(list(read_jsonl(path))) if suffix == ".jsonl" else pd.read_json(path, dtype=False)
            elif suffix == ".parquet":
                df = pd.read_parquet(path)
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


def _cell(v: Any) -> str | None:
    if type(v) is str:  # the common case first
        return v if v.strip() else None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v)
    return s if s.strip() else None


def read_table(source: str, required: tuple[str, ...], optional: tuple[str, ...],
               column_map: dict[str, str] | None = None, split: str | None = None) -> Table:
    raw, label, digest, root = _read_raw(source, split)
    raw = raw.rename(columns=column_map or {})
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise DataError(f"missing required column(s) {missing}; found {sorted(map(str, raw.columns))} "
                        f"(map yours with --column canonical=theirs)", field=missing[0], file=label)
    cols = [c for c in (*required, *optional) if c in raw.columns]
    df = pd.DataFrame({c: [_cell(v) for v in raw[c].to_numpy(dtype=object)] for c in cols}, dtype=object)
    df.insert(0, "_row", range(1, len(df) + 1))
    return Table(df, label, digest, root)


def _quarantine(df: pd.DataFrame, mask: pd.Series, reason: str, fld: str, out: list[dict]) -> pd.DataFrame:
    for rec in df[mask].to_dict("records"):
        row = rec.pop("_row")
        out.append({"row": int(row), "reason": reason, "field": fld,
                    "record": {k: v for k, v in rec.items() if v is not None}})
    return df[~mask]


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


def check_pairwise(df: pd.DataFrame) -> Checked:
    q: list[dict] = []
    for col in PAIRWISE_REQUIRED:
        df = _quarantine(df, df[col].isna(), "missing_field", col, q)
    canon = df["winner"].str.strip().str.lower().map(WINNER_ALIASES)
    df = _quarantine(df, canon.isna(), "unknown_winner", "winner", q)
    df = df.assign(winner=canon[canon.notna()])
    df = _quarantine(df, df["model_a"] == df["model_b"], "self_pair", "model_b", q)
    # identical rows are double submissions only when something identifies the vote (who or when);
    # without annotator_id/timestamp two real voters can agree, so nothing is dropped
    if {"annotator_id", "timestamp"} & set(df.columns):
        content = [c for c in df.columns if c != "_row"]
        df = _quarantine(df, df.duplicated(subset=content, keep="first"), "duplicate_vote", "*", q)
    pairs = [(m, r) for m, r in (("model_a", "response_a"), ("model_b", "response_b")) if r in df.columns]
    if pairs:
        df = _quarantine(df, _conflicts(df, "question_id", pairs), "conflicting_response", "response", q)
    q.sort(key=lambda r: r["row"])
    return Checked(df.reset_index(drop=True), q)


def check_rankings(df: pd.DataFrame) -> Checked:
    q: list[dict] = []
    for col in RANKING_REQUIRED:
        df = _quarantine(df, df[col].isna(), "missing_field", col, q)
    rank = pd.to_numeric(df["rank"], errors="coerce")
    bad = rank.isna() | (rank < 1) | (rank != rank.round())
    df = _quarantine(df, bad, "bad_rank", "rank", q)
    df = df.assign(rank=rank[~bad].astype("int64"))
    if "annotator_id" not in df.columns:
        df = df.assign(annotator_id=None)
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
