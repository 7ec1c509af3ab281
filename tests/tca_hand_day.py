"""The hand-built TCA day (2024-03-28, a Thursday, New York on daylight time: UTC-4), shared by
the TCA tests; every expected number is derived in the comments.

Bars start at 14:30 UTC, one a minute: bar k starts 14:30 + k min, covers [start, start + 1 min)
and its bid/ask are the quote at its END (start + 1 min). The prevailing mid at T is the mid of
the last bar with start + 1 min <= T that has a quote.

- AAA, k = 0..34 (the last ends 15:05), file with a vwap column: mid_k = 100 + 0.25 k,
  bid/ask = mid -/+ 0.125, high/low = mid +/- 0.25, open = close = mid, volume_k = 1000 (k + 1),
  vwap_k = mid_k + 0.125.
- BBB, k = 0..9 (the last ends 14:40), file without vwap: mid_k = 50 + 0.5 k, bid/ask =
  mid -/+ 0.25, high/low = mid +/- 1, close = mid + 0.25 (so (high + low + close) / 3 =
  mid + 1/12), volume_k = 100 (k + 1). Bar 7's quote is crossed (bid 53.75 > ask 53.25) and
  bar 8's bid is 0: neither is a quote (crossed_quotes = 2).

Orders (O1, O3 of broker BK1; O2, O4 of BK2):

- O1 AAA BUY 1000, arrival 14:31:30 (inside bar 1), end 14:35:00 (bar 5 starts then), limit 101,
  decision 100, BK1/D1/VWAP; fills F1 14:32:10 400 @ 100.75 NYSE fee 1.0, F2 14:34:20 600 @
  101.25 ARCA fee 1.5 (complete).
- O2 AAA SELL 2000, arrival 14:32:00, end 14:36:30, limit 100.75, no decision, BK2/D1/TWAP;
  fills F3 14:33:00 500 @ 100.625 NYSE fee 0.5, F4 14:35:45 700 @ 101.0 NYSE fee 0.7 (partial).
- O3 BBB BUY 500, arrival 14:29:50 (before the first bar ends: no quote), end 14:33:30, no
  limit, decision 49.5, BK1/D2/IS; no fill.
- O4 BBB BUY 1000, arrival 14:31:00, end 14:39:30, no limit, decision 49, BK2/D2/TWAP; no fill.

Prices (``prices/year=2024``), sessions of XNYS: the 21 before 2024-03-28 are 2024-02-28 ..
2024-03-27 (Feb 28, 29, Mar 1, 4-8, 11-15, 18-22, 25-27); the ADV window is the last 20 of
them (Feb 29 .. Mar 27).

- AAA: Feb 22, 23, 26, 27 close 10, volume 1,000,000 (before the window: a return into Feb 28
  would be +900%); Feb 28 close 100, volume 1,000,000 (in sigma's window, not ADV's); Feb 29 ..
  Mar 27 closes x1.01, x0.99, x1.01, ... from 100, volume 200,000; Mar 28 (the order's date,
  left out) close 1, volume 1e9. ADV = 200,000; the 20 returns are +1%, -1% ten times each:
  mean 0, sigma = sqrt(20 x 0.0001 / 19).
- BBB: Mar 25, 26, 27 only (it uses what it has): closes 50, 51, 50.49, volume 10,000.
  ADV = 10,000; returns +2%, -1%: mean 0.5%, deviations +/-1.5%, sigma = sqrt(2 x 0.015^2 / 1)
  = 0.015 sqrt(2).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.data.schemas import BARS, FILLS, ORDERS, PRICES, arrow_schema

#: The tables of a tca run.
TCA_TABLES = (
    "orders",
    "markouts",
    "by_broker",
    "by_venue",
    "by_desk",
    "by_strategy",
    "by_day",
    "by_time_of_day",
    "by_size",
    "by_volatility",
)
DAY = "2024-03-28"
T0 = pd.Timestamp(f"{DAY} 14:30", tz="UTC")
#: O1's interval is bars 1..4 (bar 0 ends 14:31, before arrival 14:31:30; bar 5 starts at
#: end_ts 14:35 and is left out): vwap 100.375, 100.625, 100.875, 101.125 with volumes 2000,
#: 3000, 4000, 5000 (= 14000): 200750 + 301875 + 403500 + 505625 = 1411750.
V1 = 1411750 / 14000
SIGMA_A = math.sqrt(20 * 0.0001 / 19)
SIGMA_B = 0.015 * math.sqrt(2)
ADV_A, ADV_B = 200_000.0, 10_000.0


def at(text: str) -> pd.Timestamp:
    return pd.Timestamp(f"{DAY} {text}", tz="UTC")


def hand_bars() -> tuple[pd.DataFrame, pd.DataFrame]:
    k = np.arange(35)
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
    k = k[:10]
    mid = 50 + 0.5 * k
    bid, ask = mid - 0.25, mid + 0.25
    bid[7], ask[7] = mid[7] + 0.25, mid[7] - 0.25  # crossed
    bid[8] = 0.0  # no bid
    bbb = pd.DataFrame(
        {
            "symbol": "BBB",
            "ts": ts[:10],
            "open": mid,
            "high": mid + 1,
            "low": mid - 1,
            "close": mid + 0.25,
            "volume": 100.0 * (k + 1),
            "bid": bid,
            "ask": ask,
        }
    )
    return aaa, bbb


def hand_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": ["O1", "O2", "O3", "O4"],
            "date": pd.to_datetime([DAY] * 4),
            "symbol": ["AAA", "AAA", "BBB", "BBB"],
            "side": ["BUY", "SELL", "BUY", "BUY"],
            "quantity": [1000.0, 2000.0, 500.0, 1000.0],
            "arrival_ts": [at("14:31:30"), at("14:32:00"), at("14:29:50"), at("14:31:00")],
            "end_ts": [at("14:35:00"), at("14:36:30"), at("14:33:30"), at("14:39:30")],
            "limit_price": [101.0, 100.75, np.nan, np.nan],
            "broker": ["BK1", "BK2", "BK1", "BK2"],
            "desk": ["D1", "D1", "D2", "D2"],
            "strategy": ["VWAP", "TWAP", "IS", "TWAP"],
            "decision_price": [100.0, np.nan, 49.5, 49.0],
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


def hand_prices() -> pd.DataFrame:
    before = [dt.date(2024, 2, d) for d in (22, 23, 26, 27)]
    window = [dt.date(2024, 2, 29)] + [
        dt.date(2024, 3, d) for d in (1, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 18, 19, 20, 21, 22)
    ]
    window += [dt.date(2024, 3, d) for d in (25, 26, 27)]
    assert len(window) == 20
    closes = [100.0]
    for i in range(20):
        closes.append(closes[-1] * (1.01 if i % 2 == 0 else 0.99))
    aaa_dates = [*before, dt.date(2024, 2, 28), *window, dt.date(2024, 3, 28)]
    aaa_close = [10.0] * 4 + closes + [1.0]
    aaa_volume = [1e6] * 5 + [2e5] * 20 + [1e9]
    bbb_dates = [dt.date(2024, 3, d) for d in (25, 26, 27)]
    frame = pd.DataFrame(
        {
            "symbol": ["AAA"] * len(aaa_dates) + ["BBB"] * 3,
            "date": pd.to_datetime([*aaa_dates, *bbb_dates]),
            "close": [*aaa_close, 50.0, 51.0, 50.49],
            "volume": [*aaa_volume, 1e4, 1e4, 1e4],
        }
    )
    return frame.assign(open=frame["close"], high=frame["close"], low=frame["close"])


def hand_stats() -> pd.DataFrame:
    """The day's ADV and sigma per symbol, as the module docstring derives them."""
    return pd.DataFrame(
        {"symbol": ["AAA", "BBB"], "adv": [ADV_A, ADV_B], "sigma": [SIGMA_A, SIGMA_B]}
    )


def write_hand_day(
    root: Path | str,
    orders: pd.DataFrame | None = None,
    fills: pd.DataFrame | None = None,
    *,
    prices: pd.DataFrame | None = None,
    filesystem: object = None,
) -> None:
    """The hand-built day in the input layout (``date=`` folders; AAA and BBB bars in two
    files, BBB's without vwap; prices in ``year=2024``)."""
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
        "prices/year=2024/part-0.parquet": pa.Table.from_pandas(
            (hand_prices() if prices is None else prices)[arrow_schema(PRICES).names],
            schema=arrow_schema(PRICES),
            preserve_index=False,
        ),
    }
    for rel, table in files.items():
        path = f"{str(root).rstrip('/')}/{rel}"
        if filesystem is None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, filesystem=filesystem)


def _expected_cost(half_spread: float, sigma: float, quantity: float, adv: float) -> float:
    return half_spread + sigma * math.sqrt(quantity / adv) * 1e4  # Y = 1


# Every metric of the four orders, by hand (s = +1 buy, -1 sell; bps = 1e4).
EXPECTED: dict[str, dict[str, float]] = {
    "O1": {
        # arrival 14:31:30 is inside bar 1; the last bar ended by then is bar 0 (14:31): 100
        "arrival_mid": 100.0,
        "interval_vwap": V1,
        "market_volume": 14000.0,
        "end_mid": 101.0,  # end 14:35:00: bar 4 ends exactly then
        "filled_quantity": 1000.0,
        "fill_rate": 1.0,
        "n_fills": 2,
        # (400 * 100.75 + 600 * 101.25) / 1000 = (40300 + 60750) / 1000
        "avg_price": 101.05,
        "notional": 101050.0,
        "order_value": 100000.0,  # 1000 x P_d 100
        "participation": 1000 / 14000,
        "arrival_cost_bps": 1.05 / 100 * 1e4,  # 105
        # 101.05 * 14000 = 1414700: (1414700 - 1411750) / 1411750
        "vwap_slippage_bps": 2950 / 1411750 * 1e4,  # 20.90
        # F1 14:32:10: bar 1 ended 14:32, mid 100.25: 0.5 / 100.25; F2 14:34:20: bar 3, mid
        # 100.75: 0.5 / 100.75; weighted by 400 and 600
        "spread_cost_bps": (400 * 5000 / 100.25 + 600 * 5000 / 100.75) / 1000,
        # S = 1000, P_d = 100, P_0 = 100, P_n = 101
        "is_delay": 0.0,
        "is_trading": 400 * 0.75 + 600 * 1.25,  # 1050
        "is_opportunity": 0.0,
        "is_fees": 2.5,
        "is_total": 1052.5,
        "is_bps": 1052.5 / 100000 * 1e4,  # 105.25
        "is_delay_bps": 0.0,
        "is_trading_bps": 105.0,  # 1050 / 100000
        "is_opportunity_bps": 0.0,
        "is_fees_bps": 0.25,  # 2.5 / 100000
        # last fill 14:34:20 + 5 min = 14:39:20: bar 8 (ended 14:39), mid 102
        "impact_bps": 2 / 100 * 1e4,  # 200
        "adv": ADV_A,
        "sigma": SIGMA_A,
        # bar 0's quote: (100.125 - 99.875) / 2 / 100
        "half_spread_bps": 12.5,
        # 12.5 + sigma_A sqrt(1000 / 200000) 1e4 = 12.5 + 7.25 = 19.75
        "expected_cost_bps": _expected_cost(12.5, SIGMA_A, 1000, ADV_A),
        "cost_vs_expected_bps": 105.25 - _expected_cost(12.5, SIGMA_A, 1000, ADV_A),
    },
    "O2": {
        "arrival_mid": 100.25,  # 14:32:00: bar 1 ends exactly then
        # bars 2..6 (bar 1 ends at arrival: no overlap): vwap 100.625 .. 101.625 with volumes
        # 3000 .. 7000: 301875 + 403500 + 505625 + 608250 + 711375 = 2530625 over 25000
        "interval_vwap": 101.225,
        "market_volume": 25000.0,
        "end_mid": 101.25,  # 14:36:30: bar 5 (ended 14:36)
        "filled_quantity": 1200.0,
        "fill_rate": 0.6,
        "n_fills": 2,
        # (500 * 100.625 + 700 * 101) / 1200 = 121012.5 / 1200
        "avg_price": 100.84375,
        "notional": 121012.5,
        "order_value": 200500.0,  # 2000 x P_0 100.25 (no decision price)
        "participation": 0.048,
        "arrival_cost_bps": -0.59375 / 100.25 * 1e4,  # -59.23: sold above the arrival mid
        "vwap_slippage_bps": 0.38125 / 101.225 * 1e4,  # 37.66: sold below the vwap
        # F3 14:33:00: bar 2 (ended then), mid 100.5: -(100.625 - 100.5) / 100.5; F4 14:35:45:
        # bar 4, mid 101: 0
        "spread_cost_bps": (500 * -1250 / 100.5) / 1200,
        # S = 2000, P_d = P_0 = 100.25, P_n = 101.25
        "is_delay": 0.0,
        "is_trading": -(500 * 0.375 + 700 * 0.75),  # -712.5
        "is_opportunity": -(2000 - 1200) * 1.0,  # -800
        "is_fees": 1.2,
        "is_total": -712.5 - 800 + 1.2,  # -1511.3
        "is_bps": -1511.3 / 200500 * 1e4,  # -75.38: a gain
        "is_delay_bps": 0.0,
        "is_trading_bps": -712.5 / 200500 * 1e4,
        "is_opportunity_bps": -800 / 200500 * 1e4,
        "is_fees_bps": 1.2 / 200500 * 1e4,
        # last fill 14:35:45 + 5 min = 14:40:45 < 15:05: bar 9 (ended 14:40), mid 102.25
        "impact_bps": -2 / 100.25 * 1e4,
        "adv": ADV_A,
        "sigma": SIGMA_A,
        "half_spread_bps": 0.125 / 100.25 * 1e4,  # bar 1's quote
        "expected_cost_bps": _expected_cost(0.125 / 100.25 * 1e4, SIGMA_A, 2000, ADV_A),
        "cost_vs_expected_bps": -1511.3 / 200500 * 1e4
        - _expected_cost(0.125 / 100.25 * 1e4, SIGMA_A, 2000, ADV_A),
    },
    "O3": {
        "arrival_mid": math.nan,  # 14:29:50: no bar has ended
        # bars 0..3 (bar 0 covers the arrival), no vwap column: mid + 1/12 with mids 50, 50.5,
        # 51, 51.5 and volumes 100..400: (5000 + 10100 + 15300 + 20600 + 1000 / 12) / 1000
        "interval_vwap": (51000 + 1000 / 12) / 1000,
        "market_volume": 1000.0,
        "end_mid": 51.0,  # 14:33:30: bar 2
        "filled_quantity": 0.0,
        "fill_rate": 0.0,
        "n_fills": 0,
        "avg_price": math.nan,
        "notional": math.nan,  # filled_quantity x avg_price = 0 x NaN
        "order_value": 24750.0,  # 500 x P_d 49.5: known without a quote
        "participation": 0.0,
        "arrival_cost_bps": math.nan,
        "vwap_slippage_bps": math.nan,
        "spread_cost_bps": math.nan,
        # P_0 unknown: delay and opportunity NaN; no fill: trading 0, fees 0; in bps all four
        # are NaN with their total (so they enter the same aggregates as is_bps)
        "is_delay": math.nan,
        "is_trading": 0.0,
        "is_opportunity": math.nan,
        "is_fees": 0.0,
        "is_total": math.nan,
        "is_bps": math.nan,
        "is_delay_bps": math.nan,
        "is_trading_bps": math.nan,
        "is_opportunity_bps": math.nan,
        "is_fees_bps": math.nan,
        "impact_bps": math.nan,
        "adv": ADV_B,
        "sigma": SIGMA_B,
        "half_spread_bps": math.nan,  # no arrival quote
        "expected_cost_bps": math.nan,
        "cost_vs_expected_bps": math.nan,
    },
    "O4": {
        "arrival_mid": 50.0,  # 14:31:00: bar 0 ends exactly then
        # bars 1..9 (bar 0 ends at arrival; bar 9 starts 14:39 < 14:39:30); volumes 200..1000
        # (5400), sum of v (mid + 1/12) = 100 sum_{k=1..9} (k + 1)(50 + 0.5 k) + 5400 / 12
        # = 100 (0.5 * 285 + 50.5 * 45 + 50 * 9) + 450 = 286500 + 450
        "interval_vwap": 286950 / 5400,
        "market_volume": 5400.0,
        # 14:39:30: bar 8 (no bid) and bar 7 (crossed) are skipped: bar 6, mid 53
        "end_mid": 53.0,
        "filled_quantity": 0.0,
        "fill_rate": 0.0,
        "n_fills": 0,
        "avg_price": math.nan,
        "notional": math.nan,
        "order_value": 49000.0,  # 1000 x 49
        "participation": 0.0,
        "arrival_cost_bps": math.nan,
        "vwap_slippage_bps": math.nan,
        "spread_cost_bps": math.nan,
        # S = 1000, P_d = 49, P_0 = 50, P_n = 53
        "is_delay": 1000.0,
        "is_trading": 0.0,
        "is_opportunity": 3000.0,
        "is_fees": 0.0,
        "is_total": 4000.0,
        "is_bps": 4000 / 49000 * 1e4,  # 816.33
        "is_delay_bps": 1000 / 49000 * 1e4,
        "is_trading_bps": 0.0,
        "is_opportunity_bps": 3000 / 49000 * 1e4,
        "is_fees_bps": 0.0,
        "impact_bps": math.nan,
        "adv": ADV_B,
        "sigma": SIGMA_B,
        "half_spread_bps": 50.0,  # bar 0's quote: 0.25 / 50
        "expected_cost_bps": _expected_cost(50.0, SIGMA_B, 1000, ADV_B),
        "cost_vs_expected_bps": 4000 / 49000 * 1e4 - _expected_cost(50.0, SIGMA_B, 1000, ADV_B),
    },
}
METRIC_NAMES = list(EXPECTED["O1"])
