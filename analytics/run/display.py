"""Progress of a running graph: a bar on a terminal, a log line every few seconds otherwise.

CloudWatch reads stdout, so off a terminal the progress is a plain line at least every
``LINE_INTERVAL_S`` seconds (well within the 30 s the operators expect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from dask.utils import format_time
from distributed import Future
from distributed.diagnostics.progressbar import TextProgressBar

LINE_INTERVAL_S = 10.0


class _DropCancelledFeed(logging.Filter):
    """The scheduler logs the progress feed's cancellation at shutdown as an error; it is not."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


logging.getLogger("distributed.scheduler").addFilter(_DropCancelledFeed())


#: The bar being drawn on the terminal, if any (a log line clears it first: :func:`bar_paused`).
_DRAWN: dict[str, _Progress] = {}


@contextlib.contextmanager
def bar_paused() -> Iterator[None]:
    """Clear the terminal's progress bar while something else is printed, then draw it again
    (a log line on stderr would otherwise be written into the middle of the bar)."""
    bar = _DRAWN.get("bar")
    if bar is None or not bar.line:
        yield
        return
    sys.stdout.write("\r\033[K")
    sys.stdout.flush()
    try:
        yield
    finally:
        sys.stdout.write(bar.line)
        sys.stdout.flush()


def eta(done: int, total: int, elapsed: float) -> str:
    """The rate (tasks/s) and the time left at that rate, once there is a rate to go by."""
    if done == 0 or elapsed <= 0:
        return ""
    rate = done / elapsed
    left = (total - done) / rate
    return f", {rate:,.1f} tasks/s, ETA {format_time(left)}" if done < total else ""


class _Progress(TextProgressBar):
    def __init__(self, futures: Sequence[Future[Any]], label: str, tty: bool) -> None:
        self._label = label
        self._tty = tty
        self._last_line = -LINE_INTERVAL_S
        self.line = ""
        if tty:
            _DRAWN["bar"] = self
        # Poll often either way: the wait ends at the first poll after the work does.
        super().__init__(futures, interval="100ms", width=30)

    def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
        done = all - remaining
        pct = int(100 * done / all) if all else 100
        elapsed = format_time(self.elapsed)
        rest = eta(done, all, self.elapsed)
        if self._tty:
            bar = "#" * int(30 * done / all) if all else "#" * 30
            self.line = f"\r{self._label} [{bar:<30}] {pct:3d}% {done}/{all} tasks {elapsed}{rest}"
            sys.stdout.write(self.line + "\033[K")
            sys.stdout.flush()
        elif time.monotonic() - self._last_line >= LINE_INTERVAL_S or remaining == 0:
            self._last_line = time.monotonic()
            line = f"{self._label}: {done}/{all} tasks ({pct}%), {elapsed} elapsed{rest}"
            print(line, flush=True)

    def _draw_stop(self, **kwargs: Any) -> None:
        _DRAWN.clear()
        if self._tty:
            sys.stdout.write("\n")
            sys.stdout.flush()


def wait_with_progress(futures: Sequence[Future[Any]], label: str) -> None:
    """Block until ``futures`` (and all they depend on) finish or one fails, showing progress."""
    if futures:
        try:
            _Progress(futures, label, sys.stdout.isatty())
        finally:
            _DRAWN.clear()
