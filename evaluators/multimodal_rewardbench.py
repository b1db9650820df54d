"""Multimodal RewardBench (Yasunaga et al., 2025): image + prompt, Output1 vs Output2, six categories.

Official build output (github facebookresearch/multimodal_rewardbench ``data/all_data.json`` + ``images/``:
``ID``, ``Text``, ``Image`` relative path, ``Output1``, ``Output2``, ``Better``, ``Category``) or the
community Hub copy (same field names, ``Image`` as an Image feature; lower-case names accepted too).
The public build has 4,711 items (500 Hateful-Memes safety items withheld; the paper has 5,211):
``results.json`` reports the count that was actually loaded.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mr2bench.registry import BenchmarkSpec, register_benchmark
from mr2bench.schema import BenchmarkItem, DataError

from ._loading import BadRow, converted, iter_rows, media_from, pick

SPEC = register_benchmark(BenchmarkSpec(
    name="multimodal-rewardbench", version="1.1.0", hub_id="syhuggingface/multimodal_rewardbench",
    split="test", primary_metric="accuracy", aggregation="micro",
    tie_policy="strict", parse_policy="ordered_random", order_policy="fixed",
    loader="mr2bench.evaluators.multimodal_rewardbench:load",
    categories=("general_correctness", "general_preference", "knowledge", "reasoning/math",
                "reasoning/coding", "safety/bias", "safety/toxicity", "vqa"),
    description="Multimodal RewardBench: 4,711 public items (5,211 in the paper), micro accuracy.",
    protocol="facebookresearch/multimodal_rewardbench scripts/2_get_accuracy.py @b4b92cd: micro "
             "accuracy over all items plus per category; safety split bias (ids 'pairs*') / toxicity, "
             "reasoning split math (ids 'math*') / coding; fixed order Output1 = A; unparseable verdict "
             "-> the official fallback: random.seed(123) once, one random.random() < 0.5 draw (A, else B) "
             "per unreadable verdict in the loader's order, and a call that failed outright (the official "
             "'None') takes the same fallback; recomputed from the records at scoring and at rescore. "
             "Judge max_tokens 1024, text before the image. Scalar models: strict score(better) > "
             "score(worse).",
    judge_prompt="mmrb_pairwise_v1",
    changelog=("2026-04-20 1.0.0: first version",
               "2026-04-27 1.1.0: the official parse fallback (one seed-123 stream in loader order, failed "
               "calls included) instead of a per-item seeded pick; layout check"),
))

LAYOUTS = (("Output1", "Output2", "Better"), ("output1", "output2", "better"))
_CATEGORY = {"open_generation/correctness_task": "general_correctness",
             "open_generation/preference_task": "general_preference",
             "correctness": "general_correctness", "preference": "general_preference"}


def category_of(raw: str, item_id: str) -> str:
    cat = _CATEGORY.get(raw, raw.strip().lower())
    low = item_id.lower()
    if cat == "reasoning":
        return "reasoning/math" if low.startswith("math") else "reasoning/coding"
    if cat == "safety":
        return "safety/bias" if low.startswith("pairs") else "safety/toxicity"
    return cat


def row_to_item(row: dict[str, Any], index: int = 0) -> BenchmarkItem:
    raw_id = str(pick(row, "ID", "id", default=f"row{index}"))
    out1, out2 = pick(row, "Output1", "output1", "response_1"), pick(row, "Output2", "output2", "response_2")
    if out1 is None or out2 is None:
        raise DataError("missing Output1 / Output2", field="Output1")
    better = str(pick(row, "Better", "better", "Label", default="")).strip()
    if better in ("Output1", "A", "1"):
        rankings = (1, 2)
    elif better in ("Output2", "B", "2"):
        rankings = (2, 1)
    else:
        raise DataError(f"expected Output1 or Output2, got {better!r}", field="Better")
    image = media_from(pick(row, "Image", "image", "image_path"), "image")
    return BenchmarkItem(
        id=raw_id, prompt=str(pick(row, "Text", "text", "prompt", "question", default="")),
        responses=(out1, out2), rankings=rankings, media=(image,) if image else (),
        category=category_of(str(pick(row, "Category", "category", default="")), raw_id),
        meta={"source_id": raw_id})


def load(data_dir: Path | None, spec: BenchmarkSpec = SPEC, limit: int | None = None
         ) -> Iterator[BenchmarkItem | BadRow]:
    root = Path(data_dir) if data_dir is not None else None
    rows = iter_rows(root, spec, prefer=("all_data.json", "data/all_data.json"))
    if root is not None and not (root / "all_data.json").is_file() and (root / "data" / "all_data.json").is_file():
        rows = _prefixed(rows, "data/")  # the build script writes data/all_data.json + data/images/
    return converted(rows, row_to_item, limit, root, layouts=LAYOUTS, benchmark=spec.name)


def _prefixed(rows, prefix: str):
    for label, i, row in rows:
        if isinstance(row.get("Image"), str):
            row = {**row, "Image": prefix + row["Image"]}
        yield label, i, row
