"""Performance metrics of daily returns, as pure numpy kernels.

Every function takes ``returns`` of shape ``(..., T)`` and reduces the last axis, so one call
computes a metric for many series at once (one row per symbol, or per symbol-month). ``NaN``
marks an absent observation (ragged series are padded with ``NaN``) and is skipped, so a row
gives the same answer as the same series with its ``NaN`` removed.

Conventions are empyrical's (empyrical-reloaded 0.7): risk-free rate 0, sample standard
deviation (``ddof=1``), annualization by ``periods_per_year`` (252 for daily data). A series with
fewer than two returns gets ``NaN`` for every metric. Divisions by zero follow numpy: ``x / 0``
is ``±inf`` and ``0 / 0`` is ``NaN`` (for example the Sharpe ratio of a constant series).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analytics.constants import TAIL_QUANTILE

Array = npt.NDArray[np.float64]

#: Fewer returns than this give NaN metrics.
MIN_RETURNS = 2


def _valid(returns: Array) -> npt.NDArray[np.bool_]:
    return ~np.isnan(returns)


def count(returns: Array) -> npt.NDArray[np.int64]:
    """Number of (non-NaN) returns of each series."""
    return np.asarray(_valid(returns).sum(axis=-1), dtype=np.int64)


def _enough(returns: Array, values: Array) -> Array:
    """``values`` where a series has at least two returns, else NaN."""
    return np.where(count(returns) >= MIN_RETURNS, values, np.nan)


def _mean(returns: Array) -> Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.nansum(returns, axis=-1) / count(returns))


def _std(returns: Array) -> Array:
    """Sample standard deviation (ddof=1), two-pass like numpy; exactly 0 for identical values.

    The float mean of identical values can differ from them in the last bit, leaving a residue
    of about 1e-18 that would turn ``mean / std`` into an arbitrary ~1e17 instead of ``±inf``
    (empyrical's ``_zero_dispersion_std`` rule).
    """
    n = count(returns)
    dev = returns - _mean(returns)[..., None]
    valid = _valid(returns)
    highest = np.max(np.where(valid, returns, -np.inf), axis=-1, initial=-np.inf)
    lowest = np.min(np.where(valid, returns, np.inf), axis=-1, initial=np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(np.nansum(dev * dev, axis=-1) / (n - 1))
    return np.asarray(np.where((highest == lowest) & (n >= MIN_RETURNS), 0.0, std))


def total_return(returns: Array) -> Array:
    """Compounded return: ``prod(1 + r) - 1``."""
    return _enough(returns, np.nanprod(1.0 + returns, axis=-1) - 1.0)


def annual_return(returns: Array, *, periods_per_year: int) -> Array:
    """Compound annual growth rate: ``prod(1 + r) ** (periods_per_year / n) - 1``."""
    n = count(returns)
    growth = np.nanprod(1.0 + returns, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _enough(returns, growth ** (periods_per_year / n) - 1.0)


def annual_volatility(returns: Array, *, periods_per_year: int) -> Array:
    """Annualized volatility: ``std(r, ddof=1) * sqrt(periods_per_year)``."""
    return _enough(returns, _std(returns) * np.sqrt(periods_per_year))


def sharpe_ratio(returns: Array, *, periods_per_year: int) -> Array:
    """Annualized Sharpe ratio, risk-free 0: ``mean(r) / std(r, ddof=1) * sqrt(ppy)``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return _enough(returns, _mean(returns) / _std(returns) * np.sqrt(periods_per_year))


def downside_risk(returns: Array, *, periods_per_year: int) -> Array:
    """Annualized downside deviation: ``sqrt(mean(min(r, 0) ** 2)) * sqrt(ppy)`` over all n."""
    downside = np.minimum(returns, 0.0)
    return np.asarray(np.sqrt(_mean(downside * downside)) * np.sqrt(periods_per_year))


def sortino_ratio(returns: Array, *, periods_per_year: int) -> Array:
    """Sortino ratio: ``mean(r) * ppy / downside_risk`` (``+inf`` with no losing day)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (
            _mean(returns)
            * periods_per_year
            / downside_risk(returns, periods_per_year=periods_per_year)
        )
    return _enough(returns, ratio)


def max_drawdown(returns: Array) -> Array:
    """Largest peak-to-trough fall of the compounded value, from the starting value (<= 0)."""
    growth = np.where(_valid(returns), 1.0 + returns, 1.0)
    wealth = np.cumprod(growth, axis=-1)
    peak = np.maximum(np.maximum.accumulate(wealth, axis=-1), 1.0)
    return _enough(returns, np.min((wealth - peak) / peak, axis=-1, initial=0.0))


def calmar_ratio(returns: Array, *, periods_per_year: int) -> Array:
    """``annual_return / |max_drawdown|``; NaN when there is no drawdown (or the ratio is inf)."""
    mdd = max_drawdown(returns)
    ann = annual_return(returns, periods_per_year=periods_per_year)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(mdd < 0.0, ann / np.abs(mdd), np.nan)
    return np.where(np.isinf(ratio), np.nan, ratio)


def _paired(returns: Array, benchmark: Array) -> tuple[Array, Array]:
    """Both series masked to the observations they both have."""
    both = _valid(returns) & _valid(benchmark)
    return np.where(both, returns, np.nan), np.where(both, benchmark, np.nan)


def beta(returns: Array, benchmark: Array) -> Array:
    """``cov(r, b) / var(b)`` with population moments over the dates both have.

    NaN with fewer than two common dates or a benchmark variance below 1e-30 (empyrical's rule).
    """
    r, b = _paired(returns, benchmark)
    b_res = b - _mean(b)[..., None]
    cov = _mean(b_res * r)
    var = _mean(b_res * b_res)
    var = np.where(var < 1.0e-30, np.nan, var)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _enough(r, cov / var)


def alpha(returns: Array, benchmark: Array, *, periods_per_year: int) -> Array:
    """Annualized Jensen's alpha: ``(1 + mean(r - beta * b)) ** ppy - 1`` over common dates."""
    r, b = _paired(returns, benchmark)
    slope = beta(r, b)
    return _enough(r, (1.0 + _mean(r - slope[..., None] * b)) ** periods_per_year - 1.0)


def _sorted_tail(returns: Array) -> tuple[Array, npt.NDArray[np.int64]]:
    if returns.shape[-1] == 0:  # one NaN column, so the index arithmetic below has a cell
        returns = np.full((*returns.shape[:-1], 1), np.nan)
    return np.sort(returns, axis=-1), count(returns)  # NaN sorts last


def value_at_risk(returns: Array, *, quantile: float = TAIL_QUANTILE) -> Array:
    """The ``quantile`` percentile of the returns, numpy's linear interpolation (negative)."""
    ordered, n = _sorted_tail(returns)
    position = np.maximum(n - 1, 0) * quantile
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, np.maximum(n - 1, 0))
    frac = position - lower
    a = np.take_along_axis(ordered, lower[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(ordered, upper[..., None], axis=-1)[..., 0]
    diff = b - a
    # numpy's _lerp: from the nearer end, so the result is exact at frac 0 and 1.
    value = np.where(frac >= 0.5, b - diff * (1.0 - frac), a + diff * frac)
    return _enough(returns, value)


def conditional_value_at_risk(returns: Array, *, quantile: float = TAIL_QUANTILE) -> Array:
    """Mean of the lowest ``int((n - 1) * quantile) + 1`` returns (empyrical's CVaR)."""
    ordered, n = _sorted_tail(returns)
    k = (np.maximum(n - 1, 0) * quantile).astype(np.int64) + 1
    tail_sum = np.take_along_axis(np.nancumsum(ordered, axis=-1), (k - 1)[..., None], axis=-1)
    return _enough(returns, tail_sum[..., 0] / k)


#: The return metrics a sweep's tables carry, in their column order.
SWEEP_METRICS = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
)


def sweep_metrics(
    returns: Array, *, periods_per_year: int, names: tuple[str, ...] = SWEEP_METRICS
) -> dict[str, Array]:
    """The metrics ``names`` (of :data:`SWEEP_METRICS`) of each series of ``returns``, by the
    functions above: what the backtest and portfolio-backtest tables share."""
    ppy = periods_per_year
    every = {
        "total_return": total_return,
        "annual_return": lambda r: annual_return(r, periods_per_year=ppy),
        "annual_volatility": lambda r: annual_volatility(r, periods_per_year=ppy),
        "sharpe": lambda r: sharpe_ratio(r, periods_per_year=ppy),
        "sortino": lambda r: sortino_ratio(r, periods_per_year=ppy),
        "max_drawdown": max_drawdown,
        "calmar": lambda r: calmar_ratio(r, periods_per_year=ppy),
    }
    return {name: every[name](returns) for name in names}


def performance_summary(
    returns: Array, benchmark: Array, *, periods_per_year: int
) -> dict[str, Array]:
    """Every metric above at once, sharing the intermediate arrays (masks, means, wealth, sort).

    Equal to calling :func:`total_return`, :func:`annual_return`, :func:`annual_volatility`,
    :func:`sharpe_ratio`, :func:`sortino_ratio`, :func:`max_drawdown`, :func:`calmar_ratio`,
    :func:`beta`, :func:`alpha`, :func:`value_at_risk` and :func:`conditional_value_at_risk` one by
    one (the tests check it), about three times faster: this is the kernel the jobs run.
    """
    ppy = periods_per_year
    valid = _valid(returns)
    n = valid.sum(axis=-1)
    enough = n >= MIN_RETURNS
    zeroed = np.where(valid, returns, 0.0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = zeroed.sum(axis=-1) / n
        dev = np.where(valid, returns - mean[..., None], 0.0)
        std = np.sqrt((dev * dev).sum(axis=-1) / (n - 1))
        highest = np.max(np.where(valid, returns, -np.inf), axis=-1, initial=-np.inf)
        lowest = np.min(np.where(valid, returns, np.inf), axis=-1, initial=np.inf)
        std = np.where((highest == lowest) & enough, 0.0, std)

        wealth = np.cumprod(np.where(valid, 1.0 + returns, 1.0), axis=-1)
        final = wealth[..., -1] if wealth.shape[-1] else np.ones(wealth.shape[:-1])
        annual = final ** (ppy / n) - 1.0
        downside = np.minimum(zeroed, 0.0)
        downside_risk = np.sqrt((downside * downside).sum(axis=-1) / n) * np.sqrt(ppy)
        peak = np.maximum(np.maximum.accumulate(wealth, axis=-1), 1.0)
        drawdown = np.min((wealth - peak) / peak, axis=-1, initial=0.0)
        calmar = np.where(drawdown < 0.0, annual / np.abs(drawdown), np.nan)

        both = valid & _valid(benchmark)
        n_both = both.sum(axis=-1)
        r_both = np.where(both, returns, 0.0)
        b_both = np.where(both, benchmark, 0.0)
        b_res = np.where(both, benchmark - (b_both.sum(axis=-1) / n_both)[..., None], 0.0)
        variance = (b_res * b_res).sum(axis=-1) / n_both
        slope = ((b_res * r_both).sum(axis=-1) / n_both) / np.where(
            variance < 1.0e-30, np.nan, variance
        )
        excess = np.where(both, r_both - slope[..., None] * b_both, 0.0).sum(axis=-1) / n_both
        paired = n_both >= MIN_RETURNS

    values = {
        "total_return": final - 1.0,
        "annual_return": annual,
        "annual_volatility": std * np.sqrt(ppy),
        "max_drawdown": drawdown,
        "calmar": np.where(np.isinf(calmar), np.nan, calmar),
        "var_95": value_at_risk(returns),
        "cvar_95": conditional_value_at_risk(returns),
    }
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        values["sharpe"] = mean / std * np.sqrt(ppy)
        values["sortino"] = mean * ppy / downside_risk
        values["beta"] = np.where(paired, slope, np.nan)
        values["alpha"] = np.where(paired, (1.0 + excess) ** ppy - 1.0, np.nan)
    return {name: np.where(enough, value, np.nan) for name, value in values.items()}
