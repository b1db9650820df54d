"""Harness overhead of evaluate-model: the `length` adapter on a generated N-way benchmark with images.

For 10K and 100K items (items.parquet written in chunks, 64 shared PNGs, media checked per item), each in
its own child process: items/s of the full run (load -> order -> score -> record -> metrics + 1000-sample
bootstrap) and of the bare loader in the same process (the baseline), and peak RSS (ru_maxrss). Memory
must not grow with the item count: the loader and the sample files are streamed.
Usage: python benchmarks/bench_eval.py [--sizes 10000,100000]
Last line: "100K items: X items/s, peak Y MiB".
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(root: Path, n: int, chunk: int = 10_000) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    (root / "media").mkdir(parents=True, exist_ok=True)
    for k in range(64):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (k * 4, 0, 0)).save(buf, format="PNG")
        (root / "media" / f"{k}.png").write_bytes(buf.getvalue())
    rng = np.random.default_rng(0)
    writer = None
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        lens = rng.integers(1, 200, size=(m, 4))
        rows = [{"id": f"q{start + i}-v0", "question_id": f"q{start + i}", "prompt": f"question {start + i}",
                 "responses": ["r" * int(x) for x in lens[i]], "rankings": [int(x) + 1 for x in rng.permutation(4)],
                 "models": ["a", "b", "c", "d"], "image": f"media/{(start + i) % 64}.png", "video": None,
                 "category": "c", "variant": 0} for i in range(m)]
        table = pa.Table.from_pylist(rows)
        writer = writer or pq.ParquetWriter(root / "items.parquet", table.schema)
        writer.write_table(table)
    writer.close()


def child(n: int) -> dict:
    from mr2bench.adapters import AdapterOptions
    from mr2bench.evaluate import EvalConfig, evaluate
    from mr2bench.evaluators import mr2bench_nway

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        generate(root, n)
        t = time.perf_counter()
        count = sum(1 for _ in mr2bench_nway.load_image(root, mr2bench_nway.IMAGE_SPEC, None))
        loader_rate = count / (time.perf_counter() - t)
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cfg = EvalConfig(model="length", benchmarks=("mr2bench-image",), out=Path(tmp) / "out",
                         data_dirs={"mr2bench-image": root}, batch_size=64, progress=False)
        t = time.perf_counter()
        outcome = evaluate(cfg, AdapterOptions())[0]
        seconds = time.perf_counter() - t
        assert outcome.results["n_items"] == n
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "items_per_s": n / seconds, "loader_items_per_s": loader_rate, "peak_mib": peak,
            "rss_before_run_mib": base_rss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    res = []
    for n in [int(x) for x in args.sizes.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        res.append(r)
        print(f"{n:>7} items: {r['items_per_s']:.0f} items/s (bare loader {r['loader_items_per_s']:.0f} items/s, "
              f"harness = {r['loader_items_per_s'] / r['items_per_s']:.2f}x the loader's time), "
              f"peak RSS {r['peak_mib']:.0f} MiB (before the run {r['rss_before_run_mib']:.0f} MiB)")
    if len(res) >= 2:
        print(f"peak memory {res[-1]['n'] // 1000}K vs {res[0]['n'] // 1000}K items: "
              f"{res[-1]['peak_mib'] / res[0]['peak_mib']:.2f}x")
    last = res[-1]
    print(f"{last['n'] // 1000}K items: {last['items_per_s']:.0f} items/s, peak {last['peak_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
