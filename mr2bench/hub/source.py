"""Where a benchmark's data comes from: ``--source`` / ``--field`` overrides on its spec, and Hub mode.

Hub mode takes the dataset repo at the spec's revision with ``huggingface_hub.snapshot_download``
(``repo_type="dataset"``, only the spec's ``hub_files``) into the HF cache, and uses the snapshot folder
as both the rows' folder and the media root, so media paths that are repo files resolve exactly as in a
local ``--data-dir`` copy. The snapshot folder is ``.../datasets--OWNER--NAME/snapshots/<sha>``: its name
is the commit actually resolved, which ``results.json`` records. With ``HF_HUB_OFFLINE=1`` a cached copy
is used without any network call.

An unreachable Hub (or an offline one without a cached copy) raises ``HubUnavailable``: one line naming
the dataset and the two ways out; the runner skips that benchmark and runs the others.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..registry import BenchmarkSpec
from ..schema import DataError

_SHA = re.compile(r"^[0-9a-f]{40}$")


class HubUnavailable(DataError):
    """The benchmark's Hub dataset could not be read: the run skips it and exits non-zero at the end."""


@dataclass(frozen=True)
class Snapshot:
    root: Path
    revision: str | None     # the commit sha the snapshot holds; None for a local folder given as hub_id


def parse_source(value: str) -> tuple[str, str, str | None, str | None]:
    """``NAME=HUB_ID[:CONFIG][@REVISION]`` -> (benchmark, hub id, config, revision)."""
    name, sep, rest = value.partition("=")
    rest, _, revision = rest.partition("@")
    hub_id, _, config = rest.partition(":")
    if not (sep and name.strip() and hub_id.strip()) or hub_id.count("/") != 1:
        raise DataError(f"expected NAME=OWNER/DATASET[:CONFIG][@REVISION], got {value!r}", field="--source")
    return name.strip(), hub_id.strip(), config.strip() or None, revision.strip() or None


def with_overrides(spec: BenchmarkSpec, source: str | None = None,
                   fields: Iterable[tuple[str, str]] = ()) -> BenchmarkSpec:
    """The spec pointed at another repo / config / revision and with extra field renames."""
    if source is not None:
        _, hub_id, config, revision = parse_source(source)
        spec = replace(spec, hub_id=hub_id, config=config, revision=revision)
    fields = tuple(fields)
    if fields:
        spec = replace(spec, field_map=spec.field_map + fields)
    return spec


def specs_with_overrides(specs: Iterable[BenchmarkSpec], sources: Mapping[str, str],
                         fields: Mapping[str, Iterable[tuple[str, str]]]) -> list[BenchmarkSpec]:
    specs = list(specs)
    known = {s.name for s in specs}
    for flag, names in (("--source", sources), ("--field", fields)):
        unknown = sorted(set(names) - known)
        if unknown:
            raise DataError(f"{', '.join(unknown)} is not a selected benchmark ({', '.join(sorted(known))})",
                            field=flag)
    return [with_overrides(s, sources.get(s.name), fields.get(s.name, ())) for s in specs]


def snapshot(spec: BenchmarkSpec, cache_dir: str | Path | None = None) -> Snapshot:
    """The dataset repo at ``spec.revision`` in the HF cache (downloaded unless HF_HUB_OFFLINE=1)."""
    local = Path(spec.hub_id).expanduser()
    if local.is_dir():  # a folder in the Hub layout given as the "repo"
        return Snapshot(local.resolve(), None)
    from huggingface_hub import constants, snapshot_download

    hf_log = logging.getLogger("huggingface_hub")
    level = hf_log.level
    hf_log.setLevel(logging.ERROR)  # its retry / offline warnings would repeat what the one line says
    try:
        path = snapshot_download(spec.hub_id, repo_type="dataset", revision=spec.revision,
                                 allow_patterns=list(spec.hub_files) or None,
                                 cache_dir=None if cache_dir is None else str(cache_dir))
    except Exception as exc:  # network, auth, offline-without-cache: all end as the same one line
        raise HubUnavailable(unavailable_message(spec, exc, bool(constants.HF_HUB_OFFLINE))) from None
    finally:
        hf_log.setLevel(level)
    root = Path(path)
    return Snapshot(root, root.name if _SHA.match(root.name) else spec.revision)


def unavailable_message(spec: BenchmarkSpec, exc: BaseException, offline: bool) -> str:
    why = ("HF_HUB_OFFLINE=1 and no cached copy" if offline
           else f"Hub unreachable ({type(exc).__name__}: {_first_line(exc)})")
    return (f"{spec.name}: cannot read Hub dataset {spec.hub_id}@{spec.revision or 'main'} ({why}); "
            f"skipped. Either give a local copy with --data-dir {spec.name}=DIR, or set HF_HUB_OFFLINE=1 "
            f"with a cached copy (fetched once with: hf download {spec.hub_id} --repo-type dataset"
            f"{' --revision ' + spec.revision if spec.revision else ''})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:160]
