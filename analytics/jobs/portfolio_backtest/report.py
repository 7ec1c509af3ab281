"""The portfolio-backtest section: the top combinations' equity, Sharpe ratio over the two
main parameters, the top table, the cost breakdown and the best combination's holdings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.jobs.backtest.report import combination_label, sharpe_grid
from analytics.jobs.portfolio_backtest.tables import PARAMETERS
from analytics.report import charts, html, svg
from analytics.run.committed import CommittedRun as RunView

#: Most distinct values per heatmap axis (a finer grid is shown as the tables only).
MAX_AXIS = 120
_TOP_FORMATS = {
    "total_return": html.fmt_pct,
    "annual_return": html.fmt_pct,
    "annual_volatility": html.fmt_pct,
    "sharpe": html.fmt_ratio,
    "sortino": html.fmt_ratio,
    "max_drawdown": html.fmt_pct,
    "calmar": html.fmt_ratio,
    "turnover": html.fmt_ratio,
    "avg_long": html.fmt_ratio,
    "avg_short": html.fmt_ratio,
    "n_rebalances": html.fmt_int,
}
COSTS = ("cost_fees", "cost_slippage", "cost_impact", "cost_borrow")


def _equity_chart(view: RunView, params: list[str]) -> str:
    equity = view.table("equity").to_pandas()
    series = []
    for rank, group in equity.groupby("rank", sort=True):
        curve = group.sort_values("date")
        x = [svg.day_number(pd.Timestamp(d).date()) for d in curve["date"]]
        label = f"#{rank} {combination_label(curve.iloc[0], params)}"
        series.append(svg.Series(label, x, curve["equity"].to_numpy(dtype=np.float64) - 1.0))
    return charts.line_chart(
        series[:8],
        title=f"Equity of the top {min(len(series), 8)} combinations (from 1.0 at the first fill)",
        y_format=svg.pct,
        y_title="return",
        width=560,
    )


def _sharpe_chart(results: pd.DataFrame, params: list[str]) -> str:
    varying = [p for p in params if results[p].nunique() > 1] or params[:1]
    if len(varying) == 1:
        by = results.groupby(varying[0])["sharpe"].max().sort_index()
        return charts.bar_chart(
            [f"{varying[0]}={v:g}" for v in by.index],
            by.to_numpy(dtype=np.float64),
            title="Sharpe ratio by parameter",
            value_format=html.fmt_ratio,
            width=560,
        )
    x, y = varying[0], varying[1]
    grid = sharpe_grid(results, x, y)
    if grid.shape[0] > MAX_AXIS or grid.shape[1] > MAX_AXIS:
        return html.note(f"The grid of {x} × {y} is too fine for a heatmap ({grid.shape}).")
    others = f", best over {', '.join(varying[2:])}" if len(varying) > 2 else ""
    return charts.heatmap(
        [f"{v:g}" for v in grid.columns],
        [f"{v:g}" for v in grid.index],
        grid.to_numpy(dtype=np.float64),
        title=f"Sharpe ratio: {y} × {x}{others}",
        value_format=html.fmt_ratio,
        x_title=x,
        y_title=y,
        width=560,
    )


def section(view: RunView) -> str:
    """Headline numbers, charts, the top table, costs and the best combination's holdings."""
    results = view.table("results").to_pandas()
    top = view.table("top").to_pandas().sort_values("rank")
    params = [c for c in results.columns if c in PARAMETERS]
    s = view.summary
    cards = [
        ("strategy", str(s.get("strategy", "—"))),
        ("combinations", f"{int(s.get('combinations', len(results))):,}"),
        ("symbols", f"{int(s.get('symbols', 0)):,}"),
        ("days", f"{int(s.get('days', 0)):,}"),
        ("end", str(s.get("end", "—"))),
    ]
    if len(top):
        best = top.iloc[0]
        cards.append((f"best: {combination_label(best, params)}", f"Sharpe {best['sharpe']:.2f}"))
    figures = [html.figure(_equity_chart(view, params))]
    if params and len(results):
        figures.append(html.figure(_sharpe_chart(results, params)))
    columns = ["rank", *params, *(c for c in _TOP_FORMATS if c in top.columns)]
    formats = [
        html.fmt_int,
        *([None] * len(params)),
        *(_TOP_FORMATS[c] for c in columns[1 + len(params) :]),
    ]
    top_table = html.table(columns, (list(r) for r in top[columns].values), formats)
    cost_columns = ["rank", *params, *COSTS]
    cost_table = html.table(
        [*cost_columns[: 1 + len(params)], "fees", "slippage", "impact", "borrow"],
        (list(r) for r in top[cost_columns].values),
        [html.fmt_int, *([None] * len(params)), *([html.fmt_pct] * len(COSTS))],
    )
    holdings = view.table("holdings").to_pandas()
    held = holdings[holdings["rank"] == 1].sort_values("weight", ascending=False)
    hold_table = html.table(
        ["symbol", "shares", "value", "weight"],
        (list(r) for r in held[["symbol", "shares", "value", "weight"]].values),
        [None, html.fmt_float, html.fmt_float, html.fmt_pct],
    )
    return html.section(
        f"Portfolio backtest: {s.get('strategy', '')}",
        html.cards(cards),
        f'<div class="charts">{"".join(figures)}</div>',
        "<h3>Top combinations by Sharpe ratio</h3>",
        top_table,
        "<h3>Costs of the top combinations (over the initial capital)</h3>",
        cost_table,
        f"<h3>Holdings of the best combination at the last close ({len(held)} names)</h3>",
        hold_table,
        anchor="portfolio-backtest",
    )
