"""Daily position snapshots of four model portfolios over the generated symbols.

Each portfolio holds 20 to 60 names (fewer when the universe is smaller), never the benchmark.
Quantities are whole shares and stay fixed between rebalances, which come every 15 to 42
sessions: the weights drift a little, and now and then one to three names are swapped. A
rebalance keeps the portfolio's value (it is self-financing). ``LONG_SHORT`` runs 130/30: about a
third of its names are short, and its net value stays positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from analytics.generate.daily import Universe, YearPrices

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PortfolioSpec:
    name: str
    #: Starting net value in dollars.
    capital: float
    #: Which names it prefers: "broad" (liquid), "growth" (high beta), "value" (low beta),
    #: "long_short" (any, some of them short).
    style: str


#: In name order, which is the order of the rows of a date.
PORTFOLIOS: Final = (
    PortfolioSpec("GLOBAL_EQ", 5e8, "broad"),
    PortfolioSpec("LONG_SHORT", 1e8, "long_short"),
    PortfolioSpec("TECH_GROWTH", 2e8, "growth"),
    PortfolioSpec("VALUE", 3e8, "value"),
)
MIN_NAMES: Final = 20
MAX_NAMES: Final = 60
REBALANCE_EVERY: Final = (15, 43)  # sessions, drawn uniformly in [low, high)
SWAP_PROBABILITY: Final = 0.3
SHORT_SHARE: Final = 0.35
LONG_GROSS, SHORT_GROSS = 1.3, 0.3


@dataclass
class Holding:
    """One portfolio's current book: sorted column indices and signed whole-share quantities."""

    members: I64
    weights: F64
    signs: F64
    quantity: F64
    next_rebalance: int


@dataclass(frozen=True)
class PositionRows:
    """Rows of the ``positions`` dataset as index arrays, sorted by (date, portfolio, symbol)."""

    day: I64
    portfolio: I64
    symbol: I64
    quantity: F64


class PositionBook:
    """The four portfolios, carried from one simulated year to the next."""

    def __init__(self, rng: np.random.Generator, universe: Universe) -> None:
        self._rng = rng
        self._universe = universe
        self._holdings: list[Holding | None] = [None] * len(PORTFOLIOS)

    def year_rows(self, year: YearPrices, first_session: int) -> PositionRows:
        """Snapshots for every session of ``year`` (whose first global index is given)."""
        n_days = len(year.dates)
        parts: list[tuple[I64, I64, I64, F64]] = []
        for p, spec in enumerate(PORTFOLIOS):
            t = 0
            while t < n_days:
                holding = self._holdings[p]
                if holding is None or first_session + t >= holding.next_rebalance:
                    holding = self._rebalance(spec, holding, year, t, first_session + t)
                    self._holdings[p] = holding
                stop = min(n_days, holding.next_rebalance - first_session)
                block = year.present[t:stop][:, holding.members]
                days, which = np.nonzero(block)
                parts.append(
                    (
                        (days + t).astype(np.int64),
                        np.full(len(days), p, dtype=np.int64),
                        holding.members[which],
                        holding.quantity[which],
                    )
                )
                t = stop
        day, port, sym, qty = (np.concatenate(cols) for cols in zip(*parts, strict=True))
        order = np.lexsort((sym, port, day))
        return PositionRows(day[order], port[order], sym[order], qty[order])

    def _weights_for(self, spec: PortfolioSpec, candidates: I64) -> F64:
        u = self._universe
        if spec.style == "growth":
            raw = u.beta[candidates] ** 4
        elif spec.style == "value":
            raw = u.beta[candidates] ** -4
        elif spec.style == "broad":
            raw = np.sqrt(u.dollar_volume[candidates])
        else:
            raw = np.ones(len(candidates))
        return np.asarray(raw / raw.sum(), dtype=np.float64)

    def _pick(self, spec: PortfolioSpec, candidates: I64, k: int) -> I64:
        k = min(k, len(candidates))
        if k == 0:
            return np.empty(0, dtype=np.int64)
        p = self._weights_for(spec, candidates)
        return np.asarray(self._rng.choice(candidates, size=k, replace=False, p=p), np.int64)

    def _rebalance(
        self,
        spec: PortfolioSpec,
        holding: Holding | None,
        year: YearPrices,
        t: int,
        session: int,
    ) -> Holding:
        rng = self._rng
        eligible = self._universe.stocks[year.present[t, self._universe.stocks]]
        close = year.close[t]
        if holding is None or len(holding.members) == 0:
            value = spec.capital
            members = np.sort(
                self._pick(spec, eligible, int(rng.integers(MIN_NAMES, MAX_NAMES + 1)))
            )
            weights = rng.uniform(0.5, 1.5, len(members))
            signs = self._signs(spec, len(members))
        else:
            value = float(holding.quantity @ close[holding.members])
            if value <= 0.0:  # a short squeeze wiped the book out: start again from capital
                value = spec.capital
            members, weights, signs = holding.members, holding.weights, holding.signs
            weights = weights * np.exp(rng.normal(0.0, 0.1, len(weights)))
            outside = np.setdiff1d(eligible, members)
            if len(outside) and rng.random() < SWAP_PROBABILITY:
                k = min(int(rng.integers(1, 4)), len(outside), len(members) - 1)
                if k > 0:
                    keep = np.sort(rng.choice(len(members), len(members) - k, replace=False))
                    new = self._pick(spec, outside, k)
                    members = np.concatenate([members[keep], new])
                    weights = np.concatenate([weights[keep], rng.uniform(0.5, 1.5, k)])
                    signs = np.concatenate(
                        [signs[keep], self._signs(spec, k, existing=signs[keep])]
                    )
                    order = np.argsort(members)
                    members, weights, signs = members[order], weights[order], signs[order]
        quantity = self._quantities(weights, signs, close[members], value)
        step = int(rng.integers(*REBALANCE_EVERY)) if len(members) else 1
        return Holding(members, weights, signs, quantity, session + step)

    def _signs(self, spec: PortfolioSpec, k: int, existing: F64 | None = None) -> F64:
        """Signs of ``k`` new names: all long, except in the long/short book, which keeps at
        least one name on each side."""
        signs = np.ones(k)
        if spec.style != "long_short" or k == 0:
            return signs
        signs[self._rng.random(k) < SHORT_SHARE] = -1.0
        book = signs if existing is None else np.concatenate([existing, signs])
        if len(book) >= 2:
            if not (book < 0).any():
                signs[0] = -1.0
            if not (np.concatenate([book[: len(book) - k], signs]) > 0).any():
                signs[-1] = 1.0
        return signs

    @staticmethod
    def _quantities(weights: F64, signs: F64, prices: F64, value: float) -> F64:
        """Whole shares (at least one) worth ``weights`` of the long and short gross values."""
        longs, shorts = signs > 0, signs < 0
        if shorts.any():
            gross = np.where(longs, LONG_GROSS * value, SHORT_GROSS * value)
            side_total = np.where(longs, weights[longs].sum(), weights[shorts].sum())
        else:
            gross, side_total = np.full(len(weights), value), np.full(len(weights), weights.sum())
        shares = np.maximum(np.round(gross * weights / side_total / prices), 1.0)
        return np.asarray(signs * shares, dtype=np.float64)
