"""The risk kernels: historical and parametric VaR / ES by hand, Euler components, the
square-root-of-time horizon through ``portfolio_risk``, and scenario returns over gaps."""

from __future__ import annotations

import datetime as dt
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from analytics.jobs.risk import kernel as rk
from analytics.jobs.risk.job import portfolio_risk

EXACT = 1e-12
NORMAL = NormalDist()


def _approx(value: float) -> object:
    return pytest.approx(value, rel=EXACT, abs=1e-15)


# ---------------------------------------------------------------------------------------------
# Historical simulation
# ---------------------------------------------------------------------------------------------

# Ten P&L scenarios, deliberately unsorted; sorted: -10, -4, -1, 2, 3, 5, 8, 9, 12, 20.
PNL = np.array([8.0, -1.0, 20.0, -10.0, 3.0, 12.0, -4.0, 5.0, 2.0, 9.0])


@pytest.mark.parametrize(
    ("confidence", "var", "es"),
    [
        # 1 - c = 0.2: numpy's linear position (n - 1) * 0.2 = 9 * 0.2 = 1.8, between
        # sorted[1] = -4 and sorted[2] = -1: -4 + 0.8 * (-1 - (-4)) = -1.6, so var = 1.6;
        # the tail pnl <= -1.6 is {-10, -4}: es = 7.
        (0.8, 1.6, 7.0),
        # 1 - c = 0.1: position 0.9: -10 + 0.9 * (-4 - (-10)) = -4.6, var = 4.6; tail {-10}.
        (0.9, 4.6, 10.0),
        # 1 - c = 0.05: position 0.45: -10 + 0.45 * 6 = -7.3, var = 7.3; tail {-10}.
        (0.95, 7.3, 10.0),
    ],
)
def test_historical_var_and_es_by_hand(confidence: float, var: float, es: float) -> None:
    risk = rk.historical(PNL, confidence)
    assert risk.var == _approx(var)
    assert risk.es == _approx(es)


def test_historicals_is_historical_at_each_confidence() -> None:
    pnl = np.random.default_rng(4).standard_t(3, size=777)
    confidences = (0.9, 0.95, 0.975, 0.99)
    assert rk.historicals(pnl, confidences) == [rk.historical(pnl, c) for c in confidences]


def test_historical_es_includes_the_scenario_at_the_var() -> None:
    # Nine scenarios, 1 - c = 0.25 (exact in binary): position 8 * 0.25 = 2.0 lands on
    # sorted[2] = -1, so var = 1 and the tail pnl <= -1 is {-10, -4, -1}: es = 15 / 3 = 5.
    pnl = np.array([-1.0, 2.0, -10.0, 3.0, 5.0, -4.0, 8.0, 9.0, 12.0])
    risk = rk.historical(pnl, 0.75)
    assert risk.var == _approx(1.0)
    assert risk.es == _approx(5.0)


# ---------------------------------------------------------------------------------------------
# Parametric (variance-covariance, mean zero)
# ---------------------------------------------------------------------------------------------

ONE = np.array([[0.01], [-0.02], [0.03], [0.0]])
# mean 0.005; deviations 0.005, -0.025, 0.025, -0.005; squares sum to 0.0013;
# sample variance 0.0013 / 3. With exposure 1000: sigma = 1000 * sqrt(0.0013 / 3) = sqrt(1300/3).

TWO = np.array([[0.01, 0.0], [-0.01, 0.01], [0.02, -0.01], [0.0, 0.0]])
TWO_EXPOSURES = np.array([100.0, 200.0])
# Column means 0.005 and 0; deviations A: .005 -.015 .015 -.005, B: 0 .01 -.01 0.
# var A = 0.0005 / 3, var B = 0.0002 / 3, cov = (-0.00015 - 0.00015) / 3 = -0.0001.
# w'Sw = 100^2 * 0.0005/3 + 200^2 * 0.0002/3 + 2 * 100 * 200 * (-0.0001) = 5/3 + 8/3 - 4 = 1/3.
# Sw = [0.05/3 - 0.02, -0.01 + 0.04/3] = [-0.01/3, 0.01/3]; w_i (Sw)_i = [-1/3, 2/3].


def test_covariance_by_hand() -> None:
    expected = np.array([[0.0005 / 3, -0.0001], [-0.0001, 0.0002 / 3]])
    np.testing.assert_allclose(rk.covariance(TWO), expected, rtol=EXACT)
    # One symbol still gives a 1 x 1 matrix.
    np.testing.assert_allclose(rk.covariance(ONE), [[0.0013 / 3]], rtol=EXACT)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_parametric_one_asset_by_hand(confidence: float) -> None:
    z = NORMAL.inv_cdf(confidence)  # 1.6449 at 95%, 2.3263 at 99%
    sigma = math.sqrt(1300 / 3)
    risk, components = rk.parametric(np.array([1000.0]), rk.covariance(ONE), confidence)
    assert risk.var == _approx(z * sigma)
    assert risk.es == _approx(sigma * NORMAL.pdf(z) / (1 - confidence))
    # One position carries the whole VaR: w (S w) / sigma * z = w^2 s^2 / (w s) * z.
    assert components.tolist() == [pytest.approx(z * sigma, rel=EXACT)]


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_parametric_two_assets_by_hand(confidence: float) -> None:
    z = NORMAL.inv_cdf(confidence)
    sigma = math.sqrt(1 / 3)
    risk, components = rk.parametric(TWO_EXPOSURES, rk.covariance(TWO), confidence)
    assert risk.var == _approx(z * sigma)
    assert risk.es == _approx(sigma * NORMAL.pdf(z) / (1 - confidence))
    # Euler: w_i (Sw)_i / sigma * z = [-1/3, 2/3] / sqrt(1/3) * z = [-1, 2] / sqrt(3) * z;
    # the hedge (negative covariance) has a negative component.
    np.testing.assert_allclose(components, np.array([-1.0, 2.0]) / math.sqrt(3) * z, rtol=EXACT)
    assert components.sum() == _approx(risk.var)


@pytest.mark.parametrize("seed", range(5))
def test_euler_components_sum_to_the_parametric_var(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_assets = int(rng.integers(2, 8))
    returns = 0.01 * rng.standard_t(4, size=(250, n_assets)) @ rng.normal(size=(n_assets, n_assets))
    exposures = rng.normal(0.0, 1e6, size=n_assets)  # longs and shorts
    cov = rk.covariance(returns)
    np.testing.assert_allclose(cov, np.cov(returns, rowvar=False), rtol=EXACT)
    risk, components = rk.parametric(exposures, cov, 0.99)
    assert components.sum() == pytest.approx(risk.var, rel=1e-10)
    sigma = math.sqrt(exposures @ cov @ exposures)
    assert risk.var == pytest.approx(NORMAL.inv_cdf(0.99) * sigma, rel=1e-10)


# ---------------------------------------------------------------------------------------------
# Horizons through portfolio_risk
# ---------------------------------------------------------------------------------------------


def _holdings() -> pd.DataFrame:
    # Exposures 1 * 100 = 100 (A) and 4 * 50 = 200 (B): TWO_EXPOSURES.
    return pd.DataFrame({"symbol": ["A", "B"], "quantity": [1.0, 4.0], "close": [100.0, 50.0]})


def test_portfolio_risk_by_hand_and_sqrt_horizon_scaling() -> None:
    # The scenarios hold an extra column and another order: columns are picked by name.
    scenarios = pd.DataFrame({"B": TWO[:, 1], "X": [0.5, -0.5, 0.5, -0.5], "A": TWO[:, 0]})
    as_of = dt.date(2024, 3, 28)
    var_rows, contrib_rows = portfolio_risk(
        "P1", as_of, _holdings(), scenarios, (0.95, 0.99), (1, 10)
    )
    assert len(var_rows) == 2 * 2 * 2  # confidences x horizons x methods
    assert len(contrib_rows) == 2 * 2 * 2  # confidences x horizons x symbols
    rows = {(r["method"], r["confidence"], r["horizon_days"]): r for r in var_rows}
    for c in (0.95, 0.99):
        z = NORMAL.inv_cdf(c)
        sigma = math.sqrt(1 / 3)  # see TWO above
        for h in (1, 10):
            para = rows["parametric", c, h]
            assert para["var"] == _approx(z * sigma * math.sqrt(h))
            assert para["es"] == _approx(sigma * NORMAL.pdf(z) / (1 - c) * math.sqrt(h))
            # Both exposures are long: gross = net = 100 + 200.
            assert para["net"] == para["gross"] == 300.0
            assert para["var_pct"] == _approx(para["var"] / 300.0)
            parts = [r for r in contrib_rows if r["confidence"] == c and r["horizon_days"] == h]
            assert [r["symbol"] for r in parts] == ["A", "B"]
            assert [r["exposure"] for r in parts] == [100.0, 200.0]
            components = [r["component_var"] for r in parts]
            expected = np.array([-1.0, 2.0]) / math.sqrt(3) * z * math.sqrt(h)
            np.testing.assert_allclose(components, expected, rtol=EXACT)
            assert sum(components) == _approx(para["var"])
            assert sum(r["share"] for r in parts) == _approx(1.0)


@pytest.mark.parametrize("horizon", [2, 5, 10, 250])
def test_both_methods_scale_with_the_square_root_of_the_horizon(horizon: int) -> None:
    rng = np.random.default_rng(horizon)
    scenarios = pd.DataFrame(0.01 * rng.standard_t(3, size=(300, 2)), columns=["A", "B"])
    var_rows, _ = portfolio_risk(
        "P", dt.date(2024, 1, 2), _holdings(), scenarios, (0.95, 0.99), (1, horizon)
    )
    rows = {(r["method"], r["confidence"], r["horizon_days"]): r for r in var_rows}
    pnl = scenarios[["A", "B"]].to_numpy() @ TWO_EXPOSURES
    for c in (0.95, 0.99):
        # Historical at one day, straight from numpy.
        var1 = -np.quantile(pnl, 1 - c)
        assert rows["historical", c, 1]["var"] == _approx(var1)
        assert rows["historical", c, 1]["es"] == _approx(-pnl[pnl <= -var1].mean())
        for method in ("historical", "parametric"):
            one, many = rows[method, c, 1], rows[method, c, horizon]
            assert many["var"] == _approx(one["var"] * math.sqrt(horizon))
            assert many["es"] == _approx(one["es"] * math.sqrt(horizon))
            assert many["es"] >= many["var"] > 0


# ---------------------------------------------------------------------------------------------
# Scenario returns over gaps and late listings
# ---------------------------------------------------------------------------------------------


def test_scenario_returns_over_a_gap_and_a_late_listing() -> None:
    nan = np.nan
    closes = np.array(
        [
            # A: a halt on day 2   B: listed on day 2   C: a halt on day 3
            [100.0, nan, 10.0],
            [110.0, nan, 10.5],
            [nan, 50.0, 10.5],
            [121.0, 55.0, nan],
            [121.0, 44.0, 11.025],
        ]
    )
    expected = np.array(
        [
            # A: 110/100 - 1; B: no price yet -> 0; C: 10.5/10 - 1
            [0.1, 0.0, 0.05],
            # A: no price (halt) -> 0; B: first price, nothing to compare -> 0; C: flat
            [0.0, 0.0, 0.0],
            # A: 121/110 - 1 spans the halt; B: 55/50 - 1; C: halt -> 0
            [0.1, 0.1, 0.0],
            # A: flat; B: 44/55 - 1; C: 11.025/10.5 - 1 spans its halt
            [0.0, -0.2, 0.05],
        ]
    )
    got = rk.scenario_returns(closes)
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got, expected, rtol=EXACT, atol=1e-15)
    assert got[1, 0] == 0.0
    assert got[0, 1] == got[1, 1] == 0.0
    # The compounded move is kept: A 121/100, B 44/50, C 11.025/10.
    np.testing.assert_allclose(np.prod(1 + got, axis=0), [1.21, 0.88, 1.1025], rtol=EXACT)
