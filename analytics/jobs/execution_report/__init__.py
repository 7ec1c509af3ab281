"""``execution-report``: fill times, venues, limit breaches, anomalies and daily summaries.

It shares the TCA machinery of :mod:`analytics.jobs.tca` (inputs, checks, kernel, plan); its own
per-order columns and summaries are :mod:`.tables`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analytics.jobs.contract import JobContext, JobResult, JobSpec, Table
from analytics.jobs.tca import DateOptions, prepare_dates

if TYPE_CHECKING:
    from analytics.run.committed import CommittedRun


def _run(ctx: JobContext) -> JobResult:
    from analytics.jobs.execution_report.job import run

    return run(ctx)


def _report(view: CommittedRun) -> str:
    from analytics.jobs.tca.report import execution_section

    return execution_section(view)


JOB = JobSpec(
    name="execution-report",
    help="execution report: fill times, venues, limit breaches, anomalies, daily summaries",
    options=DateOptions,
    datasets=("orders", "fills", "bars"),
    tables=(
        Table("orders"),
        Table("fill_exceptions"),
        Table("desk_daily", key=("date", "desk")),
        Table("broker_daily", key=("date", "broker")),
    ),
    run=_run,
    prepare=prepare_dates,
    report=_report,
    as_of_column=("orders", "date"),
)
