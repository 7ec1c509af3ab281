"""``portfolio-backtest``: a sweep of one cross-sectional strategy over the whole universe.

The package: the job (:mod:`.job`: read the panel once, place it on every worker, simulate
chunks of combinations, write the tables), the kernel (:mod:`.kernel`: :mod:`.panel`,
:mod:`.scores`, :mod:`.selection`, :mod:`.simulate`), the grid families (:mod:`.families`), the
tables (:mod:`.tables`) and the report section (:mod:`.report`).
"""

from __future__ import annotations

from typing import Any

from analytics.jobs.contract import JobSpec, RunSettings, Sizing, Table, lazy
from analytics.jobs.portfolio_backtest.options import Options


def _prepare(settings: RunSettings, options: Options) -> tuple[RunSettings, Options]:
    """Before any cluster or output: the grid fits the strategy, --anchored has walk-forward."""
    from analytics.jobs import sweep_options
    from analytics.jobs.portfolio_backtest.families import combinations

    combinations(options.strategy, list(options.grid), say_refused=True)
    sweep_options.check_anchored(options)
    return settings, options


def _units(options: Any) -> int:
    from analytics.jobs.backtest.grid import combination_count
    from analytics.jobs.portfolio_backtest.families import combinations

    return combination_count(combinations(options.strategy, list(options.grid)))


def _parameters_json(batch: Any) -> Any:
    from analytics.jobs.portfolio_backtest.tables import parameters_json

    return parameters_json(batch)


JOB = JobSpec(
    name="portfolio-backtest",
    help="parameter sweep of a cross-sectional portfolio strategy over the whole universe",
    options=Options,
    datasets=("prices",),
    tables=(
        Table("results", key=("strategy", "parameters"), derived={"parameters": _parameters_json}),
        Table("top", key=("rank",), derived={"parameters": _parameters_json}),
        Table("equity"),
        Table("holdings", key=("rank", "symbol")),
        Table("returns"),
        Table("validation", key=("n_trials",)),
        Table("walk_forward", key=("fold",), derived={"parameters": _parameters_json}),
        Table("oos_equity", key=("date",)),
    ),
    run=lazy("analytics.jobs.portfolio_backtest.job", "run"),
    prepare=_prepare,
    report=lazy("analytics.jobs.portfolio_backtest.report", "section"),
    as_of_column=("equity", "date"),
    sizing=Sizing(units=_units),
)
