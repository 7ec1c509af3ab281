"""Resume for the backtest: a sweep task keeps its portfolio part next to its ``results/`` part.

The summary of a chunk adds up the daily sums of all its tasks; a resumed run skips a finished
task and reads its sums back from ``_progress/`` instead (exact float64: the summary, top and
equity tables equal a clean run's bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.data.buckets import Rows
from analytics.jobs.backtest.strategies._base import Combos
from analytics.jobs.backtest.sweep import PortfolioPart, Sweep, sweep_task
from analytics.run.folder import Destination, WrittenPart
from analytics.run.resume import Checkpoint, load_arrays, save_arrays

#: Scalars of a PortfolioPart (the other fields are arrays).
_SCALARS = ("symbol_days", "n_symbols")


def part_arrays(part: PortfolioPart) -> dict[str, Any]:
    return {f.name: getattr(part, f.name) for f in fields(PortfolioPart)}


def part_from_arrays(arrays: dict[str, npt.NDArray[Any]]) -> PortfolioPart:
    values: dict[str, Any] = {
        f.name: int(arrays[f.name]) if f.name in _SCALARS else np.asarray(arrays[f.name])
        for f in fields(PortfolioPart)
    }
    return PortfolioPart(**values)


def sweep_and_keep(
    blob_url: str,
    target: Destination,
    index: int,
    rows: Rows,
    days: npt.NDArray[np.int64],
    combos: Combos,
    sweep: Sweep,
) -> tuple[tuple[WrittenPart, dict[str, Any]], PortfolioPart]:
    """Run one sweep task (a Dask task), write its part, then keep its portfolio part; hands
    back the written part with the blob's address and size, and the portfolio part."""
    written, part = sweep_task(target, index, rows, days, combos, sweep)
    size = save_arrays(blob_url, part_arrays(part))
    return (written, {"url": blob_url, "bytes": size}), part


def load_part(blob_url: str) -> PortfolioPart:
    """A finished task's portfolio part, read back (a Dask task)."""
    return part_from_arrays(load_arrays(blob_url))


def recorder(checkpoint: Checkpoint, key: str) -> Callable[[Any], None]:
    """Record a finished :func:`sweep_and_keep` task (its part and its blob) as ``key``."""

    def record(result: tuple[WrittenPart, dict[str, Any]]) -> None:
        checkpoint.add_piece(key, result[0], blob=result[1])

    return record
