"""Probabilistic and deflated Sharpe ratios (:mod:`analytics.stats.sharpe`): a hand-computed
case, an independent implementation (plain loops over the columns with scipy) to 1e-9, sweeps
whose answer is known in advance, the edge rules, and merging chunks of columns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from analytics.stats import sharpe

EULER = 0.5772156649


def _reference_psr(column: np.ndarray, benchmark: float) -> float:
    """The issue's formula, one column at a time, with scipy's moments."""
    r = column[~np.isnan(column)]
    t = len(r)
    sr = np.mean(r) / np.std(r, ddof=1)
    g3 = scipy.stats.skew(r)
    g4 = scipy.stats.kurtosis(r, fisher=False)
    z = (sr - benchmark) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(scipy.stats.norm.cdf(z))


def _reference_sr0(returns: np.ndarray) -> float:
    srs = [np.nanmean(c) / np.nanstd(c, ddof=1) for c in returns.T]
    n = len(srs)
    v = np.var(srs, ddof=1)
    norm = scipy.stats.norm
    return float(
        math.sqrt(v) * ((1 - EULER) * norm.ppf(1 - 1 / n) + EULER * norm.ppf(1 - 1 / (n * math.e)))
    )


def _sweep(seed: int, edge: float = 0.0, days: int = 2520, n: int = 50) -> np.ndarray:
    """Daily returns of ``n`` noise strategies (mean 0, std 1%); column 17 gets ``edge`` a day."""
    r = np.random.default_rng(seed).normal(0.0, 0.01, size=(days, n))
    if edge:
        r[:, 17] += edge
    return r


# ---------------------------------------------------------------------------------------------
# Hand-computed


def test_psr_by_hand() -> None:
    # r = [0.1, -0.05, 0.02]: mean 7/300, std (ddof=1) 13 / (100 sqrt 3), so SR = 7 sqrt(3) / 39.
    # In units of 1/300 the deviations are [23, -22, -1]: m2 = 1014 / 3 = 338, m3 = 1518 / 3 =
    # 506, m4 = 514098 / 3 = 171366, so g4 = 171366 / 338^2 = 1.5 exactly and
    # g3 = 506 / 338^1.5 = 506 / (338 * 13 sqrt 2). T = 3:
    # psr = Phi(SR * sqrt(2) / sqrt(1 - g3 SR + (1.5 - 1) / 4 * SR^2)).
    sr = 7 * math.sqrt(3) / 39
    g3 = 506 / (338 * 13 * math.sqrt(2))
    moments = sharpe.sharpe_moments(np.array([0.1, -0.05, 0.02]))
    assert moments.sharpe[0] == pytest.approx(sr, rel=1e-13)
    assert moments.skew[0] == pytest.approx(g3, rel=1e-12)
    assert moments.kurtosis[0] == pytest.approx(1.5, rel=1e-12)
    assert moments.count.tolist() == [3]
    z = sr * math.sqrt(2) / math.sqrt(1 - g3 * sr + 0.125 * sr**2)
    expected = 0.5 * math.erfc(-z / math.sqrt(2))
    assert sharpe.probabilistic_sharpe(moments)[0] == pytest.approx(expected, rel=1e-13)


def test_expected_max_sharpe_by_hand() -> None:
    # N = 2, daily Sharpe ratios 0.1 and 0.3: V = (0.3 - 0.1)^2 / 2 = 0.02. Phi^-1(1 - 1/2) = 0,
    # so SR0 = sqrt(0.02) * gamma * Phi^-1(1 - 1 / (2e)); 1 - 1/(2e) = 0.81606..., whose normal
    # quantile is 0.90045... (statistics.NormalDist gives it independently of scipy).
    from statistics import NormalDist

    q = NormalDist().inv_cdf(1 - 1 / (2 * math.e))
    assert q == pytest.approx(0.9004, abs=1e-4)
    expected = math.sqrt(0.02) * EULER * q
    assert sharpe.expected_max_sharpe(np.array([0.1, 0.3])) == pytest.approx(expected, rel=1e-12)
    # N = 1: nothing to deflate.
    assert sharpe.expected_max_sharpe(np.array([0.4])) == 0.0


# ---------------------------------------------------------------------------------------------
# Against the independent implementation, on sweeps whose answer is known


@pytest.mark.parametrize("edge", [0.0, 0.0015])
def test_psr_and_dsr_match_the_reference(edge: float) -> None:
    r = _sweep(seed=1, edge=edge)
    moments = sharpe.sharpe_moments(r)
    sr0 = _reference_sr0(r)
    assert sharpe.expected_max_sharpe(moments.sharpe) == pytest.approx(sr0, rel=1e-9, abs=0)
    psr = sharpe.probabilistic_sharpe(moments)
    dsr = sharpe.deflated_sharpe(moments)
    for j, column in enumerate(r.T):
        assert psr[j] == pytest.approx(_reference_psr(column, 0.0), abs=1e-9, rel=0)
        assert dsr[j] == pytest.approx(_reference_psr(column, sr0), abs=1e-9, rel=0)
        assert moments.skew[j] == pytest.approx(scipy.stats.skew(column), rel=1e-9)
        assert moments.kurtosis[j] == pytest.approx(
            scipy.stats.kurtosis(column, fisher=False), rel=1e-9
        )


def test_noise_is_deflated_and_an_edge_is_not() -> None:
    # 50 noise strategies over 10 years: the best one's PSR says "almost surely skilled", the
    # deflation against the expected maximum of 50 draws brings it down to a coin flip, and the
    # typical trial sits far below SR0.
    noise = sharpe.sharpe_moments(_sweep(seed=1))
    psr = sharpe.probabilistic_sharpe(noise)
    dsr = sharpe.deflated_sharpe(noise)
    best = int(np.argmax(noise.sharpe))
    assert psr[best] > 0.95
    assert dsr[best] < 0.9
    assert np.median(dsr) < 0.05
    # One planted edge of 0.15% a day (annual Sharpe ratio about 2.4): DSR near 1 for it only.
    planted = sharpe.sharpe_moments(_sweep(seed=1, edge=0.0015))
    dsr = sharpe.deflated_sharpe(planted)
    assert dsr[17] > 0.999
    assert np.delete(dsr, 17).max() < 0.5


def test_best_noise_dsr_is_a_coin_flip_on_average() -> None:
    # SR0 is the expected maximum of N null Sharpe ratios, so the best null trial's DSR centres
    # near 0.5 rather than near 0: over 20 independent noise sweeps its mean stays in 0.3..0.7
    # while every one of its PSRs is above 0.9.
    best_dsr, best_psr = [], []
    for seed in range(20):
        m = sharpe.sharpe_moments(_sweep(seed=100 + seed))
        best = int(np.argmax(m.sharpe))
        best_dsr.append(sharpe.deflated_sharpe(m)[best])
        best_psr.append(sharpe.probabilistic_sharpe(m)[best])
    assert 0.3 < np.mean(best_dsr) < 0.7
    assert min(best_psr) > 0.9


# ---------------------------------------------------------------------------------------------
# Edge rules


def test_edge_rules() -> None:
    # Columns: constant 0.01 (std 0: SR +inf, skew NaN, psr NaN); two returns (SR defined,
    # psr NaN: T < 3); NaN days skipped (the same as the column without them); all NaN.
    r = np.array(
        [
            [0.01, 0.02, 0.01, np.nan],
            [0.01, -0.01, np.nan, np.nan],
            [0.01, np.nan, -0.02, np.nan],
            [0.01, np.nan, 0.03, np.nan],
            [0.01, np.nan, 0.005, np.nan],
        ]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        m = sharpe.sharpe_moments(r)
    assert m.count.tolist() == [5, 2, 4, 0]
    assert m.sharpe[0] == np.inf and np.isnan(m.skew[0]) and np.isnan(m.kurtosis[0])
    assert m.sharpe[1] == pytest.approx(0.005 / (0.03 / math.sqrt(2)))  # mean 0.005, std 0.0212
    psr = sharpe.probabilistic_sharpe(m)
    assert np.isnan(psr[[0, 1, 3]]).all()
    alone = sharpe.sharpe_moments(np.array([0.01, -0.02, 0.03, 0.005]))
    assert m.sharpe[2] == alone.sharpe[0] and m.skew[2] == pytest.approx(alone.skew[0])
    assert psr[2] == pytest.approx(sharpe.probabilistic_sharpe(alone)[0], rel=1e-14)


def test_dsr_edge_rules() -> None:
    # N = 1: dsr = psr. Infinite ratios are left out of V but counted in N; with fewer than two
    # finite ratios and N > 1, dsr is NaN.
    one = sharpe.sharpe_moments(_sweep(seed=2, n=1, days=300))
    assert np.isfinite(sharpe.probabilistic_sharpe(one)).all()
    np.testing.assert_array_equal(sharpe.deflated_sharpe(one), sharpe.probabilistic_sharpe(one))
    srs = np.array([0.1, np.inf, 0.3, np.nan])
    norm = scipy.stats.norm
    expected = math.sqrt(0.02) * (
        (1 - EULER) * norm.ppf(1 - 1 / 4) + EULER * norm.ppf(1 - 1 / (4 * math.e))
    )
    assert sharpe.expected_max_sharpe(srs) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(sharpe.expected_max_sharpe(np.array([0.1, np.nan])))
    with pytest.raises(ValueError, match="at least one trial"):
        sharpe.expected_max_sharpe(np.array([]))


def test_dsr_of_a_chunk_uses_the_whole_sweep() -> None:
    r = _sweep(seed=3)
    whole = sharpe.deflated_sharpe(sharpe.sharpe_moments(r))
    parts = [sharpe.sharpe_moments(r[:, :20]), sharpe.sharpe_moments(r[:, 20:])]
    merged = sharpe.concat(parts)
    np.testing.assert_array_equal(sharpe.deflated_sharpe(merged), whole)
    # A task holding columns 20.. with the gathered Sharpe ratios of all 50 gets the same.
    chunk = sharpe.deflated_sharpe(parts[1], merged.sharpe)
    np.testing.assert_array_equal(chunk, whole[20:])


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(3, 40), st.integers(1, 5)),
        elements=st.floats(-0.2, 0.2, allow_nan=False),
    ),
    st.floats(0.5, 3.0),
)
def test_sharpe_moments_are_scale_invariant(returns: np.ndarray, scale: float) -> None:
    # Multiplying every return by c > 0 leaves SR, skewness, kurtosis and so psr unchanged.
    with np.errstate(invalid="ignore", divide="ignore"):
        a = sharpe.sharpe_moments(returns)
        b = sharpe.sharpe_moments(returns * scale)
    spread = np.std(returns, axis=0)
    fine = spread > 1e-6 * (np.abs(returns).max(axis=0) + 1e-12)
    np.testing.assert_allclose(b.sharpe[fine], a.sharpe[fine], rtol=1e-9)
    np.testing.assert_allclose(b.skew[fine], a.skew[fine], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(b.kurtosis[fine], a.kurtosis[fine], rtol=1e-9)
