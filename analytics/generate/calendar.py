"""NYSE sessions: the dates the exchange trades on.

The rules are the exchange's current full-day holidays, applied to every year from 1971 on (when
the Monday holidays began), plus the unscheduled full-day closings since 1985 (storms, national
days of mourning, September 2001). Early closes (1 p.m.) are sessions like any other here.
"""

from __future__ import annotations

import datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    nearest_workday,
    sunday_to_monday,
)
from pandas.tseries.offsets import DateOffset

from analytics.errors import InputError

MONDAY, THURSDAY = 0, 3

#: NYSE full-day holidays. A Monday or Thursday holiday is the first such weekday on or after a
#: fixed date: the 15th for a third Monday, the 22nd for a fourth Thursday, May 25 for the last
#: Monday of May. New Year's Day on a Saturday is not observed on the Friday before
#: (that would close the last session of the year), hence ``sunday_to_monday`` there and
#: ``nearest_workday`` (Saturday -> Friday, Sunday -> Monday) for the other fixed dates.
NYSE_HOLIDAY_RULES: Final = [
    Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
    Holiday(
        "Martin Luther King Jr. Day",
        month=1,
        day=15,
        start_date=datetime.datetime(1998, 1, 1),
        offset=DateOffset(weekday=MONDAY),
    ),
    Holiday("Presidents' Day", month=2, day=15, offset=DateOffset(weekday=MONDAY)),
    GoodFriday,
    Holiday("Memorial Day", month=5, day=25, offset=DateOffset(weekday=MONDAY)),
    Holiday(
        "Juneteenth",
        month=6,
        day=19,
        start_date=datetime.datetime(2022, 1, 1),
        observance=nearest_workday,
    ),
    Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
    Holiday("Labor Day", month=9, day=1, offset=DateOffset(weekday=MONDAY)),
    Holiday("Thanksgiving Day", month=11, day=22, offset=DateOffset(weekday=THURSDAY)),
    Holiday("Christmas Day", month=12, day=25, observance=nearest_workday),
]

#: Unscheduled full-day closings on weekdays that are not holidays.
NYSE_SPECIAL_CLOSINGS: Final = np.array(
    [
        "1985-09-27",  # Hurricane Gloria
        "1994-04-27",  # President Nixon's funeral
        "2001-09-11",  # September 11 attacks, four sessions
        "2001-09-12",
        "2001-09-13",
        "2001-09-14",
        "2004-06-11",  # President Reagan's funeral
        "2007-01-02",  # President Ford's funeral
        "2012-10-29",  # Hurricane Sandy, two sessions
        "2012-10-30",
        "2018-12-05",  # President G. H. W. Bush's funeral
        "2025-01-09",  # President Carter's funeral
    ],
    dtype="datetime64[D]",
)

#: The first year the rules above describe.
FIRST_SUPPORTED_YEAR: Final = 1971


class NYSEHolidayCalendar(AbstractHolidayCalendar):
    """The scheduled NYSE full-day holidays as a pandas holiday calendar."""

    rules = NYSE_HOLIDAY_RULES


def nyse_holidays(start: datetime.date, end: datetime.date) -> npt.NDArray[np.datetime64]:
    """The weekdays in ``[start, end]`` on which the NYSE is closed, as ``datetime64[D]``."""
    scheduled = NYSEHolidayCalendar().holidays(pd.Timestamp(start), pd.Timestamp(end))
    days = np.union1d(scheduled.to_numpy().astype("datetime64[D]"), NYSE_SPECIAL_CLOSINGS)
    lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
    return days[(days >= lo) & (days <= hi) & np.is_busday(days)]


def trading_days(start: datetime.date, end: datetime.date) -> npt.NDArray[np.datetime64]:
    """NYSE sessions from ``start`` to ``end`` inclusive, ascending, as ``datetime64[D]``.

    Parameters
    ----------
    start, end
        The first and last calendar dates of the range; an empty array when ``end < start``.

    Raises
    ------
    InputError
        If ``start`` is before 1971, where the holiday rules here no longer hold.
    """
    if start.year < FIRST_SUPPORTED_YEAR:
        raise InputError(
            f"start {start.isoformat()} is before {FIRST_SUPPORTED_YEAR}: the NYSE holiday "
            f"rules used here hold from {FIRST_SUPPORTED_YEAR} on; choose a later start"
        )
    lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
    if hi < lo:
        return np.empty(0, dtype="datetime64[D]")
    days = np.arange(lo, hi + np.timedelta64(1, "D"), dtype="datetime64[D]")
    return days[np.is_busday(days, holidays=nyse_holidays(start, end))]
