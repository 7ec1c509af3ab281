"""The TCA kernels on the hand-built day of tests/tca_hand_day.py, every number derived by hand;
and the weighted percentile against an independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.errors import InputError
from analytics.jobs.execution_report import tables as report
from analytics.jobs.tca import aggregate, buckets, kernel, markouts, pretrade
from tests.tca_hand_day import (
    DAY,
    EXPECTED,
    SIGMA_A,
    SIGMA_B,
    V1,
    at,
    hand_bars,
    hand_fills,
    hand_orders,
    hand_prices,
    hand_stats,
)


def assert_close(actual: float, expected: float, what: str) -> None:
    if math.isnan(expected):
        assert math.isnan(actual), f"{what}: {actual} is not NaN"
    else:
        assert actual == pytest.approx(expected, rel=1e-12, abs=1e-12), what


def assert_expected_orders(frame: pd.DataFrame) -> None:
    """``frame`` (one row per order, with order_id) holds the hand-computed numbers."""
    rows = frame.set_index(frame["order_id"].astype(str))
    assert sorted(rows.index) == ["O1", "O2", "O3", "O4"]
    for order_id, expected in EXPECTED.items():
        for name, value in expected.items():
            assert_close(float(rows.loc[order_id, name]), value, f"{order_id}.{name}")


def hand_partition() -> kernel.Partition:
    aaa, bbb = hand_bars()
    bars = pd.concat([aaa, bbb], ignore_index=True)
    return kernel.join(DAY, hand_orders(), hand_fills(), bars, stats=hand_stats())


def test_order_costs_by_hand() -> None:
    p = hand_partition()
    costs = kernel.order_costs(p)
    assert_expected_orders(pd.concat([p.orders[["order_id"]], costs], axis=1))
    assert not costs[[c for c in costs.columns if c.startswith("flag_")]].to_numpy().any()


def test_order_costs_do_not_depend_on_row_order() -> None:
    aaa, bbb = hand_bars()
    bars = pd.concat([bbb, aaa], ignore_index=True).sample(frac=1.0, random_state=1)
    p = kernel.join(
        DAY,
        hand_orders().iloc[::-1],
        hand_fills().sample(frac=1.0, random_state=2),
        bars,
        stats=hand_stats().iloc[::-1],
    )
    assert_expected_orders(pd.concat([p.orders[["order_id"]], kernel.order_costs(p)], axis=1))


def test_venue_slices_by_hand() -> None:
    p = hand_partition()
    slices = kernel.venue_costs(p, kernel.order_costs(p)).set_index(["order_id", "venue"])
    assert sorted(slices.index) == [("O1", "ARCA"), ("O1", "NYSE"), ("O2", "NYSE")]
    # O1 on ARCA is F2 alone: 600 @ 101.25 against arrival 100, vwap V1, prevailing mid 100.75.
    arca = slices.loc[("O1", "ARCA")]
    assert_close(arca["notional"], 60750.0, "notional")
    assert_close(arca["order_value"], 100000 * 600 / 1000, "order value share")
    assert_close(arca["arrival_cost_bps"], 1.25 / 100 * 1e4, "arrival")
    assert_close(arca["vwap_slippage_bps"], (101.25 - V1) / V1 * 1e4, "vwap")
    assert_close(arca["spread_cost_bps"], 5000 / 100.75, "spread")
    # impact and the order-value metrics are the order's.
    for name in ("is_bps", "is_trading_bps", "impact_bps", "expected_cost_bps"):
        assert_close(arca[name], EXPECTED["O1"][name], name)
    # O2 trades on NYSE only: its slice is the order.
    nyse = slices.loc[("O2", "NYSE")]
    for name in ("notional", "order_value", "arrival_cost_bps", "spread_cost_bps"):
        assert_close(nyse[name], EXPECTED["O2"][name], name)
    assert int(nyse["n_fills"]) == 2


def test_execution_columns_by_hand() -> None:
    p = hand_partition()
    costs = kernel.order_costs(p)
    execution, exceptions = report.execution_columns(p, costs)
    rows = execution.set_index(p.orders["order_id"])
    # O1 completes with F2 at 14:34:20, 170 s after arriving at 14:31:30.
    assert rows.loc["O1", "time_to_complete_s"] == 170.0
    assert rows.loc["O1", "time_to_last_fill_s"] == 170.0
    assert rows.loc["O1", "venue_shares"] == "ARCA:0.6000,NYSE:0.4000"
    assert rows.loc["O1", "top_venue"] == "ARCA"
    assert rows.loc["O1", "top_venue_share"] == 0.6
    # O2 (partial) never completes; its last fill is 14:35:45, 225 s after 14:32:00.
    assert math.isnan(rows.loc["O2", "time_to_complete_s"])
    assert rows.loc["O2", "time_to_last_fill_s"] == 225.0
    assert rows.loc["O2", "venue_shares"] == "NYSE:1.0000"
    # Limits: F2 buys 101.25 above O1's 101; F3 sells 100.625 below O2's 100.75.
    assert rows["limit_breaches"].tolist() == [1, 1, 0, 0]
    # Every fill is inside its bar's [low, high] (F1, F2 and F4 on the boundary).
    assert rows["price_anomalies"].tolist() == [0, 0, 0, 0]
    assert rows["fills_without_bar"].tolist() == [0, 0, 0, 0]
    assert rows.loc["O3", "n_venues"] == 0 and rows.loc["O3", "venue_shares"] == ""
    assert exceptions["fill_id"].tolist() == ["F2", "F3"]
    assert exceptions["limit_breach"].all() and not exceptions["price_anomaly"].any()
    # F3 at 14:33:00 is in bar 3 (the bar it trades in, not the quote's): mid 100.75 +/- 0.25.
    assert exceptions.set_index("fill_id").loc["F3", ["bar_low", "bar_high"]].tolist() == [
        100.5,
        101.0,
    ]


def test_price_outside_the_bar_is_an_anomaly() -> None:
    aaa, bbb = hand_bars()
    fills = hand_fills()
    fills.loc[0, "price"] = 100.8  # F1 in bar 2, whose high is 100.75
    p = kernel.join(DAY, hand_orders(), fills, pd.concat([aaa, bbb]))
    execution, exceptions = report.execution_columns(p, kernel.order_costs(p))
    assert execution["price_anomalies"].tolist() == [1, 0, 0, 0]
    assert exceptions.set_index("fill_id").loc["F1", "price_anomaly"]


def test_quote_counts_by_hand() -> None:
    p = hand_partition()
    counts = kernel.flag_counts(p, kernel.order_costs(p))
    # BBB bar 7 (crossed) and bar 8 (bid 0); O3 arrives before any bar has ended.
    assert counts.crossed_quotes == 2
    assert counts.orders_without_arrival_bar == 1
    assert counts.data_checks()["crossed_quote"] == {"decision": "skip", "bars": 2}


@pytest.mark.parametrize(
    ("column", "value", "named"),
    [("low", 100.5, "high, low"), ("close", 100.8, "close"), ("close", 100.2, "close")],
)
def test_inconsistent_bar_is_rejected(column: str, value: float, named: str) -> None:
    aaa, bbb = hand_bars()
    aaa.loc[2, column] = value  # bar 2: mid 100.5, high 100.75, low 100.25
    if column == "low":
        aaa.loc[2, "high"] = 100.4  # high 100.4 < low 100.5
    with pytest.raises(InputError) as err:
        kernel.join(DAY, hand_orders(), hand_fills(), pd.concat([aaa, bbb]))
    text = str(err.value)
    assert "dataset 'bars'" in text and f"column '{named}'" in text, text
    assert "AAA at 2024-03-28 14:32:00" in text


def test_markouts_by_hand() -> None:
    marks = markouts.fill_markouts(hand_partition()).set_index("fill_id")
    # m(T) = the prevailing mid; AAA's last bar ends 15:05 (later horizons: NaN).
    expected = {
        # F1 BUY @ 100.75 at 14:32:10: +1m 14:33:10 bar 2 (100.5); +5m 14:37:10 bar 6 (101.5);
        # +15m 14:47:10 bar 16 (104); +30m 15:02:10 bar 31 (107.75)
        "F1": [-0.25 / 100.75, 0.75 / 100.75, 3.25 / 100.75, 7.0 / 100.75],
        # F2 BUY @ 101.25 at 14:34:20: bars 4 (101), 8 (102), 18 (104.5), 33 (108.25)
        "F2": [-0.25 / 101.25, 0.75 / 101.25, 3.25 / 101.25, 7.0 / 101.25],
        # F3 SELL @ 100.625 at 14:33:00: bars 3 (100.75), 7 (101.75), 17 (104.25), 32 (108)
        "F3": [-0.125 / 100.625, -1.125 / 100.625, -3.625 / 100.625, -7.375 / 100.625],
        # F4 SELL @ 101 at 14:35:45: bars 5 (101.25), 9 (102.25), 19 (104.75); +30m 15:05:45 is
        # after 15:05, the end of AAA's last bar: NaN
        "F4": [-0.25 / 101, -1.25 / 101, -3.75 / 101, math.nan],
    }
    for fill_id, values in expected.items():
        for column, value in zip(markouts.MARKOUT_COLUMNS, values, strict=True):
            assert_close(float(marks.loc[fill_id, column]), value * 1e4, f"{fill_id} {column}")
    assert marks.loc["F3", "broker"] == "BK2" and marks.loc["F2", "venue"] == "ARCA"

    # by venue, weighted by q x price: NYSE = F1 40300, F3 50312.5, F4 70700; ARCA = F2.
    venues = markouts.venue_markouts(marks.reset_index()).set_index("venue")
    w = {"F1": 40300.0, "F3": 50312.5, "F4": 70700.0}
    for i, mean in enumerate(markouts.VENUE_MARKOUT_COLUMNS):
        used = {f: wf for f, wf in w.items() if not math.isnan(expected[f][i])}
        want = sum(wf * expected[f][i] * 1e4 for f, wf in used.items()) / sum(used.values())
        assert_close(float(venues.loc["NYSE", mean]), want, f"NYSE {mean}")
        assert_close(float(venues.loc["ARCA", mean]), expected["F2"][i] * 1e4, f"ARCA {mean}")


def test_price_stats_by_hand() -> None:
    from analytics.sessions import exchange_calendar

    day = pd.Timestamp(DAY).date()
    sessions = [s.date() for s in exchange_calendar("XNYS").sessions_in_range("2024-01-02", DAY)]
    windows = pretrade.session_windows([day], sessions)
    # 42 sessions before Thursday 2024-03-28 (where a symbol's last 21 rows are looked for):
    # 2024-01-29 .. 2024-03-27; the last 21 of them are 2024-02-28 .. 2024-03-27.
    assert (str(windows[day][0]), str(windows[day][-1]), len(windows[day])) == (
        "2024-01-29",
        "2024-03-27",
        42,
    )
    assert str(windows[day][-21]) == "2024-02-28"
    prices = hand_prices()
    one_row = pd.DataFrame(
        {"symbol": ["CCC"], "date": pd.to_datetime(["2024-03-27"]), "close": [5.0], "volume": [7.0]}
    )
    stats = pretrade.price_stats(pd.concat([prices, one_row]), windows)[day].set_index("symbol")
    assert_close(stats.loc["AAA", "adv"], 200_000.0, "AAA adv")
    assert_close(stats.loc["AAA", "sigma"], SIGMA_A, "AAA sigma")
    assert_close(stats.loc["BBB", "adv"], 10_000.0, "BBB adv")
    assert_close(stats.loc["BBB", "sigma"], SIGMA_B, "BBB sigma")
    # CCC: one row, so an ADV of 7 but no return: sigma NaN.
    assert stats.loc["CCC", "adv"] == 7.0 and math.isnan(stats.loc["CCC", "sigma"])
    # DDD has a row on every one of the 42 sessions but 2024-03-15: its sigma is over its own
    # last 21 rows (reaching back to 2024-02-27), 20 returns, not the 19 the last 21 sessions
    # hold. Closes grow by 1 %, 2 %, 3 %, 1 %, 2 %, 3 % ... row after row.
    ddd_days = [d for d in windows[day] if str(d) != "2024-03-15"]
    growth = np.array([1.01, 1.02, 1.03] * 14)[: len(ddd_days)]
    ddd = pd.DataFrame(
        {
            "symbol": "DDD",
            "date": pd.to_datetime([str(d) for d in ddd_days]),
            "close": 100.0 * np.cumprod(growth),
            "volume": 1.0,
        }
    )
    stats = pretrade.price_stats(pd.concat([prices, ddd]), windows)[day].set_index("symbol")
    own = growth[-20:] - 1.0  # the returns between the last 21 rows: the last 20 growths
    assert_close(stats.loc["DDD", "sigma"], float(np.std(own, ddof=1)), "DDD sigma")
    with pytest.raises(InputError, match="repeat a"):
        pretrade.price_stats(pd.concat([prices, prices.iloc[[5]]]), windows)


def test_buckets_by_hand() -> None:
    arrivals = np.array(
        [t.value for t in (at("14:31:30"), at("14:32:00"), at("14:29:50"), at("15:00:00"))]
    )
    # New York is UTC-4 on 2024-03-28: 10:31:30, 10:32, 10:29:50, 11:00 (a bucket's start).
    got = buckets.time_of_day(arrivals, "America/New_York")
    assert list(got.astype(str)) == ["10:30", "10:30", "10:00", "11:00"]
    # Size: 100 q / ADV; lower edges inclusive; no ADV, no bucket.
    pct = buckets.size_pct_adv(
        np.array([1000.0, 2000, 500, 1000, 999, 5]), np.array([2e5, 2e5, 1e4, 1e4, 1e4, np.nan])
    )
    assert list(pct[:5]) == [0.5, 1.0, 5.0, 10.0, 9.99]
    size = buckets.size(pct)
    assert list(size[:5].astype(str)) == ["<1%", "1-5%", "5-10%", ">=10%", "5-10%"]
    assert pd.isna(size[5])
    # Volatility: day 1 sorted 1, 2, 3, 4, 5, 6, 7: edges at positions 6/3 = 2 (3) and 4 (5):
    # 1..3 low (3 equal to the edge), 4, 5 mid, 6, 7 high. Day 2 alone: 10 and 20, edges
    # 10 + 20 x 1/3 ... = 13.33 and 16.67: low and high. NaN: no bucket.
    sigma = np.array([3.0, 1, 2, 7, 5, 4, 6, 10, 20, np.nan])
    days = np.array([1] * 7 + [2, 2, 2])
    vol = buckets.volatility(sigma, days)
    assert list(vol[:9].astype(str)) == [
        "low", "low", "low", "high", "mid", "mid", "high", "low", "high"
    ]  # fmt: skip
    assert pd.isna(vol[9])


# ---------------------------------------------------------------------------------------------
# Aggregates


def test_group_costs_by_hand() -> None:
    p = hand_partition()
    frame = pd.concat([p.orders, kernel.order_costs(p)], axis=1)
    sums = ("notional", "order_value", "is_total")
    desks = aggregate.group_costs(frame, "desk", sums=sums).set_index("desk")
    a1, a2 = EXPECTED["O1"]["arrival_cost_bps"], EXPECTED["O2"]["arrival_cost_bps"]
    w1, w2 = 101050.0, 121012.5
    d1 = desks.loc["D1"]
    assert d1["n_orders"] == 2
    assert_close(d1["notional"], w1 + w2, "notional")
    assert_close(d1["order_value"], 300500.0, "order value")
    assert_close(d1["arrival_cost_bps_mean"], (w1 * a1 + w2 * a2) / (w1 + w2), "mean")
    # a2 < a1; a2's weight share 121012.5 / 222062.5 = 0.545 >= 0.5: p50 = a2; p90 = a1.
    assert_close(d1["arrival_cost_bps_p50"], a2, "p50")
    assert_close(d1["arrival_cost_bps_p90"], a1, "p90")
    # vwap: v1 = 20.90 < v2 = 37.66, v1's share 0.455 < 0.5: p50 = p90 = v2.
    v2 = EXPECTED["O2"]["vwap_slippage_bps"]
    assert_close(d1["vwap_slippage_bps_p50"], v2, "vwap p50")
    assert_close(d1["vwap_slippage_bps_p90"], v2, "vwap p90")
    # impact (notional-weighted): O2's -199.5 then O1's 200.
    i1, i2 = EXPECTED["O1"]["impact_bps"], EXPECTED["O2"]["impact_bps"]
    assert_close(d1["impact_bps_mean"], (w1 * i1 + w2 * i2) / (w1 + w2), "impact")
    # is_bps by order value 100000 and 200500: (1052.5 - 1511.3) / 300500 = -15.27 bps;
    # O2 (-75.38) holds 0.667 of the weight: p50 = O2's, p90 = O1's.
    assert_close(d1["is_bps_mean"], (1052.5 - 1511.3) / 300500 * 1e4, "is mean")
    assert_close(d1["is_bps_p50"], EXPECTED["O2"]["is_bps"], "is p50")
    assert_close(d1["is_bps_p90"], EXPECTED["O1"]["is_bps"], "is p90")
    # D2 is O3 and O4, never filled: notional NaN (summed: 0), no fill-based statistics; their
    # order values weigh the shortfall: O3's is NaN (no arrival quote), so O4's alone.
    d2 = desks.loc["D2"]
    assert d2["n_orders"] == 2 and d2["notional"] == 0.0 and d2["is_total"] == 4000.0
    assert_close(d2["order_value"], 24750.0 + 49000.0, "order value")
    for metric in ("arrival_cost_bps", "vwap_slippage_bps", "spread_cost_bps", "impact_bps"):
        assert math.isnan(d2[f"{metric}_mean"]), metric
    for metric in ("is_bps", "is_delay_bps", "is_opportunity_bps", "expected_cost_bps"):
        for stat in ("mean", "p50", "p90"):
            assert_close(d2[f"{metric}_{stat}"], EXPECTED["O4"][metric], f"D2 {metric} {stat}")


def test_an_unfilled_order_turns_a_brokers_gain_into_its_cost() -> None:
    p = hand_partition()
    frame = pd.concat([p.orders, kernel.order_costs(p)], axis=1)
    brokers = aggregate.group_costs(frame, "broker", sums=()).set_index("broker")
    # BK2 = O2 (partly filled, -1511.3: a gain) and O4 (never filled, +4000 of delay and
    # opportunity): (-1511.3 + 4000) / (200500 + 49000) = +99.75 bps, a cost.
    assert_close(brokers.loc["BK2", "is_bps_mean"], 2488.7 / 249500 * 1e4, "BK2")
    # The four components add up the same way.
    parts = sum(brokers.loc["BK2", f"{c}_mean"] for c in kernel.IS_COMPONENTS)
    assert parts == pytest.approx(2488.7 / 249500 * 1e4, rel=1e-12)
    # Weighted by filled notional (the old rule) O4 would weigh nothing: O2's -75.38, a gain.
    by_notional = {**kernel.METRIC_WEIGHTS, "is_bps": "notional"}
    old = aggregate.group_costs(frame, "broker", sums=(), weights=by_notional)
    assert_close(
        float(old.set_index("broker").loc["BK2", "is_bps_mean"]), -1511.3 / 200500 * 1e4, "old"
    )


def reference_quantile(values: list[float], weights: list[float], q: float) -> float:
    """The smallest value whose cumulative weight share reaches q, by a plain loop."""
    pairs = sorted((v, w) for v, w in zip(values, weights, strict=True) if w > 0)
    total = sum(w for _, w in pairs)
    running = 0.0
    for v, w in pairs:
        running += w
        if running / total >= q:
            return v
    return pairs[-1][0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-50, 50).map(float),
            st.integers(0, 20).map(float),
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([0.1, 0.25, 0.5, 0.9, 1.0]),
)
def test_weighted_quantile_matches_a_plain_loop(pairs: list[tuple[float, float]], q: float) -> None:
    values = [v for v, _ in pairs]
    weights = [w for _, w in pairs]
    got = aggregate.weighted_quantiles(np.array(values), np.array(weights), [q])[0]
    if sum(weights) == 0:
        assert math.isnan(got)
    else:
        assert got == reference_quantile(values, weights, q)


def test_weighted_quantile_equal_weights_is_the_lower_percentile() -> None:
    values = np.array([4.0, 1.0, 3.0, 2.0, np.nan])
    got = aggregate.weighted_quantiles(values, np.ones(5), [0.5, 0.9])
    # NaN is left out; sorted 1, 2, 3, 4: shares 0.25, 0.5, 0.75, 1 -> p50 = 2, p90 = 4
    assert got.tolist() == [2.0, 4.0]
    assert aggregate.weighted_mean(values, np.array([1.0, 1.0, 1.0, 1.0, 5.0])) == 2.5


def test_partition_without_fills_or_bars() -> None:
    # O3 alone, and no bar at all: every market-based metric is NaN, the order is flagged, and
    # the execution columns still come out (no fill, no venue).
    orders = hand_orders().iloc[[2]]
    p = kernel.join(DAY, orders, hand_fills().iloc[[]], hand_bars()[1].iloc[[]])
    costs = kernel.order_costs(p)
    assert costs["flag_no_bars"].tolist() == [True]
    assert costs["filled_quantity"].tolist() == [0.0]
    assert math.isnan(costs["notional"].iloc[0])
    for name in ("arrival_mid", "market_volume", "interval_vwap", "is_total", "impact_bps"):
        assert math.isnan(costs.loc[0, name]), name
    execution, exceptions = report.execution_columns(p, costs)
    assert execution.loc[0, "n_venues"] == 0 and exceptions.empty
    assert kernel.venue_costs(p, costs).empty
    assert kernel.flag_counts(p, costs).orders_without_bars == 1
