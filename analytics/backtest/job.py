"""The ``backtest`` job: a parameter sweep of one strategy over every selected symbol.

Plan (two Dask graphs; nothing of size symbols x combinations ever reaches the driver):

1. one task per ``prices`` file reads ``symbol, date, open, close`` and cuts its rows into B
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

import argparse
import calendar as cal
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from dask.delayed import Delayed, delayed
from distributed import Client, Future, wait

from analytics import sessions
from analytics.arguments import positive_int
from analytics.backtest import data, portfolio, shards
from analytics.backtest.engine import Execution
from analytics.backtest.grid import build_combinations, combination_count, grid_option, take
from analytics.backtest.resume import load_part, recorder, sweep_and_keep
from analytics.backtest.strategies import registry
from analytics.backtest.sweep import RESULTS, Sweep, combine_all, sweep_task
from analytics.checkpoint import Checkpoint
from analytics.datasets import (
    DataFile,
    Selection,
    list_files,
    read_file,
    skipped_rows,
    with_bad_rows,
)
from analytics.errors import InputError
from analytics.jobs import JobResult, RunSettings
from analytics.output import WrittenPart
from analytics.progress import wait_with_progress

#: Input bytes per bucket of symbols (a bucket's series and its blocks stay small).
BYTES_PER_BUCKET = 16 * 2**20
#: Days x symbols x combinations per task: about a second or two of one core.
CELLS_PER_TASK = 200_000_000
#: Largest days x combinations of a portfolio part (float64): 64 MiB.
PORTFOLIO_CELLS = 8 * 2**20
#: Tasks per thread at least (when there is work enough), so that no thread waits long on the
#: last one.
MIN_TASKS_PER_THREAD = 3
#: Parts added per step of the reduction tree.
FAN_IN = 8
DEFAULT_TOP = 10
#: A graph that finishes within this many seconds is waited for without the progress feed
#: (whose off-terminal updates come once a second, so it would add up to a second per wait).
QUIET_WAIT_S = 3.0


def _bps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of basis points") from None
    if not 0 <= value < 10_000:
        raise argparse.ArgumentTypeError(f"{text!r} must be in [0, 10000) basis points")
    return value


def _wait(futures: Sequence[Future[Any]], label: str) -> None:
    """Wait for ``futures`` (until one fails): quietly if quick, else with progress lines."""
    try:
        wait(futures, timeout=QUIET_WAIT_S)
    except TimeoutError:
        wait_with_progress(futures, label)


def _read_and_split(url: str, index: int, sel: Selection, n_buckets: int) -> list[data.Rows]:
    table = read_file(url, "prices", list(data.COLUMNS), sel, categorical=True, check_keys=False)
    return data.split_rows(table, index, n_buckets)


def _last_day(url: str, sel: Selection) -> int | None:
    table = read_file(url, "prices", ["date"], sel, check_keys=False)
    if not table.num_rows:
        return None
    return int(table.column("date").cast("int32").to_numpy().max())


def _symbol_count(rows: data.Rows) -> int:
    return rows.symbol_count


def bucket_count(files: Sequence[DataFile]) -> int:
    """Buckets of about ``BYTES_PER_BUCKET`` of input each.

    Not more to keep threads busy: a task vectorizes over its bucket's symbols, and wide
    buckets are faster; the combination chunks give the tasks their number.
    """
    return max(1, min(4096, math.ceil(sum(f.size for f in files) / BYTES_PER_BUCKET)))


def combinations_per_chunk(
    combos: int, days: int, symbols_per_bucket: float, buckets: int, threads: int
) -> int:
    """Combinations per task: about ``CELLS_PER_TASK`` cells, a bounded portfolio part, and
    enough tasks for every thread."""
    by_cells = CELLS_PER_TASK / max(1.0, days * symbols_per_bucket)
    by_memory = PORTFOLIO_CELLS / max(1, days)
    per_chunk = max(1, min(combos, int(by_cells), int(by_memory)))
    if buckets * math.ceil(combos / per_chunk) < MIN_TASKS_PER_THREAD * threads:
        per_chunk = max(1, math.ceil(combos / math.ceil(MIN_TASKS_PER_THREAD * threads / buckets)))
    return per_chunk


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


class Backtest:
    name = "backtest"
    help = "parameter sweep of a trading strategy over every symbol, with fees and slippage"
    tables: tuple[str, ...] = (RESULTS, portfolio.SUMMARY, portfolio.TOP, portfolio.EQUITY)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        strategies = registry()
        listing = "; ".join(
            f"{s.name}: {', '.join(p.name for p in s.params)}" for s in strategies.values()
        )
        parser.add_argument(
            "--strategy", required=True, choices=sorted(strategies), help="the trading rule"
        )
        parser.add_argument(
            "--grid",
            action="append",
            type=grid_option,
            metavar="PARAM=SPEC",
            help="values of a parameter: start:stop:step (stop inclusive) or v1,v2,...; "
            f"repeat per parameter; the sweep is their product ({listing})",
        )
        parser.add_argument(
            "--direction", choices=["long", "long-short"], default="long", help="default long"
        )
        parser.add_argument(
            "--fill",
            choices=["next-open", "close"],
            default="next-open",
            help="fill at the next day's open (default) or at the signal day's close",
        )
        parser.add_argument("--fees-bps", type=_bps, default=0.0, metavar="F", help="default 0")
        parser.add_argument("--slippage-bps", type=_bps, default=0.0, metavar="S", help="default 0")
        parser.add_argument(
            "--top", type=positive_int, default=DEFAULT_TOP, metavar="N", help="default 10"
        )
        parser.add_argument(
            "--as-of-month",
            type=sessions.relative_month,
            metavar="YYYY-MM",
            help="end at the last trading day of this month in the data (instead of --end); "
            "'previous': the month before today's, on the first session of a month only "
            "(other days: nothing to do, exit 0)",
        )
        sessions.add_calendar_argument(parser)
        shards.add_arguments(parser)

    def _resolve_end(self, client: Client, settings: RunSettings, month: dt.date) -> dt.date:
        if settings.end is not None:
            raise InputError("give either --end or --as-of-month, not both")
        last = month.replace(day=cal.monthrange(month.year, month.month)[1])
        sel = Selection(month, last, settings.symbols)
        try:
            files = list_files(settings.input_url, "prices", sel)
        except InputError as err:
            raise InputError(f"no prices in {month:%Y-%m} (--as-of-month): {err}") from err
        futures = client.compute([delayed(_last_day, pure=True)(f.url, sel) for f in files])
        _wait(futures, f"{self.name}: as of {month:%Y-%m}")
        found = [d for d in client.gather(futures) if d is not None]
        if not found:
            raise InputError(f"no prices in {month:%Y-%m} (--as-of-month)", dataset="prices")
        return (np.datetime64(max(found), "D")).astype(dt.date)  # type: ignore[no-any-return]

    def prepare(self, args: argparse.Namespace, settings: RunSettings) -> RunSettings:
        """Before any cluster or output: the grid is valid, and ``--as-of-month previous`` is
        resolved with the exchange calendar (or there is nothing to do today)."""
        combos = build_combinations(registry()[args.strategy], args.grid)
        settings = shards.prepare(args, settings, combination_count(combos))
        if args.as_of_month is not None:
            args.as_of_month = sessions.resolve_month(args.as_of_month, args.calendar)
        return settings

    #: Records its finished sweep tasks (:mod:`analytics.checkpoint`); skips them on resume.
    resumable = True

    def run(
        self,
        client: Client,
        settings: RunSettings,
        args: argparse.Namespace,
        checkpoint: Checkpoint | None = None,
    ) -> JobResult:
        strategy = registry()[args.strategy]
        combos = build_combinations(strategy, args.grid)
        if getattr(args, "merge_shards", None) is not None:
            return self._merge(client, settings, args, combos)
        if getattr(args, "shard", None) is not None:
            index, count = (int(v) for v in str(args.shard).split("/"))
            combos = take(combos, shards.shard_slice(combination_count(combos), index, count))
        n_combos = combination_count(combos)
        ex = Execution(
            args.fill, args.direction == "long-short", args.fees_bps / 1e4, args.slippage_bps / 1e4
        )
        end = settings.end
        if args.as_of_month is not None:
            month = sessions.resolve_month(args.as_of_month, args.calendar)
            end = self._resolve_end(client, settings, dt.datetime.strptime(month, "%Y-%m").date())
        if settings.start and end and settings.start > end:
            raise InputError(f"--start {settings.start} is after the end {end}")
        sel = with_bad_rows(Selection(settings.start, end, settings.symbols), args.on_bad_rows)
        files = list_files(settings.input_url, "prices", sel)
        urls = [f.url for f in files]
        threads = sum(client.nthreads().values()) or 1
        n_buckets = bucket_count(files)
        if checkpoint is not None:
            checkpoint.begin({"prices": files}, {"buckets": n_buckets})
            n_buckets = int(checkpoint.plan["buckets"])  # a resumed run keeps its names

        # Graph 1: read every file once, bucket the symbols, build the calendar.
        split = [
            delayed(_read_and_split, nout=n_buckets, pure=True)(url, i, sel, n_buckets)
            for i, url in enumerate(urls)
        ]
        buckets = [
            delayed(data.merge_rows, pure=True)([pieces[b] for pieces in split], urls)
            for b in range(n_buckets)
        ]
        days = delayed(data.calendar, pure=True)(
            [delayed(data.trading_days, pure=True)(b) for b in buckets]
        )
        sizes = [delayed(_symbol_count, pure=True)(b) for b in buckets]
        read = client.compute([*buckets, days, *sizes])
        _wait(read, f"{self.name}: read")
        bucket_futures, days_future = read[:n_buckets], read[n_buckets]
        counts: list[int] = client.gather(read[n_buckets + 1 :])
        calendar_days = client.gather(days_future)
        n_symbols = sum(counts)
        if n_symbols == 0:
            raise InputError(
                f"no prices for the selected symbols in {settings.start} .. {end}",
                dataset="prices",
            )

        # Graph 2: (bucket x chunk) tasks, reductions, summary, top.
        used = [b for b in range(n_buckets) if counts[b]]
        per_chunk = combinations_per_chunk(
            n_combos, len(calendar_days), n_symbols / len(used), len(used), threads
        )
        if checkpoint is not None:  # depends on the cluster's threads: a resumed run keeps it
            per_chunk = int(checkpoint.settle("per_chunk", per_chunk))
        chunks = portfolio.combination_slices(n_combos, per_chunk)
        sweep = Sweep(args.strategy, ex)
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
                if piece is not None and checkpoint is not None:
                    reused.append(Checkpoint.as_part(piece))
                    parts.append(delayed(load_part, pure=True)(piece["blob"]["url"]))
                    continue
                if checkpoint is not None:
                    task = delayed(sweep_and_keep, nout=2, pure=True)(
                        checkpoint.blob_url(key),
                        settings.output_url,
                        index,
                        bucket_futures[b],
                        days_future,
                        part_combos,
                        sweep,
                    )
                else:
                    task = delayed(sweep_task, nout=2, pure=True)(
                        settings.output_url,
                        index,
                        bucket_futures[b],
                        days_future,
                        part_combos,
                        sweep,
                    )
                writes.append(task[0])
                keys.append(key)
                parts.append(task[1])
            written, best = delayed(portfolio.summary_task, nout=2, pure=True)(
                settings.output_url,
                p,
                args.strategy,
                part_combos,
                chunk.start,
                _tree(parts),
                args.top,
            )
            summaries.append(written)
            candidates.append(best)
        final = delayed(portfolio.top_task, nout=2, pure=True)(
            settings.output_url, combos, days_future, candidates, args.top
        )
        futures = client.compute([*writes, *summaries, final[0], final[1]])
        if checkpoint is not None:
            if checkpoint.resumed:
                print(
                    f"{self.name}: resuming: {len(reused)} of {len(reused) + len(writes)} "
                    "sweep task(s) reused",
                    flush=True,
                )
            for key, future in zip(keys, futures, strict=False):
                checkpoint.track(future, recorder(checkpoint, key))
        _wait(futures, self.name)
        results: list[Any] = client.gather(futures)
        n_writes = len(writes) + len(summaries)
        computed = [r[0] if checkpoint is not None else r for r in results[: len(writes)]]
        written_parts: list[WrittenPart] = [
            *computed,
            *reused,
            *results[len(writes) : n_writes],
            *results[n_writes],
        ]
        top_frame: pd.DataFrame = results[n_writes + 1]
        print(
            f"{self.name}: top {len(top_frame)} of {n_combos:,} {args.strategy} combinations "
            f"by the Sharpe ratio of the equal-weighted portfolio of {n_symbols:,} symbols "
            f"({np.datetime64(int(calendar_days[0]), 'D')} .. "
            f"{np.datetime64(int(calendar_days[-1]), 'D')}):\n"
            + _format_top(top_frame, list(combos)),
            flush=True,
        )
        return JobResult(
            parts=written_parts,
            inputs={"prices": files},
            summary={
                "skipped_rows": skipped_rows(client, sel),
                "strategy": args.strategy,
                "combinations": n_combos,
                "symbols": n_symbols,
                "days": len(calendar_days),
                "end": str(np.datetime64(int(calendar_days[-1]), "D")),
                "buckets": len(used),
                "combination_chunks": len(chunks),
                "tasks": len(writes) + len(reused),
            },
        )

    def _merge(
        self, client: Client, settings: RunSettings, args: argparse.Namespace, combos: Any
    ) -> JobResult:
        own = {name: getattr(args, name) for name in shards.SHARED_OPTIONS if hasattr(args, name)}
        parts, files, summary, top_frame = shards.merge(
            client, settings.output_url, combos, args.merge_shards, shards.jsonable(own), args.top
        )
        print(
            f"{self.name}: merged {args.merge_shards} shards; top {len(top_frame)} of "
            f"{summary['combinations']:,} {args.strategy} combinations:\n"
            + _format_top(top_frame, list(combos)),
            flush=True,
        )
        return JobResult(parts=parts, inputs={"prices": files}, summary=summary)
