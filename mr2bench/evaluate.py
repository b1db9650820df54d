"""The evaluation runner: items in, per-item records and results out, resumable and splittable.

The evaluator owns the order: responses are shown in the permutation drawn from
``rng_for(seed, "order", item_id)`` (identity under a ``fixed`` order policy; run k > 0 of
``--permutations K`` uses ``rng_for(seed, "order", item_id, k)``), stored in the record, and scores are
mapped back to the original order before any metric sees them.

Files per benchmark, in ``OUT/<model_slug>/<benchmark>/``: ``samples.jsonl`` (one ``ItemRecord`` per item,
``extra.index`` = position in the loader's order) and ``results.json``. A run appends each record as it
finishes; on restart finished ids are skipped, a torn last line is cut and failed records are retried.
With several processes (``accelerate launch``; ``RANK``/``WORLD_SIZE`` in the environment) rank r scores
items ``index % world == r`` into ``samples.rank<r>-of-<w>.jsonl``; rank 0 merges them by index, so the
merged file equals a one-process run.

Before anything is written, rank 0 locks each benchmark's folder and compares its ``fingerprint.json`` with
this run's (``run_guard``); a refusal reaches every rank (``on_rank0``). Adapter output is untrusted: a
score that is not a finite number, or the wrong count, fails that item. A failed record keeps its reason
class (``extra.reason``); ``results.json`` counts them in ``failure_reasons``.
"""
from __future__ import annotations

import functools
import importlib
import json
import logging

import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .adapters import AdapterOptions, load_adapter, model_slug
from .jsonl import write_json
from .media import check_media_path
from .metrics import BOOTSTRAP_SAMPLES, MetricAccumulator, item_outcome, top_choice, with_ordered_fallbacks
from .hub.source import HubUnavailable, snapshot
from .registry import BenchmarkSpec, get_benchmark
from .results import RESULTS_KEYS, SCHEMA_VERSION, ItemRecord
from . import run_guard
from .sample_files import (SAMPLES, RecordWriter, finished_ids, merge_samples, prepare_resume,
                           read_records)
from .schema import BenchmarkItem, DataError, ModelAdapter, ScoringRequest, Verdict, check_scores
from .seeding import rng_for

log = logging.getLogger(__name__)
RESULTS = "results.json"
PACKAGES = ("mr2bench", "numpy", "scipy", "datasets", "torch", "transformers", "accelerate", "pillow", "av")


@dataclass(frozen=True)
class EvalConfig:
    model: str
    benchmarks: tuple[str, ...]
    out: Path
    data_dirs: Mapping[str, Path | None] = field(default_factory=dict)
    seed: int = 0
    limit: int | None = None
    batch_size: int = 1
    permutations: int = 1
    command: str = ""
    bootstrap_samples: int = BOOTSTRAP_SAMPLES
    progress: bool = True
    overwrite: bool = False         # replace a run folder whose fingerprint differs (run_guard)
    sources: Mapping[str, str] = field(default_factory=dict)      # --source NAME=HUB_ID[:CONFIG][@REV]
    fields: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # --field renames
    hub: Mapping[str, Any] = field(default_factory=dict)          # name -> hub.source.Snapshot (Hub mode)
    model_name: str | None = None   # --model-name: the name in tables and the folder under OUT

    @property
    def display_name(self) -> str:
        return self.model_name or self.model

    @property
    def model_dir(self) -> Path:
        return self.out / model_slug(self.display_name)


@dataclass
class BenchOutcome:
    name: str
    results: dict[str, Any] | None
    n_failed: int
    n_new: int
    n_resumed: int
    seconds: float
    skipped: str | None = None      # why the benchmark did not run (its Hub dataset unavailable)


# ---------------------------------------------------------------- order and records (pure)
def permutation_for(seed: int, item_id: str, n: int, order_policy: str, k: int = 0) -> tuple[int, ...]:
    """Shown position -> original index."""
    if order_policy == "fixed" and k == 0:
        return tuple(range(n))
    rng = rng_for(seed, "order", item_id) if k == 0 else rng_for(seed, "order", item_id, k)
    return tuple(int(i) for i in rng.permutation(n))


def to_original(shown_scores: Sequence[float], perm: Sequence[int]) -> tuple[float, ...]:
    out = [0.0] * len(perm)
    for pos, orig in enumerate(perm):
        out[orig] = float(shown_scores[pos])
    return tuple(out)


def fallback_pick(seed: int, item_id: str, perm: Sequence[int]) -> int:
    """The seeded random choice for an unreadable verdict: a shown position, as an original index."""
    return perm[int(rng_for(seed, "parse-fallback", item_id).integers(len(perm)))]


def record_outcome(rec: ItemRecord, spec: BenchmarkSpec):
    judged = rec.extra.get("judge_samples") if spec.judge_protocol == "agree_unless_rejected" else None
    return item_outcome(rec.rankings, rec.scores, spec.tie_policy, status=rec.status,
                        parse_policy=spec.parse_policy, fallback_pick=rec.extra.get("fallback_pick"),
                        judge_samples=judged)


def record_top_choices(rec: ItemRecord) -> list[tuple[int, ...]]:
    runs = [rec.scores] + [r.get("scores") for r in rec.extra.get("permutation_runs", [])]
    if len(runs) < 2 or any(r is None for r in runs):
        return []
    return [top_choice(r) for r in runs]


def metrics_from_records(records: Iterable[ItemRecord], spec: BenchmarkSpec,
                         bootstrap_samples: int = BOOTSTRAP_SAMPLES) -> dict[str, Any]:
    """Every metric of ``results.json`` from the records alone (shared with ``mr2bench rescore``)."""
    acc = MetricAccumulator(spec.primary_metric)
    reasons: Counter[str] = Counter()
    for rec in with_ordered_fallbacks(records, spec.parse_policy):  # MM-RB's one seed-123 stream
        if rec.status == "failed":
            reasons[record_reason(rec)] += 1
        acc.add(category=rec.category, group=rec.group, outcome=record_outcome(rec, spec), status=rec.status,
                top_choices=record_top_choices(rec), usage=rec.extra.get("usage"))
    computed = acc.compute(bootstrap_samples=bootstrap_samples, bootstrap_key=spec.name)
    computed["failure_reasons"] = dict(reasons.most_common())
    return computed


# ---------------------------------------------------------------- scoring one batch
@functools.lru_cache(maxsize=4096)  # bounded: media pools repeat, memory stays flat
def _media_ok(root: str | None, rel: str, kind: str) -> bool:
    check_media_path(kind, rel, root)  # raises DataError (not cached)
    return True


def _check_media(item: BenchmarkItem, root: Path | None) -> None:
    """Contained, present and regular files (media.check_media; Hub mode too), so an escaping symlink or a
    FIFO fails the item before the adapter opens it; decoding errors fail the item in the adapter."""
    for m in item.media:
        if m.path is not None:
            _media_ok(None if root is None else str(root), m.path, m.kind)


def _call_adapter(adapter: ModelAdapter, requests: list[ScoringRequest]) -> list[Any]:
    """Adapter outputs (or the exception each raised); score_batch first, per item when it fails."""
    batch = getattr(adapter, "score_batch", None)
    if callable(batch) and len(requests) > 1:
        try:
            outs = list(batch(requests))
            if len(outs) == len(requests):
                return outs
            log.warning("score_batch returned %d outputs for %d requests; scoring one by one",
                        len(outs), len(requests))
        except Exception as exc:  # isolate the failing item below
            log.warning("score_batch failed (%s: %s); scoring one by one", type(exc).__name__, exc)
    outs: list[Any] = []
    for req in requests:
        try:
            outs.append(adapter.score(req))
        except Exception as exc:  # an adapter error is a failed item, never a crashed run
            outs.append(exc)
    return outs


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"


RETRYABLE = "adapter error"   # reason class of exceptions a rerun may cure (timeouts, OOM, a dropped server)
_LOCATION = re.compile(r"^.*?:row \d+: ")
_FIELD = re.compile(r"^field '([^']*)': ")
_QUOTED = re.compile(r"\s*('[^']*'|\"[^\"]*\")")
_NUMBER = re.compile(r"\d+(\.\d+)?")


def failure_reason(error: str, exc: BaseException | None = None) -> str:
    """The error's class, for counting: a non-DataError exception is ``adapter error: <type>`` (retryable);
    a DataError is its field and message head, without file, row, quoted values or numbers (a rerun
    repeats it: the data or the adapter's output must change)."""
    if exc is not None and not isinstance(exc, DataError):
        return f"{RETRYABLE}: {type(exc).__name__}"
    text = _LOCATION.sub("", error, count=1)
    m = _FIELD.match(text)
    head = _NUMBER.sub("N", _QUOTED.sub("", text[m.end():] if m else text)).split(":")[0].strip()

    return f"{m.group(1)}: {head}" if m else head


def record_reason(rec: ItemRecord) -> str:
    """The stored reason class (records of older versions: derived from the error text)."""
    return rec.extra.get("reason") or failure_reason(rec.error or "unknown error")


def score_items(adapter: ModelAdapter, spec: BenchmarkSpec, batch: list[tuple[int, Any]], root: Path | None,
                seed: int, permutations: int) -> list[ItemRecord]:
    """Score a batch of (index, BenchmarkItem | BadRow) into records, in the batch's order."""
    from .evaluators._loading import BadRow

    records: dict[int, ItemRecord] = {}
    jobs: list[tuple[int, int, tuple[int, ...]]] = []     # (batch position, run k, permutation)
    requests: list[ScoringRequest] = []
    for pos, (index, item) in enumerate(batch):
        if isinstance(item, BadRow):
            records[pos] = ItemRecord(id=item.id, category=item.category, group=item.id, rankings=(),
                                      permutation=(), scores=None, credit=None, status="failed",
                                      error=item.error,
                                      extra={"index": index, "reason": failure_reason(item.error)})
            continue
        perm0 = permutation_for(seed, item.id, item.n, spec.order_policy)
        try:
            _check_media(item, root)
        except DataError as exc:
            records[pos] = ItemRecord(id=item.id, category=item.category, group=item.group,
                                      rankings=item.rankings, permutation=perm0, scores=None, credit=None,
                                      status="failed", error=str(exc),
                                      extra={"index": index, "reason": failure_reason(str(exc), exc)})
            continue
        for k in range(permutations):
            perm = perm0 if k == 0 else permutation_for(seed, item.id, item.n, spec.order_policy, k)
            jobs.append((pos, k, perm))
            requests.append(ScoringRequest(
                prompt=item.prompt, responses=tuple(item.responses[i] for i in perm), media=item.media,
                item_id=item.id, benchmark=spec.name, category=item.category,
                media_root=None if root is None else str(root)))
    outputs = _call_adapter(adapter, requests) if requests else []
    runs: dict[int, list[tuple[tuple[int, ...], Any]]] = {}
    for (pos, _k, perm), out in zip(jobs, outputs):
        runs.setdefault(pos, []).append((perm, out))
    for pos, item_runs in runs.items():
        index, item = batch[pos]
        records[pos] = _record(item, index, item_runs, spec, seed)
    return [records[pos] for pos in range(len(batch))]


def _record(item: BenchmarkItem, index: int, runs: list[tuple[tuple[int, ...], Any]], spec: BenchmarkSpec,
            seed: int) -> ItemRecord:
    extra: dict[str, Any] = {"index": index}
    usage: dict[str, float] = {}
    parsed: list[tuple[tuple[int, ...], tuple[float, ...] | None, str]] = []
    error = reason = None
    for perm, out in runs:
        raw = ""
        if isinstance(out, BaseException):
            if error is None:
                error, reason = _error_text(out), failure_reason(_error_text(out), out)
            parsed.append((perm, None, raw))
            continue
        if isinstance(out, Verdict):
            raw = out.raw if isinstance(out.raw, str) else str(out.raw)
            for key, value in (out.usage or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    usage[key] = usage.get(key, 0) + value
        try:
            shown = check_scores(out, item.n)
            if isinstance(out, Verdict) and out.samples and not parsed:  # run 0: each judge sample, scored
                from .judges.verdict import samples_in_original            # by the benchmark's judge_protocol
                extra["judge_samples"] = samples_in_original(out.samples, perm)
        except DataError as exc:  # adapter output is untrusted: inf, None, "1.5", [1], a wrong length
            if error is None:
                error, reason = str(exc), failure_reason(str(exc), exc)
            shown = None
        parsed.append((perm, None if shown is None else to_original(shown, perm), raw))
    perm0, scores, raw0 = parsed[0]
    if raw0:
        extra["raw"] = raw0
    if usage:
        extra["usage"] = usage
    if len(parsed) > 1:
        extra["permutation_runs"] = [{"permutation": list(p), "scores": None if s is None else list(s),
                                      **({"raw": r} if r else {})} for p, s, r in parsed[1:]]
    if error is not None:
        extra["reason"] = reason
        return ItemRecord(id=item.id, category=item.category, group=item.group, rankings=item.rankings,
                          permutation=perm0, scores=None, credit=None, status="failed", error=error,
                          extra=extra)
    status = "ok" if scores is not None else "parse_failure"
    if scores is None and spec.parse_policy == "seeded_random":
        extra["fallback_pick"] = fallback_pick(seed, item.id, perm0)
    rec = ItemRecord(id=item.id, category=item.category, group=item.group, rankings=item.rankings,
                     permutation=perm0, scores=scores, credit=None, status=status, extra=extra)
    credit = record_outcome(rec, spec).credit
    if credit is None and status == "ok" and spec.judge_protocol == "agree_unless_rejected":
        status = "parse_failure"  # cal.py: no strict majority of agree or reject -> left out
    return replace(rec, credit=credit, status=status)


# ---------------------------------------------------------------- distribution
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    barrier: Callable[[], None] = lambda: None
    device: str | None = None
    share: Callable[[Any], Any] = lambda obj: obj   # rank 0's object, returned on every rank


def _broadcast(obj: Any) -> Any:
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj], from_process=0)[0]


def on_rank0(dist: Dist, fn: Callable[[], Any]) -> Any:
    """fn() on rank 0, its value (or its DataError, raised) on every rank: no rank writes anything before
    rank 0 has checked the run folder, and a refusal stops every rank, not only rank 0."""
    value: Any = None
    if dist.rank == 0:
        try:
            value = ("ok", fn())
        except DataError as exc:
            value = ("error", str(exc))
        except OSError as exc:  # an unwritable --out: still one line, on every rank
            value = ("error", f"{type(exc).__name__}: {exc}")
    kind, payload = dist.share(value)
    if kind == "error":
        _close_group(dist)
        raise DataError(payload)
    return payload


def _close_group(dist: Dist) -> None:
    """Before a refused run exits: every rank leaves together and tears its process group down, so rank 0
    (the host of the rendezvous store) never exits under a rank still talking to it (SIGABRT there)."""
    if dist.world <= 1:
        return
    dist.barrier()
    import torch.distributed as td

    if td.is_initialized():
        td.destroy_process_group()


def dist_from_env() -> Dist:
    """accelerate launch / torchrun set RANK and WORLD_SIZE; one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    from accelerate import PartialState

    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    if state.num_processes != world:  # never let two processes both believe they are alone
        raise DataError(f"WORLD_SIZE={world} but accelerate started {state.num_processes} process(es)",
                        field="WORLD_SIZE")
    return Dist(rank=state.process_index, world=state.num_processes, barrier=state.wait_for_everyone,
                device=str(state.device), share=_broadcast)


# ---------------------------------------------------------------- provenance
def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_sha() -> str | None:
    import subprocess

    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def build_results(spec: BenchmarkSpec, computed: Mapping[str, Any], cfg: EvalConfig, data_dir: Path | None,
                  provenance: Mapping[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "benchmark": spec.name, "benchmark_version": spec.version,
        "hub_id": spec.hub_id, "config": spec.config, "split": spec.split, "protocol": spec.protocol,
        # the commit actually read (Hub mode), the pinned one otherwise; requested = the spec's pin
        "revision": getattr(cfg.hub.get(spec.name), "revision", None) or spec.revision,
        "requested_revision": spec.revision,
        "primary_metric": spec.primary_metric, "headline_metric": spec.headline_metric,
        "seed": cfg.seed, "model": cfg.model, "model_name": cfg.display_name, "permutations": cfg.permutations,
        "runtime": provenance.get("runtime"),
        "packages": provenance.get("packages"), "git_sha": provenance.get("git_sha"),
        "command": cfg.command,
        "policies": {"tie": spec.tie_policy, "parse": spec.parse_policy, "order": spec.order_policy,
                     "aggregation": spec.aggregation},
        "data_source": "hub" if data_dir is None or spec.name in cfg.hub else "local",
        "data_dir": None if data_dir is None or spec.name in cfg.hub else str(Path(data_dir).resolve()),
        "synthetic": _synthetic(data_dir) if data_dir is not None and spec.name not in cfg.hub else False,
    }
    for key in ("metrics", "per_category", "ci95", "n_items", "n_scored", "n_failed", "n_parse_failures",
                "n_score_ties", "n_groups_with_failures", "failure_reasons", "usage"):
        res[key] = computed[key]
    res["status"] = "complete" if computed["n_failed"] == 0 else "complete_with_failures"
    missing = [k for k in RESULTS_KEYS if k not in res]
    assert not missing, missing
    return res


def _synthetic(data_dir: Path) -> bool:
    """A build-benchmark folder says whether its judgments are the seeded demo arena's."""
    report = Path(data_dir) / "build_report.json"
    try:
        return bool(json.loads(report.read_text(encoding="utf-8")).get("synthetic")) if report.is_file() else False
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------- the run
def _load_items(spec: BenchmarkSpec, data_dir: Path | None, limit: int | None) -> Iterator[Any]:
    module_name, _, attr = spec.loader.partition(":")
    return getattr(importlib.import_module(module_name), attr)(data_dir, spec, limit)


def _batched(it: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for x in it:
        batch.append(x)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class RunPlan:
    bench_dir: Path                 # OUT/<model>/<benchmark>
    work_dir: Path                  # where this run writes: bench_dir, or its --overwrite folder until done
    fingerprint: dict[str, Any]


def _built_for(root: Path) -> str | None:
    """The benchmark a build-benchmark folder was built for (its build_report.json says), else None."""
    try:
        built_for = json.loads((root / "build_report.json").read_text(encoding="utf-8")).get("benchmark")
    except (OSError, ValueError, AttributeError):
        return None
    return built_for if isinstance(built_for, str) else None


def _other_build(spec: BenchmarkSpec, root: Path, built_for: str) -> DataError:
    return DataError(f"{spec.name}: {root} is a build-benchmark folder of {built_for} (build_report.json), "
                     f"not {spec.name} data; check --benchmarks and --data-dir")


def _no_items(spec: BenchmarkSpec, root: Path) -> DataError:
    return DataError(f"{spec.name}: 0 items to score in {root}: none of its rows is a {spec.name} item; "
                     "check --benchmarks and --data-dir")


def plan_run(spec: BenchmarkSpec, cfg: EvalConfig, options: AdapterOptions) -> RunPlan:
    """Rank 0, before anything of this benchmark is written: the fingerprint (a local folder is read once
    for its data digest) and the folder it may be written into, or a DataError refusing the run."""
    data_dir = cfg.data_dirs.get(spec.name)
    snap = cfg.hub.get(spec.name)
    if data_dir is None or snap is not None:
        data = run_guard.hub_data(spec, getattr(snap, "revision", None))
    else:
        root = Path(data_dir).resolve()
        built_for = _built_for(root)
        if built_for is not None and built_for != spec.name:  # before reading: a build holds one benchmark
            raise _other_build(spec, root, built_for)
        data = run_guard.local_data(_load_items(spec, root, cfg.limit))
        if data["n_items"] == 0:
            raise _no_items(spec, root)
    fp = run_guard.fingerprint(model=cfg.model, options=options, spec=spec, seed=cfg.seed,
                               permutations=cfg.permutations, limit=cfg.limit, data=data)
    bench_dir = cfg.model_dir / spec.name
    return RunPlan(bench_dir, run_guard.plan_folder(bench_dir, fp, cfg.overwrite), fp)


def run_benchmark(adapter: ModelAdapter, spec: BenchmarkSpec, cfg: EvalConfig, dist: Dist,
                  provenance: Mapping[str, Any], plan: RunPlan) -> BenchOutcome:
    from .progress import Progress

    data_dir = cfg.data_dirs.get(spec.name)
    root = None if data_dir is None else Path(data_dir).resolve()
    bench_dir = plan.work_dir
    if dist.rank == 0:
        run_guard.start_folder(bench_dir, plan.fingerprint)
        retried = prepare_resume(bench_dir)
        if retried:
            log.info("%s: retrying %d failed items", spec.name, retried)
    dist.barrier()
    done = finished_ids(bench_dir)
    part = bench_dir / (SAMPLES if dist.world == 1 else f"samples.rank{dist.rank}-of-{dist.world}.jsonl")
    writer = RecordWriter(part)
    n_new = n_failed = n_resumed = n_seen = 0
    start = time.perf_counter()
    n_total = plan.fingerprint.get("data", {}).get("n_items", cfg.limit)   # local data: counted in plan_run
    bar = Progress(f"{spec.name} [rank {dist.rank}]" if dist.world > 1 else spec.name,
                   None if n_total is None else len(range(dist.rank, n_total, dist.world)), "items",
                   enabled=cfg.progress, leave=True)

    def mine() -> Iterator[tuple[int, Any]]:
        nonlocal n_seen, n_resumed
        for index, item in enumerate(_load_items(spec, root, cfg.limit)):
            n_seen = index + 1
            if index % dist.world != dist.rank:
                continue
            if item.id in done:
                n_resumed += 1
                bar.update(1)
                continue
            yield index, item

    try:
        for batch in _batched(mine(), max(1, cfg.batch_size)):
            for rec in score_items(adapter, spec, batch, root, cfg.seed, cfg.permutations):
                writer.write(rec)
                n_new += 1
                n_failed += rec.status == "failed"
            bar.update(len(batch))
    finally:
        writer.close()
        bar.close()
    seconds = time.perf_counter() - start
    dist.barrier()
    results = None
    if dist.rank == 0:
        if n_seen == 0:  # Hub mode (a local folder was counted in plan_run)
            raise DataError(f"{spec.name}: 0 items to score from {data_dir or spec.hub_id}")
        merge_samples(bench_dir)
        computed = metrics_from_records(read_records(bench_dir / SAMPLES), spec, cfg.bootstrap_samples)
        if computed["n_items"] != n_seen:
            hint = ("rerun the same command to finish" if computed["n_items"] < n_seen else
                    "the folder holds records from a different run (another --limit or data); use a new --out")
            raise DataError(f"{spec.name}: {computed['n_items']} records for {n_seen} items; {hint}",
                            file=str(bench_dir / SAMPLES))
        results = build_results(spec, computed, cfg, data_dir, provenance)
        write_json(bench_dir / (RESULTS + ".tmp"), results)
        (bench_dir / (RESULTS + ".tmp")).replace(bench_dir / RESULTS)
        run_guard.swap_in(bench_dir, plan.bench_dir)  # --overwrite: the new run replaces the old one now
        n_failed = computed["n_failed"]
    return BenchOutcome(spec.name, results, n_failed, n_new, n_resumed, seconds)


def with_hub_snapshot(spec: BenchmarkSpec, cfg: EvalConfig) -> EvalConfig:
    """Hub mode (no --data-dir): the repo snapshot becomes the benchmark's data folder and media root."""
    if cfg.data_dirs.get(spec.name) is not None:
        return cfg
    snap = snapshot(spec)
    return replace(cfg, data_dirs={**cfg.data_dirs, spec.name: snap.root}, hub={**cfg.hub, spec.name: snap})


def _check_model_kind(spec: str) -> None:
    from .adapters import MODEL_KINDS, split_spec
    from .registry import UnknownNameError

    try:
        MODEL_KINDS.get(split_spec(spec)[0])
    except UnknownNameError as exc:  # the same line load_adapter gives, before the data digest pass
        raise DataError(str(exc), field="--model") from None


def evaluate(cfg: EvalConfig, options: AdapterOptions, adapter: ModelAdapter | None = None,
             dist: Dist | None = None) -> list[BenchOutcome]:
    """Run every benchmark of ``cfg``; rank 0 also writes summary.json and the leaderboard."""
    dist = dist or dist_from_env()
    from .hub.source import specs_with_overrides

    specs = specs_with_overrides([get_benchmark(name) for name in cfg.benchmarks], cfg.sources, cfg.fields)
    if adapter is None:
        _check_model_kind(cfg.model)  # a misspelled kind is answered before any data is read
    model_dir = cfg.model_dir
    # one writer per run folder: rank 0 locks every benchmark's folder before anything is written
    names = dict.fromkeys(s.name for s in specs)
    locks = [run_guard.RunLock(run_guard.lock_path(model_dir / name)) for name in names]

    try:
        on_rank0(dist, lambda: [lock.acquire() for lock in locks])
        # local folders are checked before the model loads; Hub ones once their snapshot is resolved
        plans = on_rank0(dist, lambda: {s.name: plan_run(s, cfg, options) for s in specs
                                        if cfg.data_dirs.get(s.name) is not None})
        return _run_all(cfg, options, adapter, dist, specs, plans)
    finally:
        for lock in locks:
            lock.release()


def _run_all(cfg: EvalConfig, options: AdapterOptions, adapter: ModelAdapter | None, dist: Dist,
             specs: list[BenchmarkSpec], plans: dict[str, RunPlan]) -> list[BenchOutcome]:
    from .leaderboard import write_leaderboards, write_summary

    user_options = options
    if dist.device is not None and options.device == "auto":
        options = replace(options, device=dist.device)
    if adapter is None:
        adapter = load_adapter(cfg.model, options)
    provenance = {"packages": package_versions(), "git_sha": git_sha(),
                  "runtime": {"device": options.device, "dtype": options.dtype, "batch_size": cfg.batch_size,
                              "num_frames": options.num_frames, "processes": dist.world}}
    outcomes = []
    for spec in specs:
        try:
            spec_cfg = with_hub_snapshot(spec, cfg)
        except HubUnavailable as exc:  # skip this one, run the others; the CLI exits non-zero at the end
            log.error("%s", exc)
            outcomes.append(BenchOutcome(spec.name, None, 0, 0, 0, 0.0, skipped=str(exc)))
            continue
        plan = plans.get(spec.name) or on_rank0(dist, lambda: plan_run(spec, spec_cfg, user_options))
        outcomes.append(run_benchmark(adapter, spec, spec_cfg, dist, provenance, plan))
    if dist.rank == 0:
        model_dir = cfg.model_dir
        write_leaderboards(cfg.out, model_dir, write_summary(model_dir, cfg.display_name))
    return outcomes
