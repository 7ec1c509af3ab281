"""``sma-cross``: in the market while the fast moving average is above the slow one.

Long: 1 while ``sma(fast) > sma(slow)``, both defined (``slow`` rows of the symbol), else 0.
Long-short: 1 above, -1 below, 0 when equal or undefined. Requires ``fast < slow``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analytics.jobs.backtest.prices import PriceMatrix
from analytics.jobs.backtest.strategies._base import Combos, Param, Positions, Strategy


def positions(prices: PriceMatrix, combos: Combos, long_short: bool) -> Positions:
    fast, slow = combos["fast"], combos["slow"]
    days, symbols = prices.shape
    out = np.empty((days, len(fast), symbols), dtype=np.int8)
    above = out.view(np.bool_)  # written as booleans (no cast), read as 0/1
    for k in range(len(fast)):
        f, s = prices.sma(int(fast[k])), prices.sma(int(slow[k]))
        np.greater(f, s, out=above[:, k, :])
        if long_short:
            np.subtract(out[:, k, :], np.less(f, s).view(np.int8), out=out[:, k, :])
    return out


def constraint(combos: Combos) -> npt.NDArray[np.bool_]:
    return np.asarray(combos["fast"] < combos["slow"])


STRATEGY = Strategy(
    name="sma-cross",
    help="long while the fast simple moving average of the close is above the slow one",
    params=(
        Param("fast", int, "fast moving-average window (sessions)", minimum=1),
        Param("slow", int, "slow moving-average window (sessions)", minimum=2),
    ),
    positions=positions,
    constraint=constraint,
    constraint_text="fast < slow",
)
