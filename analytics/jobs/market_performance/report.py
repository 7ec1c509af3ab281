"""The market-performance section, as a tear sheet: the benchmark's (or the equal-weighted
universe's) cumulative return with the best and worst symbols and the drawdowns beneath, the
benchmark's monthly returns, the distribution of the symbols' Sharpe ratios, the top and bottom
tables, and the monthly metrics of the best and the worst symbol.

``metrics/`` holds no daily series, so the few symbols drawn (the best and the worst by their
``ALL``-period total return, and the benchmark) are read back from the run's input, with the
run's own date range. An equal-weighted benchmark needs every selected symbol: it is drawn only
when the run's prices input is small enough to read on the driver. A symbol
benchmark's monthly returns are the job's own monthly ``total_return``: they need no input.
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np
import pandas as pd

from analytics.constants import PERIOD_ALL
from analytics.errors import FinbatchError
from analytics.report import html, plots, prices, series
from analytics.run.committed import CommittedRun as RunView

log = logging.getLogger(__name__)

#: Symbols drawn at each end of the ranking.
DRAWN: Final = 3
#: Rows of the top and of the bottom table.
TABLE_ENDS: Final = 10
EQUAL_WEIGHTED: Final = "equal-weighted"
_COLUMNS: Final = (
    ("symbol", None),
    ("start", None),
    ("end", None),
    ("n_returns", html.fmt_int),
    ("total_return", html.fmt_pct),
    ("annual_return", html.fmt_pct),
    ("annual_volatility", html.fmt_pct),
    ("sharpe", html.fmt_ratio),
    ("sortino", html.fmt_ratio),
    ("max_drawdown", html.fmt_pct),
    ("calmar", html.fmt_ratio),
    ("beta", html.fmt_ratio),
    ("alpha", html.fmt_pct),
    ("var_95", html.fmt_pct),
    ("cvar_95", html.fmt_pct),
)
#: The monthly metrics shown side by side for the best and the worst symbol.
_MONTH_METRICS: Final = (
    ("total_return", html.fmt_pct),
    ("annual_volatility", html.fmt_pct),
    ("sharpe", html.fmt_ratio),
    ("max_drawdown", html.fmt_pct),
)


def monthly_from_metrics(metrics: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """A symbol's monthly ``total_return`` rows of ``metrics/`` as a year x month grid."""
    rows = metrics[(metrics["symbol"] == symbol) & (metrics["period"] != PERIOD_ALL)]
    period = rows["period"].astype(str)
    grid = pd.Series(
        rows["total_return"].to_numpy(dtype=np.float64),
        index=pd.MultiIndex.from_arrays(
            [period.str[:4].astype(int).to_numpy(), period.str[5:7].astype(int).to_numpy()]
        ),
    ).unstack()
    return grid.reindex(columns=range(1, 13)).astype(np.float64)


def _benchmark_growth(view: RunView, benchmark: str, closes: pd.DataFrame) -> pd.Series | None:
    if benchmark not in ("", EQUAL_WEIGHTED):
        return closes.get(benchmark)
    if not prices.universe_is_small(view):
        return None
    return series.equal_weighted(prices.read_closes(view, None))


def _curves(
    view: RunView, best: list[str], worst: list[str], benchmark: str
) -> tuple[str, pd.Series | None]:
    """The cumulative chart, and the benchmark's growth (None when it is not drawn)."""
    is_symbol = benchmark not in ("", EQUAL_WEIGHTED)
    growth = series.cumulative(
        prices.read_closes(view, [*best, *worst, *([benchmark] if is_symbol else [])])
    )
    bench = _benchmark_growth(view, benchmark, growth)
    name = benchmark if is_symbol else EQUAL_WEIGHTED
    lines = []
    if bench is not None:
        lines.append(plots.Line(f"{name} (benchmark)", bench, plots.BLACK, fill=True))
    lines += [
        plots.Line(f"{s} (best {i + 1})", growth[s], plots.PALETTE[i % 3])
        for i, s in enumerate(best)
    ]
    lines += [
        plots.Line(f"{s} (worst {i + 1})", growth[s], plots.PALETTE[3 + i % 3], dashed=True)
        for i, s in enumerate(worst)
    ]
    caption = (
        f"Best {len(best)} and worst {len(worst)} symbols by total return over the run's range"
    )
    if bench is None:
        caption += f"; the {name} benchmark is not drawn (the input is too large)"
    chart = plots.cumulative_chart(lines, title="Cumulative return and drawdown")
    return html.figure(chart, caption + "."), bench


def _monthly(metrics: pd.DataFrame, benchmark: str, bench: pd.Series | None) -> str:
    """The benchmark's monthly returns: a symbol's from the job's metrics (no input needed),
    the equal-weighted universe's from its drawn curve."""
    if benchmark not in ("", EQUAL_WEIGHTED):
        monthly, name = monthly_from_metrics(metrics, benchmark), benchmark
    elif bench is not None:
        monthly, name = series.monthly_returns(bench), EQUAL_WEIGHTED
    else:
        return ""
    if not len(monthly):
        return ""
    title = f"Monthly returns of the benchmark ({name})"
    return html.figure(plots.monthly_heatmap(monthly, title=title))


def _sharpe_distribution(ranked: pd.DataFrame, bench_row: pd.DataFrame) -> str:
    sharpe = ranked["sharpe"].to_numpy(dtype=np.float64)
    finite = sharpe[np.isfinite(sharpe)]
    if not len(finite):
        return html.note("No symbol has a Sharpe ratio: no distribution is drawn.")
    markers = [plots.Marker(float(np.median(finite)), "median", plots.PALETTE[1])]
    if len(bench_row) and np.isfinite(bench_row["sharpe"].iloc[0]):
        markers.append(
            plots.Marker(float(bench_row["sharpe"].iloc[0]), "benchmark", plots.BLACK, dashed=True)
        )
    chart = plots.histogram(
        finite,
        title=f"Sharpe ratios of {len(finite):,} symbols (ALL period)",
        x_label="Sharpe ratio (annualized, risk-free 0)",
        y_label="symbols",
        markers=markers,
        value_format=lambda v: f"{v:.2f}",
    )
    return html.figure(chart)


def _table(frame: pd.DataFrame, columns: tuple[tuple[str, html.Format | None], ...]) -> str:
    return html.table(
        [c for c, _ in columns],
        (list(r) for r in frame[[c for c, _ in columns]].values),
        [f for _, f in columns],
    )


def monthly_table(metrics: pd.DataFrame, symbols: list[str]) -> str:
    """One row per month, the monthly metrics of each of ``symbols`` side by side (a dash
    where a symbol has no return that month)."""
    rows = metrics[metrics["symbol"].isin(symbols) & (metrics["period"] != PERIOD_ALL)]
    names = [m for m, _ in _MONTH_METRICS]
    wide = rows.pivot(index="period", columns="symbol", values=names).sort_index()
    wide = wide.reindex(columns=pd.MultiIndex.from_product([names, symbols]))
    order = [(m, s) for s in symbols for m in names]
    return html.table(
        ["month", *(f"{s} {m}" for m, s in order)],
        ([period, *wide.loc[period, order]] for period in wide.index),
        [None, *(dict(_MONTH_METRICS)[m] for m, _ in order)],
    )


def section(view: RunView) -> str:
    """Headline numbers, the benchmark's cumulative return and drawdown with the best and worst
    symbols, its monthly returns, the Sharpe distribution, the top and bottom tables and the
    monthly metrics of the best and the worst symbol."""
    metrics = view.table("metrics").to_pandas()
    metrics["symbol"] = metrics["symbol"].astype(str)
    whole = metrics[metrics["period"] == PERIOD_ALL].copy()
    benchmark = str(view.summary.get("benchmark") or "")
    ranked = whole[np.isfinite(whole["total_return"].to_numpy(dtype=np.float64))]
    ranked = ranked[ranked["symbol"] != benchmark].sort_values(
        ["total_return", "symbol"], ascending=[False, True]
    )
    # The best and the worst never overlap: with fewer than 2 x DRAWN symbols, half each.
    n_draw = min(DRAWN, len(ranked) // 2) if len(ranked) > 1 else len(ranked)
    best = ranked["symbol"].iloc[:n_draw].tolist()
    worst = ranked["symbol"].iloc[len(ranked) - n_draw :].tolist()[::-1] if len(ranked) > 1 else []
    bench_row = whole[whole["symbol"] == benchmark]
    cards = [
        ("symbols", f"{len(whole):,}"),
        ("range", f"{whole['start'].min()} .. {whole['end'].max()}"),
        ("benchmark", benchmark or "—"),
        ("median total return", html.fmt_pct(float(ranked["total_return"].median()))),
    ]
    if best:
        cards.append((f"best: {best[0]}", html.fmt_pct(float(ranked["total_return"].iloc[0]))))
    if worst:
        cards.append((f"worst: {worst[0]}", html.fmt_pct(float(ranked["total_return"].iloc[-1]))))
    if len(bench_row):
        cards.append(("benchmark return", html.fmt_pct(float(bench_row["total_return"].iloc[0]))))
    bench: pd.Series | None = None
    try:
        drawn = best or ([benchmark] if len(bench_row) else [])
        curves, bench = _curves(view, best, worst, benchmark) if drawn else ("", None)
    except (FinbatchError, OSError, KeyError) as err:  # the input moved or changed since the run
        log.warning("market-performance report: prices not drawn: %s", err)
        curves = html.note(f"The cumulative returns are not drawn: the run's prices: {err}")
    figures = curves + _monthly(metrics, benchmark, bench)

    ordered = whole.sort_values(["total_return", "symbol"], ascending=[False, True])
    blocks = [
        html.cards(cards),
        "<h3>Benchmark and the best and worst symbols</h3>",
        f'<div class="charts">{figures}</div>' if figures else html.note("Nothing to draw."),
        "<h3>Distribution of the symbols' Sharpe ratios</h3>",
        _sharpe_distribution(ranked, bench_row),
    ]
    if len(ordered) > 2 * TABLE_ENDS:
        blocks += [
            f"<h3>Top {TABLE_ENDS} of {len(ordered):,} symbols by total return (ALL period)</h3>",
            _table(ordered.head(TABLE_ENDS), _COLUMNS),
            f"<h3>Bottom {TABLE_ENDS} of {len(ordered):,} symbols by total return "
            "(ALL period)</h3>",
            _table(ordered.tail(TABLE_ENDS), _COLUMNS),
        ]
    else:
        blocks += [
            "<h3>ALL-period metrics of every symbol, by total return</h3>",
            _table(ordered, _COLUMNS),
        ]
    ends = list(dict.fromkeys([*best[:1], *worst[:1]]))
    if ends:
        blocks += [
            f"<h3>Monthly metrics of the best ({best[0]})"
            + (f" and the worst ({worst[0]}) symbol" if worst else " symbol")
            + "</h3>",
            monthly_table(metrics, ends),
        ]
    return html.section("Market performance", *blocks, anchor="market-performance")
