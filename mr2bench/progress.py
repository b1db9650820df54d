"""Progress for long stages: a tqdm bar (count, total, rate, ETA) on a terminal; elsewhere quiet lines.

A log file or a CI console is not a terminal: a bar there writes one carriage-return frame per refresh.
Off a TTY a stage instead prints plain lines: the first once it has run ``MIN_S``, then at most one per
``EVERY_FRAC`` of its total or ``EVERY_S`` seconds, and one when it ends ("denoise: 120/300 questions,
40%, 8.0 s, ETA 12.0 s"); a stage that finishes within ``MIN_S`` prints nothing. The lines are info:
``--log-level warning`` (or a library caller who configured no logging) silences them.
Used by build-benchmark's stages and evaluate-model's item scoring.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import IO, Any, TypeVar

T = TypeVar("T")
EVERY_S = 10.0
EVERY_FRAC = 0.1
MIN_S = 1.0


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {int(s % 60):02d} s"


def progress_line(desc: str, n: int, total: int | None, unit: str, elapsed: float, done: bool = False) -> str:
    """One plain progress line: count, total and share when known, elapsed time, ETA while running."""
    line = f"{desc}: {n}" + (f"/{total}" if total else "") + f" {unit}"
    if total:
        line += f", {100 * n / total:.0f}%"
    line += f", {_seconds(elapsed)}"
    if done:
        return line + ", done"
    if total and n:
        line += f", ETA {_seconds(elapsed * (total - n) / n)}"
    return line


class Progress:
    """``update(k)`` as work is done, ``close()`` at the end (or use it as a context manager)."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", *, enabled: bool = True,
                 stream: IO[str] | None = None, leave: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.desc, self.total, self.unit, self.n = desc, total, unit, 0
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._t0 = self._last_t = clock()
        self._last_n = 0
        self._printed = False
        self._closed = not enabled
        tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._bar = None
        self._lines = enabled and not tty and logging.getLogger("mr2bench").isEnabledFor(logging.INFO)
        if enabled and tty:
            from tqdm import tqdm

            self._bar = tqdm(desc=desc, total=total, unit=f" {unit}", file=self._stream, leave=leave,
                             dynamic_ncols=True, mininterval=0.5)

    def update(self, k: int = 1, note: str | None = None) -> None:
        if self._closed:
            return
        self.n += k
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(k)
        elif self._lines:
            now = self._clock()
            elapsed = now - self._t0
            step = self.total and (self.n - self._last_n) >= EVERY_FRAC * self.total
            first = not self._printed   # the first line as soon as the stage is slow
            if elapsed >= MIN_S and (first or step or now - self._last_t >= EVERY_S) and self.n != self.total:
                self._write(progress_line(self.desc, self.n, self.total, self.unit, elapsed)
                            + (f" ({note})" if note else ""))
                self._last_t, self._last_n = now, self.n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self._lines:
            elapsed = self._clock() - self._t0
            if elapsed >= MIN_S or self._printed:
                self._write(progress_line(self.desc, self.n, self.total, self.unit, elapsed, done=True))

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()
        self._printed = True

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it", **kw: Any) -> Iterator[T]:
    """Iterate with a Progress; ``total`` defaults to ``len(items)`` when it has one."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    with Progress(desc, total, unit, **kw) as bar:
        for x in items:
            yield x
            bar.update(1)
