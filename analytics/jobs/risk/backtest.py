"""VaR backtesting of the risk job: yesterday's VaR of yesterday's book against today's P&L.

For each backtest day ``d`` (a session of the prices' calendar) with previous session ``d-1``:
the portfolio's latest positions on or before ``d-1``, valued at ``d-1``'s closes (a halted
symbol at its last close; one never priced has no exposure), give exposures ``w``; each method's
one-day VaR at ``d-1`` is computed over the ``lookback`` daily returns ending at ``d-1``; the
realised P&L is ``pnl_d = sum_i w_i r_i,d``; an exception is ``-pnl_d > var``.

The work is one Dask task per portfolio and chunk of days (:func:`backtest_chunk`), each calling
the pure :func:`backtest_day` per day; :func:`summarize` turns the exceptions into the tests of
:mod:`analytics.stats.var`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.jobs.risk import kernel as rk
from analytics.jobs.risk.kernel import Array
from analytics.stats import var as sv

BACKTEST_TABLE: Final = "var_backtest"
EXCEPTIONS_TABLE: Final = "var_exceptions"
#: Backtest days per task: a few tasks per portfolio keeps the cores busy without small tasks.
CHUNK_DAYS: Final = 50
EXCEPTION_COLUMNS: Final = (
    "portfolio",
    "method",
    "confidence",
    "date",
    "pnl",
    "var",
    "exception",
)
BACKTEST_COLUMNS: Final = (
    "portfolio",
    "method",
    "confidence",
    "n_days",
    "exceptions",
    "exception_rate",
    "expected",
    "kupiec_lr",
    "kupiec_p",
    "christoffersen_lr",
    "christoffersen_p",
    "cc_lr",
    "cc_p",
    "traffic_light",
)


@dataclass(frozen=True)
class BacktestChunk:
    """What one task needs: a portfolio's returns on the symbols it held in the chunk (rows:
    consecutive sessions, enough before the first day for its lookback), the row of each day's
    realised return, and the exposures at each day's previous session."""

    portfolio: str
    dates: tuple[dt.date, ...]
    returns: Array
    realised_rows: tuple[int, ...]
    exposures: Array
    #: True where a holding has a real return (same shape as ``returns``): FHS filters only
    #: those; None: every return is real.
    observed: npt.NDArray[np.bool_] | None = None


def backtest_day(
    window: Array,
    exposures: Array,
    realised: Array,
    methods: Sequence[str],
    confidences: Sequence[float],
    *,
    lam: float,
    observed: npt.NDArray[np.bool_] | None = None,
) -> tuple[float, dict[tuple[str, float], float]]:
    """The realised P&L ``realised @ exposures`` and each (method, confidence) one-day VaR of
    ``exposures`` over the scenario returns ``window`` (``observed``: where they are real)."""
    risks = rk.model_risks(methods, window, exposures, confidences, lam=lam, observed=observed)
    return float(realised @ exposures), {key: risk.var for key, risk in risks.items()}


def backtest_chunk(
    chunk: BacktestChunk,
    *,
    lookback: int,
    methods: Sequence[str],
    confidences: Sequence[float],
    lam: float,
) -> pd.DataFrame:
    """The ``var_exceptions`` rows of one chunk (runs in a Dask task)."""
    rows: list[tuple[Any, ...]] = []
    for date, row, exposures in zip(chunk.dates, chunk.realised_rows, chunk.exposures, strict=True):
        low = max(0, row - lookback)
        window = chunk.returns[low:row]
        seen = chunk.observed[low:row] if chunk.observed is not None else None
        pnl, var = backtest_day(
            window, exposures, chunk.returns[row], methods, confidences, lam=lam, observed=seen
        )
        rows += [(chunk.portfolio, m, c, date, pnl, v, -pnl > v) for (m, c), v in var.items()]
    return pd.DataFrame(rows, columns=list(EXCEPTION_COLUMNS))


def plan_chunks(
    positions: pd.DataFrame,
    closes: pd.DataFrame,
    returns: Array,
    *,
    days: int,
    lookback: int,
    min_days: int,
    chunk_days: int = CHUNK_DAYS,
    observed: npt.NDArray[np.bool_] | None = None,
) -> list[BacktestChunk]:
    """The chunks of the last ``days`` sessions of ``closes`` (rows: sessions, oldest first;
    columns: symbols) that have at least ``min_days`` returns before them. ``returns`` is
    :func:`~analytics.jobs.risk.kernel.scenario_returns` of ``closes`` (row ``j - 1`` is session
    ``j``'s return); ``positions`` has date, portfolio, symbol, quantity."""
    sessions = [t.date() for t in closes.index]
    first = max(len(sessions) - days, min_days + 1, 1)
    backtest = range(first, len(sessions))
    if not backtest:
        return []
    filled = closes.ffill().to_numpy(dtype=np.float64)
    column = {str(s): i for i, s in enumerate(closes.columns)}
    chunks: list[BacktestChunk] = []
    for portfolio, group in positions.groupby("portfolio", sort=True, observed=True):
        book = group.pivot_table(
            index="date", columns="symbol", values="quantity", aggfunc="sum", observed=True
        ).fillna(0.0)
        symbols = [str(c) for c in book.columns]
        priced = np.array([s in column for s in symbols])
        quantities = book.to_numpy(dtype=np.float64)[:, priced]
        book_cols = np.array([column[s] for s, p in zip(symbols, priced, strict=True) if p])
        prev = closes.index[[j - 1 for j in backtest]]
        snapshot_at = pd.DatetimeIndex(book.index).searchsorted(prev, "right") - 1
        # A day before the portfolio's first snapshot is not backtested.
        days_held = [(j, int(i)) for j, i in zip(backtest, snapshot_at, strict=True) if i >= 0]
        for start in range(0, len(days_held), chunk_days):
            js = np.array([j for j, _ in days_held[start : start + chunk_days]])
            picks = np.array([i for _, i in days_held[start : start + chunk_days]])
            q = quantities[picks]
            held = (q != 0).any(axis=0)
            cols = book_cols[held]
            low = max(0, int(js[0]) - 1 - lookback)
            chunks.append(
                BacktestChunk(
                    portfolio=str(portfolio),
                    dates=tuple(sessions[j] for j in js),
                    returns=np.ascontiguousarray(returns[low : js[-1], cols]),
                    realised_rows=tuple(int(j) - 1 - low for j in js),
                    exposures=np.nan_to_num(q[:, held] * filled[js[:, None] - 1, cols[None, :]]),
                    observed=(
                        np.ascontiguousarray(observed[low : js[-1], cols])
                        if observed is not None
                        else None
                    ),
                )
            )
    return chunks


def summarize(exceptions: pd.DataFrame) -> pd.DataFrame:
    """The ``var_backtest`` rows: per portfolio, method and confidence, the exception count,
    rate and expected count ``n_days * (1 - c)``, the Kupiec, Christoffersen and conditional
    coverage tests over the days in date order, and the Basel traffic light."""
    rows = []
    ordered = exceptions.sort_values(["portfolio", "method", "confidence", "date"])
    for (portfolio, method, _), group in ordered.groupby(
        ["portfolio", "method", "confidence"], sort=True
    ):
        hits = group["exception"].to_numpy(dtype=bool)
        n, x, confidence = len(hits), int(hits.sum()), float(group["confidence"].iloc[0])
        pof = sv.kupiec_pof(hits, confidence)
        ind = sv.christoffersen_independence(hits)
        cc = sv.conditional_coverage(hits, confidence)
        rows.append(
            (
                portfolio,
                method,
                confidence,
                n,
                x,
                x / n,
                n * (1.0 - confidence),
                pof.lr,
                pof.p,
                ind.lr,
                ind.p,
                cc.lr,
                cc.p,
                sv.traffic_light(x, n, confidence),
            )
        )
    return pd.DataFrame(rows, columns=list(BACKTEST_COLUMNS))
