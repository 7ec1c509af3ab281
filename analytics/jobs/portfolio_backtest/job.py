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
3. before any output, two small tasks on the panel: the benchmark's and the universe's daily
   returns (a ``--benchmark`` without prices fails here) and the sweep's first fill, where the
   validated calendar of CSCV and walk-forward starts;
4. one task per chunk reduces its returns to the validation figures; one small task judges
   them all (:func:`analytics.stats.sweep.judge`);
5. one task per chunk computes its metrics, ``psr``, ``dsr`` and relative columns, writes its
   part of ``results/`` (and ``returns/``) and hands back its best combinations (and its
   walk-forward choices' test returns); one task writes ``top/``, ``equity/`` and
   ``holdings/``, one ``validation/``, ``walk_forward/`` and ``oos_equity/``.

A task's memory is the panel (its inputs and derived grids, about 10 times the close matrix)
plus its chunk (combinations x (dates + 4 x symbols) floats). The chunks' runs stay on the
workers from step 2 to step 5.
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

from analytics.constants import DEFAULT_BENCHMARK
from analytics.data import buckets, reads
from analytics.data.datasets import DataFile, Selection, list_files, skipped_rows, with_bad_rows
from analytics.errors import InputError
from analytics.jobs.backtest.grid import combination_count, take
from analytics.jobs.backtest.portfolio import Market
from analytics.jobs.backtest.strategies._base import Combos
from analytics.jobs.contract import JobContext, JobResult
from analytics.jobs.portfolio_backtest import tables
from analytics.jobs.portfolio_backtest.families import as_dicts, combinations
from analytics.jobs.portfolio_backtest.options import Options
from analytics.jobs.portfolio_backtest.panel import Panel
from analytics.jobs.portfolio_backtest.scores import Rules
from analytics.jobs.portfolio_backtest.simulate import first_fill, simulate
from analytics.jobs.sweep_outputs import format_verdict, logit_histogram, validation_plan
from analytics.jobs.tasks import task_cap, units_within
from analytics.run.display import wait_with_progress
from analytics.run.folder import WrittenPart
from analytics.run.progress import Phase
from analytics.stats import sweep as sweep_validation

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
#: Tasks per chunk: the simulation, its validation figures, the results and their two outputs
#: (one more each with ``--keep-returns`` and ``--walk-forward``).
TASKS_PER_CHUNK = 5
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


def max_units(files: Sequence[DataFile], threads: int) -> int:
    """The most read units: one task each, within the scheduler cap of reading them
    (:func:`analytics.jobs.tasks.units_within`)."""
    return units_within(sum(f.size for f in files), threads)


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
    threads = sum(client.nthreads().values()) or 1
    units = reads.plan(files, threads, max_units(files, threads))
    pieces = [delayed(buckets.read_and_split, pure=True)(unit, sel, 1, COLUMNS) for unit in units]
    future = client.compute(delayed(build_panel, pure=True)(pieces, urls))
    read_files = Phase(
        "reading",
        "files",
        weights=reads.files_read(pieces, units),
    )
    ctx.progress.wait([future], read_files)
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


def _validated_dates(dates: Any, start: int) -> Any:
    return dates[start:]


def _validated_from(dates: Any, start: int) -> str:
    return str(np.datetime64(dates[start], "D"))


def _label(market: Market) -> str:
    return market.label


def _never_fills(first: str, last: str, options: Options) -> InputError:
    when = "before the selection's last date" if options.fill == "next-open" else "on any date"
    return InputError(
        f"no {options.strategy} combination of the grid ever fills: no symbol is eligible "
        f"{when} in {first} .. {last} (each needs its score's history of rows, close >= "
        "--min-price and, with --min-adv, 20 rows of dollar volume); select more dates or "
        "shorter look-backs"
    )


def prepare_validation(
    ctx: JobContext,
    panel: Future[Any],
    combos: Combos,
    rules: Rules,
    ends: tuple[str, ...],
    n_dates: int,
) -> tuple[Future[Any], str, int]:
    """Before any output: the benchmark (a missing ``--benchmark`` fails here) and its label,
    the sweep's first fill (the validated calendar starts there) and CSCV's blocks over that
    calendar."""
    client = ctx.client
    options: Options = ctx.options
    benchmark = options.benchmark or DEFAULT_BENCHMARK
    market = client.submit(
        tables.market, panel, benchmark, options.benchmark is not None, pure=False
    )
    start = client.submit(first_fill, panel, options.strategy, as_dicts(combos), rules, pure=False)
    _wait([market, start], f"{NAME}: benchmark")
    label = str(client.submit(_label, market, pure=False).result())  # or the InputError
    first = int(start.result())
    if first < 0:
        raise _never_fills(ends[0], ends[-1], options)
    sweep_validation.check(validation_plan(options), n_dates - first)
    return market, label, first


def run(ctx: JobContext) -> JobResult:
    """Read the panel, sweep the chunks, validate, write the tables (the module's plan)."""
    client, settings = ctx.client, ctx.settings
    options: Options = ctx.options
    combos = combinations(options.strategy, list(options.grid))
    rules = rules_of(options)
    plan = validation_plan(options)
    panel, files, sel = read(ctx)
    n_dates, n_symbols = client.submit(_shape, panel, pure=False).result()
    dates = client.submit(_dates, panel)
    ends = tuple(str(np.datetime64(d, "D")) for d in client.submit(_ends, dates).result())
    first_day, last_day = ends
    market, label, start = prepare_validation(ctx, panel, combos, rules, ends, n_dates)
    validated_dates = client.submit(_validated_dates, dates, start)
    target = settings.destination
    total = combination_count(combos)
    threads = sum(client.nthreads().values()) or 1
    per_chunk = scheduler_bound(
        combinations_per_chunk(total, n_dates, threads), total, n_dates, n_symbols, threads
    )
    chunks = [slice(i, min(total, i + per_chunk)) for i in range(0, total, per_chunk)]
    runs, figures, computed = [], [], {}
    for chunk in chunks:
        part: Mapping[str, Any] = take(combos, chunk)
        chunk_runs = client.submit(
            simulate_task, panel, options.strategy, as_dicts(part), rules, pure=False
        )
        runs.append(chunk_runs)
        figures.append(
            client.submit(tables.figures_task, chunk_runs, dates, start, plan, pure=False)
        )
    verdict = client.submit(sweep_validation.judge, figures, validated_dates, plan, pure=False)
    writes, candidates, extras, pieces = [], [], [], []
    for p, chunk in enumerate(chunks):
        part = take(combos, chunk)
        written = client.submit(
            tables.results_task,
            target,
            p,
            options.strategy,
            part,
            chunk.start,
            runs[p],
            figures[p],
            verdict,
            market,
            options.top,
            pure=False,
        )
        computed[written.key] = chunk.stop - chunk.start
        writes.append(client.submit(operator.getitem, written, 0, pure=False))
        candidates.append(client.submit(operator.getitem, written, 1, pure=False))
        if options.keep_returns:
            extras.append(
                client.submit(
                    tables.returns_task, target, p, part, chunk.start, runs[p], dates, pure=False
                )
            )
        if plan.walk_forward is not None:
            pieces.append(
                client.submit(tables.pieces_task, runs[p], verdict, chunk.start, start, pure=False)
            )
    validation = client.submit(
        tables.validation_task, target, combos, verdict, dates, start, pieces, pure=False
    )
    final = client.submit(
        tables.top_task, target, combos, dates, candidates, options.top, pure=False
    )
    outputs = {final.key: 3, validation.key: 1 if plan.walk_forward is None else 3}
    outputs |= {f.key: 1 for f in extras}  # top, equity, holdings; validation; returns
    ctx.progress.wait(
        [*writes, *extras, validation, final],
        Phase("computing", "combinations", computed),
        Phase("writing", "parts", outputs),
    )
    results: list[WrittenPart] = client.gather(writes)
    top_parts, top_frame = final.result()
    found: sweep_validation.Verdict = verdict.result()
    print(
        f"{NAME}: top {len(top_frame)} of {total:,} {options.strategy} combinations by Sharpe "
        f"ratio, {n_symbols:,} symbols ({first_day} .. {last_day}):\n"
        + _format_top(top_frame, list(combos))
        + f"\n{NAME}: {format_verdict(found)}",
        flush=True,
    )
    validated_from = client.submit(_validated_from, dates, start).result()
    return JobResult(
        parts=[*results, *top_parts, *validation.result(), *client.gather(extras)],
        inputs={"prices": files},
        summary={
            "skipped_rows": skipped_rows(client, sel),
            "strategy": options.strategy,
            "combinations": total,
            "symbols": n_symbols,
            "days": n_dates,
            "start": first_day,
            "end": last_day,
            "combination_chunks": len(chunks),
            "benchmark": label,
            "validated_from": validated_from,
            "pbo": found.cscv.pbo,
            "logit_histogram": logit_histogram(found.cscv.logits),
        },
    )
