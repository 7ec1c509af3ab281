"""The execution model's inputs: how orders fill, and what each symbol's prices say about it.

The model (``docs/jobs/backtest.md``):

- the target is decided at day t's close; it fills at day t+1's open (``next-open``) or at day
  t's close (``close``); a day without a row (NaN price) fills nothing: the order waits for the
  symbol's next row;
- each column starts with 1.0 of cash and goes all in. The fill price is ``price * (1 + slip)``
  for a buy and ``* (1 - slip)`` for a sale; a buy gets ``shares = cash / (fill * (1 + fee))``,
  a sale gets ``shares * fill * (1 - fee)``. A short sale is sized like a buy (``q = cash /
  (fill * (1 + fee))``, ``cash += q * fill * (1 - fee)``) and covered by a buy; a reversal is a
  sale then a buy (or the reverse) at the same fill;
- equity each day is ``cash + shares * close``, on the symbol's own rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt

from analytics.jobs.backtest.prices import PriceMatrix

FloatArray = npt.NDArray[np.float64]
Held = npt.NDArray[np.int8]

Fill = Literal["next-open", "close"]


@dataclass(frozen=True)
class Execution:
    """How orders fill: ``fill`` mode, shorts allowed, fee and slippage as fractions."""

    fill: Fill = "next-open"
    long_short: bool = False
    fee: float = 0.0
    slippage: float = 0.0


@dataclass(frozen=True)
class Market:
    """Per-symbol ``(days, symbols)`` inputs of the simulation, computed once per price matrix.

    ``price`` is the fill price before slippage; ``hold`` the growth of a held long position
    over the day (``close / previous close``); ``before`` the growth from the previous close to
    the fill; ``after`` from the fill to the close (``hold = before * after``). They are 1 on a
    day without a row, so a held position neither gains nor loses then.
    """

    price: FloatArray
    hold: FloatArray
    before: FloatArray
    after: FloatArray
    close: FloatArray

    # Computed once per price matrix, not once per block of combinations: a fresh days x
    # symbols array costs a page fault per 4 KiB where freed memory goes back to the system at
    # once (Dask's workers set MALLOC_TRIM_THRESHOLD_=65536).
    @cached_property
    def gain(self) -> FloatArray:
        """A held long position's return over the day (``hold - 1``)."""
        return self.hold - 1.0

    @cached_property
    def loss(self) -> FloatArray:
        """The day's return of a held long position where negative, else 0."""
        return np.minimum(self.gain, 0.0)


def market(prices: PriceMatrix, fill: Fill) -> Market:
    close = prices.close
    previous = np.full_like(close, np.nan)
    previous[1:] = prices.close_filled[:-1]
    valid = prices.valid
    with np.errstate(invalid="ignore", divide="ignore"):
        hold = np.where(valid & ~np.isnan(previous), close / previous, 1.0)
        if fill == "close":
            price, before, after = close, hold, np.ones_like(close)
        else:
            price = prices.open
            before = np.where(valid & ~np.isnan(previous), prices.open / previous, 1.0)
            after = np.where(valid, close / prices.open, 1.0)
    return Market(price, hold, before, after, np.nan_to_num(prices.close_filled))


def held_positions(targets: Held, prices: PriceMatrix, fill: Fill) -> Held:
    """The position held at each day's close, given the targets decided at each close.

    With ``next-open`` the target of the symbol's previous row fills at the open; on a day
    without a row nothing fills, so the position of the symbol's previous row carries over.
    """
    if fill == "close":
        return targets
    held = np.empty_like(targets)
    held[0] = 0
    held[1:] = targets[:-1]
    gaps = prices.gaps
    for day in np.flatnonzero(gaps.any(axis=1)):
        columns = np.flatnonzero(gaps[day])
        held[day][:, columns] = held[day - 1][:, columns]
    return held
