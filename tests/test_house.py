"""The job contract from the outside: a job added as one package, the Python API, the registry.

``tests/tinyjob`` is a job that lives outside ``analytics/jobs/``; the command line, the
Python API, the report and the database keys find it through the registry alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import finbatch
from analytics import jobs
from analytics.data.datasets import Selection, list_files, read_file
from analytics.jobs.contract import JobSpec
from tests import tinyjob

ROOT = Path(__file__).resolve().parents[1]


def _expected_counts(market: Path, min_close: float) -> pd.Series:
    # An independent count: every prices file read with pyarrow, filtered and grouped by pandas.
    frames = [
        pq.read_table(f.url).to_pandas() for f in list_files(str(market), "prices", Selection())
    ]
    prices = pd.concat(frames)
    kept = prices[prices["close"] >= min_close]
    return kept.groupby("symbol").size().sort_index()


def test_a_job_from_a_test_package_runs_through_the_command_line(
    market: Path, tmp_path: Path
) -> None:
    out = tmp_path / "counts"
    env = {**os.environ, jobs.JOBS_VARIABLE: "tests.tinyjob", "PYTHONPATH": str(ROOT)}
    help_text = subprocess.run(
        [sys.executable, "-m", "finbatch", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "rows-per-symbol" in help_text.stdout
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "finbatch",
            "rows-per-symbol",
            "--input",
            str(market),
            "--output",
            str(out),
            "--min-close",
            "50",
            "--workers",
            "1",
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(out / "counts").set_index("symbol")["rows"].sort_index()
    expected = _expected_counts(market, 50.0)
    assert table.to_dict() == expected.to_dict()
    assert (out / "report.html").exists()
    # A bad value of the new option is a clean exit 2, before any cluster starts.
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "finbatch",
            "rows-per-symbol",
            "--input",
            str(market),
            "--output",
            str(tmp_path / "x"),
            "--min-close",
            "inf",
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--min-close" in bad.stderr and "finite" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_the_python_api_runs_a_registered_job_on_a_running_cluster(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    jobs.register(tinyjob.JOB)
    run = finbatch.run(
        "rows-per-symbol",
        input=str(market),
        output=str(tmp_path / "c"),
        scheduler=scheduler,
        min_close="0",
    )
    assert run.tables == ("counts",)
    counts = run.table("counts").set_index("symbol")["rows"].sort_index()
    assert counts.to_dict() == _expected_counts(market, 0.0).to_dict()
    assert run.manifest.job == "rows-per-symbol"
    assert run.manifest.parameters["min_close"] == 0.0
    assert run.report_path is not None and Path(run.report_path).exists()


def test_the_python_api_returns_market_performance_tables(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    out = tmp_path / "mp"
    run = finbatch.run(
        "market-performance",
        input=str(market),
        output=str(out),
        scheduler=scheduler,
        symbols=["AAA", "SPX"] if False else None,
        run_id="api",
    )
    metrics = run.table("metrics")
    # The same rows as the committed Parquet files read directly.
    direct = pd.read_parquet(out / "metrics")
    assert set(direct.pop("run_id")) == {"api"}  # the table's own columns, without run_id
    assert metrics.shape == direct.shape and metrics.shape[0] > 0
    assert set(metrics["period"]) >= {"ALL"}
    assert run.manifest.run_id == "api"
    assert finbatch.Run.open(str(out)).table("metrics").shape == metrics.shape


def test_the_python_api_raises_the_projects_errors(market: Path, tmp_path: Path) -> None:
    with pytest.raises(finbatch.InputError, match="no job named 'nope'"):
        finbatch.run("nope", input=str(market), output=str(tmp_path / "a"))
    with pytest.raises(finbatch.InputError, match="unknown option"):
        finbatch.run("market-performance", input=str(market), output=str(tmp_path / "b"), bogus=1)
    with pytest.raises(finbatch.InputError, match="--as-of"):
        finbatch.run("risk", input=str(market), output=str(tmp_path / "c"))
    with pytest.raises(finbatch.InputError, match="no files found"):
        finbatch.run("market-performance", input=str(tmp_path / "none"), output=str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()  # refused before any output or cluster
    assert issubclass(finbatch.InputError, finbatch.FinbatchError)
    assert finbatch.__version__


def test_the_registry_checks_what_it_adds() -> None:
    assert set(jobs.jobs()) >= {
        "market-performance",
        "risk",
        "backtest",
        "tca",
        "execution-report",
    }
    jobs.register(tinyjob.JOB)  # registering the same spec again is harmless
    with pytest.raises(ValueError, match="already registered"):
        jobs.register(JobSpec(**{**tinyjob.JOB.__dict__, "help": "another"}))
    mutable = type("Mutable", (), {"__annotations__": {}})
    with pytest.raises(TypeError, match="dataclass"):
        jobs.register(JobSpec(**{**tinyjob.JOB.__dict__, "name": "x", "options": mutable}))
    with pytest.raises(finbatch.InputError, match="the jobs are"):
        jobs.get("nope")


def test_reading_a_file_through_the_public_reader(market: Path) -> None:
    first = list_files(str(market), "prices", Selection())[0]
    assert read_file(first.url, "prices", ["symbol", "close"], Selection()).num_rows > 0
