"""Daily prices: a market factor, fat-tailed GARCH returns, overnight gaps, IPOs and halts.

Every array here is ``(sessions, symbols)``: one row per session of a year, one column per
symbol in sorted order (the benchmark ``SPX`` included). A year is simulated at once, vectorized
across symbols; only the variance recursions step through the sessions. :class:`MarketState`
carries what one year hands to the next (last close, GARCH variances and shocks), so a long range
is generated one year at a time in bounded memory.

Log return of symbol ``i`` on session ``t``::

    r[t, i] = drift[i] + beta[i] * m[t] + e[t, i] + jump[t, i]
    m[t] = sqrt(hm[t]) * z[t],   hm[t] = wm + am * m[t-1]**2 + bm * hm[t-1]
    e[t, i] = sqrt(he[t, i]) * z[t, i],   the same recursion per symbol

with ``z`` Student-t (``df`` = 4) scaled to unit variance and clipped at 10 sigma, and ``jump``
an earnings surprise once a quarter, taken overnight.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from analytics.constants import DEFAULT_BENCHMARK, TRADING_DAYS_PER_YEAR

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Dates = npt.NDArray[np.datetime64]

BENCHMARK: Final = DEFAULT_BENCHMARK
#: How many 3- and 4-letter tickers exist (``SPX`` excluded): the largest universe.
MAX_SYMBOLS: Final = 26**3 + 26**4 - 1

# Market factor: annualized volatility, GARCH(1,1) news and persistence weights, log drift.
MARKET_VOL: Final = 0.16
MARKET_GARCH: Final = (0.09, 0.89)
MARKET_DRIFT: Final = 0.06
# Idiosyncratic part of each symbol; persistence a + b = 0.98 as for the market.
IDIO_GARCH: Final = (0.06, 0.92)
BENCHMARK_IDIO_VOL: Final = 0.01
T_DF: Final = 4.0
Z_CLIP: Final = 10.0
# Share of the diffusive return that happens overnight, and the gap's own noise (in sigmas).
OVERNIGHT_SHARE: Final = 0.3
GAP_NOISE: Final = 0.2
# Mean excursion of the daily high above max(open, close), in intraday sigmas.
RANGE_EXCURSION: Final = 0.35
EARNINGS_EVERY: Final = 63
HALT_RATE: Final = 0.0005
IPO_SHARE: Final = 0.03
# log(volume) = log(dollar volume / close) + VOLUME_SHOCK * (|z| - 0.8) + AR(1) noise.
VOLUME_SHOCK: Final = 0.5
VOLUME_AR: Final = 0.6
VOLUME_NOISE: Final = 0.3


@dataclass(frozen=True)
class Universe:
    """The symbols and their fixed parameters, aligned with ``symbols`` (sorted, SPX included).

    Volatilities and drifts are per session (daily), not annualized.
    """

    symbols: tuple[str, ...]
    benchmark: int
    beta: F64
    idio_var: F64
    drift: F64
    start_price: F64
    dollar_volume: F64
    jump_vol: F64
    earnings_phase: I64
    #: Global session index of each symbol's first row (0 = listed before the range).
    listing: I64
    #: Typical quoted bid-ask spread in basis points of the price (intraday quotes).
    spread_bps: F64

    @property
    def stocks(self) -> I64:
        """Column indices of the generated symbols (the benchmark left out)."""
        idx = np.arange(len(self.symbols), dtype=np.int64)
        return np.asarray(idx[idx != self.benchmark], dtype=np.int64)


@dataclass
class MarketState:
    """What one simulated year hands to the next."""

    session: int
    log_close: F64
    h_market: float
    eps_market: float
    h_idio: F64
    eps_idio: F64
    volume_noise: F64


@dataclass
class YearPrices:
    """One year of daily bars for every symbol; ``present`` marks the rows that exist.

    Mutable on purpose: intraday generation overwrites ``high``, ``low`` and ``volume`` of the
    symbol-days it covers so the two datasets agree.
    """

    dates: Dates
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    #: Conditional daily volatility of the log return (for the intraday path).
    sigma: F64
    present: Bools


def make_tickers(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct random uppercase tickers of 3 or 4 letters, never the benchmark, sorted."""
    n3 = min(round(0.3 * n), 26**3 - 1)
    n4 = n - n3
    codes3 = rng.choice(26**3, size=min(n3 + 1, 26**3), replace=False)
    threes = [t for t in _decode(codes3, 3) if t != BENCHMARK][:n3]
    fours = _decode(rng.choice(26**4, size=n4, replace=False), 4)
    return sorted(threes + fours)


def _decode(codes: npt.NDArray[np.int64], width: int) -> list[str]:
    letters = np.array(list(string.ascii_uppercase))
    digits = [(codes // 26**k) % 26 for k in range(width - 1, -1, -1)]
    chars = letters[np.stack(digits, axis=1)] if len(codes) else np.empty((0, width), str)
    return ["".join(row) for row in chars]


def make_universe(rng: np.random.Generator, n_symbols: int, n_sessions: int) -> Universe:
    """Draw ``n_symbols`` tickers plus the benchmark and their parameters."""
    symbols = tuple(sorted([*make_tickers(rng, n_symbols), BENCHMARK]))
    n = len(symbols)
    bench = symbols.index(BENCHMARK)
    days = float(TRADING_DAYS_PER_YEAR)

    beta = rng.uniform(0.5, 1.6, n)
    idio_vol = np.clip(rng.lognormal(np.log(0.25), 0.4, n), 0.10, 0.55)
    drift = 0.5 * beta * MARKET_DRIFT + rng.uniform(0.0, 0.05, n)
    start_price = np.exp(rng.uniform(np.log(10.0), np.log(500.0), n))
    dollar_volume = np.clip(rng.lognormal(np.log(3e7), 1.2, n), 5e5, 5e9)
    jump_vol = rng.uniform(0.02, 0.08, n)
    phase = rng.integers(0, EARNINGS_EVERY, n)
    listing = np.zeros(n, dtype=np.int64)
    n_ipo = round(IPO_SHARE * n_symbols)
    if n_symbols >= 10 and n_sessions >= 20:
        n_ipo = max(n_ipo, 1)
    if n_ipo and n_sessions > 1:
        stocks = np.delete(np.arange(n), bench)
        chosen = rng.choice(stocks, size=n_ipo, replace=False)
        listing[chosen] = rng.integers(1, n_sessions, n_ipo)

    beta[bench] = 1.0
    idio_vol[bench] = BENCHMARK_IDIO_VOL
    drift[bench] = MARKET_DRIFT
    start_price[bench] = rng.uniform(1000.0, 4500.0)
    dollar_volume[bench] = 1e13
    jump_vol[bench] = 0.0
    spread_bps = np.clip(2.0 * (3e8 / dollar_volume) ** 0.25, 0.5, 30.0)
    return Universe(
        symbols=symbols,
        benchmark=bench,
        beta=beta,
        idio_var=idio_vol**2 / days,
        drift=drift / days,
        start_price=start_price,
        dollar_volume=dollar_volume,
        jump_vol=jump_vol,
        earnings_phase=phase.astype(np.int64),
        listing=listing,
        spread_bps=spread_bps,
    )


def initial_state(universe: Universe) -> MarketState:
    """Prices at their start levels, variances at their long-run values."""
    n = len(universe.symbols)
    return MarketState(
        session=0,
        log_close=np.log(universe.start_price),
        h_market=MARKET_VOL**2 / TRADING_DAYS_PER_YEAR,
        eps_market=0.0,
        h_idio=universe.idio_var.copy(),
        eps_idio=np.zeros(n),
        volume_noise=np.zeros(n),
    )


def t_innovations(rng: np.random.Generator, shape: tuple[int, ...]) -> F64:
    """Student-t draws scaled to unit variance, clipped at ``Z_CLIP``."""
    z: F64 = rng.standard_t(T_DF, shape) * np.sqrt((T_DF - 2.0) / T_DF)
    np.clip(z, -Z_CLIP, Z_CLIP, out=z)
    return z


def _market_factor(rng: np.random.Generator, state: MarketState, n: int) -> tuple[F64, F64]:
    """The market factor's shocks and conditional variances for ``n`` sessions."""
    a, b = MARKET_GARCH
    omega = (1.0 - a - b) * MARKET_VOL**2 / TRADING_DAYS_PER_YEAR
    z = t_innovations(rng, (n,))
    eps, var = np.empty(n), np.empty(n)
    h, e = state.h_market, state.eps_market
    for t in range(n):
        h = omega + a * e * e + b * h
        e = float(np.sqrt(h) * z[t])
        var[t], eps[t] = h, e
    state.h_market, state.eps_market = h, e
    return eps, var


def _idiosyncratic(
    rng: np.random.Generator, universe: Universe, state: MarketState, n: int
) -> tuple[F64, F64, F64]:
    """Idiosyncratic shocks, their variances and the AR(1) volume noise, ``(n, symbols)``."""
    a, b = IDIO_GARCH
    omega = (1.0 - a - b) * universe.idio_var
    eps = t_innovations(rng, (n, len(universe.symbols)))  # overwritten with the shocks
    noise = rng.standard_normal(eps.shape)  # overwritten with the AR(1) path
    var = np.empty_like(eps)
    h, e, v = state.h_idio, state.eps_idio, state.volume_noise
    scale = VOLUME_NOISE * np.sqrt(1.0 - VOLUME_AR**2)
    for t in range(n):
        h = omega + a * e * e + b * h
        e = np.sqrt(h) * eps[t]
        v = VOLUME_AR * v + scale * noise[t]
        var[t], eps[t], noise[t] = h, e, v
    state.h_idio, state.eps_idio, state.volume_noise = h, e.copy(), v.copy()
    return eps, var, noise


def simulate_year(
    rng: np.random.Generator, universe: Universe, state: MarketState, dates: Dates
) -> YearPrices:
    """Daily open, high, low, close and volume for ``dates`` (one year); advances ``state``."""
    n_days, n_sym = len(dates), len(universe.symbols)
    session = state.session + np.arange(n_days)
    m, hm = _market_factor(rng, state, n_days)
    e, he, volume_noise = _idiosyncratic(rng, universe, state, n_days)
    beta = universe.beta
    diffusive = beta * m[:, None] + e
    sigma = np.sqrt(beta**2 * hm[:, None] + he)

    earnings = (session[:, None] - universe.earnings_phase) % EARNINGS_EVERY == 0
    earnings[:, universe.benchmark] = False
    jump = np.zeros((n_days, n_sym))
    rows, cols = np.nonzero(earnings)
    jump[rows, cols] = rng.standard_normal(len(rows)) * universe.jump_vol[cols]

    ret = universe.drift + diffusive + jump
    log_close = state.log_close + np.cumsum(ret, axis=0)
    prev_close = np.vstack([state.log_close[None, :], log_close[:-1]])
    gap = OVERNIGHT_SHARE * diffusive + jump + GAP_NOISE * sigma * rng.standard_normal(ret.shape)
    log_open = prev_close + gap
    intraday_sigma = sigma * np.sqrt(1.0 - OVERNIGHT_SHARE)
    up = rng.exponential(RANGE_EXCURSION, ret.shape) * intraday_sigma
    down = rng.exponential(RANGE_EXCURSION, ret.shape) * intraday_sigma

    open_, close = np.exp(log_open), np.exp(log_close)
    # Clamped after exp as well: exp is not guaranteed monotone to the last bit.
    high = np.maximum(np.exp(np.maximum(log_open, log_close) + up), np.maximum(open_, close))
    low = np.minimum(np.exp(np.minimum(log_open, log_close) - down), np.minimum(open_, close))

    surprise = np.minimum(np.abs(ret - universe.drift) / sigma, 8.0)
    log_volume = (
        np.log(universe.dollar_volume) - log_close + VOLUME_SHOCK * (surprise - 0.8) + volume_noise
    )
    volume = np.maximum(np.round(np.exp(log_volume)), 100.0)

    present = session[:, None] >= universe.listing
    n_halts = rng.binomial(n_days * n_sym, HALT_RATE)
    cells = rng.integers(0, n_days * n_sym, n_halts)
    halted = np.zeros((n_days, n_sym), dtype=bool)
    halted.ravel()[cells] = True
    halted[:, universe.benchmark] = False
    present &= ~halted

    state.session += n_days
    state.log_close = log_close[-1].copy()
    return YearPrices(
        dates=dates,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        sigma=sigma,
        present=present,
    )
