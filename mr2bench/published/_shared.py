"""What the published-baseline adapters share: options, media, a transformers VLM generator, N-way pairing.

N-way items and pairwise models: a pairwise judge (R1-Reward, LLaVA-Critic, UnifiedReward) is asked about
every unordered pair (i, j), i < j, shown in the evaluator's order (i as the first answer); each response
scores the number of pairs it won. Unreadable pairs count for neither; when every pair is unreadable the
verdict is unreadable and the benchmark's parse policy decides. N = 2 is one call, as the authors run it.
Pointwise models (Skywork-VL-Reward, IXC-2.5-Reward, MM-RLHF-Reward) score each response on its own.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ..schema import DataError, ScoringRequest, Verdict


def torch_device(options: Any) -> Any:
    import torch

    device = options.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def torch_dtype(options: Any) -> Any:
    import torch

    return "auto" if options.dtype == "auto" else getattr(torch, options.dtype)


def check_args(options: Any, known: Sequence[str]) -> None:
    """A --model-arg the kind does not read is refused in one line (never silently ignored)."""
    unknown = sorted(set(options.extra) - set(known))
    if unknown:
        raise DataError(f"unknown --model-arg {unknown[0]!r}; known: {', '.join(sorted(known)) or '(none)'}",
                        field="model-arg")


def int_arg(options: Any, key: str, default: int, known: Sequence[str]) -> int:
    """An integer --model-arg, after ``check_args(options, known)``."""
    check_args(options, known)
    raw = options.extra.get(key, default)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise DataError(f"expected an integer, got {raw!r}", field=f"model-arg {key}") from None


def need_target(kind: str, target: str) -> None:
    if not target:
        raise DataError(f"give a Hub id or a folder: {kind}:MODEL", field="model")


def request_media(request: ScoringRequest, num_frames: int, video_native: bool) -> tuple[list, list, list[dict]]:
    """(images as PIL, videos as frame arrays, chat-template parts in media order). A video becomes the
    model's video input when its processor has one, else its sampled frames, one image each."""
    from PIL import Image

    from ..media import load_image, load_video_frames

    images: list[Any] = []
    videos: list[Any] = []
    parts: list[dict] = []
    for m in request.media:
        if m.kind == "image":
            images.append(load_image(m, request.media_root))
            parts.append({"type": "image"})
        elif video_native:
            videos.append(load_video_frames(m, request.media_root, num_frames))
            parts.append({"type": "video"})
        else:
            for frame in load_video_frames(m, request.media_root, num_frames):
                images.append(Image.fromarray(frame))
                parts.append({"type": "image"})
    return images, videos, parts


def all_pairs(n: int, judge: Callable[[int, int], tuple[int | None, str]]) -> Verdict:
    """Ask ``judge(i, j)`` (-> 0 if the first shown wins, 1 if the second, None if unreadable; raw text)
    for every pair i < j; scores = wins per response; raw = the text (N = 2) or a JSON list of the texts."""
    wins = [0.0] * n
    texts, readable = [], 0
    for i in range(n):
        for j in range(i + 1, n):
            pick, text = judge(i, j)
            texts.append(text)
            if pick is not None:
                readable += 1
                wins[i if pick == 0 else j] += 1.0
    raw = texts[0] if len(texts) == 1 else json.dumps(texts, ensure_ascii=False)
    usage = {"pairs": float(len(texts)), "unreadable_samples": float(len(texts) - readable)}
    return Verdict(scores=tuple(wins) if readable else None, raw=raw, usage=usage)


class VLMGenerator:
    """A transformers vision-language model (AutoModelForImageTextToText + its processor), greedy decoding.

    The same loading path as ``judge:`` (``mr2bench.judges.local.load_processor``); one user turn with the
    media and the text in the order the adapter gives."""

    def __init__(self, target: str, options: Any) -> None:
        from transformers import AutoModelForImageTextToText

        from ..judges.local import load_processor

        self.options = options
        self.device = torch_device(options)
        self.model = AutoModelForImageTextToText.from_pretrained(
            target, dtype=torch_dtype(options), trust_remote_code=options.trust_remote_code).to(self.device).eval()
        self.processor = load_processor(target, options.trust_remote_code)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.video_native = getattr(self.processor, "video_processor", None) is not None

    def chat_text(self, request: ScoringRequest, text: str, media_first: bool = True) -> tuple[str, list, list]:
        images, videos, parts = request_media(request, self.options.num_frames, self.video_native)
        body = [{"type": "text", "text": text}]
        content = parts + body if media_first else body + parts
        chat = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)
        return chat, images, videos

    def generate(self, request: ScoringRequest, text: str, max_new_tokens: int, media_first: bool = True) -> str:
        import torch

        chat, images, videos = self.chat_text(request, text, media_first)
        kwargs: dict[str, Any] = {"text": [chat], "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = videos
        inputs = self.processor(**kwargs).to(self.device)
        n_in = int(inputs["input_ids"].shape[1])
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                      pad_token_id=pad)
        return self.tokenizer.decode(out[0, n_in:], skip_special_tokens=True)
