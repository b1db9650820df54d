"""Bounded media: the video decoder keeps only the sampled frames; media paths are contained and only
regular files are opened (symlinks out, FIFOs, devices and directories fail the item, never block).

Clips are generated with PyAV here. Real-world shapes mirrored (real-artifacts.md, "Libraries as
installed"): "PyAV decodes packet by packet: a decoder that keeps every frame.to_ndarray() before choosing
16 holds the whole video". Frame folders mirror the MM-RLHF-RewardBench line: "Video frame folders sit
DIRECTLY under images/" (a folder of numbered frame images named by the row).
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
from PIL import Image  # noqa: E402

from mr2bench import media  # noqa: E402
from mr2bench.media import (check_media_path, load_image, load_video_frames, uniform_indices,  # noqa: E402
                            write_test_video)
from mr2bench.schema import DataError, Media  # noqa: E402


def write_clip(path: Path, frames: int, codec: str = "mpeg4", options: dict | None = None) -> Path:
    """Every frame differs (green ramps with t), so equal arrays mean equal frame indices."""
    w, h = 48, 32
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=8, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            img = np.zeros((h, w, 3), dtype=np.uint8)
            img[..., 1] = (t * 9) % 256
            img[4:12, (t * 3) % (w - 8):(t * 3) % (w - 8) + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_every_frame(path: Path, k: int) -> np.ndarray:
    """The pre-fix decoder, as the reference for which frames are kept."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack([frames[i] for i in uniform_indices(len(frames), k)])


def frame_folder(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.new("RGB", (8, 8), (k * 30, 9, 9)).save(folder / f"{k:04d}.png")
    return folder


def run_bounded(fn, timeout: float = 20.0):
    """Run fn in a thread; fail (not hang) if it blocks, e.g. on opening a FIFO."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # reported to the test below
            box["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        pytest.fail(f"blocked for more than {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def unblock_fifo(path: Path) -> None:
    """Release a reader stuck in open() on the FIFO (only reached when the code under test failed)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


# ---------------------------------------------------------------- the decoder
@pytest.mark.parametrize("name,codec,frames,options", [
    ("a.mp4", "mpeg4", 40, None),                                  # the container counts its frames
    ("b.mkv", "libx264", 33, {"bf": "2", "preset": "ultrafast"}),  # Matroska: no count, B-frames
    ("c.mp4", "libx264", 57, {"bf": "3", "preset": "ultrafast"}),
])
def test_kept_frames_equal_decoding_every_frame(tmp_path, name, codec, frames, options):
    path = write_clip(tmp_path / name, frames, codec, options)
    for k in (1, 5, 16, frames, frames + 10):
        want = decode_every_frame(path, k)
        got = load_video_frames(Media(kind="video", path=name), tmp_path, num_frames=k)
        assert got.dtype == np.uint8 and np.array_equal(got, want), (name, k)
        from_bytes = load_video_frames(Media(kind="video", data=path.read_bytes()), None, num_frames=k)
        assert np.array_equal(from_bytes, want)


class CountingContainer:
    """av.open's container, whose decoded frames count their conversions to arrays."""

    def __init__(self, container, counter: list[int]) -> None:
        self._c, self._counter = container, counter

    def __enter__(self):
        self._c.__enter__()
        return self

    def __exit__(self, *exc):
        return self._c.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._c, name)

    def decode(self, *args, **kwargs):
        for frame in self._c.decode(*args, **kwargs):
            yield CountingFrame(frame, self._counter)


class CountingFrame:
    def __init__(self, frame, counter: list[int]) -> None:
        self._f, self._counter = frame, counter

    def __getattr__(self, name):
        return getattr(self._f, name)

    def to_ndarray(self, *args, **kwargs):
        self._counter.append(1)
        return self._f.to_ndarray(*args, **kwargs)


def test_decoder_converts_only_the_kept_frames(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "long.mp4", 240)
    want = decode_every_frame(path, 8)
    converted: list[int] = []
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *a, **kw: CountingContainer(real_open(*a, **kw), converted))
    got = load_video_frames(Media(kind="video", path="long.mp4"), tmp_path, num_frames=8)
    assert len(converted) == 8    # 240 frames decoded, only the 8 kept ever turned into arrays
    assert np.array_equal(got, want)


def test_a_wrong_container_count_still_keeps_the_right_frames(tmp_path, monkeypatch):
    # Containers' frame counts can be off (edit lists, truncated files): the decoded count decides.
    path = write_clip(tmp_path / "v.mp4", 30)
    for wrong in (45, 12):
        monkeypatch.setattr(media, "_frame_count", lambda av_, open_source, n=wrong: n)
        got = load_video_frames(Media(kind="video", path="v.mp4"), tmp_path, num_frames=7)
        assert np.array_equal(got, decode_every_frame(path, 7)), wrong


def test_undecodable_and_empty_videos_are_data_errors(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"\x00not a video" * 50)
    with pytest.raises(DataError, match="cannot decode video"):
        load_video_frames(Media(kind="video", path="junk.mp4"), tmp_path)
    write_test_video(tmp_path / "ok.mp4", frames=3)
    assert load_video_frames(Media(kind="video", path="ok.mp4"), tmp_path, num_frames=16).shape[0] == 3


# ---------------------------------------------------------------- containment
def test_frame_symlink_out_of_the_root_fails_and_is_not_read(tmp_path):
    root = tmp_path / "data"
    folder = frame_folder(root / "images" / "clip")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(secret)
    (folder / "0002.png").unlink()
    (folder / "0002.png").symlink_to(secret)
    m = Media(kind="video", path="images/clip")
    for call in (lambda: check_media_path("video", "images/clip", root), lambda: load_video_frames(m, root)):
        with pytest.raises(DataError, match="escapes the dataset root"):
            call()
    # a symlink that stays inside the root is an ordinary frame
    (folder / "0002.png").unlink()
    (folder / "0002.png").symlink_to(folder / "0001.png")
    assert load_video_frames(m, root, num_frames=16).shape == (6, 8, 8, 3)


def test_fifo_in_a_frame_folder_fails_without_blocking(tmp_path):
    root = tmp_path / "data"
    folder = frame_folder(root / "clip")
    fifo = folder / "0003.png"
    fifo.unlink()
    os.mkfifo(fifo)
    try:
        for call in (lambda: check_media_path("video", "clip", root),
                     lambda: load_video_frames(Media(kind="video", path="clip"), root)):
            with pytest.raises(DataError, match="is a FIFO; only regular files are read"):
                run_bounded(call)
    finally:
        unblock_fifo(fifo)


def test_fifo_video_and_image_paths_fail_without_blocking(tmp_path):
    for name in ("v.mp4", "i.png"):
        os.mkfifo(tmp_path / name)
    try:
        with pytest.raises(DataError, match="is a FIFO"):
            run_bounded(lambda: load_video_frames(Media(kind="video", path="v.mp4"), tmp_path))
        with pytest.raises(DataError, match="is a FIFO"):
            run_bounded(lambda: load_image(Media(kind="image", path="i.png"), tmp_path))
        with pytest.raises(DataError, match="is a FIFO"):
            check_media_path("image", "i.png", tmp_path)
    finally:
        for name in ("v.mp4", "i.png"):
            unblock_fifo(tmp_path / name)


def test_open_regular_refuses_a_fifo_swapped_in_after_the_check(tmp_path):
    fifo = tmp_path / "late.png"
    os.mkfifo(fifo)
    try:
        with pytest.raises(DataError, match="is a FIFO"):
            run_bounded(lambda: media.open_regular(fifo))
    finally:
        unblock_fifo(fifo)


def test_devices_and_directories_are_not_media_files(tmp_path):
    root = frame_folder(tmp_path / "data" / "clip").parent
    (root / "clip" / "0004.png").unlink()
    (root / "clip" / "0004.png").mkdir()                 # a directory with a frame's name
    with pytest.raises(DataError, match="is a directory"):
        load_video_frames(Media(kind="video", path="clip"), root)
    with pytest.raises(DataError, match="is a directory"):
        load_image(Media(kind="image", path="clip"), root)
    (root / "loop.png").symlink_to(root / "loop2.png")  # a symlink loop
    (root / "loop2.png").symlink_to(root / "loop.png")
    with pytest.raises(DataError, match="bad media path 'loop.png'"):
        check_media_path("image", "loop.png", root)
    (root / "zero.png").symlink_to("/dev/zero")         # a device behind a symlink: outside the root
    with pytest.raises(DataError, match="escapes the dataset root"):
        load_image(Media(kind="image", path="zero.png"), root)
    # without a root (library use) the path is the caller's own, but a device is still never read
    with pytest.raises(DataError, match="character device"):
        run_bounded(lambda: load_video_frames(Media(kind="video", path="/dev/zero"), None))
    try:                                                  # a device node inside the root, where allowed
        os.mknod(root / "dev.png", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except (PermissionError, OSError):
        return
    with pytest.raises(DataError, match="character device"):
        run_bounded(lambda: load_image(Media(kind="image", path="dev.png"), root))


def test_hub_rows_without_a_root_stay_in_the_working_directory(tmp_path, monkeypatch):
    work = tmp_path / "work"
    frame_folder(work / "videos" / "clip")
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    assert check_media_path("video", "videos/clip", None) == (work / "videos" / "clip").resolve()
    for bad in ("../outside.png", str(tmp_path / "outside.png"), "/etc/hostname", "videos/../../outside.png"):
        with pytest.raises(DataError, match="outside the working directory and the Hugging Face caches"):
            check_media_path("image", bad, None)
    (work / "videos" / "clip" / "0001.png").unlink()
    (work / "videos" / "clip" / "0001.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(DataError, match="outside the working directory"):
        check_media_path("video", "videos/clip", None)
    cached = tmp_path / "hf-datasets" / "downloads" / "x.png"   # where datasets puts a Hub dataset's files
    cached.parent.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(cached)
    assert check_media_path("image", str(cached), None) == cached.resolve()


def test_the_evaluator_checks_hub_rows_before_the_adapter(tmp_path, monkeypatch):
    from mr2bench.evaluate import _check_media
    from mr2bench.schema import BenchmarkItem

    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "pipe.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")

    def item(path: str) -> BenchmarkItem:
        return BenchmarkItem(id="x", prompt="p", responses=("a", "b"), rankings=(1, 2),
                             media=(Media(kind="image", path=path),))

    _check_media(item("ok.png"), None)                     # Hub mode: root None
    with pytest.raises(DataError, match="outside the working directory"):
        _check_media(item("/etc/hostname"), None)
    with pytest.raises(DataError, match="is a FIFO"):
        run_bounded(lambda: _check_media(item("pipe.png"), None))


# ---------------------------------------------------------------- through the CLI
ADAPTER = '''
import os
from mr2bench.media import load_video_frames

class FrameReader:
    """Loads every video's frames itself, as a real adapter does; logs the ids it was asked to score."""
    def score(self, request):
        with open(os.environ["MR2_SEEN"], "a") as fh:
            fh.write(request.item_id + "\\n")
        for m in request.media:
            load_video_frames(m, request.media_root, num_frames=4)
        return [float(len(r)) for r in request.responses]
'''


def write_items(root: Path, folders: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"q{i}", "question_id": f"q{i}", "prompt": f"question {i}",
             "responses": ["a", "bb", "ccc", "dddd"], "rankings": [4, 3, 2, 1], "models": ["w", "x", "y", "z"],
             "video": rel, "image": None, "category": "c", "variant": 0} for i, rel in enumerate(folders)]
    pq.write_table(pa.Table.from_pylist(rows), root / "items.parquet")


def test_cli_symlink_out_and_fifo_frame_folders_are_failed_items(tmp_path):
    root = tmp_path / "bench"
    for name in ("good", "linked", "piped"):
        frame_folder(root / "media" / name, 5)
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(secret)
    (root / "media" / "linked" / "0002.png").unlink()
    (root / "media" / "linked" / "0002.png").symlink_to(secret)
    fifo = root / "media" / "piped" / "0004.png"
    fifo.unlink()
    os.mkfifo(fifo)
    write_items(root, ["media/good", "media/linked", "media/piped"])
    (tmp_path / "adapter.py").write_text(ADAPTER)
    seen, out = tmp_path / "seen.txt", tmp_path / "out"
    cmd = [sys.executable, "-m", "mr2bench", "evaluate-model", "--no-progress",
           "--model", f"python:{tmp_path / 'adapter.py'}:FrameReader", "--benchmarks", "mr2bench-video",
           "--data-dir", str(root), "--out", str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "MR2_SEEN": str(seen)})
    finally:
        unblock_fifo(fifo)
    assert proc.returncode == 1, proc.stderr      # finished, with failed items
    bench = next(out.glob("*/mr2bench-video"))
    recs = {r["id"]: r for r in map(json.loads, (bench / "samples.jsonl").read_text().splitlines())}
    assert recs["q0"]["status"] == "ok"
    assert recs["q1"]["status"] == "failed" and "escapes the dataset root" in recs["q1"]["error"]
    assert recs["q2"]["status"] == "failed" and "is a FIFO" in recs["q2"]["error"]
    assert seen.read_text().split() == ["q0"]     # the adapter never got the bad folders


def test_hub_cache_snapshot_links_into_its_own_blobs_only(tmp_path):
    """huggingface_hub's cache: snapshots/<sha>/<file> is a relative symlink into <repo>/blobs/. Those
    links stay inside the root; a link elsewhere, or a path written to reach blobs/ directly, does not."""
    import os

    from mr2bench.media import resolve_inside
    from mr2bench.schema import DataError

    repo = tmp_path / "datasets--o--n"
    snap = repo / "snapshots" / ("a" * 40)
    (repo / "blobs").mkdir(parents=True)
    (snap / "images").mkdir(parents=True)
    (repo / "blobs" / "f00d").write_bytes(b"png")
    (snap / "images" / "x.png").symlink_to(os.path.relpath(repo / "blobs" / "f00d", snap / "images"))
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    (snap / "images" / "leak.png").symlink_to(outside)
    assert resolve_inside(snap, "images/x.png") == (repo / "blobs" / "f00d").resolve()
    for rel in ("images/leak.png", "../../blobs/f00d", str(repo / "blobs" / "f00d")):
        with pytest.raises(DataError, match="escapes the dataset root"):
            resolve_inside(snap, rel)
