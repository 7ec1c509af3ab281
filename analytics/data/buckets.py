"""Daily prices in buckets of whole symbols, shared by market-performance and backtest.

Each read unit (several small files, one file or part of a large one: :mod:`analytics.data.reads`)
is read once, by one task, and cut into B buckets by a stable hash of the symbol (:func:`split`);
each bucket then gathers its pieces from every unit (:func:`merge`), so it holds whole series of
its symbols, sorted by (symbol, date). Pure functions of arrays: the jobs' Dask layers map them.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from analytics.data.datasets import Selection
from analytics.data.reads import ReadUnit, concat, file_index, read_slices
from analytics.errors import InputError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Rows:
    """Price rows: ``codes`` index ``names``; ``days`` count from 1970-01-01; ``files`` index
    the input files (to name both files of a duplicate); ``values`` the float columns read."""

    names: npt.NDArray[np.object_]
    codes: npt.NDArray[np.int32]
    days: npt.NDArray[np.int32]
    files: npt.NDArray[np.int32]
    values: Mapping[str, FloatArray] = field(default_factory=dict)

    @property
    def symbol_count(self) -> int:
        return len(self.names)

    def column(self, name: str) -> FloatArray:
        return self.values[name]


def empty(columns: Sequence[str]) -> Rows:
    none = np.zeros(0, dtype=np.int32)
    return Rows(np.zeros(0, dtype=object), none, none, none, {c: np.zeros(0) for c in columns})


def symbol_bucket(names: Sequence[str] | npt.NDArray[np.object_], n_buckets: int) -> IntArray:
    """A stable bucket per symbol (crc32, the same in every process and every run)."""
    return np.fromiter(
        (zlib.crc32(str(name).encode()) % n_buckets for name in names),
        dtype=np.int64,
        count=len(names),
    )


@dataclass(frozen=True)
class SymbolCut:
    """One file's rows, with the order that groups them by symbol bucket."""

    names: npt.NDArray[np.object_]
    codes: npt.NDArray[np.int32]
    days: npt.NDArray[np.int32]
    #: ``order[bounds[b]:bounds[b + 1]]`` are the rows of bucket ``b``.
    order: IntArray
    bounds: IntArray

    def rows(self, bucket: int) -> IntArray:
        return self.order[self.bounds[bucket] : self.bounds[bucket + 1]]


def cut_by_symbol(table: pa.Table, n_buckets: int) -> SymbolCut:
    """Symbol codes, days and the row order by bucket of a ``symbol, date, ...`` table."""
    symbol = table.column("symbol").unify_dictionaries().combine_chunks()
    if not isinstance(symbol, pa.DictionaryArray):
        symbol = symbol.dictionary_encode()
    names = np.asarray(symbol.dictionary.to_pylist(), dtype=object)
    codes = symbol.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    days = table.column("date").cast(pa.int32()).to_numpy().astype(np.int32)
    row_bucket = symbol_bucket(names, n_buckets)[codes] if len(names) else codes.astype(np.int64)
    order = np.argsort(row_bucket, kind="stable")
    bounds = np.searchsorted(row_bucket[order], np.arange(n_buckets + 1))
    return SymbolCut(names, codes, days, order, bounds)


def split(
    table: pa.Table,
    files: int | npt.NDArray[np.int32],
    n_buckets: int,
    columns: Sequence[str],
) -> list[Rows]:
    """Cut ``symbol, date, *columns`` rows into ``n_buckets`` pieces by symbol; ``files`` is
    the rows' file (its index in the listing), one for all or one per row."""
    cut = cut_by_symbol(table, n_buckets)
    values = {c: table.column(c).to_numpy().astype(np.float64) for c in columns}
    if isinstance(files, int):
        files = np.full(len(cut.codes), files, dtype=np.int32)
    pieces = []
    for b in range(n_buckets):
        rows = cut.rows(b)
        pieces.append(
            Rows(
                cut.names,
                cut.codes[rows],
                cut.days[rows],
                files[rows],
                {c: v[rows] for c, v in values.items()},
            )
        )
    return pieces


def read_and_split(
    unit: ReadUnit, sel: Selection, n_buckets: int, columns: Sequence[str]
) -> list[Rows]:
    """Read one unit of ``prices`` (``symbol, date, *columns``) and cut it into buckets."""
    tables = read_slices(
        unit, "prices", ["symbol", "date", *columns], sel, categorical=True, check_keys=False
    )
    return split(concat(tables), file_index(unit, tables), n_buckets, columns)


def merge(pieces: Sequence[Rows], file_urls: Sequence[str]) -> Rows:
    """A bucket's rows from every file, sorted by (symbol, date); names sorted and unique.

    Raises :class:`InputError` when a (symbol, date) appears twice, naming both files.
    """
    columns = list(pieces[0].values) if pieces else []
    pieces = [p for p in pieces if len(p.codes)]
    if not pieces:
        return empty(columns)
    names = np.unique(np.concatenate([p.names[np.unique(p.codes)] for p in pieces]).astype(str))
    codes = np.concatenate(
        [np.searchsorted(names, p.names.astype(str))[p.codes] for p in pieces]
    ).astype(np.int32)
    days = np.concatenate([p.days for p in pieces])
    files = np.concatenate([p.files for p in pieces])
    key = (codes.astype(np.int64) << 32) | (days.astype(np.int64) & 0xFFFFFFFF)
    order = np.argsort(key, kind="stable")
    key = key[order]
    dup = np.flatnonzero(key[1:] == key[:-1])
    if len(dup):
        i, j = order[dup[0]], order[dup[0] + 1]
        day = np.datetime64(int(days[i]), "D")
        raise InputError(
            f"{len(dup)} duplicate (symbol, date) row(s); first {names[codes[i]]} on {day}, "
            f"in {file_urls[files[i]]} and {file_urls[files[j]]}",
            dataset="prices",
            file=file_urls[files[j]],
            column="symbol, date",
        )
    return Rows(
        names.astype(object),
        codes[order],
        days[order],
        files[order],
        {c: np.concatenate([p.values[c] for p in pieces])[order] for c in columns},
    )
