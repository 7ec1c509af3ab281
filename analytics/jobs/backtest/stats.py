"""Statistics of simulated columns, fused into a few passes over ``(days, K, symbols)`` blocks.

The conventions are :mod:`analytics.stats.metrics`'s (empyrical's, as in market-performance),
over each symbol's own days: one return per row of the symbol, the first one against the
starting cash of 1.0; 252 periods a year; risk-free 0; sample std (ddof=1); Sortino's downside
deviation over all n returns; max drawdown from the starting value; fewer than two returns give
NaN. The sums are taken in one pass each (``sum r``, ``sum r^2``, ``sum min(r, 0)^2``) instead
of :mod:`analytics.stats.metrics`' NaN-aware passes; columns whose returns may all be equal are
recomputed with :func:`analytics.stats.metrics.annual_volatility` itself, so a constant series
still gets the exact zero std (and a NaN or infinite Sharpe ratio) that the rest of the project
gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.constants import TRADING_DAYS_PER_YEAR
from analytics.jobs.backtest.prices import PriceMatrix
from analytics.stats import metrics

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PPY = TRADING_DAYS_PER_YEAR
#: A variance this close to the rounding of ``sum r^2`` may be an all-equal series.
_CANCELLATION = 64 * np.finfo(np.float64).eps

METRICS = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
)
TRADE_STATS = ("n_trades", "win_rate", "exposure", "turnover")


@dataclass(frozen=True)
class ReturnSums:
    """Per column (K, S): the sums the return metrics need; per day and combination (D, K):
    the sum over symbols of their returns (for the equal-weighted portfolio)."""

    total: FloatArray
    squares: FloatArray
    downside: FloatArray
    std: FloatArray
    portfolio: FloatArray


def sample_std(
    prices: PriceMatrix,
    total: FloatArray,
    squares: FloatArray,
    series: Callable[[IntArray, IntArray], FloatArray],
) -> FloatArray:
    """Sample std (ddof=1) per (K, S) column from ``sum r`` and ``sum r^2``.

    A column whose spread is within rounding of zero may be an all-equal series: its returns
    (``series(k, s)``: (columns, days), NaN on days without a row) go through
    :func:`analytics.stats.metrics.annual_volatility` itself, which gives such a series exactly 0.
    """
    n = prices.counts[None, :].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.maximum(squares - total * total / n, 0.0)
        std = np.sqrt(spread / (n - 1))
    # All-zero returns (a column that never traded) give exactly 0 already.
    suspect = np.argwhere((spread <= _CANCELLATION * squares) & (squares > 0) & (n >= 2))
    if len(suspect):
        k, s = suspect[:, 0], suspect[:, 1]
        std[k, s] = metrics.annual_volatility(series(k, s), periods_per_year=PPY) / np.sqrt(PPY)
    return std


def return_sums(prices: PriceMatrix, returns: FloatArray, work: FloatArray) -> ReturnSums:
    """Sums of ``returns`` (``(days, K, symbols)``, 0 on days without a row); ``work`` is a
    scratch buffer of the same size."""
    total = returns.sum(axis=0)
    squares = np.einsum("dks,dks->ks", returns, returns)
    neg = work.reshape(returns.shape)
    np.minimum(returns, 0.0, out=neg)
    downside = np.einsum("dks,dks->ks", neg, neg)

    def series(k: IntArray, s: IntArray) -> FloatArray:
        return np.asarray(np.where(prices.valid[:, s], returns[:, k, s], np.nan).T)

    std = sample_std(prices, total, squares, series)
    return ReturnSums(total, squares, downside, std, returns.sum(axis=2))


@dataclass(frozen=True)
class EquitySummary:
    """Per column (K, S): the last equity, the max drawdown, the sum of the equity over the
    symbol's own days."""

    last: FloatArray
    drawdown: FloatArray
    own_days_sum: FloatArray


def gap_sums(prices: PriceMatrix, block: npt.NDArray[np.generic], nonzero: bool) -> FloatArray:
    """Per (K, S): the sum of ``block`` (or of ``block != 0``) over the days a symbol has no
    row after its first one."""
    day, sym = np.nonzero(prices.gaps)
    out = np.zeros((block.shape[1], block.shape[2]))
    if len(day):
        values = block[day, :, sym]
        np.add.at(out.T, sym, (values != 0) if nonzero else values)
    return out


def equity_summary(prices: PriceMatrix, equity: FloatArray, work: FloatArray) -> EquitySummary:
    """The summary of a whole ``(days, K, symbols)`` equity block; ``work``: scratch buffer."""
    days = equity.shape[0]
    flat = equity.reshape(days, -1)
    peak = work.reshape(flat.shape)
    np.maximum(flat[0], 1.0, out=peak[0])
    for day in range(1, days):
        np.maximum(peak[day - 1], flat[day], out=peak[day])
    np.divide(flat, peak, out=peak)
    drawdown = np.minimum(peak.min(axis=0) - 1.0, 0.0).reshape(equity.shape[1:])
    own = equity.sum(axis=0) - gap_sums(prices, equity, False)
    own -= prices.first_row[None, :]  # equity is the 1.0 of cash before the listing
    return EquitySummary(equity[-1].copy(), drawdown, own)


@dataclass(frozen=True)
class ColumnStats:
    """Per (combination, symbol) statistics, each ``(K, S)``, and the portfolio sums."""

    values: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]]
    n_closed: IntArray
    n_wins: IntArray
    held_days: IntArray
    portfolio: FloatArray


def column_stats(
    prices: PriceMatrix,
    held: npt.NDArray[np.int8],
    sums: ReturnSums,
    eq: EquitySummary,
    traded: FloatArray,
    counts: Mapping[str, IntArray],
) -> ColumnStats:
    """Every statistic of ``results/`` for each column of a simulated block.

    ``traded`` is each column's total traded value (shares x fill price over every fill);
    ``counts`` holds its fills that opened (``n_trades``) and closed (``n_closed``) a position
    and the closed ones that gained (``n_wins``).
    """
    k, s = held.shape[1:]
    n = np.broadcast_to(prices.counts[None, :], (k, s)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = sums.total / n
        values: dict[str, FloatArray] = {
            "total_return": eq.last - 1.0,
            "annual_return": eq.last ** (PPY / n) - 1.0,
            "annual_volatility": sums.std * np.sqrt(PPY),
            "sharpe": mean / sums.std * np.sqrt(PPY),
            "sortino": mean * PPY / (np.sqrt(sums.downside / n) * np.sqrt(PPY)),
            "max_drawdown": eq.drawdown,
        }
        few = n < metrics.MIN_RETURNS
        for name in METRICS:
            values[name] = np.where(few, np.nan, values[name])
        in_market = np.count_nonzero(held, axis=0) - gap_sums(prices, held, True)
        reshaped = {name: counts[name].reshape(k, s) for name in ("n_closed", "n_wins")}
        out: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]] = dict(values)
        out["n_trades"] = counts["n_trades"].reshape(k, s).astype(np.int64)
        out["win_rate"] = reshaped["n_wins"] / reshaped["n_closed"]
        out["exposure"] = in_market / n
        # Turnover: total traded value over the average equity of the symbol's days.
        out["turnover"] = traded.reshape(k, s) / (eq.own_days_sum / n)
    return ColumnStats(
        out,
        reshaped["n_closed"].astype(np.int64),
        reshaped["n_wins"].astype(np.int64),
        np.rint(in_market).astype(np.int64),
        sums.portfolio,
    )
