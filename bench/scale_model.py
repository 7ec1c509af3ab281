"""1,000 nodes on paper: the task graphs of three jobs, built and measured without running them.

For 5,000 symbols x 20 years of daily prices (laid out as ``finbatch generate-data`` lays out
``prices/``: one file per year) and, for the sweeps, 10,000 combinations, on 10, 100 and 1,000
nodes of 64 threads, this builds the graphs that ``market-performance``, ``backtest`` and
``portfolio-backtest`` would submit -- their tasks and dependencies written out here task by
task after each job's ``run``, with the counts set by the jobs' own functions
(``bucket_count``, ``combinations_per_chunk``, ``scheduler_bound``, ``max_units``; the read
units planned by the jobs' planner, :func:`analytics.data.reads.plan_reads`, on the files' row
groups as the generator writes them; ``tests/test_scale_model.py``
checks the tasks and dependencies against what the scheduler sees in real runs) -- and
prints, per job and size: tasks, edges, bytes moved between nodes, the largest task input, and
the scheduler's time at the per-task overhead measured in the same run (no-op tasks through a
real distributed scheduler).

The model (each figure's assumptions, also in ``docs/performance.md``):

- sizes: a row of ``prices`` is ``--bytes-per-row`` bytes of Parquet (29: the generated 5,000 x
  20 years, 686 MiB for 24.8 M rows), in row groups of the generator's ``ROW_GROUP_SIZE`` rows
  (131,072: 3.6 MiB); in memory a row of a bucket is 12 bytes (symbol code,
  day, file index) + 8 per float column; a symbol name 60 bytes; a written part's descriptor
  1 KB. A backtest (bucket, chunk) task's portfolio part is days x combinations x 8 bytes; a
  portfolio-backtest chunk's runs days x combinations x 16 bytes (returns and equity); a chunk's
  best ``--top`` 10 hand back their equity curves; the panel is 7 times its close matrix
  (dates x symbols x 8 bytes: inputs and derived grids, docs/jobs/portfolio-backtest.md).
- placement: one worker of 64 threads per node. Heavy tasks of a layer (reads, buckets, sweep
  and simulation chunks, reductions) are spread over the nodes in submission order, as the
  scheduler's balancing and work stealing end up doing; a light task (an output's selection, a
  bucket's benchmark part or metrics) runs where its one input is. An output is fetched once by
  each other node that runs a task needing it; the portfolio-backtest panel is replicated to
  every node once (the job calls ``replicate``). Reads from storage are not moved bytes.
- work: the constants the jobs' rules use, from ``docs/performance.md``
  (:data:`analytics.jobs.tasks.SECONDS_PER_INPUT_BYTE`, split in three over reading, bucketing
  and the per-bucket work; each sweep's ``SECONDS_PER_CELL``), on the heavy tasks; the compute
  wall time is the larger of work / threads and the graph's critical path (the longest chain
  of task times).
- scheduler: tasks x the measured wall ms per task (serial, one scheduler); busy share = scheduler
  time / the wall time, where the wall time is the larger of the compute wall time and the
  scheduler's time (a share of 1.00 means the scheduler sets the pace).

``--before`` also prints the graphs the rules gave before the scheduler cap
(:mod:`analytics.jobs.tasks`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.data.buckets import symbol_bucket
from analytics.data.datasets import DataFile
from analytics.data.reads import ReadUnit, plan_reads, target_bytes
from analytics.generate.writer import ROW_GROUP_SIZE
from analytics.jobs.backtest import data as bdata
from analytics.jobs.backtest import job as bjob
from analytics.jobs.backtest.portfolio import combination_slices
from analytics.jobs.market_performance import job as mjob
from analytics.jobs.portfolio_backtest import job as pjob
from analytics.jobs.tasks import SECONDS_PER_INPUT_BYTE, buckets_within, task_cap

THREADS_PER_NODE = 64
NODES = (10, 100, 1000)
#: In-memory bytes: a bucket row's symbol code, day and file index; a float column; a name.
ROW_KEYS = 12
FLOAT = 8
NAME_BYTES = 60
#: A written part's descriptor, a small result (a benchmark's label, a count).
SMALL = 1024
#: The portfolio-backtest panel's bytes per close (inputs and derived grids).
PANEL_FACTOR = 7
#: A chunk's best combinations handed to the top task (rows and equity curves): ``--top``.
TOP_ROWS = 10
#: CSCV's splits with the default 16 blocks, C(16, 8): the verdict keeps one logit each.
CSCV_SPLITS = 12_870


@dataclass
class Graph:
    """A task graph: per task its dependencies, output bytes, seconds of work, bytes read from
    storage, layer and placement (``near``: run where that task ran; -1: spread)."""

    deps: list[list[int]] = field(default_factory=list)
    out: list[int] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    read: list[int] = field(default_factory=list)
    layer: list[str] = field(default_factory=list)
    near: list[int] = field(default_factory=list)
    replicated: set[int] = field(default_factory=set)

    def add(
        self,
        layer: str,
        deps: Sequence[int] = (),
        out: float = SMALL,
        cost: float = 0.0,
        read: int = 0,
        near: int = -1,
    ) -> int:
        self.deps.append(list(deps))
        self.out.append(int(out))
        self.cost.append(cost)
        self.read.append(read)
        self.layer.append(layer)
        self.near.append(near)
        return len(self.deps) - 1

    def __len__(self) -> int:
        return len(self.deps)


@dataclass(frozen=True)
class Data:
    """The input as a job sees it: the listing, the symbols' names, the sessions, and each
    file's row groups' compressed bytes (as its footer gives them)."""

    files: list[DataFile]
    names: list[str]
    days: int
    bytes_per_row: float
    row_groups: dict[str, list[int]] = field(default_factory=dict)

    def rows(self, f: DataFile) -> float:
        return f.size / self.bytes_per_row

    def units(self, threads: int, max_units: int | None) -> list[ReadUnit]:
        """The read units a job plans on ``threads`` threads (:func:`analytics.data.reads.plan`
        without reading footers: the row groups are known)."""
        return plan_reads(self.files, target_bytes(self.files, threads), self.row_groups, max_units)

    def unit_bytes(self, unit: ReadUnit) -> int:
        """The bytes a unit reads: its whole files, its runs of row groups."""
        sizes = {f.url: f.size for f in self.files}
        return sum(
            sizes[p.url]
            if p.row_groups is None
            else sum(self.row_groups[p.url][g] for g in p.row_groups)
            for p in unit.slices
        )


def synthetic(symbols: int, years: int, bytes_per_row: float, sessions: int = 252) -> Data:
    """``prices/year=Y/part-0.parquet`` for ``years`` years of ``symbols`` symbols, each in row
    groups of ``ROW_GROUP_SIZE`` rows (the last one shorter), as the generator writes them."""
    rows = symbols * sessions
    full, rest = divmod(rows, ROW_GROUP_SIZE)
    groups = [int(ROW_GROUP_SIZE * bytes_per_row)] * full + (
        [int(rest * bytes_per_row)] if rest else []
    )
    files = [
        DataFile(
            f"s3://lake/prices/year={2005 + y}/part-0.parquet",
            sum(groups),
            (("year", str(2005 + y)),),
        )
        for y in range(years)
    ]
    names = [f"S{i:05d}" for i in range(symbols)]
    return Data(files, names, sessions * years, bytes_per_row, {f.url: list(groups) for f in files})


def _read_layer(
    g: Graph, data: Data, units: list[ReadUnit], n_buckets: int, columns: int
) -> list[list[int]]:
    """One read-and-split task per read unit and, per bucket, its selection of the pieces."""
    pieces = []
    for unit in units:
        size = data.unit_bytes(unit)
        rows = size / data.bytes_per_row
        split = g.add(
            "read",
            out=rows * (ROW_KEYS + FLOAT * columns) + len(data.names) * NAME_BYTES,
            cost=size * SECONDS_PER_INPUT_BYTE / 3,
            read=size,
        )
        piece = (rows / n_buckets) * (ROW_KEYS + FLOAT * columns)
        pieces.append([g.add("piece", [split], piece, near=split) for _ in range(n_buckets)])
    return pieces


def market_performance(data: Data, threads: int, capped: bool = True) -> Graph:
    """The graph of :func:`analytics.jobs.market_performance.job.run` (a fresh run)."""
    units = data.units(threads, mjob.max_units(data.files, threads) if capped else None)
    n = mjob.bucket_count(data.files, threads)
    if capped:
        n = mjob.scheduler_bound(n, data.files, len(units), threads)
    g = Graph()
    total = sum(f.size for f in data.files)
    rows = total / data.bytes_per_row
    pieces = _read_layer(g, data, units, n, len(mjob.COLUMNS))
    work = total * SECONDS_PER_INPUT_BYTE / 3 / n
    series = [
        g.add("bucket", [p[b] for p in pieces], rows / n * (ROW_KEYS + FLOAT), work)
        for b in range(n)
    ]
    parts = [g.add("bench-part", [s], data.days * 2 * FLOAT, near=s) for s in series]
    bench = g.add("bench", parts, data.days * 2 * FLOAT)
    for s in series:
        g.add("metrics", [s, bench], SMALL, work, near=s)
    for s in series:  # each bucket's symbols found, for the progress of computing
        g.add("symbol-count", [s], SMALL, near=s)
    return g


def _tree(g: Graph, parts: list[int], size: int) -> int:
    while len(parts) > 1:
        parts = [
            g.add("reduce", parts[i : i + bjob.FAN_IN], size)
            for i in range(0, len(parts), bjob.FAN_IN)
        ]
    return parts[0]


def backtest(data: Data, combos: int, threads: int, capped: bool = True) -> Graph:
    """The graphs of :func:`analytics.jobs.backtest.job.run` (read, market, sweep; default
    options: no ``--keep-returns``, no walk-forward)."""
    n = bjob.bucket_count(data.files)
    total = sum(f.size for f in data.files)
    units = data.units(threads, bjob.max_units(data.files, threads) if capped else None)
    if capped:
        cap = task_cap(total * SECONDS_PER_INPUT_BYTE, threads)
        n = buckets_within(n, len(units), total, cap)
    used = sorted({int(b) for b in symbol_bucket(data.names, n)})
    symbols = len(data.names)
    per_chunk = bjob.combinations_per_chunk(
        combos, data.days, symbols / len(used), len(used), threads
    )
    if capped:
        per_chunk = bjob.scheduler_bound(per_chunk, combos, data.days, symbols, len(used), threads)
    chunks = combination_slices(combos, per_chunk)
    g = Graph()
    rows = total / data.bytes_per_row
    columns = len(bdata.COLUMNS)
    pieces = _read_layer(g, data, units, n, columns)
    bucket_bytes = rows / len(used) * (ROW_KEYS + FLOAT * columns)
    merge_s = total * SECONDS_PER_INPUT_BYTE / 3 / n
    merged = [g.add("bucket", [p[b] for p in pieces], bucket_bytes, merge_s) for b in range(n)]
    trading = [g.add("trading-days", [m], data.days * 4, near=m) for m in merged]
    days = g.add("calendar", trading, data.days * 4)
    for m in merged:
        g.add("symbol-count", [m], SMALL, near=m)
    market_parts = [g.add("market-part", [merged[b], days], data.days * 16) for b in used]
    market = g.add("market", market_parts, data.days * 16)
    held = []
    for chunk in chunks:
        k = chunk.stop - chunk.start
        part_bytes = data.days * k * FLOAT
        parts = []
        for b in used:
            cost = symbols / len(used) * data.days * k * bjob.SECONDS_PER_CELL
            task = g.add("sweep", [merged[b], days], part_bytes + SMALL, cost)
            g.add("written", [task], SMALL, near=task)
            parts.append(g.add("portfolio-part", [task], part_bytes, near=task))
        reduced = _tree(g, parts, part_bytes)
        held.append(g.add("hold", [reduced, days], data.days * k * FLOAT, near=reduced))
    figures = [g.add("figures", [h], SMALL, near=h) for h in held]
    verdict = g.add("verdict", figures, SMALL)
    candidates = []
    for h, chunk in zip(held, chunks, strict=True):
        best = min(TOP_ROWS, chunk.stop - chunk.start) * data.days * FLOAT
        summary = g.add("summary", [h, verdict, market], SMALL + best, near=h)
        g.add("summary-part", [summary], SMALL, near=summary)
        candidates.append(g.add("candidates", [summary], best, near=summary))
    g.add("baseline", [market], SMALL)
    g.add("validation", [verdict, days], SMALL)
    top = g.add("top", [days, *candidates], SMALL)
    g.add("top-parts", [top], SMALL, near=top)
    g.add("top-frame", [top], SMALL, near=top)
    return g


def portfolio_backtest(data: Data, combos: int, threads: int, capped: bool = True) -> Graph:
    """The tasks of :func:`analytics.jobs.portfolio_backtest.job.run` (default options: no
    ``--keep-returns``, no walk-forward)."""
    symbols = len(data.names)
    per_chunk = pjob.combinations_per_chunk(combos, data.days, threads)
    if capped:
        per_chunk = pjob.scheduler_bound(per_chunk, combos, data.days, symbols, threads)
    chunks = [slice(i, min(combos, i + per_chunk)) for i in range(0, combos, per_chunk)]
    g = Graph()
    total = sum(f.size for f in data.files)
    columns = len(pjob.COLUMNS)
    units = data.units(threads, pjob.max_units(data.files, threads) if capped else None)
    reads = []
    for unit in units:
        size = data.unit_bytes(unit)
        reads.append(
            g.add(
                "read",
                out=size / data.bytes_per_row * (ROW_KEYS + FLOAT * columns),
                cost=size * SECONDS_PER_INPUT_BYTE / 3,
                read=size,
            )
        )
    panel_bytes = data.days * symbols * FLOAT * PANEL_FACTOR
    panel = g.add("panel", reads, panel_bytes, total * SECONDS_PER_INPUT_BYTE / 3)
    g.replicated.add(panel)
    g.add("is-empty", [panel], SMALL, near=panel)
    g.add("shape", [panel], SMALL, near=panel)
    dates = g.add("dates", [panel], data.days * FLOAT, near=panel)
    g.add("ends", [dates], SMALL, near=dates)
    # Before any output: the benchmark's and universe's returns, the first fill, the label.
    market = g.add("market", [panel], data.days * 16, near=panel)
    g.add("first-fill", [panel], SMALL, near=panel)
    g.add("label", [market], SMALL, near=market)
    validated = g.add("validated-dates", [dates], data.days * FLOAT, near=dates)
    runs, figures = [], []
    for chunk in chunks:
        k = chunk.stop - chunk.start
        cost = k * data.days * symbols * pjob.SECONDS_PER_CELL
        runs.append(g.add("simulate", [panel], k * data.days * 16, cost))
        # Sharpe moments, 16 CSCV block sums and counts per combination.
        figures.append(g.add("figures", [runs[-1], dates], SMALL + k * 40 * FLOAT, near=runs[-1]))
    verdict = g.add("verdict", [*figures, validated], SMALL + CSCV_SPLITS * FLOAT)
    candidates = []
    for chunk, run, fig in zip(chunks, runs, figures, strict=True):
        k = chunk.stop - chunk.start
        best = min(TOP_ROWS, k) * data.days * FLOAT
        results = g.add("results", [run, fig, verdict, market], SMALL + best, near=run)
        g.add("results-part", [results], SMALL, near=results)
        candidates.append(g.add("candidates", [results], best, near=results))
    g.add("validation", [verdict, dates], SMALL)
    g.add("top", [dates, *candidates], SMALL)
    g.add("validated-from", [dates], SMALL, near=dates)
    return g


@dataclass(frozen=True)
class Figures:
    tasks: int
    edges: int
    moved: int
    largest_input: int
    work_s: float
    compute_wall_s: float


def measure(g: Graph, nodes: int, threads_per_node: int) -> Figures:
    """Place ``g`` on ``nodes`` nodes (the module docstring's rules) and count."""
    where = [0] * len(g)
    spread: dict[str, int] = {}
    for t in range(len(g)):
        if g.near[t] >= 0:
            where[t] = where[g.near[t]]
        else:
            i = spread.get(g.layer[t], 0)
            where[t] = i % nodes
            spread[g.layer[t]] = i + 1
    fetched: set[tuple[int, int]] = set()
    moved = sum(g.out[t] * (nodes - 1) for t in g.replicated)
    largest = 0
    finish = [0.0] * len(g)
    for t, deps in enumerate(g.deps):
        largest = max(largest, g.read[t] + sum(g.out[d] for d in deps))
        finish[t] = g.cost[t] + max((finish[d] for d in deps), default=0.0)
        for d in deps:
            if d in g.replicated or where[d] == where[t] or (d, where[t]) in fetched:
                continue
            fetched.add((d, where[t]))
            moved += g.out[d]
    work = sum(g.cost)
    wall = max(work / (nodes * threads_per_node), max(finish, default=0.0))
    return Figures(len(g), sum(map(len, g.deps)), moved, largest, work, wall)


def _noop(i: int) -> int:
    return i


def task_overhead(tasks: int, workers: int = 2) -> tuple[float, float]:
    """Seconds per no-op task through a real distributed scheduler (a LocalCluster of worker
    processes over loopback TCP), after a warm-up batch: wall time, and the CPU time of this
    process (the scheduler and the client; the workers are other processes)."""
    import logging

    from distributed import Client, LocalCluster, wait

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,  # a worker's heartbeat may fail as the cluster stops
        ) as cluster,
        Client(cluster) as client,
    ):
        wait(client.map(_noop, range(200), key=[f"warm-{i}" for i in range(200)]))
        start, cpu = time.perf_counter(), time.process_time()
        wait(client.map(_noop, range(tasks), pure=False))
        return (time.perf_counter() - start) / tasks, (time.process_time() - cpu) / tasks


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


JOBS: dict[str, Any] = {
    "market-performance": lambda d, c, t, capped: market_performance(d, t, capped),
    "backtest": backtest,
    "portfolio-backtest": portfolio_backtest,
}


def table(
    data: Data, combos: int, nodes: Sequence[int], per_node: int, overhead_s: float, capped: bool
) -> list[dict[str, Any]]:
    rows = []
    for name, build in JOBS.items():
        for n in nodes:
            g = build(data, combos, n * per_node, capped)
            f = measure(g, n, per_node)
            sched = f.tasks * overhead_s
            rows.append(
                {
                    "job": name,
                    "nodes": n,
                    "figures": f,
                    "scheduler_s": sched,
                    "share": sched / max(f.compute_wall_s, sched),
                }
            )
    return rows


def _print(rows: list[dict[str, Any]], title: str) -> None:
    print(f"\n{title}")
    print(
        "| job | nodes | tasks | edges | moved between nodes | largest task input "
        "| work (core-s) | compute wall | scheduler | busy share |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f: Figures = r["figures"]
        print(
            f"| {r['job']} | {r['nodes']:,} | {f.tasks:,} | {f.edges:,} | {_bytes(f.moved)} "
            f"| {_bytes(f.largest_input)} | {f.work_s:,.0f} | {f.compute_wall_s:,.2f} s "
            f"| {r['scheduler_s']:,.2f} s | {r['share']:.2f} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--combinations", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, nargs="+", default=list(NODES))
    parser.add_argument("--threads-per-node", type=int, default=THREADS_PER_NODE)
    parser.add_argument("--bytes-per-row", type=float, default=29.0)
    parser.add_argument("--noop-tasks", type=int, default=5000)
    parser.add_argument("--before", action="store_true", help="also the rules before the cap")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
        flush=True,
    )
    overhead, cpu = task_overhead(args.noop_tasks)
    print(
        f"scheduler overhead: {overhead * 1e3:.3f} ms of wall time per no-op task "
        f"({cpu * 1e3:.3f} ms of the scheduler's and client's CPU; {args.noop_tasks:,} tasks, "
        f"LocalCluster of 2 worker processes); load average now {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    data = synthetic(args.symbols, args.years, args.bytes_per_row)
    print(
        f"input: {args.symbols:,} symbols x {args.years} years ({data.days:,} sessions), "
        f"{len(data.files)} files of {len(next(iter(data.row_groups.values()), []))} row "
        f"groups, {_bytes(sum(f.size for f in data.files))}; "
        f"{args.combinations:,} combinations; nodes of {args.threads_per_node} threads"
    )
    started = time.perf_counter()
    _print(
        table(data, args.combinations, args.nodes, args.threads_per_node, overhead, True),
        "the rules (with the scheduler cap):",
    )
    if args.before:
        _print(
            table(data, args.combinations, args.nodes, args.threads_per_node, overhead, False),
            "before the scheduler cap:",
        )
    print(f"\ngraphs built and measured in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
