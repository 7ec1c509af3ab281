"""Columns that may go short: fills replayed one rank at a time, then equity day by day.

A short position's equity is not a product of daily factors (``cash - q * close`` is affine in
the close), so cash and shares are tracked: every column's first fill is one vectorized step,
then every column's second fill, and so on (a fill depends only on the column's previous one);
cash and shares are then carried over the days between fills and valued at each close.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analytics.jobs.backtest.model import Execution, Market

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def replay(
    held: npt.NDArray[np.int8],
    column: IntArray,
    cell: IntArray,
    series: IntArray,
    new: npt.NDArray[np.int8],
    old: npt.NDArray[np.int8],
    ex: Execution,
    mk: Market,
    equity: FloatArray,
    cash_days: FloatArray,
) -> FloatArray:
    """Fill the buffer ``equity`` (``held.shape``) with each column's daily equity.

    The fills are given sorted by column then day (``cell`` indexes the ``(days, columns)``
    block, ``series`` the ``(days, symbols)`` inputs); returns each fill's traded value.
    ``cash_days`` is a scratch buffer of ``(days, columns)``.
    """
    days, k, symbols = held.shape
    n = k * symbols
    count = len(column)
    cash = np.ones(n)
    shares = np.zeros(n)
    cash_after = np.empty(count)
    shares_after = np.empty(count)
    traded = np.zeros(count)
    first = np.zeros(count, dtype=np.int64)
    if count:
        starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
        first[starts] = starts
        np.maximum.accumulate(first, out=first)
    rank = np.arange(count) - first
    order = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[order], np.arange(int(rank.max(initial=-1)) + 2))
    price = mk.price.reshape(-1)[series]
    fee, slip = ex.fee, ex.slippage
    for r in range(len(bounds) - 1):
        idx = order[bounds[r] : bounds[r + 1]]
        col, was, now, p = column[idx], old[idx], new[idx], price[idx]
        # Close the old position: a sale (long) or a buy to cover (short).
        fill = p * (1.0 - was * slip)
        held_value = np.abs(shares[col]) * fill
        cash[col] += shares[col] * fill - fee * held_value
        # Open the new one with all the cash: a buy (long) or a short sale.
        fill = p * (1.0 + now * slip)
        qty = np.where(now != 0, cash[col] / (fill * (1.0 + fee)), 0.0)
        shares[col] = now * qty
        cash[col] -= shares[col] * fill + fee * qty * fill
        traded[idx] = held_value + qty * fill
        cash_after[idx] = cash[col]
        shares_after[idx] = shares[col]
    share_days = equity.reshape(days, n)
    is_fill = np.zeros((days, n), dtype=bool)
    is_fill.reshape(-1)[cell] = True
    cash_days.reshape(-1)[cell] = cash_after
    share_days.reshape(-1)[cell] = shares_after
    np.copyto(cash_days[0], 1.0, where=~is_fill[0])
    np.copyto(share_days[0], 0.0, where=~is_fill[0])
    for day in range(1, days):
        keep = ~is_fill[day]
        np.copyto(cash_days[day], cash_days[day - 1], where=keep)
        np.copyto(share_days[day], share_days[day - 1], where=keep)
    equity *= mk.close[:, None, :]
    equity += cash_days.reshape(held.shape)
    return traded


def daily_returns(equity: FloatArray, out: FloatArray) -> FloatArray:
    """``equity_t / equity_t-1 - 1`` into ``out``, the first day against the 1.0 of cash."""
    out[0] = equity[0] - 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(equity[1:], equity[:-1], out=out[1:])
    out[1:] -= 1.0
    return out
