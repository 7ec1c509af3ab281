"""The backtest section: the equity curves of the top combinations, the portfolio Sharpe ratio
over the strategy's two main parameters, and the top table.

The main parameters are the strategy's first two (its declaration's order, which is the order
of the parameter columns in ``summary/``); with more than two, each cell shows the best Sharpe
ratio over the others; with one, the Sharpe ratio is a bar per value.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from analytics.jobs.backtest.stats import METRICS, TRADE_STATS
from analytics.report import charts, html, svg
from analytics.run.committed import CommittedRun as RunView

#: Most distinct values per heatmap axis (a finer grid is shown as the top table only).
MAX_AXIS: Final = 120
_NOT_PARAMETERS: Final = frozenset({"rank", "strategy", *METRICS, *TRADE_STATS})
_TOP_FORMATS: Final = {
    "total_return": html.fmt_pct,
    "annual_return": html.fmt_pct,
    "annual_volatility": html.fmt_pct,
    "sharpe": html.fmt_ratio,
    "sortino": html.fmt_ratio,
    "max_drawdown": html.fmt_pct,
    "n_trades": html.fmt_int,
    "win_rate": html.fmt_pct,
    "exposure": html.fmt_pct,
    "turnover": html.fmt_ratio,
}


def parameter_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in _NOT_PARAMETERS]


def _label(value: object) -> str:
    number = float(str(value))
    return f"{number:g}"


def combination_label(row: pd.Series, params: list[str]) -> str:
    return " ".join(f"{p}={_label(row[p])}" for p in params)


def sharpe_grid(summary: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Best portfolio Sharpe ratio for each (y, x) pair of parameter values (rows: y)."""
    grid = summary.pivot_table(index=y, columns=x, values="sharpe", aggfunc="max", dropna=False)
    return grid.sort_index().sort_index(axis=1)


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
        title=f"Equity of the top {min(len(series), 8)} combinations (portfolio, from 1.0)",
        y_format=svg.pct,
        y_title="return",
        width=560,
    )


def _sharpe_chart(summary: pd.DataFrame, params: list[str]) -> str:
    if len(params) == 1:
        by = summary.groupby(params[0])["sharpe"].max().sort_index()
        return charts.bar_chart(
            [f"{params[0]}={_label(v)}" for v in by.index],
            by.to_numpy(dtype=np.float64),
            title="Portfolio Sharpe ratio by parameter",
            value_format=html.fmt_ratio,
            width=560,
        )
    x, y = params[0], params[1]
    grid = sharpe_grid(summary, x, y)
    if grid.shape[0] > MAX_AXIS or grid.shape[1] > MAX_AXIS:
        return html.note(f"The grid of {x} × {y} is too fine for a heatmap ({grid.shape}).")
    others = f", best over {', '.join(params[2:])}" if len(params) > 2 else ""
    return charts.heatmap(
        [_label(v) for v in grid.columns],
        [_label(v) for v in grid.index],
        grid.to_numpy(dtype=np.float64),
        title=f"Portfolio Sharpe ratio: {y} × {x}{others}",
        value_format=html.fmt_ratio,
        x_title=x,
        y_title=y,
        width=560,
    )


def section(view: RunView) -> str:
    """Headline numbers, the top combinations' equity, the Sharpe heatmap and the top table."""
    summary = view.table("summary").to_pandas()
    top = view.table("top").to_pandas().sort_values("rank")
    params = parameter_columns(summary)
    s = view.summary
    cards = [
        ("strategy", str(s.get("strategy", "—"))),
        ("combinations", f"{int(s.get('combinations', len(summary))):,}"),
        ("symbols", f"{int(s.get('symbols', 0)):,}"),
        ("days", f"{int(s.get('days', 0)):,}"),
        ("end", str(s.get("end", "—"))),
    ]
    if len(top):
        best = top.iloc[0]
        cards.append((f"best: {combination_label(best, params)}", f"Sharpe {best['sharpe']:.2f}"))
    figures = []
    if view.has_table("equity"):
        figures.append(html.figure(_equity_chart(view, params)))
    if params and len(summary):
        figures.append(html.figure(_sharpe_chart(summary, params)))
    columns = ["rank", *params, *(c for c in _TOP_FORMATS if c in top.columns)]
    formats = [
        html.fmt_int,
        *([None] * len(params)),
        *(_TOP_FORMATS[c] for c in columns[1 + len(params) :]),
    ]
    table = html.table(columns, (list(r) for r in top[columns].values), formats)
    return html.section(
        f"Backtest: {s.get('strategy', '')}",
        html.cards(cards),
        f'<div class="charts">{"".join(figures)}</div>',
        "<h3>Top combinations by portfolio Sharpe ratio</h3>",
        table,
        anchor="backtest",
    )
