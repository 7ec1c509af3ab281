"""Each TCA data check on the hand-built day of tests/test_tca_kernel.py: a rejected input exits
2 with a message naming the dataset, file and column, and commits nothing; a flagged one sets
the order's flag column and is counted in the manifest."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.data.schemas import BARS, FILLS, ORDERS, arrow_schema
from analytics.jobs.tca.checks import CHECKS
from tests.conftest import read_manifest, run_cli
from tests.tca_hand_day import (
    DAY,
    EXPECTED,
    TCA_TABLES,
    at,
    hand_bars,
    hand_fills,
    hand_orders,
    write_hand_day,
)


def _run(root: Path, out: Path, scheduler: str, *extra: str, job: str = "tca") -> tuple[int, str]:
    args = [job, "--input", str(root), "--output", str(out), "--scheduler", scheduler]
    result = run_cli([*args, *(extra or ("--date", DAY))])
    return result.code, result.stderr


def _assert_rejected(
    root: Path, tmp_path: Path, scheduler: str, *needles: str, extra: tuple[str, ...] = ()
) -> None:
    out = tmp_path / "out"
    code, err = _run(root, out, scheduler, *extra)
    assert code == 2, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert "Traceback" not in err
    assert read_manifest(str(out)) is None
    assert not any((out / t).exists() for t in TCA_TABLES)  # nothing committed, nothing left


def _write(path: Path, frame: pd.DataFrame, schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def _edited_fills(edit: Callable[[pd.DataFrame], None]) -> pd.DataFrame:
    fills = hand_fills()
    edit(fills)
    return fills


# ---------------------------------------------------------------------------------------------
# Rejected


def test_fill_without_order(tmp_path: Path, scheduler: str) -> None:
    fills = pd.concat([hand_fills(), hand_fills().iloc[[0]].assign(fill_id="F5", order_id="O9")])
    write_hand_day(tmp_path / "in", fills=fills)
    _assert_rejected(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'fills'",
        f"file '{tmp_path}/in/fills/date={DAY}/part-0.parquet'",
        "column 'order_id'",
        "'F5'",
        "'O9'",
        "match no order",
    )


def test_fills_of_a_date_without_orders(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(tmp_path / "in")
    stray = tmp_path / "in" / "fills" / "date=2024-03-27" / "part-0.parquet"
    _write(
        stray,
        hand_fills().iloc[[0]].assign(fill_id="F0", ts=at("14:00") - pd.Timedelta(days=1)),
        arrow_schema(FILLS),
    )
    _assert_rejected(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'fills'",
        f"file '{stray}'",
        "column 'order_id'",
        "'F0'",
        "no selected order",
        extra=("--start", "2024-03-27", "--end", DAY),
    )


def test_side_differs_from_the_order(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(
        tmp_path / "in",
        fills=_edited_fills(lambda f: f.__setitem__("side", ["SELL", "BUY", "SELL", "SELL"])),
    )
    _assert_rejected(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'fills'",
        "column 'side'",
        "'F1' is SELL but its order 'O1' is BUY",
    )


def test_symbol_differs_from_the_order(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(
        tmp_path / "in",
        fills=_edited_fills(lambda f: f.__setitem__("symbol", ["AAA", "AAA", "BBB", "AAA"])),
    )
    # AAA and BBB may share a bucket (the fill meets its order: symbols differ) or not (the
    # fill meets no order of its symbol): either way the symbol is named.
    _assert_rejected(tmp_path / "in", tmp_path, scheduler, "dataset 'fills'", "'F3'", "symbol")


def test_duplicate_fill_id_in_one_file(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(
        tmp_path / "in",
        fills=_edited_fills(lambda f: f.__setitem__("fill_id", ["F1", "F1", "F3", "F4"])),
    )
    _assert_rejected(
        tmp_path / "in", tmp_path, scheduler, "dataset 'fills'", "column 'fill_id'", "'F1', 2 times"
    )


def test_duplicate_fill_id_across_files(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(tmp_path / "in")
    again = tmp_path / "in" / "fills" / f"date={DAY}" / "part-1.parquet"
    _write(again, hand_fills().iloc[[3]], arrow_schema(FILLS))
    first = tmp_path / "in" / "fills" / f"date={DAY}" / "part-0.parquet"
    _assert_rejected(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'fills'",
        "column 'fill_id'",
        "'F4'",
        f"{first}, {again}",
    )


def test_duplicate_order_id_across_files(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(tmp_path / "in")
    again = tmp_path / "in" / "orders" / f"date={DAY}" / "part-1.parquet"
    _write(again, hand_orders().iloc[[1]], arrow_schema(ORDERS))
    _assert_rejected(
        tmp_path / "in", tmp_path, scheduler, "dataset 'orders'", "column 'order_id'", "'O2'"
    )


def test_duplicate_bar(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(tmp_path / "in")
    again = tmp_path / "in" / "bars" / f"date={DAY}" / "more.parquet"
    _write(again, hand_bars()[0].iloc[[4]], arrow_schema(BARS))
    _assert_rejected(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'bars'",
        "column 'symbol, ts'",
        "AAA at 2024-03-28 14:34:00",
    )


def test_bar_with_high_below_low(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(tmp_path / "in")
    aaa = hand_bars()[0]
    aaa.loc[3, ["high", "low"]] = [100.5, 101.0]  # bar 3 (14:33): high 100.5 < low 101
    path = tmp_path / "in" / "bars" / f"date={DAY}" / "aaa.parquet"
    _write(path, aaa, arrow_schema(BARS))
    _assert_rejected(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'bars'",
        f"file '{path}'",
        "column 'high, low'",
        "AAA at 2024-03-28 14:33:00",
    )


def test_bar_with_close_outside_its_range(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(tmp_path / "in")
    bbb = hand_bars()[1]
    bbb.loc[4, "close"] = 60.0  # bar 4: high 53
    path = tmp_path / "in" / "bars" / f"date={DAY}" / "bbb.parquet"
    _write(path, bbb, arrow_schema(BARS, include_optional=False))
    _assert_rejected(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'bars'",
        f"file '{path}'",
        "column 'close'",
        "close outside [low, high]",
    )


def test_prices_folder_is_required(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(tmp_path / "in")
    for path in (tmp_path / "in" / "prices").rglob("*.parquet"):
        path.unlink()
    _assert_rejected(tmp_path / "in", tmp_path, scheduler, "dataset 'prices'", "no files found")


def test_end_before_arrival(tmp_path: Path, scheduler: str) -> None:
    orders = hand_orders()
    orders.loc[2, "end_ts"] = at("14:29:00")  # O3 arrives 14:29:50
    write_hand_day(tmp_path / "in", orders=orders)
    _assert_rejected(
        tmp_path / "in", tmp_path, scheduler, "dataset 'orders'", "column 'end_ts'", "'O3'"
    )


def test_date_conflicts_with_start_and_end(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(tmp_path / "in")
    for extra in (("--date", DAY, "--start", DAY), ("--end", DAY, "--date", DAY)):
        _assert_rejected(
            tmp_path / "in",
            tmp_path,
            scheduler,
            "--date 2024-03-28 cannot be combined with --start/--end",
            extra=extra,
        )


def test_no_orders_on_the_date(tmp_path: Path, scheduler: str) -> None:
    write_hand_day(tmp_path / "in")
    # A symbol with no order: the date's files exist, but no order is selected.
    _assert_rejected(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'orders'",
        "no orders of the symbols ['ZZZ']",
        extra=("--date", DAY, "--symbols", "ZZZ"),
    )


def test_side_other_than_buy_or_sell_is_rejected_by_the_reader(
    tmp_path: Path, scheduler: str
) -> None:
    orders = hand_orders()
    orders.loc[1, "side"] = "sell"
    write_hand_day(tmp_path / "in", orders=orders)
    _assert_rejected(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'orders'",
        f"file '{tmp_path}/in/orders/date={DAY}/part-0.parquet'",
        "column 'side'",
        "['sell']",
    )


# ---------------------------------------------------------------------------------------------
# Flagged


def _flagged(
    tmp_path: Path,
    scheduler: str,
    orders: pd.DataFrame | None = None,
    fills: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, dict[str, object]]]:
    write_hand_day(tmp_path / "in", orders=orders, fills=fills)
    out = tmp_path / "out"
    code, err = _run(tmp_path / "in", out, scheduler)
    assert code == 0, err
    manifest = read_manifest(str(out))
    assert manifest is not None
    frame = pd.read_parquet(out / "orders").set_index("order_id")
    return frame, manifest["summary"]["data_checks"]


def _flags(frame: pd.DataFrame, column: str) -> dict[str, bool]:
    return {str(k): bool(v) for k, v in frame[column].items()}


def test_fill_before_arrival_is_flagged(tmp_path: Path, scheduler: str) -> None:
    # F1 at 14:31:00, before O1's arrival at 14:31:30; it still counts in O1's metrics.
    fills = _edited_fills(lambda f: f.__setitem__("ts", [at("14:31:00"), *f["ts"].iloc[1:]]))
    frame, checks = _flagged(tmp_path, scheduler, fills=fills)
    assert _flags(frame, "flag_fills_before_arrival") == {
        "O1": True,
        "O2": False,
        "O3": False,
        "O4": False,
    }
    assert not frame["flag_fills_after_end"].any()
    assert checks["fill_before_arrival"] == {
        "decision": "flag",
        "flag_column": "flag_fills_before_arrival",
        "fills": 1,
        "orders": 1,
    }
    assert frame.loc["O1", "filled_quantity"] == 1000.0
    # F1 at 14:31:00 now meets bar 0's quote (mid 100): 0.75 / 100 instead of 0.5 / 100.25.
    assert frame.loc["O1", "spread_cost_bps"] == pytest.approx(
        (400 * 7500 / 100 + 600 * 5000 / 100.75) / 1000, rel=1e-12
    )


def test_fill_after_end_is_flagged(tmp_path: Path, scheduler: str) -> None:
    # F4 at 14:36:45, after O2's end at 14:36:30.
    fills = _edited_fills(lambda f: f.__setitem__("ts", [*f["ts"].iloc[:3], at("14:36:45")]))
    frame, checks = _flagged(tmp_path, scheduler, fills=fills)
    assert _flags(frame, "flag_fills_after_end") == {
        "O1": False,
        "O2": True,
        "O3": False,
        "O4": False,
    }
    assert checks["fill_after_end"]["fills"] == 1 and checks["fill_after_end"]["orders"] == 1
    assert frame.loc["O2", "filled_quantity"] == 1200.0


def test_overfilled_order_is_flagged(tmp_path: Path, scheduler: str) -> None:
    # F2 700 instead of 600: O1 fills 1100 of 1000.
    fills = _edited_fills(lambda f: f.__setitem__("quantity", [400.0, 700.0, 500.0, 700.0]))
    frame, checks = _flagged(tmp_path, scheduler, fills=fills)
    assert _flags(frame, "flag_overfilled") == {
        "O1": True,
        "O2": False,
        "O3": False,
        "O4": False,
    }
    assert checks["overfilled_order"]["orders"] == 1
    assert frame.loc["O1", "fill_rate"] == pytest.approx(1.1, rel=1e-12)
    # opportunity s (S - filled)(P_n - P_0) = (1000 - 1100)(101 - 100) = -100
    assert frame.loc["O1", "is_opportunity"] == pytest.approx(-100.0, rel=1e-12)


def test_order_without_bars_is_flagged(tmp_path: Path, scheduler: str) -> None:
    orders = hand_orders()
    orders.loc[2, "symbol"] = "CCC"  # O3: no bar of CCC
    frame, checks = _flagged(tmp_path, scheduler, orders=orders)
    assert _flags(frame, "flag_no_bars") == {"O1": False, "O2": False, "O3": True, "O4": False}
    assert checks["order_without_bars"]["orders"] == 1
    for name in ("arrival_mid", "end_mid", "interval_vwap", "market_volume", "is_total", "is_bps"):
        assert math.isnan(frame.loc["O3", name]), name
    assert frame.loc["O3", "quantity"] == 500.0
    # The other orders are untouched.
    assert frame.loc["O1", "is_bps"] == pytest.approx(EXPECTED["O1"]["is_bps"], rel=1e-12)


def test_every_check_is_in_the_manifest(tmp_path: Path, scheduler: str) -> None:
    frame, checks = _flagged(tmp_path, scheduler)
    assert set(checks) == {c.name for c in CHECKS}
    for check in CHECKS:
        assert checks[check.name]["decision"] == check.decision
        if check.flag_column:
            assert check.flag_column in frame.columns
            assert not frame[check.flag_column].any()
