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

The prompt flags (column tokens, frame tokens, ...) come from the checkpoint's own ``processor_config.json``
and the top-level ``use_frame_special_tokens`` of its ``config.json`` (the release sets it to false), over
``Molmo2Processor``'s defaults. ``time_mode`` is read and kept; its meaning in the release's remote code is
UNVERIFIED, so any value renders timestamps as the native processor does (``f"{t:.1f} "``, seconds) and an
unknown one is logged.

Videos as the release reads them (``mr2rm/data/dataset.py`` + ``molmo_utils.vision_process``):
* a FILE: ``uniform_last_frame`` sampling, at most 384 frames and at most 2 per second (molmo_utils'
  defaults; the release's processor call passes ``do_sample_frames=False``); the duration and the frame picked
  for each sample time come from the container's presentation timestamps, and the prompt's timestamps are
  the sample times. Packet timestamps are read first (no decoding), then only the kept frames are converted.
* a FOLDER of frames: its ``*.jpeg``, ``*.jpg``, ``*.png`` (each sorted, in that order), 16 frames evenly with
  both endpoints, timestamps ``k * interval`` for the frame's position k in the folder (interval = the row's
  ``sampling_interval`` or ``fps`` field, else 4.0 s).
"""
from __future__ import annotations

import importlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
PROCESSOR_CONFIG = "processor_config.json"
FOLDER_FRAMES = 16                   # the release's max_video_frames for frame folders
FOLDER_INTERVAL = 4.0                # seconds between folder frames unless the row says otherwise
FOLDER_SUFFIXES = ("*.jpeg", "*.jpg", "*.png")
RELEASE_MAX_FRAMES = 384             # molmo_utils MAX_FRAMES
RELEASE_MAX_FPS = 2.0                # molmo_utils MAX_FPS
KNOWN_TIME_MODES = (None, "seconds", "per-frame", "per_frame")


@dataclass(frozen=True)
class ProcessorFlags:
    """The prompt-layout keys of ``processor_config.json``; defaults = ``Molmo2Processor.__init__``."""

    image_use_col_tokens: bool = True
    use_single_crop_col_tokens: bool | None = None
    use_single_crop_start_token: bool = True
    video_use_col_tokens: bool = False
    use_frame_special_tokens: bool = True
    time_mode: str | None = None

    @classmethod
    def from_files(cls, processor_cfg: dict[str, Any], model_cfg: dict[str, Any]) -> "ProcessorFlags":
        """processor_config.json over the top-level config.json flag over the defaults."""
        known = {f for f in cls.__dataclass_fields__}
        values: dict[str, Any] = {}
        if "use_frame_special_tokens" in model_cfg:
            values["use_frame_special_tokens"] = model_cfg["use_frame_special_tokens"]
        values.update({k: v for k, v in processor_cfg.items() if k in known})
        for key, value in values.items():
            if key != "time_mode" and value is not None and not isinstance(value, bool):
                raise ValueError(f"{PROCESSOR_CONFIG}: {key} must be true, false or null, got {value!r}")
        flags = cls(**values)
        if flags.time_mode not in KNOWN_TIME_MODES:
            log.warning("%s: time_mode %r is not one mr2bench knows; timestamps are rendered in seconds "
                        "as transformers' Molmo2Processor does", PROCESSOR_CONFIG, flags.time_mode)
        return flags

    def shim_fields(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "time_mode"}


@dataclass(frozen=True)
class VideoClip:
    """Decoded frames uint8 [T, H, W, 3] with the timestamp (seconds) the prompt shows for each."""

    frames: np.ndarray
    timestamps: tuple[float, ...]
    notes: dict[str, float] = field(default_factory=dict)


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
    flags: ProcessorFlags = field(default_factory=ProcessorFlags)

    def save_pretrained(self, out: str) -> None:
        self.image.save_pretrained(out)
        self.video.save_pretrained(out)
        cfg = {"processor_class": "Molmo2Processor", **asdict(self.flags)}
        if cfg["time_mode"] is None:
            del cfg["time_mode"]
        Path(out, PROCESSOR_CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _json_file(name_or_path: str, filename: str, common: dict[str, Any]) -> dict[str, Any]:
    """A JSON file of a folder or Hub repository; {} when absent."""
    local = Path(name_or_path)
    path: Path | None = local / filename if local.is_dir() else None
    if path is None:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name_or_path, filename, cache_dir=common.get("cache_dir"),
                                        revision=common.get("revision")))
        except Exception as exc:  # absent remotely, offline, or not a repo id: the defaults apply
            log.info("no %s for %s (%s)", filename, name_or_path, exc)
            return {}
    if not path.is_file():
        return {}
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    return out if isinstance(out, dict) else {}


def load_flags(name_or_path: str | None, common: dict[str, Any] | None = None) -> ProcessorFlags:
    if name_or_path is None:
        return ProcessorFlags()
    common = common or {}
    return ProcessorFlags.from_files(_json_file(name_or_path, PROCESSOR_CONFIG, common),
                                     _json_file(name_or_path, "config.json", common))


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
    return Molmo2Processors(image, video, load_flags(name_or_path, common))


def _processor_shim(flags: ProcessorFlags, tokenizer: Any = None) -> Any:
    return SimpleNamespace(**flags.shim_fields(), tokenizer=tokenizer)


def image_string(grid: list[int], tokenizer: Any = None, flags: ProcessorFlags = ProcessorFlags()) -> str:
    """The text that replaces ``<|image|>`` for one image grid (``Molmo2Processor.replace_image_token``)."""
    proc = _molmo2("processing_molmo2").Molmo2Processor
    return proc.replace_image_token(_processor_shim(flags, tokenizer), {"image_grids": [list(grid)]}, 0)


def video_string(grid: list[int], timestamps: list[float], flags: ProcessorFlags = ProcessorFlags()) -> str:
    """The text that replaces ``<|video|>`` (``Molmo2Processor.get_video_string``)."""
    proc = _molmo2("processing_molmo2").Molmo2Processor
    return proc.get_video_string(_processor_shim(flags), torch.tensor(grid), list(timestamps))


# -- video sampling as the release does it -------------------------------------------------------------
def sample_times(duration: float, num_frames: int, max_fps: float | None) -> np.ndarray:
    """molmo_utils ``uniform_last_frame``: every 1/max_fps s plus the last instant, or num_frames evenly."""
    if max_fps is not None and (num_frames - 1) / max_fps >= duration:
        return np.concatenate([np.arange(0.0, duration, 1.0 / max_fps), [duration]])
    return np.linspace(0.0, duration, num=num_frames, endpoint=True, dtype=np.float64)


def frame_indices(pts: np.ndarray, fps: float, num_frames: int, max_fps: float | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(index of the frame shown at each sample time, sample times), from sorted presentation times [s].

    The duration runs from the first frame to the last frame's end (last pts + 1/fps), as decord's frame
    timestamps and molmo_utils' PyAV fallback give it; a sample time picks the frame being shown then.
    """
    start, end = float(pts[0]), float(pts[-1]) + 1.0 / fps
    times = sample_times(end - start, num_frames, max_fps)
    ends = np.append(pts[1:], end)
    idx = np.minimum(np.searchsorted(ends, times + start, side="right"), len(pts) - 1)
    return idx, times


def read_video_file(path: str | Path, num_frames: int, max_fps: float | None) -> VideoClip:
    """A video file sampled as the release samples it; only the kept frames are converted (bounded memory)."""
    import av

    from ..schema import DataError

    try:
        pts, base, fps = _presentation_pts(av, path)
        if not pts or fps is None:
            raise DataError(f"video has no frames or no frame rate: {path}", field="media")
        seconds = np.array([float(p * base) for p in pts])
        idx, times = frame_indices(seconds, fps, num_frames, max_fps)
        wanted = {pts[i] for i in idx}
        kept: dict[int, np.ndarray] = {}
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                if frame.pts in wanted and frame.pts not in kept:
                    kept[frame.pts] = frame.to_ndarray(format="rgb24")
                if len(kept) == len(wanted):
                    break
    except DataError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise DataError(f"cannot decode video {path}: {exc}", field="media") from None
    missing = wanted - set(kept)
    if missing:
        raise DataError(f"cannot decode video {path}: no frame at pts {sorted(missing)[:3]}", field="media")
    frames = np.stack([kept[pts[i]] for i in idx])
    return VideoClip(frames, tuple(float(t) for t in times),
                     {"video_frames_total": float(len(pts)), "video_duration_s": float(times[-1])})


def _presentation_pts(av: Any, path: str | Path) -> tuple[list[int], Any, float | None]:
    """(sorted frame pts, time base, average fps): from the packets, or by decoding when packets lack pts."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base, fps = stream.time_base, float(stream.average_rate or stream.guessed_rate or 0) or None
        pts = sorted(int(p.pts) for p in container.demux(stream) if p.pts is not None and p.size)
    if not pts:  # e.g. raw streams: decode once, keeping only each frame's pts
        with av.open(str(path)) as container:
            pts = sorted(int(f.pts) for f in container.decode(video=0) if f.pts is not None)
    return pts, base, fps


def folder_frames(folder: Path) -> list[Path]:
    """The release's frame list: each suffix sorted, jpeg then jpg then png."""
    return [p for pattern in FOLDER_SUFFIXES for p in sorted(folder.glob(pattern))]


def folder_indices(total: int, k: int = FOLDER_FRAMES) -> list[int]:
    """k positions evenly with both endpoints; rounding collisions refilled from the tail (the release)."""
    if total <= k:
        return list(range(total))
    picked = list(dict.fromkeys(min(total - 1, int(round(j * (total - 1) / (k - 1)))) for j in range(k)))
    tail = (i for i in range(total - 1, -1, -1) if i not in picked)
    while len(picked) < k:
        picked.append(next(tail))
    return sorted(picked)


def read_frame_folder(folder: str | Path, interval: float = FOLDER_INTERVAL, k: int = FOLDER_FRAMES) -> VideoClip:
    from PIL import Image

    from ..schema import DataError

    files = folder_frames(Path(folder))
    if not files:
        raise DataError(f"frame folder has no .jpeg/.jpg/.png frames: {folder}", field="media.path")
    if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
        raise DataError(f"the frame interval must be a positive number of seconds, got {interval!r}", field="fps")
    idx = folder_indices(len(files), k)
    frames = [np.asarray(Image.open(files[i]).convert("RGB")) for i in idx]
    if len({f.shape for f in frames}) != 1:  # molmo_utils would fail to stack; resize to the first frame
        size = frames[0].shape[1::-1]
        frames = [np.asarray(Image.fromarray(f).resize(size)) for f in frames]
    return VideoClip(np.stack(frames), tuple(i * float(interval) for i in idx),
                     {"video_frames_total": float(len(files))})


def load_release_video(media: Any, root: str | Path | None, interval: float | None = None,
                       num_frames: int = RELEASE_MAX_FRAMES, max_fps: float | None = RELEASE_MAX_FPS) -> VideoClip:
    """A ``Media`` video (file or frame folder) read as the release reads it.

    Files: molmo_utils' own defaults (the release calls ``process_vision_info`` without options and the
    processor with ``do_sample_frames=False``, so the checkpoint's video config does not choose the frames).
    """
    from ..media import check_media_path
    from ..schema import DataError

    if media.data is not None:
        raise DataError("in-memory video bytes: write them to a file first", field="media.data")
    # inside the root, regular files only (a FIFO or a symlink out is a failed item, never opened)
    path = check_media_path("video", media.path or "", root)
    if path.is_dir():
        return read_frame_folder(path, FOLDER_INTERVAL if interval is None else interval)
    return read_video_file(path, num_frames, max_fps)


class Molmo2MediaEncoder:
    """Images and videos for a Molmo2 backbone, within a token budget."""

    def __init__(self, tokenizer: Any, processors: Molmo2Processors | None = None) -> None:
        self.tokenizer = tokenizer
        self.processors = processors if processors is not None else load_processors(None)
        self.image_processor = self.processors.image
        self.video_processor = self.processors.video
        self.flags = self.processors.flags
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
        return len(self._tokens(image_string(grid, flags=self.flags))[0])

    # -- images ---------------------------------------------------------------------------------------
    def encode_image(self, image: Any, max_tokens: int) -> EncodedMedia:
        """A PIL image -> crops + pooling; crops halved (8 -> 4 -> 2 -> 1) until the tokens fit ``max_tokens``."""
        full_crops = int(self.image_processor.max_crops)
        crops = full_crops
        while crops > 1 and self.image_tokens(image.height, image.width, crops) > max_tokens:
            crops = max(1, crops // 2)
        out = self.image_processor(images=[image], max_crops=crops, return_tensors="pt")
        grid = [int(v) for v in out["image_grids"][0]]
        ids, types = self._tokens(image_string(grid, flags=self.flags))
        notes = {"vision_tokens": float(sum(types)), "image_crops": float(out["image_num_crops"][0])}
        if crops < full_crops:
            notes.update(image_downscaled=1.0,
                         vision_tokens_full=float(self.image_tokens(image.height, image.width, full_crops)))
        tensors = {"pixel_values": out["pixel_values"], "image_token_pooling": out["image_token_pooling"],
                   "image_grids": out["image_grids"]}
        return EncodedMedia("image", tensors, ids, types, notes)

    # -- videos ---------------------------------------------------------------------------------------
    def encode_video(self, video: "VideoClip | np.ndarray", max_tokens: int) -> EncodedMedia:
        """Frames (a ``VideoClip``, or bare uint8 [T, H, W, 3]) -> one view per frame (Molmo2's video path).

        Bare frames get the processor's own timestamps for a frame array without metadata (index / max_fps).
        When the frames do not fit ``max_tokens``, the most that fit are kept, chosen as the release reduces
        a frame list (``np.linspace(0, T - 1, n, dtype=int)``), with their timestamps.
        """
        clip = video if isinstance(video, VideoClip) else VideoClip(np.asarray(video), self.timestamps(len(video)))
        total = int(clip.frames.shape[0])
        keep = self._frames_that_fit(list(clip.timestamps), max_tokens)
        notes: dict[str, float] = {**clip.notes, "frames_in": float(total), "frames_used": float(keep)}
        frames, stamps = clip.frames, list(clip.timestamps)
        if keep < total:
            idx = np.linspace(0, total - 1, keep, dtype=int)
            frames, stamps = frames[idx], [stamps[i] for i in idx]
            notes["frames_dropped"] = float(total - keep)
        out = self._video_batch(frames)
        grid = [int(v) for v in out["video_grids"][0]]
        ids, types = self._tokens(video_string(grid, stamps, self.flags))
        notes["vision_tokens"] = float(sum(types))
        n_frames, rows, cols = grid
        tensors = {"pixel_values": out["pixel_values_videos"], "image_token_pooling": out["video_token_pooling"],
                   # what get_video_features hands to get_image_features
                   "image_grids": torch.tensor([[n_frames * rows, cols, 0, 0]], dtype=torch.long)}
        return EncodedMedia("video", tensors, ids, types, notes)

    def timestamps(self, n: int) -> tuple[float, ...]:
        # Molmo2Processor on a frame array without metadata: indices 0..T-1 at max_fps
        fps = float(self.video_processor.max_fps)
        return tuple(i / fps for i in range(n))

    def _frames_that_fit(self, stamps: list[float], max_tokens: int) -> int:
        """The largest frame count whose tokens (with the timestamps those frames keep) fit ``max_tokens``."""
        def tokens(n: int) -> int:
            idx = np.linspace(0, len(stamps) - 1, n, dtype=int)
            return self._video_tokens([stamps[i] for i in idx])

        lo, hi = MIN_FRAMES, len(stamps)
        if tokens(hi) <= max_tokens:
            return hi
        while lo < hi:  # the count grows with n (one block per frame), so bisect
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if tokens(mid) <= max_tokens else (lo, mid - 1)
        return lo

    def _video_batch(self, frames: np.ndarray) -> Any:
        from transformers.image_utils import SizeDict

        vp = self.video_processor
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        size = vp.size if isinstance(vp.size, SizeDict) else SizeDict(**vp.size)
        return vp._preprocess([video], size=size, resample=vp.resample, do_rescale=vp.do_rescale,
                              rescale_factor=vp.rescale_factor, do_normalize=vp.do_normalize,
                              image_mean=vp.image_mean, image_std=vp.image_std, patch_size=vp.patch_size,
                              pooling_size=vp.pooling_size, return_tensors="pt")

    def _video_tokens(self, stamps: list[float]) -> int:
        vp = self.video_processor
        side = -(-(int(vp.size["height"]) // int(vp.patch_size)) // int(vp.pooling_size[0]))
        side_w = -(-(int(vp.size["width"]) // int(vp.patch_size)) // int(vp.pooling_size[1]))
        return len(self._tokens(video_string([len(stamps), side, side_w], stamps, self.flags))[0])
