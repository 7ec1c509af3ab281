"""The price panel of a portfolio backtest: dates x symbols of open, close and volume.

The calendar is the union of the symbols' dates; a cell is NaN where the symbol has no row that
day. Strategies look back over each symbol's *own* rows (its sessions, not calendar days), so
the panel also keeps every symbol's rows packed to the top ("compressed": row j of column s is
the symbol's j-th row) and, for every calendar day, the number of the symbol's last row so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analytics.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: Row numbers and calendar indices of the (T, S) grids: 32 bits halve the largest of them.
RowArray = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Panel:
    """Dates x symbols of open, close and volume (NaN where a symbol has no row that day).

    ``symbols`` are sorted ascending, so a column's index orders ties by symbol name.
    """

    dates: npt.NDArray[np.datetime64]
    symbols: npt.NDArray[np.str_]
    open: FloatArray
    close: FloatArray
    volume: FloatArray
    # Derived once (see __post_init__); not part of the constructor.
    has_row: BoolArray = field(init=False, repr=False)
    #: (T, S) number of the symbol's last row on or before the day (-1 before its first row).
    row_number: RowArray = field(init=False, repr=False)
    #: (T, S) the close of the symbol's last row on or before the day (0.0 before its first).
    last_close: FloatArray = field(init=False, repr=False)
    #: (J, S) the symbol's j-th close and volume (NaN past its last row).
    own_close: FloatArray = field(init=False, repr=False)
    own_volume: FloatArray = field(init=False, repr=False)
    #: (S,) calendar index of the symbol's last row (-1 for a symbol without rows).
    last_row: IntArray = field(init=False, repr=False)
    #: (T, S) calendar index of the symbol's first row on or after the day (T if none).
    next_row: RowArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        t, s = len(self.dates), len(self.symbols)
        for name in ("open", "close", "volume"):
            if getattr(self, name).shape != (t, s):
                found = getattr(self, name).shape
                raise InputError(
                    f"panel {name} has shape {found}, needs (dates, symbols) = {(t, s)}"
                )
        if s > 1 and not bool(np.all(self.symbols[1:] > self.symbols[:-1])):
            raise InputError("panel symbols must be unique and sorted ascending")
        has = ~np.isnan(self.close)
        counts = has.sum(axis=0)
        row_number = np.cumsum(has, axis=0, dtype=np.int32) - 1
        # Stable sort puts each column's rows first, in date order: the compressed layout.
        order = np.argsort(~has, axis=0, kind="stable")
        depth = int(counts.max()) if s else 0
        packed = np.arange(depth)[:, None] < counts[None, :]
        own_close = np.where(packed, np.take_along_axis(self.close, order[:depth], 0), np.nan)
        own_volume = np.where(packed, np.take_along_axis(self.volume, order[:depth], 0), np.nan)
        # The last close so far: the compressed close at the day's row number.
        last_close = np.where(
            row_number >= 0,
            np.take_along_axis(own_close, np.maximum(row_number, 0), 0) if depth else 0.0,
            0.0,
        )
        last_row = np.where(counts > 0, t - 1 - np.argmax(has[::-1], axis=0), -1)
        idx = np.where(has, np.arange(t, dtype=np.int32)[:, None], np.int32(t))
        next_row = np.minimum.accumulate(idx[::-1], axis=0)[::-1]
        for name, value in (
            ("has_row", has),
            ("row_number", row_number),
            ("last_close", last_close),
            ("own_close", own_close),
            ("own_volume", own_volume),
            ("last_row", last_row.astype(np.int64)),
            ("next_row", next_row),
        ):
            object.__setattr__(self, name, value)

    @property
    def n_dates(self) -> int:
        return len(self.dates)

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)


def panel_from_rows(
    dates: npt.ArrayLike,
    symbols: npt.ArrayLike,
    open_: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
) -> Panel:
    """Pivot long rows (one per symbol and date) into a :class:`Panel`.

    Raises
    ------
    InputError
        When a (symbol, date) pair repeats, or a close is missing or not positive.
    """
    d = np.asarray(dates, dtype="datetime64[D]")
    sym = np.asarray(symbols).astype(str)
    c = np.asarray(close, dtype=np.float64)
    if not bool(np.all(c > 0)):
        bad = int(np.sum(~(c > 0)))
        raise InputError(
            f"{bad} rows have a missing or non-positive close; every close must be > 0"
        )
    cal, di = np.unique(d, return_inverse=True)
    names, si = np.unique(sym, return_inverse=True)
    flat = di * len(names) + si
    if len(np.unique(flat)) != len(flat):
        raise InputError("a (symbol, date) pair has more than one row; each must have one")
    grids = []
    for values in (open_, c, volume):
        grid = np.full((len(cal), len(names)), np.nan)
        grid.ravel()[flat] = np.asarray(values, dtype=np.float64)
        grids.append(grid)
    return Panel(cal, names, grids[0], grids[1], grids[2])
