"""The vectorized backtest: target positions -> fills -> daily equity -> statistics.

One call simulates every (combination, symbol) column of a ``(days, K, symbols)`` block of
targets under the execution model of :mod:`analytics.jobs.backtest.model`. Long-only blocks stream
through :mod:`~analytics.jobs.backtest.long_only`; blocks that may go short replay their fills with
:mod:`~analytics.jobs.backtest.long_short`. Both give every fill, from which the trade statistics
(round trips, wins, turnover) follow here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analytics.jobs.backtest import long_only, long_short
from analytics.jobs.backtest.model import Execution, Fill, Held, Market, held_positions, market
from analytics.jobs.backtest.prices import PriceMatrix
from analytics.jobs.backtest.stats import ColumnStats, column_stats, equity_summary, return_sums

__all__ = ["Execution", "Fill", "Market", "Workspace", "backtest", "market"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Workspace:
    """Scratch buffers reused from block to block (fresh memory costs a page fault per 4 KiB)."""

    def __init__(self) -> None:
        self._buffers: dict[str, FloatArray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> FloatArray:
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = np.empty(size)
            self._buffers[name] = buffer
        return buffer[:size].reshape(shape)


def _changes(flat_held: Held) -> IntArray:
    """Cells (``day * columns + column``) where a column's position changes, day-major."""
    change = np.empty(flat_held.shape, dtype=bool)
    np.not_equal(flat_held[0], 0, out=change[0])
    np.not_equal(flat_held[1:], flat_held[:-1], out=change[1:])
    return np.flatnonzero(change).astype(np.int64)


def backtest(
    prices: PriceMatrix,
    targets: Held,
    ex: Execution,
    mk: Market,
    workspace: Workspace | None = None,
) -> ColumnStats:
    """Simulate every column of ``targets`` (``(days, K, symbols)``) on ``prices``."""
    held = held_positions(targets, prices, ex.fill)
    days, k, symbols = held.shape
    n = k * symbols
    flat_held = held.reshape(days, n)
    traded: FloatArray
    if not ex.long_short:
        run = long_only.simulate(prices, held, mk, ex.fee, ex.slippage)
        cells, traded, sums, eq = run.cells, run.traded, run.sums, run.equity
    else:
        cells = _changes(flat_held)
    # Fills column by column: a radix sort of day-major cells on small integers is cheaper
    # than finding them in column-major order.
    column_type = np.int16 if n <= np.iinfo(np.int16).max else np.int32
    order = np.argsort((cells % n).astype(column_type), kind="stable")
    cells = cells[order]
    day, column = np.divmod(cells, n)
    series = day * symbols + column % symbols
    new = flat_held.reshape(-1)[cells]
    old = np.zeros_like(new)
    if len(new):
        old[1:] = np.where(column[1:] == column[:-1], new[:-1], 0)
    if ex.long_short:
        ws = workspace or Workspace()
        equity = ws.get("equity", held.shape)
        traded = long_short.replay(
            held, column, cells, series, new, old, ex, mk, equity, ws.get("cash", (days, n))
        )
        returns = long_short.daily_returns(equity, ws.get("returns", held.shape))
        sums = return_sums(prices, returns, ws.get("work", held.shape))
        eq = equity_summary(prices, equity, ws.get("work", held.shape))
    else:
        traded = traded[order]
    price = mk.price.reshape(-1)[series]
    closed = old != 0
    entry_price = np.full(len(price), np.nan)
    # A closing fill's position was opened by the column's previous fill.
    entry_price[1:] = np.where(closed[1:], price[:-1], np.nan)
    # Win: the round trip's exit value beats its entry value, costs included on both legs.
    out_cost = (1 - ex.slippage) * (1 - ex.fee)
    in_cost = (1 + ex.slippage) * (1 + ex.fee)
    long_gain = price * out_cost > entry_price * in_cost
    short_gain = entry_price * out_cost > price * in_cost
    win = closed & np.where(old > 0, long_gain, short_gain)
    counts = {
        "n_trades": np.bincount(column[new != 0], minlength=n).astype(np.int64),
        "n_closed": np.bincount(column[closed], minlength=n).astype(np.int64),
        "n_wins": np.bincount(column[win], minlength=n).astype(np.int64),
    }
    turnover = np.bincount(column, traded, n).astype(np.float64)
    return column_stats(prices, held, sums, eq, turnover, counts)
