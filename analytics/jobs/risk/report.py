"""The risk section: per portfolio, the scenario P&L histogram with its VaR and ES, the VaR table
and the component VaR of each holding.

The histogram draws ``scenarios/`` (one-day P&L); its markers are the one-day historical VaR and
ES of each confidence level (a horizon's figures over ``sqrt(h)``), at ``-var`` and ``-es`` on
the P&L axis, where the losses are.
"""

from __future__ import annotations

import math
from html import escape
from typing import Final

import numpy as np
import pandas as pd

from analytics.report import charts, html, svg
from analytics.run.committed import CommittedRun as RunView

#: Portfolios drawn (the largest by gross exposure); the VaR table lists every portfolio.
MAX_PORTFOLIOS: Final = 8
#: Holdings drawn in a component-VaR chart; the rest are summed into one bar.
MAX_BARS: Final = 15
_MARKER_COLORS: Final = ("#D55E00", "#CC79A7", "#E69F00", "#000000")


def _markers(var: pd.DataFrame) -> list[svg.Marker]:
    """One-day historical VaR (solid) and ES (dashed) of each confidence, as P&L levels."""
    hist = var[var["method"] == "historical"]
    markers = []
    for i, confidence in enumerate(sorted(hist["confidence"].astype(float).unique())):
        rows = hist[hist["confidence"] == confidence]
        row = rows.sort_values("horizon_days").iloc[0]
        scale = math.sqrt(float(row["horizon_days"]))
        color = _MARKER_COLORS[i % len(_MARKER_COLORS)]
        level = f"{float(confidence) * 100:g}%"
        markers.append(svg.Marker(-float(row["var"]) / scale, f"VaR {level}", color))
        markers.append(svg.Marker(-float(row["es"]) / scale, f"ES {level}", color, dashed=True))
    return markers


def _components(contrib: pd.DataFrame) -> tuple[list[str], list[float], str]:
    """Component VaR at the first confidence and shortest horizon; small holdings summed."""
    confidence = float(contrib["confidence"].min())
    horizon = int(contrib["horizon_days"].min())
    rows = contrib[(contrib["confidence"] == confidence) & (contrib["horizon_days"] == horizon)]
    rows = rows.assign(size=rows["component_var"].abs()).sort_values(
        ["size", "symbol"], ascending=[False, True]
    )
    labels = rows["symbol"].astype(str).tolist()
    values = rows["component_var"].astype(float).tolist()
    if len(labels) > MAX_BARS:
        rest = len(labels) - (MAX_BARS - 1)
        labels = [*labels[: MAX_BARS - 1], f"{rest} others"]
        values = [*values[: MAX_BARS - 1], float(np.sum(values[MAX_BARS - 1 :]))]
    return labels, values, f"{confidence * 100:g}%, {horizon}-day"


def _portfolio(name: str, var: pd.DataFrame, contrib: pd.DataFrame, pnl: pd.DataFrame) -> str:
    blocks = [f"<h3>Portfolio {escape(name)}</h3>"]
    figures = []
    if len(pnl):
        figures.append(
            charts.histogram(
                pnl["pnl"].to_numpy(dtype=np.float64),
                title=f"{name}: one-day P&L of {len(pnl):,} scenarios",
                markers=_markers(var),
                x_format=svg.num,
                x_title="P&L",
                width=560,
            )
        )
    if len(contrib):
        labels, values, which = _components(contrib)
        figures.append(
            charts.bar_chart(
                labels,
                values,
                title=f"{name}: component VaR ({which})",
                value_format=svg.num,
                width=560,
            )
        )
    blocks.append(f'<div class="charts">{"".join(html.figure(c) for c in figures)}</div>')
    return "".join(blocks)


def section(view: RunView) -> str:
    """The VaR table of every portfolio, then the charts of the largest ones."""
    var = view.table("var").to_pandas()
    contrib = view.table("contributions").to_pandas()
    scenarios = view.table("scenarios").to_pandas() if view.has_table("scenarios") else None
    for frame in (var, contrib, *([scenarios] if scenarios is not None else [])):
        frame["portfolio"] = frame["portfolio"].astype(str)
    values = var.groupby("portfolio")["net"].first()
    gross = var.groupby("portfolio")["gross"].first()
    order = gross.sort_values(ascending=False, kind="stable").index.tolist()
    scen_dates = view.summary.get("scenarios")
    cards = [
        ("as of", str(view.parameters.get("as_of", "—"))),
        ("portfolios", f"{len(order):,}"),
        ("scenarios", f"{scen_dates}" if scen_dates is not None else "—"),
        (
            "scenario window",
            f"{view.summary.get('scenario_start', '—')} .. {view.summary.get('scenario_end', '—')}",
        ),
        ("total net value", html.fmt_money(float(values.sum()))),
    ]
    table_cols = [
        ("portfolio", None),
        ("method", None),
        ("confidence", html.fmt_pct),
        ("horizon_days", html.fmt_int),
        ("gross", html.fmt_money),
        ("net", html.fmt_money),
        ("var", html.fmt_money),
        ("es", html.fmt_money),
        ("var_pct", html.fmt_pct),
        ("es_pct", html.fmt_pct),
    ]
    ordered = var.assign(_o=var["portfolio"].map({p: i for i, p in enumerate(order)})).sort_values(
        ["_o", "method", "confidence", "horizon_days"]
    )
    table = html.table(
        [c for c, _ in table_cols],
        (list(r) for r in ordered[[c for c, _ in table_cols]].values),
        [f for _, f in table_cols],
    )
    blocks = [html.cards(cards)]
    if scenarios is None:
        blocks.append(
            html.note("This run has no scenarios/ table: the P&L histograms are omitted.")
        )
    for name in order[:MAX_PORTFOLIOS]:
        pnl = scenarios[scenarios["portfolio"] == name] if scenarios is not None else pd.DataFrame()
        blocks.append(
            _portfolio(
                name, var[var["portfolio"] == name], contrib[contrib["portfolio"] == name], pnl
            )
        )
    if len(order) > MAX_PORTFOLIOS:
        blocks.append(
            html.note(f"Charts for the {MAX_PORTFOLIOS} largest of {len(order)} portfolios.")
        )
    blocks += ["<h3>VaR and expected shortfall</h3>", table]
    return html.section("Risk", *blocks, anchor="risk")
