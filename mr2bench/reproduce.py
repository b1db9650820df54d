"""The paper's table for the paper's models: a versioned table config, which entries can run here, the runs,
and our number beside the paper's.

The table config (``mr2bench/tables/paper_table_v1.json``; ``--config`` for another) lists each row's name,
label, how it runs (a ``preset`` of ``mr2bench.published.api_presets``, or ``model`` + flags), and the paper's
six numbers (x100) with Avg. Each entry that can run goes through ``mr2bench.evaluate.evaluate`` exactly as
``evaluate-model`` would (same folders ``OUT/<model_slug>/<benchmark>/``, same resume), and "ours" is read
back from ``OUT/<model_slug>/summary.json``, so an entry run earlier (or by ``evaluate-model``) shows too.
An entry that cannot run here is marked with its reason (no key, no weights, no GPU) and never stops the rest.
Pure functions decide availability and build the table; ``run_table`` does the I/O.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .schema import DataError

log = logging.getLogger(__name__)
DEFAULT_TABLE = "paper_table_v1"
ENTRY_KEYS = {"name", "label", "preset", "model", "model_args", "api_base", "api_key_env", "trust_remote_code",
              "needs_gpu", "paper", "paper_avg", "note"}
TABLE_KEYS = {"id", "version", "source", "changelog", "columns", "entries"}
LOCAL_KINDS = ("seqcls", "mr2", "mr2-single", "judge", "skywork-vl", "ixc-reward", "r1-reward", "mm-rlhf-reward",
               "llava-critic", "unified-reward")   # kinds whose target is a Hub id or a model folder


@dataclass(frozen=True)
class Entry:
    name: str
    label: str
    model: str
    model_args: Mapping[str, str] = field(default_factory=dict)
    api_base: str | None = None
    api_key_env: str | None = None
    trust_remote_code: bool = False
    needs_gpu: bool = False
    paper: Mapping[str, float] | None = None     # benchmark -> the paper's number (x100); None: no paper row
    paper_avg: float | None = None
    avg_source: str = ""                         # "reported" | "mean of the six" | ""
    note: str = ""


@dataclass(frozen=True)
class Table:
    id: str
    version: int
    source: str
    columns: tuple[str, ...]
    entries: tuple[Entry, ...]


# ---------------------------------------------------------------- the config (strict)
def _entry(raw: Any, columns: Sequence[str], file: str, row: int) -> Entry:
    if not isinstance(raw, dict):
        raise DataError("an entry must be an object", file=file, row=row)
    unknown = sorted(set(raw) - ENTRY_KEYS)
    if unknown:
        raise DataError(f"unknown keys {unknown}; known: {sorted(ENTRY_KEYS)}", file=file, row=row)
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise DataError("needs a name", file=file, row=row, field="name")
    run: dict[str, Any] = {}
    if raw.get("preset"):
        from .published.api_presets import get_preset
        from .registry import UnknownNameError

        try:
            p = get_preset(raw["preset"])
        except UnknownNameError as exc:
            raise DataError(str(exc), file=file, row=row, field="preset") from None
        run = dict(model=p.model, model_args=dict(p.model_args), api_base=p.api_base, api_key_env=p.api_key_env,
                   trust_remote_code=p.trust_remote_code, needs_gpu=p.needs_gpu)
    run.update({k: raw[k] for k in ("model", "model_args", "api_base", "api_key_env", "trust_remote_code",
                                    "needs_gpu") if k in raw})
    if not run.get("model"):
        raise DataError("give a model (KIND:TARGET) or a preset", file=file, row=row, field="model")
    paper = raw.get("paper")
    if paper is not None:
        if not isinstance(paper, dict) or sorted(paper) != sorted(columns):
            raise DataError(f"paper must give one number per column {list(columns)}", file=file, row=row,
                            field="paper")
        paper = {k: float(v) for k, v in paper.items()}
    avg, source = raw.get("paper_avg"), ""
    if paper is not None:
        source = "reported" if avg is not None else "mean of the six"
        avg = float(avg) if avg is not None else round(sum(paper.values()) / len(paper), 1)
    return Entry(name=raw["name"], label=raw.get("label", raw["name"]), paper=paper, paper_avg=avg,
                 avg_source=source, note=raw.get("note", ""),
                 **{k: v for k, v in run.items() if k != "model_args"},
                 model_args={str(k): str(v) for k, v in (run.get("model_args") or {}).items()})


def load_table(path: str | Path | None = None) -> Table:
    """The packaged table (default) or a JSON file; unknown keys and duplicate names are refused."""
    if path is None:
        text = resources.files("mr2bench").joinpath("tables", f"{DEFAULT_TABLE}.json").read_text(encoding="utf-8")
        file = f"mr2bench/tables/{DEFAULT_TABLE}.json"
    else:
        file = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot read the table config: {exc.strerror}", file=file) from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise DataError(f"not JSON: {exc}", file=file) from None
    if not isinstance(raw, dict) or sorted(set(raw) - TABLE_KEYS):
        raise DataError(f"a table config is an object with keys {sorted(TABLE_KEYS)}", file=file)
    columns = tuple(raw.get("columns") or ())
    entries = tuple(_entry(e, columns, file, i) for i, e in enumerate(raw.get("entries") or []))
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"duplicate entry names {dupes}", file=file, field="entries")
    return Table(id=str(raw.get("id", "")), version=int(raw.get("version", 0)), source=str(raw.get("source", "")),
                 columns=columns, entries=entries)


def select(entries: Sequence[Entry], only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Entry]:
    """``--only`` keeps (in the config's order), ``--skip`` drops; an unknown name is an error with the list."""
    import difflib

    known = [e.name for e in entries]
    for flag, names in (("--only", only), ("--skip", skip)):
        for n in names:
            if n not in known:
                close = difflib.get_close_matches(n, known, n=3, cutoff=0.5)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise DataError(f"unknown entry {n!r}.{hint} Known: {', '.join(known)}", field=flag)
    return [e for e in entries if (not only or e.name in only) and e.name not in skip]


# ---------------------------------------------------------------- can it run here? (pure, probes injected)
@dataclass(frozen=True)
class Probes:
    env: Mapping[str, str]
    cuda: bool
    cached: Callable[[str], bool]          # a Hub id -> are its weights in the local Hugging Face cache


def hub_cached(repo_id: str) -> bool:
    """config.json of ``repo_id`` is in the local Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the cache cannot even name (a path, odd characters): not cached
        return False


def default_probes() -> Probes:
    try:
        import torch

        cuda = bool(torch.cuda.is_available())
    except ImportError:
        cuda = False
    return Probes(env=os.environ, cuda=cuda, cached=hub_cached)


def unavailable(entry: Entry, probes: Probes, allow_cpu: bool = False) -> str | None:
    """Why ``entry`` cannot run here, or None when it can."""
    from .adapters import split_spec

    kind, target = split_spec(entry.model)
    if kind == "api":
        env = entry.api_key_env or ""
        if not env or not probes.env.get(env):
            return f"no key: set {env or 'the key variable (api_key_env)'}"
        return None
    if kind == "python":
        file = target.rsplit(":", 1)[0]
        return None if Path(file).is_file() else f"no adapter file: {file}"
    if kind in LOCAL_KINDS:
        if not target:
            return "no target: give KIND:HUB_ID_OR_DIR"
        if not Path(target).is_dir() and not probes.cached(target):
            return f"no weights: {target} is not a folder nor in the Hugging Face cache (hf download {target})"
    if entry.needs_gpu and not probes.cuda and not allow_cpu:
        return "no GPU: needs CUDA for a run in reasonable time (--allow-cpu to run anyway)"
    return None


# ---------------------------------------------------------------- the table (pure)
def _ours(summary: Mapping[str, Any] | None, bench: str) -> tuple[float | None, float | None, float | None]:
    b = ((summary or {}).get("benchmarks") or {}).get(bench) or {}
    if b.get("headline") is None:
        return None, None, None
    ci = b.get("ci95") or {}
    same = ci.get("metric") == b.get("headline_metric") and ci.get("low") is not None
    return (100 * b["headline"], 100 * ci["low"] if same else None, 100 * ci["high"] if same else None)


def table_rows(table: Table, entries: Sequence[Entry], summaries: Mapping[str, Mapping[str, Any] | None],
               status: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per entry: per column ours / paper / diff / CI; Avg only over all six of ours."""
    rows = []
    for e in entries:
        cells, ours_all = {}, []
        for col in table.columns:
            ours, lo, hi = _ours(summaries.get(e.name), col)
            paper = None if e.paper is None else e.paper.get(col)
            diff = None if ours is None or paper is None else ours - paper
            cells[col] = {"ours": ours, "paper": paper, "diff": diff, "ci95": None if lo is None else [lo, hi]}
            ours_all.append(ours)
        avg = sum(ours_all) / len(ours_all) if all(v is not None for v in ours_all) else None
        rows.append({"name": e.name, "label": e.label, "model": e.model, "status": status.get(e.name, ""),
                     "cells": cells, "avg": {"ours": avg, "paper": e.paper_avg, "paper_source": e.avg_source,
                                              "diff": None if avg is None or e.paper_avg is None
                                              else avg - e.paper_avg}})
    return rows


def _num(v: float | None, signed: bool = False) -> str:
    return "-" if v is None else (f"{v:+.1f}" if signed else f"{v:.1f}")


def _cell(c: Mapping[str, Any]) -> str:
    ours = _num(c["ours"])
    if c.get("ci95"):
        ours += f" [{c['ci95'][0]:.1f}-{c['ci95'][1]:.1f}]"
    return f"{ours} / {_num(c['paper'])} / {_num(c['diff'], True)}"


def render_table(table: Table, rows: Sequence[Mapping[str, Any]]) -> str:
    from .leaderboard import COLUMNS

    short = {name: col for col, name in COLUMNS}
    head = ["model", *(short.get(c, c) for c in table.columns), "Avg", "status"]
    lines = [f"# {table.id} (v{table.version})", "", f"Source of the paper's numbers: {table.source}.", "",
             "Each cell: ours [our 95% bootstrap interval] / the paper's / ours - paper (x100). Avg = mean of the "
             "six, ours only when all six ran. `-` = not run or no paper number.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        avg = r["avg"]
        avg_text = f"{_num(avg['ours'])} / {_num(avg['paper'])} / {_num(avg['diff'], True)}"
        lines.append("| " + " | ".join([r["label"], *(_cell(r["cells"][c]) for c in table.columns), avg_text,
                                        r["status"]]) + " |")
    lines += ["", "Run specs:", ""] + [f"- {r['name']}: `{r['model']}`" for r in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the runs (I/O)
@dataclass(frozen=True)
class ReproduceConfig:
    out: Path
    benchmarks: tuple[str, ...]
    data_dirs: Mapping[str, Path]
    seed: int = 0
    limit: int | None = None
    batch_size: int = 1
    num_frames: int = 16
    device: str = "auto"
    dtype: str = "auto"
    allow_cpu: bool = False
    progress: bool = True
    overwrite: bool = False
    command: str = ""


def run_entry(entry: Entry, rc: ReproduceConfig) -> tuple[str, int]:
    """evaluate() for one entry, as evaluate-model runs it; (status text, failed items)."""
    from .adapters import AdapterOptions, model_slug
    from .evaluate import EvalConfig, evaluate

    options = AdapterOptions(seed=rc.seed, device=rc.device, dtype=rc.dtype, batch_size=rc.batch_size,
                             num_frames=rc.num_frames, trust_remote_code=entry.trust_remote_code,
                             api_base=entry.api_base, api_key_env=entry.api_key_env,
                             cache_dir=str(rc.out / model_slug(entry.model) / "cache"), extra=dict(entry.model_args))
    cfg = EvalConfig(model=entry.model, benchmarks=rc.benchmarks, out=rc.out, data_dirs=dict(rc.data_dirs),
                     seed=rc.seed, limit=rc.limit, batch_size=rc.batch_size, command=rc.command,
                     progress=rc.progress, overwrite=rc.overwrite)
    try:
        outcomes = evaluate(cfg, options)
    except DataError as exc:  # a refused folder, a model that will not load: this entry only
        return f"error: {exc}", 0
    failed = sum(o.n_failed for o in outcomes if o.results is not None)
    skipped = [o.name for o in outcomes if o.skipped]
    parts = ["ran"] + ([f"{failed} failed items"] if failed else []) + \
        ([f"skipped (Hub unavailable): {', '.join(skipped)}"] if skipped else [])
    return "; ".join(parts), failed + len(skipped)


def read_summary(out: Path, model: str) -> dict[str, Any] | None:
    from .adapters import model_slug

    path = out / model_slug(model) / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_table(table: Table, entries: Sequence[Entry], rc: ReproduceConfig, probes: Probes | None = None,
              runner: Callable[[Entry, ReproduceConfig], tuple[str, int]] = run_entry) -> tuple[list[dict], int]:
    """Run every entry that can run, mark the others, write OUT/reproduce.{md,json}; (rows, problems)."""
    from .jsonl import write_json

    probes = probes or default_probes()
    status: dict[str, str] = {}
    problems = 0
    for e in entries:
        why = unavailable(e, probes, rc.allow_cpu)
        if why is not None:
            status[e.name] = f"not run: {why}"
            log.info("%s: %s", e.name, status[e.name])
            continue
        status[e.name], bad = runner(e, rc)
        problems += bad + status[e.name].startswith("error")
    summaries = {e.name: read_summary(rc.out, e.model) for e in entries}
    for e in entries:
        if status[e.name].startswith("not run") and summaries[e.name]:
            status[e.name] += " (earlier results in OUT shown)"
    rows = table_rows(table, entries, summaries, status)
    rc.out.mkdir(parents=True, exist_ok=True)
    text = render_table(table, rows)
    (rc.out / "reproduce.md").write_text(text, encoding="utf-8")
    write_json(rc.out / "reproduce.json", {"table": table.id, "version": table.version, "source": table.source,
                                           "columns": list(table.columns), "benchmarks_run": list(rc.benchmarks),
                                           "seed": rc.seed, "command": rc.command, "rows": rows})
    return rows, problems


