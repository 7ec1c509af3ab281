"""The ``portfolio-backtest`` job: one cross-sectional strategy's sweep over the whole universe.

Plan (nothing of size combinations x dates reaches the driver):

1. one task per ``prices`` file reads ``symbol, date, open, close, volume``; one task merges
   them (a repeated (symbol, date) is refused, naming both files) into the :class:`Panel`
   (dates x symbols). The panel is then replicated to every worker: each worker holds one copy,
   fetched once, whatever the number of tasks that use it;
2. the combinations are cut into chunks, at least ``MIN_TASKS_PER_THREAD`` per thread of the
   cluster (and at most ``CHUNK_CELLS`` of returns each); one task per chunk runs the kernel
   (:func:`.simulate.simulate`) over its combinations, vectorized, and hands back their daily
   returns and counts (:class:`.tables.ChunkRuns`);
3. one task per chunk computes its metrics, writes its part of ``results/`` and hands back its
   best combinations; one last task writes ``top/``, ``equity/`` and ``holdings/``.

A task's memory is the panel (its inputs and derived grids, about 10 times the close matrix)
plus its chunk (combinations x (dates + 4 x symbols) floats).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from dask.delayed import delayed
from distributed import Future, wait

from analytics.data import buckets
from analytics.data.datasets import Selection, list_files, skipped_rows, with_bad_rows
from analytics.errors import InputError
from analytics.jobs.backtest.grid import combination_count, take
from analytics.jobs.contract import JobContext, JobResult
from analytics.jobs.portfolio_backtest import tables
from analytics.jobs.portfolio_backtest.families import as_dicts, combinations
from analytics.jobs.portfolio_backtest.options import Options
from analytics.jobs.portfolio_backtest.panel import Panel
from analytics.jobs.portfolio_backtest.scores import Rules
from analytics.jobs.portfolio_backtest.simulate import simulate
from analytics.jobs.tasks import task_cap
from analytics.run.display import wait_with_progress
from analytics.run.folder import WrittenPart

NAME = "portfolio-backtest"
COLUMNS = ("open", "close", "volume")
#: Tasks per thread at least (when there are combinations enough), so no thread waits long on
#: the last one.
MIN_TASKS_PER_THREAD = 3
#: Combinations x dates of one chunk's returns at most (float64): 64 MiB.
CHUNK_CELLS = 8 * 2**20
#: Seconds of one core per combination x symbol x date (docs/performance.md: the kernel's 18.8
#: combinations/s/core on 500 symbols x 2,516 sessions): the work the scheduler cap weighs.
SECONDS_PER_CELL = 4.2e-8
#: Tasks per chunk: the simulation, the results, and their two outputs.
TASKS_PER_CHUNK = 4
#: A graph that finishes within this many seconds is waited for without the progress feed.
QUIET_WAIT_S = 3.0


def _wait(futures: Sequence[Future[Any]], label: str) -> None:
    try:
        wait(futures, timeout=QUIET_WAIT_S)
    except TimeoutError:
        wait_with_progress(futures, label)


def rules_of(options: Options) -> Rules:
    """The kernel's rules from the job's options."""
    return Rules(
        direction="long-short" if options.direction == "long-short" else "long",
        fill="close" if options.fill == "close" else "next-open",
        weighting="inverse-vol" if options.weighting == "inverse-vol" else "equal",
        fees_bps=options.fees_bps,
        slippage_bps=options.slippage_bps,
        impact_coefficient=options.impact_coefficient,
        borrow_bps=options.borrow_bps,
        min_price=options.min_price,
        min_adv=options.min_adv,
    )


def panel_of(rows: buckets.Rows) -> Panel:
    """The merged rows (sorted by symbol, names sorted and unique) as a :class:`Panel`."""
    dates, day = np.unique(rows.days, return_inverse=True)
    grids = []
    for column in COLUMNS:
        grid = np.full((len(dates), rows.symbol_count), np.nan)
        grid[day, rows.codes] = rows.column(column)
        grids.append(grid)
    return Panel(
        dates.astype("datetime64[D]"), rows.names.astype(str), grids[0], grids[1], grids[2]
    )


def build_panel(pieces: Sequence[Sequence[buckets.Rows]], urls: Sequence[str]) -> Panel | None:
    """Every file's rows merged into the panel (None when the selection has no rows)."""
    rows = buckets.merge([p[0] for p in pieces], urls)
    if not len(rows.codes):
        return None
    return panel_of(rows)


def combinations_per_chunk(combos: int, dates: int, threads: int) -> int:
    """Enough chunks for ``MIN_TASKS_PER_THREAD`` per thread; each at most ``CHUNK_CELLS``."""
    by_threads = math.ceil(combos / (MIN_TASKS_PER_THREAD * max(1, threads)))
    by_memory = max(1, CHUNK_CELLS // max(1, dates))
    return max(1, min(by_threads, by_memory))


def scheduler_bound(per_chunk: int, combos: int, dates: int, symbols: int, threads: int) -> int:
    """At least ``per_chunk`` combinations a chunk, more when the chunks' tasks would be more
    than the scheduler keeps up with (:func:`analytics.jobs.tasks.task_cap`), never more than
    ``CHUNK_CELLS`` allows."""
    work = combos * dates * symbols * SECONDS_PER_CELL
    chunks = max(1, task_cap(work, threads) // TASKS_PER_CHUNK)
    by_memory = max(1, CHUNK_CELLS // max(1, dates))
    return max(1, min(combos, max(per_chunk, min(by_memory, math.ceil(combos / chunks)))))


def simulate_task(
    panel: Panel, strategy: str, combos: list[dict[str, float]], rules: Rules
) -> tables.ChunkRuns:
    """One chunk of combinations over the whole panel (a Dask task)."""
    runs = simulate(panel, strategy, combos, rules, holdings=True)
    return tables.chunk_runs(runs, panel.n_dates)


def _dates(panel: Panel) -> Any:
    return panel.dates


def _is_empty(panel: Panel | None) -> bool:
    return panel is None


def _ends(dates: Any) -> tuple[Any, Any]:
    return dates[0], dates[-1]


def _shape(panel: Panel) -> tuple[int, int]:
    return panel.n_dates, panel.n_symbols


def read(ctx: JobContext) -> tuple[Future[Any], list[Any], Selection]:
    """Graph 1: the panel, built on a worker and replicated to every worker."""
    client, settings = ctx.client, ctx.settings
    sel = with_bad_rows(
        Selection(settings.start, settings.end, settings.symbols), settings.on_bad_rows
    )
    files = list_files(settings.input_url, "prices", sel)
    urls = [f.url for f in files]
    pieces = [
        delayed(buckets.read_and_split, pure=True)(url, i, sel, 1, COLUMNS)
        for i, url in enumerate(urls)
    ]
    future = client.compute(delayed(build_panel, pure=True)(pieces, urls))
    _wait([future], f"{NAME}: read")
    if client.submit(_is_empty, future).result():
        raise InputError(
            f"no prices for the selected symbols in {settings.start} .. {settings.end}",
            dataset="prices",
        )
    client.replicate([future])
    return future, files, sel


def _format_top(frame: pd.DataFrame, params: Sequence[str]) -> str:
    shown = frame[["rank", *params, "sharpe", "total_return", "annual_return", "max_drawdown"]]
    shown = shown.assign(turnover=frame["turnover"], avg_long=frame["avg_long"])
    return str(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def run(ctx: JobContext) -> JobResult:
    """Read the panel, sweep the chunks, write the tables (the module docstring's plan)."""
    client, settings = ctx.client, ctx.settings
    options: Options = ctx.options
    combos = combinations(options.strategy, list(options.grid))
    rules = rules_of(options)
    panel, files, sel = read(ctx)
    n_dates, n_symbols = client.submit(_shape, panel, pure=False).result()
    dates = client.submit(_dates, panel)
    total = combination_count(combos)
    threads = sum(client.nthreads().values()) or 1
    per_chunk = scheduler_bound(
        combinations_per_chunk(total, n_dates, threads), total, n_dates, n_symbols, threads
    )
    chunks = [slice(i, min(total, i + per_chunk)) for i in range(0, total, per_chunk)]
    writes, candidates = [], []
    for p, chunk in enumerate(chunks):
        part: Mapping[str, Any] = take(combos, chunk)
        runs = client.submit(
            simulate_task, panel, options.strategy, as_dicts(part), rules, pure=False
        )
        written = client.submit(
            tables.results_task,
            settings.destination,
            p,
            options.strategy,
            part,
            chunk.start,
            runs,
            options.top,
            pure=False,
        )
        writes.append(client.submit(operator.getitem, written, 0, pure=False))
        candidates.append(client.submit(operator.getitem, written, 1, pure=False))
    final = client.submit(
        tables.top_task, settings.destination, combos, dates, candidates, options.top, pure=False
    )
    _wait([*writes, final], NAME)
    results: list[WrittenPart] = client.gather(writes)
    top_parts, top_frame = final.result()
    first, last = (str(np.datetime64(d, "D")) for d in client.submit(_ends, dates).result())
    print(
        f"{NAME}: top {len(top_frame)} of {total:,} {options.strategy} combinations by Sharpe "
        f"ratio, {n_symbols:,} symbols ({first} .. {last}):\n"
        + _format_top(top_frame, list(combos)),
        flush=True,
    )
    return JobResult(
        parts=[*results, *top_parts],
        inputs={"prices": files},
        summary={
            "skipped_rows": skipped_rows(client, sel),
            "strategy": options.strategy,
            "combinations": total,
            "symbols": n_symbols,
            "days": n_dates,
            "start": first,
            "end": last,
            "combination_chunks": len(chunks),
        },
    )
