"""MR^2Bench-Image and MR^2Bench-Video: N-way (4-response) items with full human rankings (1 = best).

Two layouts are read:
(a) a folder that ``build-benchmark`` wrote: ``items.parquet`` at its root with columns ``id``,
    ``question_id``, ``prompt``, ``responses`` list<str>, ``rankings`` list<int> (1 = best), ``models``,
    ``image`` or ``video`` (path relative to the folder, or null), ``category``, ``variant``;
(b) the Hub dataset ``yinuoy/MR2Bench`` or a folder in its layout (``data/**.parquet``). Its card could not
    be read offline, so fields are mapped tolerantly (ASSUMPTION, check when the data is at hand): id from
    ``id``/``item_id`` (else ``<question_id>-v<variant>`` or the row number), prompt from ``prompt``/
    ``question``/``query``, responses from ``responses``/``candidates``/``answers``, ranks from
    ``rankings``/``ranking``/``ranks`` (0-based ranks are shifted to 1 = best), media from ``image`` /
    ``video`` (path, bytes or a datasets Image feature ``{bytes, path}``). Rows of the other modality
    (an image row in mr2bench-video) are not this benchmark's items and are skipped.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mr2bench.build_folder import check_build_folder
from mr2bench.registry import BenchmarkSpec, register_benchmark
from mr2bench.schema import BenchmarkItem, DataError

from ._loading import BadRow, converted, iter_rows, media_from, pick

_PROTOCOL = ("arXiv 2604.10966 (MR^2Bench; no official scorer released, github yinuoyang01/multi-response-rm "
             "@0b6c8bc has none): best-of-N top-1 accuracy, a k-way tie at the top score holding m gold-best "
             "responses earns m/k (allenai/reward-bench v2 rule, 1/k with one gold-best); also pairwise "
             "accuracy (model ties 1/2), Kendall tau-b (0 when undefined) and exact-order rate; order: "
             "seeded shuffle per item; unparseable 4-way verdicts -> seeded random pick (expected credit "
             "1/N, as reward-bench v2's 0.25).")


def _spec(kind: str) -> BenchmarkSpec:
    return register_benchmark(BenchmarkSpec(
        name=f"mr2bench-{kind}", version="1.1.0", hub_id="yinuoy/MR2Bench", split="test", config="items",
        primary_metric="best_of_n", aggregation="micro", tie_policy="split",
        parse_policy="seeded_random", order_policy="shuffle",
        loader=f"mr2bench.evaluators.mr2bench_nway:load_{kind}",
        description=f"MR^2Bench-{kind.title()}: 4-response items sampled from full human rankings; "
                    "best-of-4 accuracy (chance 25%).",
        protocol=_PROTOCOL, judge_prompt="nway_best_v1",
        changelog=("2026-04-20 1.0.0: first version",
                   "2026-04-27 1.1.0: a published folder reads its README's 'items' config (never the "
                   "full_rankings shards); layout check"),
    ))


# every pair of names row_to_item reads
LAYOUTS = tuple((r, k) for r in ("responses", "candidates", "answers") for k in ("rankings", "ranking", "ranks"))


IMAGE_SPEC = _spec("image")
VIDEO_SPEC = _spec("video")


def row_to_item(row: dict[str, Any], index: int = 0, kind: str = "image") -> BenchmarkItem | None:
    """One row -> item; None when the row is of the other modality."""
    other = "video" if kind == "image" else "image"
    value = pick(row, kind, f"{kind}_path")
    if value is None and pick(row, other, f"{other}_path") is not None:
        return None
    responses = pick(row, "responses", "candidates", "answers")
    ranks = pick(row, "rankings", "ranking", "ranks")
    if responses is None or ranks is None:
        raise DataError("missing responses / rankings", field="responses" if responses is None else "rankings")
    ranks = [int(r) for r in ranks]
    if ranks and min(ranks) == 0:
        ranks = [r + 1 for r in ranks]
    qid = pick(row, "question_id", "qid", default="")
    item_id = pick(row, "id", "item_id")
    if item_id is None:
        item_id = f"{qid}-v{pick(row, 'variant', default=index)}" if qid != "" else f"row{index}"
    media = media_from(value, kind)
    models = pick(row, "models", default=()) or ()
    return BenchmarkItem(
        id=str(item_id), prompt=str(pick(row, "prompt", "question", "query", default="")),
        responses=tuple(responses), rankings=tuple(ranks), media=(media,) if media else (),
        models=tuple(models), category=str(pick(row, "category", default="") or ""),
        group=str(qid or item_id), meta={"question_id": str(qid), "variant": pick(row, "variant", default="")})


def _load(kind: str, data_dir: Path | None, spec: BenchmarkSpec, limit: int | None
          ) -> Iterator[BenchmarkItem | BadRow]:
    root = Path(data_dir) if data_dir is not None else None
    if root is not None:
        check_build_folder(root)   # a build folder must match its manifest (crash-safe builds)
    rows = iter_rows(root, spec, prefer=("items.parquet",))
    return converted(rows, lambda row, index: row_to_item(row, index, kind), limit, root,
                     layouts=LAYOUTS, benchmark=spec.name)


def load_image(data_dir: Path | None, spec: BenchmarkSpec = IMAGE_SPEC, limit: int | None = None):
    return _load("image", data_dir, spec, limit)


def load_video(data_dir: Path | None, spec: BenchmarkSpec = VIDEO_SPEC, limit: int | None = None):
    return _load("video", data_dir, spec, limit)
