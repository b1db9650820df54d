"""Progress off a terminal is quiet periodic lines, never carriage-return frames (issue 14, item 6).

The helper is driven by a fake clock; the build and the evaluation run through the CLI with stderr
captured (not a TTY, as in a CI log), the thresholds lowered so that seconds-long stages print.
"""
from __future__ import annotations

import io
import re

import pytest

from mr2bench import progress
from mr2bench.cli import main
from mr2bench.progress import Progress, progress_line, track


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def info_logging(caplog):
    caplog.set_level("INFO", logger="mr2bench")   # what the CLI's default --log-level info sets


def test_off_a_tty_lines_every_tenth_and_a_done_line():
    out, clock = io.StringIO(), Clock()
    bar = Progress("denoise", total=300, unit="questions", stream=out, clock=clock)
    for _ in range(300):
        clock.t += 0.02        # 6 s in all
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # nothing in the first second (50 questions), then one line per 10 % (30 questions), then done
    assert lines[0] == "denoise: 50/300 questions, 17%, 1.0 s, ETA 5.0 s"
    assert len(lines) == 1 + 8 + 1 and lines[-1] == "denoise: 300/300 questions, 100%, 6.0 s, done"
    assert all(re.fullmatch(r"denoise: \d+/300 questions, \d+%, [\d.]+ s, (ETA [\d.]+ s|done)", ln) for ln in lines)


def test_slow_stage_without_total_prints_every_ten_seconds():
    out, clock = io.StringIO(), Clock()
    with Progress("read input", unit="rows", stream=out, clock=clock) as bar:
        for _ in range(35):
            clock.t += 1.0
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines == ["read input: 1 rows, 1.0 s", "read input: 11 rows, 11.0 s", "read input: 21 rows, 21.0 s",
                     "read input: 31 rows, 31.0 s", "read input: 35 rows, 35.0 s, done"]


def test_fast_stages_and_warning_level_print_nothing(caplog):
    out, clock = io.StringIO(), Clock()
    list(track(range(100), "sample items", stream=out, clock=clock))   # 0 s
    assert out.getvalue() == ""
    caplog.set_level("WARNING", logger="mr2bench")
    bar = Progress("x", total=10, stream=out, clock=clock)
    clock.t = 5.0
    bar.update(10)
    bar.close()
    assert out.getvalue() == ""


def test_on_a_tty_a_bar_with_total_and_eta():
    out = Tty()
    with Progress("mr2bench-video", total=40, unit="items", stream=out, leave=True) as bar:
        bar.update(10)
    text = out.getvalue()
    assert "\r" in text and "10/40" in text and "items" in text and "<" in text   # tqdm: elapsed<ETA


def test_progress_line_format():
    assert progress_line("denoise", 120, 300, "questions", 8.0) == "denoise: 120/300 questions, 40%, 8.0 s, ETA 12.0 s"
    assert progress_line("x", 1, 2, "items", 100.0) == "x: 1/2 items, 50%, 1 min 40 s, ETA 1 min 40 s"


@pytest.fixture
def eager(monkeypatch):
    """Every update past 0 s may print; a line at most per 10 % as in real runs."""
    monkeypatch.setattr(progress, "MIN_S", 0.0)


def test_build_and_evaluate_off_a_tty_print_lines_not_frames(tmp_path, capsys, eager):
    build, out = tmp_path / "img", tmp_path / "eval"
    assert main(["build-benchmark", "image", "--out", str(build)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    stages = re.findall(r"^build: (\d)/8 stages", err, re.M)
    assert stages == [str(k) for k in range(1, 8)] + ["8"] and "build: 8/8 stages, 100%" in err
    assert re.search(r"^sample items: \d+/60 questions", err, re.M)   # the demo image arena: 60 prompts
    n_items = __import__("pandas").read_parquet(build / "items.parquet").shape[0]
    assert main(["evaluate-model", "--model", "length", "--benchmarks", "mr2bench-image", "--data-dir",
                 str(build), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert f"mr2bench-image: {n_items}/{n_items} items, 100%" in err      # the real total, not --limit
    assert len(re.findall(r"^mr2bench-image: \d+/", err, re.M)) <= 11     # quiet: at most one line per 10 %
