"""bench/market_performance.py's own parts: the Polars peer computes the job's metrics (checked
against the job's kernels on the hand-shaped series of tests/test_performance_kernel.py), and the
process-tree watcher finds the peak memory of the largest process, a grandchild included."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.market_performance import compare, run_tree
from bench.market_performance_polars import metrics_query
from tests.test_performance_kernel import files_of, price_frame, run_kernels


def test_the_polars_peer_equals_the_jobs_kernels(tmp_path: Path) -> None:
    prices = price_frame()
    folder = tmp_path / "prices" / "year=2024"
    folder.mkdir(parents=True)
    table = pa.table(
        {
            "symbol": pa.array(prices["symbol"].tolist(), pa.string()),
            "date": pa.array(prices["date"].tolist(), pa.date32()),
            "close": pa.array(prices["close"].to_numpy(), pa.float64()),
        }
    )
    pq.write_table(table.slice(0, 100), folder / "part-0.parquet")
    pq.write_table(table.slice(100), folder / "part-1.parquet")
    # Through Arrow, as the bench reads the peer's Parquet result (dates stay dates).
    result = metrics_query(str(tmp_path / "prices" / "*" / "*.parquet")).collect()
    peer = result.to_arrow().to_pandas()
    _, job = run_kernels(files_of(prices), 3)
    lines = compare(peer, job, "Polars")
    assert lines[0] == f"rows: Polars {len(job):,}, finbatch {len(job):,}"
    assert not [line for line in lines if "MISMATCH" in line], "\n".join(lines)
    # The single-price symbol CCC has one ALL row with no return and NaN metrics.
    lone = peer[peer["symbol"] == "CCC"]
    assert lone["period"].tolist() == ["ALL"] and lone["n_returns"].tolist() == [0]
    assert pd.isna(lone["sharpe"]).all()


CHILD = """
import subprocess, sys
block = bytearray(int(sys.argv[1]) * 2**20)  # zero-filled: every page touched
if len(sys.argv) > 2:
    subprocess.run([sys.executable, "-c", sys.argv[2], sys.argv[3]], check=True)
"""


def test_the_watcher_finds_the_largest_process_of_the_tree() -> None:
    # The parent holds 40 MiB, its child 300 MiB: the largest is the child, and the tree's sum
    # of peaks holds both.
    done = run_tree([sys.executable, "-c", CHILD, "40", CHILD, "300"])
    assert done.returncode == 0, done.stderr
    name, peak = done.largest
    assert 300 * 2**20 <= peak < 400 * 2**20
    assert "300" in name
    assert done.total >= peak + 40 * 2**20
    assert len(done.peaks) == 2
