"""The tables of ``portfolio-backtest``: ``results/``, ``top/``, ``equity/`` and ``holdings/``,
and the validation tables through the sweeps' shared layer (:mod:`analytics.stats.sweep`,
:mod:`analytics.jobs.sweep_outputs`).

Pure functions of what the simulation tasks hand back (:class:`ChunkRuns`); the job's Dask
layer maps them. The metrics are market-performance's (:mod:`analytics.stats.metrics`, 252
periods a year) on each combination's daily returns from its first fill's day.

The validated calendar (CSCV's blocks, walk-forward's months) is the panel's dates from the
sweep's first fill (``start``: the earliest first fill of any combination) to the last date: a
combination that starts later has no return (NaN) before its own first fill, left out of its
sums as a day without a return is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from analytics.constants import TRADING_DAYS_PER_YEAR
from analytics.jobs import sweep_outputs
from analytics.jobs.backtest.portfolio import Market, MarketPart, market_series
from analytics.jobs.backtest.strategies._base import Combos
from analytics.jobs.portfolio_backtest.panel import Panel
from analytics.jobs.portfolio_backtest.scores import DEFAULTS
from analytics.jobs.portfolio_backtest.simulate import Holdings, Run
from analytics.run.folder import Destination, WrittenPart, to_arrow, write_part
from analytics.stats import metrics
from analytics.stats import sweep as sweep_validation

FloatArray = npt.NDArray[np.float64]
PPY = TRADING_DAYS_PER_YEAR
RESULTS, TOP, EQUITY, HOLDINGS = "results", "top", "equity", "holdings"
RETURNS = sweep_outputs.RETURNS
#: Dates x symbols of the market's temporaries at once (8 Mi cells, 64 MiB a float array).
MARKET_CELLS = 8 * 2**20
METRICS = metrics.SWEEP_METRICS
RUN_STATS = (
    "turnover",
    "avg_long",
    "avg_short",
    "cost_fees",
    "cost_slippage",
    "cost_impact",
    "cost_borrow",
    "n_rebalances",
)
#: Columns of ``results/`` and ``top/`` after the run's statistics: the probabilistic and
#: deflated Sharpe ratios and the benchmark-relative statistics.
VALIDATION_STATS = ("psr", "dsr", *sweep_validation.RELATIVE_FIELDS)
#: Every strategy parameter's column name.
PARAMETERS = frozenset(name for params in DEFAULTS.values() for name in params)


@dataclass(frozen=True)
class ChunkRuns:
    """What one simulation task hands back for its C combinations.

    ``returns`` and ``equity`` (C, dates): each combination's daily returns and equity from its
    first fill's day (NaN before it, and everywhere for a combination that never fills);
    ``stats``: each of :data:`RUN_STATS` per combination; ``holdings``: each one's holdings at
    the last close.
    """

    returns: FloatArray
    equity: FloatArray
    stats: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]]
    holdings: list[Holdings | None]


def chunk_runs(runs: Sequence[Run], n_dates: int) -> ChunkRuns:
    """The kernel's runs of one chunk as :class:`ChunkRuns`."""
    returns = np.full((len(runs), n_dates), np.nan)
    equity = np.full((len(runs), n_dates), np.nan)
    for i, run in enumerate(runs):
        if run.first_fill >= 0:
            returns[i, run.first_fill :] = run.returns
            equity[i, run.first_fill :] = run.equity
    stats: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]] = {
        name: np.array([getattr(r, name) for r in runs], dtype=np.float64)
        for name in RUN_STATS
        if name != "n_rebalances"
    }
    stats["n_rebalances"] = np.array([r.n_rebalances for r in runs], dtype=np.int64)
    return ChunkRuns(returns, equity, stats, [r.holdings for r in runs])


def results_schema(combos: Combos, *, ranked: bool = False) -> pa.Schema:
    fields = [pa.field("rank", pa.int64())] if ranked else []
    fields.append(pa.field("strategy", pa.string()))
    fields += sweep_outputs.parameter_fields(combos)
    for name in (*METRICS, *RUN_STATS, *VALIDATION_STATS):
        fields.append(pa.field(name, pa.int64() if name == "n_rebalances" else pa.float64()))
    return pa.schema(fields)


def results_frame(strategy: str, combos: Combos, runs: ChunkRuns) -> pd.DataFrame:
    """One row per combination: its parameters, its metrics, its turnover, counts and costs."""
    r = runs.returns
    frame = pd.DataFrame({"strategy": strategy, **{n: np.asarray(v) for n, v in combos.items()}})
    for name, values in metrics.sweep_metrics(r, periods_per_year=PPY).items():
        frame[name] = values
    for name in RUN_STATS:
        frame[name] = runs.stats[name]
    return frame


def validated(runs: ChunkRuns, start: int) -> FloatArray:
    """(T, C): the chunk's returns over the validated calendar (the dates from ``start``)."""
    return np.ascontiguousarray(runs.returns[:, start:].T)


def figures_task(
    runs: ChunkRuns, dates: npt.NDArray[np.datetime64], start: int, plan: sweep_validation.Plan
) -> sweep_validation.ChunkFigures:
    """A chunk's validation figures over the validated calendar (a Dask task)."""
    return sweep_validation.chunk_figures(validated(runs, start), dates[start:], plan)


def pieces_task(
    runs: ChunkRuns, verdict: sweep_validation.Verdict, first: int, start: int
) -> dict[int, FloatArray]:
    """The test-window returns of the walk-forward choices in this chunk (a Dask task)."""
    return sweep_validation.chosen_pieces(validated(runs, start), verdict, first)


def returns_task(
    target: Destination,
    index: int,
    combos: Combos,
    first: int,
    runs: ChunkRuns,
    dates: npt.NDArray[np.datetime64],
) -> WrittenPart:
    """Write one chunk's part of ``returns/`` (``--keep-returns``; a Dask task): each
    combination's daily returns from its first fill's day."""
    table = sweep_outputs.returns_table(combos, first, validated(runs, 0), dates)
    return write_part(target, RETURNS, index, table)


def validation_task(
    target: Destination,
    combos: Combos,
    verdict: sweep_validation.Verdict,
    dates: npt.NDArray[np.datetime64],
    start: int,
    pieces: Sequence[dict[int, FloatArray]],
) -> list[WrittenPart]:
    """Write ``validation/`` and, with walk-forward, ``walk_forward/`` and ``oos_equity/``."""
    return sweep_outputs.write_validation(target, combos, verdict, dates[start:], pieces)


def market(panel: Panel, benchmark: str, explicit: bool) -> Market:
    """The benchmark's and the equal-weighted universe's daily returns over the panel's dates
    (a Dask task): each symbol's ``close / its previous row's close - 1`` on the days it has a
    row after its first (market-performance's convention), the universe their mean that day.
    An ``explicit`` benchmark without prices is an :class:`~analytics.errors.InputError`."""
    t = panel.n_dates
    sums, counts = np.zeros(t), np.zeros(t, dtype=np.int64)
    column = np.flatnonzero(panel.symbols == benchmark)
    bench = np.full(t, np.nan) if len(column) else None
    step = max(1, MARKET_CELLS // max(1, panel.n_symbols))  # bounded temporaries (T, S)
    for t0 in range(0, t, step):
        days = slice(t0, min(t, t0 + step))
        before = panel.last_close[max(0, t0 - 1) : days.stop - 1]
        if t0 == 0:
            before = np.vstack([np.full((1, panel.n_symbols), np.nan), before])
        with np.errstate(invalid="ignore", divide="ignore"):
            rets = panel.close[days] / before - 1
        rets[~(panel.has_row[days] & (panel.row_number[days] >= 1))] = np.nan
        has = ~np.isnan(rets)
        sums[days] = np.where(has, rets, 0.0).sum(axis=1)
        counts[days] = has.sum(axis=1)
        if bench is not None:
            bench[days] = rets[:, column[0]]
    part = MarketPart(sums, counts, bench)
    return market_series([part], benchmark, explicit)


@dataclass(frozen=True)
class Candidates:
    """A chunk's best combinations by Sharpe: their rows, equity curves and holdings."""

    frame: pd.DataFrame
    equity: FloatArray  # (candidates, dates), NaN before the first fill
    holdings: list[Holdings | None]


def results_task(
    target: Destination,
    index: int,
    strategy: str,
    combos: Combos,
    first: int,
    runs: ChunkRuns,
    figures: sweep_validation.ChunkFigures,
    verdict: sweep_validation.Verdict,
    benchmark: Market,
    top: int,
) -> tuple[WrittenPart, Candidates]:
    """Write one chunk's part of ``results/``; hand back its best ``top`` (a Dask task).

    ``first`` is the chunk's first combination in the grid (ties are broken in grid order).
    """
    frame = results_frame(strategy, combos, runs)
    for name, values in sweep_validation.sharpe_columns(figures, verdict).items():
        frame[name] = values
    relative = sweep_validation.relative_columns(validated(runs, 0), benchmark.benchmark)
    for name, values in relative.items():
        frame[name] = values
    written = write_part(target, RESULTS, index, to_arrow(frame, results_schema(combos)))
    best = sweep_outputs.ranking(frame["sharpe"], np.arange(len(frame)))[:top]
    equity = runs.equity[best]
    chosen = frame.iloc[best].assign(_order=first + best).reset_index(drop=True)
    return written, Candidates(chosen, equity, [runs.holdings[i] for i in best])


def top_task(
    target: Destination,
    combos: Combos,
    dates: npt.NDArray[np.datetime64],
    candidates: Sequence[Candidates],
    top: int,
) -> tuple[list[WrittenPart], pd.DataFrame]:
    """Write ``top/``, ``equity/`` and ``holdings/`` from every chunk's candidates (a task)."""
    chosen, best = sweep_outputs.ranked_top([c.frame for c in candidates], top)
    curves = np.concatenate([c.equity for c in candidates], axis=0)
    held = [h for c in candidates for h in c.holdings]
    schema = results_schema(combos, ranked=True)
    parts = [write_part(target, TOP, 0, to_arrow(chosen, schema))]
    params = [f for f in schema if f.name in combos]
    head = [pa.field("strategy", pa.string()), pa.field("rank", pa.int64()), *params]
    eq_rows: dict[str, list[object]] = {f.name: [] for f in head}
    eq_rows.update(date=[], equity=[])
    hold_rows: dict[str, list[object]] = {f.name: [] for f in head}
    hold_rows.update(date=[], symbol=[], shares=[], value=[], weight=[])
    last = dates[-1:].tolist()[0] if len(dates) else None
    for row, i in zip(chosen.itertuples(index=False), best, strict=True):
        curve = curves[i]
        days = np.flatnonzero(~np.isnan(curve))
        for f in head:
            eq_rows[f.name].extend([getattr(row, f.name)] * len(days))
        eq_rows["date"].extend(dates[days].tolist())
        eq_rows["equity"].extend(curve[days].tolist())
        h = held[i]
        if h is None:
            continue
        for f in head:
            hold_rows[f.name].extend([getattr(row, f.name)] * len(h.symbols))
        hold_rows["date"].extend([last] * len(h.symbols))
        hold_rows["symbol"].extend(h.symbols.astype(str).tolist())
        for name in ("shares", "value", "weight"):
            hold_rows[name].extend(getattr(h, name).tolist())
    eq_schema = pa.schema([*head, pa.field("date", pa.date32()), pa.field("equity", pa.float64())])
    parts.append(write_part(target, EQUITY, 0, pa.table(eq_rows, schema=eq_schema)))
    hold_schema = pa.schema(
        [
            *head,
            pa.field("date", pa.date32()),
            pa.field("symbol", pa.string()),
            *(pa.field(n, pa.float64()) for n in ("shares", "value", "weight")),
        ]
    )
    parts.append(write_part(target, HOLDINGS, 0, pa.table(hold_rows, schema=hold_schema)))
    return parts, chosen


def parameters_json(batch: pa.RecordBatch) -> pa.Array:
    """A combination's parameters as JSON text, ``{"lookback":252,...}`` (the database key)."""
    import json

    import pyarrow.compute as pc

    names = [n for n in batch.schema.names if n in PARAMETERS]
    if not names:
        return pa.repeat(pa.scalar("{}"), batch.num_rows)
    pieces: list[object] = []
    for i, name in enumerate(names):
        pieces.append(("{" if i == 0 else ",") + json.dumps(name) + ":")
        pieces.append(pc.cast(batch.column(name), pa.string()))
    pieces.append("}")
    joined: pa.Array = pc.binary_join_element_wise(*pieces, "")
    return joined
