"""Molmo2 images and videos without torchvision: transformers' own processors on torch-only resize/normalise.

``Molmo2ImageProcessor`` and ``Molmo2VideoProcessor`` derive from ``TorchvisionBackend`` but only call
torchvision for ``resize`` (bilinear, ``antialias=False``), ``normalize`` and the grey->RGB conversion; the
crop tiling, patching and pooling indices are plain torch. The subclasses here swap those three methods for
torch equivalents, so Molmo2's own ``preprocess`` runs unchanged. The prompt tokens are those of
``Molmo2Processor.replace_image_token`` / ``get_video_string`` (called on a small stand-in for the processor,
which itself cannot be built without torchvision).

A video is passed to the model in the image slots: ``Molmo2Model.get_video_features`` is
``get_image_features`` with ``image_grids = [T*rows, cols, 0, 0]``, so this is the same computation, and it
lets image and video items share one batch (the model refuses both kinds of pixel inputs in one call).
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .media_inputs import EncodedMedia

log = logging.getLogger(__name__)

# The processor's `image_token_ids`: every one of these gets mm_token_type 1 (one bidirectional block).
IMAGE_TOKENS = ("<im_patch>", "<im_col>", "<im_start>", "<low_res_im_start>", "<frame_start>", "<im_end>",
                "<frame_end>", "<im_low>")
MIN_FRAMES = 1
# Molmo2Processor's defaults (processor_config.json of the release may override them)
PROCESSOR_FLAGS = dict(image_use_col_tokens=True, use_single_crop_col_tokens=None, use_single_crop_start_token=True,
                       video_use_col_tokens=False, use_frame_special_tokens=True)


def _molmo2(name: str) -> Any:
    # Import the submodule itself: the package's lazy attribute is a torchvision-requiring dummy.
    return importlib.import_module(f"transformers.models.molmo2.{name}")


class _TorchOps:
    """The three torchvision calls of Molmo2's processors, in torch."""

    def resize(self, image: torch.Tensor, size: Any, resample: Any = None, antialias: bool = True,
               **kwargs: Any) -> torch.Tensor:
        if antialias:
            raise ValueError("the torch-only Molmo2 processor reproduces antialias=False resizing only")
        if resample is not None and int(resample) != 2:  # PILImageResampling.BILINEAR
            raise ValueError(f"the torch-only Molmo2 processor supports bilinear resampling only, got {resample}")
        shape = image.shape
        flat = image.reshape(-1, *shape[-3:])
        out = F.interpolate(flat.float(), size=(int(size.height), int(size.width)), mode="bilinear",
                            align_corners=False, antialias=False)
        return out.reshape(*shape[:-2], *out.shape[-2:]).to(image.dtype)

    def normalize(self, image: torch.Tensor, mean: Any, std: Any, inplace: bool = False, **kwargs: Any) -> torch.Tensor:
        mean_t = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        std_t = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        return (image - mean_t) / std_t

    def convert_to_rgb(self, image: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if image.ndim == 2:
            image = image[None]
        if image.shape[-3] == 1:
            image = image.expand(*image.shape[:-3], 3, *image.shape[-2:])
        elif image.shape[-3] == 4:
            image = image[..., :3, :, :]
        return image

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()  # type: ignore[misc]
        for key in ("image_processor_type", "video_processor_type"):  # save under transformers' own class name
            if key in out:
                out[key] = out[key].replace("Torch", "", 1) if out[key].startswith("TorchMolmo2") else out[key]
        return out


def image_processor_class() -> type:
    base = _molmo2("image_processing_molmo2").Molmo2ImageProcessor
    return type("TorchMolmo2ImageProcessor", (_TorchOps, base), {"__module__": __name__})


def video_processor_class() -> type:
    base = _molmo2("video_processing_molmo2").Molmo2VideoProcessor
    return type("TorchMolmo2VideoProcessor", (_TorchOps, base), {"__module__": __name__})


@dataclass
class Molmo2Processors:
    image: Any
    video: Any

    def save_pretrained(self, out: str) -> None:
        self.image.save_pretrained(out)
        self.video.save_pretrained(out)


def load_processors(name_or_path: str | None, common: dict[str, Any] | None = None) -> Molmo2Processors:
    """The image/video processors from a folder or Hub id; defaults where a config is absent."""
    common = {k: v for k, v in (common or {}).items() if k != "trust_remote_code"}
    image_cls, video_cls = image_processor_class(), video_processor_class()
    image = None
    if name_or_path is not None:
        try:
            image = image_cls.from_pretrained(name_or_path, **common)
        except (OSError, ValueError, TypeError) as exc:
            log.info("no Molmo2 image processor config at %s (%s); using defaults", name_or_path, exc)
    image = image if image is not None else image_cls()
    video = None
    if name_or_path is not None:
        try:
            cfg, _ = video_cls.get_video_processor_dict(name_or_path, **common)
            # transformers falls back to the image config, whose pooling is not the video's
            if "video_processor_type" in cfg:
                video = video_cls.from_dict(cfg)
        except (OSError, ValueError, TypeError) as exc:
            log.info("no Molmo2 video processor config at %s (%s); using defaults", name_or_path, exc)
    if video is None:
        video = video_cls(size=dict(image.size), patch_size=image.patch_size, image_mean=list(image.image_mean),
                          image_std=list(image.image_std))
    return Molmo2Processors(image, video)


def _processor_shim(tokenizer: Any) -> Any:
    return SimpleNamespace(**PROCESSOR_FLAGS, tokenizer=tokenizer)


def image_string(grid: list[int], tokenizer: Any = None) -> str:
    """The text that replaces ``<|image|>`` for one image grid (``Molmo2Processor.replace_image_token``)."""
    proc = _molmo2("processing_molmo2").Molmo2Processor
    return proc.replace_image_token(_processor_shim(tokenizer), {"image_grids": [list(grid)]}, 0)


def video_string(grid: list[int], timestamps: list[float]) -> str:
    """The text that replaces ``<|video|>`` (``Molmo2Processor.get_video_string``)."""
    proc = _molmo2("processing_molmo2").Molmo2Processor
    return proc.get_video_string(_processor_shim(None), torch.tensor(grid), timestamps)


class Molmo2MediaEncoder:
    """Images and videos for a Molmo2 backbone, within a token budget."""

    def __init__(self, tokenizer: Any, processors: Molmo2Processors | None = None) -> None:
        self.tokenizer = tokenizer
        self.processors = processors if processors is not None else load_processors(None)
        self.image_processor = self.processors.image
        self.video_processor = self.processors.video
        ids = tokenizer.convert_tokens_to_ids(list(IMAGE_TOKENS))
        unknown = tokenizer.unk_token_id
        # checked when media arrive, so that text-only items work with any tokenizer
        self.missing = [t for t, i in zip(IMAGE_TOKENS, ids) if i is None or (unknown is not None and i == unknown)]
        self.image_token_ids = set(int(i) for i in ids if i is not None)

    def save_pretrained(self, out: str) -> None:
        self.processors.save_pretrained(out)

    def _tokens(self, text: str) -> tuple[list[int], list[int]]:
        if self.missing:
            raise ValueError(f"the tokenizer lacks Molmo2's image tokens {self.missing}")
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return ids, [1 if i in self.image_token_ids else 0 for i in ids]

    def image_tokens(self, height: int, width: int, max_crops: int) -> int:
        grid, _ = self.image_processor.get_image_grid_and_crops(height, width, {"max_crops": max_crops})
        return len(self._tokens(image_string(grid))[0])

    # -- images ---------------------------------------------------------------------------------------
    def encode_image(self, image: Any, max_tokens: int) -> EncodedMedia:
        """A PIL image -> crops + pooling; crops halved (8 -> 4 -> 2 -> 1) until the tokens fit ``max_tokens``."""
        full_crops = int(self.image_processor.max_crops)
        crops = full_crops
        while crops > 1 and self.image_tokens(image.height, image.width, crops) > max_tokens:
            crops = max(1, crops // 2)
        out = self.image_processor(images=[image], max_crops=crops, return_tensors="pt")
        grid = [int(v) for v in out["image_grids"][0]]
        ids, types = self._tokens(image_string(grid))
        notes = {"vision_tokens": float(sum(types)), "image_crops": float(out["image_num_crops"][0])}
        if crops < full_crops:
            notes.update(image_downscaled=1.0,
                         vision_tokens_full=float(self.image_tokens(image.height, image.width, full_crops)))
        tensors = {"pixel_values": out["pixel_values"], "image_token_pooling": out["image_token_pooling"],
                   "image_grids": out["image_grids"]}
        return EncodedMedia("image", tensors, ids, types, notes)

    # -- videos ---------------------------------------------------------------------------------------
    def encode_video(self, frames: np.ndarray, max_tokens: int) -> EncodedMedia:
        """uint8 [T, H, W, 3] -> one 378-px view per frame (Molmo2's video path); frames halved to fit."""
        total = int(frames.shape[0])
        keep = total
        while keep > MIN_FRAMES and self._video_tokens(keep) > max_tokens:
            keep = max(MIN_FRAMES, keep // 2)
        notes: dict[str, float] = {"frames_in": float(total), "frames_used": float(keep)}
        if keep < total:
            idx = [int(round(v)) for v in np.linspace(0, total - 1, keep)]
            frames = frames[idx]
            notes["frames_dropped"] = float(total - keep)
        out = self._video_batch(frames)
        grid = [int(v) for v in out["video_grids"][0]]
        ids, types = self._tokens(video_string(grid, self.timestamps(keep)))
        notes["vision_tokens"] = float(sum(types))
        n_frames, rows, cols = grid
        tensors = {"pixel_values": out["pixel_values_videos"], "image_token_pooling": out["video_token_pooling"],
                   # what get_video_features hands to get_image_features
                   "image_grids": torch.tensor([[n_frames * rows, cols, 0, 0]], dtype=torch.long)}
        return EncodedMedia("video", tensors, ids, types, notes)

    def timestamps(self, n: int) -> list[float]:
        # Molmo2Processor on a frame array without metadata: indices 0..T-1 at max_fps
        fps = float(self.video_processor.max_fps)
        return [i / fps for i in range(n)]

    def _video_batch(self, frames: np.ndarray) -> Any:
        from transformers.image_utils import SizeDict

        vp = self.video_processor
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        size = vp.size if isinstance(vp.size, SizeDict) else SizeDict(**vp.size)
        return vp._preprocess([video], size=size, resample=vp.resample, do_rescale=vp.do_rescale,
                              rescale_factor=vp.rescale_factor, do_normalize=vp.do_normalize,
                              image_mean=vp.image_mean, image_std=vp.image_std, patch_size=vp.patch_size,
                              pooling_size=vp.pooling_size, return_tensors="pt")

    def _video_tokens(self, n: int) -> int:
        vp = self.video_processor
        side = -(-(int(vp.size["height"]) // int(vp.patch_size)) // int(vp.pooling_size[0]))
        side_w = -(-(int(vp.size["width"]) // int(vp.patch_size)) // int(vp.pooling_size[1]))
        return len(self._tokens(video_string([n, side, side_w], self.timestamps(n)))[0])
