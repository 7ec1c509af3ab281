"""Row-level checks of the values read, and what ``--on-bad-rows skip`` drops.

:func:`check_values` runs in the read task on each file's selected rows: with the ``fail``
policy the first failing check raises :class:`~analytics.errors.InputError` naming the dataset,
the file and the column; with ``skip`` the failing rows go and one record per (column, reason)
says how many. The records reach the driver as Dask events (:func:`report_skips`, then
:func:`collect_skips`), so the manifest can list them whichever node read the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analytics.data.schemas import SIDES, Dataset
from analytics.errors import InputError

log = logging.getLogger(__name__)


def _first_bad_row(table: pa.Table, mask: pa.ChunkedArray, ds: Dataset) -> str:
    index = int(np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False)))[0])
    keys = [k for k in ds.key if k in table.column_names]
    row = {k: table.column(k)[index].as_py() for k in keys}
    return f"row {index}" + (f" ({', '.join(f'{k}={v}' for k, v in row.items())})" if row else "")


def _bad_masks(table: pa.Table, ds: Dataset) -> Iterable[tuple[str, str, pa.ChunkedArray]]:
    """Each row-level value check that some row fails: (column, what is wrong, bad-row mask)."""
    for name in table.column_names:
        spec = ds.column(name)
        col = table.column(name)
        if not spec.nullable and col.null_count:
            yield name, "missing value(s)", pc.is_null(col)
            col = col.fill_null(1.0) if pa.types.is_floating(col.type) else col
        if pa.types.is_floating(col.type) and not spec.nullable:
            if name in ds.positive_columns:
                rule, bad = "> 0", pc.invert(pc.and_(pc.is_finite(col), pc.greater(col, 0.0)))
            elif name in ds.nonnegative_columns:
                rule = ">= 0"
                bad = pc.invert(pc.and_(pc.is_finite(col), pc.greater_equal(col, 0.0)))
            else:
                rule, bad = "finite", pc.invert(pc.is_finite(col))
            if pc.any(bad).as_py():
                yield name, f"value(s) not {rule} (NaN, inf or out of range)", bad
    if "side" in table.column_names:
        side = table.column("side").cast(pa.string())
        # A null side is reported once, by the missing-value check above.
        bad = pc.invert(pc.or_(pc.is_in(side, value_set=pa.array(SIDES)), pc.is_null(side)))
        if pc.any(bad).as_py():
            found = sorted(str(v) for v in pc.unique(side.filter(bad)).to_pylist())
            yield "side", f"unexpected side value(s) {found}; expected exactly {list(SIDES)}", bad


def check_values(
    table: pa.Table, ds: Dataset, url: str, policy: str = "fail"
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Raise on the first failed value check, or (``policy="skip"``) drop the failing rows.

    Returns the table kept and what was skipped: one record per (column, reason) with its count.
    """
    skipped: list[dict[str, Any]] = []
    drop: pa.ChunkedArray | None = None
    for name, what, bad in _bad_masks(table, ds):
        n_bad = int(pc.sum(bad).as_py() or 0)
        if policy == "fail":
            index = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
            raise InputError(
                f"{n_bad} {what}, first {table.column(name)[index]} at "
                f"{_first_bad_row(table, bad, ds)} (--on-bad-rows skip drops such rows)",
                dataset=ds.name,
                file=url,
                column=name,
            )
        skipped.append(
            {"dataset": ds.name, "file": url, "column": name, "reason": what, "rows": n_bad}
        )
        drop = bad if drop is None else pc.or_(drop, bad)
    if drop is not None:
        table = table.filter(pc.invert(drop))
    return table, skipped


def check_unique(frame: pd.DataFrame, ds: Dataset, where: str) -> None:
    """Raise when a key (for example symbol and date) appears twice in ``frame``."""
    keys = [k for k in ds.key if k in frame.columns]
    if not keys:
        return
    dup = frame.duplicated(keys, keep=False)
    if dup.any():
        first = frame.loc[dup, keys].iloc[0].to_dict()
        raise InputError(
            f"{int(dup.sum())} rows share a key ({', '.join(keys)}); first {first}",
            dataset=ds.name,
            file=where,
            column=", ".join(keys),
        )


def report_skips(topic: str | None, skipped: list[dict[str, Any]]) -> None:
    """Log what a read skipped and, inside a Dask task, send it to ``topic`` for the driver."""
    for record in skipped:
        log.warning(
            "skipped %d row(s) of dataset %r, file %r, column %r: %s",
            record["rows"],
            record["dataset"],
            record["file"],
            record["column"],
            record["reason"],
        )
    if topic is None:
        return
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # read outside a Dask task (a driver-side read): nobody to tell
        return
    # Events travel with the task's result on the worker's ordered stream to the scheduler,
    # so they are there before the driver sees the task finish.
    worker.log_event(topic, skipped)


def collect_skips(client: Any, topics: Iterable[str]) -> list[dict[str, Any]]:
    """The skip records sent to ``topics`` (Dask events), one per (dataset, file, column,
    reason), each file counted once even if its read task ran twice."""
    found: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for topic in sorted(set(topics)):
        for _, records in client.get_events(topic):
            for record in records:
                key = (record["dataset"], record["file"], record["column"], record["reason"])
                found[key] = record
    return [found[k] for k in sorted(found)]
