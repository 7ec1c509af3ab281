"""``tca``: transaction-cost analysis of parent orders, per order and aggregated.

The package holds the TCA machinery that ``execution-report`` shares: reading and cutting the
intraday datasets (:mod:`.inputs`), the data checks (:mod:`.checks`), the per-order kernel
(:mod:`.kernel`), the Dask plan (:mod:`.plan`), the aggregates (:mod:`.aggregate`) and the
table schemas (:mod:`.tables`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from analytics.errors import InputError
from analytics.jobs.contract import JobSpec, RunSettings, Table, lazy
from analytics.options import option, relative_date

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


Options = DateOptions


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
    help="transaction-cost analysis: per-order costs and notional-weighted aggregates",
    options=Options,
    datasets=("orders", "fills", "bars"),
    tables=(
        Table("orders", key=("order_id",)),
        Table("by_broker", key=("broker",)),
        Table("by_venue", key=("venue",)),
        Table("by_desk", key=("desk",)),
        Table("by_strategy", key=("strategy",)),
        Table("by_day", key=("date",)),
    ),
    run=lazy("analytics.jobs.tca.job", "run"),
    prepare=prepare_dates,
    report=lazy("analytics.jobs.tca.report", "tca_section"),
    as_of_column=("orders", "date"),
)
