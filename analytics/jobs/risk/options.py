"""The options of ``risk``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from analytics.options import iso_date, option

#: The longest lookback accepted: about 400 years of sessions, far past any data.
MAX_LOOKBACK = 100_000


def confidence_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{text!r} is not a list of numbers") from None
    if not values or any(not 0.5 <= v < 1.0 for v in values):
        raise ValueError(f"{text!r}: each confidence must be in [0.5, 1)")
    return values


def horizon_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{text!r} is not a list of integers") from None
    if not values or any(not 1 <= v <= 250 for v in values):
        raise ValueError(f"{text!r}: each horizon must be 1 to 250 days")
    return values


def lookback(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if not 2 <= value <= MAX_LOOKBACK:
        raise ValueError(
            f"{text[:20]!r}: the lookback must be an integer from 2 to {MAX_LOOKBACK:,}"
        )
    return value


@dataclass(frozen=True)
class Options:
    as_of: dt.date = option(
        None, parse=iso_date, metavar="YYYY-MM-DD", required=True, help="the valuation date"
    )
    lookback_days: int = option(
        500, parse=lookback, metavar="N", help="daily returns per scenario set (default 500)"
    )
    confidence: tuple[float, ...] = option(
        (0.95, 0.99),
        parse=confidence_list,
        metavar="C,C",
        help="confidence levels (default 0.95,0.99)",
    )
    horizon_days: tuple[int, ...] = option(
        (1, 10),
        parse=horizon_list,
        metavar="H,H",
        help="horizons in days, square-root-of-time scaled (default 1,10)",
    )
