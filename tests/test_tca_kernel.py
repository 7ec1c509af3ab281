"""The TCA kernels on a hand-built day, every number derived by hand; and the weighted
percentile against an independent implementation.

The day (2024-03-28), bars from 14:30 UTC, one a minute, k = 0..9 (bar k starts 14:3k and
covers [14:3k, 14:3k + 1 min); the last bar ends at 14:40):

- AAA (file with a vwap column): mid_k = 100 + 0.25 k, bid/ask = mid -/+ 0.125,
  high/low = mid +/- 0.25, open = close = mid, volume_k = 1000 (k + 1), vwap_k = mid_k + 0.125.
- BBB (file without vwap): mid_k = 50 + 0.5 k, bid/ask = mid -/+ 0.25, high/low = mid +/- 1,
  close = mid + 0.25 (so (high + low + close) / 3 = mid + 1/12), volume_k = 100 (k + 1).

Orders:

- O1 AAA BUY 1000, arrival 14:31:30, end 14:35:00, limit 101, decision 100, BK1/D1/VWAP;
  fills F1 14:32:10 400 @ 100.75 NYSE fee 1.0, F2 14:34:20 600 @ 101.25 ARCA fee 1.5 (complete).
- O2 AAA SELL 2000, arrival 14:32:00, end 14:36:30, limit 100.75, no decision, BK2/D1/TWAP;
  fills F3 14:33:00 500 @ 100.625 NYSE fee 0.5, F4 14:35:45 700 @ 101.0 NYSE fee 0.7 (partial).
- O3 BBB BUY 500, arrival 14:30:30, end 14:33:30, no limit, decision 49.5, BK1/D2/IS; no fill.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.data.schemas import BARS, FILLS, ORDERS, arrow_schema
from analytics.jobs.execution_report import tables as report
from analytics.jobs.tca import aggregate, kernel

DAY = "2024-03-28"
T0 = pd.Timestamp(f"{DAY} 14:30", tz="UTC")
V1 = 1819250 / 18000  # O1's interval vwap (below)


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(f"{DAY} {text}", tz="UTC")


def hand_bars() -> tuple[pd.DataFrame, pd.DataFrame]:
    k = np.arange(10)
    ts = [T0 + pd.Timedelta(minutes=int(i)) for i in k]
    mid = 100 + 0.25 * k
    aaa = pd.DataFrame(
        {
            "symbol": "AAA",
            "ts": ts,
            "open": mid,
            "high": mid + 0.25,
            "low": mid - 0.25,
            "close": mid,
            "volume": 1000.0 * (k + 1),
            "bid": mid - 0.125,
            "ask": mid + 0.125,
            "vwap": mid + 0.125,
        }
    )
    mid = 50 + 0.5 * k
    bbb = pd.DataFrame(
        {
            "symbol": "BBB",
            "ts": ts,
            "open": mid,
            "high": mid + 1,
            "low": mid - 1,
            "close": mid + 0.25,
            "volume": 100.0 * (k + 1),
            "bid": mid - 0.25,
            "ask": mid + 0.25,
        }
    )
    return aaa, bbb


def hand_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3"],
            "date": pd.to_datetime([DAY] * 3),
            "symbol": ["AAA", "AAA", "BBB"],
            "side": ["BUY", "SELL", "BUY"],
            "quantity": [1000.0, 2000.0, 500.0],
            "arrival_ts": [at("14:31:30"), at("14:32:00"), at("14:30:30")],
            "end_ts": [at("14:35:00"), at("14:36:30"), at("14:33:30")],
            "limit_price": [101.0, 100.75, np.nan],
            "broker": ["BK1", "BK2", "BK1"],
            "desk": ["D1", "D1", "D2"],
            "strategy": ["VWAP", "TWAP", "IS"],
            "decision_price": [100.0, np.nan, 49.5],
        }
    )


def hand_fills() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "fill_id": ["F1", "F2", "F3", "F4"],
            "order_id": ["O1", "O1", "O2", "O2"],
            "ts": [at("14:32:10"), at("14:34:20"), at("14:33:00"), at("14:35:45")],
            "symbol": ["AAA"] * 4,
            "side": ["BUY", "BUY", "SELL", "SELL"],
            "quantity": [400.0, 600.0, 500.0, 700.0],
            "price": [100.75, 101.25, 100.625, 101.0],
            "venue": ["NYSE", "ARCA", "NYSE", "NYSE"],
            "fee": [1.0, 1.5, 0.5, 0.7],
        }
    )


def write_hand_day(
    root: Path | str,
    orders: pd.DataFrame | None = None,
    fills: pd.DataFrame | None = None,
    *,
    filesystem: object = None,
) -> None:
    """The hand-built day in the input layout (``date=`` folders; AAA and BBB bars in two
    files, BBB's without vwap)."""
    aaa, bbb = hand_bars()
    bars_schema = arrow_schema(BARS)
    files = {
        f"bars/date={DAY}/aaa.parquet": pa.Table.from_pandas(
            aaa, schema=bars_schema, preserve_index=False
        ),
        f"bars/date={DAY}/bbb.parquet": pa.Table.from_pandas(
            bbb,
            schema=arrow_schema(BARS, include_optional=False),
            preserve_index=False,
        ),
        f"orders/date={DAY}/part-0.parquet": pa.Table.from_pandas(
            hand_orders() if orders is None else orders,
            schema=arrow_schema(ORDERS),
            preserve_index=False,
        ),
        f"fills/date={DAY}/part-0.parquet": pa.Table.from_pandas(
            hand_fills() if fills is None else fills,
            schema=arrow_schema(FILLS),
            preserve_index=False,
        ),
    }
    for rel, table in files.items():
        path = f"{str(root).rstrip('/')}/{rel}"
        if filesystem is None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, filesystem=filesystem)


# Every metric of the three orders, by hand (s = +1 buy, -1 sell; bps = 1e4).
EXPECTED: dict[str, dict[str, float]] = {
    "O1": {
        # arrival 14:31:30 -> last bar starting at or before it is k=1: mid 100.25
        "arrival_mid": 100.25,
        # bars starting in [14:31:30, 14:35:00] are k = 2..5 (14:35 included):
        # vwap 100.625, 100.875, 101.125, 101.375; volume 3000, 4000, 5000, 6000 = 18000;
        # sum = 301875 + 403500 + 505625 + 608250 = 1819250
        "interval_vwap": V1,
        "market_volume": 18000.0,
        "end_mid": 101.25,  # bar k=5 starts at 14:35:00 exactly
        "filled_quantity": 1000.0,
        "fill_rate": 1.0,
        "n_fills": 2,
        # (400 * 100.75 + 600 * 101.25) / 1000 = (40300 + 60750) / 1000
        "avg_price": 101.05,
        "notional": 101050.0,
        "participation": 1000 / 18000,
        "arrival_cost_bps": (101.05 - 100.25) / 100.25 * 1e4,  # 79.80
        # 101.05 * 18000 = 1818900: (1818900 - 1819250) / 1819250
        "vwap_slippage_bps": -350 / 1819250 * 1e4,  # -1.92
        # F1 14:32:10 -> bar 2, mid 100.5: 0.25 / 100.5; F2 14:34:20 -> bar 4, mid 101:
        # 0.25 / 101; weighted by 400 and 600
        "spread_cost_bps": (400 * 2500 / 100.5 + 600 * 2500 / 101) / 1000,
        # S = 1000, P_d = 100, P_0 = 100.25, P_n = 101.25
        "is_delay": 1000 * 0.25,  # 250
        "is_trading": 400 * 0.5 + 600 * 1.0,  # 800
        "is_opportunity": 0.0,
        "is_fees": 2.5,
        "is_total": 1052.5,
        "is_bps": 1052.5 / (1000 * 100) * 1e4,  # 105.25
        # last fill 14:34:20 + 5 min = 14:39:20, inside the last bar [14:39, 14:40): mid 102.25
        "impact_bps": 2 / 100.25 * 1e4,  # 199.50
    },
    "O2": {
        "arrival_mid": 100.5,  # arrival 14:32:00 is bar 2's start
        # bars k = 2..6: 1819250 + 7000 * 101.625 = 2530625 over 25000
        "interval_vwap": 101.225,
        "market_volume": 25000.0,
        "end_mid": 101.5,  # 14:36:30 -> bar 6
        "filled_quantity": 1200.0,
        "fill_rate": 0.6,
        "n_fills": 2,
        # (500 * 100.625 + 700 * 101) / 1200 = 121012.5 / 1200
        "avg_price": 100.84375,
        "notional": 121012.5,
        "participation": 0.048,
        "arrival_cost_bps": -0.34375 / 100.5 * 1e4,  # -34.20: sold above the arrival mid
        "vwap_slippage_bps": 0.38125 / 101.225 * 1e4,  # 37.66: sold below the vwap
        # F3 14:33:00 -> bar 3 (starts then), mid 100.75: -(100.625 - 100.75) / 100.75;
        # F4 14:35:45 -> bar 5, mid 101.25: -(101 - 101.25) / 101.25
        "spread_cost_bps": (500 * 1250 / 100.75 + 700 * 2500 / 101.25) / 1200,
        # S = 2000, P_d = P_0 = 100.5 (no decision price), P_n = 101.5
        "is_delay": 0.0,
        "is_trading": -(500 * 0.125 + 700 * 0.5),  # -412.5
        "is_opportunity": -(2000 - 1200) * 1.0,  # -800
        "is_fees": 1.2,
        "is_total": -412.5 - 800 + 1.2,  # -1211.3
        "is_bps": -1211.3 / (2000 * 100.5) * 1e4,  # -60.26
        # last fill 14:35:45 + 5 min = 14:40:45: after the last bar's end (14:40)
        "impact_bps": math.nan,
    },
    "O3": {
        "arrival_mid": 50.0,  # 14:30:30 -> bar 0
        # bars k = 1..3, no vwap column: (h + l + c) / 3 = mid + 1/12 with mids 50.5, 51,
        # 51.5 and volumes 200, 300, 400: (10100 + 15300 + 20600 + 900 / 12) / 900
        "interval_vwap": 46075 / 900,
        "market_volume": 900.0,
        "end_mid": 51.5,
        "filled_quantity": 0.0,
        "fill_rate": 0.0,
        "n_fills": 0,
        "avg_price": math.nan,
        "notional": math.nan,  # filled_quantity x avg_price = 0 x NaN
        "participation": 0.0,
        "arrival_cost_bps": math.nan,
        "vwap_slippage_bps": math.nan,
        "spread_cost_bps": math.nan,
        # S = 500, P_d = 49.5, P_0 = 50, P_n = 51.5
        "is_delay": 500 * 0.5,  # 250
        "is_trading": 0.0,
        "is_opportunity": 500 * 1.5,  # 750
        "is_fees": 0.0,
        "is_total": 1000.0,
        "is_bps": 1000 / (500 * 49.5) * 1e4,  # 404.04
        "impact_bps": math.nan,
    },
}
METRIC_NAMES = list(EXPECTED["O1"])


def assert_close(actual: float, expected: float, what: str) -> None:
    if math.isnan(expected):
        assert math.isnan(actual), f"{what}: {actual} is not NaN"
    else:
        assert actual == pytest.approx(expected, rel=1e-12, abs=1e-12), what


def assert_expected_orders(frame: pd.DataFrame) -> None:
    """``frame`` (one row per order, with order_id) holds the hand-computed numbers."""
    rows = frame.set_index(frame["order_id"].astype(str))
    assert sorted(rows.index) == ["O1", "O2", "O3"]
    for order_id, expected in EXPECTED.items():
        for name, value in expected.items():
            assert_close(float(rows.loc[order_id, name]), value, f"{order_id}.{name}")


def hand_partition() -> kernel.Partition:
    aaa, bbb = hand_bars()
    bars = pd.concat([aaa, bbb], ignore_index=True)
    return kernel.join(DAY, hand_orders(), hand_fills(), bars)


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
    )
    assert_expected_orders(pd.concat([p.orders[["order_id"]], kernel.order_costs(p)], axis=1))


def test_venue_slices_by_hand() -> None:
    p = hand_partition()
    slices = kernel.venue_costs(p, kernel.order_costs(p)).set_index(["order_id", "venue"])
    assert sorted(slices.index) == [("O1", "ARCA"), ("O1", "NYSE"), ("O2", "NYSE")]
    # O1 on ARCA is F2 alone: 600 @ 101.25 against arrival 100.25, vwap V1, mid 101.
    arca = slices.loc[("O1", "ARCA")]
    assert_close(arca["notional"], 60750.0, "notional")
    assert_close(arca["arrival_cost_bps"], 1 / 100.25 * 1e4, "arrival")
    assert_close(arca["vwap_slippage_bps"], (101.25 - V1) / V1 * 1e4, "vwap")
    assert_close(arca["spread_cost_bps"], 2500 / 101, "spread")
    # is_bps and impact_bps are the order's.
    assert_close(arca["is_bps"], 105.25, "is_bps")
    assert_close(arca["impact_bps"], 2 / 100.25 * 1e4, "impact")
    # O2 trades on NYSE only: its slice is the order.
    nyse = slices.loc[("O2", "NYSE")]
    for name in ("notional", "arrival_cost_bps", "vwap_slippage_bps", "spread_cost_bps"):
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
    assert rows["limit_breaches"].tolist() == [1, 1, 0]
    # Every fill is inside its bar's [low, high] (F1, F2 and F4 on the boundary).
    assert rows["price_anomalies"].tolist() == [0, 0, 0]
    assert rows["fills_without_bar"].tolist() == [0, 0, 0]
    assert rows.loc["O3", "n_venues"] == 0 and rows.loc["O3", "venue_shares"] == ""
    assert exceptions["fill_id"].tolist() == ["F2", "F3"]
    assert exceptions["limit_breach"].all() and not exceptions["price_anomaly"].any()
    # F3 at 14:33:00 is in bar 3: mid 100.75 +/- 0.25.
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
    assert execution["price_anomalies"].tolist() == [1, 0, 0]
    assert exceptions.set_index("fill_id").loc["F1", "price_anomaly"]


# ---------------------------------------------------------------------------------------------
# Aggregates


def test_group_costs_by_hand() -> None:
    p = hand_partition()
    frame = pd.concat([p.orders, kernel.order_costs(p)], axis=1)
    desks = aggregate.group_costs(frame, "desk", sums=("notional", "is_total")).set_index("desk")
    a1, a2 = EXPECTED["O1"]["arrival_cost_bps"], EXPECTED["O2"]["arrival_cost_bps"]
    w1, w2 = 101050.0, 121012.5
    d1 = desks.loc["D1"]
    assert d1["n_orders"] == 2
    assert_close(d1["notional"], w1 + w2, "notional")
    assert_close(d1["arrival_cost_bps_mean"], (w1 * a1 + w2 * a2) / (w1 + w2), "mean")
    # a2 < a1; a2's weight share 121012.5 / 222062.5 = 0.545 >= 0.5: p50 = a2; p90 = a1.
    assert_close(d1["arrival_cost_bps_p50"], a2, "p50")
    assert_close(d1["arrival_cost_bps_p90"], a1, "p90")
    # vwap: v1 = -1.92 < v2 = 37.66, v1's share 0.455 < 0.5: p50 = p90 = v2.
    v2 = EXPECTED["O2"]["vwap_slippage_bps"]
    assert_close(d1["vwap_slippage_bps_p50"], v2, "vwap p50")
    assert_close(d1["vwap_slippage_bps_p90"], v2, "vwap p90")
    # impact: O2's is NaN, so O1 alone.
    for stat in ("mean", "p50", "p90"):
        assert_close(d1[f"impact_bps_{stat}"], EXPECTED["O1"]["impact_bps"], stat)
    # D2 is O3 alone, never filled: notional NaN (summed: 0), no weight, NaN statistics; its IS
    # still sums.
    d2 = desks.loc["D2"]
    assert d2["n_orders"] == 1 and d2["notional"] == 0.0 and d2["is_total"] == 1000.0
    assert np.isnan(d2[aggregate.metric_columns()].to_numpy(dtype=float)).all()


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
