"""What a running job is doing, in its own units: phases with counts, a rate and an ETA.

A job reports its phases (``reading``, ``computing``, ``writing``; ``committing`` is the run
folder's) through ``ctx.progress`` without knowing where they go. Each phase counts the job's
own unit: files read, symbols, combinations or orders computed, tables written. The
:class:`Progress` hands every change to a sink: a bar redrawn in place on a terminal
(:class:`Bar`), plain lines elsewhere (:class:`Lines`: one when a phase starts, one when it
ends, and at most one every ``LINE_INTERVAL_S`` seconds between), or nothing (:class:`Silent`).

A line (either sink) reads ``JOB: PHASE DONE/TOTAL UNIT`` then, while the phase runs, the
percentage, the rate and the ETA, or when it ends ``done in SECONDS s``; :data:`LINE` parses it.
How Dask futures and tasks become units is :mod:`analytics.run.display`'s business: the run
folder's :func:`~analytics.run.execute.execute` gives it to the job's :class:`Progress` as its
``waiter``.

This module is light (standard library only): the job contract imports it.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

#: Off a terminal, a running phase prints a line at most this often (CloudWatch's operators
#: expect one within 30 s).
LINE_INTERVAL_S = 10.0
#: On a terminal, the bar is redrawn at most this often.
BAR_INTERVAL_S = 0.1
BAR_WIDTH = 24
#: One progress line: ``backtest: computing 40/120 combinations (33%) 12.5 combinations/s
#: ETA 6.4 s`` or ``backtest: computing 120/120 combinations done in 9.6 s``.
LINE = re.compile(
    r"^(?P<job>[\w.-]+): (?P<phase>\w+) (?:\[[# ]*\] )?(?P<done>\d+)/(?P<total>\d+|\?) "
    r"(?P<unit>[\w-]+)(?P<rest>.*)$"
)


@dataclass(frozen=True)
class Phase:
    """One phase of a wait on Dask work (:meth:`Progress.wait`), in the job's unit.

    Either ``weights``: the keys of tasks (or futures) that each cover some units (an int, or
    a future whose result is that int, when the count is known only once an earlier task ran);
    the phase's total is their sum. Or ``futures`` and ``total``: those futures' whole graph
    covers ``total`` units, counted in proportion to its finished tasks.
    """

    name: str
    unit: str
    weights: Mapping[Any, Any] = field(default_factory=dict)
    futures: Sequence[Any] = ()
    total: int | None = None


@dataclass
class State:
    """A phase as the sinks see it."""

    job: str
    name: str
    unit: str
    total: int | None
    done: int = 0
    started: float = 0.0
    ended: float | None = None

    def elapsed(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started


def format_seconds(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 05 s``, ``2 h 04 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def rate_and_eta(done: int, total: int | None, elapsed: float) -> tuple[float, float | None]:
    """Units per second so far, and the seconds left at that rate (None: no rate yet, or no
    total)."""
    if done <= 0 or elapsed <= 0:
        return 0.0, None
    rate = done / elapsed
    if total is None:
        return rate, None
    return rate, max(0, total - done) / rate


def describe(state: State, now: float) -> str:
    """The line of a phase (without the bar): see :data:`LINE`."""
    total = "?" if state.total is None else str(state.total)
    head = f"{state.job}: {state.name} {state.done}/{total} {state.unit}"
    elapsed = state.elapsed(now)
    if state.ended is not None:
        return f"{head} done in {format_seconds(elapsed)}"
    rate, left = rate_and_eta(state.done, state.total, elapsed)
    parts = [head]
    if state.total:
        parts.append(f"({int(100 * min(state.done, state.total) / state.total)}%)")
    if rate:
        parts.append(f"{_rate(rate)} {state.unit}/s")
    if left is not None:
        parts.append(f"ETA {format_seconds(left)}")
    return " ".join(parts)


def _rate(rate: float) -> str:
    return f"{rate:,.1f}" if rate < 100 else f"{rate:,.0f}"


#: Waits for Dask futures while showing phases (:func:`analytics.run.display.wait`).
Waiter = Callable[["Progress", Sequence[Any], Sequence["Phase"]], None]


class Sink(Protocol):
    def show(self, state: State, now: float) -> None: ...

    def close(self) -> None: ...


class Silent:
    """No progress shown (a test, or the Python API with ``progress=False``)."""

    def show(self, state: State, now: float) -> None:
        pass

    def close(self) -> None:
        pass


class Lines:
    """Off a terminal: a line when a phase starts and ends, and at most one every
    ``interval`` seconds while it runs."""

    def __init__(self, stream: TextIO | None = None, interval: float = LINE_INTERVAL_S) -> None:
        self.stream = stream
        self.interval = interval
        self._last: tuple[int, float] | None = None

    def show(self, state: State, now: float) -> None:
        last = self._last
        first = last is None or last[0] != id(state)
        if not first and state.ended is None and last and now - last[1] < self.interval:
            return
        self._last = (id(state), now)
        stream = self.stream or sys.stdout
        print(describe(state, now), file=stream, flush=True)

    def close(self) -> None:
        self._last = None


#: The bar drawn on the terminal now, if any: a log line clears it first (:func:`bar_paused`).
_DRAWN: dict[str, Bar] = {}


class Bar:
    """On a terminal: one line redrawn in place; a phase that ends keeps its final line."""

    def __init__(self, stream: TextIO | None = None, interval: float = BAR_INTERVAL_S) -> None:
        self.stream = stream
        self.interval = interval
        self.line = ""
        self._drawn: tuple[int, float] | None = None

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def show(self, state: State, now: float) -> None:
        last = self._drawn  # a phase's first and last states are always drawn
        if state.ended is None and last and last[0] == id(state) and now - last[1] < self.interval:
            return
        self._drawn = (id(state), now)
        text = describe(state, now)
        if state.total and state.ended is None:
            filled = int(BAR_WIDTH * min(state.done, state.total) / state.total)
            head, _, tail = text.partition(f" {state.done}/")
            text = f"{head} [{'#' * filled:<{BAR_WIDTH}}] {state.done}/{tail}"
        out = self._out()
        if state.ended is not None:
            out.write(f"\r{text}\033[K\n")
            self.line = ""
            _DRAWN.pop("bar", None)
        else:
            self.line = f"\r{text}"
            out.write(self.line + "\033[K")
            _DRAWN["bar"] = self
        out.flush()

    def close(self) -> None:
        if self.line:
            self._out().write("\n")
            self._out().flush()
        self.line = ""
        _DRAWN.pop("bar", None)


@contextlib.contextmanager
def bar_paused() -> Iterator[None]:
    """Clear the terminal's progress bar while something else is printed, then draw it again
    (a log line would otherwise be written into the middle of the bar's line)."""
    bar = _DRAWN.get("bar")
    if bar is None or not bar.line:
        yield
        return
    out = bar.stream or sys.stdout
    out.write("\r\033[K")
    out.flush()
    try:
        yield
    finally:
        out.write(bar.line + "\033[K")
        out.flush()


def sink_for(stream: TextIO | None = None) -> Sink:
    """A bar on a terminal, lines otherwise."""
    out = stream or sys.stdout
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    return Bar(stream) if tty else Lines(stream)


class Progress:
    """A job's progress: its phases one after the other, shown by ``sink``.

    The job starts a phase with its total in its unit, advances it, and ends it (starting the
    next phase ends the current one); :meth:`wait` does that for Dask work. Thread-safe:
    a Dask callback may advance it.
    """

    def __init__(
        self,
        job: str,
        sink: Sink | None = None,
        clock: Callable[[], float] = time.monotonic,
        waiter: Waiter | None = None,
    ) -> None:
        self.job = job
        self.waiter = waiter
        self.sink: Sink = sink if sink is not None else sink_for()
        self.clock = clock
        self.current: State | None = None
        #: Every phase shown so far, in order (what the tests and the summary read).
        self.history: list[State] = []
        self._lock = threading.RLock()

    def start(self, name: str, total: int | None, unit: str) -> None:
        with self._lock:
            self.end()
            self.current = State(self.job, name, unit, total, started=self.clock())
            self.history.append(self.current)
            self.sink.show(self.current, self.clock())

    def update(self, done: int, total: int | None = None) -> None:
        """Set the current phase's count (and its total, once known)."""
        with self._lock:
            if self.current is None:
                return
            self.current.done = done
            if total is not None:
                self.current.total = total
            self.sink.show(self.current, self.clock())

    def advance(self, units: int = 1) -> None:
        with self._lock:
            if self.current is not None:
                self.update(self.current.done + units)

    def end(self) -> None:
        """End the current phase (a finished phase shows its total as done)."""
        with self._lock:
            state, self.current = self.current, None
            if state is None:
                return
            state.ended = self.clock()
            if state.total is not None:
                state.done = state.total
            self.sink.show(state, state.ended)

    def stop(self) -> None:
        """Leave the current phase unfinished (a failure) and release the terminal's line."""
        with self._lock:
            self.current = None
            self.sink.close()

    @contextlib.contextmanager
    def phase(self, name: str, total: int | None, unit: str) -> Iterator[Progress]:
        """``with progress.phase("writing", 6, "tables") as p: ... p.advance()``."""
        self.start(name, total, unit)
        try:
            yield self
        except BaseException:
            self.stop()
            raise
        self.end()

    def wait(self, futures: Sequence[Any], *phases: Phase) -> None:
        """Block until ``futures`` finish (or one fails), showing ``phases`` in order as their
        tasks finish (the ``waiter``: :func:`analytics.run.display.wait`). Without a waiter
        nothing is shown: the futures are waited for."""
        if self.waiter is not None:
            self.waiter(self, futures, phases)
            return
        from distributed import wait

        wait(futures)
