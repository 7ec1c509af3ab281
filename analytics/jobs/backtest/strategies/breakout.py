"""``breakout``: a Donchian channel of the closes.

The channel is the highest and the lowest close of the ``window`` sessions before the day.
Long: enter when the close is above the channel, exit when it is below, hold inside. Long-short:
above goes long, below goes short (stop and reverse), inside holds. Flat until the channel
exists.
"""

from __future__ import annotations

import numpy as np

from analytics.jobs.backtest.prices import PriceMatrix
from analytics.jobs.backtest.strategies._base import (
    Combos,
    Param,
    Positions,
    Strategy,
    hold_between,
)


def positions(prices: PriceMatrix, combos: Combos, long_short: bool) -> Positions:
    window = combos["window"]
    days, symbols = prices.shape
    close = prices.close_filled
    lo = np.full((days, len(window), symbols), -1, dtype=np.int8)
    hi = np.ones_like(lo)
    below_value = -1 if long_short else 0
    for k in range(len(window)):
        upper, lower = prices.channel(int(window[k]))
        up, down = close > upper, close < lower
        lo[:, k, :][up] = 1
        hi[:, k, :][down] = below_value
        lo[:, k, :][down] = below_value
    return hold_between(lo, hi)


STRATEGY = Strategy(
    name="breakout",
    help="long above the Donchian channel of the last N closes, out (or short) below it",
    params=(Param("window", int, "channel window (sessions)", minimum=1),),
    positions=positions,
)
