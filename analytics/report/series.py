"""The daily series a report draws, derived from closes or an equity curve: cumulative return,
drawdown, an equal-weighted universe, monthly returns and a rolling Sharpe ratio.

A "growth" series is a cumulative return: wealth (starting at 1.0) minus 1, so 0.25 is +25%.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from analytics.constants import TRADING_DAYS_PER_YEAR

#: Six months of trading days: the rolling Sharpe ratio's window.
ROLLING_WINDOW: Final = 126


def cumulative(closes: pd.DataFrame) -> pd.DataFrame:
    """Each column's close over its first close in the range, minus 1 (gaps carried over)."""
    first = closes.apply(lambda c: c.dropna().iloc[0] if c.notna().any() else np.nan)
    return closes.ffill() / first - 1.0


def drawdown(growth: pd.DataFrame) -> pd.DataFrame:
    """Drawdown of wealth ``1 + growth`` from its running peak (<= 0)."""
    wealth = 1.0 + growth
    return wealth / wealth.cummax() - 1.0


def equal_weighted(closes: pd.DataFrame) -> pd.Series:
    """Cumulative return of the per-date mean of the symbols' own daily returns (the
    market-performance job's fallback benchmark, and the backtest portfolio's convention): a
    symbol's return spans its halts, a symbol without a row that day is left out."""
    # A day's return is over the symbol's last close before it (the close carried over its
    # halts): the same divisions as each column's ``dropna().pct_change()``, all at once.
    returns = closes / closes.ffill().shift(1) - 1.0
    mean = returns.mean(axis=1, skipna=True).fillna(0.0)
    return pd.Series((1.0 + mean).cumprod() - 1.0, index=closes.index, name="equal-weighted")


def monthly_returns(growth: pd.Series) -> pd.DataFrame:
    """Compounded return of each calendar month (rows: years, columns: months 1..12, NaN where
    the series has no day): the month's last wealth over the previous month's last wealth, the
    first month over the starting 1.0."""
    wealth = (1.0 + growth).dropna()
    if wealth.empty:
        return pd.DataFrame(columns=range(1, 13), dtype=np.float64)
    index = pd.DatetimeIndex(wealth.index)
    ends = wealth.groupby([index.year, index.month]).last()
    returns = ends / ends.shift(1).fillna(1.0) - 1.0
    grid = returns.unstack()
    return grid.reindex(columns=range(1, 13)).astype(np.float64)


def daily_returns(growth: pd.Series) -> pd.Series:
    """Day-over-day return of wealth ``1 + growth`` (the first day has none)."""
    wealth = 1.0 + growth
    return (wealth / wealth.shift(1) - 1.0).iloc[1:]


def rolling_sharpe(
    returns: pd.Series,
    *,
    window: int = ROLLING_WINDOW,
    periods_per_year: int = TRADING_DAYS_PER_YEAR,
) -> pd.Series:
    """Annualized Sharpe ratio (risk-free 0) of each trailing ``window`` of daily returns:
    ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``; NaN until a window is full, and
    where the window's returns are all equal (std 0)."""
    rolling = returns.rolling(window, min_periods=window)
    std = rolling.std(ddof=1)
    sharpe: pd.Series = rolling.mean() / std.where(std > 0) * np.sqrt(periods_per_year)
    return sharpe
