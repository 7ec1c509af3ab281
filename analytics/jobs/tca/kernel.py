"""Per-order transaction costs of one partition: one date's orders of some symbols, their fills
and those symbols' 1-minute bars. Pure pandas/numpy; :mod:`analytics.jobs.tca.job` maps it.

Conventions (``docs/jobs/tca.md`` is the reference):

- ``s`` = +1 for a buy, -1 for a sell; a positive cost is bad for the client; bps are 1e-4.
- A bar starting at t covers [t, t + 1 minute); its bid/ask are the quote prevailing at its end.
- *The prevailing mid at T* is (bid + ask) / 2 of the last bar of the symbol with
  ``ts + 1 min <= T`` that has a quote (``0 < bid <= ask``); NaN when there is none. A crossed
  or non-positive quote is skipped, never used: it is counted as ``crossed_quotes``.
- The order's *interval* is the bars overlapping [arrival_ts, end_ts): ``ts < end_ts`` and
  ``ts + 1 min > arrival_ts``.

Bar look-ups are a ``searchsorted`` per symbol on the symbol's sorted bar starts; sums over an
interval are exact sums of its bars (``np.add.reduceat``), not differences of running totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.jobs.tca import checks, pretrade

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]

NS_PER_SECOND: Final = 1_000_000_000
NS_PER_MINUTE: Final = 60 * NS_PER_SECOND
#: Bars are 1-minute bars (``docs/data.md``): a bar starting at t covers [t, t + BAR_NS).
BAR_NS: Final = NS_PER_MINUTE
#: Post-trade reversion is read this long after an order's last fill.
IMPACT_HORIZON_NS: Final = 5 * NS_PER_MINUTE
BPS: Final = 1e4

#: The cost metrics, in bps, that the aggregates weight by filled notional.
NOTIONAL_METRICS: Final = (
    "arrival_cost_bps",
    "vwap_slippage_bps",
    "spread_cost_bps",
    "impact_bps",
)
#: The metrics normalised by the order's paper value, which the aggregates weight by it.
ORDER_VALUE_METRICS: Final = (
    "is_bps",
    "is_delay_bps",
    "is_trading_bps",
    "is_opportunity_bps",
    "is_fees_bps",
    "expected_cost_bps",
    "cost_vs_expected_bps",
)
#: The four terms of implementation shortfall in bps of the order value; they sum to is_bps.
IS_COMPONENTS: Final = ORDER_VALUE_METRICS[1:5]
#: Every aggregated metric, in the aggregate tables' column order.
COST_METRICS: Final = (*NOTIONAL_METRICS[:3], "is_bps", "impact_bps", *ORDER_VALUE_METRICS[1:])
#: The weight column of each metric.
METRIC_WEIGHTS: Final = {
    **{m: "notional" for m in NOTIONAL_METRICS},
    **{m: "order_value" for m in ORDER_VALUE_METRICS},
}


def timestamps_ns(values: pd.Series) -> I64:
    """Nanoseconds since the epoch (UTC) of a datetime column of any unit."""
    return np.asarray(values.to_numpy(dtype="datetime64[ns]").view(np.int64), dtype=np.int64)


def floats(values: pd.Series) -> F64:
    return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def side_sign(side: pd.Series) -> F64:
    """+1 for ``BUY``, -1 for ``SELL`` (the reader admits nothing else)."""
    text = side.astype(str).to_numpy()
    return np.where(text == "BUY", 1.0, np.where(text == "SELL", -1.0, np.nan))


def take_or_nan(values: F64, index: I64) -> F64:
    """``values[index]``, NaN where ``index`` is -1."""
    if not len(values):
        return np.full(len(index), np.nan)
    return np.where(index >= 0, values[np.maximum(index, 0)], np.nan)


def search(keys: I64, bounds: I64, sym: I64, t: I64, side: Literal["left", "right"]) -> I64:
    """Row of the first key of ``sym`` after ``t`` (``right``) or at/after it (``left``) in
    ``keys`` sorted by (symbol, key), symbol k being rows ``bounds[k]`` to ``bounds[k + 1]``."""
    out = np.empty(len(sym), dtype=np.int64)
    if not len(sym):
        return out
    order = np.argsort(sym, kind="stable")
    edges = np.flatnonzero(np.diff(sym[order])) + 1
    for rows in np.split(order, edges):
        k = int(sym[rows[0]])
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        out[rows] = lo + np.searchsorted(keys[lo:hi], t[rows], side=side)
    return out


@dataclass(frozen=True)
class BarIndex:
    """A partition's bars sorted by (symbol code, start): symbol k is rows ``bounds[k]`` to
    ``bounds[k + 1]``; and its quotes (the bars with ``0 < bid <= ask``), sorted the same way,
    symbol k being rows ``quote_bounds[k]`` to ``quote_bounds[k + 1]``."""

    start: I64
    bounds: I64
    #: The bar's vwap where the file has one, else (high + low + close) / 3.
    price: F64
    volume: F64
    low: F64
    high: F64
    #: Per quote: the end of its bar (the time it is quoted at), its mid and half-spread (bps).
    quote_end: I64
    quote_bounds: I64
    quote_mid: F64
    quote_half_spread_bps: F64
    #: Bars whose quote is crossed (bid > ask) or has a non-positive bid: no quote.
    crossed: int

    @classmethod
    def build(cls, bars: pd.DataFrame, symbols: pd.Index, src: checks.Sources) -> BarIndex:
        """Index ``bars`` by ``symbols`` (bars of other symbols are dropped).

        Raises
        ------
        InputError
            Two bars of a symbol with the same start; a bar with high < low or its close
            outside [low, high].
        """
        code = np.asarray(symbols.get_indexer(pd.Index(bars["symbol"].astype(str))), dtype=np.int64)
        start = timestamps_ns(bars["ts"])
        keep = np.flatnonzero(code >= 0)
        order = keep[np.lexsort((start[keep], code[keep]))]
        code, start = code[order], start[order]
        sorted_bars = bars.iloc[order]
        checks.reject_duplicate_bars(sorted_bars, code, start, src)
        high, low = floats(sorted_bars["high"]), floats(sorted_bars["low"])
        close = floats(sorted_bars["close"])
        checks.reject_bad_bars(sorted_bars, high, low, close, src)
        vwap = (
            floats(sorted_bars["vwap"])
            if "vwap" in sorted_bars.columns
            else np.full(len(order), np.nan)
        )
        bid, ask = floats(sorted_bars["bid"]), floats(sorted_bars["ask"])
        quoted = np.flatnonzero((bid > 0) & (bid <= ask))
        mid = (bid[quoted] + ask[quoted]) / 2.0
        codes = np.arange(len(symbols) + 1)
        return cls(
            start=start,
            bounds=np.searchsorted(code, codes).astype(np.int64),
            price=np.where(np.isnan(vwap), (high + low + close) / 3.0, vwap),
            volume=floats(sorted_bars["volume"]),
            low=low,
            high=high,
            quote_end=start[quoted] + BAR_NS,
            quote_bounds=np.searchsorted(code[quoted], codes).astype(np.int64),
            quote_mid=mid,
            quote_half_spread_bps=(ask[quoted] - bid[quoted]) / 2.0 / mid * BPS,
            crossed=len(order) - len(quoted),
        )

    def has_bars(self, sym: I64) -> BOOL:
        return np.asarray(self.bounds[sym + 1] > self.bounds[sym], dtype=np.bool_)

    def position(self, sym: I64, t: I64, side: Literal["left", "right"]) -> I64:
        """Row of the first bar of ``sym`` starting after ``t`` (``right``) or at/after it
        (``left``)."""
        return search(self.start, self.bounds, sym, t, side)

    def last_at_or_before(self, sym: I64, t: I64) -> I64:
        """Row of the last bar of ``sym`` starting at or before ``t``; -1 when there is none."""
        row = self.position(sym, t, "right") - 1
        return np.where(row >= self.bounds[sym], row, -1)

    def prevailing(self, sym: I64, t: I64) -> I64:
        """Row (in the quotes) of the quote prevailing at ``t``: the last quote of ``sym`` whose
        bar ended at or before ``t``; -1 when there is none."""
        row = search(self.quote_end, self.quote_bounds, sym, t, "right") - 1
        return np.where(row >= self.quote_bounds[sym], row, -1)

    def prevailing_mid(self, sym: I64, t: I64) -> F64:
        """The prevailing mid at ``t`` (NaN when no quote has been completed by then)."""
        return take_or_nan(self.quote_mid, self.prevailing(sym, t))

    def session_end(self, sym: I64) -> I64:
        """The end of the last bar of ``sym`` (its start + 1 minute); 0 without bars."""
        starts = self.start if len(self.start) else np.zeros(1, dtype=np.int64)
        last = starts[np.maximum(self.bounds[sym + 1] - 1, 0)] + BAR_NS
        return np.where(self.has_bars(sym), last, 0)

    @staticmethod
    def interval_sum(values: F64, lo: I64, hi: I64) -> F64:
        """``values[lo:hi].sum()`` for each pair (0 for an empty interval)."""
        if not len(lo):
            return np.zeros(0)
        padded = np.append(values, 0.0)  # so that hi == len(values) is a valid index
        pairs = np.empty(2 * len(lo), dtype=np.int64)
        pairs[0::2], pairs[1::2] = lo, hi
        sums = np.add.reduceat(padded, pairs)[0::2]
        return np.where(hi > lo, sums, 0.0)


@dataclass(frozen=True)
class Partition:
    """One partition's orders (sorted by order_id) joined with their fills (sorted by order,
    then time) and indexed bars. Built by :func:`join`, which runs the rejecting checks."""

    day: str
    orders: pd.DataFrame
    symbols: pd.Index
    #: Per order: symbol code, sign, arrival_ts and end_ts (ns), quantity, decision price.
    sym: I64
    sign: F64
    arrival: I64
    end: I64
    quantity: F64
    decision: F64
    #: Per order: its symbol's ADV and daily sigma before the order's date (NaN when unknown;
    #: see :mod:`analytics.jobs.tca.pretrade`).
    adv: F64
    sigma: F64
    fills: pd.DataFrame
    #: Per fill: its order's row, ts (ns), quantity, price, fee, its bar (the last bar
    #: starting at or before it, -1 for none) and the prevailing mid at its ts.
    pos: I64
    fill_ts: I64
    fill_qty: F64
    fill_price: F64
    fill_fee: F64
    fill_bar: I64
    fill_mid: F64
    bars: BarIndex

    def segments(self) -> tuple[I64, I64]:
        """First and one-past-last fill row of each order."""
        n = np.arange(len(self.orders))
        return (
            np.searchsorted(self.pos, n, side="left").astype(np.int64),
            np.searchsorted(self.pos, n, side="right").astype(np.int64),
        )


def join(
    day: str,
    orders: pd.DataFrame,
    fills: pd.DataFrame,
    bars: pd.DataFrame,
    src: checks.Sources | None = None,
    stats: pd.DataFrame | None = None,
) -> Partition:
    """Match fills to orders by ``order_id`` and index the bars, rejecting bad input.

    ``stats`` holds ``symbol``, ``adv`` and ``sigma`` of the day (one row per symbol, see
    :func:`analytics.jobs.tca.pretrade.price_stats`); a symbol it lacks has NaN.

    Raises
    ------
    InputError
        For the rejecting checks of :data:`analytics.jobs.tca.checks.CHECKS`: duplicate order_id or
        bar, end before arrival, fills without an order, fills whose side or symbol differs from
        their order's, a bar whose high, low and close are inconsistent.
    """
    src = src or checks.Sources()
    checks.reject_duplicate_orders(orders, src)
    orders = orders.sort_values("order_id", kind="stable").reset_index(drop=True)
    arrival, end = timestamps_ns(orders["arrival_ts"]), timestamps_ns(orders["end_ts"])
    checks.reject_bad_windows(orders, arrival, end, src)
    pos = np.asarray(
        pd.Index(orders["order_id"]).get_indexer(pd.Index(fills["order_id"])), np.int64
    )
    checks.reject_orphans(fills, pos, day, src)
    checks.reject_mismatch(fills, orders, pos, "side", src)
    checks.reject_mismatch(fills, orders, pos, "symbol", src)
    fill_ts = timestamps_ns(fills["ts"])
    order = np.lexsort((fill_ts, pos))
    fills = fills.iloc[order].reset_index(drop=True)
    pos, fill_ts = pos[order], fill_ts[order]

    symbols = pd.Index(sorted(set(orders["symbol"].astype(str))))
    bar_index = BarIndex.build(bars, symbols, src)
    sym = np.asarray(symbols.get_indexer(pd.Index(orders["symbol"].astype(str))), dtype=np.int64)
    decision = (
        floats(orders["decision_price"])
        if "decision_price" in orders.columns
        else np.full(len(orders), np.nan)
    )
    adv, sigma = np.full(len(orders), np.nan), np.full(len(orders), np.nan)
    if stats is not None and len(stats):
        names = pd.Index(orders["symbol"].astype(str))
        at = pd.Index(stats["symbol"].astype(str)).get_indexer(names)
        adv = take_or_nan(floats(stats["adv"]), np.asarray(at, dtype=np.int64))
        sigma = take_or_nan(floats(stats["sigma"]), np.asarray(at, dtype=np.int64))
    return Partition(
        day=day,
        orders=orders,
        symbols=symbols,
        sym=sym,
        sign=side_sign(orders["side"]),
        arrival=arrival,
        end=end,
        quantity=floats(orders["quantity"]),
        decision=decision,
        adv=adv,
        sigma=sigma,
        fills=fills,
        pos=pos,
        fill_ts=fill_ts,
        fill_qty=floats(fills["quantity"]),
        fill_price=floats(fills["price"]),
        fill_fee=floats(fills["fee"]),
        fill_bar=bar_index.last_at_or_before(sym[pos], fill_ts),
        fill_mid=bar_index.prevailing_mid(sym[pos], fill_ts),
        bars=bar_index,
    )


def order_costs(p: Partition, impact_coefficient: float = 1.0) -> pd.DataFrame:
    """The per-order metrics and flags of ``docs/jobs/tca.md``, one row per order of ``p``.

    Orders without fills have filled_quantity 0, fill_rate 0, avg_price, notional
    (filled_quantity x avg_price) and the price-based costs NaN, and a defined implementation
    shortfall (its opportunity term). Divisions by zero give NaN (participation with no market
    volume, interval_vwap with no bar in the interval). ``impact_coefficient`` is Y of the
    pre-trade model (:func:`analytics.jobs.tca.pretrade.expected_cost_bps`).
    """
    n = len(p.orders)
    s, qty, bars = p.sign, p.quantity, p.bars
    n_fills = np.bincount(p.pos, minlength=n)
    filled = np.bincount(p.pos, p.fill_qty, minlength=n)
    value = np.bincount(p.pos, p.fill_qty * p.fill_price, minlength=n)
    fees = np.bincount(p.pos, p.fill_fee, minlength=n)
    has_bars = bars.has_bars(p.sym)
    stop = p.segments()[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.where(filled > 0, value / np.where(filled > 0, filled, 1.0), np.nan)
        notional = filled * avg  # the contract's filled_quantity x avg_price: NaN unfilled
        arrival_quote = bars.prevailing(p.sym, p.arrival)
        arrival_mid = take_or_nan(bars.quote_mid, arrival_quote)
        end_mid = bars.prevailing_mid(p.sym, p.end)
        # The interval: bars with ts + 1 min > arrival_ts and ts < end_ts.
        lo = bars.position(p.sym, p.arrival - BAR_NS, "right")
        hi = bars.position(p.sym, p.end, "left")
        volume = BarIndex.interval_sum(bars.volume, lo, hi)
        market_volume = np.where(has_bars, volume, np.nan)
        dollars = BarIndex.interval_sum(bars.volume * bars.price, lo, hi)
        interval_vwap = np.where(volume > 0, dollars / volume, np.nan)
        participation = np.where(market_volume > 0, filled / market_volume, np.nan)

        fs = s[p.pos]
        spread_sum = np.bincount(
            p.pos, p.fill_qty * fs * (p.fill_price - p.fill_mid) / p.fill_mid * BPS, minlength=n
        )
        # Perold's implementation shortfall, with Wagner's decomposition (currency units).
        p0, pn = arrival_mid, end_mid
        pd_ = np.where(np.isnan(p.decision), p0, p.decision)
        is_delay = s * qty * (p0 - pd_)
        is_trading = s * np.bincount(p.pos, p.fill_qty * (p.fill_price - p0[p.pos]), minlength=n)
        is_opportunity = s * (qty - filled) * (pn - p0)
        is_total = is_delay + is_trading + is_opportunity + fees
        order_value = qty * pd_
        is_bps = is_total / order_value * BPS
        # In bps, the terms are NaN with their total, so that they enter the same aggregates.
        per_value = np.where(np.isnan(is_total), np.nan, BPS / order_value)

        # Drift: the mid 5 minutes after the last fill, while the bars still cover it.
        fill_ts = p.fill_ts if len(p.fill_ts) else np.zeros(1, dtype=np.int64)
        last_fill = np.where(n_fills > 0, fill_ts[np.maximum(stop - 1, 0)], 0)
        horizon = last_fill + IMPACT_HORIZON_NS
        covered = (n_fills > 0) & has_bars & (horizon < bars.session_end(p.sym))
        later_mid = bars.prevailing_mid(p.sym, horizon)
        half_spread = take_or_nan(bars.quote_half_spread_bps, arrival_quote)
        expected = pretrade.expected_cost_bps(
            half_spread, p.sigma, qty, p.adv, impact_coefficient=impact_coefficient
        )
        frame = {
            "quantity": qty,
            "filled_quantity": filled,
            "fill_rate": filled / qty,
            "n_fills": n_fills.astype(np.int64),
            "avg_price": avg,
            "notional": notional,
            "order_value": order_value,
            "arrival_mid": arrival_mid,
            "interval_vwap": interval_vwap,
            "end_mid": end_mid,
            "market_volume": market_volume,
            "participation": participation,
            "arrival_cost_bps": s * (avg - arrival_mid) / arrival_mid * BPS,
            "vwap_slippage_bps": s * (avg - interval_vwap) / interval_vwap * BPS,
            "spread_cost_bps": np.where(filled > 0, spread_sum / filled, np.nan),
            "is_delay": is_delay,
            "is_trading": is_trading,
            "is_opportunity": is_opportunity,
            "is_fees": fees,
            "is_total": is_total,
            "is_bps": is_bps,
            "is_delay_bps": is_delay * per_value,
            "is_trading_bps": is_trading * per_value,
            "is_opportunity_bps": is_opportunity * per_value,
            "is_fees_bps": fees * per_value,
            "impact_bps": np.where(covered, s * (later_mid - p0) / p0 * BPS, np.nan),
            "adv": p.adv,
            "sigma": p.sigma,
            "half_spread_bps": half_spread,
            "expected_cost_bps": expected,
            "cost_vs_expected_bps": is_bps - expected,
        }
    before = np.bincount(p.pos, p.fill_ts < p.arrival[p.pos], minlength=n) > 0
    after = np.bincount(p.pos, p.fill_ts > p.end[p.pos], minlength=n) > 0
    frame["flag_fills_before_arrival"] = before
    frame["flag_fills_after_end"] = after
    frame["flag_overfilled"] = filled > qty
    frame["flag_no_bars"] = ~has_bars
    return pd.DataFrame(frame)


def flag_counts(p: Partition, costs: pd.DataFrame) -> checks.Counts:
    """The partition's counts for the manifest (see :class:`analytics.jobs.tca.checks.Counts`)."""
    before = p.fill_ts < p.arrival[p.pos]
    after = p.fill_ts > p.end[p.pos]
    no_arrival = costs["arrival_mid"].isna() & ~costs["flag_no_bars"]
    return checks.Counts(
        orders=len(p.orders),
        fills=len(p.fills),
        fills_before_arrival=int(before.sum()),
        orders_with_fills_before_arrival=int(costs["flag_fills_before_arrival"].sum()),
        fills_after_end=int(after.sum()),
        orders_with_fills_after_end=int(costs["flag_fills_after_end"].sum()),
        overfilled_orders=int(costs["flag_overfilled"].sum()),
        orders_without_bars=int(costs["flag_no_bars"].sum()),
        orders_without_arrival_bar=int(no_arrival.sum()),
        crossed_quotes=p.bars.crossed,
    )


def venue_costs(p: Partition, costs: pd.DataFrame) -> pd.DataFrame:
    """Each order's fills on each venue as a slice: one row per (order, venue).

    A slice's price-based costs are the order's formulas applied to its own fills
    (arrival_cost_bps and vwap_slippage_bps from the slice's quantity-weighted average price
    against the order's arrival_mid and interval_vwap; spread_cost_bps over the slice's fills);
    impact_bps and the order-value metrics (is_bps, its components, the pre-trade model) are
    order-level and are the order's. ``notional`` is the slice's; ``order_value`` is the
    order's times the slice's share of its filled quantity, so that an order's slices together
    weigh what the order does.
    """
    columns = ["order_id", "venue", "n_fills", "filled_quantity", "notional", "order_value"]
    columns.append("fees")
    if not len(p.fills):
        return pd.DataFrame({c: [] for c in [*columns, *COST_METRICS]})
    venue_code, venues = pd.factorize(p.fills["venue"].astype(str), sort=True)
    n_venues = len(venues)
    key, slot = np.unique(p.pos * n_venues + venue_code, return_inverse=True)
    opos = key // n_venues
    qty = np.bincount(slot, p.fill_qty)
    value = np.bincount(slot, p.fill_qty * p.fill_price)
    s = p.sign[opos]
    spread_sum = np.bincount(
        slot, p.fill_qty * p.sign[p.pos] * (p.fill_price - p.fill_mid) / p.fill_mid * BPS
    )
    filled = costs["filled_quantity"].to_numpy()[opos]
    arrival_mid = costs["arrival_mid"].to_numpy()[opos]
    vwap = costs["interval_vwap"].to_numpy()[opos]
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = value / qty
        out = pd.DataFrame(
            {
                "order_id": p.orders["order_id"].to_numpy()[opos],
                "venue": np.asarray(venues)[key % n_venues],
                "n_fills": np.bincount(slot).astype(np.int64),
                "filled_quantity": qty,
                "notional": qty * avg,
                "order_value": costs["order_value"].to_numpy()[opos] * qty / filled,
                "fees": np.bincount(slot, p.fill_fee),
                "arrival_cost_bps": s * (avg - arrival_mid) / arrival_mid * BPS,
                "vwap_slippage_bps": s * (avg - vwap) / vwap * BPS,
                "spread_cost_bps": spread_sum / qty,
                **{m: costs[m].to_numpy()[opos] for m in ("impact_bps", *ORDER_VALUE_METRICS)},
            }
        )
    return out[[*columns, *COST_METRICS]]
