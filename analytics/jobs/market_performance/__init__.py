"""``market-performance``: per-symbol return and risk metrics, whole range and per month."""

from __future__ import annotations

from analytics.jobs.contract import JobSpec, Table, lazy
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
)
