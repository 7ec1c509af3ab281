"""Portfolio VaR and expected shortfall: pure numpy kernels (historical, parametric, EWMA and
filtered historical simulation; the last two from :mod:`analytics.stats.var`).

Scenario P&L of a portfolio with exposures ``w_i = quantity_i * close_i(as-of)`` under the
returns of scenario day ``s``: ``pnl_s = sum_i w_i * r_i,s``. Losses are reported as positive
numbers. A horizon of ``h`` days scales VaR and ES by ``sqrt(h)`` (square-root-of-time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from analytics.jobs.risk.options import METHODS, MIN_DAYS
from analytics.stats import var as sv

Array = npt.NDArray[np.float64]

__all__ = ["METHODS", "MIN_DAYS", "Array", "TailRisk"]


@dataclass(frozen=True)
class TailRisk:
    var: float
    es: float


def historical(pnl: Array, confidence: float) -> TailRisk:
    """Historical simulation: ``var = -quantile(pnl, 1 - c)`` (numpy linear interpolation),
    ``es = -mean(pnl[pnl <= -var])``."""
    var = -float(np.quantile(pnl, 1.0 - confidence))
    tail = pnl[pnl <= -var]
    return TailRisk(var, -float(tail.mean()))


def historicals(pnl: Array, confidences: tuple[float, ...]) -> list[TailRisk]:
    """:func:`historical` at each confidence, with one sort of the P&L."""
    levels = np.quantile(pnl, [1.0 - c for c in confidences])
    return [TailRisk(-float(q), -float(pnl[pnl <= q].mean())) for q in levels]


def covariance(returns: Array) -> Array:
    """Sample covariance (ddof=1) of the scenario returns, one column per symbol."""
    cov = np.atleast_2d(np.cov(returns, rowvar=False, ddof=1))
    return np.asarray(cov, dtype=np.float64)


def normal_tail(sigma: float, confidence: float) -> TailRisk:
    """Mean-zero normal P&L of standard deviation ``sigma``: ``var = z_c * sigma``,
    ``es = sigma * phi(z_c) / (1 - c)``."""
    normal = NormalDist()
    z = normal.inv_cdf(confidence)
    return TailRisk(z * sigma, sigma * normal.pdf(z) / (1.0 - confidence))


def parametric(exposures: Array, cov: Array, confidence: float) -> tuple[TailRisk, Array]:
    """Variance-covariance (mean zero): ``var = z_c * sigma``, ``es = sigma * phi(z_c) / (1 - c)``
    with ``sigma = sqrt(w' S w)``. Also returns the Euler component VaR of each position,
    ``w_i * (S w)_i / sigma * z_c``, which sums to ``var``."""
    normal = NormalDist()
    z = normal.inv_cdf(confidence)
    marginal = cov @ exposures
    sigma = float(np.sqrt(exposures @ marginal))
    es = sigma * normal.pdf(z) / (1.0 - confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        components = exposures * marginal / sigma * z
    return TailRisk(z * sigma, es), np.asarray(components, dtype=np.float64)


def model_risks(
    methods: Iterable[str],
    returns: Array,
    exposures: Array,
    confidences: Iterable[float],
    *,
    lam: float,
    observed: npt.NDArray[np.bool_] | None = None,
) -> dict[tuple[str, float], TailRisk]:
    """One-day VaR / ES of ``exposures`` under each method and confidence, over ``returns``
    (rows: scenario days, columns: the holdings): ``historical`` (quantile of ``returns @ w``),
    ``parametric`` (normal with the sample covariance), ``ewma`` (normal with
    :func:`~analytics.stats.var.ewma_covariance`), ``fhs`` (historical over
    :func:`~analytics.stats.var.fhs_returns`; NaN over exactly 20 days, which leave it no
    scenario; ``observed``, True where a holding has a real return, keeps the zero returns of
    its gaps out of the filtering). An empty book has no risk (0, 0).

    The normal models need only the portfolio's variance, ``w' S w``, which is the variance of
    the P&L series ``pnl = returns @ w`` under the same estimator (the sample variance, or the
    EWMA recursion of ``pnl_t^2`` seeded by the sample variance of the first 20 days): one pass
    over the P&L instead of a holdings-by-holdings matrix.
    """
    confidences = tuple(confidences)
    out: dict[tuple[str, float], TailRisk] = {}
    pnl = returns @ exposures
    for method in methods:
        if method not in MIN_DAYS:
            raise ValueError(f"unknown VaR method {method!r}: expected one of {list(METHODS)}")
        if exposures.size == 0:
            risks = [TailRisk(0.0, 0.0)] * len(confidences)
        elif method == "fhs" and returns.shape[0] == sv.SEED_DAYS:
            risks = [TailRisk(math.nan, math.nan)] * len(confidences)
        elif method == "historical":
            risks = historicals(pnl, confidences)
        elif method == "fhs":
            scenarios = sv.fhs_returns(returns, lam=lam, observed=observed)
            risks = historicals(scenarios @ exposures, confidences)
        else:
            variance = (
                float(np.var(pnl, ddof=1))
                if method == "parametric"
                else float(sv.ewma_variances(pnl[:, None], lam=lam)[-1, 0])
            )
            risks = [normal_tail(math.sqrt(variance), c) for c in confidences]
        out.update(zip([(method, c) for c in confidences], risks, strict=True))
    return out


def scenario_returns(closes: Array) -> Array:
    """Daily returns of each column over its own prices (rows: dates, oldest first).

    A day without a price (a halt, or before listing) has a 0 return, and the next return spans
    the gap, so a symbol's compounded move is kept. The first row has no return and is dropped.
    """
    filled = _ffill(closes)
    previous = filled[:-1]
    current = closes[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = current / previous - 1.0
    return np.where(np.isnan(returns), 0.0, returns)


def has_return(closes: Array) -> npt.NDArray[np.bool_]:
    """Where :func:`scenario_returns` has a real return: a price that day and an earlier one
    (a listing day has a price but no return; a halt has neither). Same shape as the returns."""
    seen = np.maximum.accumulate(~np.isnan(closes), axis=0)
    return np.asarray(~np.isnan(closes[1:]) & seen[:-1], dtype=np.bool_)


def _ffill(values: Array) -> Array:
    rows = np.arange(values.shape[0])[:, None]
    last = np.where(~np.isnan(values), rows, 0)
    np.maximum.accumulate(last, axis=0, out=last)
    return values[last, np.arange(values.shape[1])[None, :]]
