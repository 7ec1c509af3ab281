"""One task of a sweep: a bucket of symbols x a chunk of parameter combinations.

The task builds the bucket's price matrix, simulates its columns block by block (each block at
most ``block_cells`` days x columns, so its memory is bounded however long the history), writes
its rows of ``results/`` itself and hands back only what the portfolio needs: per day and
combination the sum of the symbols' returns (days x combinations) and a few counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from analytics.data.buckets import Rows
from analytics.jobs.backtest.data import price_matrix
from analytics.jobs.backtest.engine import Execution, Workspace, backtest, market
from analytics.jobs.backtest.grid import combination_count, take
from analytics.jobs.backtest.stats import METRICS, TRADE_STATS
from analytics.jobs.backtest.strategies import get
from analytics.jobs.backtest.strategies._base import Combos
from analytics.run.folder import Destination, WrittenPart, write_part

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RESULTS = "results"
#: Days x columns simulated at once: 8 Mi cells is 64 MiB per float buffer (about three live).
BLOCK_CELLS = 8 * 2**20


@dataclass(frozen=True)
class Sweep:
    """What every task of a run shares: the strategy, how orders fill, the parameter kinds."""

    strategy: str
    execution: Execution
    block_cells: int = BLOCK_CELLS


@dataclass(frozen=True)
class PortfolioPart:
    """A bucket's (or several buckets') contribution to the equal-weighted portfolios.

    ``returns`` (days, K): sum over symbols of each symbol's return that day; ``symbols`` (days):
    how many symbols have a row that day. Per combination (K): fills that opened / closed a
    position, winning closes, symbol-days in the market, the turnover summed over symbols.
    ``symbol_days`` and ``n_symbols`` count the rows and the symbols behind them.
    """

    returns: FloatArray
    symbols: IntArray
    n_trades: IntArray
    n_closed: IntArray
    n_wins: IntArray
    held_days: IntArray
    turnover: FloatArray
    symbol_days: int
    n_symbols: int


def combine(a: PortfolioPart, b: PortfolioPart) -> PortfolioPart:
    """Two parts of the same combinations and calendar, added."""
    return PortfolioPart(
        a.returns + b.returns,
        a.symbols + b.symbols,
        a.n_trades + b.n_trades,
        a.n_closed + b.n_closed,
        a.n_wins + b.n_wins,
        a.held_days + b.held_days,
        a.turnover + b.turnover,
        a.symbol_days + b.symbol_days,
        a.n_symbols + b.n_symbols,
    )


def combine_all(parts: Sequence[PortfolioPart]) -> PortfolioPart:
    out = parts[0]
    for part in parts[1:]:
        out = combine(out, part)
    return out


def results_schema(combos: Combos) -> pa.Schema:
    fields = [pa.field("strategy", pa.string())]
    for name, values in combos.items():
        kind = pa.int64() if np.asarray(values).dtype.kind in "iu" else pa.float64()
        fields.append(pa.field(name, kind))
    fields.append(pa.field("symbol", pa.string()))
    for name in (*METRICS, *TRADE_STATS):
        fields.append(pa.field(name, pa.int64() if name == "n_trades" else pa.float64()))
    return pa.schema(fields)


def _blocks(days: int, symbols: int, combos: int, cells: int) -> tuple[int, int]:
    """Symbols and combinations per block so that days x symbols x combinations <= cells."""
    per_day = max(1, cells // max(days, 1))
    sym = min(symbols, per_day)
    return sym, max(1, min(combos, per_day // max(sym, 1)))


def reuse_order(combos: Combos) -> IntArray:
    """An order of the combinations in which consecutive blocks share indicators.

    The parameter with the most distinct values varies slowest: each of its values is needed
    by one run of blocks only, while the few values of the others come back in every block
    (and stay in the price matrix's memo) instead of all being cycled through again.
    """
    if not combos:
        return np.zeros(0, dtype=np.int64)
    keys = sorted(combos.values(), key=lambda v: len(np.unique(v)))
    return np.lexsort(keys).astype(np.int64)


def run_sweep(
    rows: Rows, days: IntArray, combos: Combos, sweep: Sweep
) -> tuple[pa.Table, PortfolioPart]:
    """``results/`` rows and the portfolio part of one bucket x one parameter chunk."""
    prices = price_matrix(rows, days)
    strategy = get(sweep.strategy)
    k_total = combination_count(combos)
    d, s_total = prices.shape
    sym_block, combo_block = _blocks(d, s_total, k_total, sweep.block_cells)
    returns = np.zeros((d, k_total))
    per_combo = {name: np.zeros(k_total, dtype=np.int64) for name in ("t", "c", "w", "h")}
    turnover = np.zeros(k_total)
    tables = []
    workspace = Workspace()
    order = reuse_order(combos)
    for s0 in range(0, s_total, sym_block):
        sub = prices if sym_block >= s_total else prices.subset(slice(s0, s0 + sym_block))
        mk = market(sub, sweep.execution.fill)
        for k0 in range(0, k_total, combo_block):
            ks = order[k0 : k0 + combo_block]
            block = take(combos, ks)
            targets = strategy.positions(sub, block, sweep.execution.long_short)
            stats = backtest(sub, targets, sweep.execution, mk, workspace)
            del targets
            returns[:, ks] += stats.portfolio
            per_combo["t"][ks] += stats.values["n_trades"].sum(axis=1).astype(np.int64)
            per_combo["c"][ks] += stats.n_closed.sum(axis=1)
            per_combo["w"][ks] += stats.n_wins.sum(axis=1)
            per_combo["h"][ks] += stats.held_days.sum(axis=1)
            turnover[ks] += np.nansum(stats.values["turnover"], axis=1)
            tables.append(_table(sweep.strategy, block, sub.symbols, stats.values))
    schema = results_schema(combos)
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    totals = PortfolioPart(
        returns,
        prices.valid.sum(axis=1).astype(np.int64),
        per_combo["t"],
        per_combo["c"],
        per_combo["w"],
        per_combo["h"],
        turnover,
        int(prices.counts.sum()),
        s_total,
    )
    return table, totals


def _table(
    strategy: str,
    combos: Combos,
    symbols: npt.NDArray[np.object_],
    values: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.int64]],
) -> pa.Table:
    """Rows in (combination, symbol) order: each combination's symbols together."""
    k = combination_count(combos)
    columns: dict[str, pa.Array] = {"strategy": pa.array(np.full(k * len(symbols), strategy))}
    for name, param in combos.items():
        columns[name] = pa.array(np.repeat(param, len(symbols)))
    columns["symbol"] = pa.array(np.tile(symbols.astype(str), k))
    for name in (*METRICS, *TRADE_STATS):
        columns[name] = pa.array(values[name].reshape(-1))
    return pa.table(columns, schema=results_schema(combos))


def sweep_task(
    target: Destination,
    index: int,
    rows: Rows,
    days: IntArray,
    combos: Combos,
    sweep: Sweep,
) -> tuple[WrittenPart, PortfolioPart]:
    """Run one task and write its part of ``results/`` (a Dask task)."""
    table, part = run_sweep(rows, days, combos, sweep)
    return write_part(target, RESULTS, index, table), part
