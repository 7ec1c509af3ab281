"""Benchmark-relative statistics (:mod:`analytics.stats.relative`): a hand-computed case, an
independent computation (plain loops per column, empyrical for beta and alpha), the edge rules and
a hypothesis invariant."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from analytics.stats.relative import FIELDS, relative_statistics

PPY = 252


def test_by_hand() -> None:
    # In units of 1/128 (binary fractions, so equal differences are equal floats): column
    # [3, NaN, 1, 5] against benchmark [1, 7, NaN, 3]; the common dates are rows 0 and 3.
    # Benchmark total (1 + 1/128)(1 + 3/128) - 1; the column's (1 + 3/128)(1 + 5/128) - 1; the
    # excess is their difference. Differences d = [2, 2] / 128: constant, so the tracking error is
    # exactly 0 and the information ratio +inf. Beta: b - mean(b) = [-1, 1] / 128,
    # cov = mean([-1 * 3, 1 * 5]) / 128^2 = 1 / 128^2 = var: beta 1.
    # Alpha: (1 + mean(r - beta b)) ** 252 - 1 = (1 + 2/128) ** 252 - 1.
    r = np.array([[3.0], [np.nan], [1.0], [5.0]]) / 128
    b = np.array([1.0, 7.0, np.nan, 3.0]) / 128
    with np.errstate(divide="ignore"):
        got = relative_statistics(r, b)
    bench = (1 + 1 / 128) * (1 + 3 / 128) - 1
    assert list(got) == list(FIELDS)
    assert got["benchmark_return"][0] == pytest.approx(bench, rel=1e-12)
    assert got["excess_return"][0] == pytest.approx(
        (1 + 3 / 128) * (1 + 5 / 128) - 1 - bench, rel=1e-12
    )
    assert got["tracking_error"][0] == 0.0
    assert got["information_ratio"][0] == np.inf
    assert got["beta"][0] == pytest.approx(1.0, rel=1e-12)
    assert got["alpha"][0] == pytest.approx((1 + 2 / 128) ** 252 - 1, rel=1e-10)


def _reference(column: np.ndarray, benchmark: np.ndarray) -> dict[str, float]:
    both = ~np.isnan(column) & ~np.isnan(benchmark)
    r, b = column[both], benchmark[both]
    bench_total = float(np.prod(1 + b) - 1)
    d = r - b
    te = float(np.std(d, ddof=1) * math.sqrt(PPY))
    return {
        "benchmark_return": bench_total,
        "excess_return": float(np.prod(1 + r) - 1) - bench_total,
        "tracking_error": te,
        "information_ratio": float(np.mean(d) * PPY / te),
        "beta": float(empyrical.beta(r, b)),
        "alpha": float(empyrical.alpha(r, b, period="daily")),
    }


def test_matches_an_independent_computation() -> None:
    rng = np.random.default_rng(11)
    days = 750
    benchmark = rng.normal(0.0004, 0.011, size=days)
    loadings = rng.uniform(-0.5, 1.5, size=20)
    r = benchmark[:, None] * loadings + rng.normal(0.0002, 0.008, size=(days, 20))
    r[rng.random(r.shape) < 0.05] = np.nan
    benchmark[rng.random(days) < 0.03] = np.nan
    got = relative_statistics(r, benchmark)
    for j in range(r.shape[1]):
        expected = _reference(r[:, j], benchmark)
        for name in FIELDS:
            assert got[name][j] == pytest.approx(expected[name], rel=1e-9), (name, j)


def test_too_few_common_dates_give_nan() -> None:
    r = np.array([[0.01, 0.02], [np.nan, 0.01], [0.03, np.nan]])
    b = np.array([0.01, 0.02, np.nan])
    got = relative_statistics(r, b)
    # Column 0 shares one date with the benchmark, column 1 two.
    for name in FIELDS:
        assert math.isnan(got[name][0]), name
    assert got["benchmark_return"][1] == pytest.approx(1.01 * 1.02 - 1, rel=1e-12)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"\(T, n\) and benchmark \(T,\)"):
        relative_statistics(np.zeros((3, 2)), np.zeros(4))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64, st.tuples(st.integers(3, 40), st.integers(1, 4)), elements=st.floats(-0.1, 0.1)
    ),
    hnp.arrays(np.float64, st.integers(3, 40), elements=st.floats(-0.1, 0.1)),
)
def test_the_benchmark_against_itself(returns: np.ndarray, benchmark: np.ndarray) -> None:
    # The benchmark as a column: no excess, zero tracking error, beta 1 (if it varies), alpha 0.
    days = min(len(benchmark), returns.shape[0])
    b = benchmark[:days]
    with np.errstate(invalid="ignore", divide="ignore"):
        got = relative_statistics(np.column_stack([returns[:days], b]), b)
    assert got["excess_return"][-1] == 0.0
    assert got["tracking_error"][-1] == 0.0
    if np.var(b) > 1e-12:
        assert got["beta"][-1] == pytest.approx(1.0, rel=1e-9)
        assert got["alpha"][-1] == pytest.approx(0.0, abs=1e-9)
