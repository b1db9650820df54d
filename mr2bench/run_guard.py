"""Run integrity for evaluate-model: a run folder holds exactly the run its fingerprint describes, and
only one process writes it.

- **Fingerprint** (``fingerprint.json`` in ``OUT/<model>/<benchmark>/``): everything that decides the
  records (model spec and the adapter options that change scores, seed, permutations, benchmark spec name,
  version and policies, judge generation settings (every ``--model-arg`` that reaches the adapter),
  mr2bench version, limit) and the data (a local folder: SHA-256 over the loaded items' ids and gold
  rankings in loader order, and their count; the Hub: id, config, split, revision). A run resumes only
  into a folder with an equal fingerprint; otherwise it is refused before anything is written, naming the
  fields that differ and the two ways out (``--overwrite``, or another ``--out``).
- **--overwrite** runs into ``OUT/<model>/.overwrite/<benchmark>/`` and swaps it in only when complete
  (``swap_in``), so a killed overwrite leaves the earlier run whole (rerun with ``--overwrite`` to resume).
- **Lock** (``OUT/<model>/.<benchmark>.lock``, O_CREAT|O_EXCL, holding ``pid hostname``): taken before
  anything is written; a lock whose pid is dead on this host is stale and taken over. It sits beside the
  run folder, not in it, so that the swap never moves it.

Left out of the fingerprint, because they change speed or bookkeeping, never a score: ``--device`` (each
rank of a multi-process run has its own, and that run must equal one process byte for byte),
``--batch-size`` (score_batch and score return the same scores), the cache folder (derived from --out),
the API key (never stored) and the name of its variable, and ``NON_SCORING_ARGS``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .adapters import AdapterOptions
from .jsonl import write_json
from .registry import BenchmarkSpec
from .schema import DataError
from .secrets import redact_url, scrub

FINGERPRINT = "fingerprint.json"
FINGERPRINT_VERSION = 1
OVERWRITE_DIR = ".overwrite"
# --model-arg keys that bound how long or how hard an adapter tries; a call they cut short is a failed item,
# retried on resume, never a different score.
NON_SCORING_ARGS = frozenset({"concurrency", "timeout", "max_retries", "backoff"})
# files that make a folder a run (anything else, such as a lock or an empty folder, is not one)
RUN_FILES = ("samples.jsonl", "results.json", FINGERPRINT)


# ---------------------------------------------------------------- the fingerprint (pure)
def data_digest(items: Iterable[Any]) -> tuple[str, int]:
    """SHA-256 over (id, gold rankings) of each loaded item in loader order, and the item count.
    A row the loader could not convert (no rankings) counts by its id alone."""
    h = hashlib.sha256()
    n = 0
    for item in items:
        rankings = getattr(item, "rankings", None)
        h.update(item.id.encode("utf-8"))
        h.update(b"\x1f" + (",".join(map(str, rankings)).encode() if rankings is not None else b"-") + b"\n")
        n += 1
    return h.hexdigest(), n


def local_data(items: Iterable[Any]) -> dict[str, Any]:
    digest, n = data_digest(items)
    return {"source": "local", "digest": digest, "n_items": n}


def hub_data(spec: BenchmarkSpec, revision: str | None = None) -> dict[str, Any]:
    return {"source": "hub", "hub_id": spec.hub_id, "config": getattr(spec, "config", None), "split": spec.split,
            "revision": revision or spec.revision or "main"}


def _adapter_options(options: AdapterOptions) -> dict[str, Any]:
    return {"dtype": options.dtype, "num_frames": options.num_frames,
            "trust_remote_code": options.trust_remote_code,
            "api_base": None if options.api_base is None else redact_url(options.api_base)}


def fingerprint(*, model: str, options: AdapterOptions, spec: BenchmarkSpec, seed: int, permutations: int,
                limit: int | None, data: Mapping[str, Any]) -> dict[str, Any]:
    model_args = {k: scrub(str(v)) for k, v in sorted(options.extra.items()) if k not in NON_SCORING_ARGS}
    return {"fingerprint_version": FINGERPRINT_VERSION, "mr2bench_version": __version__, "model": scrub(model),
            "adapter_options": _adapter_options(options), "model_args": model_args, "seed": seed,
            "permutations": permutations, "limit": limit, "benchmark": spec.name,
            "benchmark_version": spec.version,
            "policies": {"tie": spec.tie_policy, "parse": spec.parse_policy, "order": spec.order_policy,
                         "aggregation": spec.aggregation},
            "data": dict(data)}


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping) and (obj or not prefix):
        return {k: v for key, val in obj.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): obj}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """'seed 0 -> 1' for every leaf that differs (missing leaves read as absent)."""
    a, b = _flat(old), _flat(new)
    show = lambda v: "absent" if v is _ABSENT else _short(json.dumps(v))
    return [f"{k} {show(a.get(k, _ABSENT))} -> {show(b.get(k, _ABSENT))}"
            for k in sorted(set(a) | set(b)) if a.get(k, _ABSENT) != b.get(k, _ABSENT)]


_ABSENT = object()


def _short(text: str, keep: int = 16) -> str:
    """A digest is told apart by its first characters; a line naming several stays one readable line."""
    return text if len(text) <= 2 * keep else text[:keep] + "...\""


def results_mismatch(fp: Mapping[str, Any], results: Mapping[str, Any]) -> list[str]:
    """Fields results.json shares with the fingerprint that disagree (for ``mr2bench rescore``)."""
    pairs = {k: results.get(k) for k in ("model", "seed", "permutations", "benchmark", "benchmark_version")}
    pairs.update({f"policies.{k}": v for k, v in (results.get("policies") or {}).items()})
    if fp.get("data", {}).get("source") == "local":
        pairs["data.n_items"] = results.get("n_items")
    flat = _flat(fp)
    return [f"{k}: fingerprint {json.dumps(flat.get(k))} != results.json {json.dumps(v)}"
            for k, v in pairs.items() if k in flat and flat[k] != v]


# ---------------------------------------------------------------- the run folder
def read_fingerprint(folder: Path) -> dict[str, Any] | None:
    path = folder / FINGERPRINT
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"unreadable": str(path)}
    return obj if isinstance(obj, dict) else {"unreadable": str(path)}


def holds_run(folder: Path) -> bool:
    return folder.is_dir() and (any((folder / f).exists() for f in RUN_FILES)
                                or any(folder.glob("samples.rank*-of-*.jsonl")))


def overwrite_dir(bench_dir: Path) -> Path:
    return bench_dir.parent / OVERWRITE_DIR / bench_dir.name


def refusal(bench_dir: Path, diffs: list[str]) -> DataError:
    what = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
    return DataError(f"holds a different run ({what}); rerun with --overwrite to replace it, or choose another "
                     "--out", file=str(bench_dir))


def plan_folder(bench_dir: Path, fp: Mapping[str, Any], overwrite: bool) -> Path:
    """The folder this run writes into (bench_dir, or the overwrite folder), or a DataError refusing it.
    Reads only: nothing is written here."""
    if not holds_run(bench_dir):
        return bench_dir
    if overwrite:
        return overwrite_dir(bench_dir)
    stored = read_fingerprint(bench_dir)
    if stored is None:
        raise refusal(bench_dir, ["no fingerprint.json (made by an older mr2bench)"])
    diffs = differences(stored, fp)
    if diffs:
        raise refusal(bench_dir, diffs)
    return bench_dir


def start_folder(work_dir: Path, fp: Mapping[str, Any]) -> None:
    """Create work_dir and write the fingerprint; an overwrite folder left by another run is cleared,
    one left by this same run (killed) is resumed."""
    if work_dir.parent.name == OVERWRITE_DIR and holds_run(work_dir) and read_fingerprint(work_dir) != fp:
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if read_fingerprint(work_dir) != fp:
        tmp = work_dir / (FINGERPRINT + ".tmp")
        write_json(tmp, fp)
        tmp.replace(work_dir / FINGERPRINT)


def swap_in(work_dir: Path, bench_dir: Path) -> None:
    """Replace bench_dir by the finished overwrite folder: two renames, then the old run is deleted."""
    if work_dir == bench_dir:
        return
    old = bench_dir.with_name(f".{bench_dir.name}.replaced")
    if old.exists():
        shutil.rmtree(old)
    if bench_dir.exists():
        bench_dir.rename(old)
    work_dir.rename(bench_dir)
    shutil.rmtree(old, ignore_errors=True)
    try:
        work_dir.parent.rmdir()  # .overwrite/ when it is empty
    except OSError:
        pass


# ---------------------------------------------------------------- one writer
def lock_path(bench_dir: Path) -> Path:
    return bench_dir.parent / f".{bench_dir.name}.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _holder(path: Path) -> tuple[int, str] | None:
    try:
        pid, host = path.read_text(encoding="utf-8").split()[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None


class RunLock:
    """``pid hostname`` in a file created with O_CREAT|O_EXCL; released on exit (a killed holder leaves a
    stale lock, which the next run on the same host detects by its dead pid and takes over)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _attempt in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._take_over_stale():
                    continue
                raise self._busy() from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(me)
            self.held = True
            return
        raise self._busy()

    def _take_over_stale(self) -> bool:
        holder = _holder(self.path)
        if holder is None or holder[1] != socket.gethostname() or _pid_alive(holder[0]):
            return False
        if _holder(self.path) != holder:  # taken over by someone else meanwhile
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        return True

    def _busy(self) -> DataError:
        holder = _holder(self.path)
        who = f"process {holder[0]} on {holder[1]}" if holder else "another process"
        return DataError(f"{who} is writing this run (lock {self.path.name}); wait for it to finish, or use "
                         "another --out (delete the lock only if that process is gone)",
                         file=str(self.path.parent / self.path.name[1:-len('.lock')]))

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                if _holder(self.path) == (os.getpid(), socket.gethostname()):
                    self.path.unlink()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            try:
                self.path.parent.rmdir()  # the model folder, when a refused run left it empty
            except OSError:
                pass
