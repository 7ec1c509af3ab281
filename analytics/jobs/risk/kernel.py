"""Portfolio VaR and expected shortfall: pure numpy kernels (historical and parametric).

Scenario P&L of a portfolio with exposures ``w_i = quantity_i * close_i(as-of)`` under the
returns of scenario day ``s``: ``pnl_s = sum_i w_i * r_i,s``. Losses are reported as positive
numbers. A horizon of ``h`` days scales VaR and ES by ``sqrt(h)`` (square-root-of-time).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


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


def covariance(returns: Array) -> Array:
    """Sample covariance (ddof=1) of the scenario returns, one column per symbol."""
    cov = np.atleast_2d(np.cov(returns, rowvar=False, ddof=1))
    return np.asarray(cov, dtype=np.float64)


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


def _ffill(values: Array) -> Array:
    rows = np.arange(values.shape[0])[:, None]
    last = np.where(~np.isnan(values), rows, 0)
    np.maximum.accumulate(last, axis=0, out=last)
    return values[last, np.arange(values.shape[1])[None, :]]
