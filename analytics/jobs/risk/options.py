"""The options of ``risk``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from analytics.options import iso_date, option

#: The longest lookback accepted: about 400 years of sessions, far past any data.
MAX_LOOKBACK = 100_000
#: The VaR models of today's book, in output order (``stressed`` is historical on another window).
METHODS = ("historical", "parametric", "ewma", "fhs")
#: Scenario days each model needs: EWMA and FHS are seeded by the first 20 (FHS over exactly 20
#: has no scenario left, and its VaR and ES are NaN).
SEED_DAYS = 20
MIN_DAYS = {"historical": 2, "parametric": 2, "ewma": SEED_DAYS, "fhs": SEED_DAYS}
#: The stressed period used when the data covers it (the 2008 crisis, Lehman to the low).
DEFAULT_STRESS_WINDOW = (dt.date(2008, 9, 1), dt.date(2009, 3, 31))
#: The longest VaR backtest accepted, in sessions.
MAX_BACKTEST_DAYS = 100_000


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


def method_list(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in values if v not in METHODS]
    if not values or unknown:
        raise ValueError(f"{text[:40]!r}: expected a comma-separated subset of {','.join(METHODS)}")
    return tuple(m for m in METHODS if m in values)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text[:20]!r} is not a number") from None


def decay(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{text[:20]!r}: the decay must be in (0, 1)")
    return value


def share(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{text[:20]!r}: the share must be in [0, 1]")
    return value


def stress_window(text: str) -> tuple[dt.date, ...]:
    """``START:END`` as two dates; ``none`` as ``()`` (no stressed VaR)."""
    if text.strip().lower() == "none":
        return ()
    start, sep, end = text.partition(":")
    if not sep:
        raise ValueError(f"{text[:40]!r}: expected START:END (YYYY-MM-DD) or none")
    window = iso_date(start), iso_date(end)
    if window[0] > window[1]:
        raise ValueError(f"{text[:40]!r}: START is after END")
    return window


def backtest_days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text[:20]!r} is not an integer") from None
    if not 0 <= value <= MAX_BACKTEST_DAYS:
        raise ValueError(f"{text[:20]!r}: the backtest is 0 to {MAX_BACKTEST_DAYS:,} sessions")
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
    methods: tuple[str, ...] = option(
        METHODS,
        parse=method_list,
        metavar="M,M",
        help=f"VaR models of today's book and the backtest (default all: {','.join(METHODS)})",
    )
    ewma_lambda: float = option(
        0.94, parse=decay, metavar="L", help="decay of the ewma and fhs models (default 0.94)"
    )
    min_coverage: float = option(
        0.9,
        parse=share,
        metavar="F",
        help="flag holdings with a return on fewer of the scenario days (default 0.9)",
    )
    stress_window: tuple[dt.date, ...] | None = option(
        None,
        parse=stress_window,
        metavar="START:END",
        help=f"stressed VaR period, or none (default {DEFAULT_STRESS_WINDOW[0]}:"
        f"{DEFAULT_STRESS_WINDOW[1]} when the data covers it)",
    )
    backtest_days: int = option(
        250,
        parse=backtest_days,
        metavar="D",
        help="sessions of 1-day VaR backtest up to --as-of, 0 for none (default 250)",
    )

    def __post_init__(self) -> None:
        from analytics.errors import InputError

        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods or unknown:
            raise InputError(f"--methods {self.methods}: expected a subset of {list(METHODS)}")
        need = max(MIN_DAYS[m] for m in self.methods)
        if self.lookback_days < need:
            raise InputError(
                f"--lookback-days {self.lookback_days} is too short for --methods "
                f"{','.join(self.methods)}: it needs at least {need} (ewma and fhs are seeded by "
                f"{SEED_DAYS} days)"
            )
        if not 0.0 < self.ewma_lambda < 1.0:
            raise InputError(f"--ewma-lambda {self.ewma_lambda}: must be in (0, 1)")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise InputError(f"--min-coverage {self.min_coverage}: must be in [0, 1]")
        if self.stress_window and (
            len(self.stress_window) != 2 or self.stress_window[0] > self.stress_window[1]
        ):
            raise InputError(f"--stress-window {self.stress_window}: expected (START, END)")
        if self.stress_window and self.stress_window[1] > self.as_of:
            raise InputError(
                f"--stress-window ends on {self.stress_window[1]}, after --as-of {self.as_of}"
            )
        if not 0 <= self.backtest_days <= MAX_BACKTEST_DAYS:
            raise InputError(f"--backtest-days {self.backtest_days}: 0 to {MAX_BACKTEST_DAYS:,}")
