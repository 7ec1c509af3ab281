"""The execution report: per-order execution columns, the fills to look at, daily summaries per
desk and per broker, and a short text report of the day's headline numbers.

Definitions (``docs/jobs/execution-report.md`` is the reference). Arrival cost is weighted by
the filled notional, implementation shortfall (``is_bps``) by the order value (quantity x P_d),
so that an order that never filled still weighs what it was worth.

- time_to_complete_s: seconds from arrival_ts to the fill that brings the order's cumulative
  filled quantity to its quantity; NaN when the order never completes.
- a limit breach is a fill worse than its order's limit_price: a buy above it, a sell below it
  (orders without a limit have none).
- a price anomaly is a fill priced outside the [low, high] of its bar: the last bar starting at
  or before the fill, if the fill falls within that bar's minute; a fill in no bar is counted in
  fills_without_bar and not checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.jobs.tca.aggregate import weighted_mean
from analytics.jobs.tca.checks import FLAG_COLUMNS, Counts
from analytics.jobs.tca.kernel import BAR_NS, NS_PER_SECOND, Partition, take_or_nan

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]
NAT = np.iinfo(np.int64).min

EXCEPTION_COLUMNS = (
    "fill_id",
    "order_id",
    "symbol",
    "side",
    "ts",
    "quantity",
    "price",
    "venue",
    "limit_price",
    "bar_low",
    "bar_high",
    "limit_breach",
    "price_anomaly",
)


def _fill_tests(p: Partition) -> tuple[BOOL, BOOL, BOOL, F64, F64]:
    """Per fill: limit breach, outside its bar's range, in no bar; and the bar's low, high."""
    limit = p.orders["limit_price"].to_numpy(dtype=np.float64, na_value=np.nan)[p.pos]
    breach = p.sign[p.pos] * (p.fill_price - limit) > 0  # no limit (NaN): never a breach
    bar = p.fill_bar
    bar_start = p.bars.start[np.maximum(bar, 0)] if len(p.bars.start) else np.zeros(len(bar))
    in_bar = (bar >= 0) & (p.fill_ts < bar_start + BAR_NS)
    low = np.where(in_bar, take_or_nan(p.bars.low, bar), np.nan)
    high = np.where(in_bar, take_or_nan(p.bars.high, bar), np.nan)
    outside = in_bar & ((p.fill_price < low) | (p.fill_price > high))
    return breach, outside, ~in_bar, low, high


def _venue_shares(p: Partition, filled: F64) -> pd.DataFrame:
    """Per order with fills (indexed by its row): n_venues, venue_shares ("V:share,..." by
    share, largest first, then by name), top_venue and top_venue_share."""
    fills = pd.DataFrame(
        {"pos": p.pos, "venue": p.fills["venue"].astype(str).to_numpy(), "q": p.fill_qty}
    )
    slices = fills.groupby(["pos", "venue"], sort=True)["q"].sum().reset_index()
    slices["share"] = slices["q"] / filled[slices["pos"].to_numpy()]
    slices = slices.sort_values(["pos", "share", "venue"], ascending=[True, False, True])
    pos = slices["pos"].to_numpy()
    venue = slices["venue"].to_numpy(dtype=object)
    share = slices["share"].to_numpy()
    text = [f"{v}:{s:.4f}" for v, s in zip(venue, share, strict=True)]
    first = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]]) if len(pos) else np.zeros(0, int)
    stop = np.r_[first[1:], len(pos)] if len(pos) else first
    return pd.DataFrame(
        {
            "n_venues": (stop - first).astype(np.int64),
            # a loop over orders: pandas' groupby-join runs Python per group, far slower
            "venue_shares": [",".join(text[a:b]) for a, b in zip(first, stop, strict=True)],
            "top_venue": venue[first],
            "top_venue_share": share[first],
        },
        index=pos[first],
    )


def execution_columns(p: Partition, costs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The execution columns of each order of ``p`` (same rows as ``costs``) and the fills
    that breach their limit or fall outside their bar's range."""
    n = len(p.orders)
    first, stop = p.segments()
    has = stop > first
    first_ts = last_ts = np.full(n, NAT, dtype=np.int64)
    if len(p.fill_ts):
        first_ts = np.where(has, p.fill_ts[np.minimum(first, len(p.fill_ts) - 1)], NAT)
        last_ts = np.where(has, p.fill_ts[np.maximum(stop - 1, 0)], NAT)
    cumulative = pd.Series(p.fill_qty).groupby(p.pos).cumsum().to_numpy()
    done = np.flatnonzero(cumulative >= p.quantity[p.pos])
    done_pos, at = np.unique(p.pos[done], return_index=True)
    complete_ts = np.full(n, NAT, dtype=np.int64)
    complete_ts[done_pos] = p.fill_ts[done[at]]
    breach, outside, no_bar, low, high = _fill_tests(p)
    filled = costs["filled_quantity"].to_numpy()
    out = pd.DataFrame(
        {
            "first_fill_ts": first_ts,
            "last_fill_ts": last_ts,
            "time_to_complete_s": np.where(
                complete_ts != NAT, (complete_ts - p.arrival) / NS_PER_SECOND, np.nan
            ),
            "time_to_last_fill_s": np.where(has, (last_ts - p.arrival) / NS_PER_SECOND, np.nan),
            "limit_breaches": np.bincount(p.pos, breach, minlength=n).astype(np.int64),
            "price_anomalies": np.bincount(p.pos, outside, minlength=n).astype(np.int64),
            "fills_without_bar": np.bincount(p.pos, no_bar, minlength=n).astype(np.int64),
        }
    )
    venues = _venue_shares(p, filled).reindex(np.arange(n))
    out["n_venues"] = venues["n_venues"].fillna(0).astype(np.int64).to_numpy()
    for name in ("venue_shares", "top_venue"):  # "" for an order without fills
        text = venues[name].to_numpy(dtype=object)
        out[name] = np.where(pd.isna(text), "", text)
    out["top_venue_share"] = venues["top_venue_share"].to_numpy(dtype=np.float64)
    flagged = breach | outside
    rows = np.flatnonzero(flagged)
    fills = p.fills.iloc[rows]
    exceptions = pd.DataFrame(
        {
            "fill_id": fills["fill_id"].astype(str).to_numpy(),
            "order_id": fills["order_id"].astype(str).to_numpy(),
            "symbol": fills["symbol"].astype(str).to_numpy(),
            "side": fills["side"].astype(str).to_numpy(),
            "ts": p.fill_ts[rows],
            "quantity": p.fill_qty[rows],
            "price": p.fill_price[rows],
            "venue": fills["venue"].astype(str).to_numpy(),
            "limit_price": p.orders["limit_price"].to_numpy(dtype=np.float64, na_value=np.nan)[
                p.pos[rows]
            ],
            "bar_low": low[rows],
            "bar_high": high[rows],
            "limit_breach": breach[rows],
            "price_anomaly": outside[rows],
        }
    )
    return out, exceptions


def report_counts(execution: pd.DataFrame) -> Counts:
    return Counts(
        limit_breaches=int(execution["limit_breaches"].sum()),
        price_anomalies=int(execution["price_anomalies"].sum()),
        fills_without_bar=int(execution["fills_without_bar"].sum()),
    )


#: The daily summaries' columns after ``date`` and the desk or broker.
DAILY_COLUMNS = (
    "n_orders",
    "n_filled_orders",
    "n_complete_orders",
    "n_fills",
    "quantity",
    "filled_quantity",
    "fill_rate",
    "notional",
    "order_value",
    "fees",
    "is_total",
    "arrival_cost_bps",
    "is_bps",
    "median_time_to_complete_s",
    "limit_breaches",
    "price_anomalies",
    "flagged_orders",
)
DAILY_COUNTS = ("limit_breaches", "price_anomalies", "flagged_orders")


def daily_summary(orders: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per date and ``key`` (desk or broker), from the execution report's per-order rows."""
    columns = ["date", key, *DAILY_COLUMNS]
    rows = []
    ordered = orders.sort_values(["date", key, "order_id"])
    flags = list(FLAG_COLUMNS)
    for (day, value), g in ordered.groupby(["date", key], sort=True, observed=True):
        w = g["notional"].to_numpy(dtype=np.float64)
        rows.append(
            {
                "date": day,
                key: value,
                "n_orders": len(g),
                "n_filled_orders": int((g["n_fills"] > 0).sum()),
                "n_complete_orders": int(g["time_to_complete_s"].notna().sum()),
                "n_fills": int(g["n_fills"].sum()),
                "quantity": g["quantity"].sum(),
                "filled_quantity": g["filled_quantity"].sum(),
                "fill_rate": g["filled_quantity"].sum() / g["quantity"].sum(),
                "notional": g["notional"].sum(),
                "order_value": g["order_value"].sum(),
                "fees": g["fees"].sum(),
                "is_total": g["is_total"].sum(),
                "arrival_cost_bps": weighted_mean(g["arrival_cost_bps"].to_numpy(), w),
                "is_bps": weighted_mean(
                    g["is_bps"].to_numpy(), g["order_value"].to_numpy(dtype=np.float64)
                ),
                "median_time_to_complete_s": g["time_to_complete_s"].median(),
                "limit_breaches": int(g["limit_breaches"].sum()),
                "price_anomalies": int(g["price_anomalies"].sum()),
                "flagged_orders": int(g[flags].any(axis=1).sum()),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _bps(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:+.2f} bps"


def _seconds(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:,.0f} s"


def text_report(orders: pd.DataFrame, counts: Counts, dates: Sequence[dt.date]) -> str:
    """The day's headline numbers, as a few lines of plain text."""
    w = orders["notional"].to_numpy(dtype=np.float64)
    v = orders["order_value"].to_numpy(dtype=np.float64)
    span = f"{dates[0]}" if len(dates) == 1 else f"{dates[0]} .. {dates[-1]}"
    quantity = float(orders["quantity"].sum())
    filled = float(orders["filled_quantity"].sum())
    lines = [
        f"Execution report {span}",
        "",
        f"Orders: {len(orders):,} ({int((orders['n_fills'] > 0).sum()):,} with fills, "
        f"{int(orders['time_to_complete_s'].notna().sum()):,} complete); "
        f"fills: {int(orders['n_fills'].sum()):,}",
        f"Notional traded: {float(orders['notional'].sum()):,.2f}; fill rate "
        f"{filled / quantity:.2%}; fees {float(orders['fees'].sum()):,.2f}",
        f"Arrival cost (notional-weighted): "
        f"{_bps(weighted_mean(orders['arrival_cost_bps'].to_numpy(), w))}; implementation "
        f"shortfall (order-value-weighted) {_bps(weighted_mean(orders['is_bps'].to_numpy(), v))}, "
        f"{float(orders['is_total'].sum()):,.2f} in total",
        f"Median time to complete: {_seconds(orders['time_to_complete_s'].median())}",
        f"Limit breaches: {counts.limit_breaches:,} fill(s); price anomalies (outside the "
        f"bar's low-high): {counts.price_anomalies:,} fill(s)",
        f"Flagged orders: {counts.orders_with_fills_before_arrival:,} with fills before "
        f"arrival, {counts.orders_with_fills_after_end:,} with fills after end, "
        f"{counts.overfilled_orders:,} over-filled, {counts.orders_without_bars:,} without bars",
    ]
    costs = {
        str(broker): (
            weighted_mean(g["arrival_cost_bps"].to_numpy(), g["notional"].to_numpy()),
            float(g["notional"].sum()),
        )
        for broker, g in orders.groupby("broker", sort=True, observed=True)
    }
    ranked = sorted((c, b, n) for b, (c, n) in costs.items() if np.isfinite(c))
    if ranked:
        cost, broker, notional = ranked[-1]
        lines.append(
            f"Highest arrival cost by broker: {broker} {_bps(cost)} on {notional:,.2f} notional"
        )
    return "\n".join(lines) + "\n"
