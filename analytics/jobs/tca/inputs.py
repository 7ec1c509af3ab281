"""Reading the TCA inputs in Dask tasks: each read unit (several small files, a file or part of a
large one: :mod:`analytics.data.reads`) once, cut into pieces by (date, symbol bucket).

A row's date is, for orders, its ``date`` column (orders are selected by it); for fills and bars,
the file's ``date=YYYY-MM-DD`` folder, or in a flat folder the UTC date of ``ts``. Every file is
read file by file with :func:`analytics.data.datasets.read_file` (never through pyarrow's partition
discovery: ``orders`` has both a ``date`` column and ``date=`` folders). A symbol's bucket is
a stable hash of its name, the same for the three datasets in every process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from analytics.data.buckets import symbol_bucket
from analytics.data.datasets import DataFile, Selection, dataset, read_file
from analytics.data.reads import FileSlice, ReadUnit, concat
from analytics.errors import InputError
from analytics.jobs.tca.checks import FILE_COLUMN

I64 = npt.NDArray[np.int64]
NS_PER_DAY: Final = 86_400 * 1_000_000_000
EPOCH: Final = dt.date(1970, 1, 1)

ORDER_COLUMNS: Final = (
    "order_id",
    "date",
    "symbol",
    "side",
    "quantity",
    "arrival_ts",
    "end_ts",
    "limit_price",
    "broker",
    "desk",
    "strategy",
    "decision_price",
)
FILL_COLUMNS: Final = (
    "fill_id",
    "order_id",
    "ts",
    "symbol",
    "side",
    "quantity",
    "price",
    "venue",
    "fee",
)
BAR_COLUMNS: Final = ("symbol", "ts", "high", "low", "close", "volume", "bid", "ask", "vwap")
COLUMNS: Final = {"orders": ORDER_COLUMNS, "fills": FILL_COLUMNS, "bars": BAR_COLUMNS}

#: A piece of one file: the rows of one (date, bucket), or None when it has none.
Piece: TypeAlias = "pa.Table | None"


def day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def day_date(number: int) -> dt.date:
    return EPOCH + dt.timedelta(days=number)


@dataclass(frozen=True)
class Source:
    """One input file as its read task sees it."""

    url: str
    #: The file's position in its dataset's file list (rows keep it, to name it in messages).
    index: int
    #: The day number of the file's ``date=`` folder; None in a flat folder.
    day: int | None


def sources(files: Sequence[DataFile]) -> list[Source]:
    out = []
    for i, f in enumerate(files):
        folder = dict(f.partition).get("date")
        out.append(Source(f.url, i, day_number(dt.date.fromisoformat(folder)) if folder else None))
    return out


def piece_schema(name: str) -> pa.Schema:
    """The columns of a piece of dataset ``name`` (the reader's types, plus the file index)."""
    ds = dataset(name)
    return pa.schema(
        [*(pa.field(c, ds.column(c).type) for c in COLUMNS[name]), (FILE_COLUMN, pa.int32())]
    )


def _row_buckets(table: pa.Table, n_buckets: int) -> I64:
    encoded = table.column("symbol").combine_chunks().dictionary_encode()
    names = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if not len(names):
        return np.asarray(codes, dtype=np.int64)
    return np.asarray(np.asarray(symbol_bucket(names, n_buckets), dtype=np.int64)[codes])


def split(table: pa.Table, row_day: I64, days: Sequence[int], n_buckets: int) -> list[Piece]:
    """Cut ``table`` into ``len(days) * n_buckets`` pieces, piece ``i * n_buckets + b`` holding
    the rows of ``days[i]`` whose symbol is in bucket b (rows of other days are dropped)."""
    wanted = np.asarray(sorted(days), dtype=np.int64)
    if list(wanted) != list(days):
        raise ValueError("days must be sorted")
    slot = np.searchsorted(wanted, row_day)
    known = slot < len(wanted)
    known[known] = wanted[slot[known]] == row_day[known]
    key = slot * n_buckets + _row_buckets(table, n_buckets)
    rows = np.flatnonzero(known)
    rows = rows[np.argsort(key[rows], kind="stable")]
    bounds = np.searchsorted(key[rows], np.arange(len(wanted) * n_buckets + 1))
    return [
        table.take(rows[bounds[i] : bounds[i + 1]]) if bounds[i + 1] > bounds[i] else None
        for i in range(len(wanted) * n_buckets)
    ]


def _with_file(table: pa.Table, index: int) -> pa.Table:
    return table.append_column(FILE_COLUMN, pa.array(np.full(table.num_rows, index, np.int32)))


def read_orders(unit: ReadUnit, sel: Selection, n_buckets: int) -> dict[tuple[int, int], pa.Table]:
    """The selected orders of one read unit, by (day number, bucket)."""
    table = concat([_with_file(_read_slice(p, "orders", sel), p.index) for p in unit.slices])
    days = table.column("date").cast(pa.int32()).to_numpy().astype(np.int64)
    found = [int(d) for d in np.unique(days)]
    pieces = split(table, days, found, n_buckets)
    return {
        (found[i // n_buckets], i % n_buckets): piece
        for i, piece in enumerate(pieces)
        if piece is not None
    }


def _read_slice(part: FileSlice, name: str, sel: Selection) -> pa.Table:
    """``read_file`` of the job's columns (an optional column the file lacks comes back as
    nulls)."""
    return read_file(
        part.url,
        name,
        list(COLUMNS[name]),
        sel,
        check_keys=False,
        row_groups=part.row_groups,
        size=part.size,
    )


def _read_timed_slice(
    part: FileSlice, src: Source, name: str, sel: Selection, days: Sequence[int]
) -> tuple[pa.Table, I64]:
    """One slice's rows (with their file) and each row's day number; fills dated on a day
    not in ``days`` are rejected: their order is missing."""
    if src.day is not None:
        sel = replace(sel, start=None, end=None)
    table = _read_slice(part, name, sel)
    if src.day is not None:
        row_day = np.full(table.num_rows, src.day, dtype=np.int64)
    else:
        ns = table.column("ts").cast(pa.int64()).to_numpy()
        row_day = np.floor_divide(ns, NS_PER_DAY).astype(np.int64)
    if name == "fills":
        stray = ~np.isin(row_day, np.asarray(days, dtype=np.int64))
        if stray.any():
            i = int(np.flatnonzero(stray)[0])
            how = "by its date= folder" if src.day is not None else "by its ts (UTC)"
            raise InputError(
                f"{int(stray.sum())} fill(s) fall on a date with no selected order: their "
                f"order is missing; first fill_id {table.column('fill_id')[i].as_py()!r} "
                f"(order_id {table.column('order_id')[i].as_py()!r}), dated "
                f"{day_date(int(row_day[i]))} {how}",
                dataset="fills",
                file=src.url,
                column="order_id",
            )
    return _with_file(table, src.index), row_day


def read_timed(
    unit: ReadUnit,
    srcs: Sequence[Source],
    name: str,
    sel: Selection,
    days: tuple[int, ...],
    n_buckets: int,
) -> list[Piece]:
    """The fills or bars of one read unit (``srcs``: its files' sources, in the unit's order)
    for ``days`` (the days its files serve), cut into ``len(days) * n_buckets`` pieces.

    A file in a ``date=`` folder is read whole (its folder dates its rows); a flat file's rows
    are filtered to ``start .. end`` by ``ts``. Fills dated on a day that has no selected order
    are rejected: their order is missing (a file's days are the selected orders' days its rows
    may fall on, so ``days`` holds every such day of the unit's files).
    """
    read = [
        _read_timed_slice(p, src, name, sel, days) for p, src in zip(unit.slices, srcs, strict=True)
    ]
    table = concat([t for t, _ in read])
    row_day = np.concatenate([d for _, d in read])
    return split(table, row_day, days, n_buckets)


def to_frame(name: str, pieces: Sequence[Piece]) -> pd.DataFrame:
    """The pieces of one partition as one pandas frame (the reader's types)."""
    tables = [p for p in pieces if p is not None]
    table = pa.concat_tables(tables) if tables else piece_schema(name).empty_table()
    frame: pd.DataFrame = table.to_pandas(date_as_object=False)
    return frame
