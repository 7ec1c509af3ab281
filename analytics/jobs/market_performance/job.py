"""The ``market-performance`` job: per-symbol metrics for the whole range and each month.

Plan (one Dask graph, nothing large ever reaches the driver):

1. one task per read unit (several small files, or a file, or part of a large one:
   :mod:`analytics.data.reads`) reads ``symbol, date, close`` and cuts its rows into B buckets
   by a stable hash of the symbol;
2. one task per bucket gathers its pieces from every unit, so it holds whole series, sorts them
   and computes daily returns;
3. the buckets' benchmark parts (the benchmark symbol's returns, or equal-weight sums by day) are
   combined into one small series;
4. each bucket computes its metrics and writes its own part of ``metrics/``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from dask.delayed import delayed

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
from analytics.jobs.contract import JobContext, JobResult
from analytics.jobs.market_performance import kernel as pk
from analytics.jobs.market_performance.options import Options
from analytics.jobs.tasks import (
    SECONDS_PER_INPUT_BYTE,
    buckets_within,
    fewest_buckets,
    task_cap,
    units_within,
)
from analytics.run.folder import Destination, WrittenPart, to_arrow, write_part
from analytics.run.progress import Phase
from analytics.run.resume import Checkpoint, load_arrays

#: Input bytes per bucket: a bucket's series stay well within a worker's memory.
BYTES_PER_BUCKET = 24 * 2**20
NAME = "market-performance"
#: The price columns read besides symbol and date.
COLUMNS = ("close",)
TABLE = "metrics"
#: The benchmark series, kept for a resumed run: with it, a finished bucket needs nothing.
BENCH_BLOB = "benchmark"
log = logging.getLogger(__name__)


def bucket_count(files: Sequence[DataFile], total_threads: int) -> int:
    """Enough buckets to keep every thread busy and each bucket's memory small."""
    by_size = math.ceil(sum(f.size for f in files) / BYTES_PER_BUCKET)
    return max(1, min(4096, max(2 * total_threads, by_size)))


def max_units(files: Sequence[DataFile], total_threads: int) -> int:
    """The most read units: each brings its read and a piece of each of the fewest buckets
    (:func:`analytics.jobs.tasks.units_within`)."""
    size = sum(f.size for f in files)
    return units_within(size, total_threads, fewest_buckets(size) + 1)


def scheduler_bound(n: int, files: Sequence[DataFile], units: int, total_threads: int) -> int:
    """At most ``n`` buckets, and no more than the scheduler keeps up with for reading
    ``units`` read units (:func:`analytics.jobs.tasks.task_cap` and
    :func:`~analytics.jobs.tasks.buckets_within`)."""
    size = sum(f.size for f in files)
    return buckets_within(n, units, size, task_cap(size * SECONDS_PER_INPUT_BYTE, total_threads))


def _bucket_returns(urls: Sequence[str], *pieces: buckets.Rows) -> pk.Returns:
    return pk.daily_returns(buckets.merge(pieces, urls))


def _finish_bucket(
    target: Destination,
    index: int,
    rets: pk.Returns,
    bench: pk.Benchmark,
    symbols: Sequence[str] | None,
) -> tuple[WrittenPart, list[str]]:
    """Compute and write one bucket's part of ``metrics/``; hand back its symbols found."""
    frame = pk.period_metrics(rets, bench.days, bench.returns, symbols)
    table = to_arrow(frame, pk.metrics_schema())
    return write_part(target, TABLE, index, table), sorted(_symbols_found(rets, symbols))


def _symbols_found(rets: pk.Returns, symbols: Sequence[str] | None) -> set[str]:
    names = {str(name) for name in rets.counts.index}
    return names if symbols is None else names & set(symbols)


def _symbol_count(rets: pk.Returns, symbols: Sequence[str] | None) -> int:
    return len(_symbols_found(rets, symbols))


def _bench_arrays(bench: pk.Benchmark) -> dict[str, Any]:
    return {"label": bench.label, "days": bench.days, "returns": bench.returns}


def _load_bench(checkpoint: Checkpoint) -> pk.Benchmark | None:
    blob = checkpoint.blob(BENCH_BLOB)
    if blob is None:
        return None
    arrays = load_arrays(blob["url"])
    return pk.Benchmark(str(arrays["label"]), arrays["days"], arrays["returns"])


def _piece_key(bucket: int) -> str:
    return f"bucket-{bucket:05d}"


def run(ctx: JobContext) -> JobResult:
    """Plan steps 1 to 4 (module docstring); a resumed run computes only unfinished buckets."""
    client, settings, checkpoint = ctx.client, ctx.settings, ctx.checkpoint
    options: Options = ctx.options
    benchmark = options.benchmark or DEFAULT_BENCHMARK
    sel = with_bad_rows(
        Selection(settings.start, settings.end, settings.symbols, extra_symbols=(benchmark,)),
        settings.on_bad_rows,
    )
    files = list_files(settings.input_url, "prices", sel)
    urls = [f.url for f in files]
    threads = sum(client.nthreads().values()) or 1
    units = reads.plan(files, threads, max_units(files, threads))
    n = scheduler_bound(bucket_count(files, threads), files, len(units), threads)
    known: pk.Benchmark | None = None
    finished: dict[int, dict[str, Any]] = {}
    if checkpoint is not None:
        checkpoint.begin({"prices": files}, {"buckets": n})
        n = int(checkpoint.plan["buckets"])  # a resumed run keeps its bucket names
        known = _load_bench(checkpoint)
        if known is not None:  # a bucket is recorded only after the benchmark is
            for b in range(n):
                piece = checkpoint.piece(_piece_key(b))
                if piece is not None:
                    finished[b] = piece
    todo = [b for b in range(n) if b not in finished]

    split = [
        delayed(buckets.read_and_split, nout=n, pure=True)(unit, sel, n, COLUMNS) for unit in units
    ]
    # With the benchmark known, only the unfinished buckets are gathered at all.
    needed = todo if known is not None else list(range(n))
    series = {
        b: delayed(_bucket_returns, pure=True)(urls, *[pieces[b] for pieces in split])
        for b in needed
    }
    bench: Any = known
    if known is None:
        bench_parts = [
            delayed(pk.benchmark_part, pure=True)(series[b], benchmark, settings.symbols)
            for b in range(n)
        ]
        bench = delayed(pk.combine_benchmark, pure=True)(
            bench_parts, benchmark, options.benchmark is not None
        )
    finishes = [
        delayed(_finish_bucket, pure=True)(
            settings.destination, b, series[b], bench, settings.symbols
        )
        for b in todo
    ]
    futures = client.compute([*finishes, *([] if known is not None else [bench])])
    if checkpoint is not None:
        _track(checkpoint, futures, todo, known is None)
    if todo and checkpoint is not None and checkpoint.resumed:
        log.info("%s: %d of %d bucket(s) to compute", NAME, len(todo), n)
    # Each bucket's symbols, known once it is read (ahead of the metrics that wait for the
    # benchmark): the units of its computing task.
    symbols_of = [delayed(_symbol_count)(series[b], settings.symbols) for b in todo]
    counts = client.compute(symbols_of, priority=1)
    ctx.progress.wait(
        futures,
        Phase(
            "reading",
            "files",
            weights=reads.files_read(split, units),
        ),
        Phase(
            "computing",
            "symbols",
            weights=dict(zip([f.key for f in finishes], counts, strict=True)),
        ),
    )
    results: list[Any] = client.gather(futures)
    used: pk.Benchmark = known if known is not None else results[len(todo)]
    parts: list[WrittenPart] = [part for part, _ in results[: len(todo)]]
    symbols: set[str] = set().union(*(found for _, found in results[: len(todo)]))
    for piece in finished.values():
        parts.append(Checkpoint.as_part(piece))
        symbols.update(piece.get("symbols", ()))
    missing = sorted(set(settings.symbols or ()) - symbols)
    if missing:
        log.warning("no prices for %d selected symbol(s): %s", len(missing), missing[:20])
    if not symbols:
        raise InputError(
            f"no prices for the selected symbols in {span(settings.start, settings.end)}",
            dataset="prices",
        )
    return JobResult(
        parts=parts,
        inputs={"prices": files},
        summary={
            "skipped_rows": skipped_rows(client, sel),
            "benchmark": used.label,
            "symbols": len(symbols),
            "symbols_without_prices": missing,
            "buckets": n,
        },
    )


def _track(checkpoint: Checkpoint, futures: list[Any], todo: list[int], with_bench: bool) -> None:
    """Record the benchmark, then each bucket as it finishes (a bucket's write depends on
    the benchmark, so the benchmark's future has finished by then)."""
    bench_future = futures[len(todo)] if with_bench else None

    def save_bench(bench: pk.Benchmark) -> None:
        if checkpoint.blob(BENCH_BLOB) is None:
            checkpoint.save_blob(BENCH_BLOB, _bench_arrays(bench))

    def on_bucket(b: int) -> Any:
        def record(result: tuple[WrittenPart, list[str]]) -> None:
            if bench_future is not None:
                save_bench(bench_future.result(timeout=10))
            checkpoint.add_piece(_piece_key(b), result[0], symbols=result[1])

        return record

    if bench_future is not None:
        checkpoint.track(bench_future, save_bench)
    for b, future in zip(todo, futures, strict=False):
        checkpoint.track(future, on_bucket(b))
