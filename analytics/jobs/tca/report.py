"""The TCA and execution-report sections.

TCA: the dates, the distribution of arrival cost by broker (``orders/``, a box per broker),
arrival cost against participation (one point per order), then every aggregate table the run
committed (:data:`AGGREGATES`, and any other ``by_*`` table): the main columns, with the rest
folded beneath; long tables scroll in their box. Execution report: fill rate and arrival cost by
broker, the daily summaries per desk and per broker, and the job's own text report when it is
there.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from analytics.data.storage import join, open_fs
from analytics.errors import OutputError
from analytics.jobs.tca.buckets import SIZE_LABELS, VOLATILITY_LABELS
from analytics.report import html, plots
from analytics.run.committed import CommittedRun as RunView

#: The aggregate tables in the order shown: table, key column, heading. A committed ``by_*``
#: table not named here is shown after them under its own name.
AGGREGATES: Final = (
    ("by_broker", "broker", "By broker"),
    ("by_desk", "desk", "By desk"),
    ("by_strategy", "strategy", "By strategy"),
    ("by_day", "date", "By day"),
    ("by_venue", "venue", "By venue (markouts: negative is adverse)"),
    ("by_time_of_day", "bucket", "By time of day (arrival, exchange time, 30 minutes)"),
    ("by_size", "bucket", "By order size (quantity over ADV)"),
    ("by_volatility", "bucket", "By volatility (terciles of the day's sigma)"),
)
#: The bucket tables whose rows have an order of their own (not the labels' alphabetical one).
_BUCKET_ORDER: Final = {"by_size": SIZE_LABELS, "by_volatility": VOLATILITY_LABELS}
#: The columns an aggregate table shows first (when it has them); the others are folded.
_MAIN_COLUMNS: Final = (
    "n_orders",
    "n_fills",
    "filled_quantity",
    "notional",
    "order_value",
    "fees",
    "is_total",
    "arrival_cost_bps_mean",
    "arrival_cost_bps_p50",
    "arrival_cost_bps_p90",
    "spread_cost_bps_mean",
    "vwap_slippage_bps_mean",
    "impact_bps_mean",
    "is_bps_mean",
    "markout_1m_bps_mean",
    "markout_5m_bps_mean",
    "markout_30m_bps_mean",
    "expected_cost_bps_mean",
    "cost_vs_expected_bps_mean",
)
#: Dates listed in the "dates" card; more are shown as a range, all of them in a fold.
CARD_DATES: Final = 3
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


def _table(
    frame: pd.DataFrame, columns: tuple[tuple[str, html.Format | None], ...], *, scroll: bool
) -> str:
    shown = [(c, f) for c, f in columns if c in frame.columns]
    return html.table(
        [c for c, _ in shown],
        (list(r) for r in frame[[c for c, _ in shown]].values),
        [f for _, f in shown],
        scroll=scroll,
    )


def column_format(column: str) -> html.Format:
    """The format of an aggregate's column, by its name: counts, money, bps, rates."""
    if column.startswith("n_"):
        return html.fmt_int
    if "_bps" in column:
        return html.fmt_ratio
    if column.endswith("_rate"):
        return html.fmt_pct
    if column.endswith(("quantity", "notional", "value", "fees", "total")):
        return html.fmt_money
    return html.fmt_float


def ordered_rows(name: str, key: str, frame: pd.DataFrame) -> pd.DataFrame:
    """An aggregate's rows in reading order: dates and times of day ascending, size and
    volatility buckets small to large, the other keys by notional, largest first."""
    if name in _BUCKET_ORDER:
        rank = {label: i for i, label in enumerate(_BUCKET_ORDER[name])}
        return frame.assign(_o=frame[key].astype(str).map(rank)).sort_values(["_o", key])
    if key in ("date", "bucket") or "notional" not in frame.columns:
        return frame.sort_values(key, kind="stable")
    return frame.sort_values(["notional", key], ascending=[False, True], kind="stable")


def aggregate_block(name: str, key: str, heading: str, frame: pd.DataFrame) -> str:
    """One aggregate table: the key and its main columns (scrolling past
    :data:`analytics.report.html.SCROLL_ROWS` rows), the other columns folded beneath."""
    rows = ordered_rows(name, key, frame.assign(**{key: frame[key].astype(str)}))
    main = [(c, column_format(c)) for c in _MAIN_COLUMNS if c in rows.columns]
    rest = [(c, column_format(c)) for c in rows.columns if c not in {key, "_o", *_MAIN_COLUMNS}]
    first: tuple[tuple[str, html.Format | None], ...] = ((key, None),)
    blocks = [
        f"<h3>{html.escape_text(heading)}</h3>",
        _table(rows, (*first, *main), scroll=True),
    ]
    if rest:
        blocks.append(
            html.fold(
                f"{name}: the other {len(rest)} columns (percentiles, IS terms, sums)",
                _table(rows, (*first, *rest), scroll=True),
            )
        )
    return "".join(blocks)


def aggregate_tables(view: RunView) -> list[tuple[str, str, str]]:
    """The aggregate tables the run committed, in the order shown: table, key, heading."""
    known = [a for a in AGGREGATES if view.has_table(a[0])]
    named = {a[0] for a in AGGREGATES}
    others = sorted(t for t in view.manifest.outputs if t.startswith("by_") and t not in named)
    return [*known, *((t, "", t) for t in others)]


def dates_card(orders: pd.DataFrame) -> tuple[str, str]:
    """The "dates" card's value, and a fold listing every date when the card cannot."""
    dates = sorted(str(d) for d in orders["date"].dropna().unique())
    if len(dates) <= CARD_DATES:
        return ", ".join(dates) or "—", ""
    listed = f'<p class="dates">{html.escape_text(", ".join(dates))}</p>'
    return (
        f"{dates[0]} .. {dates[-1]} ({len(dates)})",
        html.fold(f"all {len(dates)} dates", listed),
    )


def tca_section(view: RunView) -> str:
    """The dates, arrival cost by broker and against participation, every aggregate table."""
    orders = view.table("orders").to_pandas()
    orders["broker"] = orders["broker"].astype(str)
    brokers = sorted(orders["broker"].unique())
    cost = orders["arrival_cost_bps"]
    is_bps = orders["is_bps"]
    dates, all_dates = dates_card(orders)
    cards = [
        ("dates", dates),
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
    box = plots.box_plot(
        [(b, cost[orders["broker"] == b].to_numpy(dtype=np.float64)) for b in brokers],
        title="Arrival cost by broker",
        value_label="arrival cost (bps, positive is a cost)\nbox 25-75%, whiskers 5-95%, dot: "
        "mean; (n): orders with a cost",
        value_format=lambda v: f"{v:.3g}",
    )
    scatter = plots.scatter(
        [
            plots.Points(
                b,
                orders.loc[orders["broker"] == b, "participation"].to_numpy(dtype=np.float64),
                orders.loc[orders["broker"] == b, "arrival_cost_bps"].to_numpy(dtype=np.float64),
            )
            for b in brokers
        ],
        title="Arrival cost against participation (a dot per order)",
        x_label="participation (filled / market volume)",
        y_label="arrival cost (bps)",
        x_format=lambda v: f"{v * 100:.3g}%",
        y_format=lambda v: f"{v:.3g}",
    )
    aggregates = []
    for name, key, heading in aggregate_tables(view):
        frame = view.table(name).to_pandas()
        aggregates.append(aggregate_block(name, key or str(frame.columns[0]), heading, frame))
    return html.section(
        "Transaction-cost analysis",
        html.cards(cards),
        all_dates,
        f'<div class="charts">{html.figure(box)}{html.figure(scatter)}</div>',
        html.note(
            "Aggregates: fill-based costs (arrival, spread, VWAP slippage, impact, markouts) are "
            "weighted by filled notional; is_bps, its terms and the pre-trade model by order "
            "value; p50 and p90 are weighted percentiles."
        ),
        *aggregates,
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
    fill = plots.bar_chart(
        list(by_broker.index),
        by_broker["fill_rate"].to_numpy(dtype=np.float64),
        title="Fill rate by broker",
        value_label="filled / ordered quantity",
        value_format=lambda v: f"{v * 100:.1f}%",
    )
    cost = plots.bar_chart(
        list(by_broker.index),
        by_broker["arrival_cost_bps"].to_numpy(dtype=np.float64),
        title="Arrival cost by broker",
        value_label="arrival cost (bps, notional-weighted; positive is a cost)",
        value_format=lambda v: f"{v:.3g}",
    )
    daily = (("date", None),)
    return html.section(
        "Execution report",
        html.cards(cards),
        f'<div class="charts">{html.figure(fill)}{html.figure(cost)}</div>',
        "<h3>Daily by desk</h3>",
        _table(
            desks.sort_values(["date", "desk"]),
            (*daily, ("desk", None), *_DAILY_COLUMNS),
            scroll=True,
        ),
        "<h3>Daily by broker</h3>",
        _table(
            brokers.sort_values(["date", "broker"]),
            (*daily, ("broker", None), *_DAILY_COLUMNS),
            scroll=True,
        ),
        _text_report(view),
        anchor="execution-report",
    )
