"""``risk``: VaR and expected shortfall of each portfolio on an as-of date."""

from __future__ import annotations

from analytics.jobs.contract import JobSpec, Table, lazy
from analytics.jobs.risk.options import Options

JOB = JobSpec(
    name="risk",
    help="VaR / expected shortfall of each portfolio by five models, and its VaR backtest",
    options=Options,
    datasets=("prices", "positions"),
    tables=(
        Table("var", key=("portfolio", "method", "confidence", "horizon_days")),
        Table("contributions", key=("portfolio", "symbol", "confidence", "horizon_days")),
        Table("scenarios"),
        Table("coverage", key=("portfolio", "symbol")),
        Table("var_backtest", key=("portfolio", "method", "confidence")),
        Table("var_exceptions", key=("portfolio", "method", "confidence", "date")),
    ),
    run=lazy("analytics.jobs.risk.job", "run"),
    report=lazy("analytics.jobs.risk.report", "section"),
)
