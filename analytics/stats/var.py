"""Value at risk beyond the plain historical and normal models, and its backtests.

Pure functions over numpy arrays (rows: days, oldest first; columns: holdings). Returns are
simple daily returns; P&L is ``sum_i w_i r_i`` for exposures ``w``; losses are positive numbers.

- :func:`ewma_covariance` and :func:`fhs_returns`: the RiskMetrics exponentially weighted
  covariance and filtered historical simulation, both seeded by the first :data:`SEED_DAYS`.
- :func:`component_es`: each holding's share of the historical expected shortfall.
- :func:`kupiec_pof`, :func:`christoffersen_independence`, :func:`conditional_coverage`: the
  likelihood-ratio tests of a sequence of VaR exceptions; :func:`traffic_light`: the Basel zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Zone = Literal["green", "yellow", "red"]

#: Days of sample (co)variance that seed the exponentially weighted recursions.
SEED_DAYS: Final = 20
#: RiskMetrics' decay for daily data.
RISKMETRICS_LAMBDA: Final = 0.94
#: Basel zone bounds on the binomial cumulative probability ``P(X <= exceptions)``: green below
#: the first, red from the second (for 99% VaR over 250 days: green 0-4, yellow 5-9, red >= 10).
YELLOW_FROM: Final = 0.95
RED_FROM: Final = 0.9999


@dataclass(frozen=True)
class LikelihoodRatio:
    """A likelihood-ratio statistic and its chi-square p-value (``p = P(chi2_df >= lr)``)."""

    lr: float
    p: float


def _check_seed(returns: Array, lam: float) -> None:
    if returns.ndim != 2 or returns.shape[0] < SEED_DAYS:
        raise ValueError(
            f"returns of shape {returns.shape}: need a 2-d array of at least {SEED_DAYS} days"
        )
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lambda {lam}: must be in (0, 1)")


def ewma_covariance(returns: Array, *, lam: float = RISKMETRICS_LAMBDA) -> Array:
    """RiskMetrics covariance of ``N >= 20`` days of returns, as of the end of day ``N``.

    ``S_20`` is the sample covariance (ddof=1) of days 1-20; then
    ``S_t = lam * S_(t-1) + (1 - lam) * r_t r_t'`` for ``t = 21..N`` (no mean is removed). The
    recursion is summed in closed form: ``S_N = lam^(N-20) S_20 + (1 - lam) sum_t lam^(N-t)
    r_t r_t'``. Raises ``ValueError`` under 20 days.
    """
    _check_seed(returns, lam)
    seed = np.atleast_2d(np.cov(returns[:SEED_DAYS], rowvar=False, ddof=1))
    later = returns[SEED_DAYS:]
    n_later = later.shape[0]
    weights = (1.0 - lam) * lam ** np.arange(n_later - 1, -1, -1, dtype=np.float64)
    cov = lam**n_later * seed + (later * weights[:, None]).T @ later
    return np.asarray(cov, dtype=np.float64)


def ewma_variances(
    returns: Array,
    *,
    lam: float = RISKMETRICS_LAMBDA,
    observed: npt.NDArray[np.bool_] | None = None,
) -> Array:
    """Each column's variance forecasts ``sigma^2_s`` for days ``s = 21..N+1`` (``N - 19`` rows).

    ``sigma^2_21`` is the sample variance (ddof=1) of days 1-20;
    ``sigma^2_(s+1) = lam * sigma^2_s + (1 - lam) * r_s^2``. Raises ``ValueError`` under 20 days.

    ``observed`` (same shape, True where the column has a real return) leaves the gaps out: the
    seed is the variance of the observed returns of days 1-20 (NaN under 2 of them) and a gap
    day carries ``sigma^2`` forward unchanged. Without it the zero returns that stand for a halt
    or the days before a listing would shrink ``sigma`` towards 0, and the next real return,
    divided by it, would become an extreme scenario.
    """
    _check_seed(returns, lam)
    if observed is not None and not np.all(observed):
        return _ewma_variances_with_gaps(returns, lam, np.asarray(observed, dtype=bool))
    squares = returns[SEED_DAYS:] ** 2
    out = np.empty((squares.shape[0] + 1, returns.shape[1]), dtype=np.float64)
    out[0] = np.var(returns[:SEED_DAYS], axis=0, ddof=1)
    # The recursion in closed form, a block at a time: with v = the block's first variance,
    # sigma^2 after its (j+1)-th day = lam^(j+1) * (v + (1 - lam)/lam * sum_(u<=j) lam^-u x_u).
    # A block is as long as lam^-u stays under 1e50 (all of a year for lam = 0.94).
    block = max(1, int(50.0 / -math.log10(lam)))
    for start in range(0, squares.shape[0], block):
        x = squares[start : start + block]
        steps = np.arange(x.shape[0], dtype=np.float64)
        growing = np.cumsum(lam ** -steps[:, None] * x, axis=0)
        out[start + 1 : start + 1 + x.shape[0]] = lam ** (steps + 1.0)[:, None] * (
            out[start] + (1.0 - lam) / lam * growing
        )
    return out


def _ewma_variances_with_gaps(returns: Array, lam: float, observed: npt.NDArray[np.bool_]) -> Array:
    seed_r = np.where(observed[:SEED_DAYS], returns[:SEED_DAYS], np.nan)
    count = observed[:SEED_DAYS].sum(axis=0)
    out = np.empty((returns.shape[0] - SEED_DAYS + 1, returns.shape[1]), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[0] = np.where(count >= 2, np.nanvar(seed_r, axis=0, ddof=1), np.nan)
    for i, s in enumerate(range(SEED_DAYS, returns.shape[0])):
        updated = lam * out[i] + (1.0 - lam) * returns[s] ** 2
        out[i + 1] = np.where(observed[s], updated, out[i])
    return out


def fhs_returns(
    returns: Array,
    *,
    lam: float = RISKMETRICS_LAMBDA,
    observed: npt.NDArray[np.bool_] | None = None,
) -> Array:
    """Filtered historical simulation: the ``N - 20`` rescaled scenarios of days ``21..N``.

    The scenario of day ``s`` is ``r_s * sigma_(N+1) / sigma_s`` per column, with the variances
    of :func:`ewma_variances` (each day's return put on today's volatility). A column whose
    ``sigma_s`` is 0 or unknown keeps its raw return on day ``s`` (with ``observed``, a gap day's
    return is its raw 0). Raises ``ValueError`` under 20 days.
    """
    sigma = np.sqrt(ewma_variances(returns, lam=lam, observed=observed))
    past, today = sigma[:-1], sigma[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = returns[SEED_DAYS:] * (today / past)
    usable = (past > 0.0) & np.isfinite(scaled)
    return np.asarray(np.where(usable, scaled, returns[SEED_DAYS:]), dtype=np.float64)


def component_es(returns: Array, exposures: Array, var: float) -> Array:
    """Each holding's part of the historical expected shortfall: ``-mean_s(w_i r_i,s)`` over the
    tail scenarios ``s`` (portfolio ``pnl_s <= -var``). The parts sum to
    ``es = -mean(pnl[pnl <= -var])``. Zeros (none is in the tail) when no scenario is."""
    position_pnl = returns * exposures
    tail = position_pnl.sum(axis=1) <= -var
    if not tail.any():
        return np.zeros(returns.shape[1], dtype=np.float64)
    return np.asarray(-position_pnl[tail].mean(axis=0), dtype=np.float64)


def _xlogy(count: float, prob: float) -> float:
    """``count * ln(prob)`` with the convention ``0 * ln 0 = 0`` (and ``0 * ln(0/0) = 0``)."""
    return 0.0 if count == 0 else count * math.log(prob)


def _chi2_sf(x: float, df: Literal[1, 2]) -> float:
    """``P(chi2_df >= x)`` in closed form: ``erfc(sqrt(x/2))`` for 1 df, ``exp(-x/2)`` for 2."""
    x = max(x, 0.0)
    return math.erfc(math.sqrt(x / 2.0)) if df == 1 else math.exp(-x / 2.0)


def _exceptions(exceptions: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    hits = np.asarray(exceptions, dtype=bool)
    if hits.ndim != 1 or hits.size == 0:
        raise ValueError(f"exceptions of shape {hits.shape}: need a non-empty 1-d sequence")
    return hits


def kupiec_pof(exceptions: npt.ArrayLike, confidence: float) -> LikelihoodRatio:
    """Kupiec's proportion-of-failures test of ``x`` exceptions in ``n`` days against the rate
    ``p = 1 - confidence``: ``lr = -2 [ (n-x) ln(1-p) + x ln p - (n-x) ln(1-x/n) - x ln(x/n) ]``
    (``0 ln 0 = 0``), chi-square with 1 df."""
    hits = _exceptions(exceptions)
    n, x = float(hits.size), float(hits.sum())
    p, rate = 1.0 - confidence, x / n
    lr = -2.0 * (
        _xlogy(n - x, 1.0 - p) + _xlogy(x, p) - _xlogy(n - x, 1.0 - rate) - _xlogy(x, rate)
    )
    lr = max(lr, 0.0) + 0.0  # + 0.0 turns a -0.0 into 0.0
    return LikelihoodRatio(lr, _chi2_sf(lr, 1))


def transition_counts(exceptions: npt.ArrayLike) -> tuple[int, int, int, int]:
    """``(n00, n01, n10, n11)``: ``n_ij`` counts days with state ``j`` after a day with state
    ``i`` (1 = exception) over the ``n - 1`` consecutive pairs."""
    hits = _exceptions(exceptions).astype(np.int64)
    pairs = 2 * hits[:-1] + hits[1:]
    counts = np.bincount(pairs, minlength=4)
    return int(counts[0]), int(counts[1]), int(counts[2]), int(counts[3])


def christoffersen_independence(exceptions: npt.ArrayLike) -> LikelihoodRatio:
    """Christoffersen's independence test from the 2 x 2 transition counts:
    ``lr = -2 [ (n00+n10) ln(1-pi) + (n01+n11) ln pi - n00 ln(1-pi01) - n01 ln pi01
    - n10 ln(1-pi11) - n11 ln pi11 ]`` with ``pi01 = n01/(n00+n01)``, ``pi11 = n11/(n10+n11)``,
    ``pi = (n01+n11)/(n-1)`` and ``0 ln 0 = 0``; chi-square with 1 df. A sequence of one day
    (no transition), with no exception or with only exceptions, has ``lr = 0``."""
    n00, n01, n10, n11 = transition_counts(exceptions)
    total = n00 + n01 + n10 + n11
    if total == 0:
        return LikelihoodRatio(0.0, 1.0)
    pi = (n01 + n11) / total
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    restricted = _xlogy(n00 + n10, 1.0 - pi) + _xlogy(n01 + n11, pi)
    unrestricted = (
        _xlogy(n00, 1.0 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1.0 - pi11) + _xlogy(n11, pi11)
    )
    lr = max(-2.0 * (restricted - unrestricted), 0.0) + 0.0
    return LikelihoodRatio(lr, _chi2_sf(lr, 1))


def conditional_coverage(exceptions: npt.ArrayLike, confidence: float) -> LikelihoodRatio:
    """Christoffersen's conditional coverage: ``lr_cc = lr_pof + lr_ind``, chi-square 2 df."""
    lr = kupiec_pof(exceptions, confidence).lr + christoffersen_independence(exceptions).lr
    return LikelihoodRatio(lr, _chi2_sf(lr, 2))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``, summed in log space (no overflow for large n)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    lgn = math.lgamma(n + 1)
    terms = [
        lgn - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def traffic_light(exceptions: int, n_days: int, confidence: float) -> Zone:
    """The Basel zone of ``exceptions`` in ``n_days`` of VaR at ``confidence``: with
    ``P = P(X <= exceptions)``, ``X ~ Binomial(n_days, 1 - confidence)``, green if
    ``P < 0.95``, red if ``P >= 0.9999``, yellow between."""
    cumulative = binomial_cdf(exceptions, n_days, 1.0 - confidence)
    if cumulative < YELLOW_FROM:
        return "green"
    return "red" if cumulative >= RED_FROM else "yellow"


def traffic_light_bounds(n_days: int, confidence: float) -> tuple[int, int]:
    """The fewest exceptions that are yellow and that are red (``n_days + 1``: never)."""
    p = 1.0 - confidence
    yellow = next(
        (x for x in range(n_days + 1) if binomial_cdf(x, n_days, p) >= YELLOW_FROM), n_days + 1
    )
    red = next(
        (x for x in range(yellow, n_days + 1) if binomial_cdf(x, n_days, p) >= RED_FROM),
        n_days + 1,
    )
    return yellow, red
