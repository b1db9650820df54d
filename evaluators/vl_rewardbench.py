"""VL-RewardBench (Li et al., CVPR'25): image + query + 2-response pairs, three groups, six sources.

Hub ``MMInstruction/VL-RewardBench`` (config ``default``, split ``test``): 1,247 rows since the data commit
"Upload dataset (#7)" (1,250 before; the paper's count). That commit's sha could not be read offline, so
``revision`` stays None (the Hub's main) and ``results.json`` records the sha actually resolved; pin one
with ``--source vl-rewardbench=MMInstruction/VL-RewardBench@SHA``. Fields: ``id``, ``query``, ``response``
(2), ``image`` (Image feature), ``human_ranking`` (0 = better). The R1-Reward re-export
(``prompt``/``chosen``/``rejected``/``image`` path) is read too. Ids repeat (25 in the pre-fix export), so
the item id is the source id plus a hash of query + sorted responses, the official ``cal.py`` grouping
key. Category ``group/source`` (``hallucination/povid``): groups for the macro average, sources for
cal.py's per-source accuracies.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mr2bench.registry import BenchmarkSpec, register_benchmark
from mr2bench.schema import BenchmarkItem, DataError

from ._loading import BadRow, converted, iter_rows, media_from, pick, short_hash

SPEC = register_benchmark(BenchmarkSpec(
    name="vl-rewardbench", version="1.2.0", hub_id="MMInstruction/VL-RewardBench", split="test",
    config="default", hub_files=("README.md", "data/*"),
    primary_metric="macro_accuracy", headline="macro_accuracy", aggregation="macro",
    tie_policy="strict", parse_policy="exclude", order_policy="shuffle",
    loader="mr2bench.evaluators.vl_rewardbench:load",
    categories=("general", "hallucination", "reasoning"),
    description="VL-RewardBench: image + query, chosen vs rejected; general / hallucination / reasoning.",
    protocol="vl-rewardbench/VL_RewardBench cal.py @9b10abd: group from the id prefix (POVID "
             "'hallucination_pair' = hallucination, the post-7918386 mapping); unparseable verdicts "
             "excluded from numerator and denominator; accuracy per group, overall = micro, macro = mean "
             "of the 3 groups (the MR^2 table's VL-RB column). Scalar models: strict score(chosen) > "
             "score(rejected). Per-source accuracies as cal.py (povid, rlaif-v, rlhf-v, vlfeedback, "
             "wildvision-battle, reasoning_tasks). judge:/api: judges (judge_protocol agree_unless_rejected, "
             "as cal.py and inference_hf.py): each of the k samples is shown in its own order; a parsed "
             "'Answer N' agrees unless N is the rejected position in that sample's order (so 'Answer 3' "
             "agrees); the item is right when agree > k/2, wrong when reject > k/2, else left out; "
             "max_tokens 2048, T 0.2 / top_p 0.2 when k > 1 (judge_defaults; a --model-arg wins). "
             "Deviations that remain: the sample orders are seeded (seed, item id, sample index; sample 0 "
             "is the evaluator's order) where the official coin is unseeded; k = 1 decodes greedily "
             "(official: T 0.2 / top_p 0.2 for every sample); exactly k samples per item, where cal.py "
             "takes the first k of a shuffled file of more; its optional GPT-4o-mini re-parse is not run.",
    judge_prompt="vlrb_pairwise_v1", judge_protocol="agree_unless_rejected",
    judge_defaults=(("max_tokens", "2048"), ("sample_temperature", "0.2"), ("sample_top_p", "0.2")),
    changelog=("2026-04-20 1.0.0: first version",
               "2026-04-27 1.1.0: 1,247 rows on the Hub (docstring); category group/source with cal.py's "
               "per-source accuracies; layout check (response + human_ranking, or chosen + rejected); "
               "remaining judge deviations named in the protocol",
               "2026-12-01 1.2.0: judges scored by cal.py's verdict rule (an out-of-range 'Answer N' agrees "
               "unless it is the rejected position; strict majority of k), each sample in a fresh seeded "
               "order with its order and answer stored per item; judge defaults max_tokens 2048 and T / "
               "top_p 0.2 for k > 1 declared in the spec"),
))

LAYOUTS = (("response", "human_ranking"), ("chosen", "rejected"))
# cal.py get_dataset_from_id: id prefix (text before the first '_' or '-') -> source; anything else
# (jailbreak, politics, svit, LRVInstruction, ...) is vlfeedback. Matched case-insensitively here
# (cal.py: exact case; the same on the real ids).
_SOURCES = {"rlaif": "rlaif-v", "rlhf": "rlhf-v", "mathverse": "reasoning_tasks", "mmmu": "reasoning_tasks",
            "wildvision": "wildvision-battle", "hallucination": "povid"}
_GROUPS = {"vlfeedback": "general", "povid": "hallucination", "reasoning_tasks": "reasoning",
           "rlhf-v": "hallucination", "rlaif-v": "hallucination", "wildvision-battle": "general"}


def source_from_id(raw_id: str) -> str:
    prefix = re.split(r"[_-]", raw_id, maxsplit=1)[0].lower()
    return _SOURCES.get(prefix, "vlfeedback")


def category_from_id(raw_id: str) -> str:
    """cal.py's group (the macro average's unit) from the id prefix."""
    return _GROUPS[source_from_id(raw_id)]


def row_to_item(row: dict[str, Any], index: int = 0) -> BenchmarkItem:
    raw_id = str(pick(row, "id", "ID", default=f"row{index}"))
    query = pick(row, "query", "prompt", "question", default="")
    if isinstance(query, str):
        query = query.replace("<image>\n", "").replace("<image>", "")  # the official code strips it
    if "response" in row:
        responses = list(row["response"])
        ranking = pick(row, "human_ranking")
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
        category=f"{category_from_id(raw_id)}/{source_from_id(raw_id)}", group=raw_id,
        meta={"source_id": raw_id, "query_source": pick(row, "query_source", default="")})


def load(data_dir: Path | None, spec: BenchmarkSpec = SPEC, limit: int | None = None
         ) -> Iterator[BenchmarkItem | BadRow]:
    root = Path(data_dir) if data_dir is not None else None
    return converted(iter_rows(root, spec), row_to_item, limit, root, layouts=LAYOUTS, benchmark=spec.name)
