"""MM-RLHF-RewardBench (Zhang et al., 2025): 170 chosen/rejected pairs over 46 prompt ids.

Hub ``yifanzhang114/MM-RLHF-RewardBench`` split ``train`` (sic): ``mm_reward_bench.jsonl`` (``id``, ``image``
or ``video`` relative path, ``prompt``, ``chosen``, ``rejected``, critiques) + ``images/`` with the images
and the video frame folders. On the Hub the frame folders sit DIRECTLY under ``images/`` (``images/-77dfCjTbSc/``)
while rows name them ``video/-77dfCjTbSc``; a media path is looked up as written, then under ``images/``,
then (``video/<name>`` rows) as ``images/<name>`` (``media_candidates``). Category = the first of
mcq/long/short/safety/video found in the path as written in the row. Several rows share an id: the item
id adds a hash of prompt + responses; the group is the source id (Acc+; a group with a failed pair is not
all correct).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mr2bench.registry import BenchmarkSpec, register_benchmark
from mr2bench.schema import BenchmarkItem, DataError, Media

from ._loading import BadRow, converted, iter_rows, media_from, pick, short_hash

SPEC = register_benchmark(BenchmarkSpec(
    name="mm-rlhf-rewardbench", version="1.1.0", hub_id="yifanzhang114/MM-RLHF-RewardBench",
    split="train", config="default", primary_metric="acc", headline="acc", aggregation="micro",
    hub_files=("README.md", "mm_reward_bench.jsonl", "data/*", "images/*"),
    tie_policy="strict", parse_policy="wrong", order_policy="shuffle",
    loader="mr2bench.evaluators.mm_rlhf_rewardbench:load",
    categories=("mcq", "long", "short", "safety", "video"),
    description="MM-RLHF-RewardBench: 170 pairs / 46 ids; Acc (pairs) and Acc+ (every pair of an id).",
    protocol="yfzhang114/MM-RLHF llava/eval/cal_performance_mmreweard_bench.py @7c8af1d: a pair is "
             "correct iff rewards[0] > rewards[1] (strict, ties wrong); Acc = correct pairs / pairs, "
             "Acc+ = ids whose pairs are all correct / ids (the MR^2 table's MMRLHF column is Acc); "
             "category = first of mcq/long/short/safety/video in the media path. Unparseable verdicts "
             "(judges only; the official RM is pointwise) count as wrong. Deviation, declared: a pair "
             "that failed (media unreadable, adapter error) leaves its group not all correct, where the "
             "official script never sees it; results.json counts such groups (n_groups_with_failures).",
    judge_prompt="pairwise_v1",
    changelog=("2026-04-20 1.0.0: first version",
               "2026-04-27 1.1.0: video frame folders found as on the Hub (images/<name> for video/<name>); "
               "a group with a failed pair counts as not all correct in Acc+"),
))

CATEGORIES = ("mcq", "long", "short", "safety", "video")
LAYOUTS = (("prompt", "chosen", "rejected"),)


def media_candidates(path: str, kind: str) -> list[str]:
    """Where a row's media path may sit under the root, in the order tried."""
    out = [path, f"images/{path}"]
    head, sep, name = path.partition("/")
    if kind == "video" and sep and head == "video":  # the Hub tree: images/<name>, not images/video/<name>
        out.append(f"images/{name}")
    return out


def category_from_path(path: str) -> str:
    return next((c for c in CATEGORIES if c in path), "")


def row_to_item(row: dict[str, Any], index: int = 0, root: Path | None = None) -> BenchmarkItem:
    raw_id = str(pick(row, "id", "ID", default=f"row{index}"))
    chosen, rejected = pick(row, "chosen"), pick(row, "rejected")
    if chosen is None or rejected is None:
        raise DataError("missing chosen / rejected", field="chosen")
    video, image = pick(row, "video"), pick(row, "image")
    kind, value = ("video", video) if video is not None else ("image", image)
    written = value if isinstance(value, str) else (value or {}).get("path", "") if isinstance(value, dict) else ""
    media = media_from(value, kind)
    if media is not None and media.path is not None and root is not None:
        found = next((c for c in media_candidates(media.path, kind) if (root / c).exists()), media.path)
        media = Media(kind=kind, path=found)
    prompt = str(pick(row, "prompt", "query", "question", default=""))
    return BenchmarkItem(
        id=f"{raw_id}@{short_hash(prompt, chosen, rejected)}", prompt=prompt, responses=(chosen, rejected),
        rankings=(1, 2), media=(media,) if media else (), category=category_from_path(written or ""),
        group=raw_id, meta={"source_id": raw_id})


def load(data_dir: Path | None, spec: BenchmarkSpec = SPEC, limit: int | None = None
         ) -> Iterator[BenchmarkItem | BadRow]:
    root = Path(data_dir) if data_dir is not None else None
    rows = iter_rows(root, spec, prefer=("mm_reward_bench.jsonl",))
    return converted(rows, lambda row, index: row_to_item(row, index, root), limit, root,
                     layouts=LAYOUTS, benchmark=spec.name)
