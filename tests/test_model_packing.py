"""Packing, masks and positions of the multi-response reward model, on tiny random-weight Qwen-VL models."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mr2bench.model.backbone import load_backbone  # noqa: E402
from mr2bench.model.packing import SEPARATOR, isolated_mask, pack, restart_offsets  # noqa: E402
from mr2bench.model.reward_model import MediaPayload, RewardModel  # noqa: E402
from mr2bench.model.tiny import save_tiny_model  # noqa: E402
from mr2bench.model.value_head import ValueHead  # noqa: E402

from model_helpers import RESPONSES, sharpen  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def rm(request, tmp_path_factory):
    folder = save_tiny_model(tmp_path_factory.mktemp(request.param), request.param)
    model, tok, ip = load_backbone(str(folder), dtype=torch.float32, device=torch.device("cpu"))
    return sharpen(RewardModel(model, tok, ip).eval())


def _image(seed=0, size=(80, 60)):
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return MediaPayload("image", Image.fromarray(arr))


def _video(seed=0, frames=6):
    return MediaPayload("video", np.random.default_rng(seed).integers(0, 256, (frames, 48, 64, 3), dtype=np.uint8))


MEDIA = {"text": [], "image": [_image()], "video": [_video()]}


def test_separator_is_one_token_and_positions_are_before_each_separator(rm):
    """The release's layout: one assistant text, scores before each <|resp_sep|> and at the final token."""
    sep_id = rm.tokenizer.convert_tokens_to_ids("<|resp_sep|>")
    assert rm.sep_ids == rm.tokenizer.encode(SEPARATOR, add_special_tokens=False)
    assert rm.sep_ids.count(sep_id) == 1
    item = rm.build_item("Which is best?", RESPONSES, MEDIA["image"])
    batch = pack([item], rm.pad_id)
    ids = batch.input_ids[0].tolist()
    seps = [j for j, t in enumerate(ids) if t == sep_id]
    assert len(seps) == len(RESPONSES) - 1
    assert batch.score_positions[0].tolist() == [s - 1 for s in seps] + [len(ids) - 1]
    # independent: the text after the image is the template with the assistant message, tokenized in one go
    text = rm.tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which is best?"}]},
         {"role": "assistant", "content": [{"type": "text", "text": SEPARATOR.join(RESPONSES)}]}],
        add_generation_prompt=False, tokenize=False)
    tail = rm.tokenizer.encode(text.split("<|vision_end|>", 1)[1], add_special_tokens=False)
    assert ids[-len(tail):] == tail
    assert rm.tokenizer.decode(ids[-2:]) == "<|im_end|>\n"  # the last response is read after the template's close


@pytest.mark.parametrize("kind", ["text", "image", "video"])
def test_isolated_pass_equals_separate_passes(rm, kind):
    media = MEDIA[kind]
    one = rm.score_items([rm.build_item("Describe it.", RESPONSES, media)], "isolated")[0]
    separate = [rm.score_items([rm.build_item("Describe it.", [r], media)], "causal")[0][0] for r in RESPONSES]
    np.testing.assert_allclose(one, separate, rtol=1e-4, atol=1e-4)
    assert max(separate) - min(separate) > 1e-2  # the check is not vacuous


def test_causal_scores_do_not_see_later_responses(rm):
    a = rm.score_items([rm.build_item("Describe it.", RESPONSES, MEDIA["image"])], "causal")[0]
    changed = RESPONSES[:2] + ["something completely different here", RESPONSES[3]]
    b = rm.score_items([rm.build_item("Describe it.", changed, MEDIA["image"])], "causal")[0]
    np.testing.assert_allclose(a[:2], b[:2], rtol=1e-5, atol=1e-5)
    assert abs(a[2] - b[2]) > 1e-4
    # causal response 1 is read before the separator, its single pass after the template's close: they differ;
    # causal response 2 also sees response 1
    iso = rm.score_items([rm.build_item("Describe it.", RESPONSES, MEDIA["image"])], "isolated")[0]
    assert abs(a[0] - iso[0]) > 1e-5 and abs(a[1] - iso[1]) > 1e-5


@pytest.mark.parametrize("mode", ["causal", "isolated"])
def test_batched_equals_unbatched_with_variable_n(rm, mode):
    items = [rm.build_item("Describe it.", RESPONSES, MEDIA["image"]),
             rm.build_item("Short one?", RESPONSES[:2], []),
             rm.build_item("And the clip?", RESPONSES[1:], [_video(3, 4)])]
    together = rm.score_items(items, mode)
    alone = [rm.score_items([it], mode)[0] for it in items]
    assert [len(s) for s in together] == [4, 2, 3]
    for t, a in zip(together, alone):
        np.testing.assert_allclose(t, a, rtol=1e-4, atol=1e-4)
    raw = rm(rm.pack(items, mode))
    assert raw.shape == (3, 4) and math.isinf(raw[1, 3].item()) and raw[1, 3].item() < 0


def test_isolated_mask_and_offsets_by_hand():
    segs = torch.tensor([[0, 0, 1, 1, 2, 2, 3, -1]])
    mask = isolated_mask(segs)[0, 0]
    assert mask[4].tolist() == [True, True, False, False, True, False, False, False]
    assert mask[3].tolist() == [True, True, True, True, False, False, False, False]
    assert mask[7].tolist() == [False] * 7 + [True]  # padding attends to itself only
    assert restart_offsets(segs)[0].tolist() == [0, 0, 0, 0, 2, 2, 4, 0]


def test_value_head_init_and_scale():
    torch.manual_seed(0)
    head = ValueHead(256)
    assert head.net[0].weight.shape == (1024, 256) and head.net[2].weight.shape == (1, 1024)
    assert abs(head.net[0].weight.std().item() - 0.01) < 1e-3
    assert torch.all(head.net[0].bias == 0) and torch.all(head.net[2].bias == 0)
    x = torch.randn(3, 256)
    manual = head.net[2](torch.nn.functional.silu(head.net[0](x))).squeeze(-1) / 16.0
    torch.testing.assert_close(head(x), manual)


def test_video_budget_drops_frames_and_reports_it(rm):
    video = _video(1, frames=16)
    item = rm.build_item("Describe it.", RESPONSES, [video])
    full_tokens = item.notes["vision_tokens"]
    saved, rm.max_vision_tokens = rm.max_vision_tokens, int(full_tokens) // 4
    try:
        small = rm.build_item("Describe it.", RESPONSES, [video])
    finally:
        rm.max_vision_tokens = saved
    assert small.notes["frames_used"] < 16 and small.notes["frames_dropped"] > 0
    assert small.notes["vision_tokens"] < full_tokens
    assert small.media.tensors["video_grid_thw"][0, 0].item() == math.ceil(small.notes["frames_used"] / 2)


def test_molmo2_text_path_and_lora_targets(tmp_path):
    """Molmo2 (native in transformers): text items in both modes; LoRA hits only the language model.

    Its images and videos: tests/test_model_molmo2.py."""
    from mr2bench.model.backbone import apply_lora

    folder = save_tiny_model(tmp_path / "molmo2", "molmo2")
    model, tok, ip = load_backbone(str(folder), dtype=torch.float32, device=torch.device("cpu"))
    assert type(model).__name__ == "Molmo2Model"
    rm = sharpen(RewardModel(model, tok, ip).eval())
    one = rm.score_items([rm.build_item("Describe it.", RESPONSES)], "isolated")[0]
    separate = [rm.score_items([rm.build_item("Describe it.", [r])], "causal")[0][0] for r in RESPONSES]
    np.testing.assert_allclose(one, separate, rtol=1e-4, atol=1e-4)
    causal = rm.score_items([rm.build_item("Describe it.", RESPONSES)], "causal")[0]
    assert abs(causal[1] - separate[1]) > 1e-5
    # the release's text-only path has no leading BOS: the sequence starts with the template itself
    assert rm.build_item("Describe it.", RESPONSES).prefix_ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
    wrapped = apply_lora(model, r=2)
    names = [n for n, _ in wrapped.named_modules() if n.endswith("lora_A")]
    assert names and all(".language_model." in n for n in names)


def test_qwen25_lora_skips_the_vision_mlp(rm):
    from mr2bench.model.backbone import apply_lora, unwrap

    if rm.family != "qwen2_5_vl":
        pytest.skip("Qwen2.5-VL's vision MLP shares the gate/up/down names")
    import copy

    wrapped = apply_lora(copy.deepcopy(unwrap(rm.backbone)), r=2)
    names = [n for n, _ in wrapped.named_modules() if n.endswith("lora_A")]
    assert len(names) == 2 * 7 and all(".language_model." in n for n in names)
