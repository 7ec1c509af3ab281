"""The backtest section, as a tear sheet: the top combination against the benchmark and
buy-and-hold with its underwater chart beneath, its monthly returns and rolling 6-month Sharpe
ratio, the portfolio Sharpe ratio over the strategy's two main parameters, and the top table.

The benchmark is :data:`~analytics.constants.DEFAULT_BENCHMARK` and buy-and-hold is the
equal-weighted universe of the run (each symbol held every day, the portfolio's own convention:
the mean of the day's returns of the symbols with a row), both read back from the run's input
over the dates of ``equity/``. The other top combinations are drawn grey.

The main parameters are the strategy's first two (its declaration's order, which is the order
of the parameter columns in ``summary/``); with more than two, each cell shows the best Sharpe
ratio over the others; with one, the Sharpe ratio is a bar per value.

The validation (issue 14), blocks shared with portfolio-backtest (:mod:`analytics.report.sweep`):
PBO with the histogram of the CSCV splits' logits (the manifest keeps its bins), the walk-forward
folds, and the stitched out-of-sample equity against the in-sample best over the same dates; the
top table shows ``psr`` and ``dsr``.
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np
import pandas as pd

from analytics.constants import DEFAULT_BENCHMARK
from analytics.errors import FinbatchError
from analytics.jobs.backtest.portfolio import BASELINE, VALIDATION_STATS
from analytics.jobs.backtest.stats import METRICS, TRADE_STATS
from analytics.report import html, plots, prices, series
from analytics.report.sweep import (
    combination_label,
    parameter_label,
    sharpe_grid,
    top_growth,
    validation_blocks,
)
from analytics.run.committed import CommittedRun as RunView

log = logging.getLogger(__name__)

#: Most distinct values per heatmap axis (a finer grid is shown as the top table only).
MAX_AXIS: Final = 120
#: Top combinations drawn (the first in colour, the others grey).
MAX_CURVES: Final = 8
BUY_AND_HOLD: Final = "buy-and-hold (equal-weighted universe)"
_NOT_PARAMETERS: Final = frozenset({"rank", "strategy", *METRICS, *TRADE_STATS, *VALIDATION_STATS})
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
    "psr": html.fmt_ratio,
    "dsr": html.fmt_ratio,
}


def parameter_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in _NOT_PARAMETERS]


def references(view: RunView, dates: pd.DatetimeIndex) -> dict[str, pd.Series]:
    """The benchmark's and buy-and-hold's cumulative returns over ``dates`` (from 0 on the
    first), each left out when the input does not have it (or is too large for buy-and-hold)."""
    found = {}
    bench = prices.read_closes(view, [DEFAULT_BENCHMARK])
    if DEFAULT_BENCHMARK in bench:
        closes = bench[[DEFAULT_BENCHMARK]].reindex(dates)
        found[DEFAULT_BENCHMARK] = series.cumulative(closes)[DEFAULT_BENCHMARK]
    if prices.universe_is_small(view):
        universe = prices.read_closes(view, None)
        held = universe[(universe.index >= dates[0]) & (universe.index <= dates[-1])]
        found[BUY_AND_HOLD] = series.equal_weighted(held).reindex(dates)
    return found


def _performance(view: RunView, equity: pd.DataFrame, params: list[str], top: pd.DataFrame) -> str:
    curves = top_growth(equity)
    if not curves:
        return html.note("equity/ holds no curve.")
    first = min(curves)
    best = curves[first]
    label = f"#{first} {combination_label(top.iloc[0], params)}" if len(top) else f"#{first}"
    try:
        refs = references(view, pd.DatetimeIndex(best.index))
        missing = ""
    except (FinbatchError, OSError, KeyError) as err:  # the input moved or changed
        log.warning("backtest report: benchmark and buy-and-hold not drawn: %s", err)
        refs, missing = (
            {},
            f" The benchmark and buy-and-hold are not drawn: the run's prices: {err}",
        )
    colors = {DEFAULT_BENCHMARK: plots.BLACK, BUY_AND_HOLD: plots.PALETTE[1]}
    lines = [plots.Line(label, best, plots.PALETTE[0], fill=True)]
    lines += [plots.Line(name, g, colors[name], dashed=True) for name, g in refs.items()]
    others = [r for r in sorted(curves) if r != first][: MAX_CURVES - 1]
    lines += [plots.Line(f"#{r}", curves[r]) for r in others]
    figures = [
        html.figure(
            plots.cumulative_chart(lines, title="Top combination: cumulative return and drawdown"),
            f"The top combination (portfolio, from 1.0) against {DEFAULT_BENCHMARK} and "
            f"buy-and-hold; grey: the next {len(others)} of the top table.{missing}",
        ),
        html.figure(
            plots.monthly_heatmap(
                series.monthly_returns(best),
                title=f"Monthly returns of the top combination {label}",
            )
        ),
    ]
    window = series.ROLLING_WINDOW
    if len(best) > window:
        rolling = [(label, series.rolling_sharpe(series.daily_returns(best)), plots.PALETTE[0])]
        rolling += [
            (name, series.rolling_sharpe(series.daily_returns(g)), colors[name])
            for name, g in refs.items()
        ]
        figures.append(
            html.figure(
                plots.rolling_sharpe_chart(
                    rolling, title=f"Rolling 6-month Sharpe ratio ({window} trading days)"
                )
            )
        )
    else:
        figures.append(
            html.note(
                f"No rolling 6-month Sharpe ratio: it needs more than {window} days of returns "
                f"and the run has {len(best) - 1}."
            )
        )
    return f'<div class="charts">{"".join(figures)}</div>'


def _sharpe_chart(view: RunView, summary: pd.DataFrame, params: list[str]) -> str:
    if len(params) == 1:
        by = summary.groupby(params[0])["sharpe"].max().sort_index()
        return plots.bar_chart(
            [f"{params[0]}={parameter_label(v)}" for v in by.index],
            by.to_numpy(dtype=np.float64),
            title="Portfolio Sharpe ratio by parameter",
            value_label="Sharpe ratio (annualized, risk-free 0)",
        )
    x, y = params[0], params[1]
    grid = sharpe_grid(summary, x, y)
    if grid.shape[0] > MAX_AXIS or grid.shape[1] > MAX_AXIS:
        return html.note(f"The grid of {x} × {y} is too fine for a heatmap ({grid.shape}).")
    others = f", best over {', '.join(params[2:])}" if len(params) > 2 else ""
    strategy = str(view.summary.get("strategy", ""))
    rule = _constraint_text(strategy)
    missing = "no Sharpe ratio: " + (
        f"the pair breaks the strategy's rule ({rule}) or never trades"
        if rule
        else "the pair never trades (its returns do not vary)"
    )
    values = grid.to_numpy(dtype=np.float64)
    if np.isfinite(values).any():
        r, c = (int(i) for i in np.unravel_index(int(np.nanargmax(values)), values.shape))
        best = (
            f"outlined: the best, {x}={parameter_label(grid.columns[c])} "
            f"{y}={parameter_label(grid.index[r])}"
        )
        best += f" (Sharpe {values[r, c]:.2f})"
    else:
        best = ""
    return plots.parameter_heatmap(
        grid,
        title=f"Portfolio Sharpe ratio: {y} × {x}{others}",
        value_label="Sharpe ratio (annualized, risk-free 0)",
        missing_label=missing,
        best_label=best,
    )


def _constraint_text(strategy: str) -> str:
    from analytics.jobs.backtest import strategies

    found = strategies.registry().get(strategy)
    return found.constraint_text if found is not None else ""


def section(view: RunView) -> str:
    """Headline numbers, the top combination's tear sheet, the Sharpe heatmap, the top table
    and the validation (PBO, walk-forward)."""
    whole = view.table("summary").to_pandas()
    summary = whole[whole["strategy"] != BASELINE]
    baseline = whole[whole["strategy"] == BASELINE]
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
        if "dsr" in top.columns:
            cards.append(("best's deflated Sharpe (DSR)", html.fmt_ratio(best["dsr"])))
    if len(baseline):
        cards.append(("buy-and-hold Sharpe", html.fmt_ratio(baseline["sharpe"].iloc[0])))
    blocks = [html.cards(cards)]
    if view.has_table("equity"):
        blocks += [
            "<h3>Top combination against the benchmark and buy-and-hold</h3>",
            _performance(view, view.table("equity").to_pandas(), params, top),
        ]
    if params and len(summary):
        blocks += [
            "<h3>Portfolio Sharpe ratio over the parameters</h3>",
            html.figure(_sharpe_chart(view, summary, params)),
        ]
    columns = ["rank", *params, *(c for c in _TOP_FORMATS if c in top.columns)]
    formats = [
        html.fmt_int,
        *([None] * len(params)),
        *(_TOP_FORMATS[c] for c in columns[1 + len(params) :]),
    ]
    table = html.table(columns, (list(r) for r in top[columns].values), formats)
    blocks += ["<h3>Top combinations by portfolio Sharpe ratio</h3>", table]
    blocks += validation_blocks(view, params)
    return html.section(f"Backtest: {s.get('strategy', '')}", *blocks, anchor="backtest")
