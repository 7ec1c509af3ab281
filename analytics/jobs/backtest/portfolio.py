"""The equal-weighted portfolio of each combination: ``summary/``, ``top/`` and ``equity/``.

The portfolio's return on a day is the mean of that day's returns of the symbols that have a
row (market-performance's equal-weighted convention: rebalanced daily, a symbol without a row
that day is left out), so its metrics follow from the per-day sums the tasks hand back. Its
equity curve is the running product of ``1 + return`` from the starting 1.0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from analytics.data.buckets import Rows
from analytics.errors import InputError
from analytics.jobs import sweep_outputs
from analytics.jobs.backtest.grid import combination_count
from analytics.jobs.backtest.stats import METRICS, PPY, TRADE_STATS
from analytics.jobs.backtest.strategies._base import Combos
from analytics.jobs.backtest.sweep import PortfolioPart
from analytics.run.folder import RUN_ID, Destination, WrittenPart, to_arrow, write_part
from analytics.stats import metrics
from analytics.stats import sweep as sweep_validation

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SUMMARY, TOP, EQUITY = "summary", "top", "equity"
RETURNS = sweep_outputs.RETURNS
#: The strategy of ``summary/``'s baseline row (not a trial).
BASELINE = "buy-and-hold"
#: Columns of ``summary/`` and ``top/`` after the metrics: the probabilistic and deflated Sharpe
#: ratios and the benchmark-relative statistics.
VALIDATION_STATS = ("psr", "dsr", *sweep_validation.RELATIVE_FIELDS)


def daily_returns(part: PortfolioPart) -> FloatArray:
    """(K, days): the mean return of the symbols with a row that day (NaN if none has)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = part.returns / part.symbols[:, None]
    return np.asarray(np.where(part.symbols[:, None] > 0, mean, np.nan).T)


def summary_frame(
    strategy: str, combos: Combos, part: PortfolioPart, returns: FloatArray | None = None
) -> pd.DataFrame:
    """One row per combination: its parameters and its portfolio's statistics (``returns``:
    :func:`daily_returns` of ``part``, when already computed)."""
    r = daily_returns(part) if returns is None else returns
    frame = pd.DataFrame({"strategy": strategy, **{n: np.asarray(v) for n, v in combos.items()}})
    # backtest's summary has no calmar column (its contract's columns)
    for name, values in metrics.sweep_metrics(
        r, periods_per_year=PPY, names=metrics.SWEEP_METRICS[:-1]
    ).items():
        frame[name] = values
    frame["n_trades"] = part.n_trades
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["win_rate"] = part.n_wins / part.n_closed
        frame["exposure"] = part.held_days / part.symbol_days if part.symbol_days else np.nan
        frame["turnover"] = part.turnover / part.n_symbols if part.n_symbols else np.nan
    return frame[["strategy", *combos, *METRICS, *TRADE_STATS]]


def summary_schema(combos: Combos, *, ranked: bool = False) -> pa.Schema:
    fields = [pa.field("rank", pa.int64())] if ranked else []
    fields.append(pa.field("strategy", pa.string()))
    fields += sweep_outputs.parameter_fields(combos)
    for name in (*METRICS, *TRADE_STATS, *VALIDATION_STATS):
        fields.append(pa.field(name, pa.int64() if name == "n_trades" else pa.float64()))
    return pa.schema(fields)


@dataclass(frozen=True)
class Candidates:
    """The best ``top`` combinations of one parameter chunk and their equity curves."""

    frame: pd.DataFrame
    equity: FloatArray  # (candidates, days)


@dataclass(frozen=True)
class Held:
    """One chunk's portfolios, kept on a worker between the passes: the reduced part (its daily
    sums dropped), the daily returns ``(days, K)`` and the validation figures."""

    part: PortfolioPart
    returns: FloatArray
    figures: sweep_validation.ChunkFigures


def hold_chunk(part: PortfolioPart, days: IntArray, plan: sweep_validation.Plan) -> Held:
    """A chunk's daily returns and figures from its reduced part (a Dask task)."""
    r = daily_returns(part).T  # (days, K)
    figures = sweep_validation.chunk_figures(r, days.astype("datetime64[D]"), plan)
    light = dataclasses.replace(part, returns=np.zeros((0, 0)))
    return Held(light, np.ascontiguousarray(r), figures)


def figures_of(held: Held) -> sweep_validation.ChunkFigures:
    return held.figures


def summary_task(
    target: Destination,
    index: int,
    strategy: str,
    combos: Combos,
    first: int,
    held: Held,
    verdict: sweep_validation.Verdict,
    market: Market,
    top: int,
) -> tuple[WrittenPart, Candidates]:
    """Write one chunk's part of ``summary/``; hand back its best combinations (a Dask task).

    ``first`` is the chunk's first combination in the grid (to break ties in grid order).
    """
    r = held.returns.T
    frame = summary_frame(strategy, combos, held.part, r)
    for name, values in sweep_validation.sharpe_columns(held.figures, verdict).items():
        frame[name] = values
    for name, values in sweep_validation.relative_columns(held.returns, market.benchmark).items():
        frame[name] = values
    table = to_arrow(frame, summary_schema(combos))
    written = write_part(target, SUMMARY, index, table)
    best = sweep_outputs.ranking(frame["sharpe"], np.arange(len(frame)))[:top]
    equity = np.cumprod(1.0 + np.nan_to_num(r[best]), axis=1, dtype=np.float64)
    chosen = frame.iloc[best].assign(_order=first + best).reset_index(drop=True)
    return written, Candidates(chosen, equity)


def returns_task(
    target: Destination, index: int, combos: Combos, first: int, held: Held, days: IntArray
) -> WrittenPart:
    """Write one chunk's part of ``returns/`` (``--keep-returns``; a Dask task)."""
    table = sweep_outputs.returns_table(combos, first, held.returns, days.astype("datetime64[D]"))
    return write_part(target, RETURNS, index, table)


def pieces_task(held: Held, verdict: sweep_validation.Verdict, first: int) -> dict[int, FloatArray]:
    """The chosen combinations' test-window returns in this chunk (a Dask task)."""
    return sweep_validation.chosen_pieces(held.returns, verdict, first)


@dataclass(frozen=True)
class MarketPart:
    """One bucket's share of the market: per calendar day the sum and count of its symbols'
    close-to-close returns, and the benchmark symbol's returns if the bucket holds it."""

    universe_sum: FloatArray
    universe_count: IntArray
    benchmark: FloatArray | None


def market_part(rows: Rows, days: IntArray, benchmark: str) -> MarketPart:
    """A bucket's :class:`MarketPart` over the calendar ``days`` (a Dask task): each symbol's
    return ``close_t / close_{t-1} - 1`` over its own consecutive rows, as market-performance's."""
    from analytics.jobs.market_performance.kernel import daily_returns as symbol_returns

    rets = symbol_returns(rows)
    at = np.searchsorted(days, rets.days)
    sums = np.bincount(at, weights=rets.values, minlength=len(days)).astype(np.float64)
    counts = np.bincount(at, minlength=len(days)).astype(np.int64)
    where = np.flatnonzero(rets.names == benchmark)
    bench = None
    if len(where):
        mask = rets.codes == where[0]
        bench = np.full(len(days), np.nan)
        bench[at[mask]] = rets.values[mask]
    return MarketPart(sums, counts, bench)


@dataclass(frozen=True)
class Market:
    """The calendar's equal-weighted universe return, the benchmark's (NaN: none that day) and
    the benchmark's label (a symbol, or ``equal-weighted``)."""

    label: str
    universe: FloatArray
    benchmark: FloatArray


def market_series(parts: Sequence[MarketPart], benchmark: str, explicit: bool) -> Market:
    """Combine the buckets' parts (a Dask task). An ``explicit`` benchmark symbol must have
    prices; the default falls back to the equal-weighted universe."""
    sums = np.sum([p.universe_sum for p in parts], axis=0)
    counts = np.sum([p.universe_count for p in parts], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        universe = np.where(counts > 0, sums / counts, np.nan)
    for part in parts:
        if part.benchmark is not None:
            return Market(benchmark, universe, part.benchmark)
    if explicit:
        raise InputError(
            f"benchmark symbol {benchmark!r} has no prices in the selected range; "
            "pick another --benchmark or omit it for the equal-weighted universe",
            dataset="prices",
            column="symbol",
        )
    return Market("equal-weighted", universe, universe)


def baseline_task(
    target: Destination, index: int, combos: Combos, market: Market, entry_cost: float
) -> WrittenPart:
    """Write ``summary/``'s baseline row, strategy ``buy-and-hold`` with null parameters: the
    equal-weighted universe held from the first date, one entry's costs charged then (a Dask
    task). Not a trial: no psr, dsr, trades."""
    r = sweep_validation.baseline_returns(market.universe, entry_cost)[:, None]
    frame = pd.DataFrame({"strategy": [BASELINE], **{n: [None] for n in combos}})
    rows = r.T
    frame["total_return"] = metrics.total_return(rows)
    frame["annual_return"] = metrics.annual_return(rows, periods_per_year=PPY)
    frame["annual_volatility"] = metrics.annual_volatility(rows, periods_per_year=PPY)
    frame["sharpe"] = metrics.sharpe_ratio(rows, periods_per_year=PPY)
    frame["sortino"] = metrics.sortino_ratio(rows, periods_per_year=PPY)
    frame["max_drawdown"] = metrics.max_drawdown(rows)
    frame["n_trades"] = None
    for name in (*TRADE_STATS[1:], "psr", "dsr"):
        frame[name] = np.nan
    for name, values in sweep_validation.relative_columns(r, market.benchmark).items():
        frame[name] = values
    return write_part(target, SUMMARY, index, to_arrow(frame, summary_schema(combos)))


def validation_task(
    target: Destination,
    combos: Combos,
    verdict: sweep_validation.Verdict,
    days: IntArray,
    pieces: Sequence[dict[int, FloatArray]],
) -> list[WrittenPart]:
    """Write ``validation/`` and, with walk-forward, ``walk_forward/`` and ``oos_equity/``."""
    dates = days.astype("datetime64[D]")
    return sweep_outputs.write_validation(target, combos, verdict, dates, pieces)


def top_task(
    target: Destination,
    combos: Combos,
    days: IntArray,
    candidates: Sequence[Candidates],
    top: int,
) -> tuple[list[WrittenPart], pd.DataFrame]:
    """Write ``top/`` and ``equity/`` from every chunk's candidates (a Dask task)."""
    chosen, best = sweep_outputs.ranked_top([c.frame for c in candidates], top)
    curves = np.concatenate([c.equity for c in candidates], axis=0)
    schema = summary_schema(combos, ranked=True)
    parts = [write_part(target, TOP, 0, to_arrow(chosen, schema))]
    n_days = len(days)
    equity = {
        "strategy": np.repeat(chosen["strategy"].to_numpy(), n_days),
        "rank": np.repeat(chosen["rank"].to_numpy(), n_days),
        **{name: np.repeat(chosen[name].to_numpy(), n_days) for name in combos},
        "date": np.tile(days.astype("datetime64[D]"), len(chosen)),
        "equity": curves[best].reshape(-1),
    }
    fields = [pa.field("strategy", pa.string()), pa.field("rank", pa.int64())]
    fields += [f for f in schema if f.name in combos]
    fields += [pa.field("date", pa.date32()), pa.field("equity", pa.float64())]
    table = pa.table(
        {
            name: pa.array(values).cast(field.type)
            for (name, values), field in zip(equity.items(), fields, strict=True)
        },
        schema=pa.schema(fields),
    )
    parts.append(write_part(target, EQUITY, 0, table))
    return parts, chosen


def combination_slices(total: int, per_chunk: int) -> list[slice]:
    return [slice(i, min(total, i + per_chunk)) for i in range(0, total, per_chunk)]


def chunk_count(combos: Combos, per_chunk: int) -> int:
    return len(combination_slices(combination_count(combos), per_chunk))


#: Columns of summary/ and top/ that are not the strategy's parameters.
_NOT_PARAMETERS = frozenset(
    {
        RUN_ID,
        "rank",
        "strategy",
        *METRICS,
        *TRADE_STATS,
        *VALIDATION_STATS,
        *sweep_validation.FOLD_COLUMNS,  # walk_forward/'s
        *sweep_validation.FOLD_FIGURES,
    }
)


def parameters_json(batch: pa.RecordBatch) -> pa.Array:
    """A combination's parameters as JSON text, ``{"fast":5,"slow":20}`` (the database key).

    Each strategy has its own parameter columns, so one database table for every strategy
    cannot key on them (a key column cannot be NULL): it keys on this text instead.
    """
    import json

    import pyarrow.compute as pc

    names = [n for n in batch.schema.names if n not in _NOT_PARAMETERS]
    if not names:
        return pa.repeat(pa.scalar("{}"), batch.num_rows)
    pieces: list[object] = []
    for i, name in enumerate(names):
        pieces.append(("{" if i == 0 else ",") + json.dumps(name) + ":")
        pieces.append(pc.cast(batch.column(name), pa.string()))
    pieces.append("}")
    # The baseline row (buy-and-hold) has no parameters: {"fast":null,"slow":null}.
    joined: pa.Array = pc.binary_join_element_wise(
        *pieces, "", null_handling="replace", null_replacement="null"
    )
    return joined
