"""Media at the edge: resolve paths inside a dataset root, load images, decode and sample video frames.

Containment: a path a dataset row names is checked (``check_media_path``, which the evaluator runs on
every item before the adapter sees it) before anything is opened.

- With a dataset root (``--data-dir``), the path must resolve (symlinks followed) inside the root.
- Without one (Hub mode, ``root=None``), the path must resolve inside the working directory (relative
  paths are read from there) or inside a Hugging Face cache (``HF_HUB_CACHE``, ``HF_DATASETS_CACHE``:
  where ``datasets`` itself puts the files of a Hub dataset). Anything else, e.g. ``/etc/passwd`` or
  ``../../x``, fails the item; give ``--data-dir`` for a local copy kept elsewhere.
- Only regular files are opened. A FIFO, device, socket or directory where a file belongs fails the item
  (``DataError``). The type is checked with ``stat`` before the open, and again with ``fstat`` after a
  non-blocking ``O_NOFOLLOW`` open, so a file swapped for a FIFO or a symlink in between can't block either.
- A frame folder: every frame file (by suffix) must be a regular file that resolves inside the same
  allowed place; one that does not fails the item (skipping it would silently move the sampled frames).

The loaders (``load_image``, ``load_video_frames``) keep the root rule and the regular-file rule for any
caller; called without a root they take the path as the caller's own (library use: no Hub rule).

Video memory: one streaming decode pass converts only the kept frames to RGB, into one preallocated
``[k, H, W, 3]`` array, so the peak is the kept frames plus the decoder's few reference frames, whatever
the clip's length. The frame count comes from the container (``stream.frames``), or from a demux-only
pass when the container gives none. If the decoder yields a different count, the pass runs again with the
decoded count. So the kept indices are always ``uniform_indices(decoded frames, k)``, as when every frame
was decoded first.

Pillow and PyAV are imported inside the functions that need them.
"""
from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from .schema import DataError, Media

if TYPE_CHECKING:
    from PIL.Image import Image

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_NUM_FRAMES = 16
_FIELD = "media.path"
_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


# ---------------------------------------------------------------- containment
def _within(target: Path, base: Path) -> bool:
    return target == base or base in target.parents


def _hub_bases() -> tuple[Path, ...]:
    """Where a Hub-mode path may resolve: the working directory and the Hugging Face caches."""
    bases = [Path.cwd()]
    try:
        from huggingface_hub import constants

        bases.append(Path(constants.HF_HUB_CACHE))
        bases.append(Path(os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets"))
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        pass
    return tuple(b.expanduser().resolve() for b in bases)


def _snapshot_blobs(base: Path) -> Path | None:
    """A Hugging Face cache snapshot (``<repo>/snapshots/<commit>/``) holds its files as symlinks into
    ``<repo>/blobs/`` (huggingface_hub's cache layout): there, that folder belongs to the root too."""
    blobs = base.parent.parent / "blobs"
    return blobs if base.parent.name == "snapshots" and blobs.is_dir() else None


def contained(root: str | Path, rel: str) -> Path | None:
    """The resolved path of ``rel`` under ``root``, or None when it escapes: symlinks are followed and the
    target must lie inside the root (or, for a Hub cache snapshot, in its own repo's blobs while the path
    as written stays inside the snapshot). Raises ``DataError`` for a path that cannot be resolved."""
    try:
        base = Path(root).resolve()
        target = (base / rel).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise DataError(f"bad media path {rel!r}: {exc}", field=_FIELD) from None
    if _within(target, base):
        return target
    blobs = _snapshot_blobs(base)
    if blobs is not None and _within(target, blobs) and _within(Path(os.path.normpath(base / rel)), base):
        return target
    return None


def resolve_inside(root: str | Path | None, rel: str) -> Path:
    """Resolve a media path against the dataset root; a path that escapes the root is an error. Without a
    root the path is the caller's own (library use), resolved as given; rows use :func:`check_media_path`."""
    if root is None:
        try:
            return Path(rel).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise DataError(f"bad media path {rel!r}: {exc}", field=_FIELD) from None
    target = contained(root, rel)
    if target is None:
        raise DataError(f"media path {rel!r} escapes the dataset root {str(Path(root).resolve())!r}", field=_FIELD)
    return target


def resolve_row_path(root: str | Path | None, rel: str) -> Path:
    """A path a dataset row names: inside the root, or in Hub mode (no root) inside the working directory
    or a Hugging Face cache (the module docstring)."""
    target = resolve_inside(root, rel)
    if root is None and not any(_within(target, b) for b in _hub_bases()):
        raise DataError(f"media path {rel!r} resolves outside the working directory and the Hugging Face "
                        "caches; a Hub row without --data-dir may only name files there", field=_FIELD)
    return target


def _mode(path: Path, what: str) -> int:
    try:
        return path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}", field=_FIELD) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {what} {path}: {exc}", field=_FIELD) from None


def _require_regular(mode: int, path: Path, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
        raise DataError(f"{what} {path} is {kind}; only regular files are read", field=_FIELD)


def regular_file(root: str | Path | None, rel: str, what: str = "media file") -> Path:
    """The resolved path of a regular file inside the root (never opened here)."""
    return _regular(resolve_inside(root, rel), what)


def _regular(path: Path, what: str) -> Path:
    _require_regular(_mode(path, what), path, what)
    return path


def open_regular(path: str | Path) -> IO[bytes]:
    """Open for reading, refusing (without blocking) anything that is not a regular file by now."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise DataError(f"cannot open media file {path}: {exc.strerror}", field=_FIELD) from None
    try:
        _require_regular(os.fstat(fd).st_mode, Path(path), "media file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def frame_files(folder: Path, root: str | Path | None, *, row: bool = False) -> list[Path]:
    """The frame files of a folder in order, each a regular file inside the root (``row``: the place a
    row's path may resolve to, as :func:`resolve_row_path`)."""
    try:
        names = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    except OSError as exc:
        raise DataError(f"cannot list frame folder {folder}: {exc.strerror}", field=_FIELD) from None
    if not names:
        raise DataError(f"frame folder has no images: {folder}", field=_FIELD)
    resolve = resolve_row_path if row else resolve_inside
    return [_regular(resolve(root, str(p)), "frame") for p in names]


def check_media(media: Media, root: str | Path | None) -> Path | None:
    """The checked path of a media part (None for bytes): see :func:`check_media_path`."""
    return None if media.path is None else check_media_path(media.kind, media.path, root)


def check_media_path(kind: str, rel: str, root: str | Path | None) -> Path:
    """The resolved path of a regular file, or (video) of a folder of regular frame files, never opened.
    Raises ``DataError`` for anything :func:`load_image` / :func:`load_video_frames` would refuse."""
    return _checked(kind, rel, root, row=True)[0]


def _checked(kind: str, rel: str, root: str | Path | None, *, row: bool = False
             ) -> tuple[Path, list[Path] | None]:
    """(resolved path, the frame files when it is a frame folder)."""
    what = "image" if kind == "image" else "video"
    path = (resolve_row_path if row else resolve_inside)(root, rel)
    mode = _mode(path, what)
    if kind == "video" and stat.S_ISDIR(mode):
        return path, frame_files(path, root, row=row)
    _require_regular(mode, path, what)
    return path, None


# ---------------------------------------------------------------- images
def load_image(media: Media, root: str | Path | None = None) -> "Image":
    from PIL import Image, UnidentifiedImageError

    try:
        if media.data is not None:
            img = Image.open(io.BytesIO(media.data))
            img.load()
        else:
            with open_regular(regular_file(root, media.path or "", "image")) as f:
                img = Image.open(f)
                img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"unreadable image: {exc}", field="media") from None
    return img.convert("RGB")


# ---------------------------------------------------------------- video
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
        data = media.data
        return _decode_video(lambda: io.BytesIO(data), num_frames, "<bytes>")
    path, frames = _checked("video", media.path or "", root)
    if frames is not None:
        return _folder_frames(frames, num_frames)
    return _decode_video(lambda: open_regular(path), num_frames, str(path))


def _folder_frames(files: Sequence[Path], num_frames: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    picked = [files[i] for i in uniform_indices(len(files), num_frames)]
    out: np.ndarray | None = None
    for slot, p in enumerate(picked):
        try:
            with open_regular(p) as f:
                img = Image.open(f).convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"unreadable frame {p}: {exc}", field="media") from None
        if out is None:
            out = np.empty((len(picked), img.height, img.width, 3), dtype=np.uint8)
        elif img.size != (out.shape[2], out.shape[1]):
            img = img.resize((out.shape[2], out.shape[1]))  # frames of one clip share the first's size
        out[slot] = np.asarray(img)
    assert out is not None
    return out


def _import_av() -> Any:
    try:
        import av
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("video decoding needs PyAV: pip install 'mr2bench[model]'") from None
    return av


def _decode_video(open_source: Callable[[], IO[bytes]], num_frames: int, label: str) -> np.ndarray:
    av = _import_av()
    try:
        hint = _frame_count(av, open_source)
        out, total = _decode_kept(av, open_source, uniform_indices(hint, num_frames) if hint > 0 else [])
        if total == 0:
            raise DataError(f"video has no frames: {label}", field="media")
        if total != hint:  # the container's count was off: keep what decoding every frame would keep
            out, total = _decode_kept(av, open_source, uniform_indices(total, num_frames))
    except DataError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise DataError(f"cannot decode video {label}: {exc}", field="media") from None
    assert out is not None
    return out


def _frame_count(av: Any, open_source: Callable[[], IO[bytes]]) -> int:
    """The container's frame count, or the number of packets when it gives none (no decoding)."""
    with open_source() as f, av.open(f) as container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


def _decode_kept(av: Any, open_source: Callable[[], IO[bytes]], picks: Sequence[int]
                 ) -> tuple[np.ndarray | None, int]:
    """(the frames at ``picks`` as [k, H, W, 3], number of frames decoded) in one streaming pass."""
    slots: dict[int, list[int]] = {}
    for slot, index in enumerate(picks):
        slots.setdefault(index, []).append(slot)
    out: np.ndarray | None = None
    total = 0
    with open_source() as f, av.open(f) as container:
        for index, frame in enumerate(container.decode(video=0)):
            total = index + 1
            if index not in slots:
                continue  # never converted: only the decoder's own buffers hold it
            rgb = _to_rgb(frame, None if out is None else (out.shape[2], out.shape[1]))
            if out is None:
                out = np.empty((len(picks),) + rgb.shape, dtype=np.uint8)
            for slot in slots[index]:
                out[slot] = rgb
    return out, total


def _to_rgb(frame: Any, size: tuple[int, int] | None) -> np.ndarray:
    """One decoded frame as RGB [H, W, 3]; scaled to ``size`` (w, h) when the clip changes resolution."""
    if size is None or (frame.width, frame.height) == size:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])


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
