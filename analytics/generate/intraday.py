"""One session of intraday data for a few symbols: 1-minute bars, parent orders and their fills.

Bars run 09:30 to 15:59 New York time (390 bars, ``ts`` = bar start in UTC); a bar's bid and ask
are the quote prevailing at its end (``ts + 1 min``), around its close. The price path is a
Brownian bridge from the session's daily open to its daily close, with more variance and volume
at the open and the close than at midday. Orders arrive during the session and are worked for
5 minutes to 4 hours; their fills fall inside the order's window, inside a bar, and inside that
bar's [low, high], buys paying a little above the mid and sells receiving a little below it.

Timestamps are handled as int64 nanoseconds since the epoch (UTC) until the tables are built.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.generate.daily import OVERNIGHT_SHARE

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

EXCHANGE_TZ: Final = "America/New_York"
MINUTES: Final = 390
NS_PER_MINUTE: Final = 60_000_000_000
NS_PER_MS: Final = 1_000_000

_J = np.arange(MINUTES, dtype=np.float64)
# U-shaped intraday profiles, each summing to 1 (volume) or normalized to 1 at midday (spread).
_VOLUME = 0.6 + 3.0 * np.exp(-_J / 25.0) + 2.5 * np.exp(-(MINUTES - 1 - _J) / 30.0)
VOLUME_PROFILE: Final = _VOLUME / _VOLUME.sum()
_VARIANCE = 0.7 + 1.6 * np.exp(-_J / 20.0) + 0.5 * np.exp(-(MINUTES - 1 - _J) / 25.0)
VARIANCE_PROFILE: Final = _VARIANCE / _VARIANCE.sum()
SPREAD_PROFILE: Final = 1.0 + 2.0 * np.exp(-_J / 10.0)

BROKERS: Final = ("BRKA", "BRKB", "BRKC", "BRKD")
BROKER_WEIGHTS: Final = (0.35, 0.3, 0.2, 0.15)
#: Commission of each broker, in basis points of the fill's notional.
BROKER_FEE_BPS: Final = np.array([1.0, 1.5, 0.8, 2.0])
DESKS: Final = ("CASH", "PROGRAM", "QUANT")
DESK_WEIGHTS: Final = (0.5, 0.3, 0.2)
STRATEGIES: Final = ("VWAP", "TWAP", "POV", "IS")
STRATEGY_WEIGHTS: Final = (0.35, 0.25, 0.2, 0.2)
VENUES: Final = ("NYSE", "NASDAQ", "ARCA", "BATS", "IEX")
VENUE_WEIGHTS: Final = (0.3, 0.3, 0.15, 0.15, 0.1)

ORDERS_PER_DAY: Final = (10, 41)  # drawn uniformly in [low, high)
LAST_ARRIVAL_MINUTE: Final = 385.0
DURATION_MINUTES: Final = (5.0, 240.0)
PARTICIPATION: Final = (0.01, 0.06)
LIMIT_SHARE, DECISION_SHARE = 0.45, 0.5
NO_FILL_SHARE, PARTIAL_SHARE = 0.05, 0.2
MAX_FILLS: Final = 15
#: Market impact in basis points at 100% participation (square-root law).
IMPACT_BPS: Final = 10.0


@dataclass(frozen=True)
class SymbolSession:
    """What the daily simulation knows of one symbol on one session."""

    symbol: str
    open: float
    close: float
    volume: float
    #: Daily volatility of the log return.
    sigma: float
    spread_bps: float


@dataclass(frozen=True)
class Bars:
    """``(symbols, 390)`` arrays of one session."""

    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    bid: F64
    ask: F64
    vwap: F64


@dataclass(frozen=True)
class SessionIntraday:
    """Column dicts for the three datasets, and the daily fields the bars now define."""

    bars: dict[str, Any]
    orders: dict[str, Any]
    fills: dict[str, Any]
    high: F64
    low: F64
    volume: F64


def session_open_ns(date: datetime.date) -> int:
    """The session's 09:30 New York time, in UTC nanoseconds (daylight saving included)."""
    local = pd.Timestamp(datetime.datetime.combine(date, datetime.time(9, 30)))
    return int(local.tz_localize(EXCHANGE_TZ).tz_convert("UTC").value)


def simulate_bars(rng: np.random.Generator, days: list[SymbolSession]) -> Bars:
    """Minute bars whose first open and last close are the daily open and close."""
    k = len(days)
    o = np.array([d.open for d in days])
    c = np.array([d.close for d in days])
    sigma = np.array([d.sigma for d in days]) * np.sqrt(1.0 - OVERNIGHT_SHARE)
    half = np.array([d.spread_bps for d in days])[:, None] * 0.5e-4 * SPREAD_PROFILE
    step = sigma[:, None] * np.sqrt(VARIANCE_PROFILE)
    walk = np.cumsum(rng.standard_normal((k, MINUTES)) * step, axis=1)
    tau = np.cumsum(VARIANCE_PROFILE)
    tau[-1] = 1.0
    bridge = walk - tau * walk[:, -1:]
    close = np.exp(np.log(o)[:, None] + np.log(c / o)[:, None] * tau + bridge)
    close[:, -1] = c
    open_ = np.concatenate([o[:, None], close[:, :-1]], axis=1)
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    # Trades print at the quotes, so a bar reaches half a spread beyond its mid path.
    high = np.maximum(top * (1.0 + half + rng.exponential(0.5, (k, MINUTES)) * step), top)
    low = np.minimum(bottom * (1.0 - half - rng.exponential(0.5, (k, MINUTES)) * step), bottom)
    noise = rng.lognormal(-0.5 * 0.45**2, 0.45, (k, MINUTES))
    target = np.array([d.volume for d in days])[:, None]
    volume = np.maximum(np.round(target * VOLUME_PROFILE * noise), 1.0)
    vwap = np.clip(
        0.5 * (open_ + close) + 0.15 * (high - low) * rng.standard_normal((k, MINUTES)), low, high
    )
    # The quote at the bar's end: around the close, the last trade of the minute.
    quote_half = close * half * rng.lognormal(0.0, 0.2, (k, MINUTES))
    mid = close + quote_half * rng.uniform(-0.3, 0.3, (k, MINUTES))
    return Bars(open_, high, low, close, volume, mid - quote_half, mid + quote_half, vwap)


def mid_at(bars: Bars, row: int, minute: F64) -> F64:
    """The mid price at ``minute`` after the open: bar open to bar close, linearly."""
    m = np.clip(minute, 0.0, MINUTES - 1e-9)
    j = m.astype(np.int64)
    frac = m - j
    o, c = bars.open[row, j], bars.close[row, j]
    return np.asarray(o + (c - o) * frac, dtype=np.float64)


def _choice(
    rng: np.random.Generator, labels: tuple[str, ...], weights: tuple[float, ...], n: int
) -> I64:
    return np.asarray(rng.choice(len(labels), size=n, p=np.array(weights)), dtype=np.int64)


def simulate_orders(
    rng: np.random.Generator,
    date: datetime.date,
    open_ns: int,
    bars: Bars,
    row: int,
    day: SymbolSession,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parent orders of one symbol-day and their fills, as column dicts of numpy arrays."""
    close_ns = open_ns + MINUTES * NS_PER_MINUTE
    n = int(rng.integers(*ORDERS_PER_DAY))
    arrival_min = np.sort(rng.uniform(0.0, LAST_ARRIVAL_MINUTE, n))
    arrival = open_ns + np.round(arrival_min * 60_000).astype(np.int64) * NS_PER_MS
    shortest, longest = DURATION_MINUTES
    duration = np.exp(rng.uniform(np.log(shortest), np.log(longest), n))
    end = np.minimum(arrival + np.round(duration * 60_000).astype(np.int64) * NS_PER_MS, close_ns)
    first_bar = (arrival - open_ns) // NS_PER_MINUTE
    last_bar = (end - 1 - open_ns) // NS_PER_MINUTE
    cumulative = np.concatenate([[0.0], np.cumsum(bars.volume[row])])
    window_volume = cumulative[last_bar + 1] - cumulative[first_bar]
    share = rng.uniform(*PARTICIPATION, n)
    quantity = np.maximum(np.round(share * window_volume / 100.0), 1.0) * 100.0
    buy = rng.random(n) < 0.5
    sign = np.where(buy, 1.0, -1.0)

    arrival_mid = mid_at(bars, row, (arrival - open_ns) / NS_PER_MINUTE)
    offset_bps = rng.uniform(-5.0, 25.0, n)
    limit = np.round(arrival_mid * (1.0 + sign * offset_bps * 1e-4), 2)
    has_limit = rng.random(n) < LIMIT_SHARE
    lead = rng.uniform(1.0, 30.0, n)  # minutes between the decision and the arrival
    decision = mid_at(bars, row, arrival_min - lead) * (1.0 + rng.normal(0.0, 2e-4, n))
    has_decision = rng.random(n) < DECISION_SHARE
    broker = _choice(rng, BROKERS, BROKER_WEIGHTS, n)
    strategy = _choice(rng, STRATEGIES, STRATEGY_WEIGHTS, n)
    stamp = f"{date:%Y%m%d}-{day.symbol}"
    orders = {
        "order_id": np.array([f"O{stamp}-{i:04d}" for i in range(n)]),
        "date": np.full(n, np.datetime64(date, "D")),
        "symbol": np.full(n, day.symbol),
        "side": np.where(buy, "BUY", "SELL"),
        "quantity": quantity,
        "arrival_ts": arrival,
        "end_ts": end,
        "limit_price": (limit, has_limit),
        "broker": np.array(BROKERS)[broker],
        "desk": np.array(DESKS)[_choice(rng, DESKS, DESK_WEIGHTS, n)],
        "strategy": np.array(STRATEGIES)[strategy],
        "decision_price": (np.round(decision, 4), has_decision),
    }

    # How much of each order fills: most completely, some partly, a few not at all.
    lots = (quantity // 100).astype(np.int64)
    status = rng.random(n)
    partial = np.clip(np.floor(lots * rng.uniform(0.3, 0.95, n)), 1, np.maximum(lots - 1, 1))
    filled = np.where(
        status < NO_FILL_SHARE, 0, np.where(status < NO_FILL_SHARE + PARTIAL_SHARE, partial, lots)
    )
    filled = np.minimum(filled, lots).astype(np.int64)
    n_fills = np.where(filled > 0, np.minimum(filled, rng.integers(1, MAX_FILLS + 1, n)), 0)
    parent = np.repeat(np.arange(n), n_fills)
    start = np.cumsum(n_fills) - n_fills
    rank = np.arange(len(parent)) - start[parent]
    # Split each order's filled lots over its fills: one lot each, the rest by random weights.
    spare = filled - n_fills
    weight = rng.exponential(1.0, len(parent))
    share_of = weight / np.bincount(parent, weight, minlength=n)[parent]
    extra = np.floor(share_of * spare[parent]).astype(np.int64)
    leftover = spare - np.bincount(parent, extra, minlength=n).astype(np.int64)
    fill_lots = 1 + extra + (rank < leftover[parent])

    # When: uniform over the window (TWAP, POV), front-loaded (IS), or following volume (VWAP).
    window_end = np.minimum(end, close_ns - NS_PER_MS)[parent]
    begin = arrival[parent]
    u = rng.random(len(parent))
    u = np.where(strategy[parent] == STRATEGIES.index("IS"), u * u, u)
    when = begin + np.floor(u * (window_end - begin) / 1000.0).astype(np.int64) * 1000
    vwap_fills = strategy[parent] == STRATEGIES.index("VWAP")
    if vwap_fills.any():
        p = parent[vwap_fills]
        target = cumulative[first_bar[p]] + u[vwap_fills] * window_volume[p]
        minute = np.searchsorted(cumulative, target, side="right") - 1 + rng.random(len(p))
        by_volume = open_ns + np.floor(minute * NS_PER_MINUTE / 1000.0).astype(np.int64) * 1000
        when[vwap_fills] = np.clip(by_volume, begin[vwap_fills], window_end[vwap_fills])
    order = np.lexsort((when, parent))  # rank (the fill number) stays in time order
    when = when[order]
    minute = (when - open_ns) / NS_PER_MINUTE
    bar = ((when - open_ns) // NS_PER_MINUTE).astype(np.int64)
    half_bps = day.spread_bps * 0.5 * SPREAD_PROFILE[bar]
    participation = quantity[parent] / np.maximum(window_volume[parent], 1.0)
    cost_bps = half_bps * rng.uniform(0.1, 1.0, len(parent)) + IMPACT_BPS * np.sqrt(participation)
    price = mid_at(bars, row, minute) * (1.0 + sign[parent] * cost_bps * 1e-4)
    price = np.clip(price, bars.low[row, bar], bars.high[row, bar])
    fill_quantity = fill_lots * 100.0
    fee = np.round(price * fill_quantity * BROKER_FEE_BPS[broker[parent]] * 1e-4, 2)
    fills = {
        "fill_id": np.array(
            [f"F{stamp}-{i:04d}-{j:02d}" for i, j in zip(parent, rank, strict=True)]
        ),
        "order_id": orders["order_id"][parent],
        "ts": when,
        "symbol": np.full(len(parent), day.symbol),
        "side": orders["side"][parent],
        "quantity": fill_quantity,
        "price": price,
        "venue": np.array(VENUES)[_choice(rng, VENUES, VENUE_WEIGHTS, len(parent))],
        "fee": fee,
    }
    return orders, fills


def simulate_session(
    rng: np.random.Generator, date: datetime.date, days: list[SymbolSession]
) -> SessionIntraday:
    """Bars, orders and fills of ``days`` (the symbols trading on ``date``), in symbol order."""
    open_ns = session_open_ns(date)
    bars = simulate_bars(rng, days)
    k = len(days)
    ts = open_ns + np.arange(MINUTES, dtype=np.int64) * NS_PER_MINUTE
    bar_columns: dict[str, Any] = {
        "symbol": np.repeat(np.array([d.symbol for d in days]), MINUTES),
        "ts": np.tile(ts, k),
        **{
            name: getattr(bars, name).ravel()
            for name in ("open", "high", "low", "close", "volume", "bid", "ask", "vwap")
        },
    }
    orders, fills = zip(
        *(simulate_orders(rng, date, open_ns, bars, row, day) for row, day in enumerate(days)),
        strict=True,
    )
    return SessionIntraday(
        bars=bar_columns,
        orders=_concat(list(orders)),
        fills=_concat(list(fills)),
        high=bars.high.max(axis=1),
        low=bars.low.min(axis=1),
        volume=bars.volume.sum(axis=1),
    )


def _concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate column dicts; ``(values, valid)`` pairs stay pairs."""
    out: dict[str, Any] = {}
    for name, first in parts[0].items():
        if isinstance(first, tuple):
            out[name] = tuple(np.concatenate([p[name][i] for p in parts]) for i in range(2))
        else:
            out[name] = np.concatenate([p[name] for p in parts])
    return out
