"""What a strategy is: a name, its parameters, and a pure function to target positions.

A strategy module defines one :class:`Strategy` named ``STRATEGY``; the registry in
:mod:`analytics.jobs.backtest.strategies` finds it, so adding a strategy touches no other file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.jobs.backtest.prices import PriceMatrix

Positions = npt.NDArray[np.int8]
Values = npt.NDArray[np.float64] | npt.NDArray[np.int64]
Combos = Mapping[str, Values]


@dataclass(frozen=True)
class Param:
    """One parameter of a strategy.

    ``kind`` is ``int`` or ``float``; ``default`` None makes the parameter required in the grid;
    ``minimum`` (inclusive) and ``above`` (exclusive) bound every value.
    """

    name: str
    kind: type[int] | type[float]
    help: str
    default: int | float | None = None
    minimum: float | None = None
    above: float | None = None


@dataclass(frozen=True)
class Strategy:
    """A named family of rules: ``positions(prices, combos, long_short) -> (days, K, symbols)``.

    ``positions`` returns the target position decided at each day's close: 1 long, 0 flat,
    -1 short (only when ``long_short``). ``combos`` maps every parameter name to an array of K
    values (one per combination). ``constraint`` returns which combinations are valid, with a
    sentence saying what it requires.
    """

    name: str
    help: str
    params: tuple[Param, ...]
    positions: Callable[[PriceMatrix, Combos, bool], Positions]
    constraint: Callable[[Combos], npt.NDArray[np.bool_]] | None = None
    constraint_text: str = ""

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


def hold_between(lo: Positions, hi: Positions) -> Positions:
    """Positions of a rule with memory: each day ``clip(yesterday's position, lo, hi)``.

    ``lo == hi`` sets the position; ``lo=-1, hi=1`` holds it; ``lo=0, hi=1`` closes a short
    only. Starts flat. The loop runs over days, each step vectorized over all other axes.
    """
    out = np.empty_like(lo)
    np.clip(np.zeros_like(lo[0]), lo[0], hi[0], out=out[0])
    for day in range(1, len(lo)):
        np.clip(out[day - 1], lo[day], hi[day], out=out[day])
    return out
