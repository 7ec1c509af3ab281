"""The equal-weighted portfolio of each combination: ``summary/``, ``top/`` and ``equity/``.

The portfolio's return on a day is the mean of that day's returns of the symbols that have a
row (market-performance's equal-weighted convention: rebalanced daily, a symbol without a row
that day is left out), so its metrics follow from the per-day sums the tasks hand back. Its
equity curve is the running product of ``1 + return`` from the starting 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from analytics.jobs.backtest.grid import combination_count
from analytics.jobs.backtest.stats import METRICS, PPY, TRADE_STATS
from analytics.jobs.backtest.strategies._base import Combos
from analytics.jobs.backtest.sweep import PortfolioPart
from analytics.run.folder import RUN_ID, Destination, WrittenPart, to_arrow, write_part
from analytics.stats import metrics

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SUMMARY, TOP, EQUITY = "summary", "top", "equity"


def daily_returns(part: PortfolioPart) -> FloatArray:
    """(K, days): the mean return of the symbols with a row that day (NaN if none has)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = part.returns / part.symbols[:, None]
    return np.asarray(np.where(part.symbols[:, None] > 0, mean, np.nan).T)


def summary_frame(strategy: str, combos: Combos, part: PortfolioPart) -> pd.DataFrame:
    """One row per combination: its parameters and its portfolio's statistics."""
    r = daily_returns(part)
    frame = pd.DataFrame({"strategy": strategy, **{n: np.asarray(v) for n, v in combos.items()}})
    frame["total_return"] = metrics.total_return(r)
    frame["annual_return"] = metrics.annual_return(r, periods_per_year=PPY)
    frame["annual_volatility"] = metrics.annual_volatility(r, periods_per_year=PPY)
    frame["sharpe"] = metrics.sharpe_ratio(r, periods_per_year=PPY)
    frame["sortino"] = metrics.sortino_ratio(r, periods_per_year=PPY)
    frame["max_drawdown"] = metrics.max_drawdown(r)
    frame["n_trades"] = part.n_trades
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["win_rate"] = part.n_wins / part.n_closed
        frame["exposure"] = part.held_days / part.symbol_days if part.symbol_days else np.nan
        frame["turnover"] = part.turnover / part.n_symbols if part.n_symbols else np.nan
    return frame[["strategy", *combos, *METRICS, *TRADE_STATS]]


def summary_schema(combos: Combos, *, ranked: bool = False) -> pa.Schema:
    fields = [pa.field("rank", pa.int64())] if ranked else []
    fields.append(pa.field("strategy", pa.string()))
    for name, values in combos.items():
        kind = pa.int64() if np.asarray(values).dtype.kind in "iu" else pa.float64()
        fields.append(pa.field(name, kind))
    for name in (*METRICS, *TRADE_STATS):
        fields.append(pa.field(name, pa.int64() if name == "n_trades" else pa.float64()))
    return pa.schema(fields)


def ranking(sharpe: npt.ArrayLike, order: npt.ArrayLike) -> IntArray:
    """Indices by Sharpe ratio, best first (NaN last), ties in grid order."""
    s = np.asarray(sharpe, dtype=np.float64)
    key = np.where(np.isnan(s), np.inf, -s)
    return np.lexsort((np.asarray(order), key)).astype(np.int64)


@dataclass(frozen=True)
class Candidates:
    """The best ``top`` combinations of one parameter chunk and their equity curves."""

    frame: pd.DataFrame
    equity: FloatArray  # (candidates, days)


def summary_task(
    target: Destination,
    index: int,
    strategy: str,
    combos: Combos,
    first: int,
    part: PortfolioPart,
    top: int,
) -> tuple[WrittenPart, Candidates]:
    """Write one chunk's part of ``summary/``; hand back its best combinations (a Dask task).

    ``first`` is the chunk's first combination in the grid (to break ties in grid order).
    """
    frame = summary_frame(strategy, combos, part)
    table = to_arrow(frame, summary_schema(combos))
    written = write_part(target, SUMMARY, index, table)
    best = ranking(frame["sharpe"], np.arange(len(frame)))[:top]
    r = daily_returns(part)[best]
    equity = np.cumprod(1.0 + np.nan_to_num(r), axis=1, dtype=np.float64)
    chosen = frame.iloc[best].assign(_order=first + best).reset_index(drop=True)
    return written, Candidates(chosen, equity)


def top_task(
    target: Destination,
    combos: Combos,
    days: IntArray,
    candidates: Sequence[Candidates],
    top: int,
) -> tuple[list[WrittenPart], pd.DataFrame]:
    """Write ``top/`` and ``equity/`` from every chunk's candidates (a Dask task)."""
    frame = pd.concat([c.frame for c in candidates], ignore_index=True)
    curves = np.concatenate([c.equity for c in candidates], axis=0)
    best = ranking(frame["sharpe"], frame["_order"])[:top]
    chosen = frame.iloc[best].drop(columns="_order").reset_index(drop=True)
    chosen.insert(0, "rank", np.arange(1, len(chosen) + 1, dtype=np.int64))
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
_NOT_PARAMETERS = frozenset({RUN_ID, "rank", "strategy", *METRICS, *TRADE_STATS})


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
    joined: pa.Array = pc.binary_join_element_wise(*pieces, "")
    return joined
