"""VideoRewardBench (Zhang et al., 2025): 1,563 video + prompt + chosen/rejected triplets, 5 dimensions.

Hub ``Dragonriser/VideoRewardBench`` (schema UNVERIFIED: no public card or code could be read offline).
Assumed and mapped tolerantly: id (``id``/``ID``/``idx``/``index``), prompt (``prompt``/``question``/``query``),
``chosen``/``rejected`` (or ``response`` list + ``human_ranking``/``rankings``/``preference``), video
(``video``/``video_path``/``video_file``/``video_name``: a file decoded with PyAV or a folder of frames,
relative to the root, ``videos/`` tried as a prefix), dimension (``dimension``/``category``/``task_type``/
``aspect``) normalised to the five names below. Any other column name: ``--field videorewardbench:chosen=THEIRS``.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mr2bench.registry import BenchmarkSpec, register_benchmark
from mr2bench.schema import BenchmarkItem, DataError, Media

from ._loading import BadRow, converted, iter_rows, media_from, pick

SPEC = register_benchmark(BenchmarkSpec(
    name="videorewardbench", version="1.0.0", hub_id="Dragonriser/VideoRewardBench", split="test",
    primary_metric="accuracy", aggregation="micro",
    tie_policy="strict", parse_policy="wrong", order_policy="shuffle",
    loader="mr2bench.evaluators.videorewardbench:load",
    categories=("long_form_perception", "short_form_perception", "knowledge", "reasoning", "safety"),
    description="VideoRewardBench: 1,563 video preference pairs; micro accuracy + five dimensions.",
    protocol="arXiv 2509.00484 (no public code): overall = micro accuracy over all pairs (reproduces the "
             "paper's 57.0 / 63.6 from its dimension counts) + per-dimension accuracy; strict "
             "score(chosen) > score(rejected); unparseable verdicts counted wrong (assumed: MR^2's 14.7 "
             "for LLaVA-Critic suggests so); order: seeded shuffle. Schema unverified.",
    judge_prompt="pairwise_v1",
    changelog=("2026-04-20 1.0.0: first version (schema assumed, see module docstring)",),
))

# every pair of names the converter reads (the schema is unverified: --field maps any other)
LAYOUTS = (("chosen", "rejected"),) + tuple((r, k) for r in ("response", "responses")
                                            for k in ("human_ranking", "rankings", "ranking"))
_DIMENSIONS = {"longformperception": "long_form_perception", "longperception": "long_form_perception",
               "long": "long_form_perception", "shortformperception": "short_form_perception",
               "shortperception": "short_form_perception", "short": "short_form_perception",
               "knowledge": "knowledge", "reasoning": "reasoning", "safety": "safety"}


def dimension_of(raw: str) -> str:
    key = re.sub(r"[^a-z]", "", raw.lower())
    return _DIMENSIONS.get(key, raw.strip().lower().replace(" ", "_").replace("-", "_"))


def row_to_item(row: dict[str, Any], index: int = 0, root: Path | None = None) -> BenchmarkItem:
    raw_id = str(pick(row, "id", "ID", "idx", "index", default=f"row{index}"))
    if "chosen" in row and "rejected" in row:
        responses, rankings = (row["chosen"], row["rejected"]), (1, 2)
    else:
        responses = tuple(pick(row, "response", "responses", default=()))
        ranking = pick(row, "human_ranking", "rankings", "ranking")
        if len(responses) != 2 or ranking is None:
            raise DataError("expected chosen + rejected, or response (2) + human_ranking", field="chosen")
        ranking = [int(r) for r in ranking]
        rankings = tuple(r + 1 for r in ranking) if min(ranking) == 0 else tuple(ranking)
    media = media_from(pick(row, "video", "video_path", "video_file", "video_name"), "video")
    if media is None:
        raise DataError("missing video", field="video")
    if media.path is not None and root is not None:
        if not (root / media.path).exists() and (root / "videos" / media.path).exists():
            media = Media(kind="video", path=f"videos/{media.path}")
    return BenchmarkItem(
        id=raw_id, prompt=str(pick(row, "prompt", "question", "query", default="")), responses=responses,
        rankings=rankings, media=(media,),
        category=dimension_of(str(pick(row, "dimension", "category", "task_type", "aspect", default=""))),
        meta={"source_id": raw_id})


def load(data_dir: Path | None, spec: BenchmarkSpec = SPEC, limit: int | None = None
         ) -> Iterator[BenchmarkItem | BadRow]:
    root = Path(data_dir) if data_dir is not None else None
    return converted(iter_rows(root, spec), lambda row, index: row_to_item(row, index, root), limit, root,
                     layouts=LAYOUTS, benchmark=spec.name)
