"""The ``market-performance`` job: per-symbol metrics for the whole range and each month.

Plan (one Dask graph, nothing large ever reaches the driver):

1. one task per input file reads ``symbol, date, close`` and cuts its rows into B buckets by a
   stable hash of the symbol;
2. one task per bucket gathers its pieces from every file, so it holds whole series, sorts them
   and computes daily returns;
3. the buckets' benchmark parts (the benchmark symbol's returns, or equal-weight sums by day) are
   combined into one small series;
4. each bucket computes its metrics and writes its own part of ``metrics/``.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from typing import Any

from dask.delayed import delayed
from distributed import Client

from analytics import performance_kernel as pk
from analytics.constants import DEFAULT_BENCHMARK
from analytics.datasets import DataFile, Selection, list_files, read_file
from analytics.errors import InputError
from analytics.jobs import JobResult, RunSettings
from analytics.output import WrittenPart, to_arrow, write_part
from analytics.progress import wait_with_progress

#: Input bytes per bucket: a bucket's series stay well within a worker's memory.
BYTES_PER_BUCKET = 24 * 2**20
TABLE = "metrics"
log = logging.getLogger(__name__)


def bucket_count(files: Sequence[DataFile], total_threads: int) -> int:
    """Enough buckets to keep every thread busy and each bucket's memory small."""
    by_size = math.ceil(sum(f.size for f in files) / BYTES_PER_BUCKET)
    return max(1, min(4096, max(2 * total_threads, by_size)))


def _read_and_split(url: str, index: int, sel: Selection, n_buckets: int) -> list[pk.Chunk]:
    table = read_file(
        url, "prices", ["symbol", "date", "close"], sel, categorical=True, check_keys=False
    )
    return pk.split_table(table, index, n_buckets)


def _bucket_returns(urls: Sequence[str], *chunks: pk.Chunk) -> pk.Returns:
    return pk.daily_returns(pk.merge_chunks(chunks, urls))


def _metrics_part(
    output_url: str,
    index: int,
    rets: pk.Returns,
    bench: pk.Benchmark,
    symbols: Sequence[str] | None,
) -> WrittenPart:
    frame = pk.period_metrics(rets, bench.days, bench.returns, symbols)
    table = to_arrow(frame, pk.metrics_schema())
    return write_part(output_url, TABLE, index, table)


def _symbols_found(rets: pk.Returns, symbols: Sequence[str] | None) -> set[str]:
    names = {str(name) for name in rets.counts.index}
    return names if symbols is None else names & set(symbols)


class MarketPerformance:
    name = "market-performance"
    help = "per-symbol return and risk metrics, whole range and per month"
    tables: tuple[str, ...] = (TABLE,)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--benchmark",
            metavar="SYMBOL",
            help=f"benchmark for beta and alpha (default: {DEFAULT_BENCHMARK} when present, "
            "else the equal-weighted mean return of the selected symbols)",
        )

    def run(self, client: Client, settings: RunSettings, args: argparse.Namespace) -> JobResult:
        benchmark = args.benchmark or DEFAULT_BENCHMARK
        sel = Selection(settings.start, settings.end, settings.symbols, extra_symbols=(benchmark,))
        files = list_files(settings.input_url, "prices", sel)
        urls = [f.url for f in files]
        threads = sum(client.nthreads().values()) or 1
        n = bucket_count(files, threads)

        split = [
            delayed(_read_and_split, nout=n, pure=True)(url, i, sel, n)
            for i, url in enumerate(urls)
        ]
        buckets = [
            delayed(_bucket_returns, pure=True)(urls, *[pieces[b] for pieces in split])
            for b in range(n)
        ]
        bench_parts = [
            delayed(pk.benchmark_part, pure=True)(r, benchmark, settings.symbols) for r in buckets
        ]
        bench = delayed(pk.combine_benchmark, pure=True)(
            bench_parts, benchmark, args.benchmark is not None
        )
        writes = [
            delayed(_metrics_part, pure=True)(
                settings.output_url, b, buckets[b], bench, settings.symbols
            )
            for b in range(n)
        ]
        found = [delayed(_symbols_found, pure=True)(r, settings.symbols) for r in buckets]
        futures = client.compute([*writes, bench, *found])
        wait_with_progress(futures, self.name)
        results: list[Any] = client.gather(futures)
        parts: list[WrittenPart] = results[:n]
        used: pk.Benchmark = results[n]
        symbols: set[str] = set().union(*results[n + 1 :])
        missing = sorted(set(settings.symbols or ()) - symbols)
        if missing:
            log.warning("no prices for %d selected symbol(s): %s", len(missing), missing[:20])
        if not symbols:
            raise InputError(
                f"no prices for the selected symbols in {settings.start} .. {settings.end}",
                dataset="prices",
            )
        return JobResult(
            parts=parts,
            inputs={"prices": files},
            summary={
                "benchmark": used.label,
                "symbols": len(symbols),
                "symbols_without_prices": missing,
                "buckets": n,
            },
        )
