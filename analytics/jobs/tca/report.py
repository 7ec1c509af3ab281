"""The TCA and execution-report sections.

TCA: the distribution of arrival cost by broker (``orders/``, a box per broker), arrival cost
against participation (one point per order), and the by-venue table. Execution report: fill
rate and arrival cost by broker, the daily summaries per desk and per broker, and the job's own
text report when it is there.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from analytics.data.storage import join, open_fs
from analytics.errors import OutputError
from analytics.report import charts, html, svg
from analytics.run.committed import CommittedRun as RunView

_VENUE_COLUMNS: Final = (
    ("venue", None),
    ("n_orders", html.fmt_int),
    ("n_fills", html.fmt_int),
    ("filled_quantity", html.fmt_money),
    ("notional", html.fmt_money),
    ("fees", html.fmt_money),
    ("arrival_cost_bps_mean", html.fmt_ratio),
    ("arrival_cost_bps_p50", html.fmt_ratio),
    ("arrival_cost_bps_p90", html.fmt_ratio),
    ("spread_cost_bps_mean", html.fmt_ratio),
    ("is_bps_mean", html.fmt_ratio),
    ("markout_1m_bps_mean", html.fmt_ratio),
    ("markout_5m_bps_mean", html.fmt_ratio),
    ("markout_30m_bps_mean", html.fmt_ratio),
)
_DAILY_COLUMNS: Final = (
    ("n_orders", html.fmt_int),
    ("n_fills", html.fmt_int),
    ("fill_rate", html.fmt_pct),
    ("notional", html.fmt_money),
    ("fees", html.fmt_money),
    ("arrival_cost_bps", html.fmt_ratio),
    ("is_bps", html.fmt_ratio),
    ("median_time_to_complete_s", html.fmt_float),
    ("limit_breaches", html.fmt_int),
    ("price_anomalies", html.fmt_int),
    ("flagged_orders", html.fmt_int),
)


def weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    """Notional-weighted mean over the rows where both are finite (NaN if none)."""
    v, w = values.to_numpy(dtype=np.float64), weights.to_numpy(dtype=np.float64)
    ok = np.isfinite(v) & np.isfinite(w)
    return float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if np.sum(w[ok]) else float("nan")


def _table(frame: pd.DataFrame, columns: tuple[tuple[str, html.Format | None], ...]) -> str:
    shown = [(c, f) for c, f in columns if c in frame.columns]
    return html.table(
        [c for c, _ in shown],
        (list(r) for r in frame[[c for c, _ in shown]].values),
        [f for _, f in shown],
    )


def tca_section(view: RunView) -> str:
    """Arrival cost by broker and against participation, and the by-venue table."""
    orders = view.table("orders").to_pandas()
    orders["broker"] = orders["broker"].astype(str)
    brokers = sorted(orders["broker"].unique())
    cost = orders["arrival_cost_bps"]
    is_bps = orders["is_bps"]
    cards = [
        ("dates", ", ".join(str(d) for d in sorted(orders["date"].unique())[:3])),
        ("orders", f"{len(orders):,}"),
        ("fills", f"{int(orders['n_fills'].sum()):,}"),
        ("notional", html.fmt_money(float(orders["notional"].sum()))),
        ("arrival cost (notional-wtd)", f"{weighted_mean(cost, orders['notional']):.2f} bps"),
        ("IS total", html.fmt_money(float(orders["is_total"].sum()))),
        *(
            [("IS (order-value-wtd)", f"{weighted_mean(is_bps, orders['order_value']):.2f} bps")]
            if "order_value" in orders.columns
            else []
        ),
    ]
    box = charts.box_plot(
        [(b, cost[orders["broker"] == b].to_numpy(dtype=np.float64)) for b in brokers],
        title="Arrival cost by broker (bps; box 25-75%, whiskers 5-95%, dot: mean)",
        value_format=lambda v: f"{v:.3g}",
        x_title="arrival cost (bps, positive is a cost)",
        width=560,
    )
    points = [
        svg.Series(
            b,
            orders.loc[orders["broker"] == b, "participation"].to_numpy(dtype=np.float64),
            orders.loc[orders["broker"] == b, "arrival_cost_bps"].to_numpy(dtype=np.float64),
        )
        for b in brokers
    ]
    scatter = charts.scatter(
        points,
        title="Arrival cost against participation (one point per order)",
        x_format=svg.pct,
        y_format=lambda v: f"{v:.3g}",
        x_title="participation (filled / market volume)",
        y_title="arrival cost (bps)",
        width=560,
    )
    venues = view.table("by_venue").to_pandas().sort_values("notional", ascending=False)
    return html.section(
        "Transaction-cost analysis",
        html.cards(cards),
        f'<div class="charts">{html.figure(box)}{html.figure(scatter)}</div>',
        "<h3>By venue (notional-weighted; is_bps by order value; markouts: negative is "
        "adverse)</h3>",
        _table(venues, _VENUE_COLUMNS),
        anchor="tca",
    )


def _text_report(view: RunView) -> str:
    url = join(view.output_url, "report.txt")
    fs, path = open_fs(url)
    try:
        with fs.open(path, "r") as handle:
            text = str(handle.read())
    except OSError:
        return ""
    return f"<h3>The job's text report</h3><pre>{html.escape_text(text)}</pre>"


def execution_section(view: RunView) -> str:
    """Fill rate and arrival cost by broker, then the desk and broker daily summaries."""
    desks = view.table("desk_daily").to_pandas()
    brokers = view.table("broker_daily").to_pandas()
    try:
        orders = view.table("orders", ["order_id", "notional"]).to_pandas()
    except OutputError:
        orders = pd.DataFrame({"order_id": [], "notional": []})
    by_broker = brokers.groupby(brokers["broker"].astype(str)).apply(
        lambda g: pd.Series(
            {
                "fill_rate": g["filled_quantity"].sum() / g["quantity"].sum(),
                "arrival_cost_bps": weighted_mean(g["arrival_cost_bps"], g["notional"]),
            }
        ),
        include_groups=False,
    )
    cards = [
        ("orders", f"{len(orders):,}"),
        ("notional", html.fmt_money(float(orders["notional"].sum()))),
        ("fills", f"{int(brokers['n_fills'].sum()):,}"),
        ("limit breaches", f"{int(brokers['limit_breaches'].sum()):,}"),
        ("price anomalies", f"{int(brokers['price_anomalies'].sum()):,}"),
        ("flagged orders", f"{int(brokers['flagged_orders'].sum()):,}"),
    ]
    fill = charts.bar_chart(
        list(by_broker.index),
        by_broker["fill_rate"].to_numpy(dtype=np.float64),
        title="Fill rate by broker (filled / ordered quantity)",
        value_format=svg.pct,
        width=560,
    )
    cost = charts.bar_chart(
        list(by_broker.index),
        by_broker["arrival_cost_bps"].to_numpy(dtype=np.float64),
        title="Arrival cost by broker (bps, notional-weighted)",
        value_format=lambda v: f"{v:.3g}",
        width=560,
    )
    daily = (("date", None),)
    return html.section(
        "Execution report",
        html.cards(cards),
        f'<div class="charts">{html.figure(fill)}{html.figure(cost)}</div>',
        "<h3>Daily by desk</h3>",
        _table(desks.sort_values(["date", "desk"]), (*daily, ("desk", None), *_DAILY_COLUMNS)),
        "<h3>Daily by broker</h3>",
        _table(
            brokers.sort_values(["date", "broker"]), (*daily, ("broker", None), *_DAILY_COLUMNS)
        ),
        _text_report(view),
        anchor="execution-report",
    )
