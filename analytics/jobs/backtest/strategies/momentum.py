"""``momentum``: in the market while the lookback return exceeds a threshold.

The lookback return ``close / close lookback sessions earlier - 1`` is read on the symbol's
sessions ``lookback``, ``lookback + rebalance``, ... and the position held in between. Long: 1
while it is above ``threshold``, else 0. Long-short: 1 above ``threshold``, -1 below
``-threshold`` (when not long), else 0. Flat before the first reading.
"""

from __future__ import annotations

import numpy as np

from analytics.jobs.backtest.prices import PriceMatrix
from analytics.jobs.backtest.strategies._base import Combos, Param, Positions, Strategy


def positions(prices: PriceMatrix, combos: Combos, long_short: bool) -> Positions:
    lookback, every, threshold = combos["lookback"], combos["rebalance"], combos["threshold"]
    days, symbols = prices.shape
    out = np.zeros((days, len(lookback), symbols), dtype=np.int8)
    for k in range(len(lookback)):
        ret = prices.lookback_return(int(lookback[k]), int(every[k]))
        long = ret > threshold[k]
        out[:, k, :] = long
        if long_short:
            out[:, k, :] -= (ret < -threshold[k]) & ~long
    return out


STRATEGY = Strategy(
    name="momentum",
    help="long while the lookback return is above a threshold, re-read every k sessions",
    params=(
        Param("lookback", int, "lookback of the return (sessions)", minimum=1),
        Param("rebalance", int, "sessions between readings of the signal", default=1, minimum=1),
        Param("threshold", float, "return the lookback return must exceed", default=0.0),
    ),
    positions=positions,
)
