"""Daily prices in buckets of whole symbols: pure functions the Dask layer maps.

Each input file is read once, by one task, and cut into B buckets by a stable hash of the
symbol (as market-performance does); each bucket then gathers its pieces from every file, so it
holds whole series of its symbols, and becomes a price matrix on the selection's calendar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from analytics.backtest.prices import PriceMatrix
from analytics.errors import InputError
from analytics.performance_kernel import cut_by_symbol

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
COLUMNS = ("symbol", "date", "open", "close")


@dataclass(frozen=True)
class Rows:
    """Price rows: ``codes`` index ``names``; ``days`` count from 1970-01-01; ``files`` index
    the input files (to name both files of a duplicate)."""

    names: npt.NDArray[np.object_]
    codes: npt.NDArray[np.int32]
    days: npt.NDArray[np.int32]
    open: FloatArray
    close: FloatArray
    files: npt.NDArray[np.int32]

    @property
    def symbol_count(self) -> int:
        return len(self.names)


def _empty() -> Rows:
    none = np.zeros(0, dtype=np.int32)
    return Rows(np.zeros(0, dtype=object), none, none, np.zeros(0), np.zeros(0), none)


def split_rows(table: pa.Table, file_index: int, n_buckets: int) -> list[Rows]:
    """Cut one file's ``symbol, date, open, close`` rows into ``n_buckets`` by symbol."""
    cut = cut_by_symbol(table, n_buckets)
    open_ = table.column("open").to_numpy().astype(np.float64)
    close = table.column("close").to_numpy().astype(np.float64)
    files = np.full(len(cut.codes), file_index, dtype=np.int32)
    pieces = []
    for b in range(n_buckets):
        rows = cut.rows(b)
        pieces.append(
            Rows(cut.names, cut.codes[rows], cut.days[rows], open_[rows], close[rows], files[rows])
        )
    return pieces


def merge_rows(pieces: Sequence[Rows], file_urls: Sequence[str]) -> Rows:
    """A bucket's rows from every file, sorted by (symbol, date); names sorted and unique.

    Raises :class:`InputError` when a (symbol, date) appears twice, naming both files.
    """
    pieces = [p for p in pieces if len(p.codes)]
    if not pieces:
        return _empty()
    names = np.unique(np.concatenate([p.names[np.unique(p.codes)] for p in pieces]).astype(str))
    codes = np.concatenate(
        [np.searchsorted(names, p.names.astype(str))[p.codes] for p in pieces]
    ).astype(np.int32)
    days = np.concatenate([p.days for p in pieces])
    key = (codes.astype(np.int64) << 32) | (days.astype(np.int64) & 0xFFFFFFFF)
    order = np.argsort(key, kind="stable")
    key = key[order]
    files = np.concatenate([p.files for p in pieces])[order]
    dup = np.flatnonzero(key[1:] == key[:-1])
    if len(dup):
        i, j = dup[0], dup[0] + 1
        day = np.datetime64(int(days[order][i]), "D")
        raise InputError(
            f"{len(dup)} duplicate (symbol, date) row(s); first {names[codes[order][i]]} on "
            f"{day}, in {file_urls[files[i]]} and {file_urls[files[j]]}",
            dataset="prices",
            file=file_urls[files[j]],
            column="symbol, date",
        )
    return Rows(
        names.astype(object),
        codes[order],
        days[order],
        np.concatenate([p.open for p in pieces])[order],
        np.concatenate([p.close for p in pieces])[order],
        files,
    )


def trading_days(rows: Rows) -> IntArray:
    """The distinct dates of a bucket (days since 1970-01-01)."""
    return np.unique(rows.days).astype(np.int64)


def calendar(parts: Sequence[IntArray]) -> IntArray:
    """Every date of the selection: the union of the buckets' dates."""
    if not parts:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(list(parts))).astype(np.int64)


def price_matrix(rows: Rows, days: IntArray) -> PriceMatrix:
    """The bucket's rows as ``(days, symbols)`` matrices on the calendar ``days``."""
    out_open = np.full((len(days), rows.symbol_count), np.nan)
    out_close = np.full_like(out_open, np.nan)
    index = np.searchsorted(days, rows.days)
    out_open[index, rows.codes] = rows.open
    out_close[index, rows.codes] = rows.close
    return PriceMatrix(days, rows.names, out_open, out_close)
