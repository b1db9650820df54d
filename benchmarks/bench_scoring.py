"""One-pass N-way scoring vs N single-response passes: wall time and FLOPs, same process, same weights.

    python benchmarks/bench_scoring.py                       # CPU, medium Qwen2.5-VL config, 1 thread
    python benchmarks/bench_scoring.py --device cuda --config real-4b   # GPU, Qwen3-VL-4B shape, bf16

Random weights (timing does not depend on them). For each vision-token count V and N: median wall time of
one packed pass (prompt + image + N responses of R tokens) and of N sequential single-response passes
(prompt + image re-encoded each time), the speed-up (N-pass time / one-pass time) and the FLOP limit
(N-pass FLOPs / one-pass FLOPs, torch.utils.flop_counter); the two are timed interleaved, and the CPU-time
speed-up (process_time) is printed beside the wall one, as it is less disturbed by other load. Items are built
with ``RewardModel.build_item`` (the scoring layout the model uses, whatever it is), so the bench follows any
layout change. ``--video-frames 16`` adds a 16-frame video case. Peak memory: CUDA max allocated on GPU, the
process's max RSS on CPU. The last line is ``N=4 speedup X.XX (FLOP limit Y.YY)`` for the largest V.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import torch

CONFIGS = {
    # name: (family, size table entry)
    "tiny": ("qwen2_5_vl", dict(hidden=64, inter=128, layers=2, heads=4, kv=2, v_hidden=64, v_inter=128,
                                v_depth=2, v_heads=4)),
    "medium": ("qwen2_5_vl", dict(hidden=512, inter=1408, layers=8, heads=8, kv=4, v_hidden=512, v_inter=1024,
                                  v_depth=8, v_heads=8)),
    # Qwen3-VL-4B shapes (text 2560 x 36, 32/8 heads, MLP 9728; vision 1024 x 24, MLP 4096, patch 16)
    "real-4b": ("qwen3_vl", dict(hidden=2560, inter=9728, layers=36, heads=32, kv=8, head_dim=128,
                                 mrope=[24, 20, 20], v_hidden=1024, v_inter=4096, v_depth=24, v_heads=16)),
}


def build(config: str, device: torch.device, dtype: torch.dtype):
    from transformers import AutoModel

    from mr2bench.model import tiny
    from mr2bench.model.reward_model import RewardModel

    family, size = CONFIGS[config]
    tiny.SIZES[config] = size
    tok = tiny.build_tokenizer()
    cfg = tiny.build_config(family, 151936 if config == "real-4b" else len(tok), tiny.token_ids_of(tok), config)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModel.from_config(cfg, dtype=dtype)
    model.config.use_cache = False
    rm = RewardModel(model.eval(), tok, max_length=1 << 20, max_vision_tokens=1 << 20).to(device).eval()
    return rm


WORDS = "the cat dog red ball field photo square video blue green answer image first sits runs".split()


def _text(rng: np.random.Generator, tok, n_tokens: int) -> str:
    """Random words cut to about ``n_tokens`` tokens of the model's tokenizer."""
    words = " ".join(rng.choice(WORDS, 4 * n_tokens))
    ids = tok.encode(words, add_special_tokens=False)[:n_tokens]
    return tok.decode(ids)


def make_items(rm, vision_tokens: int, n: int, resp_tokens: int, seed: int, video_frames: int = 0):
    """(item with N responses, N single-response items) from build_item; one random image or video."""
    from PIL import Image

    from mr2bench.model.reward_model import MediaPayload

    rng = np.random.default_rng(seed)
    side = rm.encoder.factor * int(round(vision_tokens ** 0.5))
    if video_frames:
        per_frame = max(1, vision_tokens // max(1, video_frames // 2))
        vside = rm.encoder.factor * max(1, int(round(per_frame ** 0.5)))
        media = [MediaPayload("video", rng.integers(0, 256, (video_frames, vside, vside, 3), dtype=np.uint8))]
    else:
        media = [MediaPayload("image", Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))]
    prompt = _text(rng, rm.tokenizer, 50)
    responses = [_text(rng, rm.tokenizer, resp_tokens) for _ in range(n)]
    packed = rm.build_item(prompt, responses, media)
    singles = [rm.build_item(prompt, [r], media) for r in responses]
    return packed, singles


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_pair(one, many, device, repeats: int) -> tuple[float, float, float, float]:
    """Median wall and CPU seconds of ``one`` and ``many``, interleaved so both see the same machine load."""
    one(), many()  # warm-up
    sync(device)
    wall: dict[str, list[float]] = {"one": [], "many": []}
    cpu: dict[str, list[float]] = {"one": [], "many": []}
    for _ in range(repeats):
        for name, fn in (("one", one), ("many", many)):
            t, c = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    med = statistics.median
    return med(wall["one"]), med(wall["many"]), med(cpu["one"]), med(cpu["many"])


def flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--config", choices=sorted(CONFIGS), default=None, help="default: medium on CPU, real-4b on GPU")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vision-tokens", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--ns", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--response-tokens", type=int, default=64)
    ap.add_argument("--attention", choices=["causal", "isolated"], default="causal")
    ap.add_argument("--video-frames", type=int, default=0, help="also time a video of this many frames (e.g. 16)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = args.config or ("real-4b" if device.type == "cuda" else "medium")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rm = build(config, device, dtype)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"config={config} device={card} dtype={dtype} attention={args.attention} R={args.response_tokens} "
          f"repeats={args.repeats} (medians)")
    print(f"{'V':>5} {'media':>6} {'N':>2} {'1-pass s':>9} {'N-pass s':>9} {'speedup':>8} {'cpu-time':>8} "
          f"{'FLOP limit':>10} {'of limit':>8} {'tokens':>7} {'peak GiB':>8}")
    last: dict[int, tuple[float, float]] = {}
    cases = [(v, 0) for v in args.vision_tokens] + ([(args.vision_tokens[-1], args.video_frames)]
                                                      if args.video_frames else [])
    for v, frames in cases:
        for n in args.ns:
            packed, singles = make_items(rm, v, n, args.response_tokens, seed=v * 100 + n, video_frames=frames)

            def one():
                return rm.score_items([packed], args.attention)

            def many():
                return [rm.score_items([s], args.attention) for s in singles]

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            with torch.no_grad():
                f_one, f_many = flops(one), flops(many)
            t_one, t_many, c_one, c_many = timed_pair(one, many, device, args.repeats)
            speed, limit = t_many / t_one, f_many / f_one
            if not frames:
                last[n] = (speed, limit)
            kind = f"{frames}f" if frames else "image"
            print(f"{v:>5} {kind:>6} {n:>2} {t_one:>9.3f} {t_many:>9.3f} {speed:>8.2f} {c_many / c_one:>8.2f} "
                  f"{limit:>10.2f} {speed / limit:>8.2f} {packed.length:>7} {peak_memory_gib(device):>8.2f}",
                  flush=True)
    if 4 in last:
        print(f"N=4 speedup {last[4][0]:.2f} (FLOP limit {last[4][1]:.2f})")


if __name__ == "__main__":
    main()
