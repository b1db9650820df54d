"""Regenerate the README's screenshots: docs/report.png (the report's item browser) and docs/table.png.

    python docs/make_screenshots.py            # ~1 min on a laptop; needs a chromium binary

Builds the seeded demo image benchmark, evaluates the `random` and `length` baselines on it, writes
`mr2bench report`, screenshots the item browser filtered to the items `length` got wrong in headless
Chromium, and renders the terminal table that evaluate-model printed as a PNG (matplotlib). Both PNGs
are quantised to a small palette (< 300 KB). Intermediate runs go under runs/screenshots (gitignored).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _run(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "mr2bench", *args], capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        sys.exit(f"mr2bench {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return res.stdout


def _small_png(path: Path, colors: int = 96) -> None:
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def screenshot(page: Path, fragment: str, target: Path, size: tuple[int, int]) -> None:
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        sys.exit("no chromium binary: apt-get install chromium")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--virtual-time-budget=5000", f"--window-size={size[0]},{size[1]}",
                    f"--screenshot={target}", f"{page.resolve().as_uri()}#{fragment}"],
                   check=True, capture_output=True, timeout=120)
    _small_png(target)


def terminal_png(text: str, target: Path) -> None:
    """The terminal's text as a dark monospace PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    lines = text.rstrip("\n").splitlines()
    width = max(len(ln) for ln in lines)
    fig = Figure(figsize=(0.085 * width + 0.4, 0.2 * len(lines) + 0.4), facecolor="#1e1e1e")
    fig.text(0.02, 0.97, "\n".join(lines), family="monospace", size=10, color="#e6e6e6", va="top", ha="left",
             linespacing=1.35)
    fig.savefig(target, dpi=110, facecolor=fig.get_facecolor(), metadata={"Software": None})
    _small_png(target, colors=32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "screenshots")
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args()
    build, evals = args.work / "demo-image", args.work / "eval"
    shutil.rmtree(args.work, ignore_errors=True)
    _run("build-benchmark", "image", "--out", str(build))
    printed = ""
    for model in ("random", "length"):
        printed = _run("evaluate-model", "--model", model, "--benchmarks", "mr2bench-image",
                       "--data-dir", str(build), "--out", str(evals), "--no-progress")
    _run("report", str(evals), "--data-dir", f"mr2bench-image={build}")
    args.out.mkdir(parents=True, exist_ok=True)
    screenshot(evals / "report.html", "correct=wrong:length&view=items", args.out / "report.png", (1280, 900))
    # what the last evaluate-model printed: its benchmark line and the paper's table over OUT
    shown = "\n".join(ln for ln in printed.splitlines() if not ln.startswith("wrote "))
    terminal_png("$ evaluate-model --model length --benchmarks mr2bench-image ...\n" + shown, args.out / "table.png")
    for name in ("report.png", "table.png"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
