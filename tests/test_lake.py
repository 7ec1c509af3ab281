"""The result tables as a data lake reads them: ``run_id`` first, microsecond UTC timestamps,
undefined metrics as null; the DuckDB query of docs/outputs.md over two runs side by side."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.run.folder import Destination, write_part
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_a_part_has_run_id_first_microsecond_utc_timestamps_and_nulls(tmp_path: Path) -> None:
    ts = pd.to_datetime(
        ["2024-03-01T14:30:00.123456789Z", "2024-03-01T14:31:00.000000000Z", None]
    ).as_unit("ns")
    frame = pd.DataFrame(
        {
            "symbol": ["A", "B", None],
            "ts": ts,
            "naive": ts.tz_localize(None),
            "sharpe": [1.5, np.nan, np.inf],
        }
    )
    part = write_part(Destination(str(tmp_path), "run-7"), "metrics", 0, frame)
    table = pq.read_table(part.url)
    assert table.column_names == ["run_id", "symbol", "ts", "naive", "sharpe"]
    assert table.column("run_id").to_pylist() == ["run-7"] * 3
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("naive").type == pa.timestamp("us", tz="UTC")
    # 14:30:00.123456789 keeps its microseconds (123456) and loses the 789 nanoseconds.
    first = dt.datetime(2024, 3, 1, 14, 30, 0, 123456, tzinfo=dt.UTC)
    assert table.column("ts")[0].as_py() == first
    assert table.column("ts")[2].as_py() is None
    # NaN (undefined) is a null; +inf stays +inf; a real null stays null.
    assert table.column("sharpe").to_pylist() == [1.5, None, math.inf]
    assert table.column("symbol").null_count == 1


def test_a_copied_part_takes_the_writing_runs_id(tmp_path: Path) -> None:
    """A merge rewrites a shard's part: its rows carry the merge's run id, once."""
    shard = write_part(
        Destination(str(tmp_path / "s"), "shard-0"), "t", 0, pd.DataFrame({"x": [1]})
    )
    merged = write_part(Destination(str(tmp_path / "m"), "merge"), "t", 0, pq.read_table(shard.url))
    table = pq.read_table(merged.url)
    assert table.column_names == ["run_id", "x"]
    assert table.column("run_id").to_pylist() == ["merge"]


def _docs_query() -> str:
    text = (ROOT / "docs" / "outputs.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.S)
    return next(b for b in blocks if "read_parquet" in b)


def test_duckdb_query_of_the_docs_over_two_runs(market: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # From 2023-10-30, October has one return per symbol: its metrics are undefined (null).
    for run_id, end in (("mp-a", "2023-12-29"), ("mp-b", "2024-01-31")):
        result = run_cli(
            [
                "market-performance",
                "--input",
                str(market),
                "--output",
                str(runs / run_id),
                "--start",
                "2023-10-30",
                "--end",
                end,
                "--run-id",
                run_id,
            ]
        )
        assert result.code == 0, result.stderr
    sql = _docs_query().replace("demo/runs", str(runs))
    got = duckdb.sql(sql).fetchall()
    assert [row[0] for row in got] == ["mp-a", "mp-b"]
    for run_id, rows, with_sharpe, avg_sharpe in got:
        # The independent check: numpy over the run's Parquet, undefined = fewer than 2 returns.
        frame = pq.read_table(runs / run_id / "metrics").to_pandas()
        defined = frame["n_returns"] >= 2
        assert rows == len(frame)
        assert with_sharpe == int(defined.sum()) < rows  # some rows are NULL, not NaN
        assert isinstance(avg_sharpe, float) and math.isfinite(avg_sharpe)
        expected = float(np.mean(frame.loc[defined, "sharpe"].to_numpy(dtype=np.float64)))
        assert avg_sharpe == pytest.approx(expected, rel=1e-12)


def test_code_version_is_the_package_version_and_the_commit(tmp_path: Path) -> None:
    import subprocess
    from importlib import metadata

    from analytics.version import COMMIT_ENV, code_version

    package = metadata.version("finbatch")
    # The image's build argument wins (the image has no .git).
    image = code_version({COMMIT_ENV: "0123456789abcdef0123"})
    assert image == f"{package}+g0123456789ab"
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert re.fullmatch(rf"{re.escape(package)}\+g{head[:12]}(\.dirty)?", code_version({}))
