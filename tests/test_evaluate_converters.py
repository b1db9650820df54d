"""Row -> item converters: field mapping, categories, ids, media and rejected rows."""
from __future__ import annotations

import json

import pytest

from mr2bench.evaluators import (mm_rlhf_rewardbench as mmrlhf, mr2bench_nway as nway,
                                 multimodal_rewardbench as mmrb, videorewardbench as vrb,
                                 vl_rewardbench as vl)
from mr2bench.evaluators._loading import BadRow
from mr2bench.schema import DataError


def test_vlrb_groups_from_the_id_prefix():
    cases = {"hallucination_pair-1003": "hallucination", "RLAIF-V-14": "hallucination", "RLHF-V-31": "hallucination",
             "mathverse_1294": "reasoning", "mmmu_pro_test_Energy_220": "reasoning", "wildvision-battle-13": "general",
             "jailbreak-Fraud-29": "general", "LRVInstruction-000000007746": "general", "svit-complex-1": "general"}
    for raw, group in cases.items():
        assert vl.category_from_id(raw) == group, raw
    item = vl.row_to_item({"id": "RLHF-V-1", "query": "<image>\nq", "response": ["a", "bb"], "human_ranking": [1, 0]})
    assert item.rankings == (2, 1) and item.prompt == "q" and item.group == "RLHF-V-1"


def test_mmrb_categories_and_sub_splits():
    row = {"ID": "pairs_12", "Text": "t", "Image": "images/pairs/1.jpg", "Output1": "a", "Output2": "b",
           "Better": "Output2", "Category": "safety"}
    item = mmrb.row_to_item(row)
    assert item.category == "safety/bias" and item.rankings == (2, 1) and item.media[0].path == row["Image"]
    assert mmrb.category_of("safety", "hateful_3") == "safety/toxicity"
    assert mmrb.category_of("reasoning", "mathvista_1") == "reasoning/math"
    assert mmrb.category_of("reasoning", "emma_coding_2") == "reasoning/coding"
    assert mmrb.category_of("open_generation/correctness_task", "nocaps_1") == "general_correctness"
    with pytest.raises(DataError, match="Better"):
        mmrb.row_to_item({**row, "Better": "tie"})


def test_mmrb_build_output_folder(tmp_path):
    (tmp_path / "data" / "images").mkdir(parents=True)
    rows = [{"ID": "nocaps_1", "Text": "t", "Image": "images/1.jpg", "Output1": "a", "Output2": "bb",
             "Better": "Output1", "Category": "open_generation/preference_task"}]
    (tmp_path / "data" / "all_data.json").write_text(json.dumps(rows))
    (item,) = list(mmrb.load(tmp_path))
    assert item.media[0].path == "data/images/1.jpg" and item.category == "general_preference"


def test_mmrlhf_category_media_prefix_and_groups(tmp_path):
    (tmp_path / "images" / "video" / "abc").mkdir(parents=True)
    rows = [{"id": "g1", "video": "video/abc", "prompt": "p", "chosen": "c", "rejected": "r"},
            {"id": "g1", "video": "video/abc", "prompt": "p", "chosen": "c2", "rejected": "r"}]
    (tmp_path / "mm_reward_bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = list(mmrlhf.load(tmp_path))
    assert [i.category for i in items] == ["video", "video"]
    assert items[0].media[0].kind == "video" and items[0].media[0].path == "images/video/abc"
    assert items[0].group == items[1].group == "g1" and items[0].id != items[1].id


def test_vrb_dimensions_and_bad_rows(tmp_path):
    assert vrb.dimension_of("Long-form Perception") == "long_form_perception"
    assert vrb.dimension_of("short_form_perception") == "short_form_perception"
    rows = [{"id": "1", "question": "q", "chosen": "a", "rejected": "b", "video": "v.mp4", "dimension": "Safety"},
            {"id": "2", "question": "q", "chosen": "a", "rejected": "b", "dimension": "Safety"}]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ok, bad = list(vrb.load(tmp_path))
    assert ok.category == "safety" and ok.media[0].path == "v.mp4"
    assert isinstance(bad, BadRow) and "row 2" in bad.error and "video" in bad.error


def test_nway_tolerant_hub_fields_and_escape():
    item = nway.row_to_item({"question_id": "q1", "variant": 2, "question": "p", "candidates": ["a", "b", "c", "d"],
                             "ranks": [0, 1, 2, 3], "image": {"bytes": b"\x89PNG", "path": None}}, kind="image")
    assert item.id == "q1-v2" and item.rankings == (1, 2, 3, 4) and item.media[0].data == b"\x89PNG"
    assert nway.row_to_item({"responses": ["a", "b"], "rankings": [1, 2], "video": "x.mp4"}, kind="image") is None
    from mr2bench.evaluators._loading import converted
    rows = [("f", 1, {"id": "a", "responses": ["a", "b"], "rankings": [1, 2], "image": "../../etc/passwd"})]
    (bad,) = list(converted(rows, lambda r, index: nway.row_to_item(r, index, "image"), None, root=__import__("pathlib").Path("/tmp")))
    assert isinstance(bad, BadRow) and "escapes" in bad.error
