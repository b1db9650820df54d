"""VL-RewardBench (Li et al., CVPR'25): 1,250 image + query + 2-response pairs, three groups.

Hub ``MMInstruction/VL-RewardBench`` split ``test``: ``id``, ``query``, ``response`` (2), ``image`` (Image
feature), ``human_ranking`` (0 = better). The R1-Reward re-export (``prompt``/``chosen``/``rejected``/
``image`` path) is read too. Ids repeat (25 in the pre-fix export), so the item id is the source id plus
a hash of query + sorted responses, the official ``cal.py`` grouping key.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mr2bench.registry import BenchmarkSpec, register_benchmark
from mr2bench.schema import BenchmarkItem, DataError

from ._common import BadRow, converted, iter_rows, media_from, pick, short_hash

SPEC = register_benchmark(BenchmarkSpec(
    name="vl-rewardbench", version="1.0.0", hub_id="MMInstruction/VL-RewardBench", split="test",
    primary_metric="macro_accuracy", headline="macro_accuracy", aggregation="macro",
    tie_policy="strict", parse_policy="exclude", order_policy="shuffle",
    loader="mr2bench.evaluators.vl_rewardbench:load",
    categories=("general", "hallucination", "reasoning"),
    description="VL-RewardBench: image + query, chosen vs rejected; general / hallucination / reasoning.",
    protocol="vl-rewardbench/VL_RewardBench cal.py @9b10abd: group from the id prefix (POVID "
             "'hallucination_pair' = hallucination, the post-7918386 mapping); unparseable verdicts "
             "excluded from numerator and denominator; accuracy per group, overall = micro, macro = mean "
             "of the 3 groups (the MR^2 table's VL-RB column). Scalar models: strict score(chosen) > "
             "score(rejected). Order: seeded shuffle per item (official: unseeded coin).",
    judge_prompt="vlrb_pairwise_v1",
    changelog=("2026-04-20 1.0.0: first version",),
))

_REASONING = ("mathverse", "mmmu")
_HALLUCINATION = ("hallucination", "rlaif", "rlhf")


def category_from_id(raw_id: str) -> str:
    """cal.py's source mapping, case-insensitive (R1-Reward's case-sensitive port misfiles RLHF-V)."""
    prefix = re.split(r"[_-]", raw_id, maxsplit=1)[0].lower()
    if prefix in _HALLUCINATION:
        return "hallucination"
    if prefix in _REASONING:
        return "reasoning"
    return "general"


def row_to_item(row: dict[str, Any], index: int = 0) -> BenchmarkItem:
    raw_id = str(pick(row, "id", "ID", default=f"row{index}"))
    query = pick(row, "query", "prompt", "question", default="")
    if isinstance(query, str):
        query = query.replace("<image>\n", "").replace("<image>", "")  # the official code strips it
    if "response" in row or "responses" in row:
        responses = list(pick(row, "response", "responses"))
        ranking = pick(row, "human_ranking", "rankings", "ranking")
        if ranking is None:
            raise DataError("missing human_ranking", field="human_ranking")
        ranking = [int(r) for r in ranking]
        rankings = [r + 1 for r in ranking] if min(ranking) == 0 else ranking
    elif "chosen" in row and "rejected" in row:
        responses, rankings = [row["chosen"], row["rejected"]], [1, 2]
    else:
        raise DataError("expected 'response' + 'human_ranking' or 'chosen' + 'rejected'", field="response")
    if len(responses) != 2:
        raise DataError(f"expected 2 responses, got {len(responses)}", field="response")
    image = media_from(pick(row, "image", "image_path"), "image")
    models = pick(row, "models", default=()) or ()
    return BenchmarkItem(
        id=f"{raw_id}@{short_hash(query, *sorted(responses))}", prompt=query, responses=tuple(responses),
        rankings=tuple(rankings), media=(image,) if image else (), models=tuple(models),
        category=category_from_id(raw_id), group=raw_id,
        meta={"source_id": raw_id, "query_source": pick(row, "query_source", default="")})


def load(data_dir: Path | None, spec: BenchmarkSpec = SPEC, limit: int | None = None
         ) -> Iterator[BenchmarkItem | BadRow]:
    root = Path(data_dir) if data_dir is not None else None
    return converted(iter_rows(root, spec), row_to_item, limit, root)
