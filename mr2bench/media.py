"""Media at the edge: resolve paths inside a dataset root, load images, decode and sample video frames.

Pillow and PyAV are imported inside the functions that need them.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .schema import DataError, Media

if TYPE_CHECKING:
    from PIL.Image import Image

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_NUM_FRAMES = 16


def resolve_inside(root: str | Path | None, rel: str) -> Path:
    """Resolve a media path against the dataset root; a path that escapes the root is an error."""
    if root is None:
        return Path(rel)
    base = Path(root).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise DataError(f"media path {rel!r} escapes the dataset root {str(base)!r}", field="media.path")
    return target


def load_image(media: Media, root: str | Path | None = None) -> "Image":
    from PIL import Image, UnidentifiedImageError

    try:
        if media.data is not None:
            img = Image.open(io.BytesIO(media.data))
        else:
            path = resolve_inside(root, media.path or "")
            if not path.is_file():
                raise DataError(f"image not found: {path}", field="media.path")
            img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"unreadable image: {exc}", field="media") from None
    return img.convert("RGB")


def uniform_indices(total: int, k: int) -> list[int]:
    """k frame indices spread uniformly over [0, total), endpoints included (the release's sampler)."""
    if total <= 0:
        raise DataError("video has no frames", field="media")
    if k >= total:
        return list(range(total))
    if k == 1:
        return [0]
    return [int(round(x)) for x in np.linspace(0, total - 1, k)]


def load_video_frames(media: Media, root: str | Path | None = None,
                      num_frames: int = DEFAULT_NUM_FRAMES) -> np.ndarray:
    """Frames as uint8 [T, H, W, 3], uniformly sampled; a video file (PyAV) or a folder of frames."""
    if media.data is not None:
        return _decode_video(io.BytesIO(media.data), num_frames, "<bytes>")
    path = resolve_inside(root, media.path or "")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise DataError(f"frame folder has no images: {path}", field="media.path")
        from PIL import Image

        picked = [files[i] for i in uniform_indices(len(files), num_frames)]
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in picked]
        if len({f.shape for f in frames}) != 1:
            size = frames[0].shape[1::-1]
            frames = [np.asarray(Image.fromarray(f).resize(size)) for f in frames]
        return np.stack(frames)
    if not path.is_file():
        raise DataError(f"video not found: {path}", field="media.path")
    return _decode_video(str(path), num_frames, str(path))


def _decode_video(source: object, num_frames: int, label: str) -> np.ndarray:
    try:
        import av
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("video decoding needs PyAV: pip install 'mr2bench[model]'") from None
    try:
        with av.open(source) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise DataError(f"cannot decode video {label}: {exc}", field="media") from None
    if not frames:
        raise DataError(f"video has no frames: {label}", field="media")
    return np.stack([frames[i] for i in uniform_indices(len(frames), num_frames)])


def write_test_video(path: str | Path, frames: int = 8, size: tuple[int, int] = (64, 48), fps: int = 8) -> Path:
    """Encode a small moving-square H.264/MPEG-4 clip (for tests and demos)."""
    import av

    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            img = np.zeros((h, w, 3), dtype=np.uint8)
            img[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
            x = (t * 5) % max(1, w - 8)
            img[8:16, x:x + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(path)
