"""``skywork-vl:MODEL``: Skywork-VL-Reward-7B, Qwen2.5-VL-7B-Instruct with a scalar value head, pointwise.

Source: the model card of Skywork/Skywork-VL-Reward-7B (Hugging Face, "Run inference code"; MIT) and its
technical report arXiv 2505.07263, read and re-written here. The card loads
``Qwen2_5_VLForConditionalGeneration``, wraps it in TRL's ``AutoModelForCausalLMWithValueHead``, loads
``value_head.safetensors`` into it, and scores one (image, question, answer) chat:
``messages = [user: [image, question], assistant: answer]`` through the processor's chat template with
``add_generation_prompt=False``; the score is the value head's output at the last token of the sequence
(``values.gather(-1, attention_mask.sum(-1) - 1)``).
Here, without TRL: the value head is ``Linear(H, 1)`` read from ``value_head.safetensors`` (keys
``v_head.summary.weight`` / ``v_head.summary.bias``, TRL's ``ValueHead`` names: UNVERIFIED against the real
file; a file without them is refused in one line), applied to the final hidden state (after the model's
final norm, as TRL reads ``hidden_states[-1]``) at the last token. One pass per response, unpadded.
Assumptions, declared: videos become a video part when the processor has a video processor, else frames as
images (the card shows images only); the card's ``min_pixels``/``max_pixels`` are left to the processor
config. N-way items: each response pointwise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..schema import DataError, ScoringRequest
from ._shared import check_args, need_target, request_media, torch_device, torch_dtype

HEAD_FILE = "value_head.safetensors"
HEAD_KEYS = ("v_head.summary.weight", "v_head.summary.bias")


def chat_messages(question: str, answer: str, media_parts: list[dict]) -> list[dict]:
    """The card's layout: the user turn holds the media then the question; the assistant turn the answer."""
    return [{"role": "user", "content": [*media_parts, {"type": "text", "text": question}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def head_file(target: str) -> str:
    if Path(target).is_dir():
        path = Path(target) / HEAD_FILE
        if not path.is_file():
            raise DataError(f"{path} not found: a Skywork-VL-Reward folder holds the value head there", field="model")
        return str(path)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(target, HEAD_FILE)


def load_head(path: str) -> Any:
    import torch
    from safetensors.torch import load_file

    params = load_file(path)
    missing = [k for k in HEAD_KEYS if k not in params]
    if missing:
        raise DataError(f"{path}: no {missing} (keys found: {sorted(params)[:4]})", field="model")
    weight, bias = params[HEAD_KEYS[0]], params[HEAD_KEYS[1]]
    head = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head.eval()


class SkyworkVLAdapter:
    def __init__(self, target: str, options) -> None:
        need_target("skywork-vl", target)
        from transformers import AutoModelForImageTextToText

        from ..judges.local import load_processor

        check_args(options, ())  # this kind reads no --model-arg
        self.options = options
        self.device = torch_device(options)
        self.model = AutoModelForImageTextToText.from_pretrained(
            target, dtype=torch_dtype(options), trust_remote_code=options.trust_remote_code).to(self.device).eval()
        self.processor = load_processor(target, options.trust_remote_code)
        self.video_native = getattr(self.processor, "video_processor", None) is not None
        self.head = load_head(head_file(target)).to(self.device)

    def render(self, request: ScoringRequest, answer: str) -> tuple[str, list, list]:
        images, videos, parts = request_media(request, self.options.num_frames, self.video_native)
        text = self.processor.apply_chat_template(chat_messages(request.prompt, answer, parts), tokenize=False,
                                                  add_generation_prompt=False)
        return text, images, videos

    def score_one(self, request: ScoringRequest, answer: str) -> float:
        import torch

        text, images, videos = self.render(request, answer)
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = videos
        inputs = self.processor(**kwargs).to(self.device)
        with torch.inference_mode():
            out = self.model(**inputs, output_hidden_states=True, use_cache=False, return_dict=True)
            last = int(inputs["attention_mask"][0].sum()) - 1
            hidden = out.hidden_states[-1][0, last]
            return float(self.head(hidden.to(self.head.weight.dtype)).float()[0])

    def score(self, request: ScoringRequest) -> list[float]:
        return [self.score_one(request, r) for r in request.responses]
