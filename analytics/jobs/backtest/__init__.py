"""``backtest``: a parameter sweep of one trading strategy over every selected symbol.

The package: the job (:mod:`.job`: read, sweep, collect), the strategies (:mod:`.strategies`,
one module each), the grid syntax (:mod:`.grid`), the vectorized engine (:mod:`.engine`,
:mod:`.long_only`, :mod:`.long_short`, :mod:`.stats`), the equal-weighted portfolio
(:mod:`.portfolio`), resume (:mod:`.resume`), Spot shards (:mod:`.shards`) and the report
section (:mod:`.report`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from analytics.errors import InputError
from analytics.jobs.backtest.options import Options
from analytics.jobs.contract import CatchUp, JobSpec, RunSettings, Sizing, Table, lazy


def _prepare(settings: RunSettings, options: Options) -> tuple[RunSettings, Options]:
    """Before any cluster or output: the grid is valid, the shard resolved, and
    ``--as-of-month previous`` resolved with the exchange calendar (or nothing to do today)."""
    from analytics import sessions
    from analytics.jobs import sweep_options
    from analytics.jobs.backtest import shards
    from analytics.jobs.backtest.grid import build_combinations, combination_count
    from analytics.jobs.backtest.strategies import registry

    combos = build_combinations(registry()[options.strategy], list(options.grid), say_refused=True)
    sweep_options.check_anchored(options)
    settings, options = shards.prepare(settings, options, combination_count(combos))
    if options.as_of_month is not None:
        if settings.end is not None:
            raise InputError("give either --end or --as-of-month, not both")
        today = sessions.today_from(settings.today, options.calendar)
        month = sessions.resolve_month(options.as_of_month, options.calendar, today)
        options = dataclasses.replace(options, as_of_month=month)
    if options.shard is not None:  # a resubmitted fan-out skips the shards it committed
        settings = shards.check_committed(settings, options)
    return settings, options


def _months(settings: RunSettings, options: Options, count: int) -> list[str]:
    if options.as_of_month is None or settings.end is not None:
        raise InputError(
            f"--catch-up {count} needs --as-of-month (YYYY-MM or previous), without --end: the "
            "months caught up end with --as-of-month's"
        )
    if options.shard is not None or options.merge_shards is not None:
        raise InputError("--catch-up runs whole months: not with --shard or --merge-shards")
    from analytics import sessions

    today = sessions.today_from(settings.today, options.calendar)
    return sessions.last_months(options.as_of_month, count, options.calendar, today)


def _month(settings: RunSettings, options: Options, label: str) -> tuple[RunSettings, Options]:
    return settings, dataclasses.replace(options, as_of_month=label, catch_up=None)


def _month_of(parameters: Mapping[str, Any]) -> str | None:
    month = parameters.get("as_of_month")
    return str(month) if month else None


def _units(options: Any) -> int:
    from analytics.jobs.backtest.grid import build_combinations, combination_count
    from analytics.jobs.backtest.strategies import registry

    return combination_count(build_combinations(registry()[options.strategy], list(options.grid)))


def _parameters_json(batch: Any) -> Any:
    from analytics.jobs.backtest.portfolio import parameters_json

    return parameters_json(batch)


JOB = JobSpec(
    name="backtest",
    help="parameter sweep of a trading strategy over every symbol, with fees and slippage",
    options=Options,
    datasets=("prices",),
    tables=(
        Table("results"),
        Table("summary", key=("strategy", "parameters"), derived={"parameters": _parameters_json}),
        Table("top", key=("rank",), derived={"parameters": _parameters_json}),
        Table("equity"),
        Table("returns"),
        Table("validation", key=("n_trials",)),
        Table("walk_forward", key=("fold",), derived={"parameters": _parameters_json}),
        Table("oos_equity", key=("date",)),
    ),
    run=lazy("analytics.jobs.backtest.job", "run"),
    prepare=_prepare,
    report=lazy("analytics.jobs.backtest.report", "section"),
    as_of_column=("equity", "date"),
    resumable=True,
    sizing=Sizing(units=_units),
    catch_up=CatchUp(periods=_months, select=_month, period_of=_month_of, unit="month"),
)
