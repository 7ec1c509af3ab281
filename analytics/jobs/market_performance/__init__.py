"""``market-performance``: per-symbol return and risk metrics, whole range and per month."""

from __future__ import annotations

from analytics.jobs.contract import JobSpec, Sizing, Table, lazy
from analytics.jobs.market_performance.options import Options

JOB = JobSpec(
    name="market-performance",
    help="per-symbol return and risk metrics, whole range and per month",
    options=Options,
    datasets=("prices",),
    tables=(Table("metrics", key=("symbol", "period")),),
    run=lazy("analytics.jobs.market_performance.job", "run"),
    report=lazy("analytics.jobs.market_performance.report", "section"),
    as_of_column=("metrics", "end"),
    resumable=True,
    # Up to here the job is faster on threads of the driver than on worker processes, which
    # each import the whole stack (~1 CPU s) and pickle every bucket's pieces between them;
    # its kernels are numpy and Arrow, which release the GIL (docs/performance.md). Above it,
    # worker processes keep the largest process's memory down.
    sizing=Sizing(in_process_bytes=256 * 2**20),
)
