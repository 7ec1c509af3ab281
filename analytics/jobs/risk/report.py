"""The risk section: per portfolio, the scenario P&L histogram with its VaR and ES, the component
VaR of each holding and the VaR backtest (daily P&L against -VaR, exceptions marked); then the
VaR table, the backtest's traffic lights, stressed against current VaR, and the top tail
contributors (component ES).

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

from analytics.report import html, plots
from analytics.run.committed import CommittedRun as RunView

#: Portfolios drawn (the largest by gross exposure); the VaR table lists every portfolio.
MAX_PORTFOLIOS: Final = 8
#: Holdings drawn in a component-VaR chart; the rest are summed into one bar.
MAX_BARS: Final = 15
_MARKER_COLORS: Final = ("#D55E00", "#CC79A7", "#E69F00", "#000000")
#: Holdings listed per portfolio among the top tail contributors.
TOP_TAIL: Final = 5


def _markers(var: pd.DataFrame) -> list[plots.Marker]:
    """One-day historical VaR (solid) and ES (dashed) of each confidence, as P&L levels."""
    hist = var[var["method"] == "historical"]
    markers = []
    for i, confidence in enumerate(sorted(hist["confidence"].astype(float).unique())):
        rows = hist[hist["confidence"] == confidence]
        row = rows.sort_values("horizon_days").iloc[0]
        scale = math.sqrt(float(row["horizon_days"]))
        color = _MARKER_COLORS[i % len(_MARKER_COLORS)]
        level = f"{float(confidence) * 100:g}%"
        markers.append(plots.Marker(-float(row["var"]) / scale, f"VaR {level}", color))
        markers.append(plots.Marker(-float(row["es"]) / scale, f"ES {level}", color, dashed=True))
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


def backtest_choice(exceptions: pd.DataFrame) -> tuple[str, float]:
    """The (method, confidence) a backtest chart draws: historical (else the first method) at
    the highest confidence."""
    methods = sorted(exceptions["method"].astype(str).unique())
    method = "historical" if "historical" in methods else methods[0]
    return method, float(exceptions["confidence"].max())


def _backtest_chart(name: str, exceptions: pd.DataFrame) -> str:
    method, confidence = backtest_choice(exceptions)
    rows = exceptions[
        (exceptions["method"] == method) & (exceptions["confidence"] == confidence)
    ].sort_values("date")
    dates = pd.DatetimeIndex(pd.to_datetime(rows["date"]))
    pnl = pd.Series(rows["pnl"].to_numpy(dtype=np.float64), index=dates)
    var = pd.Series(rows["var"].to_numpy(dtype=np.float64), index=dates)
    hit = rows["exception"].to_numpy(dtype=bool)
    level = f"{confidence * 100:g}%"
    return plots.dated_chart(
        [
            plots.Trace("daily P&L", pnl, plots.PALETTE[0]),
            plots.Trace(f"-VaR {method} {level}", -var, plots.PALETTE[1]),
            plots.Trace(f"{int(hit.sum())} exceptions", pnl[hit], plots.BLACK, dots=True),
        ],
        title=f"{name}: VaR backtest over {len(rows):,} days",
        y_label="P&L",
    )


def _portfolio(
    name: str,
    var: pd.DataFrame,
    contrib: pd.DataFrame,
    pnl: pd.DataFrame,
    exceptions: pd.DataFrame,
) -> str:
    blocks = [f"<h3>Portfolio {escape(name)}</h3>"]
    figures = []
    if len(pnl):
        figures.append(
            plots.histogram(
                pnl["pnl"].to_numpy(dtype=np.float64),
                title=f"{name}: one-day P&L of {len(pnl):,} scenarios",
                x_label="P&L",
                y_label="scenarios",
                markers=_markers(var),
                value_format=plots.compact,
            )
        )
    if len(contrib):
        labels, values, which = _components(contrib)
        figures.append(
            plots.bar_chart(
                labels,
                values,
                title=f"{name}: component VaR ({which})",
                value_label="parametric component VaR (sums to the VaR)",
                value_format=plots.compact,
            )
        )
    if len(exceptions):
        figures.append(_backtest_chart(name, exceptions))
    blocks.append(f'<div class="charts">{"".join(html.figure(c) for c in figures)}</div>')
    return "".join(blocks)


def _ordered(frame: pd.DataFrame, order: list[str], keys: list[str]) -> pd.DataFrame:
    rank = frame["portfolio"].map({p: i for i, p in enumerate(order)})
    return frame.assign(_o=rank).sort_values(["_o", *keys], kind="stable")


def _table(frame: pd.DataFrame, cols: list[tuple[str, html.Format | None]]) -> str:
    names = [c for c, _ in cols]
    return html.table(names, (list(r) for r in frame[names].values), [f for _, f in cols])


def traffic_lights(backtest: pd.DataFrame, order: list[str]) -> str:
    """The ``var_backtest`` rows: exceptions against expected, the tests' p-values, the zone."""
    return _table(
        _ordered(backtest, order, ["method", "confidence"]),
        [
            ("portfolio", None),
            ("method", None),
            ("confidence", html.fmt_pct),
            ("n_days", html.fmt_int),
            ("exceptions", html.fmt_int),
            ("expected", html.fmt_float),
            ("kupiec_p", html.fmt_float),
            ("christoffersen_p", html.fmt_float),
            ("cc_p", html.fmt_float),
            ("traffic_light", None),
        ],
    )


def stressed_vs_current(var: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One-day historical VaR and ES of today's book against the stressed ones, and their
    ratio, per portfolio and confidence."""
    one_day = var[var["horizon_days"] == var["horizon_days"].min()]
    keys = ["portfolio", "confidence"]
    current = one_day[one_day["method"] == "historical"].set_index(keys)[["var", "es"]]
    stressed = one_day[one_day["method"] == "stressed"].set_index(keys)[["var", "es"]]
    stressed = stressed.rename(columns={"var": "var_stressed", "es": "es_stressed"})
    joined = current.join(stressed, how="inner").reset_index()
    with np.errstate(divide="ignore", invalid="ignore"):
        joined["var_ratio"] = joined["var_stressed"] / joined["var"]
    return _ordered(joined, order, ["confidence"])


def top_tail(contrib: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Each portfolio's :data:`TOP_TAIL` largest components of the historical ES, at the highest
    confidence and the shortest horizon."""
    rows = contrib[
        (contrib["confidence"] == contrib["confidence"].max())
        & (contrib["horizon_days"] == contrib["horizon_days"].min())
    ]
    rows = rows.sort_values(["component_es_hist", "symbol"], ascending=[False, True])
    return _ordered(rows.groupby("portfolio").head(TOP_TAIL), order, [])


def section(view: RunView) -> str:
    """The VaR table of every portfolio, then the charts of the largest ones."""
    var = view.table("var").to_pandas()
    contrib = view.table("contributions").to_pandas()
    scenarios = view.table("scenarios").to_pandas() if view.has_table("scenarios") else None
    exceptions = (
        view.table("var_exceptions").to_pandas()
        if view.has_table("var_exceptions")
        else pd.DataFrame({"portfolio": [], "method": [], "confidence": []})
    )
    backtest = view.table("var_backtest").to_pandas() if view.has_table("var_backtest") else None
    others = [f for f in (scenarios, backtest) if f is not None]
    for frame in (var, contrib, exceptions, *others):
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
                name,
                var[var["portfolio"] == name],
                contrib[contrib["portfolio"] == name],
                pnl,
                exceptions[exceptions["portfolio"] == name],
            )
        )
    if len(order) > MAX_PORTFOLIOS:
        blocks.append(
            html.note(f"Charts for the {MAX_PORTFOLIOS} largest of {len(order)} portfolios.")
        )
    blocks += ["<h3>VaR and expected shortfall</h3>", table]
    if backtest is not None and len(backtest):
        blocks += ["<h3>VaR backtest: traffic lights</h3>", traffic_lights(backtest, order)]
    stress = stressed_vs_current(var, order)
    if len(stress):
        window = view.summary.get("stress_window") or ["—", "—"]
        blocks += [
            f"<h3>Stressed ({escape(str(window[0]))} .. {escape(str(window[1]))}) against "
            "current one-day historical VaR</h3>",
            _table(
                stress,
                [
                    ("portfolio", None),
                    ("confidence", html.fmt_pct),
                    ("var", html.fmt_money),
                    ("var_stressed", html.fmt_money),
                    ("var_ratio", html.fmt_float),
                    ("es", html.fmt_money),
                    ("es_stressed", html.fmt_money),
                ],
            ),
        ]
    if "component_es_hist" in contrib.columns and len(contrib):
        blocks += [
            "<h3>Top tail contributors (component historical ES)</h3>",
            _table(
                top_tail(contrib, order),
                [
                    ("portfolio", None),
                    ("symbol", None),
                    ("confidence", html.fmt_pct),
                    ("exposure", html.fmt_money),
                    ("component_es_hist", html.fmt_money),
                    ("share_es", html.fmt_pct),
                ],
            ),
        ]
    return html.section("Risk", *blocks, anchor="risk")
