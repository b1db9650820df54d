"""Peak memory of video decoding: 16 frames kept from generated 1080p and 4K clips of 150 and 600 frames.

The clips (MPEG-4 Part 2, 30 fps, a flat gradient with a moving square: quick to encode) are written to a
temp dir by this process; a 600-frame clip is its 150-frame clip's packets four times over (each copy
starts on a keyframe), remuxed, so only 150 frames per size are encoded. Each case is decoded in a fresh
child process, which reports its peak RSS (VmHWM of /proc/self/status: unlike ru_maxrss it starts afresh at
exec) after importing numpy, PyAV and mr2bench.media (the baseline, in the same process) and after
``load_video_frames(..., num_frames=16)``. Reported: peak, baseline, the decode's growth over the baseline,
and that growth as a multiple of the 16 kept RGB frames (``16 * H * W * 3`` bytes); it must not grow with
the clip's length. ``--decode-all`` also runs the pre-fix decoder (every frame converted before 16 are
kept) for reference; it needs about 4 GB for 4K / 150 frames and 14 GB for 4K / 600 frames.
Usage: python benchmarks/bench_media.py [--cases 1080px150,4Kx600] [--decode-all]
Last line: "video decode peak: X MiB (4K, 600 frames)".
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"1080p": (1920, 1080), "4K": (3840, 2160)}
CASES = (("1080p", 150), ("1080p", 600), ("4K", 150), ("4K", 600))
KEEP = 16


def write_clip(path: Path, width: int, height: int, frames: int) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = 250  # few intra frames: encoding stays quick
        base = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
        base[:height] = np.linspace(16, 235, width, dtype=np.uint8)[None, :]
        for t in range(frames):
            img = base.copy()
            x = (t * 16) % (width - 64)
            img[64:128, x:x + 64] = 235
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def repeat_clip(src: Path, dst: Path, times: int) -> None:
    """``dst`` = the packets of ``src`` ``times`` times over, timestamps shifted (no re-encoding)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        in_stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        packets = [p for p in inp.demux(in_stream) if p.dts is not None]
        span = (packets[1].dts - packets[0].dts) * len(packets)
        for k in range(times):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts, q.duration, q.time_base = p.pts + k * span, p.dts + k * span, p.duration, p.time_base
                q.is_keyframe, q.stream = p.is_keyframe, out_stream
                out.mux(q)


def peak_kib() -> int:
    """This process's peak RSS in KiB (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _decode_all(path: str, k: int):  # the pre-fix decoder, for --decode-all only
    import av
    import numpy as np

    from mr2bench.media import uniform_indices

    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack([frames[i] for i in uniform_indices(len(frames), k)])


def child(path: str, mode: str) -> dict:
    import av  # noqa: F401  (part of the baseline)
    import numpy  # noqa: F401

    from mr2bench.media import load_video_frames
    from mr2bench.schema import Media

    base = peak_kib()
    t = time.perf_counter()
    frames = (load_video_frames(Media(kind="video", path=path), None, num_frames=KEEP) if mode == "bounded"
              else _decode_all(path, KEEP))
    seconds = time.perf_counter() - t
    peak = peak_kib()
    return {"base_kib": base, "peak_kib": peak, "seconds": seconds, "kept_bytes": frames.nbytes,
            "shape": list(frames.shape)}


def clip(folder: Path, size: str, frames: int) -> Path:
    """``folder/<size>-<frames>.mp4``; a multiple of 150 frames is remuxed from the 150-frame clip."""
    path = folder / f"{size}-{frames}.mp4"
    unit = folder / f"{size}-150.mp4"
    if frames % 150 == 0 and frames > 150:
        if not unit.exists():
            write_clip(unit, *SIZES[size], 150)
        repeat_clip(unit, path, frames // 150)
    elif not path.exists():
        write_clip(path, *SIZES[size], frames)
    return path


def measure(path: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path), mode], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(label: str, mode: str, r: dict) -> float:
    mib = 1024.0
    peak, base, kept = r["peak_kib"] / mib, r["base_kib"] / mib, r["kept_bytes"] / 2**20
    growth = peak - base
    print(f"{label:<16} {mode:<10} peak {peak:7.0f} MiB | baseline {base:5.0f} MiB | growth {growth:7.0f} MiB"
          f" = {growth / kept:5.2f} x kept ({kept:.0f} MiB) | peak/baseline {peak / base:5.1f} x"
          f" | {r['seconds']:.1f} s", flush=True)
    return peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="e.g. 1080px150,4Kx600 (default: all four)")
    ap.add_argument("--decode-all", action="store_true", help="also run the pre-fix decode-everything decoder")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    cases = [(s, int(n)) for s, n in (c.split("x") for c in args.cases.split(",") if c)] or list(CASES)
    modes = ("bounded", "decode-all") if args.decode_all else ("bounded",)
    peaks: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size, frames in cases:
            path = Path(tmp) / f"{size}-{frames}.mp4"
            t = time.perf_counter()
            clip(Path(tmp), size, frames)
            print(f"generated {path.name}: {path.stat().st_size / 2**20:.1f} MiB in {time.perf_counter() - t:.0f} s",
                  flush=True)
            for mode in modes:
                peak = report(f"{size} {frames} frames", mode, measure(path, mode))
                if mode == "bounded":
                    peaks[(size, frames)] = peak
    if ("4K", 600) in peaks:
        print(f"video decode peak: {peaks[('4K', 600)]:.0f} MiB (4K, 600 frames)")


if __name__ == "__main__":
    main()
