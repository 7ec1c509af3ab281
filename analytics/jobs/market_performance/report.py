"""The market-performance section: best and worst symbols against the benchmark, and the table.

``metrics/`` holds no daily series, so the few symbols drawn (the best and the worst by their
``ALL``-period total return, and the benchmark) are read back from the run's input, with the
run's own date range. An equal-weighted benchmark needs every selected symbol: it is drawn only
when the run's prices input is small enough to read on the driver (``EW_MAX_BYTES``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from analytics.constants import PERIOD_ALL
from analytics.data.datasets import Selection, list_files, read_file
from analytics.errors import FinbatchError
from analytics.report import charts, html, svg
from analytics.run.committed import CommittedRun as RunView

log = logging.getLogger(__name__)

#: Symbols drawn at each end of the ranking.
DRAWN: Final = 3
#: Rows shown at each end of the metrics table when there are more than twice as many symbols.
TABLE_ENDS: Final = 10
#: Largest prices input (bytes) read whole for an equal-weighted benchmark curve.
EW_MAX_BYTES: Final = 256 * 2**20
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


def read_closes(view: RunView, symbols: Sequence[str] | None) -> pd.DataFrame:
    """Closes (rows: dates, columns: symbols) of ``symbols`` (None: the run's selection)."""
    if not view.input_url:
        raise FinbatchError("the manifest records no --input")
    chosen = tuple(symbols) if symbols is not None else view.parameters.get("symbols")
    sel = Selection(
        view.date_parameter("start"),
        view.date_parameter("end"),
        tuple(chosen) if chosen else None,
    )
    files = list_files(view.input_url, "prices", sel)
    tables = [read_file(f.url, "prices", ["symbol", "date", "close"], sel) for f in files]
    frame = pa.concat_tables(tables).to_pandas()
    frame["symbol"] = frame["symbol"].astype(str)
    frame["date"] = pd.to_datetime(frame["date"])
    closes: pd.DataFrame = frame.pivot_table(index="date", columns="symbol", values="close")
    return closes.sort_index()


def cumulative(closes: pd.DataFrame) -> pd.DataFrame:
    """Each column's close over its first close in the range, minus 1 (gaps carried over)."""
    first = closes.apply(lambda c: c.dropna().iloc[0] if c.notna().any() else np.nan)
    return closes.ffill() / first - 1.0


def drawdown(growth: pd.DataFrame) -> pd.DataFrame:
    """Drawdown of wealth ``1 + growth`` from its running peak (<= 0)."""
    wealth = 1.0 + growth
    return wealth / wealth.cummax() - 1.0


def equal_weighted(closes: pd.DataFrame) -> pd.Series:
    """Cumulative return of the per-date mean of the symbols' own daily returns (the job's
    fallback benchmark): a symbol's return spans its halts, like the job's."""
    returns = pd.DataFrame(
        {s: closes[s].dropna().pct_change() for s in closes.columns}, index=closes.index
    )
    mean = returns.mean(axis=1, skipna=True).fillna(0.0)
    return pd.Series((1.0 + mean).cumprod() - 1.0, index=closes.index, name="equal-weighted")


def _series(
    frame: pd.DataFrame | pd.Series, styles: dict[str, tuple[str, bool]]
) -> list[svg.Series]:
    data = frame.to_frame() if isinstance(frame, pd.Series) else frame
    x = np.asarray([svg.day_number(d.date()) for d in data.index], dtype=np.float64)
    return [
        svg.Series(str(name), x, data[name].to_numpy(dtype=np.float64), *styles[str(name)])
        for name in data.columns
    ]


def _charts(view: RunView, best: list[str], worst: list[str], benchmark: str) -> str:
    is_symbol = benchmark not in ("", "equal-weighted")
    closes = read_closes(view, [*best, *worst, *([benchmark] if is_symbol else [])])
    growth = cumulative(closes)
    styles = {s: (svg.PALETTE[i % 3], False) for i, s in enumerate(best)}
    styles |= {s: (svg.PALETTE[3 + i % 3], False) for i, s in enumerate(worst)}
    caption = (
        f"Best {len(best)} and worst {len(worst)} symbols by total return over the run's range"
    )
    if is_symbol:
        growth = growth[[*best, *worst, benchmark]]
    else:
        growth = growth[[*best, *worst]]
        prices = view.manifest.inputs.get("prices")
        if prices is None or prices.bytes <= EW_MAX_BYTES:
            growth["equal-weighted"] = equal_weighted(read_closes(view, None))
        else:
            caption += "; the equal-weighted benchmark is not drawn (the input is too large)"
    for name in growth.columns:
        styles.setdefault(str(name), ("#000000", True))
    chart = charts.line_chart(
        _series(growth, styles),
        title="Cumulative return",
        y_format=svg.pct,
        y_title="return",
        width=560,
    )
    dd = charts.line_chart(
        _series(drawdown(growth), styles),
        title="Drawdown from peak",
        y_format=svg.pct,
        y_title="drawdown",
        width=560,
    )
    figures = html.figure(chart, caption + " (benchmark dashed).") + html.figure(dd)
    return f'<div class="charts">{figures}</div>'


def section(view: RunView) -> str:
    """Headline numbers, cumulative returns and drawdowns, and the ALL-period metrics table."""
    metrics = view.table("metrics").to_pandas()
    whole = metrics[metrics["period"] == PERIOD_ALL].copy()
    whole["symbol"] = whole["symbol"].astype(str)
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
    try:
        drawn = best or ([benchmark] if len(bench_row) else [])
        curves = _charts(view, best, worst, benchmark) if drawn else html.note("Nothing to draw.")
    except (FinbatchError, OSError, KeyError) as err:  # the input moved or changed since the run
        log.warning("market-performance report: prices not drawn: %s", err)
        curves = html.note(f"The cumulative returns are not drawn: the run's prices: {err}")

    ordered = whole.sort_values(["total_return", "symbol"], ascending=[False, True])
    rows: list[list[object] | None] = [list(r) for r in ordered[[c for c, _ in _COLUMNS]].values]
    if len(rows) > 2 * TABLE_ENDS:
        rows = [*rows[:TABLE_ENDS], None, *rows[-TABLE_ENDS:]]
        title = (
            f"ALL-period metrics: top and bottom {TABLE_ENDS} of {len(ordered):,} by total return"
        )
    else:
        title = "ALL-period metrics, by total return"
    table = html.table([c for c, _ in _COLUMNS], rows, [f for _, f in _COLUMNS])
    return html.section(
        "Market performance",
        html.cards(cards),
        curves,
        f"<h3>{title}</h3>",
        table,
        anchor="market-performance",
    )
