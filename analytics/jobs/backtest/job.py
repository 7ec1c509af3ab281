"""The ``backtest`` job: a parameter sweep of one strategy over every selected symbol.

Plan (two Dask graphs; nothing of size symbols x combinations ever reaches the driver):

1. one task per read unit of ``prices`` (several small files, or a file, or part of a large one:
   :mod:`analytics.data.reads`) reads ``symbol, date, open, close`` and cuts its rows into B
   buckets by a stable hash of the symbol; one task per bucket gathers its pieces (whole
   series); the buckets' dates make the calendar. These stay on the workers;
2. the combinations are cut into P chunks; one task per (bucket, chunk) simulates its columns
   and writes its own part of ``results/``, handing back the per-day sums of its symbols'
   returns for its combinations (days x chunk, small);
3. per chunk, those are added up the buckets by tree reduction; one task per chunk computes the
   equal-weighted portfolios' statistics, writes its part of ``summary/`` and hands back its best
   combinations; one last task writes ``top/`` and ``equity/``.
"""

from __future__ import annotations

import calendar as cal
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from dask.delayed import Delayed, delayed
from distributed import Client, Future, wait

from analytics.constants import DEFAULT_BENCHMARK
from analytics.data import buckets, reads
from analytics.data.datasets import (
    DataFile,
    Selection,
    list_files,
    skipped_rows,
    span,
    with_bad_rows,
)
from analytics.errors import InputError
from analytics.jobs.backtest import data, portfolio, shards
from analytics.jobs.backtest.engine import Execution
from analytics.jobs.backtest.grid import build_combinations, combination_count, take
from analytics.jobs.backtest.options import Options
from analytics.jobs.backtest.resume import load_part, recorder, sweep_and_keep
from analytics.jobs.backtest.strategies import registry
from analytics.jobs.backtest.strategies._base import Combos
from analytics.jobs.backtest.sweep import Sweep, combine_all, sweep_task
from analytics.jobs.contract import JobContext, JobResult, RunSettings
from analytics.jobs.sweep_outputs import format_verdict, logit_histogram, validation_plan
from analytics.jobs.tasks import (
    SECONDS_PER_INPUT_BYTE,
    buckets_within,
    fewest_buckets,
    task_cap,
    units_within,
)
from analytics.run.display import wait_with_progress
from analytics.run.execute import parameters
from analytics.run.folder import WrittenPart
from analytics.run.progress import Phase
from analytics.run.resume import Checkpoint
from analytics.stats import sweep as sweep_validation

NAME = "backtest"
#: Input bytes per bucket of symbols (a bucket's series and its blocks stay small).
BYTES_PER_BUCKET = 16 * 2**20
#: Days x symbols x combinations per task: about a second or two of one core.
CELLS_PER_TASK = 200_000_000
#: Largest days x combinations of a portfolio part (float64): 64 MiB.
PORTFOLIO_CELLS = 8 * 2**20
#: Tasks per thread at least (when there is work enough), so that no thread waits long on the
#: last one.
MIN_TASKS_PER_THREAD = 3
#: Days x symbols x combinations a task keeps at least when the sweep is cut for the threads
#: (about 0.15 s of one core): below it a task's fixed costs (its price matrix, its moving
#: averages, its part of ``results/``, its chunk's summary) weigh as much as its work, and a
#: small sweep runs as one task per thread.
MIN_CELLS_PER_TASK = 10_000_000
#: Parts added per step of the reduction tree.
FAN_IN = 8
#: Seconds of one core per day x symbol x combination (docs/performance.md: the kernel's
#: 35,014 backtests/s/core over 2,520 days): the work the scheduler cap weighs.
SECONDS_PER_CELL = 1.1e-8
#: Tasks per (bucket, chunk): the sweep task and its two outputs, with a share of the chunk's
#: reduction and summary.
TASKS_PER_SWEEP = 4
#: A graph that finishes within this many seconds is waited for without the progress feed
#: (whose off-terminal updates come once a second, so it would add up to a second per wait).
QUIET_WAIT_S = 3.0


def _wait(futures: Sequence[Future[Any]], label: str) -> None:
    """Wait for ``futures`` (until one fails): quietly if quick, else with progress lines."""
    try:
        wait(futures, timeout=QUIET_WAIT_S)
    except TimeoutError:
        wait_with_progress(futures, label)


def _last_day(unit: reads.ReadUnit, sel: Selection) -> int | None:
    table = reads.read_unit(unit, "prices", ["date"], sel, check_keys=False)
    if not table.num_rows:
        return None
    return int(table.column("date").cast("int32").to_numpy().max())


def _symbol_count(rows: buckets.Rows) -> int:
    return rows.symbol_count


def bucket_count(files: Sequence[DataFile]) -> int:
    """Buckets of about ``BYTES_PER_BUCKET`` of input each.

    Not more to keep threads busy: a task vectorizes over its bucket's symbols, and wide
    buckets are faster; the combination chunks give the tasks their number.
    """
    return max(1, min(4096, math.ceil(sum(f.size for f in files) / BYTES_PER_BUCKET)))


def max_units(files: Sequence[DataFile], threads: int) -> int:
    """The most read units: each brings its read and a piece of each of the fewest buckets
    (:func:`analytics.jobs.tasks.units_within`)."""
    size = sum(f.size for f in files)
    return units_within(size, threads, fewest_buckets(size) + 1)


def combinations_per_chunk(
    combos: int, days: int, symbols_per_bucket: float, buckets: int, threads: int
) -> int:
    """Combinations per task: about ``CELLS_PER_TASK`` cells, a bounded portfolio part, and
    ``MIN_TASKS_PER_THREAD`` tasks for every thread, or fewer (one per thread at least) where
    that would leave a task under ``MIN_CELLS_PER_TASK`` cells."""
    by_cells = CELLS_PER_TASK / max(1.0, days * symbols_per_bucket)
    by_memory = PORTFOLIO_CELLS / max(1, days)
    per_chunk = max(1, min(combos, int(by_cells), int(by_memory)))
    if buckets * math.ceil(combos / per_chunk) < MIN_TASKS_PER_THREAD * threads:
        cells = days * symbols_per_bucket * buckets * combos
        wanted = min(MIN_TASKS_PER_THREAD * threads, max(threads, int(cells // MIN_CELLS_PER_TASK)))
        per_chunk = max(1, math.ceil(combos / math.ceil(wanted / buckets)))
    return per_chunk


def scheduler_bound(
    per_chunk: int, combos: int, days: int, symbols: int, buckets: int, threads: int
) -> int:
    """At least ``per_chunk`` combinations a chunk, more when the (bucket, chunk) tasks would be
    more than the scheduler keeps up with (:func:`analytics.jobs.tasks.task_cap`), never more
    than ``PORTFOLIO_CELLS`` allows."""
    work = combos * days * symbols * SECONDS_PER_CELL
    chunks = max(1, task_cap(work, threads) // (TASKS_PER_SWEEP * max(1, buckets)))
    by_memory = max(1, PORTFOLIO_CELLS // max(1, days))
    return max(1, min(combos, max(per_chunk, min(by_memory, math.ceil(combos / chunks)))))


def _entry_cost(ex: Execution) -> float:
    """One entry's cost as a fraction: fees and slippage on the buy (the engine's)."""
    return (1.0 + ex.slippage) * (1.0 + ex.fee) - 1.0


def _tree(parts: list[Delayed]) -> Delayed:
    while len(parts) > 1:
        parts = [
            delayed(combine_all, pure=True)(parts[i : i + FAN_IN])
            for i in range(0, len(parts), FAN_IN)
        ]
    return parts[0]


def _format_top(frame: pd.DataFrame, params: Sequence[str]) -> str:
    shown = frame[["rank", *params, "sharpe", "total_return", "annual_return", "max_drawdown"]]
    shown = shown.assign(
        n_trades=frame["n_trades"], win_rate=frame["win_rate"], exposure=frame["exposure"]
    )
    return str(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


@dataclass
class Read:
    """Graph 1's outcome: the buckets (kept on the workers), the calendar and the counts."""

    files: list[DataFile]
    sel: Selection
    buckets: list[Future[Any]]
    days_future: Future[Any]
    days: np.ndarray
    counts: list[int]
    market_future: Future[Any] | None = None
    market: portfolio.Market | None = None

    @property
    def symbols(self) -> int:
        return sum(self.counts)

    @property
    def used(self) -> list[int]:
        return [b for b in range(len(self.counts)) if self.counts[b]]


def _resolve_end(client: Client, settings: RunSettings, month: dt.date) -> dt.date:
    """The last trading day of ``month`` in the data (``--as-of-month``)."""
    last = month.replace(day=cal.monthrange(month.year, month.month)[1])
    sel = Selection(month, last, settings.symbols)
    try:
        files = list_files(settings.input_url, "prices", sel)
    except InputError as err:
        raise InputError(f"no prices in {month:%Y-%m} (--as-of-month): {err}") from err
    threads = sum(client.nthreads().values()) or 1
    units = reads.plan(files, threads)
    futures = client.compute([delayed(_last_day, pure=True)(unit, sel) for unit in units])
    _wait(futures, f"{NAME}: as of {month:%Y-%m}")
    found = [d for d in client.gather(futures) if d is not None]
    if not found:
        raise InputError(f"no prices in {month:%Y-%m} (--as-of-month)", dataset="prices")
    return (np.datetime64(max(found), "D")).astype(dt.date)  # type: ignore[no-any-return]


def read(ctx: JobContext) -> Read:
    """Graph 1: read every file once, bucket the symbols, build the calendar."""
    client, settings, checkpoint = ctx.client, ctx.settings, ctx.checkpoint
    options: Options = ctx.options
    end = settings.end
    if options.as_of_month is not None:
        month = dt.datetime.strptime(options.as_of_month, "%Y-%m").date()
        end = _resolve_end(client, settings, month)
    if settings.start and end and settings.start > end:
        raise InputError(f"--start {settings.start} is after the end {end}")
    sel = with_bad_rows(Selection(settings.start, end, settings.symbols), settings.on_bad_rows)
    files = list_files(settings.input_url, "prices", sel)
    urls = [f.url for f in files]
    size = sum(f.size for f in files)
    threads = sum(client.nthreads().values()) or 1
    cap = task_cap(size * SECONDS_PER_INPUT_BYTE, threads)
    units = reads.plan(files, threads, max_units(files, threads))
    n_buckets = buckets_within(bucket_count(files), len(units), size, cap)
    if checkpoint is not None:
        checkpoint.begin({"prices": files}, {"buckets": n_buckets})
        n_buckets = int(checkpoint.plan["buckets"])  # a resumed run keeps its names
    split = [
        delayed(buckets.read_and_split, nout=n_buckets, pure=True)(
            unit, sel, n_buckets, data.COLUMNS
        )
        for unit in units
    ]
    merged = [
        delayed(buckets.merge, pure=True)([pieces[b] for pieces in split], urls)
        for b in range(n_buckets)
    ]
    days = delayed(data.calendar, pure=True)(
        [delayed(data.trading_days, pure=True)(b) for b in merged]
    )
    sizes = [delayed(_symbol_count, pure=True)(b) for b in merged]
    futures = client.compute([*merged, days, *sizes])
    ctx.progress.wait(
        futures,
        Phase(
            "reading",
            "files",
            weights=reads.files_read(split, units),
        ),
    )
    counts: list[int] = client.gather(futures[n_buckets + 1 :])
    found = Read(
        files,
        sel,
        futures[:n_buckets],
        futures[n_buckets],
        client.gather(futures[n_buckets]),
        counts,
    )
    if found.symbols == 0:
        raise InputError(
            f"no prices for the selected symbols in {span(settings.start, end)}", dataset="prices"
        )
    # The market (benchmark, universe) before any output: a missing --benchmark fails here.
    benchmark = options.benchmark or DEFAULT_BENCHMARK
    parts = [
        delayed(portfolio.market_part, pure=True)(found.buckets[b], found.days_future, benchmark)
        for b in found.used
    ]
    market = delayed(portfolio.market_series, pure=True)(
        parts, benchmark, options.benchmark is not None
    )
    found.market_future = client.compute(market)
    _wait([found.market_future], f"{NAME}: benchmark")
    found.market = found.market_future.result()
    return found


@dataclass
class Planned:
    """Graph 2, built: its futures in order (sweep writes, summaries and the baseline, top, top
    frame, validation tables, returns parts, the verdict)."""

    futures: list[Future[Any]]
    keys: list[str]
    reused: list[WrittenPart]
    n_writes: int
    n_summaries: int
    chunks: int
    n_extras: int
    #: computing (a chunk's combinations are done with its summary), writing (parts).
    phases: list[Phase] = field(default_factory=list)


def sweep(ctx: JobContext, combos: Combos, got: Read) -> Planned:
    """Graph 2: (bucket x chunk) tasks, reductions, summaries and the top, all computing."""
    client, settings, checkpoint = ctx.client, ctx.settings, ctx.checkpoint
    options: Options = ctx.options
    ex = Execution(
        "close" if options.fill == "close" else "next-open",
        options.direction == "long-short",
        options.fees_bps / 1e4,
        options.slippage_bps / 1e4,
    )
    threads = sum(client.nthreads().values()) or 1
    used = got.used
    total = combination_count(combos)
    per_chunk = combinations_per_chunk(
        total, len(got.days), got.symbols / len(used), len(used), threads
    )
    per_chunk = scheduler_bound(per_chunk, total, len(got.days), got.symbols, len(used), threads)
    if checkpoint is not None:  # depends on the cluster's threads: a resumed run keeps it
        per_chunk = int(checkpoint.settle("per_chunk", per_chunk))
    chunks = portfolio.combination_slices(combination_count(combos), per_chunk)
    task_sweep = Sweep(options.strategy, ex)
    plan = validation_plan(options)
    sweep_validation.check(plan, len(got.days))
    dates = got.days.astype("datetime64[D]")
    held: list[Delayed] = []
    writes: list[Delayed] = []
    keys: list[str] = []
    reused: list[WrittenPart] = []
    summaries: list[Delayed] = []
    candidates: list[Delayed] = []
    for p, chunk in enumerate(chunks):
        part_combos = take(combos, chunk)
        parts = []
        for i, b in enumerate(used):
            index = p * len(used) + i
            key = f"task-{index:05d}"
            piece = checkpoint.piece(key) if checkpoint is not None else None
            if piece is not None:
                reused.append(Checkpoint.as_part(piece))
                parts.append(delayed(load_part, pure=True)(piece["blob"]["url"]))
                continue
            args = (index, got.buckets[b], got.days_future, part_combos, task_sweep)
            if checkpoint is not None:
                task = delayed(sweep_and_keep, nout=2, pure=True)(
                    checkpoint.blob_url(key), settings.destination, *args
                )
            else:
                task = delayed(sweep_task, nout=2, pure=True)(settings.destination, *args)
            writes.append(task[0])
            keys.append(key)
            parts.append(task[1])
        held.append(delayed(portfolio.hold_chunk, pure=True)(_tree(parts), got.days_future, plan))
    figures = [delayed(portfolio.figures_of, pure=True)(h) for h in held]
    verdict = delayed(sweep_validation.judge, pure=True)(figures, dates, plan)
    market = got.market_future
    extras: list[Delayed] = []
    pieces: list[Delayed] = []
    for p, chunk in enumerate(chunks):
        part_combos = take(combos, chunk)
        written, best = delayed(portfolio.summary_task, nout=2, pure=True)(
            settings.destination,
            p,
            options.strategy,
            part_combos,
            chunk.start,
            held[p],
            verdict,
            market,
            options.top,
        )
        summaries.append(written)
        candidates.append(best)
        if options.keep_returns:
            extras.append(
                delayed(portfolio.returns_task, pure=True)(
                    settings.destination, p, part_combos, chunk.start, held[p], got.days_future
                )
            )
        if plan.walk_forward is not None:
            pieces.append(delayed(portfolio.pieces_task, pure=True)(held[p], verdict, chunk.start))
    summaries.append(
        delayed(portfolio.baseline_task, pure=True)(
            settings.destination, len(chunks), combos, market, _entry_cost(ex)
        )
    )
    validation = delayed(portfolio.validation_task, pure=True)(
        settings.destination, combos, verdict, got.days_future, pieces
    )
    final = delayed(portfolio.top_task, nout=2, pure=True)(
        settings.destination, combos, got.days_future, candidates, options.top
    )
    futures = client.compute(
        [*writes, *summaries, final[0], final[1], validation, *extras, verdict]
    )
    if checkpoint is not None:
        if checkpoint.resumed:
            print(
                f"{NAME}: resuming: {len(reused)} of {len(reused) + len(writes)} "
                "sweep task(s) reused",
                flush=True,
            )
        for key, future in zip(keys, futures, strict=False):
            checkpoint.track(future, recorder(checkpoint, key))
    computed = {summaries[p].key: c.stop - c.start for p, c in enumerate(chunks)}
    tables = {final.key: 2, validation.key: 1 if plan.walk_forward is None else 3}
    tables |= {d.key: 1 for d in [summaries[-1], *extras]}  # the baseline, the returns parts
    phases = [Phase("computing", "combinations", computed), Phase("writing", "parts", tables)]
    n_extras = 1 + len(extras)
    return Planned(
        futures, keys, reused, len(writes), len(summaries), len(chunks), n_extras, phases
    )


def collect(ctx: JobContext, combos: Combos, got: Read, planned: Planned) -> JobResult:
    """Wait for graph 2, print the top table, and describe the run."""
    client = ctx.client
    options: Options = ctx.options
    ctx.progress.wait(planned.futures, *planned.phases)
    results: list[Any] = client.gather(planned.futures)
    n = planned.n_writes
    n_all = n + planned.n_summaries
    computed = [r[0] if ctx.checkpoint is not None else r for r in results[:n]]
    written: list[WrittenPart] = [*computed, *planned.reused, *results[n:n_all], *results[n_all]]
    top_frame: pd.DataFrame = results[n_all + 1]
    extras = results[n_all + 2 : n_all + 2 + planned.n_extras]
    written += [*extras[0], *extras[1:]]
    verdict: sweep_validation.Verdict = results[-1]
    first, last = (np.datetime64(int(got.days[i]), "D") for i in (0, -1))
    print(
        f"{NAME}: top {len(top_frame)} of {combination_count(combos):,} {options.strategy} "
        f"combinations by the Sharpe ratio of the equal-weighted portfolio of "
        f"{got.symbols:,} symbols ({first} .. {last}):\n"
        + _format_top(top_frame, list(combos))
        + f"\n{NAME}: {format_verdict(verdict)}",
        flush=True,
    )
    return JobResult(
        parts=written,
        inputs={"prices": got.files},
        summary={
            "skipped_rows": skipped_rows(client, got.sel),
            "strategy": options.strategy,
            "combinations": combination_count(combos),
            "symbols": got.symbols,
            "days": len(got.days),
            "end": str(last),
            "buckets": len(got.used),
            "combination_chunks": planned.chunks,
            "tasks": n + len(planned.reused),
            "benchmark": got.market.label if got.market is not None else None,
            "pbo": verdict.cscv.pbo,
            "logit_histogram": logit_histogram(verdict.cscv.logits),
        },
    )


def sweep_combinations(options: Options) -> Combos:
    """The combinations this run computes: the grid's, or one shard's slice of them."""
    combos = build_combinations(registry()[options.strategy], list(options.grid))
    if options.shard is not None:
        index, count = (int(v) for v in options.shard.split("/"))
        combos = take(combos, shards.shard_slice(combination_count(combos), index, count))
    return combos


def run(ctx: JobContext) -> JobResult:
    """The sweep (read, sweep, collect), or the merge of committed shards."""
    options: Options = ctx.options
    if options.merge_shards is not None:
        return _merge(ctx)
    combos = sweep_combinations(options)
    got = read(ctx)
    return collect(ctx, combos, got, sweep(ctx, combos, got))


def _merge(ctx: JobContext) -> JobResult:
    options: Options = ctx.options
    combos = build_combinations(registry()[options.strategy], list(options.grid))
    params = parameters(ctx.settings, options)
    own = {name: params[name] for name in shards.SHARED_OPTIONS if name in params}
    count = int(options.merge_shards or 0)
    current = shards.current_inputs(ctx.settings, options)
    parts, files, summary, top_frame = shards.merge(
        ctx.client,
        ctx.settings.destination,
        combos,
        count,
        shards.jsonable(own),
        options.top,
        current,
    )
    print(
        f"{NAME}: merged {count} shards; top {len(top_frame)} of "
        f"{summary['combinations']:,} {options.strategy} combinations:\n"
        + _format_top(top_frame, list(combos)),
        flush=True,
    )
    return JobResult(parts=parts, inputs={"prices": files}, summary=summary)
