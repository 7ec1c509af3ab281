"""NYSE sessions: the dates the exchange trades on, from exchange-calendars' XNYS.

exchange-calendars keeps the exchange's holidays and unscheduled closings (storms, national days
of mourning, September 2001, the election days of the 1970s) up to date, so the generator
writes data on exactly the sessions a real NYSE dataset has, and the scheduled runs
(:mod:`analytics.sessions`) count the same sessions. Early closes (1 p.m.) are sessions like any
other here.
"""

from __future__ import annotations

import datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from analytics.sessions import exchange_calendar

#: The exchange whose sessions the generator writes.
CALENDAR: Final = "XNYS"
#: Calendars are built a decade at a time (and cached): building one costs about 0.05 s a decade,
#: and generating a range year by year then builds one or two.
_SPAN_YEARS: Final = 10


def trading_days(start: datetime.date, end: datetime.date) -> npt.NDArray[np.datetime64]:
    """NYSE sessions from ``start`` to ``end`` inclusive, ascending, as ``datetime64[D]``.

    Parameters
    ----------
    start, end
        The first and last calendar dates of the range; an empty array when ``end < start``.
    """
    lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
    if hi < lo:
        return np.empty(0, dtype="datetime64[D]")
    first = start.year // _SPAN_YEARS * _SPAN_YEARS
    last = end.year // _SPAN_YEARS * _SPAN_YEARS + _SPAN_YEARS - 1
    calendar = exchange_calendar(CALENDAR, f"{first}-01-01", f"{last}-12-31")
    sessions: npt.NDArray[np.datetime64] = calendar.sessions.to_numpy().astype("datetime64[D]")
    return sessions[(sessions >= lo) & (sessions <= hi)]
