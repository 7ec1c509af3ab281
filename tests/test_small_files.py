"""Every job gives the same tables on a layout of many small files as on a few large ones.

The market is written twice: *many* (prices and positions as one file per symbol or portfolio
and month, orders and fills as one file per order, bars as one per symbol and day: about 450
files) and *few* (the generator's files, one per year or day, rewritten with row groups of 100
rows). The plan is made on the driver (this process) with a small open cost and unit size, so
that on these small files the many files are read several to a unit and the few files are cut
into runs of row groups: both halves of the planner are on the path of every job.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.data import reads
from analytics.data.datasets import Selection, list_files
from tests.conftest import MARKET_END, read_manifest, run_cli

DAY = MARKET_END.isoformat()
AS_OF = "2024-03-27"
#: Small enough that the few files (about 50 KiB of prices each) are cut by row groups.
OPEN_COST = 2 * 2**10
UNIT = 40 * 2**10

JOBS: dict[str, list[str]] = {
    "market-performance": [],
    "risk": ["--as-of", AS_OF, "--lookback-days", "60", "--backtest-days", "5"],
    "backtest": [
        "--strategy", "sma-cross", "--grid", "fast=2:8:3", "--grid", "slow=6,10,20",
        "--fees-bps", "5",
    ],
    "portfolio-backtest": [
        "--strategy", "xs-momentum", "--grid", "lookback=20,40", "--grid", "skip=0,5",
        "--grid", "quantile=0.5", "--grid", "rebalance=5",
    ],
    "tca": ["--date", DAY],
    "execution-report": ["--date", DAY],
}  # fmt: skip


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.parquet"))


def _write_groups(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _split_dataset(
    market: Path, dst: Path, name: str, by: Callable[[pd.DataFrame], pd.Series]
) -> None:
    """Each file of ``market/name`` as one file per value of ``by`` in the same folder."""
    for path in _files(market / name):
        frame = pq.read_table(path).to_pandas()
        folder = dst / path.relative_to(market).parent
        for key, part in frame.groupby(by(frame), sort=True):
            _write_groups(part, folder / f"{key}.parquet")


def _month(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda f: pd.to_datetime(f[column]).dt.strftime("%m")


@pytest.fixture(scope="module")
def layouts(market: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    many = tmp_path_factory.mktemp("many")
    _split_dataset(
        market, many, "prices", lambda f: f["symbol"].astype(str) + "-" + _month("date")(f)
    )
    _split_dataset(
        market, many, "positions", lambda f: f["portfolio"].astype(str) + "-" + _month("date")(f)
    )
    _split_dataset(market, many, "orders", lambda f: f["order_id"].astype(str))
    _split_dataset(market, many, "fills", lambda f: f["order_id"].astype(str))
    _split_dataset(market, many, "bars", lambda f: f["symbol"].astype(str))
    few = tmp_path_factory.mktemp("few")
    for path in _files(market):
        target = few / path.relative_to(market)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pq.read_table(path), target, row_group_size=100)
    return {"many": many, "few": few}


@pytest.fixture
def small_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads, "LOCAL_OPEN_COST_BYTES", OPEN_COST)
    monkeypatch.setattr(reads, "MAX_UNIT_BYTES", UNIT)


def test_the_layouts_exercise_both_halves_of_the_planner(
    layouts: dict[str, Path], market: Path, small_units: None
) -> None:
    many = list_files(str(layouts["many"]), "prices", Selection())
    few = list_files(str(layouts["few"]), "prices", Selection())
    assert len(many) >= 140 and len(few) == 2
    many_units = reads.plan(many, threads=2)
    few_units = reads.plan(few, threads=2)
    assert len(many_units) < len(many) / 3  # several small files to a unit
    assert all(s.row_groups is None for u in many_units for s in u.slices)
    assert len(few_units) > 4 and all(len(u.slices) == 1 for u in few_units)
    assert all(u.slices[0].row_groups for u in few_units)  # each a run of row groups
    assert sum(len(_files(layouts["many"] / d)) for d in ("orders", "fills")) >= 200
    # Same rows in both layouts.
    for name in ("prices", "positions", "orders", "fills", "bars"):
        rows = {
            k: sum(pq.ParquetFile(p).metadata.num_rows for p in _files(v / name))
            for k, v in layouts.items()
        }
        assert rows["many"] == rows["few"] > 0, name


def _tables(output: Path) -> dict[str, pd.DataFrame]:
    """Every table of a run (its own columns, rows in a canonical order)."""
    found = {}
    for folder in sorted(p for p in output.iterdir() if p.is_dir() and not p.name.startswith("_")):
        if not _files(folder):
            continue
        frame = pd.read_parquet(folder).drop(columns="run_id")
        keys = [c for c in frame.columns if frame[c].dtype.kind not in "fc"]
        keys += [c for c in frame.columns if c not in keys]
        found[folder.name] = frame.sort_values(keys).reset_index(drop=True)
    return found


@pytest.mark.slow  # two runs of each job: about 2 minutes on a busy machine
@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_job_gives_the_same_tables_on_many_small_files(
    job: str, layouts: dict[str, Path], tmp_path: Path, scheduler: str, small_units: None
) -> None:
    outputs = {}
    for name, root in layouts.items():
        out = tmp_path / name
        result = run_cli(
            [job, "--input", str(root), "--output", str(out), "--scheduler", scheduler, *JOBS[job]]
        )
        assert result.code == 0, result.stderr
        for bad in ("CommClosedError", "heartbeat", "Traceback"):
            assert bad not in result.stderr, result.stderr
        outputs[name] = out
    many, few = (_tables(outputs[k]) for k in ("many", "few"))
    assert sorted(many) == sorted(few)
    assert sum(len(t) for t in many.values()) > 0
    for table in many:
        assert len(many[table]) == len(few[table]), table
        pd.testing.assert_frame_equal(many[table], few[table], rtol=1e-9, atol=1e-12, obj=table)
    # The manifest records the listed files (with their versions), not the read units.
    manifest = read_manifest(str(outputs["many"]))
    assert manifest is not None
    for dataset, entry in manifest["inputs"].items():
        listed = {str(p) for p in _files(layouts["many"] / dataset)}
        recorded = {f["url"] for f in entry["files"]}
        assert recorded <= listed and recorded, dataset


@pytest.mark.slow
def test_many_small_files_in_a_fresh_process_log_no_worker_errors(
    layouts: dict[str, Path], tmp_path: Path
) -> None:
    """A whole process with its own two-worker cluster: exit 0, and nothing on stderr about
    closed comms, heartbeats or tracebacks."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "finbatch",
            "market-performance",
            "--input",
            str(layouts["many"]),
            "--output",
            str(tmp_path / "run"),
            "--workers",
            "2",
            "--log-format",
            "text",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for bad in ("CommClosedError", "heartbeat", "Traceback", "Exception"):
        assert bad not in done.stderr, done.stderr
    manifest = read_manifest(str(tmp_path / "run"))
    assert manifest is not None
    assert len(manifest["inputs"]["prices"]["files"]) == len(_files(layouts["many"] / "prices"))
