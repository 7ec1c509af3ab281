"""bench/scale_model.py: its graphs are the jobs' graphs (the same tasks and dependencies as
the scheduler sees in a real run), its measures, and the scheduler cap (analytics/jobs/tasks.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from distributed import LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin

from analytics.data.datasets import Selection, list_files
from analytics.jobs import tasks
from bench import scale_model
from tests.conftest import run_cli


class Seen(SchedulerPlugin):
    """The tasks the scheduler sent to a worker (each once, however often it ran) and the
    number of their dependencies."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.deps: dict[Any, int] = {}

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "processing":
            self.deps[key] = len(self.scheduler.tasks[key].dependencies)


@pytest.fixture(scope="module")
def counted() -> Iterator[tuple[str, Seen]]:
    """Two worker processes of one thread (the model's 2 nodes x 1 thread), and the plugin."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    ) as cluster:
        seen = Seen(cluster.scheduler)
        cluster.scheduler.add_plugin(seen)
        yield cluster.scheduler_address, seen


def _data(market: Path) -> scale_model.Data:
    """The model's input from the fixture's own files: the listing, the symbols, the sessions,
    the row groups' bytes (read here with pyarrow, apart from the jobs)."""
    files = list_files(str(market), "prices", Selection())
    groups = {}
    for f in files:
        meta = pq.ParquetFile(f.url).metadata
        groups[f.url] = [
            sum(meta.row_group(g).column(c).total_compressed_size for c in range(meta.num_columns))
            for g in range(meta.num_row_groups)
        ]
    table = ds.dataset(str(market / "prices"), format="parquet", partitioning="hive").to_table(
        columns=["symbol", "date"]
    )
    names = sorted(str(s) for s in pc.unique(table.column("symbol")).to_pylist())
    days = len(pc.unique(table.column("date")))
    return scale_model.Data(files, names, days, bytes_per_row=29.0, row_groups=groups)


def _run(address: str, seen: Seen, args: list[str]) -> tuple[int, int]:
    """The tasks and edges the scheduler saw for one run of the command line."""
    seen.deps.clear()
    result = run_cli([*args, "--scheduler", address, "--run-id", "scale"])
    assert result.code == 0, result.stderr
    return len(seen.deps), sum(seen.deps.values())


def _size(g: scale_model.Graph) -> tuple[int, int]:
    return len(g), sum(map(len, g.deps))


def test_market_performance_graph_is_the_jobs(
    counted: tuple[str, Seen], market: Path, tmp_path: Path
) -> None:
    address, seen = counted
    ran = _run(
        address, seen, ["market-performance", "--input", str(market), "--output", str(tmp_path)]
    )
    assert ran == _size(scale_model.market_performance(_data(market), threads=2))


def test_backtest_graph_is_the_jobs(
    counted: tuple[str, Seen], market: Path, tmp_path: Path
) -> None:
    address, seen = counted
    grid = ["--grid", "fast=2:8:1", "--grid", "slow=10,20"]  # 7 x 2 = 14 combinations
    args = [
        "backtest",
        "--input",
        str(market),
        "--output",
        str(tmp_path),
        "--strategy",
        "sma-cross",
    ]
    ran = _run(address, seen, [*args, *grid])
    assert ran == _size(scale_model.backtest(_data(market), 14, threads=2))


def test_portfolio_backtest_graph_is_the_jobs(
    counted: tuple[str, Seen], market: Path, tmp_path: Path
) -> None:
    address, seen = counted
    grid = ["--grid", "lookback=20,40,60", "--grid", "skip=0,5", "--grid", "rebalance=5,10"]
    args = ["portfolio-backtest", "--input", str(market), "--output", str(tmp_path)]
    ran = _run(address, seen, [*args, "--strategy", "xs-momentum", *grid])
    assert ran == _size(scale_model.portfolio_backtest(_data(market), 12, threads=2))


def test_task_cap_by_hand() -> None:
    # 1,000 s on 64,000 threads: sqrt(0.25 x 1,000 / 0.002) = 353.6 -> 353 (fewer than threads).
    assert tasks.task_cap(1000.0, 64_000) == 353
    # 1e6 s on 100 threads: sqrt(1.25e8) = 11,180 > 100, so 0.25 x 1e6 / (100 x 0.002) = 1.25e6.
    assert tasks.task_cap(1e6, 100) == 1_250_000
    # 1 s on 2 threads: sqrt(125) = 11, raised to the floor of 128.
    assert tasks.task_cap(1.0, 2) == tasks.MIN_TASKS == 128


def test_buckets_within_by_hand() -> None:
    mib = 2**20
    # 128 tasks for 20 files: 128 // 23 = 5 buckets, but 697 MiB needs ceil(697 / 128) = 6.
    assert tasks.buckets_within(43, 20, 697 * mib, 128) == 6
    # Room for 1,000 tasks: 1,000 // 23 = 43, so the 43 wanted stay.
    assert tasks.buckets_within(43, 20, 697 * mib, 1000) == 43


def test_portfolio_chunks_at_1000_nodes_by_hand() -> None:
    from analytics.jobs.portfolio_backtest import job as pjob

    # 10,000 x 5,040 x 5,000 cells x 4.2e-8 s = 10,584 s; the cap sqrt(0.25 x 10,584 / 0.002)
    # = 1,150 tasks, 5 a chunk: 230 chunks, ceil(10,000 / 230) = 44 a chunk (the threads' rule
    # wanted 1; the memory bound is 8 Mi / 5,040 = 1,664).
    wanted = pjob.combinations_per_chunk(10_000, 5040, 64_000)
    assert wanted == 1
    assert pjob.scheduler_bound(wanted, 10_000, 5040, 5000, 64_000) == 44
    # ceil(10,000 / 44) = 228 chunks of 5 tasks; 100 reads (test_read_units_at_1000_nodes_by_hand);
    # the panel and its 8 small tasks (is-empty, shape, dates, ends, market, first fill, label,
    # validated dates); the verdict, validation, top and validated-from.
    g = scale_model.portfolio_backtest(scale_model.synthetic(5000, 20, 29.0), 10_000, 64_000)
    assert len(g) == 100 + 1 + 8 + 4 + 5 * 228


def test_read_units_at_1000_nodes_by_hand() -> None:
    from analytics.jobs.backtest import job as bjob
    from analytics.jobs.market_performance import job as mjob
    from analytics.jobs.portfolio_backtest import job as pjob

    # A year of 5,000 symbols: 1,260,000 rows, 9 row groups of 131,072 rows (x 29 = 3,801,088
    # bytes) and one of 80,352 (2,330,208 bytes): 36,540,000 bytes; 20 years 730,800,000.
    data = scale_model.synthetic(5000, 20, 29.0)
    assert data.row_groups[data.files[0].url] == [3_801_088] * 9 + [2_330_208]
    assert sum(f.size for f in data.files) == 730_800_000
    # Uncapped on 64,000 threads the target is the 4 MiB open cost (814.7 MB / 128,000 is
    # less): every row group alone (two are 7.6 MB), 10 units a file, 200.
    assert len(data.units(64_000, None)) == 200
    # The cap: 730.8 MB x 3e-8 = 21.9 s, sqrt(0.25 x 21.9 / 0.002) = 52, raised to 128 tasks.
    # Portfolio-backtest (a task a unit): 128 units at most. The target grows to
    # ceil(4,194,304 x 200 / 128) = 6,553,600 (still a group a unit), then to
    # ceil(6,553,600 x 200 / 128) = 10,240,000: two groups a unit, 5 a file, 100.
    assert pjob.max_units(data.files, 64_000) == 128
    assert len(data.units(64_000, 128)) == 100
    # The bucketed jobs: ceil(730.8 MB / 128 MiB) = 6 buckets at least, 7 tasks a unit,
    # 128 // 7 = 18 units; at the 64 MiB memory bound a file (36.5 MB + 4 MiB open cost) is
    # one unit, two are too many: 20 units, more than asked.
    assert mjob.max_units(data.files, 64_000) == bjob.max_units(data.files, 64_000) == 18
    assert len(data.units(64_000, 18)) == 20


def test_measure_by_hand() -> None:
    g = scale_model.Graph()
    a = g.add("read", out=100, cost=1.0, read=1000)  # node 0
    b = g.add("read", out=200, cost=2.0)  # node 1
    c = g.add("bucket", [a, b], out=10, cost=3.0)  # the layer's first: node 0
    g.add("light", [c], near=c)  # node 0, beside c
    p = g.add("panel", [c], out=50)  # node 0, replicated
    g.replicated.add(p)
    g.add("use", [p])  # node 0: nothing fetched (replicated)
    f = scale_model.measure(g, nodes=2, threads_per_node=1)
    assert (f.tasks, f.edges) == (6, 5)
    # b's 200 bytes fetched by node 0 for c; the panel's 50 copied to the 1 other node.
    assert f.moved == 200 + 50
    # a reads 1,000 bytes from storage; c's inputs are 100 + 200.
    assert f.largest_input == 1000
    # work 6 s on 2 threads = 3 s; the critical path is b then c: 2 + 3 = 5 s.
    assert f.work_s == 6.0 and f.compute_wall_s == 5.0


def test_scheduler_under_half_busy_at_1000_nodes() -> None:
    # The model's graphs for 5,000 symbols x 20 years x 10,000 combinations on 1,000 nodes of
    # 64 threads keep the scheduler under half busy at twice the rule's overhead per task.
    data = scale_model.synthetic(5000, 20, 29.0)
    for name, build in scale_model.JOBS.items():
        f = scale_model.measure(build(data, 10_000, 64_000, True), 1000, 64)
        busy = f.tasks * 2 * tasks.TASK_OVERHEAD_S
        assert busy / max(f.compute_wall_s, busy) < 0.5, (name, f)
        # Before the cap the same graphs kept it more than half busy.
        g = build(data, 10_000, 64_000, False)
        f = scale_model.measure(g, 1000, 64)
        assert len(g) * tasks.TASK_OVERHEAD_S > 0.5 * f.compute_wall_s, name
