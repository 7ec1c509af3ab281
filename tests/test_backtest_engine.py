"""The vectorized engine and strategies against hand-worked paths and the plain-loop reference."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import numpy as np
import pytest

from analytics.jobs.backtest import long_only
from analytics.jobs.backtest.engine import Execution, Fill, Workspace, backtest, market
from analytics.jobs.backtest.grid import build_combinations, combination_count, parse_grid
from analytics.jobs.backtest.prices import PriceMatrix, rolling_extreme
from analytics.jobs.backtest.stats import METRICS, TRADE_STATS
from analytics.jobs.backtest.strategies import get, registry
from tests import test_backtest_reference as ref

FILLS: tuple[Fill, ...] = ("next-open", "close")
GRIDS = {
    "sma-cross": ["fast=2,3,5", "slow=4:13:3"],
    "momentum": ["lookback=1,5,10", "rebalance=1,3", "threshold=-0.01,0,0.02"],
    "mean-reversion": ["window=3,5,10", "entry_z=0.5,1.0,1.5", "exit_z=0,0.25"],
    "breakout": ["window=2,5,10"],
}


def _matrix(open_: list[float], close: list[float]) -> PriceMatrix:
    days = np.arange(len(close))
    return PriceMatrix(
        days, np.array(["X"], dtype=object), np.array([open_]).T, np.array([close]).T
    )


@pytest.mark.parametrize("fill", FILLS)
def test_hand_path(fill: Fill) -> None:
    """The 10-day path worked out in tests/test_backtest_reference.py, through the engine."""
    prices = _matrix(ref.HAND_OPEN, ref.HAND_CLOSE)
    combos = {"fast": np.array([2]), "slow": np.array([3])}
    targets = get("sma-cross").positions(prices, combos, False)
    assert targets[:, 0, 0].tolist() == ref.HAND_TARGET
    ex = Execution(fill, False, ref.HAND_FEE, ref.HAND_SLIPPAGE)
    stats = backtest(prices, targets, ex, market(prices, fill))
    for name, expected in ref.HAND_STATS[fill].items():
        assert stats.values[name][0, 0] == pytest.approx(expected, rel=1e-12), name
    # The portfolio part is the day's return of the one symbol: equity_t / equity_t-1 - 1.
    equity = np.asarray(ref.HAND_EQUITY[fill])
    expected_returns = equity / np.r_[1.0, equity[:-1]] - 1
    np.testing.assert_allclose(stats.portfolio[:, 0], expected_returns, rtol=1e-12, atol=1e-15)


def test_hand_path_long_short_reverses() -> None:
    # Targets 0 0 0 -1 -1 1 1 1 -1 -1 filled at the close: short at day 3 (9 * 0.995), cover
    # and buy at day 5 (11 * 1.005), sell and short at day 8 (10 * 0.995): 3 positions opened,
    # 2 closed; the first short gained (9 * 0.995 * 0.99 > 11 * 1.005 * 1.01 is false: a loss),
    # the long lost (9.95 * 0.99 < 11.055 * 1.01).
    prices = _matrix(ref.HAND_OPEN, ref.HAND_CLOSE)
    combos = {"fast": np.array([2]), "slow": np.array([3])}
    targets = get("sma-cross").positions(prices, combos, True)
    ex = Execution("close", True, ref.HAND_FEE, ref.HAND_SLIPPAGE)
    stats = backtest(prices, targets, ex, market(prices, "close"))
    run = ref.execute(
        ref.HAND_OPEN, ref.HAND_CLOSE, targets[:, 0, 0], fill="close", fee=0.01, slippage=0.005
    )
    assert (run.n_trades, run.n_closed, run.n_wins) == (3, 2, 0)
    assert stats.values["n_trades"][0, 0] == 3
    assert stats.values["win_rate"][0, 0] == 0.0
    assert stats.values["total_return"][0, 0] == pytest.approx(run.equity[-1] - 1, rel=1e-12)


def _random_prices(seed: int, days: int = 150, symbols: int = 6) -> PriceMatrix:
    """Random walks with the holes real data has: a late listing, halts, an early end, and a
    symbol with a single row."""
    rng = np.random.default_rng(seed)
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, (days, symbols)), axis=0))
    open_ = np.r_[close[:1], close[:-1]] * np.exp(rng.normal(0, 0.01, (days, symbols)))
    close[:37, 1] = np.nan  # listed on day 37
    close[rng.choice(np.arange(5, days - 5), 8, replace=False), 2] = np.nan  # halts
    close[days - 23 :, 3] = np.nan  # last row 23 days before the end
    close[np.r_[0:60, 61:days], 4] = np.nan  # a single row
    halts = np.array([20, 21, 50, 90])
    close[halts, 5] = np.nan  # two consecutive halts, then single ones
    open_[np.isnan(close)] = np.nan
    names = np.array([f"S{i}" for i in range(symbols)], dtype=object)
    return PriceMatrix(np.arange(days) + 19_000, names, open_, close)


def _check_against_reference(
    prices: PriceMatrix, strategy: str, combos: Mapping[str, np.ndarray], ex: Execution
) -> None:
    targets = get(strategy).positions(prices, combos, ex.long_short)
    stats = backtest(prices, targets, ex, market(prices, ex.fill), Workspace())
    k_count = combination_count(combos)
    portfolio = np.zeros((prices.shape[0], k_count))
    for s in range(prices.shape[1]):
        rows = np.flatnonzero(prices.valid[:, s])
        o, c = prices.open[rows, s].tolist(), prices.close[rows, s].tolist()
        for k in range(k_count):
            params = {name: values[k] for name, values in combos.items()}
            target = ref.targets(strategy, c, params, ex.long_short)
            run = ref.execute(o, c, target, fill=ex.fill, fee=ex.fee, slippage=ex.slippage)
            portfolio[rows, k] += run.returns
            expected = ref.statistics(run)
            for name in (*METRICS, *TRADE_STATS):
                got = float(stats.values[name][k, s])
                want = expected[name]
                where = f"{strategy} {ex} {params} symbol {s}: {name}"
                if math.isnan(want) or math.isinf(want):
                    assert got == want or (math.isnan(got) and math.isnan(want)), where
                else:
                    assert got == pytest.approx(want, rel=1e-9, abs=1e-10), where
    np.testing.assert_allclose(stats.portfolio, portfolio, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("strategy", sorted(GRIDS))
@pytest.mark.parametrize("long_short", [False, True])
@pytest.mark.parametrize("fill", FILLS)
def test_engine_agrees_with_the_day_loop(
    strategy: str, long_short: bool, fill: Fill, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long-only blocks stream through slices of days: 8-day slices here, so that fills, halts
    # and drawdowns straddle slice boundaries.
    monkeypatch.setattr(long_only, "SLICE_BYTES", 1)
    combos = build_combinations(get(strategy), [parse_grid(g) for g in GRIDS[strategy]])
    seed = zlib.crc32(f"{strategy}{long_short}{fill}".encode()) % 1000
    ex = Execution(fill, long_short, fee=0.0007, slippage=0.0011)
    _check_against_reference(_random_prices(seed), strategy, combos, ex)


def test_every_strategy_is_tested() -> None:
    assert set(registry()) == set(GRIDS)


def test_one_slice_and_many_slices_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    prices = _random_prices(11)
    combos = build_combinations(get("sma-cross"), [parse_grid(g) for g in GRIDS["sma-cross"]])
    ex = Execution("next-open", False, 0.001, 0.002)
    targets = get("sma-cross").positions(prices, combos, False)
    one = backtest(prices, targets, ex, market(prices, ex.fill))
    monkeypatch.setattr(long_only, "SLICE_BYTES", 1)
    many = backtest(prices, targets, ex, market(prices, ex.fill))
    for name, values in one.values.items():
        np.testing.assert_allclose(many.values[name], values, rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(many.portfolio, one.portfolio, rtol=1e-12, atol=1e-15)


def test_zero_costs_and_never_trading() -> None:
    prices = _random_prices(5)
    # A slow window longer than the history: never in the market, every return 0.
    combos = {"fast": np.array([2, 3]), "slow": np.array([500, 4])}
    ex = Execution("close", False, 0.0, 0.0)
    _check_against_reference(prices, "sma-cross", combos, ex)
    stats = backtest(
        prices, get("sma-cross").positions(prices, combos, False), ex, market(prices, "close")
    )
    assert np.all(stats.values["total_return"][0, prices.counts >= 2] == 0.0)
    assert np.all(np.isnan(stats.values["sharpe"][0]))  # 0 / 0 std, as analytics.stats.metrics
    assert np.all(stats.values["n_trades"][0] == 0)


def test_rolling_extreme_matches_a_window_scan() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(47, 3))
    for window in (1, 2, 5, 7, 47, 60):
        want = np.array(
            [[x[max(0, i - window + 1) : i + 1, j].max() for j in range(3)] for i in range(47)]
        )
        np.testing.assert_array_equal(rolling_extreme(x, window, high=True), want)
        np.testing.assert_array_equal(rolling_extreme(-x, window, high=False), -want)


def test_sma_matches_a_plain_mean_on_long_drifting_history() -> None:
    # Ten years of a price that drifts far from its mean: the running sums must not drift.
    rng = np.random.default_rng(2)
    close = 100 * np.exp(np.cumsum(rng.normal(0.001, 0.02, (2520, 2)), axis=0))
    prices = PriceMatrix(np.arange(2520), np.array(["A", "B"], dtype=object), close, close)
    for window in (5, 200):
        got = prices.sma(window)
        mean = np.nanmean(close, axis=0)
        for i in (window - 1, 1000, 2519):
            want = close[i - window + 1 : i + 1].mean(axis=0) - mean
            np.testing.assert_allclose(got[i], want, rtol=0, atol=1e-9)


def test_combinations_left_out_by_the_rule_are_said(caplog: pytest.LogCaptureFixture) -> None:
    """A grid value whose combinations all break the strategy's rule is not dropped silently.

    sma-cross keeps fast < slow: of fast 10,50 x slow 20,40 it keeps (10,20) and (10,40) and
    leaves out (50,20) and (50,40): 2 of 4. xs-momentum keeps skip < lookback: with the default
    skip 21, lookback 20 breaks it, so lookback 20,40,60 x quantile 0.2,0.5 leaves out 2 of 6.
    """
    from analytics.jobs.portfolio_backtest.families import combinations

    caplog.set_level("WARNING")
    combos = build_combinations(get("sma-cross"), ["fast=10,50", "slow=20,40"], say_refused=True)
    assert combination_count(combos) == 2
    portfolio = combinations(
        "xs-momentum", ["lookback=20,40,60", "quantile=0.2,0.5"], say_refused=True
    )
    assert combination_count(portfolio) == 4
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert said == [
        "--grid: 2 of 4 combinations break sma-cross's rule fast < slow and are left out; 2 run",
        "--grid: 2 of 6 combinations break xs-momentum's rule skip < lookback and are left out; "
        "4 run",
    ]
    caplog.clear()
    build_combinations(get("sma-cross"), ["fast=10,50", "slow=20,40"])  # the job's own calls
    assert not caplog.records


def test_indicators_of_a_dense_matrix_equal_those_with_a_halt_elsewhere() -> None:
    """A matrix where every symbol trades every day skips the calendar gather: its indicators
    must be bit for bit those of the gathering path. Symbol C's halt makes the second matrix
    not dense; A and B are the same in both, so their columns must agree exactly."""
    rng = np.random.default_rng(3)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (120, 3)), axis=0))
    names = np.array(["A", "B", "C"], dtype=object)
    dense = PriceMatrix(np.arange(120), names, close, close)
    halted = close.copy()
    halted[40:45, 2] = np.nan
    gapped = PriceMatrix(np.arange(120), names, halted, halted)
    assert dense.dense and not gapped.dense
    for window in (3, 20):
        np.testing.assert_array_equal(dense.sma(window)[:, :2], gapped.sma(window)[:, :2])
        np.testing.assert_array_equal(dense.zscore(window)[:, :2], gapped.zscore(window)[:, :2])
        high, low = dense.channel(window)
        g_high, g_low = gapped.channel(window)
        np.testing.assert_array_equal(high[:, :2], g_high[:, :2])
        np.testing.assert_array_equal(low[:, :2], g_low[:, :2])
    np.testing.assert_array_equal(dense.close_filled, close)
