"""``execution-report``: fill times, venues, limit breaches, anomalies and daily summaries.

It shares the TCA machinery of :mod:`analytics.jobs.tca` (inputs, checks, kernel, plan); its own
per-order columns and summaries are :mod:`.tables`.
"""

from __future__ import annotations

from analytics.jobs.contract import JobSpec, Table, lazy
from analytics.jobs.tca import SESSIONS, DateOptions, prepare_dates

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
    run=lazy("analytics.jobs.execution_report.job", "run"),
    prepare=prepare_dates,
    report=lazy("analytics.jobs.tca.report", "execution_section"),
    catch_up=SESSIONS,
    as_of_column=("orders", "date"),
)
