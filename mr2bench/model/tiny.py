"""Tiny random-weight vision-language models built from real configs, with an in-process tokenizer.

Used by tests, the scoring benchmark and demos: nothing is downloaded. ``save_tiny_model`` writes a
folder through ``save_pretrained`` so loading it exercises the real ``from_pretrained`` path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

RESP_SEP = "<|resp_sep|>"
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>", RESP_SEP]
FAMILIES = ("qwen2_5_vl", "qwen3_vl", "molmo2")
# Molmo2's vision tokens (Molmo2Processor.image_token_ids) and media markers of its chat template
MOLMO2_SPECIAL = ["<|image|>", "<|video|>", "<im_patch>", "<im_col>", "<im_start>", "<low_res_im_start>",
                  "<frame_start>", "<im_end>", "<frame_end>", "<im_low>"]
# Tiny Molmo2 processor settings: 84-px crops of 6x6 patches (= vision image_size / num_position_embeddings),
# 1-patch overlap margins, at most 4 crops; 2x2 pooling for images, 3x3 for video frames (the release's ratio).
MOLMO2_TINY_PROCESSOR = dict(size={"height": 84, "width": 84}, patch_size=14, overlap_margins=[1, 1], max_crops=4,
                             pooling_size=[2, 2], image_mean=[0.5] * 3, image_std=[0.5] * 3)
MOLMO2_TINY_VIDEO = dict(size={"height": 84, "width": 84}, patch_size=14, pooling_size=[3, 3], image_mean=[0.5] * 3,
                         image_std=[0.5] * 3)

_SENTENCES = [
    "The cat sits on the mat and looks at the red ball.",
    "A photo of a dog running across a green field.",
    "Describe the image in detail, please.",
    "What color is the square in the video?",
    "The answer is yes. The answer is no.",
    "Good response: the object is a blue square moving right.",
    "Bad response: I cannot see anything at all.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 and letters a b c d e f g.",
    "Which response is better? The first one is correct and helpful.",
    "The quick brown fox jumps over the lazy dog.",
    "You are a helpful assistant.",
    "user assistant system seconds frame video image",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The layout of the released Molmo2 template, reduced: media markers first (``Image i`` before each of several
# images), then the Qwen-style turns without a system turn.
MOLMO2_CHAT_TEMPLATE = (
    "{% set n = namespace(img=0, vid=0) %}{% for message in messages %}{% if message['content'] is not string %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{% set n.img = n.img + 1 %}"
    "{% elif part['type'] == 'video' %}{% set n.vid = n.vid + 1 %}{% endif %}{% endfor %}{% endif %}{% endfor %}"
    "{% if n.img == 1 %}<|image|>{% elif n.img > 1 %}{% for i in range(n.img) %}Image {{ i + 1 }}<|image|>"
    "{% endfor %}{% endif %}{% for _ in range(n.vid) %}<|video|>{% endfor %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# text/vision sizes: "tiny" for tests, "medium" for the CPU benchmark (recipe section 4)
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden=64, inter=128, layers=2, heads=4, kv=2, v_hidden=64, v_inter=128, v_depth=2, v_heads=4),
    "medium": dict(hidden=512, inter=1408, layers=8, heads=8, kv=4, v_hidden=512, v_inter=1024, v_depth=8,
                   v_heads=8),
}


# Qwen2's pre-tokenizer split (its tokenizer.json): punctuation keeps the newlines after it, so a trained BPE
# merges ".\n\n" into one token, as the real Qwen vocabulary does before a separator
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
              r"|\s+(?!\S)|\s+")
_PARAGRAPHS = ["The answer is yes.\n\nThe answer is no.\n\n", "It is blue!\n\nIt is red.\n\nDone.\n\n",
               "First point.\n\nSecond point.\n\n"] * 3


def build_tokenizer(vocab_size: int = 400, family: str = "qwen2_5_vl", separator: bool = True,
                    qwen_split: bool = False) -> Any:
    """A byte-level BPE trained in process, with the Qwen special tokens (and ``<|resp_sep|>`` unless
    ``separator=False``, like every real base tokenizer).

    ``qwen_split``: Qwen2's pre-tokenizer regex and some paragraph text, so ``".\n\n"`` is one token.
    For ``molmo2`` also Molmo2's image tokens and a chat template with its layout.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if qwen_split:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = [t for t in QWEN_SPECIAL if separator or t != RESP_SEP] + (MOLMO2_SPECIAL if family == "molmo2" else [])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_SENTENCES + (_PARAGRAPHS if qwen_split else []), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   padding_side="right", additional_special_tokens=special[1:])
    fast.chat_template = MOLMO2_CHAT_TEMPLATE if family == "molmo2" else CHAT_TEMPLATE
    return fast


def build_config(family: str, vocab_size: int, token_ids: dict[str, int], size: str = "tiny") -> Any:
    """A real-architecture config (Qwen2.5-VL, Qwen3-VL or Molmo2) at a small size.

    Molmo2's vision side matches ``MOLMO2_TINY_PROCESSOR``: image_size = crop size, one position embedding
    per patch of a crop; the tokenizer must come from ``build_tokenizer(family="molmo2")``.
    """
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    s = SIZES[size]
    head_dim = s.get("head_dim", s["hidden"] // s["heads"])
    half = head_dim // 2
    section = s.get("mrope") or [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]  # sums to head_dim/2
    text = dict(vocab_size=vocab_size, hidden_size=s["hidden"], intermediate_size=s["inter"],
                num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv"],
                bos_token_id=None, eos_token_id=token_ids["eos"], pad_token_id=token_ids["pad"], max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": section})
    ids = dict(image_token_id=token_ids["image"], video_token_id=token_ids["video"],
               vision_start_token_id=token_ids["vision_start"], vision_end_token_id=token_ids["vision_end"])
    if family == "qwen2_5_vl":
        vision = dict(depth=s["v_depth"], hidden_size=s["v_hidden"], intermediate_size=s["v_inter"],
                      num_heads=s["v_heads"], out_hidden_size=s["hidden"], patch_size=14, window_size=112,
                      fullatt_block_indexes=[s["v_depth"] - 1], tokens_per_second=2)
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    if family == "qwen3_vl":
        text = {**text, "head_dim": head_dim,
                "rope_parameters": {**text["rope_parameters"], "mrope_interleaved": True}}
        vision = dict(depth=s["v_depth"], hidden_size=s["v_hidden"], intermediate_size=s["v_inter"],
                      num_heads=s["v_heads"], out_hidden_size=s["hidden"], patch_size=16,
                      num_position_embeddings=256, deepstack_visual_indexes=[0])
        return Qwen3VLConfig(text_config=text, vision_config=vision, **ids)
    if family == "molmo2":
        from transformers import Molmo2Config

        crop, patch = MOLMO2_TINY_PROCESSOR["size"]["height"], MOLMO2_TINY_PROCESSOR["patch_size"]
        mtext = dict(vocab_size=vocab_size, additional_vocab_size=8, hidden_size=s["hidden"],
                     intermediate_size=s["inter"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                     num_key_value_heads=s["kv"], head_dim=head_dim, max_position_embeddings=32768)
        vision = dict(hidden_size=s["v_hidden"], intermediate_size=s["v_inter"], num_hidden_layers=s["v_depth"],
                      num_attention_heads=s["v_heads"], num_key_value_heads=s["v_heads"],
                      head_dim=s["v_hidden"] // s["v_heads"], image_size=[crop, crop], patch_size=patch,
                      num_position_embeddings=(crop // patch) ** 2)
        adapter = dict(vision_feature_layer=[-1], hidden_size=s["v_hidden"], num_attention_heads=s["v_heads"],
                       num_key_value_heads=s["v_heads"], head_dim=s["v_hidden"] // s["v_heads"],
                       intermediate_size=s["inter"], text_hidden_size=s["hidden"])
        return Molmo2Config(text_config=mtext, vision_config=vision, adapter_config=adapter,
                            image_patch_id=token_ids["im_patch"], image_start_token_id=token_ids["im_start"],
                            low_res_image_start_token_id=token_ids["low_res_im_start"],
                            image_end_token_id=token_ids["im_end"], frame_start_token_id=token_ids["frame_start"],
                            frame_end_token_id=token_ids["frame_end"])
    raise ValueError(f"unknown tiny family {family!r}; choose from {FAMILIES}")


def token_ids_of(tokenizer: Any) -> dict[str, int]:
    conv = tokenizer.convert_tokens_to_ids
    ids = dict(eos=conv("<|im_end|>"), pad=conv("<|endoftext|>"), image=conv("<|image_pad|>"),
               video=conv("<|video_pad|>"), vision_start=conv("<|vision_start|>"),
               vision_end=conv("<|vision_end|>"))
    if "<im_patch>" in tokenizer.get_vocab():
        ids.update({t.strip("<>|"): conv(t) for t in MOLMO2_SPECIAL})
    return ids


def build_model(family: str, size: str = "tiny", seed: int = 0, tokenizer: Any = None) -> tuple[Any, Any]:
    """(*ForConditionalGeneration with random weights, tokenizer); weights are a function of seed."""
    import torch
    from transformers import (Molmo2ForConditionalGeneration, Qwen2_5_VLForConditionalGeneration,
                              Qwen3VLForConditionalGeneration)

    tok = tokenizer if tokenizer is not None else build_tokenizer(family=family)
    cfg = build_config(family, len(tok), token_ids_of(tok), size)
    cls = {"qwen2_5_vl": Qwen2_5_VLForConditionalGeneration, "qwen3_vl": Qwen3VLForConditionalGeneration,
           "molmo2": Molmo2ForConditionalGeneration}[family]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(cfg)
    return model.eval(), tok


def save_tiny_model(out_dir: str | Path, family: str = "qwen2_5_vl", size: str = "tiny", seed: int = 0,
                    tokenizer: Any = None) -> Path:
    """Write a loadable model folder (config, safetensors, tokenizer, image (and Molmo2 video) processor config).

    ``tokenizer``: e.g. ``build_tokenizer(separator=False)`` for a base that lacks ``<|resp_sep|>``.
    """
    from transformers import Qwen2VLImageProcessorPil

    out = Path(out_dir)
    model, tok = build_model(family, size, seed, tokenizer=tokenizer)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    if family == "molmo2":
        from .molmo2_media import image_processor_class, video_processor_class

        image_processor_class()(**MOLMO2_TINY_PROCESSOR).save_pretrained(out)
        video_processor_class()(**MOLMO2_TINY_VIDEO).save_pretrained(out)
        return out
    patch = 16 if family == "qwen3_vl" else 14
    mean_std = dict(image_mean=[0.5] * 3, image_std=[0.5] * 3) if family == "qwen3_vl" else {}
    Qwen2VLImageProcessorPil(patch_size=patch, **mean_std).save_pretrained(out)
    return out
