"""``ixc-reward:MODEL``: InternLM-XComposer2.5-Reward (internlm/internlm-xcomposer2d5-7b-reward), pointwise,
through the authors' remote code: loaded only with ``--trust-remote-code``.

Source: the model card of internlm/internlm-xcomposer2d5-7b-reward ("Basic Usage") and the authors' use in
github yfzhang114/r1_reward @3693413 ``inference/Multimodal-Reward/get_IXC_reward.py``, read and re-written
here. Their code: ``AutoModel.from_pretrained(path, torch_dtype=float16, trust_remote_code=True)``,
``model.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)``, then per answer
``chat = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]`` and
``score = model.get_score(chat, [image_path], hd_num=9)`` (float16 autocast on CUDA); higher is better.
Assumptions, declared: the interface is what the card and script show (``get_score(chat, images, hd_num=)``
returning a number); media are passed as file paths (bytes are written to a temporary file first; a video
file is passed by its path as the card does for videos, a frame folder as its sorted frame paths:
UNVERIFIED for the real model); ``--model-arg hd_num=N`` (default 9). R1-Reward's script counts
``r_chosen >= r_rejected`` as correct; here ties are scored by each benchmark's tie rule. N-way items: each
response pointwise.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from ..schema import DataError, Media, ScoringRequest
from ._shared import int_arg, need_target, torch_device, torch_dtype

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def chat_for(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def media_paths(media: tuple[Media, ...], root: str | None, scratch: Path) -> list[str]:
    """File paths for the remote code: stored paths resolved against the dataset root, bytes written once."""
    out: list[str] = []
    for m in media:
        if m.data is not None:
            path = scratch / (hashlib.sha256(m.data).hexdigest()[:16] + (".png" if m.kind == "image" else ".mp4"))
            if not path.exists():
                path.write_bytes(m.data)
            out.append(str(path))
            continue
        path = Path(m.path) if root is None or Path(m.path).is_absolute() else Path(root) / m.path
        if path.is_dir():
            out += [str(p) for p in sorted(path.iterdir()) if p.suffix.lower() in FRAME_SUFFIXES]
        else:
            out.append(str(path))
    return out


class IXCRewardAdapter:
    def __init__(self, target: str, options) -> None:
        need_target("ixc-reward", target)
        if not options.trust_remote_code:
            raise DataError("ixc-reward: runs the model's own code (get_score); pass --trust-remote-code to allow "
                            "it", field="--trust-remote-code")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.hd_num = int_arg(options, "hd_num", 9, ("hd_num",))
        self.device = torch_device(options)
        dtype = torch_dtype(options)
        if dtype == "auto":
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model = AutoModel.from_pretrained(target, dtype=dtype, trust_remote_code=True).to(self.device).eval()
        self.model.tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=True)
        if not callable(getattr(self.model, "get_score", None)):
            raise DataError(f"{target}: the loaded model has no get_score(chat, images) method", field="model")
        self.scratch = Path(tempfile.mkdtemp(prefix="mr2bench-ixc-"))

    def score(self, request: ScoringRequest) -> list[float]:
        import contextlib

        import torch

        images = media_paths(request.media, request.media_root, self.scratch)
        scores: list[float] = []
        amp: Any = (torch.autocast(device_type="cuda", dtype=torch.float16) if self.device.type == "cuda"
                    else contextlib.nullcontext())
        for answer in request.responses:
            with torch.inference_mode(), amp:
                value = self.model.get_score(chat_for(request.prompt, answer), images, hd_num=self.hd_num)
            scores.append(float(value))
        return scores
