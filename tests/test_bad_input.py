"""Each kind of bad input: a clear message naming dataset, file and column; exit 2; no manifest."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.data.schemas import PRICES, arrow_schema
from tests.conftest import read_manifest, run_cli

DAYS = pd.bdate_range("2024-01-02", "2024-02-29")


def _prices(symbols: tuple[str, ...] = ("AAA", "BBB", "SPX")) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for sym in symbols:
        close = 50 * np.cumprod(1 + rng.normal(0, 0.01, len(DAYS)))
        rows.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "date": DAYS.date,
                    "open": close,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "volume": 1e5,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _write(
    root: Path, frame: pd.DataFrame, name: str = "part-0.parquet", schema: pa.Schema | None = None
) -> Path:
    """Write the frame as prices/month=../name, split in two files by month."""
    paths = []
    for month, part in frame.groupby(pd.to_datetime(frame["date"]).dt.month):
        folder = root / "prices" / f"m{month}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(
            part, schema=schema or arrow_schema(PRICES), preserve_index=False
        )
        pq.write_table(table, folder / name)
        paths.append(folder / name)
    return paths[-1]


def _run(root: Path, out: Path, scheduler: str, *extra: str) -> tuple[int, str]:
    result = run_cli(
        [
            "market-performance",
            "--input",
            str(root),
            "--output",
            str(out),
            "--scheduler",
            scheduler,
            *extra,
        ]
    )
    return result.code, result.stderr


def _assert_bad(
    root: Path, tmp_path: Path, scheduler: str, *needles: str, extra: tuple[str, ...] = ()
) -> None:
    out = tmp_path / "out"
    code, err = _run(root, out, scheduler, *extra)
    assert code == 2, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert "Traceback" not in err
    assert read_manifest(str(out)) is None
    assert not (out / "metrics").exists()  # no partial output


def test_good_input_passes(tmp_path: Path, scheduler: str) -> None:
    _write(tmp_path / "in", _prices())
    code, err = _run(tmp_path / "in", tmp_path / "out", scheduler)
    assert code == 0, err


def test_missing_column(tmp_path: Path, scheduler: str) -> None:
    frame = _prices().drop(columns=["close"])
    schema = pa.schema([f for f in arrow_schema(PRICES) if f.name != "close"])
    _write(tmp_path / "in", frame, schema=schema)
    _assert_bad(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'prices'",
        "column 'close'",
        "missing",
        f"file '{tmp_path}/in/prices/m",
    )


def test_renamed_column_in_one_file(tmp_path: Path, scheduler: str) -> None:
    root = tmp_path / "in"
    last = _write(root, _prices())
    frame = pq.read_table(last).to_pandas().rename(columns={"close": "adj_close"})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), last)
    _assert_bad(root, tmp_path, scheduler, str(last), "column 'close'")


def test_lossy_type(tmp_path: Path, scheduler: str) -> None:
    schema = pa.schema(
        [
            pa.field("symbol", pa.string()),
            pa.field("date", pa.timestamp("s")),
            *[f for f in arrow_schema(PRICES) if f.name not in ("symbol", "date")],
        ]
    )
    frame = _prices()
    frame["date"] = pd.to_datetime(frame["date"]) + pd.Timedelta(hours=13)  # not a whole day
    _write(tmp_path / "in", frame, schema=schema)
    _assert_bad(tmp_path / "in", tmp_path, scheduler, "column 'date'", "without loss")


def test_string_where_a_number_is_expected(tmp_path: Path, scheduler: str) -> None:
    frame = _prices()
    frame["close"] = frame["close"].astype(str)
    schema = pa.schema(
        [
            pa.field(f.name, pa.string() if f.name == "close" else f.type)
            for f in arrow_schema(PRICES)
        ]
    )
    _write(tmp_path / "in", frame, schema=schema)
    _assert_bad(tmp_path / "in", tmp_path, scheduler, "column 'close'", "cannot be read as double")


def test_integer_close_is_cast_losslessly(tmp_path: Path, scheduler: str) -> None:
    frame = _prices()
    frame["close"] = frame["close"].round().astype("int64")
    schema = pa.schema(
        [
            pa.field(f.name, pa.int64() if f.name == "close" else f.type)
            for f in arrow_schema(PRICES)
        ]
    )
    _write(tmp_path / "in", frame, schema=schema)
    code, err = _run(tmp_path / "in", tmp_path / "out", scheduler)
    assert code == 0, err


@pytest.mark.parametrize(
    ("label", "corrupt"),
    [
        ("not parquet", lambda p: p.write_text("symbol,date,close\nAAA,2024-01-02,1\n")),
        ("truncated", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
        ("empty file", lambda p: p.write_bytes(b"")),
    ],
)
def test_corrupt_file(
    tmp_path: Path, scheduler: str, label: str, corrupt: Callable[[Path], None]
) -> None:
    last = _write(tmp_path / "in", _prices())
    corrupt(last)
    _assert_bad(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "dataset 'prices'",
        str(last),
        "not a readable Parquet file",
    )


@pytest.mark.parametrize("value", [np.nan, 0.0, -1.0, np.inf])
def test_bad_close(tmp_path: Path, scheduler: str, value: float) -> None:
    frame = _prices()
    frame.loc[17, "close"] = value
    root = tmp_path / "in" / "prices"
    root.mkdir(parents=True)
    # Built from numpy arrays so that NaN stays a NaN value (pandas would turn it into a null).
    table = pa.table(
        {
            c: pa.array(frame[c].to_numpy(), type=f.type)
            if c != "date"
            else pa.array(frame[c], type=f.type)
            for c, f in zip(PRICES.names, arrow_schema(PRICES), strict=True)
        }
    )
    pq.write_table(table, root / "all.parquet")
    _assert_bad(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "column 'close'",
        "not > 0",
        "symbol=AAA",
        "all.parquet",
    )


def test_bad_open_is_caught_when_the_column_is_read(tmp_path: Path) -> None:
    from analytics.data.datasets import Selection, read_file
    from analytics.errors import InputError

    frame = _prices()
    frame.loc[3, "open"] = -1.0
    path = _write(tmp_path, frame.iloc[:10])
    with pytest.raises(InputError, match=r"column 'open'.*not > 0.*first -1.0") as err:
        read_file(str(path), "prices", None, Selection())
    assert str(path) in str(err.value)


def test_duplicate_symbol_date_across_files(tmp_path: Path, scheduler: str) -> None:
    root = tmp_path / "in"
    _write(root, _prices())
    extra = _prices().iloc[[5]]
    pq.write_table(
        pa.Table.from_pandas(extra, schema=arrow_schema(PRICES), preserve_index=False),
        root / "prices" / "dup.parquet",
    )
    _assert_bad(root, tmp_path, scheduler, "duplicate (symbol, date)", "AAA", "dup.parquet")


def test_empty_selection(tmp_path: Path, scheduler: str) -> None:
    _write(tmp_path / "in", _prices())
    _assert_bad(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "no prices",
        extra=("--start", "2025-01-01", "--end", "2025-02-01"),
    )


def test_empty_selection_of_symbols(tmp_path: Path, scheduler: str) -> None:
    _write(tmp_path / "in", _prices())
    _assert_bad(tmp_path / "in", tmp_path, scheduler, "no prices", extra=("--symbols", "ZZZ"))


def test_missing_dataset_folder(tmp_path: Path, scheduler: str) -> None:
    (tmp_path / "in").mkdir()
    _assert_bad(tmp_path / "in", tmp_path, scheduler, "dataset 'prices'", "no files found")


def test_unknown_benchmark(tmp_path: Path, scheduler: str) -> None:
    _write(tmp_path / "in", _prices())
    _assert_bad(
        tmp_path / "in",
        tmp_path,
        scheduler,
        "benchmark symbol 'NOPE'",
        extra=("--benchmark", "NOPE"),
    )


def test_naive_timestamps_are_refused(tmp_path: Path) -> None:
    from analytics.data.datasets import Selection, read_file
    from analytics.data.schemas import FILLS
    from analytics.errors import InputError

    frame = pd.DataFrame(
        {
            "fill_id": ["f1"],
            "order_id": ["o1"],
            "ts": [dt.datetime(2024, 1, 2, 15)],
            "symbol": ["AAA"],
            "side": ["BUY"],
            "quantity": [10.0],
            "price": [5.0],
            "venue": ["X"],
            "fee": [0.1],
        }
    )
    path = tmp_path / "fills.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    with pytest.raises(InputError, match="no time zone") as err:
        read_file(str(path), FILLS.name, None, Selection())
    assert "column 'ts'" in str(err.value) and str(path) in str(err.value)


def test_risk_without_positions_on_the_date(tmp_path: Path, scheduler: str) -> None:
    _write(tmp_path / "in", _prices())
    pos = pd.DataFrame(
        {"date": [dt.date(2024, 2, 1)], "portfolio": ["P"], "symbol": ["AAA"], "quantity": [10.0]}
    )
    (tmp_path / "in" / "positions").mkdir()
    pq.write_table(
        pa.Table.from_pandas(pos, preserve_index=False), tmp_path / "in" / "positions" / "p.parquet"
    )
    out = tmp_path / "out"
    result = run_cli(
        [
            "risk",
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(out),
            "--scheduler",
            scheduler,
            "--as-of",
            "2024-02-02",
        ]
    )
    assert result.code == 2, result.stderr
    assert "no positions on the as-of date 2024-02-02" in result.stderr
    assert read_manifest(str(out)) is None


def test_risk_position_in_unknown_symbol(tmp_path: Path, scheduler: str) -> None:
    _write(tmp_path / "in", _prices())
    pos = pd.DataFrame(
        {
            "date": [dt.date(2024, 2, 1)] * 2,
            "portfolio": ["P", "P"],
            "symbol": ["AAA", "GHOST"],
            "quantity": [10.0, 5.0],
        }
    )
    (tmp_path / "in" / "positions").mkdir()
    pq.write_table(
        pa.Table.from_pandas(pos, preserve_index=False), tmp_path / "in" / "positions" / "p.parquet"
    )
    result = run_cli(
        [
            "risk",
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
            "--scheduler",
            scheduler,
            "--as-of",
            "2024-02-01",
            "--lookback-days",
            "10",
            # EWMA and FHS need 20 days: the two models that take 10.
            "--methods",
            "historical,parametric",
        ]
    )
    assert result.code == 2, result.stderr
    assert "GHOST" in result.stderr and "dataset 'positions'" in result.stderr


def test_absent_optional_column_reads_as_nulls(tmp_path: Path) -> None:
    """bars without the optional vwap column are valid: vwap comes back as nulls."""
    from analytics.data.datasets import Selection, read_file
    from analytics.data.schemas import BARS

    ts = pd.date_range("2024-01-02 14:30", periods=3, freq="min", tz="UTC")
    frame = pd.DataFrame(
        {
            "symbol": "AAA",
            "ts": ts,
            "open": 10.0,
            "high": 10.5,
            "low": 9.5,
            "close": 10.2,
            "volume": 100.0,
            "bid": 10.1,
            "ask": 10.3,
        }
    )
    schema = pa.schema([f for f in arrow_schema(BARS, include_optional=False)])
    path = tmp_path / "bars.parquet"
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
    table = read_file(str(path), BARS.name, None, Selection())
    assert table.column("vwap").null_count == 3
    assert table.num_rows == 3
