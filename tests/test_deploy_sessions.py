"""Relative dates for the schedules (analytics/sessions.py), on the real XNYS calendar.

The hand cases name the holidays they rely on; the schedule tests replay the template's own
cron expressions over ten years and check that every session (every month) is processed
exactly once.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest

from analytics.errors import EXIT_OK, InputError
from analytics.options import relative_date, relative_month
from analytics.sessions import (
    NothingToDo,
    exchange_calendar,
    exchange_today,
    first_session_of_month,
    resolve_date,
    resolve_month,
)
from cluster.batch.template import load_template

# A fixed range, so the tests do not depend on today's date (the package's default range does).
XNYS = exchange_calendar("XNYS", start="2010-01-01", end="2026-12-31")
D = dt.date


# --------------------------------------------------------------------------------------------
# previous-session


@pytest.mark.parametrize(
    ("today", "expected", "why"),
    [
        (D(2024, 9, 3), D(2024, 8, 30), "Tuesday after Labor Day (Mon 2 Sep 2024): the Friday"),
        (D(2024, 1, 16), D(2024, 1, 12), "Tuesday after Martin Luther King Day: the Friday"),
        (D(2024, 9, 9), D(2024, 9, 6), "an ordinary Monday: the Friday"),
        (D(2024, 9, 5), D(2024, 9, 4), "an ordinary Thursday: the Wednesday"),
        (D(2024, 11, 29), D(2024, 11, 27), "Friday after Thanksgiving (Thu 28 Nov): Wednesday"),
        (D(2024, 4, 1), D(2024, 3, 28), "Monday after Good Friday (29 Mar 2024): Thursday"),
        (D(2025, 1, 10), D(2025, 1, 8), "after the day of mourning for Carter (Thu 9 Jan 2025)"),
    ],
)
def test_previous_session(today: dt.date, expected: dt.date, why: str) -> None:
    assert resolve_date("previous-session", XNYS, today) == expected, why


@pytest.mark.parametrize(
    "today",
    [
        D(2024, 9, 2),  # Labor Day
        D(2024, 7, 4),  # Independence Day (a Thursday)
        D(2024, 12, 25),  # Christmas (a Wednesday)
        D(2024, 9, 7),  # a Saturday
    ],
)
def test_no_session_today_is_nothing_to_do(today: dt.date) -> None:
    with pytest.raises(NothingToDo) as caught:
        resolve_date("previous-session", XNYS, today)
    message = str(caught.value)
    assert today.isoformat() in message
    assert "not a session" in message
    assert caught.value.exit_code == EXIT_OK == 0


def test_labor_day_message_says_when_friday_is_processed() -> None:
    with pytest.raises(NothingToDo, match=r"2024-08-30 is processed on the next session day, "):
        resolve_date("previous-session", XNYS, D(2024, 9, 2))
    with pytest.raises(NothingToDo, match=r"2024-09-03$"):
        resolve_date("previous-session", XNYS, D(2024, 9, 2))


def test_explicit_dates_pass_through_on_any_day() -> None:
    # A holiday as "today" does not matter when the date is explicit.
    assert resolve_date("2024-09-02", XNYS, D(2024, 9, 2)) == D(2024, 9, 2)
    with pytest.raises(InputError, match=r"--date '2024-9-3'"):
        resolve_date("2024-9-3", XNYS, D(2024, 9, 3))


def test_today_outside_the_calendar_is_an_input_error() -> None:
    with pytest.raises(InputError, match="outside the XNYS calendar's range"):
        resolve_date("previous-session", XNYS, D(2030, 1, 2))


# --------------------------------------------------------------------------------------------
# previous month


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (D(2024, 9, 3), "2024-08"),  # 1 Sep is a Sunday, 2 Sep Labor Day
        (D(2025, 1, 2), "2024-12"),  # 1 Jan is New Year's Day: the year turns too
        (D(2024, 7, 1), "2024-06"),  # an ordinary Monday the 1st
        (D(2023, 1, 3), "2022-12"),  # New Year's Day (Sunday) observed on Monday 2 Jan
    ],
)
def test_previous_month_on_the_first_session(today: dt.date, expected: str) -> None:
    assert resolve_month("previous", XNYS, today) == expected


@pytest.mark.parametrize(
    ("today", "first"),
    [
        (D(2024, 9, 4), D(2024, 9, 3)),  # the second session
        (D(2024, 9, 2), D(2024, 9, 3)),  # Labor Day itself
        (D(2025, 1, 1), D(2025, 1, 2)),  # New Year's Day
    ],
)
def test_previous_month_on_another_day_is_nothing_to_do(today: dt.date, first: dt.date) -> None:
    with pytest.raises(NothingToDo) as caught:
        resolve_month("previous", XNYS, today)
    assert f"({first} is)" in str(caught.value)
    assert "--as-of-month" in str(caught.value)


def test_explicit_months() -> None:
    assert resolve_month("2024-05", XNYS, D(2024, 9, 4)) == "2024-05"
    for bad in ("2024-13", "2024-5", "May 2024", ""):
        with pytest.raises(InputError, match="expected a month in YYYY-MM form"):
            resolve_month(bad, XNYS, D(2024, 9, 4))


# --------------------------------------------------------------------------------------------
# The schedules of the template, replayed


def _cron(schedule: str) -> list[str]:
    """The six fields of the template schedule's cron() expression."""
    expression = load_template()["Resources"][schedule]["Properties"]["ScheduleExpression"]
    match = re.fullmatch(r"cron\((.+)\)", expression)
    assert match, expression
    fields = match.group(1).split()
    assert len(fields) == 6
    return fields


def test_daily_tca_processes_every_session_exactly_once() -> None:
    minute, hour, day_of_month, month, day_of_week, year = _cron("DailyTca")
    assert (minute, hour, day_of_month, month, day_of_week, year) == (
        "30",
        "5",
        "?",
        "*",
        "MON-FRI",
        "*",
    )
    processed: list[dt.date] = []
    for day in pd.bdate_range("2015-01-05", "2025-12-31"):  # the schedule fires Monday-Friday
        try:
            processed.append(resolve_date("previous-session", XNYS, day.date()))
        except NothingToDo:
            continue
    sessions = [s.date() for s in XNYS.sessions_in_range("2015-01-02", "2025-12-30")]
    # Every session from the last one before the first firing to the last one before the end.
    assert processed == sessions


def test_monthly_backtest_runs_once_a_month_on_its_first_session() -> None:
    _minute, _hour, day_of_month, month, day_of_week, year = _cron("MonthlyBacktest")
    first, last = (int(d) for d in day_of_month.split("-"))
    assert (month, day_of_week, year) == ("*", "?", "*")
    runs: dict[str, dt.date] = {}
    for month_start in pd.date_range("2011-01-01", "2025-12-01", freq="MS"):
        for day in range(first, last + 1):
            today = month_start.date().replace(day=day)
            try:
                processed = resolve_month("previous", XNYS, today)
            except NothingToDo:
                continue
            assert processed not in runs, f"{processed} processed twice"
            runs[processed] = today
    months = [f"{m:%Y-%m}" for m in pd.date_range("2010-12-01", "2025-11-01", freq="MS")]
    assert sorted(runs) == months  # every month, once
    for processed, today in runs.items():
        assert today == first_session_of_month(XNYS, today)
        assert f"{today.replace(day=1) - dt.timedelta(days=1):%Y-%m}" == processed
    # The latest first session in those years is the 4th (Sep 2018: 1-2 weekend, 3 Labor Day).
    assert max(today.day for today in runs.values()) == 4


# --------------------------------------------------------------------------------------------
# Time zone, calendar names, argparse types


def test_today_is_taken_in_new_york() -> None:
    # 02:00 UTC on 3 Sep is 22:00 on 2 Sep in New York (EDT, UTC-4).
    assert exchange_today(XNYS, dt.datetime(2024, 9, 3, 2, 0, tzinfo=dt.UTC)) == D(2024, 9, 2)
    # 09:30 UTC is 05:30 in New York: the schedule's own firing time.
    assert exchange_today(XNYS, dt.datetime(2024, 9, 3, 9, 30, tzinfo=dt.UTC)) == D(2024, 9, 3)
    with pytest.raises(ValueError, match="timezone-aware"):
        exchange_today(XNYS, dt.datetime(2024, 9, 3, 9, 30))


def test_calendar_by_name() -> None:
    assert exchange_calendar("XNYS").name == "XNYS"
    # London's Summer Bank Holiday (Mon 26 Aug 2024): Tuesday processes Friday there.
    assert resolve_date("previous-session", "XLON", D(2024, 8, 27)) == D(2024, 8, 23)
    # ... while New York was open that Monday.
    assert resolve_date("previous-session", "XNYS", D(2024, 8, 27)) == D(2024, 8, 26)
    with pytest.raises(InputError, match="--calendar 'XNOPE' is not an exchange calendar"):
        exchange_calendar("XNOPE")


def test_argparse_types_check_the_shape_only() -> None:
    assert relative_date("previous-session") == "previous-session"
    assert relative_date("2024-09-03") == "2024-09-03"
    assert relative_month("previous") == "previous"
    assert relative_month("2024-08") == "2024-08"
    for bad_date in ("yesterday", "2024-09-31", "previous"):
        with pytest.raises(ValueError, match=re.escape(repr(bad_date))):
            relative_date(bad_date)
    for bad_month in ("previous-session", "2024-00", "2024-8"):
        with pytest.raises(ValueError, match=re.escape(repr(bad_month))):
            relative_month(bad_month)
