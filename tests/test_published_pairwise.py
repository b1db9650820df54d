"""Generative pairwise baselines on Qwen2.5-VL: R1-Reward and UnifiedReward-Qwen (prompt snapshots against the
authors' scripts, verdict parsing, every pair of an N-way item, a tiny random-weight model end to end)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mr2bench.published import r1_reward, unified_reward
from mr2bench.published._shared import all_pairs
from mr2bench.schema import Media, ScoringRequest


def test_r1_reward_prompt_is_the_readme_template():
    # r1_reward README section 5 / inference/VL-Reward-Bench/r1_reward.py make_conv_rm, quoted in part:
    # "###### [Question]:\n{question}  \n\n###### [Response 1]:\n{answer1}  \n\n###### [Response 2]:\n{answer2}"
    text = r1_reward.render("Q?", "first", "second")
    assert text.startswith("You are a highly skilled and impartial evaluator tasked with comparing two responses")
    assert "###### [Question]:\nQ?  \n\n###### [Response 1]:\nfirst  \n\n###### [Response 2]:\nsecond  \n\n" in text
    assert text.endswith("<think>Your detailed comparative analysis goes here</think><answer>1/2</answer>")


@pytest.mark.parametrize("text,pick", [
    ("<think>the second is right</think><answer>2</answer>", 1),
    ("<think>x</think><answer> 1 </answer>", 0),
    ("no tags, but I pick 1 ... finally 2", 1),         # their fallback: the last 1 or 2
    ("<answer>3</answer>", None),                       # neither: unreadable (their scripts would say 2)
    ("nothing here", None),
])
def test_r1_reward_parse(text, pick):
    assert r1_reward.parse(text) == pick


def test_unified_reward_prompts_and_parse():
    img = unified_reward.render("Q?", "a", "b")
    assert img.startswith("You are given an image and a question related to it.")
    assert img.endswith("Question: Q?\nAnswer 1: a\nAnswer 2: b\n")
    vid = unified_reward.render("Q?", "a", "b", video=True)
    assert vid.startswith("Please analyze the following video and question") and "Answer 2: b\n" in vid
    assert unified_reward.parse("**Overall Judgment:** Answer 2 is better than Answer 1.") == 1
    assert unified_reward.parse("Answer 2 is better at first glance... but Answer 1 is better.") == 0
    assert unified_reward.parse("Both are fine.") is None


def test_all_pairs_counts_wins_and_keeps_every_text():
    asked = []

    def judge(i, j):
        asked.append((i, j))
        return (None, "??") if (i, j) == (0, 3) else (1 if j == 2 else 0, f"{i}-{j}")

    v = all_pairs(4, judge)
    assert asked == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert v.scores == (1.0, 1.0, 3.0, 0.0) and v.usage == {"pairs": 6.0, "unreadable_samples": 1.0}
    assert json.loads(v.raw)[2] == "??"
    assert all_pairs(2, lambda i, j: (None, "x")).scores is None            # N = 2 unreadable -> parse policy


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from mr2bench.model.tiny import save_tiny_model

    torch.set_num_threads(1)
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen", family="qwen2_5_vl", seed=0)


@pytest.mark.parametrize("kind", ["r1-reward", "unified-reward"])
def test_tiny_qwen_end_to_end(kind, tiny_qwen, tmp_path, monkeypatch):
    from PIL import Image

    from mr2bench.adapters import AdapterOptions, load_adapter

    Image.fromarray(np.full((28, 28, 3), 80, np.uint8)).save(tmp_path / "a.png")
    a = load_adapter(f"{kind}:{tiny_qwen}", AdapterOptions(device="cpu", extra={"max_tokens": "3"}))
    req = ScoringRequest(prompt="Which?", responses=("aa", "b", "ccc"), item_id="i",
                         media=(Media(kind="image", path=str(tmp_path / "a.png")),))
    chat, images, _ = a.vlm.chat_text(req, "PROMPT")
    assert chat == ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>PROMPT<|im_end|>\n"
                    "<|im_start|>assistant\n") and len(images) == 1          # media first, as their scripts
    v = a.score(req)                           # random weights: 3 short texts, one per pair
    assert len(json.loads(v.raw)) == 3 and v.usage["pairs"] == 3
    # verdicts are read from the generated text: a generator that always prefers the first answer shown
    module = r1_reward if kind == "r1-reward" else unified_reward
    shown = {"r1-reward": "<think>x</think><answer>{}</answer>", "unified-reward": "Answer {} is better"}[kind]
    assert module.parse(shown.format(2)) == 1
    monkeypatch.setattr(a.vlm, "generate", lambda request, prompt, max_new_tokens, media_first=True: shown.format(1))
    assert a.score(req).scores == (2.0, 1.0, 0.0)     # pairs (0,1), (0,2), (1,2), the lower index shown first
