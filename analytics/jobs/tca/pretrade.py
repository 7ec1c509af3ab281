"""The pre-trade cost model (the square-root law) and the daily statistics it needs.

For an order of quantity Q on date D in a symbol:

- ADV = the mean daily ``volume`` of the symbol's rows of ``prices/`` dated in the
  :data:`ADV_SESSIONS` exchange sessions before D (fewer rows when it has fewer; NaN with none);
- sigma = the standard deviation (ddof=1) of the symbol's last 20 simple close-to-close returns
  before D: the returns between its last :data:`SIGMA_SESSIONS` rows dated before D, looked for
  in the :data:`SIGMA_LOOKBACK_SESSIONS` sessions before D (fewer when it has fewer; NaN under
  2). A session without a row makes the next return span it, as a halt does;
- ``expected_cost_bps = half_spread_bps + Y * sigma * sqrt(Q / ADV) * 1e4``, half_spread_bps =
  (ask - bid) / 2 / mid * 1e4 of the quote prevailing at arrival, Y the impact coefficient
  (``--impact-coefficient``, default 1.0). NaN when any input is NaN or ADV is not positive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.errors import InputError

F64 = npt.NDArray[np.float64]

BPS: Final = 1e4
ADV_SESSIONS: Final = 20
#: One more row than returns: 20 returns need 21 closes.
SIGMA_SESSIONS: Final = ADV_SESSIONS + 1
#: How far back a symbol's last 21 rows are looked for (a symbol with gaps reaches back).
SIGMA_LOOKBACK_SESSIONS: Final = 2 * SIGMA_SESSIONS
STAT_COLUMNS: Final = ("symbol", "adv", "sigma")
PRICE_COLUMNS: Final = ("symbol", "date", "close", "volume")


def expected_cost_bps(
    half_spread_bps: F64, sigma: F64, quantity: F64, adv: F64, *, impact_coefficient: float
) -> F64:
    """``half_spread_bps + Y * sigma * sqrt(quantity / adv) * 1e4`` (NaN where adv <= 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(adv > 0, quantity / np.where(adv > 0, adv, 1.0), np.nan)
        return np.asarray(
            half_spread_bps + impact_coefficient * sigma * np.sqrt(ratio) * BPS, dtype=np.float64
        )


def session_windows(
    days: Sequence[dt.date], sessions: Sequence[dt.date]
) -> dict[dt.date, tuple[dt.date, ...]]:
    """For each of ``days``, the last :data:`SIGMA_LOOKBACK_SESSIONS` of ``sessions`` (sorted)
    before it; the last :data:`ADV_SESSIONS` of them are the ADV window."""
    ordered = sorted(sessions)
    out = {}
    for day in days:
        before = [s for s in ordered if s < day]
        out[day] = tuple(before[-SIGMA_LOOKBACK_SESSIONS:])
    return out


def _reject_duplicates(prices: pd.DataFrame) -> None:
    dup = prices.duplicated(["symbol", "date"], keep=False).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise InputError(
            f"{int(dup.sum())} prices rows repeat a (symbol, date); first "
            f"{prices['symbol'].iloc[i]!s} on {prices['date'].iloc[i]}",
            dataset="prices",
            column="symbol, date",
        )


def price_stats(
    prices: pd.DataFrame, windows: Mapping[dt.date, Sequence[dt.date]]
) -> dict[dt.date, pd.DataFrame]:
    """Per order date, one row per symbol of ``prices`` with rows in its window: ``symbol``,
    ``adv`` and ``sigma`` (module docstring). ``prices`` has :data:`PRICE_COLUMNS`."""
    frame = prices.assign(
        symbol=prices["symbol"].astype(str),
        date=pd.to_datetime(prices["date"]).dt.date,
    )
    _reject_duplicates(frame)
    frame = frame.sort_values(["symbol", "date"], kind="stable")
    out = {}
    for day, window in windows.items():
        rows = frame[frame["date"].isin(set(window))]
        adv_rows = rows[rows["date"].isin(set(window[-ADV_SESSIONS:]))]
        adv = adv_rows.groupby("symbol", sort=True)["volume"].mean()
        last = rows.groupby("symbol", sort=False).tail(SIGMA_SESSIONS)
        previous = last.groupby("symbol", sort=False)["close"].shift(1)
        returns = (last["close"] / previous - 1.0).rename("r")
        sigma = returns.groupby(last["symbol"], sort=True).std(ddof=1)
        counts = returns.groupby(last["symbol"], sort=True).count()
        sigma = sigma.where(counts >= 2)
        symbols = sorted(set(rows["symbol"]))
        out[day] = pd.DataFrame(
            {
                "symbol": symbols,
                "adv": adv.reindex(symbols).to_numpy(dtype=np.float64),
                "sigma": sigma.reindex(symbols).to_numpy(dtype=np.float64),
            }
        )
    return out
