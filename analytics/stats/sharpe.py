"""Probabilistic and deflated Sharpe ratios (Bailey and López de Prado, 2012 and 2014).

Everything is on daily figures (not annualized) of each column's own returns: ``returns`` of shape
``(T, n)`` with ``NaN`` on the days a column has no return; the column's T is its count of
returns. The per-column figures (:class:`SharpeMoments`) come from one task's chunk of columns;
the deflation needs only the daily Sharpe ratios of all N trials, gathered at the end.

Edge rules, the same for every function here:

- ``sharpe`` follows :mod:`analytics.stats.metrics`: ``NaN`` with fewer than two returns; all
  returns equal give a standard deviation of exactly 0, so ``±inf`` (``NaN`` if they are all 0).
- ``skew`` and ``kurtosis`` follow ``scipy.stats.skew`` / ``kurtosis(fisher=False)``: population
  moments, ``NaN`` when the second moment is within rounding of 0 (``m2 <= (eps * mean) ** 2``).
- ``psr`` and ``dsr`` are ``NaN`` for a column with fewer than three returns (the skewness and
  kurtosis of two returns are 0 and 1 whatever they are, so the correction means nothing) and
  wherever an input is ``NaN`` (zero dispersion included).
- The deflation's V is the variance (ddof=1) of the *finite* daily Sharpe ratios; N counts every
  trial. With N = 1, ``dsr`` is ``psr``; with N > 1 and fewer than two finite ratios it is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri

from analytics.stats import metrics

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The Euler–Mascheroni constant of the expected maximum of N normal Sharpe ratios.
EULER_GAMMA = 0.5772156649
#: Fewer returns than this give NaN ``psr`` and ``dsr``.
MIN_RETURNS_PSR = 3


@dataclass(frozen=True)
class SharpeMoments:
    """Per column (n,): daily Sharpe ratio, skewness, non-excess kurtosis, number of returns."""

    sharpe: FloatArray
    skew: FloatArray
    kurtosis: FloatArray
    count: IntArray


def sharpe_moments(returns: FloatArray) -> SharpeMoments:
    """The daily Sharpe ratio ``mean / std`` (ddof=1) and the population skewness and kurtosis of
    each column of ``returns`` ``(T, n)`` (or one series ``(T,)``), over its non-NaN returns."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    by_row = r.T  # analytics.stats.metrics reduces the last axis
    count = metrics.count(by_row)
    sharpe = metrics.sharpe_ratio(by_row, periods_per_year=1)
    valid = ~np.isnan(by_row)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, by_row, 0.0).sum(axis=-1) / count
        dev = np.where(valid, by_row - mean[:, None], 0.0)
        dev2 = dev * dev
        m2 = dev2.sum(axis=-1) / count
        m3 = (dev2 * dev).sum(axis=-1) / count
        m4 = (dev2 * dev2).sum(axis=-1) / count
        flat = m2 <= (np.finfo(np.float64).eps * mean) ** 2
        skew = np.where(flat, np.nan, m3 / m2**1.5)
        kurtosis = np.where(flat, np.nan, m4 / (m2 * m2))
    return SharpeMoments(
        sharpe=np.asarray(sharpe, dtype=np.float64),
        skew=np.asarray(skew, dtype=np.float64),
        kurtosis=np.asarray(kurtosis, dtype=np.float64),
        count=np.asarray(count, dtype=np.int64),
    )


def concat(parts: Sequence[SharpeMoments]) -> SharpeMoments:
    """The moments of chunks of columns, side by side in the order given."""
    if not parts:
        raise ValueError("concat needs at least one part")
    return SharpeMoments(
        sharpe=np.concatenate([p.sharpe for p in parts]),
        skew=np.concatenate([p.skew for p in parts]),
        kurtosis=np.concatenate([p.kurtosis for p in parts]),
        count=np.concatenate([p.count for p in parts]),
    )


def probabilistic_sharpe(moments: SharpeMoments, benchmark: float | FloatArray = 0.0) -> FloatArray:
    """Probability that the true daily Sharpe ratio exceeds ``benchmark`` (SR₀):

    ``Φ((SR − SR₀) √(T − 1) / √(1 − γ3 SR + (γ4 − 1) / 4 · SR²))``, per column.
    """
    sr, g3, g4 = moments.sharpe, moments.skew, moments.kurtosis
    t = moments.count.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (
            (sr - benchmark)
            * np.sqrt(t - 1.0)
            / np.sqrt(1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr)
        )
    psr = ndtr(z)
    return np.asarray(np.where(t >= MIN_RETURNS_PSR, psr, np.nan), dtype=np.float64)


def expected_max_sharpe(sharpes: FloatArray, n_trials: int | None = None) -> float:
    """SR₀ = √V ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), the deflation's benchmark.

    ``sharpes``: the daily Sharpe ratios of the trials; V is the variance (ddof=1) of the finite
    ones; N is ``n_trials``, by default ``len(sharpes)``. N = 1 gives 0 (nothing to deflate); NaN
    when N > 1 and fewer than two ratios are finite.
    """
    sharpes = np.asarray(sharpes, dtype=np.float64)
    n = len(sharpes) if n_trials is None else n_trials
    if n < 1:
        raise ValueError(f"expected_max_sharpe needs at least one trial, got N = {n}")
    if n == 1:
        return 0.0
    finite = sharpes[np.isfinite(sharpes)]
    if len(finite) < 2:
        return float("nan")
    variance = float(np.var(finite, ddof=1))
    quantiles = (1.0 - EULER_GAMMA) * ndtri(1.0 - 1.0 / n) + EULER_GAMMA * ndtri(
        1.0 - 1.0 / (n * np.e)
    )
    return float(np.sqrt(variance) * quantiles)


def deflated_sharpe(moments: SharpeMoments, sharpes: FloatArray | None = None) -> FloatArray:
    """``psr`` against SR₀ = :func:`expected_max_sharpe` of the N trials' daily Sharpe ratios.

    ``sharpes``: those of all N trials of the sweep (by default ``moments.sharpe``, when
    ``moments`` holds every trial); a task holding a chunk passes the gathered ones.
    """
    trials = moments.sharpe if sharpes is None else np.asarray(sharpes, dtype=np.float64)
    return probabilistic_sharpe(moments, expected_max_sharpe(trials))
