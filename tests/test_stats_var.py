"""analytics.stats.var: EWMA covariance and FHS against plain loops, component ES against the
historical ES, the exception tests against scipy, and the Basel zones at their edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from analytics.jobs.risk import kernel as rk
from analytics.stats import var as sv

LAM = 0.94


def _returns(seed: int, n_days: int, n_cols: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vol = 0.01 * np.exp(np.cumsum(rng.normal(0, 0.05, size=(n_days, 1)), axis=0))
    return vol * rng.standard_t(4, size=(n_days, n_cols)) @ rng.normal(size=(n_cols, n_cols))


# ---------------------------------------------------------------------------------------------
# EWMA covariance and filtered historical simulation, against the recursions written as loops
# ---------------------------------------------------------------------------------------------


def _ewma_loop(returns: np.ndarray, lam: float) -> np.ndarray:
    # S_20 = sample covariance (ddof=1) of days 1..20; S_t = lam S_(t-1) + (1-lam) r_t r_t'.
    s = np.cov(returns[:20], rowvar=False, ddof=1)
    for t in range(20, len(returns)):
        s = lam * s + (1 - lam) * np.outer(returns[t], returns[t])
    return np.atleast_2d(s)


@pytest.mark.parametrize(
    ("n_days", "n_cols", "lam"), [(20, 3, 0.94), (21, 1, 0.94), (300, 5, 0.97)]
)
def test_ewma_covariance_equals_the_recursion(n_days: int, n_cols: int, lam: float) -> None:
    returns = _returns(n_days, n_days, n_cols)
    np.testing.assert_allclose(
        sv.ewma_covariance(returns, lam=lam), _ewma_loop(returns, lam), rtol=1e-10, atol=1e-18
    )


def test_ewma_needs_twenty_days() -> None:
    with pytest.raises(ValueError, match="at least 20 days"):
        sv.ewma_covariance(np.zeros((19, 2)))
    with pytest.raises(ValueError, match="at least 20 days"):
        sv.fhs_returns(np.zeros((19, 2)))


def _fhs_loop(returns: np.ndarray, lam: float) -> np.ndarray:
    n_days, n_cols = returns.shape
    out = np.empty((n_days - 20, n_cols))
    for i in range(n_cols):
        r = [float(x) for x in returns[:, i]]
        mean = sum(r[:20]) / 20
        var = {21: sum((x - mean) ** 2 for x in r[:20]) / 19}  # keyed by 1-based day
        for s in range(21, n_days + 1):
            var[s + 1] = lam * var[s] + (1 - lam) * r[s - 1] ** 2
        today = math.sqrt(var[n_days + 1])
        for s in range(21, n_days + 1):
            sigma = math.sqrt(var[s])
            out[s - 21, i] = r[s - 1] * today / sigma if sigma > 0 else r[s - 1]
    return out


# lam = 0.02 sums the recursion in blocks of 29 days (lam^-u kept under 1e50): several here.
@pytest.mark.parametrize(("n_days", "lam"), [(21, 0.94), (60, 0.94), (250, 0.9), (150, 0.02)])
def test_fhs_rescaling_equals_the_loop(n_days: int, lam: float) -> None:
    returns = _returns(n_days + 1, n_days, 4)
    got = sv.fhs_returns(returns, lam=lam)
    assert got.shape == (n_days - 20, 4)
    np.testing.assert_allclose(got, _fhs_loop(returns, lam), rtol=1e-10, atol=1e-18)


def test_fhs_keeps_the_raw_return_where_sigma_is_zero() -> None:
    # Column 0 is flat for 20 days (sigma_21 = 0), then moves 0.02, 0.0, -0.01 on days 21..23;
    # column 1 is never anything but 0 (every sigma 0).
    returns = np.zeros((23, 2))
    returns[20:, 0] = [0.02, 0.0, -0.01]
    got = sv.fhs_returns(returns, lam=LAM)
    # Day 21: sigma_21 = 0 -> raw 0.02. sigma^2_22 = 0.06 * 0.0004 = 2.4e-5, sigma^2_23 =
    # 0.94 * 2.4e-5 = 2.256e-5, sigma^2_24 = 0.94 * 2.256e-5 + 0.06 * 1e-4 = 2.72064e-5.
    today = math.sqrt(2.72064e-5)
    expected = [0.02, 0.0, -0.01 * today / math.sqrt(2.256e-5)]
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-12)
    assert got[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert np.isfinite(got).all()


def test_ewma_variances_are_the_diagonal_of_the_covariance() -> None:
    returns = _returns(3, 80, 3)
    last = sv.ewma_variances(returns, lam=LAM)[-1]
    np.testing.assert_allclose(last, np.diag(sv.ewma_covariance(returns, lam=LAM)), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Component ES
# ---------------------------------------------------------------------------------------------


def test_component_es_by_hand() -> None:
    # Two holdings, exposures 100 and -50; four scenarios with pnl 100*a - 50*b:
    # (a, b) = (-0.1, 0.0) -> -10; (0.05, 0.1) -> 0; (-0.02, 0.2) -> -12; (0.1, 0.0) -> 10.
    returns = np.array([[-0.1, 0.0], [0.05, 0.1], [-0.02, 0.2], [0.1, 0.0]])
    exposures = np.array([100.0, -50.0])
    # var = 10: the tail pnl <= -10 is scenarios 1 and 3; es = (10 + 12) / 2 = 11.
    # Holding 1 loses 10 and 2 there: 6; holding 2 loses 0 and 10: 5.
    parts = sv.component_es(returns, exposures, 10.0)
    np.testing.assert_allclose(parts, [6.0, 5.0], rtol=1e-12)
    assert parts.sum() == pytest.approx(11.0, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("confidence", [0.95, 0.99, 0.975])
def test_component_es_sums_to_the_historical_es(seed: int, confidence: float) -> None:
    rng = np.random.default_rng(seed)
    n_cols = int(rng.integers(1, 9))
    returns = _returns(seed + 100, int(rng.integers(30, 600)), n_cols)
    exposures = rng.normal(0.0, 1e6, size=n_cols)  # longs and shorts
    risk = rk.historical(returns @ exposures, confidence)
    parts = sv.component_es(returns, exposures, risk.var)
    assert parts.sum() == pytest.approx(risk.es, rel=1e-10)


# ---------------------------------------------------------------------------------------------
# Exception tests against scipy
# ---------------------------------------------------------------------------------------------


def _scipy_tests(hits: np.ndarray, c: float) -> tuple[float, float, float, float, float, float]:
    """Kupiec, Christoffersen and conditional coverage written with scipy's xlogy (0 ln 0 = 0)
    and chi2."""
    n, x, p = len(hits), int(hits.sum()), 1 - c
    log_null = special.xlogy(n - x, 1 - p) + special.xlogy(x, p)
    log_alt = special.xlogy(n - x, 1 - x / n) + special.xlogy(x, x / n)
    pof = -2 * (log_null - log_alt)
    prev, cur = hits[:-1], hits[1:]
    n00 = int(np.sum(~prev & ~cur))
    n01 = int(np.sum(~prev & cur))
    n10 = int(np.sum(prev & ~cur))
    n11 = int(np.sum(prev & cur))
    pi01 = n01 / max(n00 + n01, 1)
    pi11 = n11 / max(n10 + n11, 1)
    pi = (n01 + n11) / max(n - 1, 1)
    log_r = special.xlogy(n00 + n10, 1 - pi) + special.xlogy(n01 + n11, pi)
    log_u = (
        special.xlogy(n00, 1 - pi01)
        + special.xlogy(n01, pi01)
        + special.xlogy(n10, 1 - pi11)
        + special.xlogy(n11, pi11)
    )
    ind = -2 * (log_r - log_u)
    cc = pof + ind
    return (
        pof,
        stats.chi2.sf(pof, 1),
        ind,
        stats.chi2.sf(ind, 1),
        cc,
        stats.chi2.sf(cc, 2),
    )


def _runs() -> np.ndarray:
    hits = np.zeros(250, dtype=bool)
    hits[[40, 41, 42, 43, 120, 121, 200]] = True  # a run of 4, a run of 2, a single
    return hits


SEQUENCES = {
    "none": np.zeros(250, dtype=bool),
    "all": np.ones(250, dtype=bool),
    "one": np.eye(1, 250, 100, dtype=bool)[0],
    "runs": _runs(),
    "last_only": np.eye(1, 30, 29, dtype=bool)[0],
    "alternating": np.arange(40) % 2 == 0,
    "random": np.random.default_rng(1).random(500) < 0.03,
    "single_day": np.array([True]),
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_exception_tests_match_scipy(name: str, confidence: float) -> None:
    hits = SEQUENCES[name]
    pof, pof_p, ind, ind_p, cc, cc_p = _scipy_tests(hits, confidence)
    k = sv.kupiec_pof(hits, confidence)
    i = sv.christoffersen_independence(hits)
    c = sv.conditional_coverage(hits, confidence)
    for got, want in (
        (k.lr, pof),
        (k.p, pof_p),
        (i.lr, ind),
        (i.p, ind_p),
        (c.lr, cc),
        (c.p, cc_p),
    ):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert math.isfinite(got)


def test_exception_tests_by_hand() -> None:
    # None in 250 days at 99%: lr_pof = -2 * 250 * ln(0.99) = 5.0251..., and no exception
    # means no dependence: lr_ind = 0.
    none = SEQUENCES["none"]
    assert sv.kupiec_pof(none, 0.99).lr == pytest.approx(-500 * math.log(0.99), rel=1e-12)
    assert sv.christoffersen_independence(none).lr == 0.0
    assert sv.christoffersen_independence(none).p == 1.0
    # Exactly the expected rate (5 in 500 at 99%, spread out): lr_pof = 0, p = 1.
    spread = np.zeros(500, dtype=bool)
    spread[::100] = True
    assert sv.kupiec_pof(spread, 0.99).lr == pytest.approx(0.0, abs=1e-9)
    # All exceptions: the fitted rate is 1, lr_pof = -2 * 250 * ln(0.01); every transition is
    # 1 -> 1, so pi = pi11 = 1 and lr_ind = 0.
    assert sv.kupiec_pof(SEQUENCES["all"], 0.99).lr == pytest.approx(-500 * math.log(0.01))
    assert sv.christoffersen_independence(SEQUENCES["all"]).lr == 0.0
    # The runs: transitions n00 = 239, n01 = 3, n10 = 3, n11 = 4 (over 249 pairs): clustered,
    # so the independence test rejects.
    assert sv.transition_counts(SEQUENCES["runs"]) == (239, 3, 3, 4)
    assert sv.christoffersen_independence(SEQUENCES["runs"]).p < 1e-4


def test_exception_tests_need_a_sequence() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        sv.kupiec_pof(np.array([], dtype=bool), 0.99)


# ---------------------------------------------------------------------------------------------
# Basel traffic light
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exceptions", "zone"),
    [(0, "green"), (4, "green"), (5, "yellow"), (9, "yellow"), (10, "red"), (250, "red")],
)
def test_basel_zones_for_99_percent_over_250_days(exceptions: int, zone: str) -> None:
    # The Basel table: P(X <= 4) = 89.22% (green), P(X <= 5) = 95.88% (yellow),
    # P(X <= 9) = 99.97% (yellow), P(X <= 10) = 99.99% (red), X ~ Binomial(250, 0.01).
    assert sv.traffic_light(exceptions, 250, 0.99) == zone
    assert sv.traffic_light_bounds(250, 0.99) == (5, 10)


@pytest.mark.parametrize(("n_days", "confidence"), [(250, 0.95), (500, 0.99), (100, 0.975)])
def test_scaled_zones_flip_where_scipy_cumulative_crosses(n_days: int, confidence: float) -> None:
    cdf = stats.binom.cdf(np.arange(n_days + 1), n_days, 1 - confidence)
    yellow = int(np.argmax(cdf >= 0.95))
    red = int(np.argmax(cdf >= 0.9999))
    assert sv.traffic_light_bounds(n_days, confidence) == (yellow, red)
    assert sv.traffic_light(yellow - 1, n_days, confidence) == "green"
    assert sv.traffic_light(yellow, n_days, confidence) == "yellow"
    assert sv.traffic_light(red - 1, n_days, confidence) == "yellow"
    assert sv.traffic_light(red, n_days, confidence) == "red"
    np.testing.assert_allclose(
        [sv.binomial_cdf(k, n_days, 1 - confidence) for k in range(red + 2)],
        cdf[: red + 2],
        rtol=1e-10,
    )


def test_fhs_leaves_gaps_out_of_the_filter() -> None:
    # One holding, daily vol 1.5 %, 60 days: halted on days 30-44 (zero returns standing for no
    # price), then a -8 % gap on day 45. The independent loop: sigma^2 seeded with the sample
    # variance of days 1-20, updated only on days with a return, carried through the halt.
    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.015, (60, 1))
    seen = np.ones((60, 1), dtype=bool)
    r[29:44] = 0.0
    seen[29:44] = False
    r[44] = -0.08
    lam = 0.94
    var = [float(np.var(r[:20, 0], ddof=1))]
    for s in range(20, 60):
        var.append(lam * var[-1] + (1 - lam) * r[s, 0] ** 2 if seen[s, 0] else var[-1])
    sigma = np.sqrt(var)
    expected = r[20:, 0] * sigma[-1] / sigma[:-1]
    got = sv.fhs_returns(r, lam=lam, observed=seen)[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    # Without the mask the halt shrinks sigma (15 days of lam^15 = 0.40 decay), so the gap is
    # blown up by about 1/sqrt(0.40) = 1.6x more than the filtered scenario.
    unmasked = sv.fhs_returns(r, lam=lam)[:, 0]
    assert unmasked[44 - 20] < 1.4 * got[44 - 20] < 0
    # With every day observed the mask changes nothing.
    np.testing.assert_allclose(
        sv.fhs_returns(r, lam=lam, observed=np.ones_like(seen)), sv.fhs_returns(r, lam=lam)
    )
