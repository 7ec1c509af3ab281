"""``tca``: transaction-cost analysis of parent orders, per order and aggregated.

The package holds the TCA machinery that ``execution-report`` shares: reading and cutting the
intraday datasets (:mod:`.inputs`), the data checks (:mod:`.checks`), the per-order kernel
(:mod:`.kernel`), the Dask plan (:mod:`.plan`), the aggregates (:mod:`.aggregate`) and the
table schemas (:mod:`.tables`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analytics.errors import InputError
from analytics.jobs.contract import CatchUp, JobSpec, RunSettings, Table, lazy
from analytics.options import finite_float, option, positive_int, relative_date

DEFAULT_CALENDAR = "XNYS"


@dataclass(frozen=True)
class DateOptions:
    """The trading date of a TCA-style job (``--date``), or the common ``--start/--end``."""

    date: str | None = option(
        None,
        parse=relative_date,
        metavar="YYYY-MM-DD|previous-session",
        help="the trading date to analyse (short for --start D --end D; not with them); "
        "previous-session: the last session before today on --calendar",
    )
    calendar: str = option(
        DEFAULT_CALENDAR,
        metavar="NAME",
        help=f"exchange calendar for relative dates (default {DEFAULT_CALENDAR})",
    )
    catch_up: int | None = option(
        None,
        parse=positive_int,
        metavar="N",
        help="run every one of the N sessions ending with --date's that has no committed run "
        "under --output (then an output root), oldest first, each into OUTPUT/YYYY-MM-DD",
    )


@dataclass(frozen=True)
class TcaOptions(DateOptions):
    """tca's options: the date, and Y of the pre-trade model (``docs/jobs/tca.md``)."""

    impact_coefficient: float = option(
        1.0,
        parse=finite_float,
        metavar="Y",
        help="Y of the pre-trade model: expected_cost_bps = half_spread_bps + "
        "Y * sigma * sqrt(quantity / ADV) * 1e4 (default 1.0)",
    )


Options = TcaOptions


def _sessions(settings: RunSettings, options: DateOptions, count: int) -> list[str]:
    if options.date is None or settings.start or settings.end:
        raise InputError(
            f"--catch-up {count} needs --date (a date or previous-session), without "
            "--start/--end: the sessions caught up end with --date's"
        )
    from analytics.sessions import last_sessions, today_from

    today = today_from(settings.today, options.calendar)
    return [d.isoformat() for d in last_sessions(options.date, count, options.calendar, today)]


def _session(
    settings: RunSettings, options: DateOptions, label: str
) -> tuple[RunSettings, DateOptions]:
    return settings, dataclasses.replace(options, date=label, catch_up=None)


def _session_of(parameters: Mapping[str, Any]) -> str | None:
    start, end = parameters.get("start"), parameters.get("end")
    return str(start) if start and start == end else None


#: ``--catch-up N`` of a TCA-style job: one run per session, ``OUTPUT/YYYY-MM-DD``.
SESSIONS = CatchUp(periods=_sessions, select=_session, period_of=_session_of)


def prepare_dates(settings: RunSettings, options: DateOptions) -> tuple[RunSettings, DateOptions]:
    """``--date`` resolved (``previous-session`` with the exchange calendar) into the range:
    ``--date D`` is short for ``--start D --end D``."""
    if options.date is None:
        return settings, options
    if settings.start or settings.end:
        raise InputError(
            f"--date {options.date} cannot be combined with --start/--end: --date D is short "
            "for --start D --end D; give one or the other"
        )
    from analytics.sessions import resolve_date, today_from

    day = resolve_date(options.date, options.calendar, today_from(settings.today, options.calendar))
    return dataclasses.replace(settings, start=day, end=day), options


JOB = JobSpec(
    name="tca",
    help="transaction-cost analysis: per-order costs, markouts, buckets and weighted aggregates",
    options=Options,
    datasets=("orders", "fills", "bars"),
    tables=(
        Table("orders", key=("order_id",)),
        Table("by_broker", key=("broker",)),
        Table("by_venue", key=("venue",)),
        Table("by_desk", key=("desk",)),
        Table("by_strategy", key=("strategy",)),
        Table("by_day", key=("date",)),
        Table("markouts", key=("fill_id",)),
        Table("by_time_of_day", key=("bucket",)),
        Table("by_size", key=("bucket",)),
        Table("by_volatility", key=("bucket",)),
    ),
    run=lazy("analytics.jobs.tca.job", "run"),
    prepare=prepare_dates,
    report=lazy("analytics.jobs.tca.report", "tca_section"),
    as_of_column=("orders", "date"),
    catch_up=SESSIONS,
)
