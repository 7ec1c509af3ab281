"""``market-performance``: per-symbol return and risk metrics, whole range and per month."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analytics.jobs.contract import JobContext, JobResult, JobSpec, Table
from analytics.jobs.market_performance.options import Options

if TYPE_CHECKING:
    from analytics.run.committed import CommittedRun


def _run(ctx: JobContext) -> JobResult:
    from analytics.jobs.market_performance.job import run

    return run(ctx)


def _report(view: CommittedRun) -> str:
    from analytics.jobs.market_performance.report import section

    return section(view)


JOB = JobSpec(
    name="market-performance",
    help="per-symbol return and risk metrics, whole range and per month",
    options=Options,
    datasets=("prices",),
    tables=(Table("metrics", key=("symbol", "period")),),
    run=_run,
    report=_report,
    as_of_column=("metrics", "end"),
    resumable=True,
)
