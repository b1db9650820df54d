"""Prompt snapshots: what a judge is sent for every registered benchmark, compared with golden files.

A deliberate prompt change: ``MR2BENCH_UPDATE_GOLDEN=1 pytest tests/test_judges_prompts.py``, then
review the diff of tests/data/prompt_snapshots/ and bump the template id / benchmark version.
"""
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mr2bench.adapters import AdapterOptions
from mr2bench.judges.api import APIJudgeAdapter
from mr2bench.judges.prompts import get_template, template_ids
from mr2bench.registry import benchmark_names, get_benchmark
from mr2bench.schema import Media, ScoringRequest

GOLDEN = Path(__file__).parent / "data" / "prompt_snapshots"
UPDATE = os.environ.get("MR2BENCH_UPDATE_GOLDEN") == "1"


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _describe(part: dict) -> str:
    if part["type"] == "text":
        return "text"
    from PIL import Image

    url = part["image_url"]["url"]
    head, data = url.split(",", 1)
    w, h = Image.open(io.BytesIO(base64.b64decode(data))).size
    return f"image_url({head.split(';')[0]}, {w}x{h})"


def snapshot(benchmark: str) -> str:
    n = 4 if get_benchmark(benchmark).primary_metric == "best_of_n" else 2
    colours = ("red", "blue", "green", "tan")[:n]
    responses = tuple(f"Response number {i + 1}: the object is {c}." for i, c in enumerate(colours))
    request = ScoringRequest(prompt="<image>\nWhat colour is the object?", responses=responses,
                             media=(Media(kind="image", data=_png()),), item_id="snap", benchmark=benchmark)
    adapter = APIJudgeAdapter("judge-model", AdapterOptions(api_base="http://127.0.0.1:9/v1"))
    prompt, bodies = adapter.bodies(request)
    body = bodies[0]
    content = body["messages"][0]["content"]
    params = {k: v for k, v in body.items() if k != "messages"}
    return (f"benchmark: {benchmark}\ntemplate: {prompt.template.id}\nparser: {prompt.template.parser}\n"
            f"content: {', '.join(_describe(p) for p in content)}\n"
            f"params: {json.dumps(params, sort_keys=True)}\n---\n{prompt.text}\n")


@pytest.mark.parametrize("benchmark", benchmark_names())
def test_prompt_snapshot(benchmark):
    got = snapshot(benchmark)
    path = GOLDEN / f"{benchmark}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"no golden file {path}; run with MR2BENCH_UPDATE_GOLDEN=1 and review it"
    assert got == path.read_text(encoding="utf-8")


def test_every_benchmark_names_a_known_template():
    for name in benchmark_names():
        spec = get_benchmark(name)
        assert spec.judge_prompt, f"{name} has no judge_prompt"
        get_template(spec.judge_prompt)  # raises with the close matches when unknown


def test_templates_follow_the_official_wording():
    """Anchors checked against the official scripts (VL_RewardBench prompt.py, multimodal_rewardbench
    1_run_model_as_judge_gpt4o.py), independent of the golden files."""
    vlrb = get_template("vlrb_pairwise_v1").render("Q", ("x", "y"))
    assert vlrb.startswith(" You are a highly capable multimodal AI assistant tasked with evaluating answers")
    assert "For example: Overall Judgment: Answer X is better." in vlrb
    mmrb = get_template("mmrb_pairwise_v1").render("Q", ("x", "y"))
    assert mmrb.startswith("Please act as an impartial judge and evaluate the quality of the responses")
    assert mmrb.endswith("[The Start of Assistant B's Answer]\ny\n[The End of Assistant B's Answer]")
    assert '"[[A]]" if assistant A is better, "[[B]]" if assistant B is better.' in mmrb
    for template_id in template_ids():                         # every header is complete and consistent
        t = get_template(template_id)
        assert t.changelog and t.source and t.description
