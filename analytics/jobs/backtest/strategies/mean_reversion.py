"""``mean-reversion``: trade the z-score of the close against its rolling mean and std.

``z = (close - mean) / std`` over the last ``window`` sessions (population std). Long: enter
when ``z < -entry_z``, exit when ``z >= -exit_z``, hold in between. Long-short adds the mirror
image: enter short when ``z > entry_z``, exit when ``z <= exit_z``. An undefined z (window not
full, constant window) holds the position. Requires ``0 <= exit_z < entry_z``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analytics.jobs.backtest.prices import PriceMatrix
from analytics.jobs.backtest.strategies._base import (
    Combos,
    Param,
    Positions,
    Strategy,
    hold_between,
)


def positions(prices: PriceMatrix, combos: Combos, long_short: bool) -> Positions:
    window, entry, exit_ = combos["window"], combos["entry_z"], combos["exit_z"]
    days, symbols = prices.shape
    lo = np.full((days, len(window), symbols), -1, dtype=np.int8)
    hi = np.ones_like(lo)
    for k in range(len(window)):
        z = prices.zscore(int(window[k]))
        # (lo, hi) per band of z, from the bottom; NaN z is in no band and holds.
        bands = [(z < -entry[k], 1, 1)]
        if long_short:
            bands += [
                ((z >= -entry[k]) & (z < -exit_[k]), 0, 1),  # a short closes, a long holds
                ((z >= -exit_[k]) & (z <= exit_[k]), 0, 0),
                ((z > exit_[k]) & (z <= entry[k]), -1, 0),  # a long closes, a short holds
                (z > entry[k], -1, -1),
            ]
        else:
            bands.append((z >= -exit_[k], 0, 0))
        for band, low, high in bands:
            lo[:, k, :][band] = low
            hi[:, k, :][band] = high
    return hold_between(lo, hi)


def constraint(combos: Combos) -> npt.NDArray[np.bool_]:
    return np.asarray((combos["exit_z"] >= 0) & (combos["exit_z"] < combos["entry_z"]))


STRATEGY = Strategy(
    name="mean-reversion",
    help="long when the close's z-score falls below -entry_z, out when it is back above -exit_z",
    params=(
        Param("window", int, "window of the rolling mean and std (sessions)", minimum=2),
        Param("entry_z", float, "z-score that opens a position", default=2.0, above=0.0),
        Param("exit_z", float, "z-score that closes it", default=0.0, minimum=0.0),
    ),
    positions=positions,
    constraint=constraint,
    constraint_text="0 <= exit_z < entry_z",
)
