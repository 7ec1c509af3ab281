"""``risk``: VaR and expected shortfall of each portfolio on an as-of date."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analytics.jobs.contract import JobContext, JobResult, JobSpec, Table
from analytics.jobs.risk.options import Options

if TYPE_CHECKING:
    from analytics.run.committed import CommittedRun


def _run(ctx: JobContext) -> JobResult:
    from analytics.jobs.risk.job import run

    return run(ctx)


def _report(view: CommittedRun) -> str:
    from analytics.jobs.risk.report import section

    return section(view)


JOB = JobSpec(
    name="risk",
    help="historical and parametric VaR / expected shortfall of each portfolio",
    options=Options,
    datasets=("prices", "positions"),
    tables=(
        Table("var", key=("portfolio", "method", "confidence", "horizon_days")),
        Table("contributions", key=("portfolio", "symbol", "confidence", "horizon_days")),
        Table("scenarios"),
    ),
    run=_run,
    report=_report,
)
