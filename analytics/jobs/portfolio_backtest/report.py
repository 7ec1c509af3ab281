"""The portfolio-backtest section: the top combinations' equity, Sharpe ratio over the two
main parameters, the top table (with ``psr`` and ``dsr``), the cost breakdown, the best
combination's holdings, and the sweeps' validation blocks (:mod:`analytics.report.sweep`: PBO
and its logits, walk-forward folds, stitched out-of-sample equity against the in-sample best)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.jobs.portfolio_backtest.tables import PARAMETERS
from analytics.report import html, plots
from analytics.report.sweep import combination_label, sharpe_grid, top_growth, validation_blocks
from analytics.run.committed import CommittedRun as RunView

#: Most distinct values per heatmap axis (a finer grid is shown as the tables only).
MAX_AXIS = 120
#: Top combinations drawn (the first in colour, the others grey).
MAX_CURVES = 8
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
    "psr": html.fmt_ratio,
    "dsr": html.fmt_ratio,
}
COSTS = ("cost_fees", "cost_slippage", "cost_impact", "cost_borrow")


def _equity_chart(view: RunView, params: list[str], top: pd.DataFrame) -> str:
    curves = top_growth(view.table("equity").to_pandas())
    if not curves:
        return html.note("equity/ holds no curve: no combination ever filled.")
    ranks = sorted(curves)[:MAX_CURVES]
    first = ranks[0]
    label = f"#{first} {combination_label(top.iloc[0], params)}" if len(top) else f"#{first}"
    lines = [plots.Line(label, curves[first], plots.PALETTE[0], fill=True)]
    lines += [plots.Line(f"#{r}", curves[r]) for r in ranks[1:]]
    return html.figure(
        plots.cumulative_chart(lines, title="Top combination: cumulative return and drawdown"),
        f"From 1.0 at the first fill, after every cost; grey: the next {len(ranks) - 1} of the "
        "top table.",
    )


def _sharpe_chart(results: pd.DataFrame, params: list[str]) -> str:
    varying = [p for p in params if results[p].nunique() > 1] or params[:1]
    value_label = "Sharpe ratio (annualized, risk-free 0)"
    if len(varying) == 1:
        by = results.groupby(varying[0])["sharpe"].max().sort_index()
        return plots.bar_chart(
            [f"{varying[0]}={v:g}" for v in by.index],
            by.to_numpy(dtype=np.float64),
            title="Sharpe ratio by parameter",
            value_label=value_label,
        )
    x, y = varying[0], varying[1]
    grid = sharpe_grid(results, x, y)
    if grid.shape[0] > MAX_AXIS or grid.shape[1] > MAX_AXIS:
        return html.note(f"The grid of {x} × {y} is too fine for a heatmap ({grid.shape}).")
    others = f", best over {', '.join(varying[2:])}" if len(varying) > 2 else ""
    values = grid.to_numpy(dtype=np.float64)
    best = ""
    if np.isfinite(values).any():
        r, c = (int(i) for i in np.unravel_index(int(np.nanargmax(values)), values.shape))
        best = f"outlined: the best, {x}={grid.columns[c]:g} {y}={grid.index[r]:g}"
    return plots.parameter_heatmap(
        grid,
        title=f"Sharpe ratio: {y} × {x}{others}",
        value_label=value_label,
        missing_label="no Sharpe ratio: the pair is not in the grid or never filled",
        best_label=best,
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
        if "dsr" in top.columns:
            cards.append(("best's deflated Sharpe (DSR)", html.fmt_ratio(best["dsr"])))
    figures = [_equity_chart(view, params, top)]
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
        *validation_blocks(view, params),
        anchor="portfolio-backtest",
    )
