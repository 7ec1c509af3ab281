"""``tca`` and ``execution-report`` end to end through the CLI: the hand-built day of
tests/test_tca_kernel.py with one worker, on the shared two-worker cluster and through S3 (the
same numbers every time), and the generated market against an independent per-order loop."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from analytics.jobs.tca.kernel import COST_METRICS
from analytics.jobs.tca.markouts import VENUE_MARKOUT_COLUMNS
from analytics.sessions import exchange_calendar
from tests.conftest import MARKET_END, read_manifest, run_cli
from tests.tca_hand_day import DAY, EXPECTED, TCA_TABLES, write_hand_day
from tests.test_tca_kernel import assert_close, assert_expected_orders, reference_quantile

XNYS = exchange_calendar("XNYS")
REPORT_TABLES = ("orders", "fill_exceptions", "desk_daily", "broker_daily")


def read_table(output: str, table: str) -> pd.DataFrame:
    """A run's table with its own columns (without run_id, which differs between runs)."""
    if output.startswith("s3://"):
        fs = s3fs.S3FileSystem()
        frame = pq.read_table(f"{output.removeprefix('s3://')}/{table}", filesystem=fs)
        return frame.to_pandas().drop(columns="run_id")
    return pd.read_parquet(f"{output}/{table}").drop(columns="run_id")


def sorted_table(output: str, table: str) -> pd.DataFrame:
    frame = read_table(output, table)
    keys = ["order_id", "fill_id", "date", "broker", "desk", "strategy", "venue", "bucket"]
    keys = [k for k in keys if k in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True)


def run_job(job: str, root: str, out: str, *extra: str) -> None:
    result = run_cli([job, "--input", root, "--output", out, "--date", DAY, *extra])
    assert result.code == 0, result.stderr


@pytest.fixture(scope="module")
def hand_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("hand") / "in"
    write_hand_day(root)
    return str(root)


@pytest.fixture(scope="module")
def one_worker(hand_root: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The hand-built day's TCA on a LocalCluster of one single-threaded worker."""
    out = str(tmp_path_factory.mktemp("tca1") / "run")
    run_job("tca", hand_root, out, "--workers", "1", "--run-id", "one")
    return out


def test_tca_hand_day_one_worker(one_worker: str) -> None:
    orders = read_table(one_worker, "orders")
    assert_expected_orders(orders)
    assert not orders[[c for c in orders.columns if c.startswith("flag_")]].to_numpy().any()
    manifest = read_manifest(one_worker)
    assert manifest is not None
    assert set(manifest["outputs"]) == set(TCA_TABLES)
    assert len(manifest["inputs"]["prices"]["files"]) == 1
    summary = manifest["summary"]
    assert (summary["orders"], summary["fills"], summary["symbols"]) == (4, 4, 2)
    assert summary["dates"] == [DAY]
    assert summary["buckets"] == 2  # two per thread, one thread
    # O3 arrives before any bar has ended; BBB's bars 7 (crossed) and 8 (bid 0) are skipped.
    assert (summary["orders_without_arrival_bar"], summary["crossed_quotes"]) == (1, 2)
    assert summary["symbols_without_adv"] == {}
    assert summary["impact_coefficient"] == 1.0
    checks = summary["data_checks"]
    assert checks["fill_without_order"] == {"decision": "reject"}
    assert checks["crossed_quote"] == {"decision": "skip", "bars": 2}
    assert checks["overfilled_order"] == {
        "decision": "flag",
        "flag_column": "flag_overfilled",
        "orders": 0,
    }

    # by_broker: BK1 = O1 + O3 (O3 never filled: notional NaN, no weight; its is_bps is NaN
    # for want of an arrival quote), so every statistic is O1's.
    brokers = read_table(one_worker, "by_broker").set_index("broker")
    assert brokers["n_orders"].to_dict() == {"BK1": 2, "BK2": 2}
    assert_close(brokers.loc["BK1", "notional"], 101050.0, "notional")
    assert_close(brokers.loc["BK1", "order_value"], 100000.0 + 24750.0, "order_value")
    assert_close(brokers.loc["BK1", "is_total"], 1052.5, "is_total")  # NaN skipped
    for metric in COST_METRICS:
        for stat in ("mean", "p50", "p90"):
            want = EXPECTED["O1"][metric]
            assert_close(brokers.loc["BK1", f"{metric}_{stat}"], want, f"BK1 {metric} {stat}")
    # BK2 = O2 (-1511.3, a gain) + O4 (unfilled, +4000): +99.75 bps, a cost.
    assert_close(brokers.loc["BK2", "is_bps_mean"], 2488.7 / 249500 * 1e4, "BK2 is_bps")
    # by_day: is_bps over O1 (100000), O2 (200500), O4 (49000) by order value, sorted
    # -75.38, 105.25, 816.33: shares 0.574, 0.860, 1: p50 = O2's, p90 = O4's.
    day = read_table(one_worker, "by_day")
    assert len(day) == 1 and day.loc[0, "n_orders"] == 4 and day.loc[0, "n_fills"] == 4
    assert_close(day.loc[0, "is_bps_mean"], (1052.5 - 1511.3 + 4000) / 349500 * 1e4, "mean")
    assert_close(day.loc[0, "is_bps_p50"], EXPECTED["O2"]["is_bps"], "p50")
    assert_close(day.loc[0, "is_bps_p90"], EXPECTED["O4"]["is_bps"], "p90")
    # by_venue: NYSE = F1 (O1's slice, 40300) + O2 (F3, F4: 121012.5); ARCA = F2 (60750).
    venues = read_table(one_worker, "by_venue").set_index("venue")
    assert venues["n_orders"].to_dict() == {"ARCA": 1, "NYSE": 2}
    assert venues["n_fills"].to_dict() == {"ARCA": 1, "NYSE": 3}
    assert_close(venues.loc["NYSE", "notional"], 161312.5, "notional")
    # NYSE's order value: 400 / 1000 of O1's 100000 and all of O2's 200500.
    assert_close(venues.loc["NYSE", "order_value"], 40000.0 + 200500.0, "order value")
    nyse_o1 = 0.75 / 100 * 1e4  # F1 100.75 against the arrival mid 100
    o2 = EXPECTED["O2"]["arrival_cost_bps"]
    assert_close(
        venues.loc["NYSE", "arrival_cost_bps_mean"],
        (40300 * nyse_o1 + 121012.5 * o2) / 161312.5,
        "NYSE mean",
    )
    # O2 (-59.2) carries 0.75 of NYSE's weight: p50 = O2's, p90 = O1's slice.
    assert_close(venues.loc["NYSE", "arrival_cost_bps_p50"], o2, "NYSE p50")
    assert_close(venues.loc["NYSE", "arrival_cost_bps_p90"], nyse_o1, "NYSE p90")
    # ARCA is F2 alone: its 1-minute markout, -0.25 / 101.25 (tests/test_tca_kernel.py).
    assert_close(venues.loc["ARCA", "markout_1m_bps_mean"], -0.25 / 101.25 * 1e4, "markout")
    assert list(venues.columns[-4:]) == list(VENUE_MARKOUT_COLUMNS)
    marks = read_table(one_worker, "markouts").set_index("fill_id")
    assert_close(marks.loc["F4", "markout_5m_bps"], -1.25 / 101 * 1e4, "F4 5m")
    assert math.isnan(marks.loc["F4", "markout_30m_bps"])  # 15:05:45, after AAA's last bar

    # Buckets (tests/test_tca_kernel.py): O3 arrives 10:29:50 New York time, the others
    # 10:31 .. 10:32; sizes 0.5%, 1%, 5%, 10% of ADV; sigma: AAA's (O1, O2) is the 1/3 edge,
    # BBB's (O3, O4) the 2/3 edge, each in the lower bucket.
    tod = read_table(one_worker, "by_time_of_day").set_index("bucket")
    assert tod["n_orders"].to_dict() == {"10:00": 1, "10:30": 3}
    size = read_table(one_worker, "by_size")
    assert size["bucket"].tolist() == ["<1%", "1-5%", "5-10%", ">=10%"]
    assert size["n_orders"].tolist() == [1, 1, 1, 1]
    assert_close(size.loc[3, "is_bps_mean"], EXPECTED["O4"]["is_bps"], "O4 alone")
    vol = read_table(one_worker, "by_volatility").set_index("bucket")
    assert vol["n_orders"].to_dict() == {"low": 2, "mid": 2}
    assert_close(vol.loc["low", "is_bps_mean"], (1052.5 - 1511.3) / 300500 * 1e4, "low")
    assert_close(
        vol.loc["mid", "expected_cost_bps_mean"], EXPECTED["O4"]["expected_cost_bps"], "mid"
    )


def test_impact_coefficient_and_missing_prices(
    hand_root: str, tmp_path: Path, scheduler: str
) -> None:
    import shutil

    root = tmp_path / "in"
    shutil.copytree(hand_root, root)
    # Prices of AAA only: BBB's orders get no ADV (listed), and so no size bucket.
    prices = pd.read_parquet(root / "prices")
    prices = prices[prices["symbol"].astype(str) == "AAA"]
    pq.write_table(
        pa.Table.from_pandas(prices.drop(columns=["year"], errors="ignore"), preserve_index=False),
        root / "prices" / "year=2024" / "part-0.parquet",
    )
    out = str(tmp_path / "run")
    run_job("tca", str(root), out, "--scheduler", scheduler, "--impact-coefficient", "2.5")
    manifest = read_manifest(out)
    assert manifest is not None
    assert manifest["summary"]["symbols_without_adv"] == {DAY: ["BBB"]}
    assert manifest["summary"]["impact_coefficient"] == 2.5
    orders = read_table(out, "orders").set_index("order_id")
    # O1: 12.5 + 2.5 x sigma_A x sqrt(1000 / 200000) x 1e4
    from tests.tca_hand_day import SIGMA_A

    want = 12.5 + 2.5 * SIGMA_A * math.sqrt(0.005) * 1e4
    assert_close(orders.loc["O1", "expected_cost_bps"], want, "Y = 2.5")
    assert math.isnan(orders.loc["O4", "adv"]) and math.isnan(orders.loc["O4", "expected_cost_bps"])
    assert read_table(out, "by_size")["bucket"].tolist() == ["<1%", "1-5%"]


def test_tca_same_numbers_on_two_workers(
    one_worker: str, hand_root: str, tmp_path: Path, scheduler: str
) -> None:
    out = str(tmp_path / "run")
    run_job("tca", hand_root, out, "--scheduler", scheduler)
    manifest = read_manifest(out)
    assert manifest is not None and manifest["summary"]["buckets"] == 4
    for table in TCA_TABLES:
        pd.testing.assert_frame_equal(
            sorted_table(out, table), sorted_table(one_worker, table), rtol=1e-12, atol=0
        )


def test_tca_and_report_through_s3(
    one_worker: str, hand_root: str, s3_bucket: str, scheduler: str, tmp_path: Path
) -> None:
    write_hand_day(f"{s3_bucket}/in", filesystem=s3fs.S3FileSystem())
    out = f"s3://{s3_bucket}/runs/tca"
    run_job("tca", f"s3://{s3_bucket}/in", out, "--scheduler", scheduler)
    for table in TCA_TABLES:
        pd.testing.assert_frame_equal(
            sorted_table(out, table), sorted_table(one_worker, table), rtol=1e-12, atol=0
        )
    manifest = read_manifest(out)
    assert manifest is not None
    assert all(
        f["url"].startswith(f"s3://{s3_bucket}/in/") for f in manifest["inputs"]["bars"]["files"]
    )

    s3_report = f"s3://{s3_bucket}/runs/report"
    local_report = str(tmp_path / "report")
    run_job("execution-report", f"s3://{s3_bucket}/in", s3_report, "--scheduler", scheduler)
    run_job("execution-report", hand_root, local_report, "--scheduler", scheduler)
    for table in REPORT_TABLES:
        pd.testing.assert_frame_equal(
            sorted_table(s3_report, table), sorted_table(local_report, table), rtol=1e-12, atol=0
        )
    with s3fs.S3FileSystem().open(f"{s3_bucket}/runs/report/report.txt", "r") as handle:
        assert handle.read() == Path(local_report, "report.txt").read_text()


def test_execution_report_hand_day(hand_root: str, tmp_path: Path, scheduler: str) -> None:
    out = str(tmp_path / "run")
    run_job("execution-report", hand_root, out, "--scheduler", scheduler)
    orders = read_table(out, "orders").set_index("order_id")
    assert orders.loc["O1", "time_to_complete_s"] == 170.0
    assert orders.loc["O1", "first_fill_ts"] == pd.Timestamp(f"{DAY} 14:32:10", tz="UTC")
    assert orders.loc["O2", "last_fill_ts"] == pd.Timestamp(f"{DAY} 14:35:45", tz="UTC")
    assert pd.isna(orders.loc["O3", "first_fill_ts"])
    assert orders["venue_shares"].to_dict() == {
        "O1": "ARCA:0.6000,NYSE:0.4000",
        "O2": "NYSE:1.0000",
        "O3": "",
        "O4": "",
    }
    assert orders["limit_breaches"].to_dict() == {"O1": 1, "O2": 1, "O3": 0, "O4": 0}
    assert orders["order_value"].to_dict() == {
        "O1": 100000.0,
        "O2": 200500.0,
        "O3": 24750.0,
        "O4": 49000.0,
    }
    assert_close(orders.loc["O2", "fees"], 1.2, "fees")
    exceptions = read_table(out, "fill_exceptions")
    assert sorted(exceptions["fill_id"]) == ["F2", "F3"]

    # desk D1 = O1 + O2: 3000 ordered, 2200 filled, O1 complete in 170 s, 2 breaches.
    desks = read_table(out, "desk_daily").set_index("desk")
    d1 = desks.loc["D1"]
    assert (d1["n_orders"], d1["n_filled_orders"], d1["n_complete_orders"], d1["n_fills"]) == (
        2,
        2,
        1,
        4,
    )
    assert_close(d1["fill_rate"], 2200 / 3000, "fill_rate")
    assert_close(d1["is_total"], 1052.5 - 1511.3, "is_total")
    assert_close(d1["order_value"], 300500.0, "order_value")
    # is_bps by order value: (1052.5 - 1511.3) / (100000 + 200500)
    assert_close(d1["is_bps"], -458.8 / 300500 * 1e4, "is_bps")
    assert_close(d1["median_time_to_complete_s"], 170.0, "median")
    assert d1["limit_breaches"] == 2
    w1, w2 = 101050.0, 121012.5
    a1, a2 = EXPECTED["O1"]["arrival_cost_bps"], EXPECTED["O2"]["arrival_cost_bps"]
    assert_close(d1["arrival_cost_bps"], (w1 * a1 + w2 * a2) / (w1 + w2), "arrival")
    d2 = desks.loc["D2"]  # O3 and O4, no fill
    assert (d2["n_filled_orders"], d2["fill_rate"], d2["notional"]) == (0, 0.0, 0.0)
    assert math.isnan(d2["arrival_cost_bps"])
    # Unfilled, yet their shortfall counts: O4's alone (O3's is NaN: no arrival quote).
    assert_close(d2["is_bps"], EXPECTED["O4"]["is_bps"], "D2 is_bps")
    brokers = read_table(out, "broker_daily").set_index("broker")
    assert brokers["n_orders"].to_dict() == {"BK1": 2, "BK2": 2}
    # BK2: O2 (-1511.3) and O4 (+4000) by order value: +99.75 bps, a cost (by filled notional
    # it would be O2's -75.38, a gain).
    assert_close(brokers.loc["BK2", "is_bps"], 2488.7 / 249500 * 1e4, "BK2 is_bps")

    text = Path(out, "report.txt").read_text()
    assert f"Execution report {DAY}" in text
    assert "Orders: 4 (2 with fills, 1 complete); fills: 4" in text
    # Over O1, O2, O4: (1052.5 - 1511.3 + 4000) / 349500 = 3541.2 / 349500 = +101.32 bps.
    assert "implementation shortfall (order-value-weighted) +101.32 bps" in text
    assert "Limit breaches: 2 fill(s)" in text
    manifest = read_manifest(out)
    assert manifest is not None and manifest["summary"]["report"] == f"{out}/report.txt"
    assert manifest["summary"]["limit_breaches"] == 2


# ---------------------------------------------------------------------------------------------
# The generated market, against an independent loop over the orders


def read_files(folder: Path) -> pd.DataFrame:
    """A dataset file by file (orders has a date column and date= folders: no discovery)."""
    return pd.concat(
        [pd.read_parquet(path) for path in sorted(folder.rglob("*.parquet"))], ignore_index=True
    )


MINUTE = pd.Timedelta(minutes=1)


def naive_stats(prices: pd.DataFrame, symbol: str, day: dt.date) -> tuple[float, float]:
    """ADV and sigma of ``symbol`` before ``day``, from the XNYS sessions, by plain loops."""
    sessions = [s.date() for s in XNYS.sessions_in_range(day - dt.timedelta(days=120), day)]
    before = [s for s in sessions if s < day][-42:]
    mine = prices[prices["symbol"] == symbol]
    dates = pd.to_datetime(mine["date"]).dt.date
    by_date = {d: (c, v) for d, c, v in zip(dates, mine["close"], mine["volume"], strict=True)}
    volumes = [by_date[s][1] for s in before[-20:] if s in by_date]
    # sigma: the symbol's own last 21 rows (20 returns), looked for over 42 sessions
    closes = [by_date[s][0] for s in before if s in by_date][-21:]
    returns = [b / a - 1.0 for a, b in itertools.pairwise(closes)]
    adv = sum(volumes) / len(volumes) if volumes else math.nan
    if len(returns) < 2:
        return adv, math.nan
    mean = sum(returns) / len(returns)
    return adv, math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))


def naive_metrics(
    orders: pd.DataFrame, fills: pd.DataFrame, bars: pd.DataFrame, prices: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """docs/jobs/tca.md's definitions, one order (and one fill) at a time with plain pandas
    filters: the per-order columns and the markouts."""
    rows, mark_rows = [], []
    for order in orders.itertuples():
        # the bars of the order's symbol on the order's date
        same = (bars["symbol"] == order.symbol) & (
            bars["ts"].dt.date == pd.Timestamp(order.date).date()
        )
        b = bars[same].sort_values("ts")
        quoted = b[(b["bid"] > 0) & (b["bid"] <= b["ask"])]
        close = b["ts"].max() + MINUTE
        f = fills[fills["order_id"] == order.order_id]
        s = 1.0 if order.side == "BUY" else -1.0

        def quote(t: pd.Timestamp, q: pd.DataFrame = quoted) -> tuple[float, float]:
            done = q[q["ts"] + MINUTE <= t]
            if done.empty:
                return math.nan, math.nan
            bid, ask = float(done["bid"].iloc[-1]), float(done["ask"].iloc[-1])
            return bid, ask

        def mid(t: pd.Timestamp) -> float:
            bid, ask = quote(t)
            return (bid + ask) / 2

        inside = b[(b["ts"] < order.end_ts) & (b["ts"] + MINUTE > order.arrival_ts)]
        volume = float(inside["volume"].sum())
        vwap = float((inside["volume"] * inside["vwap"]).sum() / volume)
        filled = float(f["quantity"].sum())
        avg = float((f["quantity"] * f["price"]).sum() / filled) if filled else math.nan
        p0, pn = mid(order.arrival_ts), mid(order.end_ts)
        pd_ = p0 if pd.isna(order.decision_price) else float(order.decision_price)
        spread = sum(
            q * s * (p - mid(t)) / mid(t) * 1e4
            for q, p, t in zip(f["quantity"], f["price"], f["ts"], strict=True)
        )
        value = order.quantity * pd_
        delay = s * order.quantity * (p0 - pd_)
        trading = s * float((f["quantity"] * (f["price"] - p0)).sum())
        opportunity = s * (order.quantity - filled) * (pn - p0)
        fees = float(f["fee"].sum())
        total = delay + trading + opportunity + fees
        horizon = f["ts"].max() + pd.Timedelta(minutes=5) if len(f) else None
        covered = horizon is not None and horizon < close
        bid, ask = quote(order.arrival_ts)
        half = (ask - bid) / 2 / ((bid + ask) / 2) * 1e4
        adv, sigma = naive_stats(prices, order.symbol, pd.Timestamp(order.date).date())
        expected = half + sigma * math.sqrt(order.quantity / adv) * 1e4
        is_bps = total / value * 1e4
        rows.append(
            {
                "order_id": order.order_id,
                "filled_quantity": filled,
                "avg_price": avg,
                "arrival_mid": p0,
                "end_mid": pn,
                "interval_vwap": vwap,
                "market_volume": volume,
                "arrival_cost_bps": s * (avg - p0) / p0 * 1e4,
                "vwap_slippage_bps": s * (avg - vwap) / vwap * 1e4,
                "spread_cost_bps": spread / filled if filled else math.nan,
                "is_total": total,
                "is_bps": is_bps,
                "order_value": value,
                "is_delay_bps": delay / value * 1e4,
                "is_trading_bps": trading / value * 1e4,
                "is_opportunity_bps": opportunity / value * 1e4,
                "is_fees_bps": fees / value * 1e4,
                "impact_bps": s * (mid(horizon) - p0) / p0 * 1e4 if covered else math.nan,
                "adv": adv,
                "sigma": sigma,
                "half_spread_bps": half,
                "expected_cost_bps": expected,
                "cost_vs_expected_bps": is_bps - expected,
            }
        )
        for fill in f.itertuples():
            mark = {"fill_id": fill.fill_id, "broker": order.broker}
            for h in (1, 5, 15, 30):
                later = fill.ts + h * MINUTE
                m = mid(later) if later <= close else math.nan
                mark[f"markout_{h}m_bps"] = s * (m - fill.price) / fill.price * 1e4
            mark_rows.append(mark)
    got = pd.DataFrame(rows).sort_values("order_id").reset_index(drop=True)
    return got, pd.DataFrame(mark_rows).sort_values("fill_id").reset_index(drop=True)


def naive_buckets(orders: pd.DataFrame) -> pd.DataFrame:
    """Each order's three buckets, by plain loops over the docs' rules."""
    out = []
    for _, group in orders.groupby("date"):
        sigmas = sorted(x for x in group["sigma"] if not math.isnan(x))
        # numpy's linear quantile, written out: position q (n - 1) between two sorted values
        edges = []
        for q in (1 / 3, 2 / 3):
            pos = q * (len(sigmas) - 1)
            lo = math.floor(pos)
            hi = min(lo + 1, len(sigmas) - 1)
            edges.append(sigmas[lo] + (sigmas[hi] - sigmas[lo]) * (pos - lo))
        for order in group.itertuples():
            local = order.arrival_ts.tz_convert("America/New_York")
            minute = (local.hour * 60 + local.minute) // 30 * 30
            pct = order.quantity * 100 / order.adv
            size = next(
                (label for edge, label in ((1, "<1%"), (5, "1-5%"), (10, "5-10%")) if pct < edge),
                ">=10%",
            )
            vol = "low" if order.sigma <= edges[0] else "mid" if order.sigma <= edges[1] else "high"
            out.append(
                {
                    "order_id": order.order_id,
                    "by_time_of_day": f"{minute // 60:02d}:{minute % 60:02d}",
                    "by_size": size if not math.isnan(pct) else None,
                    "by_volatility": vol if not math.isnan(order.sigma) else None,
                }
            )
    return pd.DataFrame(out)


def test_both_jobs_on_the_generated_market(market: Path, tmp_path: Path, scheduler: str) -> None:
    # The market fixture's intraday data covers its last two sessions.
    start, end = "2024-03-27", MARKET_END.isoformat()
    tca, rep = str(tmp_path / "tca"), str(tmp_path / "report")
    for job, out in (("tca", tca), ("execution-report", rep)):
        args = [job, "--input", str(market), "--output", out, "--scheduler", scheduler]
        result = run_cli([*args, "--start", start, "--end", end])
        assert result.code == 0, result.stderr
    orders_in, fills_in, bars_in, prices_in = (
        read_files(market / name) for name in ("orders", "fills", "bars", "prices")
    )
    got = sorted_table(tca, "orders")
    assert len(got) == len(orders_in) and got["n_fills"].sum() == len(fills_in)
    want, want_marks = naive_metrics(orders_in, fills_in, bars_in, prices_in)
    pd.testing.assert_frame_equal(got[want.columns], want, rtol=1e-9, atol=1e-9, check_dtype=False)
    # The four terms sum to is_bps; the model has something to say about every order.
    terms = got[["is_delay_bps", "is_trading_bps", "is_opportunity_bps", "is_fees_bps"]]
    np.testing.assert_allclose(terms.sum(axis=1), got["is_bps"], rtol=1e-9, atol=1e-9)
    assert got["expected_cost_bps"].notna().mean() > 0.9
    marks = sorted_table(tca, "markouts")
    assert marks["fill_id"].tolist() == want_marks["fill_id"].tolist()
    pd.testing.assert_frame_equal(
        marks[want_marks.columns], want_marks, rtol=1e-9, atol=1e-9, check_dtype=False
    )
    assert marks["markout_30m_bps"].isna().any() and marks["markout_30m_bps"].notna().any()
    manifest = read_manifest(tca)
    assert manifest is not None and manifest["summary"]["dates"] == [start, end]

    # by_broker against np.average and the plain-loop percentile, with each metric's weight.
    brokers = sorted_table(tca, "by_broker").set_index("broker")
    for broker, group in got.groupby("broker"):
        for metric, weight in (("arrival_cost_bps", "notional"), ("is_bps", "order_value")):
            ok = group[group[weight].fillna(0) > 0]
            ok = ok[ok[metric].notna()]
            values, weights = ok[metric].to_numpy(), ok[weight].to_numpy()
            assert_close(
                brokers.loc[broker, f"{metric}_mean"],
                float(np.average(values, weights=weights)),
                f"{broker} {metric}",
            )
            assert brokers.loc[broker, f"{metric}_p90"] == reference_quantile(
                list(values), list(weights), 0.9
            )
    # The bucket tables against buckets assigned by a plain loop.
    labelled = got.merge(naive_buckets(got), on="order_id")
    for table in ("by_time_of_day", "by_size", "by_volatility"):
        found = sorted_table(tca, table).set_index("bucket")
        for bucket, group in labelled.dropna(subset=[table]).groupby(table):
            assert found.loc[bucket, "n_orders"] == len(group), (table, bucket)
            ok = group[group["is_bps"].notna()]
            assert_close(
                found.loc[bucket, "is_bps_mean"],
                float(np.average(ok["is_bps"], weights=ok["order_value"])),
                f"{table} {bucket}",
            )
        assert found["n_orders"].sum() == labelled[table].notna().sum()

    report = sorted_table(rep, "orders")
    assert report["order_id"].tolist() == got["order_id"].tolist()
    np.testing.assert_allclose(report["filled_quantity"], got["filled_quantity"])
    # The generator fills inside each bar's [low, high].
    assert report["price_anomalies"].sum() == 0
    desks = read_table(rep, "desk_daily")
    assert desks["n_orders"].sum() == len(orders_in)
    assert sorted({str(d) for d in desks["date"]}) == [start, end]
    assert "Execution report 2024-03-27 .. 2024-03-28" in Path(rep, "report.txt").read_text()
    assert json.loads(Path(rep, "_manifest.json").read_text())["job"] == "execution-report"


def test_flat_folder_with_other_dates(one_worker: str, tmp_path: Path, scheduler: str) -> None:
    """Flat folders (no date= partitions) holding the day and the day before: --date selects
    the orders by their date, the fills and bars by the UTC date of ts; same numbers."""
    nested = tmp_path / "nested"
    write_hand_day(nested)
    flat = tmp_path / "flat"
    (flat / "prices").mkdir(parents=True)
    for i, path in enumerate(sorted((nested / "prices").rglob("*.parquet"))):
        pq.write_table(pq.read_table(path, partitioning=None), flat / "prices" / f"p{i}.parquet")
    for name in ("orders", "fills", "bars"):
        (flat / name).mkdir(parents=True)
        for i, path in enumerate(sorted((nested / name).rglob("*.parquet"))):
            table = pq.read_table(path, partitioning=None)
            frame = table.to_pandas()
            earlier = frame.copy()
            for column in ("ts", "arrival_ts", "end_ts", "date"):
                if column in earlier.columns:
                    earlier[column] = earlier[column] - pd.Timedelta(days=1)
            for column in ("order_id", "fill_id"):
                if column in earlier.columns:
                    earlier[column] = "Y" + earlier[column]
            both = pd.concat([earlier, frame], ignore_index=True)
            pq.write_table(
                pa.Table.from_pandas(both, schema=table.schema, preserve_index=False),
                flat / name / f"part-{i}.parquet",
            )
    out = str(tmp_path / "run")
    run_job("tca", str(flat), out, "--scheduler", scheduler)
    for table in TCA_TABLES:
        pd.testing.assert_frame_equal(
            sorted_table(out, table), sorted_table(one_worker, table), rtol=1e-12, atol=0
        )
    # Both days: twice the orders, the day before's under its own date.
    both = str(tmp_path / "both")
    args = ["tca", "--input", str(flat), "--output", both, "--scheduler", scheduler]
    result = run_cli([*args, "--start", "2024-03-27", "--end", DAY])
    assert result.code == 0, result.stderr
    days = read_table(both, "by_day")
    assert [str(d) for d in days["date"]] == ["2024-03-27", DAY]
    assert days["n_orders"].tolist() == [4, 4]


def test_symbols_filter(one_worker: str, hand_root: str, tmp_path: Path, scheduler: str) -> None:
    out = str(tmp_path / "run")
    run_job("tca", hand_root, out, "--scheduler", scheduler, "--symbols", "AAA")
    orders = sorted_table(out, "orders")
    assert orders["order_id"].tolist() == ["O1", "O2"]
    expected = sorted_table(one_worker, "orders").iloc[:2]
    pd.testing.assert_frame_equal(orders, expected, rtol=1e-12, atol=0)


def test_previous_session_after_good_friday(
    market: Path, tmp_path: Path, scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduled form: on Monday 2024-04-01, after Good Friday, the previous session is
    Thursday 2024-03-28 (the clock is the only thing pinned here)."""
    import datetime as dt

    from analytics import sessions

    monkeypatch.setattr(sessions, "exchange_today", lambda *a, **k: dt.date(2024, 4, 1))
    out = tmp_path / "run"
    result = run_cli(
        [
            "tca",
            "--input",
            str(market),
            "--output",
            str(out),
            "--scheduler",
            scheduler,
            "--date",
            "previous-session",
        ]
    )
    assert result.code == 0, result.stderr
    orders = pd.read_parquet(out / "orders")
    assert set(pd.to_datetime(orders["date"]).dt.date) == {dt.date(2024, 3, 28)}


def test_previous_session_on_a_holiday_is_nothing_to_do(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from analytics import sessions

    monkeypatch.setattr(sessions, "exchange_today", lambda *a, **k: dt.date(2024, 3, 29))
    out = tmp_path / "run"
    result = run_cli(
        ["tca", "--input", str(market), "--output", str(out), "--date", "previous-session"]
    )
    assert result.code == 0, result.stderr
    assert "finbatch: nothing to do: 2024-03-29 is not a session of XNYS" in result.stdout
    assert not out.exists()  # decided before any cluster or output folder
