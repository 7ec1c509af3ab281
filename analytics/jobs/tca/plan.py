"""The Dask plan of ``tca`` and ``execution-report`` around the pure kernels.

1. The driver lists the files of ``orders``, ``fills`` and ``bars`` (pruned by their ``date=``
   folders) and picks B symbol buckets from the threads and the largest day's input bytes.
2. One task per read unit of orders (several small files, a file or part of a large one:
   :mod:`analytics.data.reads`) reads it and cuts its rows by (date, bucket); only the keys of
   the pieces (a few numbers) come back to the driver, which learns the dates that have orders.
3. One task per read unit of the fills or bars files of those dates reads it once and cuts it
   the same way.
4. ``tca`` only: one task per read unit of the ``prices`` files of the 21 sessions before the
   dates reads it; one task computes each date's ADV and sigma per symbol
   (:mod:`analytics.jobs.tca.prices`).
   One task per partition (date, bucket) joins its orders, fills and bars, runs the rejecting
   checks and computes its per-order rows (:func:`analytics.jobs.tca.tasks.compute_unit`).
5. Each partition cuts its order and fill ids into B slots by hash; one task per slot rejects
   duplicates across partitions and files.
6. A barrier sums the counts. Only then does each partition write its part of ``orders/``, and
   one task per aggregate concatenates the per-order rows (about 30 MB for 100,000 orders: the
   percentiles need the values) and writes its table.

Bars never leave the workers; the driver only sees keys, counts and written-part descriptions.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from distributed import Client, Future

from analytics.data import reads
from analytics.data.datasets import DataFile, Selection, list_files, with_bad_rows
from analytics.errors import InputError
from analytics.jobs.contract import RunSettings
from analytics.jobs.tca import inputs, prices, tasks
from analytics.jobs.tca.tasks import Kind, Summary

#: Input bytes of one day per bucket: a partition's rows stay well within a worker's memory.
BYTES_PER_BUCKET: Final = 32 * 2**20
MAX_BUCKETS: Final = 512
DATASETS: Final = ("orders", "fills", "bars")


def bucket_count(files: dict[str, list[DataFile]], total_threads: int) -> int:
    """Two partitions per thread at least, more when a day's input is large."""
    per_day: dict[str | None, int] = {}
    for found in files.values():
        for f in found:
            day = dict(f.partition).get("date")
            per_day[day] = per_day.get(day, 0) + f.size
    flat = per_day.pop(None, 0)  # a flat file may hold any day
    biggest = max(per_day.values(), default=0) + flat
    return max(1, min(MAX_BUCKETS, max(2 * total_threads, math.ceil(biggest / BYTES_PER_BUCKET))))


@dataclass
class Plan:
    """The partitions of a run, computing on the cluster, and what they read."""

    days: list[int]
    n_buckets: int
    units: list[Future[Any]]
    ready: Future[Any]
    inputs: dict[str, list[DataFile]]
    #: What the reads selected (its skip topic lists the rows --on-bad-rows skip dropped).
    sel: Selection = field(default_factory=Selection)
    #: The reading phase: each read's key and the files it covers.
    reads: dict[Any, int] = field(default_factory=dict)
    #: Per partition (as ``units``), a future of its number of orders.
    orders: list[Future[Any]] = field(default_factory=list)


def plan(
    client: Client, settings: RunSettings, kind: Kind, pretrade: prices.Pretrade | None = None
) -> Plan:
    """Steps 1 to 6 of the module docstring, up to the barrier (nothing written yet);
    ``pretrade`` (tca) adds the prices input and the pre-trade model."""
    start, end = settings.start, settings.end
    sel = with_bad_rows(Selection(start, end, settings.symbols), settings.on_bad_rows)
    files = {name: list_files(settings.input_url, name, sel) for name in DATASETS}
    urls = {name: [f.url for f in found] for name, found in files.items()}
    srcs = {name: inputs.sources(found) for name, found in files.items()}
    threads = sum(client.nthreads().values()) or 1
    n = bucket_count(files, threads)

    files_of: dict[Any, int] = {}  # each read task's files (the progress counts files)
    read_orders = []
    for unit in reads.plan(files["orders"], threads):
        read_orders.append(client.submit(inputs.read_orders, unit, sel, n, pure=False))
        files_of[read_orders[-1].key] = unit.file_count
    keys = [client.submit(tasks.piece_keys, r, pure=False) for r in read_orders]
    # No progress bar for this short step: off a terminal it polls once a second.
    found_keys: list[set[tuple[int, int]]] = client.gather(keys)
    days = sorted({day for k in found_keys for day, _ in k})
    if not days:
        chosen = f" of the symbols {list(settings.symbols)}" if settings.symbols else ""
        raise InputError(
            f"no orders{chosen} dated {start or 'any date'} .. {end or 'any date'}",
            dataset="orders",
            column="date",
        )

    def served(src: inputs.Source) -> tuple[int, ...]:
        if src.day is None:
            return tuple(days)
        return (src.day,) if src.day in days else ()

    timed: dict[str, list[tuple[tuple[int, ...], Future[Any]]]] = {"fills": [], "bars": []}
    used: dict[str, list[DataFile]] = {"orders": list(files["orders"]), "fills": [], "bars": []}
    for name, planned in timed.items():
        # Bars of a date without orders are not read; fills are, to reject them.
        kept = [i for i, src in enumerate(srcs[name]) if name == "fills" or served(src)]
        used[name] = [files[name][i] for i in kept]
        for unit in reads.plan(used[name], threads):
            unit_srcs = [srcs[name][kept[p.index]] for p in unit.slices]
            span = tuple(sorted({day for src in unit_srcs for day in served(src)}))
            args_ = (unit, unit_srcs, name, sel, span, n)
            future = client.submit(inputs.read_timed, *args_, pure=False)
            planned.append((span, future))
            files_of[future.key] = unit.file_count

    stats: Future[Any] | None = None
    if pretrade is not None:
        stats, used["prices"] = prices.price_stats(client, settings, pretrade, days, sel)
    coefficient = pretrade.impact_coefficient if pretrade is not None else 1.0
    units = []
    for day in days:
        for b in range(n):
            mine = [
                client.submit(tasks.order_piece, r, (day, b))
                for r, k in zip(read_orders, found_keys, strict=True)
                if (day, b) in k
            ]
            pieces = {
                name: [
                    client.submit(operator.getitem, fut, span.index(day) * n + b)
                    for span, fut in timed[name]
                    if day in span
                ]
                for name in timed
            }
            units.append(
                client.submit(
                    tasks.compute_unit,
                    kind,
                    day,
                    urls,
                    mine,
                    pieces["fills"],
                    pieces["bars"],
                    n,
                    stats,
                    coefficient,
                    pure=False,
                )
            )
    id_checks = [
        client.submit(tasks.check_ids, urls, *[client.submit(tasks.unit_ids, u, k) for u in units])
        for k in range(n)
    ]
    counts = [client.submit(tasks.unit_part, u, "counts") for u in units]
    symbols = [client.submit(tasks.unit_part, u, "symbols") for u in units]
    no_adv = [client.submit(tasks.unit_part, u, "without_adv") for u in units]
    # Files of dates without orders are read only to reject their fills: the barrier waits.
    idle = [fut for span, fut in timed["fills"] if not span]
    ready = client.submit(tasks.barrier, counts, symbols, no_adv, *id_checks, *idle, pure=False)
    read = dict(files_of)
    if stats is not None:  # the prices' statistics follow the reads of their files
        read[stats.key] = len(used["prices"])
    orders = [client.submit(operator.attrgetter("orders"), c) for c in counts]
    return Plan(days, n, units, ready, used, sel, read, orders)


def parts_of(client: Client, units: Sequence[Future[Any]], name: str) -> list[Future[Any]]:
    return [client.submit(tasks.unit_part, u, name) for u in units]


def summary_of(p: Plan, totals: Summary) -> dict[str, Any]:
    c = totals.counts
    return {
        "dates": [inputs.day_date(d) for d in p.days],
        "orders": c.orders,
        "fills": c.fills,
        "symbols": totals.symbols,
        "partitions": len(p.units),
        "buckets": p.n_buckets,
        "orders_without_arrival_bar": c.orders_without_arrival_bar,
        "crossed_quotes": c.crossed_quotes,
        "data_checks": c.data_checks(),
    }
