"""The metric kernels of :mod:`analytics.stats.metrics`: hand-computed cases, equivalence with
empyrical-reloaded (the independent implementation named by the contract), edge rules and
hypothesis invariants.

Hand cases use decimal returns whose float rounding is ~1e-17, so the expected numbers are
derived exactly (``Fraction`` or closed forms such as ``14*sqrt(21)/13``) and compared at
``rel=1e-12``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import empyrical
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.constants import TAIL_QUANTILE, TRADING_DAYS_PER_YEAR
from analytics.stats import metrics

PPY = TRADING_DAYS_PER_YEAR
EXACT = 1e-12

# The running example: r = [0.1, -0.05, 0.02], n = 3.
R3 = np.array([0.1, -0.05, 0.02])
# mean = 0.07 / 3 = 7/300; deviations 0.23/3, -0.22/3, -0.01/3;
# sum of squares = (0.0529 + 0.0484 + 0.0001) / 9 = 0.1014 / 9; / (n - 1) = 169/30000,
# so std = 13 / (100 * sqrt(3)).


def _approx(value: float) -> object:
    return pytest.approx(value, rel=EXACT, abs=0.0)


# ---------------------------------------------------------------------------------------------
# Tiny hand-computed cases, one per function
# ---------------------------------------------------------------------------------------------


def test_count_skips_nan() -> None:
    # Row 0: 3 values; row 1: 0.1 and -0.05 (two NaN pads); row 2: all NaN.
    r = np.array([[0.1, -0.05, 0.02], [0.1, np.nan, -0.05], [np.nan, np.nan, np.nan]])
    assert metrics.count(r).tolist() == [3, 2, 0]
    assert metrics.count(R3) == 3


def test_total_return() -> None:
    # 1.1 * 0.95 * 1.02 - 1 = 1.045 * 1.02 - 1 = 1.0659 - 1 = 0.0659
    assert metrics.total_return(R3) == _approx(0.0659)


def test_annual_return() -> None:
    # prod(1 + r) ** (252 / n) - 1 = 1.0659 ** (252 / 3) - 1 = (10659/10000) ** 84 - 1
    expected = float(Fraction(10659, 10000) ** 84 - 1)
    assert metrics.annual_return(R3, periods_per_year=PPY) == _approx(expected)
    # ppy = n makes the exponent 1: the annual return is the total return.
    assert metrics.annual_return(R3, periods_per_year=3) == _approx(0.0659)


def test_annual_volatility() -> None:
    # std * sqrt(252) = 13 / (100 sqrt 3) * sqrt(252) = 13 * sqrt(84) / 100 = 0.26 * sqrt(21)
    # (check: 0.26^2 * 21 = 1.4196 = 0.1014 / 18 * 252)
    assert metrics.annual_volatility(R3, periods_per_year=PPY) == _approx(0.26 * math.sqrt(21))


def test_sharpe_ratio() -> None:
    # mean / std * sqrt(252) = (7/300) / (13 / (100 sqrt 3)) * sqrt(252)
    #   = 7 sqrt(3) / 39 * sqrt(252) = 7 sqrt(756) / 39 = 7 * 6 sqrt(21) / 39 = 14 sqrt(21) / 13
    assert metrics.sharpe_ratio(R3, periods_per_year=PPY) == _approx(14 * math.sqrt(21) / 13)


def test_downside_risk() -> None:
    # min(r, 0) = [0, -0.05, 0]; mean of squares over all n = 0.0025 / 3;
    # sqrt(0.0025 / 3) * sqrt(252) = 0.05 * sqrt(84) = 0.1 * sqrt(21)
    assert metrics.downside_risk(R3, periods_per_year=PPY) == _approx(0.1 * math.sqrt(21))


def test_sortino_ratio() -> None:
    # mean * 252 / downside = (7/300 * 252) / (0.1 sqrt 21) = 5.88 / (0.1 sqrt 21)
    #   = 58.8 / sqrt(21) = 2.8 sqrt(21)
    assert metrics.sortino_ratio(R3, periods_per_year=PPY) == _approx(2.8 * math.sqrt(21))


def test_max_drawdown() -> None:
    # wealth 1.1, 1.045, 1.0659; running peak 1.1;
    # drawdowns 0, (1.045 - 1.1) / 1.1 = -0.05, (1.0659 - 1.1) / 1.1 = -0.031; min = -0.05
    assert metrics.max_drawdown(R3) == _approx(-0.05)


def test_max_drawdown_is_measured_from_the_starting_value() -> None:
    # wealth 0.9, 0.945: the peak is the starting value 1, not the first close 0.9,
    # so the drawdown is (0.9 - 1) / 1 = -0.1 (not 0).
    assert metrics.max_drawdown(np.array([-0.1, 0.05])) == _approx(-0.1)


def test_calmar_ratio() -> None:
    # annual_return / |max_drawdown| = ((10659/10000) ** 84 - 1) / 0.05
    expected = float((Fraction(10659, 10000) ** 84 - 1) / Fraction(5, 100))
    assert metrics.calmar_ratio(R3, periods_per_year=PPY) == _approx(expected)


B3 = np.array([0.05, -0.01, 0.02])
# mean(b) = 0.02; b - mean(b) = [0.03, -0.03, 0];
# cov = mean((b - mean b) * r) = (0.003 + 0.0015 + 0) / 3 = 0.0015;
# var = (0.0009 + 0.0009 + 0) / 3 = 0.0006; beta = 0.0015 / 0.0006 = 2.5


def test_beta() -> None:
    assert metrics.beta(R3, B3) == _approx(2.5)


def test_beta_uses_only_the_dates_both_have() -> None:
    # The 4th date has no benchmark and the 5th no return: both are dropped, leaving R3 vs B3.
    r = np.append(R3, [0.3, np.nan])
    b = np.append(B3, [np.nan, 0.4])
    assert metrics.beta(r, b) == _approx(2.5)


def test_alpha() -> None:
    # r - 2.5 b = [0.1 - 0.125, -0.05 + 0.025, 0.02 - 0.05] = [-0.025, -0.025, -0.03];
    # mean = -0.08 / 3; alpha = (1 - 0.08/3) ** 252 - 1 = (73/75) ** 252 - 1
    expected = float(Fraction(73, 75) ** 252 - 1)
    assert metrics.alpha(R3, B3, periods_per_year=PPY) == _approx(expected)
    r = np.append(R3, [0.3, np.nan])
    b = np.append(B3, [np.nan, 0.4])
    assert metrics.alpha(r, b, periods_per_year=PPY) == _approx(expected)


def test_value_at_risk_interpolates_like_numpy() -> None:
    # n = 3: position (n - 1) * 0.05 = 0.1 between sorted[0] = -0.05 and sorted[1] = 0.02:
    # -0.05 + 0.1 * (0.02 - (-0.05)) = -0.05 + 0.007 = -0.043
    assert metrics.value_at_risk(R3) == _approx(-0.043)
    # n = 11: position 10 * 0.05 = 0.5, halfway between -0.06 and -0.02: -0.04
    r11 = np.array([0.03, -0.02, 0.0, 0.01, -0.06, 0.02, 0.05, 0.04, 0.01, 0.0, 0.07])
    assert metrics.value_at_risk(r11) == _approx(-0.04)
    # n = 21: position 20 * 0.05 = 1.0 exactly: sorted[1] = -0.03, no interpolation
    r21 = np.concatenate([[-0.04, -0.03], np.arange(19) / 1000])
    assert metrics.value_at_risk(r21) == _approx(-0.03)


def test_conditional_value_at_risk() -> None:
    # n = 3: k = int(2 * 0.05) + 1 = 1: the single lowest return, -0.05
    assert metrics.conditional_value_at_risk(R3) == _approx(-0.05)
    # n = 21: k = int(20 * 0.05) + 1 = 2: mean(-0.04, -0.03) = -0.035
    r21 = np.concatenate([[-0.04, -0.03], np.arange(19) / 1000])
    assert metrics.conditional_value_at_risk(r21) == _approx(-0.035)
    # n = 41: k = int(40 * 0.05) + 1 = 3: mean(-0.05, -0.04, -0.03) = -0.04 (order of input free)
    r41 = np.concatenate([np.arange(38) / 1000, [-0.03, -0.05, -0.04]])
    assert metrics.conditional_value_at_risk(r41) == _approx(-0.04)


def test_functions_reduce_the_last_axis_of_any_shape() -> None:
    # A (2, 2, 3) block of copies of R3 gives the 1-D total return in every cell.
    block = np.broadcast_to(R3, (2, 2, 3))
    np.testing.assert_allclose(metrics.total_return(block), np.full((2, 2), 0.0659), rtol=EXACT)
    np.testing.assert_allclose(metrics.beta(block, B3), np.full((2, 2), 2.5), rtol=EXACT)


# ---------------------------------------------------------------------------------------------
# Equivalence with empyrical-reloaded on generated fat-tailed series
# ---------------------------------------------------------------------------------------------

Pair = tuple[np.ndarray, np.ndarray]

# (name, ours(r, b), empyrical(r, b)); b is the benchmark (NaN where it has no return).
CASES: list[tuple[str, Callable[[np.ndarray, np.ndarray], object], Callable[..., object]]] = [
    (
        "total_return",
        lambda r, b: metrics.total_return(r),
        lambda r, b: empyrical.cum_returns_final(r),
    ),
    (
        "annual_return",
        lambda r, b: metrics.annual_return(r, periods_per_year=PPY),
        lambda r, b: empyrical.annual_return(r),
    ),
    (
        "annual_volatility",
        lambda r, b: metrics.annual_volatility(r, periods_per_year=PPY),
        lambda r, b: empyrical.annual_volatility(r),
    ),
    (
        "sharpe",
        lambda r, b: metrics.sharpe_ratio(r, periods_per_year=PPY),
        lambda r, b: empyrical.sharpe_ratio(r),
    ),
    (
        "downside_risk",
        lambda r, b: metrics.downside_risk(r, periods_per_year=PPY),
        lambda r, b: empyrical.downside_risk(r),
    ),
    (
        "sortino",
        lambda r, b: metrics.sortino_ratio(r, periods_per_year=PPY),
        lambda r, b: empyrical.sortino_ratio(r),
    ),
    ("max_drawdown", lambda r, b: metrics.max_drawdown(r), lambda r, b: empyrical.max_drawdown(r)),
    (
        "calmar",
        lambda r, b: metrics.calmar_ratio(r, periods_per_year=PPY),
        lambda r, b: empyrical.calmar_ratio(r),
    ),
    ("beta", metrics.beta, empyrical.beta),
    (
        "alpha",
        lambda r, b: metrics.alpha(r, b, periods_per_year=PPY),
        empyrical.alpha,
    ),
    (
        "var_95",
        lambda r, b: metrics.value_at_risk(r),
        lambda r, b: empyrical.value_at_risk(r, TAIL_QUANTILE),
    ),
    (
        "cvar_95",
        lambda r, b: metrics.conditional_value_at_risk(r),
        lambda r, b: empyrical.conditional_value_at_risk(r, TAIL_QUANTILE),
    ),
]
CASE_IDS = [c[0] for c in CASES]
LENGTHS = (2, 3, 5, 20, 21, 41, 100, 252, 600)
SEEDS = (0, 1, 2)


def fat_tailed(seed: int, n: int) -> Pair:
    """Student-t (3 degrees of freedom) daily returns and a correlated benchmark with gaps."""
    rng = np.random.default_rng(seed * 1000 + n)
    market = 0.01 * rng.standard_t(3, size=n)
    returns = np.clip(0.0004 + 1.2 * market + 0.015 * rng.standard_t(3, size=n), -0.9, None)
    bench = np.clip(market, -0.9, None)
    if n > 10:  # the benchmark misses a few days: beta/alpha use the common dates only
        bench[rng.choice(n, size=n // 10, replace=False)] = np.nan
    return returns, bench


def _close(ours: object, theirs: object) -> None:
    # Relative 1e-9 for large values, absolute 1e-9 near zero (alpha, drawdowns of calm series);
    # NaN and inf must match exactly.
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_matches_empyrical_on_1d_series(
    name: str, ours: Callable[..., object], theirs: Callable[..., object], seed: int
) -> None:
    for n in LENGTHS:
        r, b = fat_tailed(seed, n)
        with np.errstate(all="ignore"):
            expected = theirs(r, b)
        _close(ours(r, b), expected)


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=CASE_IDS)
def test_padded_rows_equal_each_unpadded_series(
    name: str, ours: Callable[..., object], theirs: Callable[..., object]
) -> None:
    series = [fat_tailed(seed, n) for seed in SEEDS for n in LENGTHS]
    width = max(len(r) for r, _ in series)
    rows = np.full((len(series), width), np.nan)
    bench = np.full((len(series), width), np.nan)
    for i, (r, b) in enumerate(series):
        rows[i, : len(r)] = r
        bench[i, : len(b)] = b
    got = np.asarray(ours(rows, bench))
    assert got.shape == (len(series),)
    for i, (r, b) in enumerate(series):
        np.testing.assert_allclose(got[i], np.asarray(ours(r, b)), rtol=1e-12, atol=1e-15)
        with np.errstate(all="ignore"):
            _close(got[i], theirs(r, b))


# ---------------------------------------------------------------------------------------------
# Edge rules
# ---------------------------------------------------------------------------------------------

ALL_METRICS: list[tuple[str, Callable[[np.ndarray, np.ndarray], object]]] = [
    (name, ours) for name, ours, _ in CASES if name != "downside_risk"
]


@pytest.mark.parametrize(
    "r",
    [np.array([]), np.array([0.01]), np.array([np.nan, -0.02, np.nan])],
    ids=["0", "1", "1+nan"],
)
def test_fewer_than_two_returns_give_nan(r: np.ndarray) -> None:
    b = np.full(r.shape, 0.01)
    for name, ours in ALL_METRICS:
        assert np.isnan(ours(r, b)), name


def test_fewer_than_two_returns_give_nan_per_row() -> None:
    rows = np.array([[0.01, np.nan, np.nan], [np.nan] * 3, list(R3)])
    bench = np.broadcast_to(B3, rows.shape)
    for name, ours in ALL_METRICS:
        got = np.asarray(ours(rows, bench))
        assert np.isnan(got[:2]).all(), name
        assert np.isfinite(got[2]), name


def test_constant_zero_series_has_nan_sharpe() -> None:
    # mean 0 / std 0 = 0/0; volatility is 0, not NaN.
    r = np.zeros(5)
    assert np.isnan(metrics.sharpe_ratio(r, periods_per_year=PPY))
    assert metrics.annual_volatility(r, periods_per_year=PPY) == 0.0


@pytest.mark.parametrize(("value", "n"), [(0.01, 10), (0.1, 3), (0.1, 7), (-0.003, 3), (0.07, 10)])
def test_constant_nonzero_series_has_infinite_sharpe(value: float, n: int) -> None:
    # std of identical values is 0, so mean / 0 = ±inf as in empyrical (whose
    # _zero_dispersion_std guards this); the float mean of n copies can differ from the value
    # in the last bit, which must not turn the ratio into an arbitrary ~1e17.
    r = np.full(n, value)
    assert metrics.sharpe_ratio(r, periods_per_year=PPY) == math.copysign(math.inf, value)
    assert empyrical.sharpe_ratio(r) == math.copysign(math.inf, value)
    assert metrics.annual_volatility(r, periods_per_year=PPY) == pytest.approx(0.0, abs=1e-12)


def test_all_positive_returns() -> None:
    # No losing day: wealth only rises, so no drawdown, calmar undefined, downside 0 -> +inf.
    r = np.array([0.01, 0.02, 0.005, 0.03])
    assert metrics.max_drawdown(r) == 0.0
    assert np.isnan(metrics.calmar_ratio(r, periods_per_year=PPY))
    assert metrics.sortino_ratio(r, periods_per_year=PPY) == math.inf
    assert metrics.downside_risk(r, periods_per_year=PPY) == 0.0


def test_beta_and_alpha_are_nan_against_a_constant_benchmark() -> None:
    b = np.full(3, 0.01)
    assert np.isnan(metrics.beta(R3, b))
    assert np.isnan(metrics.alpha(R3, b, periods_per_year=PPY))
    # One common date only: its variance is 0 as well.
    b1 = np.array([0.01, np.nan, np.nan])
    assert np.isnan(metrics.beta(R3, b1))


# ---------------------------------------------------------------------------------------------
# Invariants (hypothesis)
# ---------------------------------------------------------------------------------------------

# Whole basis points in [-50%, +50%]: no subnormal noise, and repeated values are common, so
# constant and near-constant series are exercised.
basis_points = st.integers(-5000, 5000).map(lambda bp: bp / 10_000)
series = st.lists(basis_points, min_size=2, max_size=60).map(np.array)
FAST = settings(max_examples=60, deadline=None)


@FAST
@given(series)
def test_max_drawdown_is_between_minus_one_and_zero(r: np.ndarray) -> None:
    mdd = metrics.max_drawdown(r)
    assert -1.0 <= mdd <= 0.0


@FAST
@given(series, st.floats(0.01, 100.0))
def test_sharpe_is_unchanged_by_scaling_returns(r: np.ndarray, k: float) -> None:
    # Scaling r scales the mean and the std alike (risk-free 0), so the ratio is unchanged;
    # the volatility scales by k.
    assert metrics.sharpe_ratio(k * r, periods_per_year=PPY) == pytest.approx(
        metrics.sharpe_ratio(r, periods_per_year=PPY), rel=1e-9, nan_ok=True
    )
    assert metrics.annual_volatility(k * r, periods_per_year=PPY) == pytest.approx(
        k * metrics.annual_volatility(r, periods_per_year=PPY), rel=1e-9, abs=1e-12
    )


@FAST
@given(series)
def test_var_is_at_least_cvar_and_both_within_the_range(r: np.ndarray) -> None:
    var = metrics.value_at_risk(r)
    cvar = metrics.conditional_value_at_risk(r)
    tol = 1e-15  # one rounding of an interpolation or a mean
    assert var >= cvar - tol
    assert r.min() - tol <= cvar <= r.max() + tol
    assert r.min() - tol <= var <= r.max() + tol


@FAST
@given(series)
def test_beta_against_itself_is_one_and_alpha_zero(r: np.ndarray) -> None:
    beta = metrics.beta(r, r)
    alpha = metrics.alpha(r, r, periods_per_year=PPY)
    if np.ptp(r) == 0:  # constant: no variance to divide by
        assert np.isnan(beta)
        assert np.isnan(alpha)
    else:
        assert beta == pytest.approx(1.0, abs=1e-9)
        assert alpha == pytest.approx(0.0, abs=1e-9)


@FAST
@given(st.lists(st.integers(-500, 500).map(lambda bp: bp / 10_000), min_size=2, max_size=60))
def test_annual_return_compounds_back_to_the_total_return(daily: list[float]) -> None:
    # (1 + annual) ** (n / 252) = prod(1 + r) = 1 + total. Daily moves within ±5%: with a
    # -17% day in a 2-day series, 1 + annual = 0.83 ** 126 ~ 1e-10 keeps only ~6 digits.
    r = np.array(daily)
    annual = metrics.annual_return(r, periods_per_year=PPY)
    total = metrics.total_return(r)
    assert (1.0 + annual) ** (len(r) / PPY) == pytest.approx(1.0 + total, rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(basis_points, min_size=0, max_size=40), min_size=1, max_size=6))
def test_padded_rows_equal_the_series_alone(ragged: list[list[float]]) -> None:
    width = max(len(s) for s in ragged)
    rows = np.full((len(ragged), width), np.nan)
    for i, s in enumerate(ragged):
        rows[i, : len(s)] = s
    bench = np.roll(rows, 1, axis=1)  # some other series with the same NaN-free prefix length
    for name, ours in ALL_METRICS:
        got = np.asarray(ours(rows, bench))
        for i, s in enumerate(ragged):
            alone = np.asarray(ours(np.array(s), bench[i, : len(s)]))
            np.testing.assert_allclose(got[i], alone, rtol=1e-12, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_performance_summary_equals_the_single_metrics(seed: int) -> None:
    """The fused kernel the jobs run equals each metric function on ragged, gappy series."""
    rng = np.random.default_rng(seed)
    rows, width = 40, 90
    returns = rng.standard_t(4, size=(rows, width)) * 0.01
    bench = returns * 0.5 + rng.normal(0, 0.01, size=(rows, width))
    lengths = rng.integers(0, width + 1, size=rows)
    returns[np.arange(width)[None, :] >= lengths[:, None]] = np.nan  # ragged: NaN padding
    bench[rng.random((rows, width)) < 0.05] = np.nan  # benchmark gaps
    returns[3, :5] = 0.01  # constant rows and all-positive rows hit the edge rules
    returns[3, 5:] = np.nan
    returns[4, :7] = np.abs(returns[4, :7]) + 1e-4
    returns[4, 7:] = np.nan
    ppy = 252
    got = metrics.performance_summary(returns, bench, periods_per_year=ppy)
    expected = {
        "total_return": metrics.total_return(returns),
        "annual_return": metrics.annual_return(returns, periods_per_year=ppy),
        "annual_volatility": metrics.annual_volatility(returns, periods_per_year=ppy),
        "sharpe": metrics.sharpe_ratio(returns, periods_per_year=ppy),
        "sortino": metrics.sortino_ratio(returns, periods_per_year=ppy),
        "max_drawdown": metrics.max_drawdown(returns),
        "calmar": metrics.calmar_ratio(returns, periods_per_year=ppy),
        "beta": metrics.beta(returns, bench),
        "alpha": metrics.alpha(returns, bench, periods_per_year=ppy),
        "var_95": metrics.value_at_risk(returns),
        "cvar_95": metrics.conditional_value_at_risk(returns),
    }
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-13, atol=0, err_msg=name)
