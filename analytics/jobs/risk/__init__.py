"""``risk``: VaR and expected shortfall of each portfolio on an as-of date."""

from __future__ import annotations

from analytics.jobs.contract import JobSpec, Table, lazy
from analytics.jobs.risk.options import Options

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
    run=lazy("analytics.jobs.risk.job", "run"),
    report=lazy("analytics.jobs.risk.report", "section"),
)
