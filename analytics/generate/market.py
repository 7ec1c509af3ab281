"""``generate_market``: a synthetic market written as the input datasets of ``docs/data.md``.

The range is generated one calendar year at a time: daily prices for every symbol, then the
intraday sessions that fall in that year (whose bars redefine the daily high, low and volume of
the symbol-days they cover), then the year's files. Random streams are keyed by the seed and a
purpose (and, for intraday data, the date), so the same arguments give the same bytes.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from analytics.data.schemas import BARS, FILLS, ORDERS, POSITIONS, PRICES
from analytics.errors import InputError
from analytics.generate.calendar import trading_days
from analytics.generate.daily import (
    MAX_SYMBOLS,
    Universe,
    YearPrices,
    initial_state,
    make_universe,
    simulate_year,
)
from analytics.generate.intraday import SymbolSession, simulate_session
from analytics.generate.positions import PORTFOLIOS, PositionBook
from analytics.generate.writer import MarketWriter, prices_table, relative_path, to_table

# Independent random streams, one per purpose: changing how one is used leaves the others alone.
STREAM_UNIVERSE: Final = 0
STREAM_DAILY: Final = 1
STREAM_POSITIONS: Final = 2
STREAM_INTRADAY: Final = 3


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate_market` wrote."""

    output_url: str
    start: datetime.date
    end: datetime.date
    seed: int
    #: The generated symbols, sorted, without the benchmark.
    symbols: tuple[str, ...]
    benchmark: str
    n_sessions: int
    #: Rows written per dataset name (0 for a dataset not written).
    rows: dict[str, int]
    #: URLs of the files written, in write order.
    files: list[str]
    portfolios: tuple[str, ...]
    intraday_symbols: tuple[str, ...]
    #: The sessions that have intraday files.
    intraday_dates: tuple[datetime.date, ...]


def _check_arguments(
    start: datetime.date,
    end: datetime.date,
    n_symbols: int,
    intraday_symbols: int,
    intraday_days: int,
    seed: int,
) -> None:
    for name, value in (
        ("n_symbols", n_symbols),
        ("intraday_symbols", intraday_symbols),
        ("intraday_days", intraday_days),
        ("seed", seed),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InputError(f"{name} must be an integer, got {value!r}")
        if value < 0:
            raise InputError(f"{name} must be >= 0, got {value}")
    if end < start:
        raise InputError(f"end {end.isoformat()} is before start {start.isoformat()}: swap them")
    if not 1 <= n_symbols <= MAX_SYMBOLS:
        raise InputError(
            f"n_symbols is {n_symbols}, needs 1 to {MAX_SYMBOLS} (the 3- and 4-letter tickers)"
        )
    if intraday_symbols > n_symbols:
        raise InputError(
            f"intraday_symbols is {intraday_symbols}, more than the {n_symbols} symbols "
            "generated: ask for at most n_symbols"
        )


def most_liquid(universe: Universe, k: int, first_session: int) -> npt.NDArray[np.int64]:
    """Column indices of the ``k`` symbols with the largest dollar volume, sorted.

    Symbols listed by ``first_session`` come first, so an IPO is picked only when needed.
    """
    stocks = universe.stocks
    late = universe.listing[stocks] > first_session
    order = np.lexsort((-universe.dollar_volume[stocks], late))
    return np.sort(stocks[order[:k]])


def generate_market(
    output_url: str,
    start: datetime.date,
    end: datetime.date,
    n_symbols: int,
    *,
    intraday_symbols: int = 3,
    intraday_days: int = 20,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> GenerationSummary:
    """Write a synthetic market (prices, positions, bars, orders, fills) under ``output_url``.

    Parameters
    ----------
    output_url
        A local folder or ``s3://bucket/prefix``; each dataset is a folder under it.
    start, end
        Calendar dates, inclusive; only NYSE sessions get rows.
    n_symbols
        How many symbols to generate, besides the benchmark ``SPX``.
    intraday_symbols
        How many of the most liquid symbols get bars, orders and fills (0: none).
    intraday_days
        How many of the last sessions of the range get them (0: every session).
    seed
        The same arguments and seed write the same data.
    log
        Receives one progress line per year.

    Raises
    ------
    InputError
        For arguments out of range or a range without a session.
    OutputError
        When the output already holds dataset files this run would not overwrite.
    """
    _check_arguments(start, end, n_symbols, intraday_symbols, intraday_days, seed)
    sessions = trading_days(start, end)
    if len(sessions) == 0:
        raise InputError(
            f"no NYSE session from {start.isoformat()} to {end.isoformat()} "
            "(weekends and holidays only): widen the range"
        )
    universe = make_universe(
        np.random.default_rng([seed, STREAM_UNIVERSE]), n_symbols, len(sessions)
    )
    window = sessions if intraday_days == 0 else sessions[-intraday_days:]
    if intraday_symbols == 0:
        window = window[:0]
    intraday_cols = most_liquid(universe, intraday_symbols, len(sessions) - len(window))
    years = sorted({int(str(d)[:4]) for d in sessions})

    writer = MarketWriter(output_url)
    expected = [relative_path(ds, str(y)) for y in years for ds in (PRICES, POSITIONS)]
    expected += [relative_path(ds, str(d)) for d in window for ds in (BARS, ORDERS, FILLS)]
    writer.check_no_foreign_files(expected)

    state = initial_state(universe)
    daily_rng = np.random.default_rng([seed, STREAM_DAILY])
    book = PositionBook(np.random.default_rng([seed, STREAM_POSITIONS]), universe)
    intraday_dates: list[datetime.date] = []
    for year in years:
        dates = sessions[
            (sessions >= np.datetime64(f"{year}-01-01"))
            & (sessions <= np.datetime64(f"{year}-12-31"))
        ]
        first_session = state.session
        prices = simulate_year(daily_rng, universe, state, dates)
        for t in np.nonzero(np.isin(dates, window))[0]:
            day = _write_intraday(writer, universe, prices, int(t), intraday_cols, seed)
            if day is not None:
                intraday_dates.append(day)
        writer.write(PRICES, str(year), prices_table(universe, prices))
        positions = book.year_rows(prices, first_session)
        writer.write(
            POSITIONS,
            str(year),
            to_table(
                POSITIONS,
                {
                    "date": prices.dates[positions.day],
                    "portfolio": np.array([p.name for p in PORTFOLIOS])[positions.portfolio],
                    "symbol": np.array(universe.symbols)[positions.symbol],
                    "quantity": positions.quantity,
                },
            ),
        )
        log(
            f"generate: {year}: {len(dates)} sessions, {int(prices.present.sum()):,} price rows, "
            f"{len(positions.day):,} position rows"
        )

    bench = universe.symbols[universe.benchmark]
    summary = GenerationSummary(
        output_url=output_url,
        start=start,
        end=end,
        seed=seed,
        symbols=tuple(s for s in universe.symbols if s != bench),
        benchmark=bench,
        n_sessions=len(sessions),
        rows=dict(writer.rows),
        files=list(writer.files),
        portfolios=tuple(p.name for p in PORTFOLIOS),
        intraday_symbols=tuple(universe.symbols[i] for i in intraday_cols),
        intraday_dates=tuple(intraday_dates),
    )
    log(
        f"generate: wrote {len(summary.files)} files to {output_url}: "
        + ", ".join(f"{name} {n:,}" for name, n in summary.rows.items())
    )
    return summary


def _write_intraday(
    writer: MarketWriter,
    universe: Universe,
    prices: YearPrices,
    t: int,
    columns: npt.NDArray[np.int64],
    seed: int,
) -> datetime.date | None:
    """Generate and write one session's intraday datasets; make the daily row agree with them.

    Returns the session's date, or None when none of the symbols trades that day (halts).
    """
    cols = columns[prices.present[t, columns]]
    if len(cols) == 0:
        return None
    date: datetime.date = prices.dates[t].astype(datetime.date)
    days = [
        SymbolSession(
            symbol=universe.symbols[c],
            open=float(prices.open[t, c]),
            close=float(prices.close[t, c]),
            volume=float(prices.volume[t, c]),
            sigma=float(prices.sigma[t, c]),
            spread_bps=float(universe.spread_bps[c]),
        )
        for c in cols
    ]
    rng = np.random.default_rng([seed, STREAM_INTRADAY, int(f"{date:%Y%m%d}")])
    session = simulate_session(rng, date, days)
    prices.high[t, cols] = session.high
    prices.low[t, cols] = session.low
    prices.volume[t, cols] = session.volume
    value = date.isoformat()
    writer.write(BARS, value, to_table(BARS, session.bars))
    writer.write(ORDERS, value, to_table(ORDERS, session.orders))
    writer.write(FILLS, value, to_table(FILLS, session.fills))
    return date
