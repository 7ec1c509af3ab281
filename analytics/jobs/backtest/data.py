"""A bucket of whole price series (:mod:`analytics.data.buckets`) as the sweep's matrices.

The calendar is the union of the buckets' dates; each bucket becomes a price matrix on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from analytics.data.buckets import Rows
from analytics.jobs.backtest.prices import PriceMatrix

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
#: The price columns a sweep reads besides symbol and date.
COLUMNS = ("open", "close")


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
    out_open[index, rows.codes] = rows.column("open")
    out_close[index, rows.codes] = rows.column("close")
    return PriceMatrix(days, rows.names, out_open, out_close)
