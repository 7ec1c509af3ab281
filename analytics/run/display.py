"""Dask work shown as a job's phases in its own units (:mod:`analytics.run.progress`).

:func:`wait` blocks until the futures finish or one fails. Meanwhile it asks the scheduler,
every ``POLL_S``, which of the tasks each phase tracks have finished: a phase of ``weights``
adds the units of each finished task (a task that reads one file is 1 file; a task that
computes a chunk of 40 combinations is 40), a phase of ``futures`` counts the finished share
of their whole graph against its total. The phases show in order: the first unfinished one is
the current one, and a phase whose tasks are all done ends (its line stays).

The scheduler keeps the tracked keys between polls (a tracked task that finished may be
forgotten by then: a key the scheduler no longer knows, after it knew it, is done). If the
scheduler cannot run the poll (an external scheduler without finbatch installed), the wait goes
on without counts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from distributed import Future
from distributed import wait as dask_wait

from analytics.run.progress import Phase, Progress, bar_paused

POLL_S = 0.2
log = logging.getLogger(__name__)

__all__ = ["Phase", "bar_paused", "wait", "wait_with_progress"]


class _DropCancelledFeed(logging.Filter):
    """The scheduler logs a progress feed's cancellation at shutdown as an error; it is not."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


logging.getLogger("distributed.scheduler").addFilter(_DropCancelledFeed())

#: On the scheduler: per wait, the keys each phase tracks that are not known done yet.
_TRACKED: dict[str, list[dict[Any, bool]]] = {}
_COUNTER = itertools.count()
_DONE_STATES = frozenset({"memory", "released", "forgotten"})


def _graph(scheduler: Any, keys: Sequence[Any]) -> Iterator[Any]:
    """The keys of ``keys``' tasks and of every task they depend on that has yet to run."""
    seen: set[Any] = set()
    stack = [scheduler.tasks[k] for k in keys if k in scheduler.tasks]
    while stack:
        ts = stack.pop()
        if ts.key in seen:
            continue
        seen.add(ts.key)
        yield ts.key
        if ts.state not in _DONE_STATES:
            stack.extend(ts.dependencies)


def _start(
    dask_scheduler: Any, token: str, waited: list[Any], phases: list[tuple[list[Any], list[Any]]]
) -> list[int] | None:
    """Register a wait's phases (their weighted keys, or futures whose graph they count);
    returns each phase's task count, or None while the waited futures are not known yet (the
    graph is sent as one update: once they are known, a tracked key that is not has run and
    been forgotten)."""
    if not all(k in dask_scheduler.tasks for k in waited):
        return None
    tracked, sizes = [], []
    for keys, graph in phases:
        found = list(_graph(dask_scheduler, graph)) if graph else keys
        tracked.append({k: True for k in found})
        sizes.append(len(found))
    _TRACKED[token] = tracked
    return sizes


def _poll(dask_scheduler: Any, token: str) -> list[list[Any]]:
    """The tracked keys of each phase that finished since the last poll (a key the scheduler
    no longer knows was forgotten after it ran)."""
    finished: list[list[Any]] = []
    for pending in _TRACKED.get(token, []):
        now = []
        for key in list(pending):
            ts = dask_scheduler.tasks.get(key)
            if ts is None or ts.state in _DONE_STATES:
                now.append(key)
                del pending[key]
        finished.append(now)
    return finished


def _forget(dask_scheduler: Any, token: str) -> None:
    _TRACKED.pop(token, None)


class _Counter:
    """One phase's count on the driver, from the finished keys the polls report."""

    def __init__(self, phase: Phase) -> None:
        self.phase = phase
        self.finished: set[Any] = set()
        self.size = 0  # a graph phase's task count

    def units(self) -> tuple[int, int | None]:
        """(done, total) in the phase's unit; the total is None while a weight is unknown."""
        p = self.phase
        if not p.weights:
            if p.total is None:  # counted in tasks
                return len(self.finished), self.size or None
            share = len(self.finished) / self.size if self.size else 0.0
            return int(share * p.total), p.total
        done, total, known = 0, 0, True
        for key, weight in p.weights.items():
            n = _units(weight)
            if n is None:
                known = False
                continue
            total += n
            if key in self.finished:
                done += n
        return done, total if known else None

    def complete(self) -> bool:
        return bool(self.size) and len(self.finished) >= self.size


def _units(weight: Any) -> int | None:
    if isinstance(weight, Future):
        return int(weight.result()) if weight.done() and weight.status == "finished" else None
    return int(weight)


def _key(item: Any) -> Any:
    return getattr(item, "key", item)


def wait(progress: Progress, futures: Sequence[Future[Any]], phases: Sequence[Phase]) -> None:
    """Block until ``futures`` (and all they depend on) finish or one fails; show ``phases``.

    Every phase is shown, in order, even one whose tasks were done before the wait (a resumed
    run's); on success each ends at its total. On a failure the display stops where it was.
    """
    counters = [_Counter(p) for p in phases]
    if phases:
        progress.start(phases[0].name, counters[0].units()[1], phases[0].unit)
    if not futures:
        _show(progress, phases, counters, 0, finished=True)
        return
    poller = _Poller(futures, phases, counters)
    current = 0
    try:
        while True:
            try:
                dask_wait(futures, timeout=POLL_S)
                finished = True
            except TimeoutError:
                finished = False
            if any(f.status == "error" for f in futures):
                progress.stop()
                return
            poller.poll()
            current = _show(progress, phases, counters, current, finished)
            if finished:
                break
    except BaseException:
        progress.stop()
        raise
    finally:
        poller.close()


class _Poller:
    """The scheduler's side of a wait: registers its phases, reports finished keys."""

    def __init__(
        self, futures: Sequence[Future[Any]], phases: Sequence[Phase], counters: list[_Counter]
    ) -> None:
        self.client = futures[0].client
        self.token = f"{id(self)}-{next(_COUNTER)}"
        self.waited = [f.key for f in futures]
        self.spec = [([_key(k) for k in p.weights], [_key(f) for f in p.futures]) for p in phases]
        self.counters = counters
        self.registered = False
        self.working = bool(phases)

    def poll(self) -> None:
        if not self.working:
            return
        try:
            if not self.registered:
                sizes = self.client.run_on_scheduler(
                    _start, token=self.token, waited=self.waited, phases=self.spec
                )
                if sizes is None:
                    return
                self.registered = True
                for counter, size in zip(self.counters, sizes, strict=True):
                    counter.size = size
            found = self.client.run_on_scheduler(_poll, token=self.token)
            for counter, keys in zip(self.counters, found, strict=True):
                counter.finished.update(keys)
        except Exception:
            log.debug("progress: the scheduler cannot report it", exc_info=True)
            self.working = False

    def close(self) -> None:
        if self.registered:
            try:
                self.client.run_on_scheduler(_forget, token=self.token)
            except Exception:  # the cluster is going down with the failure
                log.debug("progress: could not forget %s", self.token, exc_info=True)


def _show(
    progress: Progress,
    phases: Sequence[Phase],
    counters: list[_Counter],
    current: int,
    finished: bool,
) -> int:
    """Advance the display: end each phase whose tasks are done, update the current one."""
    while current < len(phases):
        counter = counters[current]
        done, total = counter.units()
        progress.update(done, total)
        if not (finished or counter.complete()):
            return current
        progress.end()
        current += 1
        if current < len(phases):
            nxt = counters[current]
            progress.start(phases[current].name, nxt.units()[1], phases[current].unit)
    return current


def wait_with_progress(futures: Sequence[Future[Any]], label: str) -> None:
    """Block until ``futures`` finish (or one fails), counting their graph's tasks: for a
    wait that is no job's phase (``label`` names it)."""
    if not futures:
        return
    job, _, name = label.partition(": ")
    phase = Phase(name.replace(" ", "-") or "computing", "tasks", futures=futures)
    wait(Progress(job, waiter=wait), futures, [phase])
