"""Relative dates for scheduled runs, resolved with an exchange calendar.

A schedule cannot know which session it should process: the daily TCA fires at 05:30 New York
time Monday to Friday (``--date previous-session``), the monthly backtest on the first days of
each month (``--as-of-month previous``). The job resolves the relative date when it starts, with
the exchange's calendar (``exchange-calendars``; XNYS by default, ``--calendar`` to change):

- ``previous-session`` on a session day ``D`` is the last session strictly before ``D``: the
  Tuesday after a Monday holiday processes the Friday before it.
- ``previous-session`` on a day that is not a session (the schedule firing on a holiday) is
  :class:`NothingToDo`. The previous session is then processed on the next session day, so with a
  schedule firing every weekday each session is processed exactly once: ``D -> previous(D)`` maps
  the sessions one to one onto the sessions before them, and every session day is a weekday.
- ``previous`` (a month) on the first session of a month ``M`` is the month before ``M``; on any
  other day it is :class:`NothingToDo`. The schedule fires on days 1-7 of every month (a cron
  cannot say "first business day"; the first session of a month always falls within its first
  seven days) and exactly one of those runs does the work.

Explicit dates (``YYYY-MM-DD``, ``YYYY-MM``) pass through unchanged on any day.

``today`` is a date in the exchange's own time zone (:func:`exchange_today`). The functions are
pure given ``today``: tests pass it; a job passes ``None`` to mean "now".
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars as xcals

from analytics.errors import EXIT_OK, FinbatchError, InputError
from analytics.options import _MONTH, PREVIOUS_MONTH, PREVIOUS_SESSION

DEFAULT_CALENDAR = "XNYS"


class NothingToDo(FinbatchError):
    """There is no session to process today: the run exits 0 with this message, and no alert.

    Raised by the resolvers below, before the job writes anything. Its ``exit_code`` is 0, so
    the command line's handler of :class:`FinbatchError` already exits 0; catching it first
    lets the command line print ``finbatch: nothing to do: <message>`` instead of an error.
    """

    exit_code = EXIT_OK


@functools.lru_cache(maxsize=8)
def exchange_calendar(
    name: str = DEFAULT_CALENDAR, start: str | None = None, end: str | None = None
) -> Any:
    """The ``exchange_calendars`` calendar called ``name`` (XNYS, XLON, XTKS, ...).

    Its range is ``start`` to ``end`` (``YYYY-MM-DD``), by default the package's: 20 years back,
    one year ahead. Cached: building one takes about 0.1 s.

    Raises
    ------
    InputError
        When no exchange calendar has that name.
    """
    try:
        with warnings.catch_warnings():
            # exchange-calendars 4.x reads Series.values, which pandas 3.1 deprecates for
            # tz-aware data; the values it gets are still right (UTC nanoseconds).
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
            return xcals.get_calendar(name, start=start, end=end)
    except xcals.errors.InvalidCalendarName:
        raise InputError(
            f"--calendar {name!r} is not an exchange calendar (for example XNYS, XLON, XTKS; "
            "the names are exchange_calendars.get_calendar_names())"
        ) from None


def _calendar(calendar: Any) -> Any:
    return exchange_calendar(calendar) if isinstance(calendar, str) else calendar


def wall_clock() -> dt.datetime:
    """The current time (UTC): what relative dates count from without ``--today``."""
    return dt.datetime.now(dt.UTC)


def exchange_today(calendar: Any = DEFAULT_CALENDAR, now: dt.datetime | None = None) -> dt.date:
    """Today's date in the exchange's time zone (``now`` is aware; default: the current time).

    The date is taken where the exchange is: 22:00 in New York is already the next day in UTC.
    """
    cal = _calendar(calendar)
    now = wall_clock() if now is None else now
    if now.tzinfo is None:
        raise ValueError(f"now={now!r} must be timezone-aware")
    return now.astimezone(ZoneInfo(str(cal.tz))).date()


def today_from(text: str | None, calendar: Any = DEFAULT_CALENDAR) -> dt.date | None:
    """The exchange's date of ``--today`` (a date, or a moment taken in the exchange's time
    zone); None without it (the resolvers then take the current time)."""
    if not text:
        return None
    if len(text) == 10:
        return dt.date.fromisoformat(text)
    return exchange_today(calendar, dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def _check_range(cal: Any, today: dt.date) -> None:
    first, last = cal.first_session.date(), cal.last_session.date()
    if not first < today <= last:
        raise InputError(
            f"{today} is outside the {cal.name} calendar's range ({first} to {last}): "
            "pass an explicit date"
        )


def _session(value: Any) -> dt.date:
    return dt.date.fromisoformat(str(value)[:10])


def resolve_date(
    text: str,
    calendar: Any = DEFAULT_CALENDAR,
    today: dt.date | None = None,
    *,
    option: str = "--date",
) -> dt.date:
    """The session a ``YYYY-MM-DD`` or ``previous-session`` argument names.

    Parameters
    ----------
    text
        ``YYYY-MM-DD`` (returned as it is) or ``previous-session``: the last session strictly
        before ``today``.
    calendar
        A calendar name or an ``exchange_calendars`` calendar.
    today
        The date in the exchange's time zone (default: now, see :func:`exchange_today`).
    option
        The option's name, for messages.

    Raises
    ------
    NothingToDo
        ``previous-session`` on a day that is not a session (a weekend or a holiday).
    InputError
        A malformed ``text``, or ``today`` outside the calendar's range.
    """
    if text != PREVIOUS_SESSION:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise InputError(
                f"{option} {text!r}: expected a date in YYYY-MM-DD form or {PREVIOUS_SESSION!r}"
            ) from None
    cal = _calendar(calendar)
    today = exchange_today(cal) if today is None else today
    _check_range(cal, today)
    if not cal.is_session(today):
        before = _session(cal.date_to_session(today, direction="previous"))
        after = _session(cal.date_to_session(today, direction="next"))
        raise NothingToDo(
            f"{today} is not a session of {cal.name} (a weekend or a holiday), so {option} "
            f"{PREVIOUS_SESSION} has no session to process today; {before} is processed on the "
            f"next session day, {after}"
        )
    return _session(cal.previous_session(today))


def first_session_of_month(calendar: Any, day: dt.date) -> dt.date:
    """The first session of ``day``'s month (it may be after ``day``)."""
    cal = _calendar(calendar)
    return _session(cal.date_to_session(day.replace(day=1), direction="next"))


def resolve_month(
    text: str,
    calendar: Any = DEFAULT_CALENDAR,
    today: dt.date | None = None,
    *,
    option: str = "--as-of-month",
) -> str:
    """The month (``YYYY-MM``) a ``YYYY-MM`` or ``previous`` argument names.

    ``previous`` on the first session of a month is the month before it; on any other day there
    is nothing to do (the schedule fires on several days so that one of them is that session).

    Raises
    ------
    NothingToDo
        ``previous`` on a day that is not the first session of its month.
    InputError
        A malformed ``text``, or ``today`` outside the calendar's range.
    """
    if text != PREVIOUS_MONTH:
        match = _MONTH.match(text)
        if not (match and 1 <= int(match.group(2)) <= 12):
            raise InputError(
                f"{option} {text!r}: expected a month in YYYY-MM form or {PREVIOUS_MONTH!r}"
            )
        return text
    cal = _calendar(calendar)
    today = exchange_today(cal) if today is None else today
    _check_range(cal, today)
    first = first_session_of_month(cal, today)
    if today != first:
        raise NothingToDo(
            f"{today} is not the first session of {today:%Y-%m} on {cal.name} ({first} is): "
            f"{option} {PREVIOUS_MONTH} runs on that session only; pass {option} YYYY-MM to run "
            "a month on another day"
        )
    return f"{today.replace(day=1) - dt.timedelta(days=1):%Y-%m}"


def last_sessions(
    text: str, count: int, calendar: Any = DEFAULT_CALENDAR, today: dt.date | None = None
) -> list[dt.date]:
    """The ``count`` sessions ending with the one ``text`` names, oldest first (``--catch-up``).

    ``previous-session`` is the last session strictly before ``today`` on any day, a holiday
    too: a catch-up skips what is committed, so it needs no one-firing-per-session rule. A date
    that is not a session ends with the session before it.

    Raises
    ------
    InputError
        A malformed ``text``, or sessions before the calendar's first.
    """
    cal = _calendar(calendar)
    if text == PREVIOUS_SESSION:
        today = exchange_today(cal) if today is None else today
        _check_range(cal, today)
        last = _session(cal.date_to_session(today - dt.timedelta(days=1), direction="previous"))
    else:
        day = resolve_date(text, cal, today)
        _check_range(cal, day)
        last = _session(cal.date_to_session(day, direction="previous"))
    found = [last]
    first = cal.first_session.date()
    while len(found) < count:
        if found[-1] <= first:
            raise InputError(
                f"--catch-up {count}: the {cal.name} calendar starts on {first}, "
                f"{len(found)} session(s) before {last}"
            )
        found.append(_session(cal.previous_session(found[-1])))
    return found[::-1]


def last_months(
    text: str, count: int, calendar: Any = DEFAULT_CALENDAR, today: dt.date | None = None
) -> list[str]:
    """The ``count`` months (``YYYY-MM``) ending with the one ``text`` names, oldest first
    (``--catch-up``). ``previous`` is the month before ``today``'s on any day of the month."""
    if text == PREVIOUS_MONTH:
        cal = _calendar(calendar)
        today = exchange_today(cal) if today is None else today
        last = today.replace(day=1) - dt.timedelta(days=1)
    else:
        last = dt.datetime.strptime(resolve_month(text, calendar, today), "%Y-%m").date()
    months = []
    year, month = last.year, last.month
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]
