"""``tca`` and ``execution-report`` end to end through the CLI: the hand-built day of
tests/test_tca_kernel.py with one worker, on the shared two-worker cluster and through S3 (the
same numbers every time), and the generated market against an independent per-order loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from analytics.jobs.tca.aggregate import metric_columns
from analytics.jobs.tca.kernel import COST_METRICS
from tests.conftest import MARKET_END, read_manifest, run_cli
from tests.test_tca_kernel import (
    DAY,
    EXPECTED,
    assert_close,
    assert_expected_orders,
    reference_quantile,
    write_hand_day,
)

TCA_TABLES = ("orders", "by_broker", "by_venue", "by_desk", "by_strategy", "by_day")
REPORT_TABLES = ("orders", "fill_exceptions", "desk_daily", "broker_daily")


def read_table(output: str, table: str) -> pd.DataFrame:
    if output.startswith("s3://"):
        fs = s3fs.S3FileSystem()
        frame = pq.read_table(f"{output.removeprefix('s3://')}/{table}", filesystem=fs)
        return frame.to_pandas()
    return pd.read_parquet(f"{output}/{table}")


def sorted_table(output: str, table: str) -> pd.DataFrame:
    frame = read_table(output, table)
    keys = [c for c in ("order_id", "fill_id", "date", "broker", "desk", "strategy", "venue")]
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
    summary = manifest["summary"]
    assert (summary["orders"], summary["fills"], summary["symbols"]) == (3, 4, 2)
    assert summary["dates"] == [DAY]
    assert summary["buckets"] == 2  # two per thread, one thread
    checks = summary["data_checks"]
    assert checks["fill_without_order"] == {"decision": "reject"}
    assert checks["overfilled_order"] == {
        "decision": "flag",
        "flag_column": "flag_overfilled",
        "orders": 0,
    }

    # by_broker: BK1 = O1 + O3 (O3 never filled: notional NaN, no weight), BK2 = O2.
    brokers = read_table(one_worker, "by_broker").set_index("broker")
    assert brokers["n_orders"].to_dict() == {"BK1": 2, "BK2": 1}
    assert_close(brokers.loc["BK1", "notional"], 101050.0, "notional")
    assert_close(brokers.loc["BK1", "is_total"], 1052.5 + 1000.0, "is_total")
    for metric in COST_METRICS:
        for stat in ("mean", "p50", "p90"):
            want = EXPECTED["O1"][metric]
            assert_close(brokers.loc["BK1", f"{metric}_{stat}"], want, f"BK1 {metric} {stat}")
    # by_day: the three orders; statistics of D1 (O1 and O2) since O3 has no weight.
    day = read_table(one_worker, "by_day")
    assert len(day) == 1 and day.loc[0, "n_orders"] == 3 and day.loc[0, "n_fills"] == 4
    a1, a2 = EXPECTED["O1"]["is_bps"], EXPECTED["O2"]["is_bps"]
    # is_bps: -60.26 (weight 121012.5, share 0.545) then 105.25: p50 = O2's, p90 = O1's.
    assert_close(day.loc[0, "is_bps_mean"], (101050 * a1 + 121012.5 * a2) / 222062.5, "mean")
    assert_close(day.loc[0, "is_bps_p50"], a2, "p50")
    assert_close(day.loc[0, "is_bps_p90"], a1, "p90")
    # by_venue: NYSE = F1 (O1's slice, 40300) + O2 (F3, F4: 121012.5); ARCA = F2 (60750).
    venues = read_table(one_worker, "by_venue").set_index("venue")
    assert venues["n_orders"].to_dict() == {"ARCA": 1, "NYSE": 2}
    assert venues["n_fills"].to_dict() == {"ARCA": 1, "NYSE": 3}
    assert_close(venues.loc["NYSE", "notional"], 161312.5, "notional")
    nyse_o1 = 0.5 / 100.25 * 1e4  # F1 100.75 against the arrival mid 100.25
    o2 = EXPECTED["O2"]["arrival_cost_bps"]
    assert_close(
        venues.loc["NYSE", "arrival_cost_bps_mean"],
        (40300 * nyse_o1 + 121012.5 * o2) / 161312.5,
        "NYSE mean",
    )
    # O2 (-34.2) carries 0.75 of NYSE's weight: p50 = O2's, p90 = O1's slice.
    assert_close(venues.loc["NYSE", "arrival_cost_bps_p50"], o2, "NYSE p50")
    assert_close(venues.loc["NYSE", "arrival_cost_bps_p90"], nyse_o1, "NYSE p90")
    assert list(venues.columns[-len(metric_columns()) :]) == metric_columns()


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
    }
    assert orders["limit_breaches"].to_dict() == {"O1": 1, "O2": 1, "O3": 0}
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
    assert_close(d1["is_total"], 1052.5 - 1211.3, "is_total")
    assert_close(d1["median_time_to_complete_s"], 170.0, "median")
    assert d1["limit_breaches"] == 2
    w1, w2 = 101050.0, 121012.5
    a1, a2 = EXPECTED["O1"]["arrival_cost_bps"], EXPECTED["O2"]["arrival_cost_bps"]
    assert_close(d1["arrival_cost_bps"], (w1 * a1 + w2 * a2) / (w1 + w2), "arrival")
    d2 = desks.loc["D2"]  # O3, no fill
    assert (d2["n_filled_orders"], d2["fill_rate"], d2["notional"]) == (0, 0.0, 0.0)
    assert math.isnan(d2["arrival_cost_bps"])
    brokers = read_table(out, "broker_daily").set_index("broker")
    assert brokers["n_orders"].to_dict() == {"BK1": 2, "BK2": 1}

    text = Path(out, "report.txt").read_text()
    assert f"Execution report {DAY}" in text
    assert "Orders: 3 (2 with fills, 1 complete); fills: 4" in text
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


def naive_metrics(orders: pd.DataFrame, fills: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """The definitions of docs/jobs/tca.md, one order at a time with plain pandas filters."""
    rows = []
    for order in orders.itertuples():
        # the bars of the order's symbol on the order's date
        same = (bars["symbol"] == order.symbol) & (
            bars["ts"].dt.date == pd.Timestamp(order.date).date()
        )
        b = bars[same].sort_values("ts")
        f = fills[fills["order_id"] == order.order_id]
        s = 1.0 if order.side == "BUY" else -1.0

        def mid(t: pd.Timestamp, b: pd.DataFrame = b) -> float:
            before = b[b["ts"] <= t]
            return (
                math.nan
                if before.empty
                else float((before["bid"].iloc[-1] + before["ask"].iloc[-1]) / 2)
            )

        inside = b[(b["ts"] >= order.arrival_ts) & (b["ts"] <= order.end_ts)]
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
        trading = s * float((f["quantity"] * (f["price"] - p0)).sum())
        total = (
            s * order.quantity * (p0 - pd_)
            + trading
            + s * (order.quantity - filled) * (pn - p0)
            + float(f["fee"].sum())
        )
        horizon = f["ts"].max() + pd.Timedelta(minutes=5) if len(f) else None
        covered = horizon is not None and horizon < b["ts"].max() + pd.Timedelta(minutes=1)
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
                "is_bps": total / (order.quantity * pd_) * 1e4,
                "impact_bps": s * (mid(horizon) - p0) / p0 * 1e4 if covered else math.nan,
            }
        )
    return pd.DataFrame(rows).sort_values("order_id").reset_index(drop=True)


def test_both_jobs_on_the_generated_market(market: Path, tmp_path: Path, scheduler: str) -> None:
    # The market fixture's intraday data covers its last two sessions.
    start, end = "2024-03-27", MARKET_END.isoformat()
    tca, rep = str(tmp_path / "tca"), str(tmp_path / "report")
    for job, out in (("tca", tca), ("execution-report", rep)):
        args = [job, "--input", str(market), "--output", out, "--scheduler", scheduler]
        result = run_cli([*args, "--start", start, "--end", end])
        assert result.code == 0, result.stderr
    orders_in, fills_in, bars_in = (
        read_files(market / name) for name in ("orders", "fills", "bars")
    )
    got = sorted_table(tca, "orders")
    assert len(got) == len(orders_in) and got["n_fills"].sum() == len(fills_in)
    want = naive_metrics(orders_in, fills_in, bars_in)
    pd.testing.assert_frame_equal(got[want.columns], want, rtol=1e-9, atol=1e-9, check_dtype=False)
    manifest = read_manifest(tca)
    assert manifest is not None and manifest["summary"]["dates"] == [start, end]

    # by_broker against np.average and the plain-loop percentile.
    brokers = sorted_table(tca, "by_broker").set_index("broker")
    for broker, group in got.groupby("broker"):
        traded = group[group["notional"] > 0]
        for metric in ("arrival_cost_bps", "is_bps"):
            values, weights = traded[metric].to_numpy(), traded["notional"].to_numpy()
            assert_close(
                brokers.loc[broker, f"{metric}_mean"],
                float(np.average(values, weights=weights)),
                f"{broker} {metric}",
            )
            assert brokers.loc[broker, f"{metric}_p90"] == reference_quantile(
                list(values), list(weights), 0.9
            )

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
    assert days["n_orders"].tolist() == [3, 3]


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
