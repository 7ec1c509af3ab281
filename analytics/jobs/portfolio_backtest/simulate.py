"""The execution kernel: many combinations of one strategy over one panel, vectorized.

Combinations that share the score's parameters (xs-momentum's lookback and skip, say) share
their scores, eligibility, ranks and start date, and are simulated together as the rows of
(combinations x symbols) arrays over the union of their fill days, each combination trading
only on its own. Holdings change only on event days (fills, a pending trade of a symbol that had
no row on a fill day, a forced sale before a delisting); between two events the equity of every
combination is one matrix product of the last closes and the held shares, and the borrow charge
one more.

Per day, in this order: trades at the fill price (a rebalance, or the pending trades of symbols
that have their next row), forced sales at the close of symbols whose last row this is, borrow
on the shorts at the close, equity = cash + shares x last close.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analytics.constants import TRADING_DAYS_PER_YEAR
from analytics.jobs.portfolio_backtest.panel import FloatArray, IntArray, Panel
from analytics.jobs.portfolio_backtest.scores import (
    SCORE_PARAMS,
    Rules,
    check_params,
    decide,
    first_eligible,
)
from analytics.jobs.portfolio_backtest.selection import (
    inverse_volatility,
    long_count,
    rankings,
    weights_from_ranks,
)

#: The starting capital; costs are reported over it.
INITIAL_CAPITAL = 1.0


@dataclass(frozen=True)
class Holdings:
    """Holdings at the panel's last close: shares, value = shares x close, value / equity."""

    symbols: np.ndarray
    shares: FloatArray
    value: FloatArray
    weight: FloatArray


@dataclass(frozen=True)
class Run:
    """One combination's backtest. ``equity`` and ``returns`` start on the first fill's day."""

    params: Mapping[str, float]
    first_fill: int  # calendar index of the first fill; -1 when there is none
    equity: FloatArray
    returns: FloatArray
    turnover: float
    avg_long: float
    avg_short: float
    cost_fees: float
    cost_slippage: float
    cost_impact: float
    cost_borrow: float
    n_rebalances: int
    holdings: Holdings | None


def rebalance_schedule(
    start: int, period: int, n_dates: int, fill: str
) -> tuple[IntArray, IntArray]:
    """Decision and fill indices: every ``period`` sessions from ``start``; fills in range."""
    if start < 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    decisions = np.arange(start, n_dates, period, dtype=np.int64)
    fills = decisions + (1 if fill == "next-open" else 0)
    keep = fills < n_dates
    return decisions[keep], fills[keep]


def simulate(
    panel: Panel,
    strategy: str,
    combos: Sequence[Mapping[str, float]],
    rules: Rules,
    *,
    holdings: bool = False,
) -> list[Run]:
    """Backtest every combination of ``strategy`` in ``combos`` over ``panel``.

    Parameters
    ----------
    panel : Panel
        Dates x symbols of open, close, volume.
    strategy : str
        ``xs-momentum``, ``xs-reversal`` or ``low-volatility``.
    combos : sequence of mappings
        Each a full set of the strategy's parameters (see ``scores.DEFAULTS``).
    rules : Rules
        Direction, fill, weighting, costs and eligibility filters shared by all combinations.
    holdings : bool
        Whether to return each combination's holdings at the last close.

    Returns
    -------
    list of Run
        One per combination, in the order given.
    """
    for params in combos:
        check_params(strategy, params)
    by_key: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, params in enumerate(combos):
        by_key[tuple(int(params[p]) for p in SCORE_PARAMS[strategy])].append(i)
    runs: list[Run | None] = [None] * len(combos)
    for key, members in by_key.items():
        chosen = [combos[i] for i in members]
        plan = _plan(panel, strategy, key, rules, chosen)
        group = _simulate_key(panel, rules, plan, chosen, holdings)
        for i, run in zip(members, group, strict=True):
            runs[i] = run
    return [r for r in runs if r is not None]


def first_fill(
    panel: Panel, strategy: str, combos: Sequence[Mapping[str, float]], rules: Rules
) -> int:
    """The calendar index of the earliest first fill of any of ``combos`` (-1: none fills).

    A combination's first fill is its score's first eligible date (or the next session with
    next-open fills): the same for every combination that shares the score's parameters.
    """
    offset = 1 if rules.fill == "next-open" else 0
    keys = {tuple(int(p[name]) for name in SCORE_PARAMS[strategy]) for p in combos}
    found = []
    for key in sorted(keys):
        start = first_eligible(panel, strategy, key, rules)
        if start >= 0 and start + offset < panel.n_dates:
            found.append(start + offset)
    return min(found, default=-1)


@dataclass(frozen=True)
class _Plan:
    """The rebalances of the combinations that share a score: the union of their fill days."""

    fills: IntArray  # (U,) calendar index of every fill day of any of the combinations
    active: np.ndarray  # (U, C) whether the day is a fill day of combination c
    ranks: IntArray  # (U, S) ranks at the fill's decision (S = not eligible)
    counts: IntArray  # (U, C) long count k of each combination
    inverse_sigma: FloatArray | None  # (U, S) 1 / sigma of the eligible (inverse-vol only)
    impact_base: FloatArray | None  # (U, S) Y x sigma / sqrt(ADV) (impact only)


def _plan(
    panel: Panel,
    strategy: str,
    key: tuple[int, ...],
    rules: Rules,
    combos: Sequence[Mapping[str, float]],
) -> _Plan:
    start = first_eligible(panel, strategy, key, rules)
    periods = [int(p["rebalance"]) for p in combos]
    fill_sets = [rebalance_schedule(start, p, panel.n_dates, rules.fill)[1] for p in periods]
    fills = np.unique(np.concatenate([*fill_sets, np.zeros(0, dtype=np.int64)]))
    active = np.stack([np.isin(fills, f) for f in fill_sets], axis=1).reshape(len(fills), -1)
    decided = fills - (1 if rules.fill == "next-open" else 0)
    decision = decide(panel, strategy, key, rules, decided)
    ranks = rankings(decision.score).reshape(len(fills), panel.n_symbols)
    n = (ranks < panel.n_symbols).sum(axis=1)
    quantiles = np.array([p["quantile"] for p in combos], dtype=np.float64)
    counts = long_count(quantiles[None, :], n[:, None]) if len(fills) else np.zeros((0, 1), int)
    inverse = None
    if rules.weighting == "inverse-vol":
        inverse = inverse_volatility(decision.sigma, ranks < panel.n_symbols)
    impact = None
    if rules.impact_coefficient > 0:
        impact = impact_bases(rules.impact_coefficient, decision.sigma, decision.adv)
    return _Plan(fills, active, ranks, counts, inverse, impact)


def impact_bases(coefficient: float, sigma: FloatArray, adv: FloatArray) -> FloatArray:
    """Y x sigma / sqrt(ADV) per symbol: a trade of d shares at price p pays it x |d|^1.5 x p.

    0 (no impact, fees and slippage still paid) where sigma or ADV is unknown or ADV is 0: a
    name with fewer than 20 returns (or 20 rows of volume) before the decision is eligible, and
    the formula has nothing to say about it.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        base = coefficient * sigma / np.sqrt(adv)
    return np.asarray(np.where(np.isfinite(base), base, 0.0), dtype=np.float64)


def _event_days(panel: Panel, fills: IntArray) -> IntArray:
    """Fill days, next rows of symbols missing on a fill day, and delisting days after f0."""
    t = panel.n_dates
    f0 = int(fills[0])
    missing = ~panel.has_row[fills] & (panel.row_number[fills] >= 0)
    pending = panel.next_row[fills][missing]
    delist = panel.last_row[(panel.last_row >= f0) & (panel.last_row < t - 1)]
    days = np.unique(np.concatenate([fills, pending[pending < t], delist]))
    return days.astype(np.int64)


#: Cells of the temporary days x combinations x symbols product of :func:`by_day` (8 MiB).
_BY_DAY_CELLS = 2**20


def per_row(rows: FloatArray, vector: FloatArray) -> FloatArray:
    """(C,) sum over symbols of each row of (C, S) ``rows`` times ``vector`` (S,).

    Each row is summed alone, by numpy's pairwise sum along the row, not by BLAS (which picks
    its kernels, and so its order of summation, by the matrices' shapes): a combination's
    numbers are then the same to the last bit whatever other combinations share its chunk, and
    a job gives identical tables on 1 worker or N.
    """
    return np.asarray(np.multiply(rows, vector).sum(axis=1), dtype=np.float64)


def by_day(days: FloatArray, rows: FloatArray) -> FloatArray:
    """(T, C): for each day of ``days`` (T, S) and row of ``rows`` (C, S), the sum over symbols
    of their product, each cell summed alone along its symbols (see :func:`per_row`), in blocks
    of days whose (days, C, S) product stays within ``_BY_DAY_CELLS``."""
    out = np.empty((days.shape[0], rows.shape[0]))
    step = max(1, _BY_DAY_CELLS // max(1, rows.size))
    for t0 in range(0, days.shape[0], step):
        block = np.multiply(days[t0 : t0 + step, None, :], rows[None, :, :])
        out[t0 : t0 + step] = block.sum(axis=2)
    return out


class _Book:
    """Shares, cash and cost totals of C combinations (rows) over S symbols."""

    def __init__(self, c: int, s: int, rules: Rules) -> None:
        self.shares = np.zeros((c, s))
        self.cash = np.full(c, INITIAL_CAPITAL)
        self.pending = np.zeros((c, s))
        #: Y x sigma / sqrt(ADV) of each combination's last decision (its pending trades pay it).
        self.impact_base = np.zeros((c, s))
        self.fees = np.zeros(c)
        self.slippage = np.zeros(c)
        self.impact = np.zeros(c)
        self.borrow = np.zeros(c)
        self.traded = np.zeros(c)
        self.fee_rate = rules.fees_bps / 1e4
        self.slip_rate = rules.slippage_bps / 1e4
        self.with_impact = rules.impact_coefficient > 0

    def trade(self, delta: FloatArray, price: FloatArray, *, impact: bool) -> None:
        """Trade ``delta`` shares at ``price``; pay fees, slippage and (if asked) impact."""
        size = np.abs(delta)
        value = per_row(size, price)
        self.cash -= per_row(delta, price)
        self.traded += value
        if self.fee_rate or self.slip_rate:
            self.fees += value * self.fee_rate
            self.slippage += value * self.slip_rate
            self.cash -= value * (self.fee_rate + self.slip_rate)
        if impact and self.with_impact:
            # Y x sigma x sqrt(|d| / ADV) x |d| x fill = |d|^1.5 x fill x (Y sigma / sqrt(ADV)).
            cost = np.sum(size * np.sqrt(size) * (self.impact_base * price), axis=1)
            self.impact += cost
            self.cash -= cost
        self.shares += delta


def _simulate_key(
    panel: Panel,
    rules: Rules,
    plan: _Plan,
    combos: Sequence[Mapping[str, float]],
    with_holdings: bool,
) -> list[Run]:
    t_all, s_all = panel.n_dates, panel.n_symbols
    c = len(combos)
    fills = plan.fills
    if len(fills) == 0:
        return [_empty_run(p) for p in combos]
    fill_price = panel.open if rules.fill == "next-open" else panel.close
    f0 = int(fills[0])
    book = _Book(c, s_all, rules)
    equity = np.empty((t_all - f0, c))
    n_long = np.zeros(c)
    n_short = np.zeros(c)
    borrow_rate = rules.borrow_bps / 1e4 / TRADING_DAYS_PER_YEAR
    fill_index = {int(f): i for i, f in enumerate(fills)}
    delisting = panel.last_row < t_all - 1
    events = _event_days(panel, fills)
    holes = bool((~panel.has_row[fills] & (panel.row_number[fills] >= 0)).any())
    for k, event in enumerate(events):
        day = int(event)
        end = int(events[k + 1]) if k + 1 < len(events) else t_all
        row = panel.has_row[day]
        price = np.where(row, fill_price[day], panel.last_close[day])
        price[~(price > 0)] = 1.0  # not yet listed: never held, weight 0
        i = fill_index.get(day)
        on = plan.active[i] if i is not None else None
        if holes and book.pending.any():
            # Trades waiting for this symbol's next row, except those a rebalance replaces.
            due = np.where(row, book.pending, 0.0)
            if on is not None:
                due[on] = 0.0
            if due.any():
                book.trade(due, price, impact=True)
                book.pending -= due
        if i is not None and on is not None:
            inverse = None if plan.inverse_sigma is None else plan.inverse_sigma[i]
            weights = weights_from_ranks(plan.ranks[i], plan.counts[i], inverse, rules)
            value = book.cash + per_row(book.shares, price)
            delta = (weights * (value[:, None] / price[None, :]) - book.shares) * on[:, None]
            if plan.impact_base is not None:
                book.impact_base[on] = plan.impact_base[i]
            if holes:
                book.pending[on] = np.where(row, 0.0, delta[on])
                delta = np.where(row, delta, 0.0)
            book.trade(delta, price, impact=True)
        gone = delisting & (panel.last_row == day)
        if gone.any():
            # Sold at the close before the symbol's rows end: fees and slippage, no impact.
            book.trade(np.where(gone, -book.shares, 0.0), panel.close[day], impact=False)
            book.shares[:, gone] = 0.0
            book.pending[:, gone] = 0.0
        last = panel.last_close[day:end]
        held = by_day(last, book.shares)
        cash = np.broadcast_to(book.cash, held.shape)
        if borrow_rate > 0 and (book.shares < 0).any():
            # Charged day by day (a left fold, not cash - cumsum): the same arithmetic however
            # the days are cut into segments by other combinations' events.
            charge = borrow_rate * by_day(last, np.maximum(-book.shares, 0.0))
            cash = np.subtract.accumulate(np.vstack([book.cash, charge]), axis=0)[1:]
            book.borrow = np.add.accumulate(np.vstack([book.borrow, charge]), axis=0)[-1]
            book.cash = cash[-1].copy()
        equity[day - f0 : end - f0] = cash + held
        n_long += (book.shares > 0).sum(axis=1) * (end - day)
        n_short += (book.shares < 0).sum(axis=1) * (end - day)
    days = t_all - f0
    prev = np.vstack([np.full((1, c), INITIAL_CAPITAL), equity[:-1]])
    returns = equity / prev - 1.0
    n_fills = plan.active.sum(axis=0)
    runs = []
    for j, params in enumerate(combos):
        runs.append(
            Run(
                params=dict(params),
                first_fill=f0,
                equity=equity[:, j].copy(),
                returns=returns[:, j].copy(),
                turnover=float(book.traded[j] / equity[:, j].mean() * TRADING_DAYS_PER_YEAR / days),
                avg_long=float(n_long[j] / days),
                avg_short=float(n_short[j] / days),
                cost_fees=float(book.fees[j] / INITIAL_CAPITAL),
                cost_slippage=float(book.slippage[j] / INITIAL_CAPITAL),
                cost_impact=float(book.impact[j] / INITIAL_CAPITAL),
                cost_borrow=float(book.borrow[j] / INITIAL_CAPITAL),
                n_rebalances=int(n_fills[j]),
                holdings=_holdings(panel, book.shares[j], equity[-1, j]) if with_holdings else None,
            )
        )
    return runs


def _holdings(panel: Panel, shares: FloatArray, equity: float) -> Holdings:
    held = np.flatnonzero(shares != 0)
    value = shares[held] * panel.last_close[-1, held]
    return Holdings(panel.symbols[held], shares[held].copy(), value, value / equity)


def _empty_run(params: Mapping[str, float]) -> Run:
    empty = np.zeros(0)
    nan = float("nan")
    return Run(dict(params), -1, empty, empty, nan, nan, nan, 0.0, 0.0, 0.0, 0.0, 0, None)
