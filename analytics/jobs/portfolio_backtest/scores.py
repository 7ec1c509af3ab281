"""The strategies' scores and who is eligible at a rebalance date (point in time).

Every look-back counts the symbol's own rows: row j is the symbol's j-th row, so ``lookback``
sessions back of a symbol that skipped a calendar day reach one calendar day further.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from analytics.errors import InputError
from analytics.jobs.portfolio_backtest.panel import FloatArray, IntArray, Panel

#: Rows of history behind --min-adv, the inverse-vol weights and the impact's sigma and ADV.
VOL_ROWS: Final = 20

#: Each strategy's parameters and their defaults (the issue's table).
DEFAULTS: Final[Mapping[str, Mapping[str, float]]] = {
    "xs-momentum": {"lookback": 252, "skip": 21, "quantile": 0.1, "rebalance": 21},
    "xs-reversal": {"lookback": 5, "quantile": 0.1, "rebalance": 5},
    "low-volatility": {"window": 63, "quantile": 0.2, "rebalance": 21},
}

#: The parameters the score depends on: combinations that share them share the score.
SCORE_PARAMS: Final[Mapping[str, tuple[str, ...]]] = {
    "xs-momentum": ("lookback", "skip"),
    "xs-reversal": ("lookback",),
    "low-volatility": ("window",),
}


@dataclass(frozen=True)
class Rules:
    """The job-level options shared by every combination of a run.

    Costs are in basis points of traded value (fees, slippage), a coefficient (impact) and basis
    points a year of the short market value (borrow, charged 1/252 a day).
    """

    direction: Literal["long", "long-short"] = "long"
    fill: Literal["next-open", "close"] = "next-open"
    weighting: Literal["equal", "inverse-vol"] = "equal"
    fees_bps: float = 0.0
    slippage_bps: float = 0.0
    impact_coefficient: float = 0.0
    borrow_bps: float = 0.0
    min_price: float = 0.0
    min_adv: float = 0.0

    def __post_init__(self) -> None:
        for name in ("fees_bps", "slippage_bps", "impact_coefficient", "borrow_bps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} is {value}; it must be a finite number >= 0")
        if self.direction not in ("long", "long-short"):
            raise InputError(f"direction is {self.direction!r}; use 'long' or 'long-short'")
        if self.fill not in ("next-open", "close"):
            raise InputError(f"fill is {self.fill!r}; use 'next-open' or 'close'")
        if self.weighting not in ("equal", "inverse-vol"):
            raise InputError(f"weighting is {self.weighting!r}; use 'equal' or 'inverse-vol'")

    @property
    def needs_sigma(self) -> bool:
        """Whether an eligible symbol needs its 20-row volatility (weights or impact)."""
        return self.weighting == "inverse-vol" or self.impact_coefficient > 0


def check_params(strategy: str, params: Mapping[str, float]) -> None:
    """Raise :class:`InputError` unless ``params`` is a valid combination of ``strategy``."""
    if strategy not in DEFAULTS:
        raise InputError(f"unknown strategy {strategy!r}; use one of {', '.join(DEFAULTS)}")
    if set(params) != set(DEFAULTS[strategy]):
        raise InputError(
            f"{strategy} takes parameters {sorted(DEFAULTS[strategy])}, got {sorted(params)}"
        )
    for name, value in params.items():
        integral = name != "quantile"
        if integral and (value != int(value) or value < 0):
            raise InputError(f"{strategy} {name} is {value}; it must be a whole number >= 0")
    if not 0 < params["quantile"] <= 1:
        raise InputError(f"{strategy} quantile is {params['quantile']}; it must be in (0, 1]")
    if params["rebalance"] < 1:
        raise InputError(f"{strategy} rebalance is {params['rebalance']}; it must be >= 1")
    if strategy == "xs-momentum" and not params["skip"] < params["lookback"]:
        raise InputError(
            f"xs-momentum needs skip < lookback, got skip {params['skip']} and lookback "
            f"{params['lookback']}"
        )
    if strategy == "xs-reversal" and params["lookback"] < 1:
        raise InputError("xs-reversal lookback must be >= 1")
    if strategy == "low-volatility" and params["window"] < 2:
        raise InputError(f"low-volatility window is {params['window']}; it needs >= 2 returns")


def history_rows(strategy: str, key: tuple[int, ...], rules: Rules) -> int:
    """The symbol's rows before t its eligibility needs (row number at t must be >= this).

    The score's history and, with ``--min-adv``, the 20 rows of its dollar volume: nothing for
    the weights or the impact (a name without a 20-return sigma is still eligible; see
    :func:`.selection.inverse_volatility` and :func:`.simulate.impact_bases`), so the rebalance
    schedule does not depend on ``--weighting`` or ``--impact-coefficient``.
    """
    need = key[0]  # lookback, or window (window returns need window + 1 rows)
    if rules.min_adv > 0:
        need = max(need, VOL_ROWS)
    return need


def _own(own: FloatArray, rows: IntArray) -> FloatArray:
    """own[rows[r, s], s] for (R, S) rows, with rows below 0 giving NaN."""
    out = np.take_along_axis(own, np.maximum(rows, 0), axis=0)
    return np.where(rows >= 0, out, np.nan)


def _raw_score(panel: Panel, strategy: str, key: tuple[int, ...], j: IntArray) -> FloatArray:
    """(R, S) score at own row j (NaN where the history is short)."""
    close = panel.own_close
    if strategy == "xs-momentum":
        lookback, skip = key
        ok = j >= lookback
        return np.where(ok, _own(close, j - skip) / _own(close, j - lookback) - 1.0, np.nan)
    if strategy == "xs-reversal":
        (lookback,) = key
        ok = j >= lookback
        return np.where(ok, -(_own(close, j) / _own(close, j - lookback) - 1.0), np.nan)
    (window,) = key
    out = np.full(j.shape, np.nan)
    back = np.arange(-window, 1)
    for r in range(j.shape[0]):
        rows = j[r][None, :] + back[:, None]  # (window + 1, S)
        c = _own(close, rows)
        ret = c[1:] / c[:-1] - 1.0
        with np.errstate(invalid="ignore"):
            std = np.std(ret, axis=0, ddof=1)
        out[r] = np.where(j[r] >= window, -std, np.nan)
    return out


@dataclass(frozen=True)
class Decision:
    """What is known at each decision date: scores (NaN = not eligible), sigma and ADV."""

    score: FloatArray  # (R, S)
    sigma: FloatArray  # (R, S) std (ddof=1) of the 20 returns of the 21 rows before t (NaN: fewer)
    adv: FloatArray  # (R, S) mean share volume of the 20 rows before t


def decide(
    panel: Panel, strategy: str, key: tuple[int, ...], rules: Rules, dates: IntArray
) -> Decision:
    """Scores of the eligible symbols at calendar indices ``dates`` (NaN elsewhere)."""
    j = panel.row_number[dates].astype(np.int64)
    score = _raw_score(panel, strategy, key, j)
    close_t = panel.close[dates]
    ok = panel.has_row[dates] & np.isfinite(score) & (close_t >= rules.min_price)
    ok &= j >= history_rows(strategy, key, rules)
    back = np.arange(-VOL_ROWS, 0)
    sigma = np.full(j.shape, np.nan)
    adv = np.full(j.shape, np.nan)
    dollar = np.full(j.shape, np.nan)
    # Only what the rules use: with zero costs, equal weights and no --min-adv, nothing.
    if rules.needs_sigma or rules.min_adv > 0:
        # Rows before t: j of them with a row at t, j + 1 without (its last row is before t:
        # a held symbol without a row on the decision day pays impact from those rows).
        before = j + 1 - panel.has_row[dates]
        for r in range(len(dates)):
            rows = before[r][None, :] + back[:, None]  # (20, S): the 20 rows before t
            vol = _own(panel.own_volume, rows)
            c = _own(panel.own_close, np.concatenate([rows[:1] - 1, rows]))
            adv[r] = np.mean(vol, axis=0)
            dollar[r] = np.mean(c[1:] * vol, axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                sigma[r] = np.std(c[1:] / c[:-1] - 1.0, axis=0, ddof=1)
    if rules.min_adv > 0:
        ok &= dollar >= rules.min_adv
    return Decision(np.where(ok, score, np.nan), sigma, adv)


def first_eligible(panel: Panel, strategy: str, key: tuple[int, ...], rules: Rules) -> int:
    """The first calendar index at which any symbol is eligible (-1 if none ever is)."""
    cheap = panel.has_row & (panel.row_number >= history_rows(strategy, key, rules))
    cheap &= panel.close >= rules.min_price
    candidates = np.flatnonzero(cheap.any(axis=1))
    block = 32
    for start in range(0, len(candidates), block):
        dates = candidates[start : start + block]
        found = np.isfinite(decide(panel, strategy, key, rules, dates).score).any(axis=1)
        if found.any():
            return int(dates[np.argmax(found)])
    return -1
