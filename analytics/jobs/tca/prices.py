"""tca's ``prices`` input: the daily rows behind the pre-trade model's ADV and sigma.

The driver picks, for each order date, the 21 sessions of ``--calendar`` before it
(:func:`analytics.jobs.tca.pretrade.session_windows`), lists the ``prices`` files of that span,
reads them by read units (:mod:`analytics.data.reads`) and computes each date's statistics in
one more task (:func:`analytics.jobs.tca.tasks.price_stats`); the partitions take them from
there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distributed import Client, Future

from analytics.data import reads
from analytics.data.datasets import DataFile, Selection, list_files
from analytics.errors import InputError
from analytics.jobs.contract import RunSettings
from analytics.jobs.tca import inputs, pretrade, tasks


@dataclass(frozen=True)
class Pretrade:
    """What the plan needs of tca's options: the calendar (sessions of the ADV and sigma
    windows) and Y of the pre-trade model."""

    calendar: str
    impact_coefficient: float = 1.0


def _price_files(input_url: str, sel: Selection) -> list[DataFile]:
    """The ``prices`` files that may hold rows of ``sel``; none when no partition falls in it
    (every ADV is then NaN). A missing or empty ``prices/`` folder is an error."""
    try:
        return list_files(input_url, "prices", sel)
    except InputError:
        list_files(input_url, "prices", Selection())  # raises when the folder is missing
        return []


def price_stats(
    client: Client,
    settings: RunSettings,
    opts: Pretrade,
    days: Sequence[int],
    orders_sel: Selection,
) -> tuple[Future[Any], list[DataFile]]:
    """A future of each date's ADV and sigma per symbol, and the prices files read (with the
    symbols and ``--on-bad-rows`` policy of ``orders_sel``)."""
    from analytics.sessions import exchange_calendar

    dates = [inputs.day_date(d) for d in days]
    cal = exchange_calendar(opts.calendar)
    first = dates[0] - dt.timedelta(days=pretrade.SIGMA_LOOKBACK_SESSIONS * 2)
    last = dates[-1] - dt.timedelta(days=1)
    sessions = [s.date() for s in cal.sessions_in_range(first, last)]
    windows = pretrade.session_windows(dates, sessions)
    used = [s for w in windows.values() for s in w]
    if not used:
        return client.submit(tasks.price_stats, {}, pure=False), []
    sel = dataclasses.replace(orders_sel, start=min(used), end=max(used))
    files = _price_files(settings.input_url, sel)
    threads = sum(client.nthreads().values()) or 1
    read = [
        client.submit(tasks.read_prices, unit, sel, pure=False)
        for unit in reads.plan(files, threads)
    ]
    by_day = {inputs.day_number(d): w for d, w in windows.items()}
    return client.submit(tasks.price_stats, by_day, *read, pure=False), files


def time_zone(calendar: str) -> str:
    """The exchange's time zone (the time-of-day buckets are in its local time)."""
    from analytics.sessions import exchange_calendar

    return str(exchange_calendar(calendar).tz)
