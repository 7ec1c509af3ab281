"""Long-only columns, streamed through slices of days small enough to stay in cache.

Between fills a long position moves with the symbol's own return, so a column's daily return is
``held * (close / previous close - 1)``, patched on the (sparse) fill days: a buy day earns
``close / fill`` after the costs, a sale day ``fill / previous close`` after them. Equity is the
running product of ``1 + r``. Each slice of days is simulated for every column at once: its
returns, their sums, the compounding, the running peak and the drawdown, all while the slice is
still in cache; only the state (equity, peak, deepest fall) passes to the next slice. Memory is
the positions (one byte a cell) plus a slice, however long the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.jobs.backtest.model import Market
from analytics.jobs.backtest.prices import PriceMatrix
from analytics.jobs.backtest.stats import EquitySummary, ReturnSums, sample_std

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Bytes of float64 per slice of days (a few such buffers stay in a core's L2 cache).
SLICE_BYTES = 2**20


@dataclass(frozen=True)
class LongOnlyRun:
    sums: ReturnSums
    equity: EquitySummary
    #: Every fill, day-major: its cell ``day * columns + column`` and its traded value.
    cells: IntArray
    traded: FloatArray


def _fill_returns(
    new: npt.NDArray[np.int8], series: IntArray, costs: tuple[float, float], mk: Market
) -> FloatArray:
    """Return of a fill day: a buy rides from the fill to the close, a sale from the previous
    close to the fill; each pays its slippage and fee."""
    buy_cost, sell_cost = costs
    after = mk.after.reshape(-1)[series]
    before = mk.before.reshape(-1)[series]
    return np.asarray(np.where(new > 0, after * buy_cost, before * sell_cost) - 1.0)


def simulate(
    prices: PriceMatrix,
    held: npt.NDArray[np.int8],
    mk: Market,
    fee: float,
    slippage: float,
    slice_bytes: int | None = None,
) -> LongOnlyRun:
    """Simulate every (combination, symbol) column of ``held`` (``(days, K, symbols)``, 0/1)."""
    days, k, symbols = held.shape
    n = k * symbols
    flat_held = held.reshape(days, n)
    costs = (1.0 / ((1.0 + slippage) * (1.0 + fee)), (1.0 - slippage) * (1.0 - fee))
    gain, loss = mk.gain, mk.loss
    rows = max(8, (slice_bytes or SLICE_BYTES) // (8 * n))
    total = np.zeros((k, symbols))
    squares = np.zeros((k, symbols))
    downside = np.zeros((k, symbols))
    portfolio = np.empty((days, k))
    equity, peak, worst, own = np.ones(n), np.ones(n), np.ones(n), np.zeros(n)
    gap_day, gap_sym = np.nonzero(prices.gaps)
    gap_sum = np.zeros((symbols, k))
    r_buf = np.empty((min(rows, days), k, symbols))
    p_buf = np.empty((min(rows, days), n))
    c_buf = np.empty((min(rows, days), n), dtype=bool)
    cells: list[IntArray] = []
    traded: list[FloatArray] = []
    previous = np.zeros(n, dtype=np.int8)
    gap_bounds = np.searchsorted(gap_day, np.arange(0, days + rows, rows))
    for step, d0 in enumerate(range(0, days, rows)):
        d1 = min(days, d0 + rows)
        m = d1 - d0
        r = r_buf[:m]
        flat = r.reshape(m, n)
        np.multiply(held[d0:d1], gain[d0:d1, None, :], out=r)
        change = c_buf[:m]
        np.not_equal(flat_held[d0], previous, out=change[0])
        np.not_equal(flat_held[d0 + 1 : d1], flat_held[d0 : d1 - 1], out=change[1:])
        local = np.flatnonzero(change)
        row, col = np.divmod(local, n)
        series = (row + d0) * symbols + col % symbols
        new = flat_held[d0:d1].reshape(-1)[local]
        fill_r = _fill_returns(new, series, costs, mk)
        flat.reshape(-1)[local] = fill_r
        # sum min(r, 0)^2 without clipping a copy: on a held day without a fill r equals the
        # symbol's gain g, so min(r, 0)^2 = r * min(g, 0); fill days are corrected.
        fix = np.minimum(fill_r, 0.0) ** 2 - fill_r * loss.reshape(-1)[series]
        downside += np.bincount(col, fix, n).reshape(k, symbols)
        downside += np.einsum("dks,ds->ks", r, loss[d0:d1])
        total += r.sum(axis=0)
        squares += np.einsum("dks,dks->ks", r, r)
        portfolio[d0:d1] = r.sum(axis=2)
        # Compound (in place: the slice's returns become its equity), then the running peak.
        flat += 1.0
        np.multiply(equity, flat[0], out=flat[0])
        for i in range(1, m):
            np.multiply(flat[i - 1], flat[i], out=flat[i])
        p = p_buf[:m]
        np.maximum(peak, flat[0], out=p[0])
        for i in range(1, m):
            np.maximum(p[i - 1], flat[i], out=p[i])
        peak[:] = p[m - 1]
        # A buy spends the previous close's equity (all cash) over 1 + fee; a sale's proceeds
        # are the day's equity (all cash again), net of the fee.
        values = flat.reshape(-1)
        before = np.where(row > 0, values[np.maximum(local - n, 0)], equity[col])
        traded.append(np.where(new > 0, before / (1.0 + fee), values[local] / (1.0 - fee)))
        cells.append(local + d0 * n)
        own += flat.sum(axis=0)
        lo, hi = gap_bounds[step], gap_bounds[step + 1]
        if hi > lo:
            np.add.at(gap_sum, gap_sym[lo:hi], r[gap_day[lo:hi] - d0, :, gap_sym[lo:hi]])
        np.divide(flat, p, out=p)
        np.minimum(worst, p.min(axis=0), out=worst)
        equity[:] = flat[m - 1]
        previous = flat_held[d1 - 1]

    def series_of(ks: IntArray, ss: IntArray) -> FloatArray:
        return column_returns(prices, held, mk, costs, ks, ss)

    std = sample_std(prices, total, squares, series_of)
    sums = ReturnSums(total, squares, downside, std, portfolio)
    own_days = own.reshape(k, symbols) - gap_sum.T - prices.first_row[None, :]
    summary = EquitySummary(
        equity.reshape(k, symbols),
        np.minimum(worst - 1.0, 0.0).reshape(k, symbols),
        own_days,
    )
    return LongOnlyRun(
        sums,
        summary,
        np.concatenate(cells) if cells else np.zeros(0, np.int64),
        np.concatenate(traded) if traded else np.zeros(0),
    )


def column_returns(
    prices: PriceMatrix,
    held: npt.NDArray[np.int8],
    mk: Market,
    costs: tuple[float, float],
    ks: IntArray,
    ss: IntArray,
) -> FloatArray:
    """The daily returns of a few columns, ``(columns, days)``, NaN on days without a row."""
    columns = held[:, ks, ss].astype(np.int8)
    days = columns.shape[0]
    r = columns * (mk.hold[:, ss] - 1.0)
    previous = np.vstack([np.zeros((1, len(ks)), dtype=np.int8), columns[:-1]])
    day, which = np.nonzero(columns != previous)
    series = day * mk.hold.shape[1] + ss[which]
    r[day, which] = _fill_returns(columns[day, which], series, costs, mk)
    out = np.where(prices.valid[:, ss], r, np.nan).T
    assert out.shape == (len(ks), days)
    return np.asarray(out)
