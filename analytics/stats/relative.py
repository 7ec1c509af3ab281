"""Benchmark-relative statistics of daily returns, with market-performance's conventions.

Each column of ``returns`` ``(T, n)`` is compared with ``benchmark`` ``(T,)`` over the dates on
which both have a return (NaN: no return that day). ``d = r − b`` is the daily difference.

- ``benchmark_return``: compounded benchmark return over those dates, ``prod(1 + b) − 1``;
- ``excess_return``: the column's compounded return over those dates minus ``benchmark_return``;
- ``tracking_error``: ``std(d, ddof=1) × √ppy``;
- ``information_ratio``: ``mean(d) × ppy / tracking_error`` (= ``mean(d) / std(d) × √ppy``);
- ``beta``, ``alpha``: :func:`analytics.stats.metrics.beta` and
  :func:`analytics.stats.metrics.alpha` (empyrical's, as market-performance reports them).

Edge rules are :mod:`analytics.stats.metrics`': fewer than two common dates give NaN everywhere; a
difference that never varies has a tracking error of exactly 0 and an information ratio of
``±inf`` (NaN when the column equals the benchmark).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analytics.constants import TRADING_DAYS_PER_YEAR
from analytics.stats import metrics

FloatArray = npt.NDArray[np.float64]

FIELDS = (
    "benchmark_return",
    "excess_return",
    "tracking_error",
    "information_ratio",
    "beta",
    "alpha",
)


def relative_statistics(
    returns: FloatArray, benchmark: FloatArray, *, periods_per_year: int = TRADING_DAYS_PER_YEAR
) -> dict[str, FloatArray]:
    """The statistics of :data:`FIELDS`, each ``(n,)``, of every column against ``benchmark``."""
    r = np.asarray(returns, dtype=np.float64)
    b = np.asarray(benchmark, dtype=np.float64)
    if r.ndim != 2 or b.shape != (r.shape[0],):
        raise ValueError(f"returns must be (T, n) and benchmark (T,), got {r.shape} and {b.shape}")
    rows = r.T  # analytics.stats.metrics reduces the last axis
    both = ~np.isnan(rows) & ~np.isnan(b)
    paired = np.where(both, rows, np.nan)
    bench = np.where(both, b, np.nan)
    benchmark_return = metrics.total_return(bench)
    difference = paired - bench
    return {
        "benchmark_return": benchmark_return,
        "excess_return": metrics.total_return(paired) - benchmark_return,
        "tracking_error": metrics.annual_volatility(difference, periods_per_year=periods_per_year),
        "information_ratio": metrics.sharpe_ratio(difference, periods_per_year=periods_per_year),
        "beta": metrics.beta(rows, b),
        "alpha": metrics.alpha(rows, b, periods_per_year=periods_per_year),
    }
