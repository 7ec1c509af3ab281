"""The strategies' parameters as grid families (``--grid`` has backtest's syntax and limits).

The defaults are the kernel's (:data:`.scores.DEFAULTS`); the bounds the grid checks before any
cluster starts are the ones :func:`.scores.check_params` enforces, so a grid that passes here
never fails in a task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.errors import InputError
from analytics.jobs.backtest.grid import build_combinations
from analytics.jobs.backtest.strategies._base import Combos, Param
from analytics.jobs.portfolio_backtest.scores import DEFAULTS

_QUANTILE = "fraction of the eligible names held long (k = ceil(quantile x n))"
_REBALANCE = "sessions between rebalances"


@dataclass(frozen=True)
class Family:
    """A strategy's name, its parameters, and the combinations it refuses (``constraint``)."""

    name: str
    params: tuple[Param, ...]
    constraint: Callable[[Combos], npt.NDArray[np.bool_]] | None = None
    constraint_text: str = ""

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


def _params(strategy: str, helps: Mapping[str, tuple[str, float]]) -> tuple[Param, ...]:
    out = []
    for name, (text, low) in helps.items():
        kind: type[int] | type[float] = float if name == "quantile" else int
        default = DEFAULTS[strategy][name]
        if name == "quantile":
            out.append(Param(name, kind, text, default, above=0.0))
        else:
            out.append(Param(name, kind, text, int(default), minimum=low))
    return tuple(out)


def _skip_below_lookback(combos: Combos) -> npt.NDArray[np.bool_]:
    return np.asarray(combos["skip"] < combos["lookback"])


FAMILIES: Mapping[str, Family] = {
    "xs-momentum": Family(
        "xs-momentum",
        _params(
            "xs-momentum",
            {
                "lookback": ("sessions back of the first close", 1),
                "skip": ("most recent sessions left out", 0),
                "quantile": (_QUANTILE, 0),
                "rebalance": (_REBALANCE, 1),
            },
        ),
        _skip_below_lookback,
        "skip < lookback",
    ),
    "xs-reversal": Family(
        "xs-reversal",
        _params(
            "xs-reversal",
            {
                "lookback": ("sessions of the return reversed", 1),
                "quantile": (_QUANTILE, 0),
                "rebalance": (_REBALANCE, 1),
            },
        ),
    ),
    "low-volatility": Family(
        "low-volatility",
        _params(
            "low-volatility",
            {
                "window": ("daily returns in the volatility", 2),
                "quantile": (_QUANTILE, 0),
                "rebalance": (_REBALANCE, 1),
            },
        ),
    ),
}


def combinations(strategy: str, grid: list[str], *, say_refused: bool = False) -> Combos:
    """The sweep's combinations (name -> K values), or :class:`InputError` naming the fault
    (``say_refused``: log those the strategy's rule leaves out)."""
    combos = build_combinations(FAMILIES[strategy], grid, say_refused=say_refused)
    if np.any(combos["quantile"] > 1):
        bad = float(np.max(combos["quantile"]))
        raise InputError(f"--grid quantile has {bad:g}; a quantile must be in (0, 1]")
    return combos


def as_dicts(combos: Combos) -> list[dict[str, float]]:
    """The combinations as the kernel takes them: one mapping per combination."""
    names = list(combos)
    columns = [np.asarray(combos[n]).tolist() for n in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
