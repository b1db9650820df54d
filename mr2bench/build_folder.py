"""Crash-safe build folders: build into a temporary sibling, seal it with a manifest, swap it in.

``build_atomically(OUT, build)`` runs ``build(TMP)`` in ``OUT.tmp-<pid>-<hex>`` (an empty folder beside
OUT, so on the same filesystem and with no stale file of an earlier build), fsyncs every file, writes
``manifest.json`` LAST (each file's size and sha256, the schema version and the build's kind / seed /
input digest), then swaps: rename OUT -> ``OUT.trash-<pid>-<hex>``, rename TMP -> OUT, delete the trash.

What a kill -9 leaves at each point (readers call ``verify_build_folder``):
- while building or sealing: OUT untouched (the old complete build, or absent); TMP is left behind;
- between the two renames (a window of two system calls): OUT absent, readers refuse it and name the
  leftovers (the trash is the old complete build, TMP the new sealed one);
- after the second rename: OUT is the new complete build; the trash is left behind.
The next build into OUT deletes leftovers whose process is gone. A build that fails with a DataError
after writing its reports (``build_report.json``) is swapped in WITHOUT a manifest: the user can read
why, and every reader refuses it.

Verification hashes every file in full (about 1 GB/s; the demo folders verify in well under a second):
no cache keyed by size and mtime, so a file rewritten in place with its mtime restored is still caught.
"""
from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .jsonl import file_sha256, read_json
from .schema import DataError

MANIFEST = "manifest.json"
SCHEMA = "mr2bench-build-manifest"
SCHEMA_VERSION = 1
REPORT = "build_report.json"
CRASH_ENV = "MR2BENCH_TEST_CRASH_AT"   # test hook: SIGKILL the build at the named point
T = TypeVar("T")


def crash_point(name: str) -> None:
    """Die like kill -9 at a named point of a build when MR2BENCH_TEST_CRASH_AT names it (tests only)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------- manifest
def folder_files(root: Path) -> list[str]:
    """Every entry below ``root`` that is not a folder, as sorted POSIX paths, the manifest itself excepted;
    symlinks are listed (not followed) so that verification refuses them."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        found += [(base / n).relative_to(root).as_posix() for n in filenames]
        found += [(base / n).relative_to(root).as_posix() for n in dirnames if (base / n).is_symlink()]
    return sorted(f for f in found if f != MANIFEST)


def _entry(path: Path) -> dict[str, Any]:
    if path.is_symlink() or not path.is_file():
        raise DataError("is a link or a special file; a build folder holds regular files only", file=str(path))
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def manifest_for(root: Path) -> dict[str, Any]:
    """The manifest of a folder as it is now (a pure function of its files and build report)."""
    report = read_json(root / REPORT) if (root / REPORT).is_file() else {}
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "build": {k: report.get(k) for k in ("benchmark", "kind", "seed", "input_sha256")},
            "files": {rel: _entry(root / rel) for rel in folder_files(root)}}


def write_manifest(root: str | Path) -> dict[str, Any]:
    """Seal a finished build folder: fsync its files, then write and fsync ``manifest.json`` (last)."""
    root = Path(root)
    fsync_tree(root)
    manifest = manifest_for(root)
    text = json.dumps(manifest, sort_keys=True, ensure_ascii=False, indent=2) + "\n"
    _write_synced(root / MANIFEST, text.encode("utf-8"))
    _fsync_dir(root)
    return manifest


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder below ``root`` to disk (a rename must not outrun the data it names)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(dirpath))


# ---------------------------------------------------------------- readers
def is_build_folder(root: str | Path) -> bool:
    """A folder build-benchmark wrote (its report or manifest at the root), not a staged Hub folder
    (``mr2bench.hub.stage``), which keeps its tables under ``data/`` and is checked by its own validator."""
    root = Path(root)
    if (root / "data").is_dir():
        return False
    return (root / MANIFEST).is_file() or (root / REPORT).is_file()


def _refuse(root: Path, why: str) -> DataError:
    return DataError(f"build folder {root} is incomplete or modified ({why}); rebuild it with "
                     f"{_rebuild_hint(root)}")


def _rebuild_hint(root: Path) -> str:
    try:
        command = read_json(root / REPORT).get("command")
    except (OSError, DataError):
        command = None
    if isinstance(command, str) and command.strip() and "\n" not in command:
        return command
    return f"build-benchmark video|image [INPUT] --out {root}"


def _expected_files(root: Path) -> dict[str, Any]:
    if not (root / MANIFEST).is_file():
        if (root / REPORT).is_file() and not (root / "items.parquet").exists():
            raise DataError(f"build folder {root} is from a failed build (no manifest.json): build_report.json "
                            "and quarantine.jsonl say why; fix the input or flags and rerun build-benchmark")
        raise _refuse(root, "manifest.json missing: the build was interrupted or the folder was not written by "
                            "build-benchmark")
    try:
        manifest = read_json(root / MANIFEST)
    except DataError as exc:
        raise _refuse(root, f"manifest.json unreadable: {exc.message}") from None
    files = manifest.get("files")
    if manifest.get("schema") != SCHEMA or not isinstance(files, dict):
        raise _refuse(root, "manifest.json is not a build manifest")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise _refuse(root, f"manifest.json schema_version {manifest.get('schema_version')!r}, "
                            f"this mr2bench reads {SCHEMA_VERSION}")
    return files


def verify_build_folder(root: str | Path) -> dict[str, Any]:
    """Raise a one-line DataError unless ``root`` holds exactly the files its manifest lists, each with its
    recorded size and sha256; return the manifest's ``files``."""
    root = Path(root)
    if not root.is_dir():
        leftovers = leftover_siblings(root)
        hint = f"; an interrupted build left {', '.join(p.name for p in leftovers)}" if leftovers else ""
        raise DataError(f"build folder {root} not found{hint}; rebuild it with build-benchmark ... --out {root}")
    files = _expected_files(root)
    present = folder_files(root)
    extra = sorted(set(present) - set(files))
    missing = sorted(set(files) - set(present))
    if extra:
        raise _refuse(root, f"file {extra[0]} is not in manifest.json" + _more(extra))
    if missing:
        raise _refuse(root, f"file {missing[0]} is missing" + _more(missing))
    sized = [(rel, meta) for rel, meta in files.items() if isinstance(meta, dict)]
    for rel, meta in sorted(sized):     # sizes first: a truncated file is caught without hashing anything
        path = root / rel
        if path.is_symlink() or not path.is_file() or path.stat().st_size != meta.get("bytes"):
            raise _refuse(root, f"file {rel} changed")
    for rel, meta in sorted(files.items()):
        if not isinstance(meta, dict) or file_sha256(root / rel) != meta.get("sha256"):
            raise _refuse(root, f"file {rel} changed")
    return files


def _more(names: list[str]) -> str:
    return f" (and {len(names) - 1} more)" if len(names) > 1 else ""


def check_build_folder(root: str | Path) -> None:
    """The reader's gate: verify a build folder; leave staged Hub folders and hand-made ones alone."""
    root = Path(root)
    if is_build_folder(root) or (not root.exists() and leftover_siblings(root)):
        verify_build_folder(root)


# ---------------------------------------------------------------- writer
def _sibling(final: Path, what: str) -> Path:
    return final.with_name(f"{final.name}.{what}-{os.getpid()}-{secrets.token_hex(4)}")


def _pattern(final: Path) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(final.name)}\.(?:tmp|trash)-(\d+)-[0-9a-f]+$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False      # our own earlier attempt (or a recycled pid): nobody is writing it now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass              # alive, another user's
    return True


def leftover_siblings(out: str | Path) -> list[Path]:
    """Temporary and trash folders an interrupted build into ``out`` left beside it."""
    final = Path(os.path.realpath(out))
    if not final.parent.is_dir():
        return []
    pat = _pattern(final)
    return sorted(p for p in final.parent.iterdir() if pat.match(p.name))


def remove_leftovers(final: Path) -> None:
    pat = _pattern(final)
    for path in leftover_siblings(final):
        m = pat.match(path.name)
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _check_replaceable(final: Path, shown: Path, report: str = REPORT) -> None:
    """OUT is replaced as a whole: refuse a file, or a folder this kind of output (its ``report``) is not."""
    cwd = Path.cwd().resolve()
    if cwd == final or final in cwd.parents:
        raise DataError("must not be the working folder or a folder above it: OUT is replaced as a whole",
                        field="--out", file=str(shown))
    if not final.exists():
        return
    if not final.is_dir():
        raise DataError("exists and is not a folder", field="--out", file=str(shown))
    ours = is_build_folder(final) if report == REPORT else (final / report).is_file() and not is_build_folder(final)
    if any(final.iterdir()) and not ours:
        what = "a build-benchmark folder" if report == REPORT else f"a folder this command wrote (with {report})"
        raise DataError(f"exists and is not {what}; --out is replaced as a whole, so pick a new folder or "
                        "remove this one", field="--out", file=str(shown))


def swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` with ``tmp``: two renames on one filesystem, then delete the old folder."""
    trash = None
    if final.exists():
        trash = _sibling(final, "trash")
        os.rename(final, trash)
    crash_point("between-renames")
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    crash_point("before-trash-removed")
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def build_atomically(out: str | Path, build: Callable[[Path], T], report: str = REPORT, seal: bool = True) -> T:
    """Run ``build(tmp_folder)`` and swap the sealed result in as ``out``; see the module docstring.
    ``report``/``seal``: other outputs written the same way (``build-benchmark plan``: ``plan_report.json``,
    no manifest, since no reader takes it as a build)."""
    shown = Path(out)
    final = Path(os.path.realpath(out))      # a symlinked OUT keeps its link; the target is replaced
    _check_replaceable(final, shown, report)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final)
    tmp = _sibling(final, "tmp")
    tmp.mkdir()
    try:
        result = build(tmp)
    except DataError:
        if (tmp / report).is_file():        # a failed build with its reports: readable, never readable as data
            fsync_tree(tmp)
            swap_in(tmp, final)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    crash_point("before-manifest")
    if seal:
        write_manifest(tmp)
    else:
        fsync_tree(tmp)
    crash_point("after-manifest")
    swap_in(tmp, final)
    return result


def atomic_output(builder: Callable[..., T] | None = None, *, report: str = REPORT, seal: bool = True):
    """Decorate ``build_video(source, cfg, ...)``-shaped builders: they write into a temporary folder in
    place of ``cfg.out``, which is swapped in sealed (``cfg.out`` is restored afterwards). Bare for builds;
    ``atomic_output(report=..., seal=False)`` for other outputs written the same way (see build_atomically)."""
    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(source: Any, cfg: Any, *args: Any, **kwargs: Any) -> T:
            final = cfg.out

            def run(tmp: Path) -> T:
                cfg.out = tmp
                return fn(source, cfg, *args, **kwargs)

            try:
                return build_atomically(final, run, report=report, seal=seal)
            finally:
                cfg.out = final
        return wrapper
    return decorate if builder is None else decorate(builder)
