"""Images and videos -> vision tensors + placeholder token ids, within a vision-token budget.

Images go through the Pillow image processor (``Qwen2VLImageProcessorPil``); videos through a torch-only
patchifier that reproduces the official video processors' layout (those need torchvision, which the CPU
torch cannot load). When the budget is too small the frame count is halved first, then the resolution is
lowered; every reduction is reported in ``EncodedMedia.notes``, never silent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_IMAGE_TOKENS = 1280       # Qwen's default max_pixels = 28*28*1280
DEFAULT_FRAME_TOKENS = 768        # per temporal group (Qwen2-VL video max_pixels 602112 / 28^2)
MIN_FRAMES = 2


@dataclass
class EncodedMedia:
    """What one image or video contributes to a sequence."""

    kind: str                                  # "image" | "video"
    tensors: dict[str, torch.Tensor]           # pixel_values + image_grid_thw, or *_videos + video_grid_thw
    placeholder_ids: list[int]                 # token ids that stand for the media in the user turn
    placeholder_types: list[int]               # mm_token_type_ids for them: 0 text, 1 image, 2 video
    notes: dict[str, float] = field(default_factory=dict)  # truncation report


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as _sr

    return _sr(height, width, factor=factor, min_pixels=min(min_pixels, max_pixels), max_pixels=max_pixels)


def patchify_video(frames: np.ndarray, *, patch: int, temporal: int, merge: int, mean: tuple[float, ...],
                   std: tuple[float, ...], min_pixels: int, max_pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [T, H, W, 3] -> (pixel_values_videos [t*h*w, 3*temporal*patch^2], grid_thw [1, 3]).

    Same resize rule, normalisation and patch order as the official Qwen video processors.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    t, c, height, width = x.shape
    h, w = smart_resize(height, width, patch * merge, min_pixels, max_pixels)
    x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp_(0, 255) / 255.0
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    if t % temporal:
        x = torch.cat([x, x[-1:].expand(temporal - t % temporal, -1, -1, -1)])
    gt, gh, gw = x.shape[0] // temporal, h // patch, w // patch
    x = x.reshape(gt, temporal, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * temporal * patch * patch), torch.tensor([[gt, gh, gw]])


class QwenMediaEncoder:
    """Media encoder for the Qwen2.5-VL / Qwen3-VL families (also Qwen2-VL)."""

    def __init__(self, config: Any, tokenizer: Any, image_processor: Any = None) -> None:
        vc = config.vision_config
        self.family = config.model_type
        self.patch = int(vc.patch_size)
        self.merge = int(getattr(vc, "spatial_merge_size", 2))
        self.temporal = int(getattr(vc, "temporal_patch_size", 2))
        self.factor = self.patch * self.merge
        self.image_token_id = int(config.image_token_id)
        self.video_token_id = int(config.video_token_id)
        self.vision_start_id = int(config.vision_start_token_id)
        self.vision_end_id = int(config.vision_end_token_id)
        self.tokenizer = tokenizer
        if image_processor is None:
            from transformers import Qwen2VLImageProcessorPil

            stats = dict(image_mean=[0.5] * 3, image_std=[0.5] * 3) if self.family == "qwen3_vl" else {}
            image_processor = Qwen2VLImageProcessorPil(patch_size=self.patch, merge_size=self.merge,
                                                       temporal_patch_size=self.temporal, **stats)
        self.image_processor = image_processor
        self.mean = tuple(float(v) for v in (image_processor.image_mean or CLIP_MEAN))
        self.std = tuple(float(v) for v in (image_processor.image_std or CLIP_STD))

    def save_pretrained(self, out: str) -> None:
        self.image_processor.save_pretrained(out)

    # -- images ---------------------------------------------------------------------------------------
    def encode_image(self, image: Any, max_tokens: int = DEFAULT_IMAGE_TOKENS) -> EncodedMedia:
        """A PIL image -> tensors; resolution capped so that at most ``max_tokens`` tokens result."""
        max_tokens = max(1, int(max_tokens))
        full = self._tokens_for(image.height, image.width, DEFAULT_IMAGE_TOKENS)
        cap = min(max_tokens, DEFAULT_IMAGE_TOKENS)
        max_pixels = cap * self.factor * self.factor
        size = {"shortest_edge": min(self.factor * self.factor, max_pixels), "longest_edge": max_pixels}
        out = self.image_processor(images=[image], return_tensors="pt", size=size)
        grid = out["image_grid_thw"]
        n = int(grid.prod().item()) // (self.merge ** 2)
        notes: dict[str, float] = {"vision_tokens": float(n)}
        if n < full:
            notes.update(image_downscaled=1.0, vision_tokens_full=float(full))
        ids = [self.vision_start_id] + [self.image_token_id] * n + [self.vision_end_id]
        types = [0] + [1] * n + [0]
        return EncodedMedia("image", {"pixel_values": out["pixel_values"], "image_grid_thw": grid}, ids, types,
                            notes)

    # -- videos ---------------------------------------------------------------------------------------
    def encode_video(self, frames: np.ndarray, max_tokens: int, frame_tokens: int = DEFAULT_FRAME_TOKENS,
                     fps: float = 1.0) -> EncodedMedia:
        """uint8 [T, H, W, 3] -> tensors; frames halved, then resolution lowered, to fit ``max_tokens``."""
        total, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
        keep = total
        per_group = self._tokens_for(height, width, frame_tokens)
        while keep > MIN_FRAMES and self._groups(keep) * per_group > max_tokens:
            keep = max(MIN_FRAMES, keep // 2)
        notes: dict[str, float] = {"frames_in": float(total), "frames_used": float(keep)}
        if keep < total:
            idx = [int(round(v)) for v in np.linspace(0, total - 1, keep)]
            frames = frames[idx]
        groups = self._groups(keep)
        cap = min(frame_tokens, max(1, max_tokens // groups))
        if cap < per_group:
            notes.update(frames_downscaled=1.0)
        pixels, grid = patchify_video(frames, patch=self.patch, temporal=self.temporal, merge=self.merge,
                                      mean=self.mean, std=self.std, min_pixels=self.factor * self.factor,
                                      max_pixels=cap * self.factor * self.factor)
        gt, gh, gw = (int(v) for v in grid[0])
        per = gh * gw // (self.merge ** 2)
        ids: list[int] = []
        types: list[int] = []
        if self.family == "qwen3_vl":  # one timestamped block per temporal group (Qwen3VLProcessor)
            for g in range(gt):
                stamp = self.tokenizer.encode(f"<{g * self.temporal / fps:.1f} seconds>", add_special_tokens=False)
                ids += stamp + [self.vision_start_id] + [self.video_token_id] * per + [self.vision_end_id]
                types += [0] * len(stamp) + [0] + [2] * per + [0]
        else:
            ids = [self.vision_start_id] + [self.video_token_id] * (gt * per) + [self.vision_end_id]
            types = [0] + [2] * (gt * per) + [0]
        notes["vision_tokens"] = float(gt * per)
        if keep < total:
            notes["frames_dropped"] = float(total - keep)
        return EncodedMedia("video", {"pixel_values_videos": pixels, "video_grid_thw": grid}, ids, types, notes)

    def _groups(self, frames: int) -> int:
        return math.ceil(frames / self.temporal)

    def _tokens_for(self, height: int, width: int, cap_tokens: int) -> int:
        h, w = smart_resize(height, width, self.factor, self.factor * self.factor,
                            cap_tokens * self.factor * self.factor)
        return (h // self.factor) * (w // self.factor)
