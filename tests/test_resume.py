"""Resume: a run stopped mid-job (SIGTERM) records what it finished; the next attempt of the same
run id reuses it, computes only the rest, and commits exactly what a clean run commits."""

from __future__ import annotations

import json
import logging
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analytics.run.resume import RUN_OPTIONS
from cluster.simulate import Simulation, node_host
from tests.conftest import read_manifest, run_cli

# Runs killed and resumed with real processes: outside the fast lane.
pytestmark = pytest.mark.slow

#: 5,488 sma-cross combinations (fast < slow) over 201 symbols x 1,006 days: on 2 threads the
#: sweep is 6 tasks of about 1-2 s each, so a run can be stopped with some of them finished.
GRID = ["--strategy", "sma-cross", "--grid", "fast=2:50:1", "--grid", "slow=10:250:2"]
SORT_KEYS = {
    "results": ["fast", "slow", "symbol"],
    "summary": ["fast", "slow"],
    "top": ["rank"],
    "equity": ["rank", "date"],
    "validation": ["n_trials"],  # psr, dsr and the CSCV figures hold on resume too
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((node_host(0), 0))
        return int(sock.getsockname()[1])


def generate_sweep_market(root: Path) -> Path:
    """200 symbols x 4 years of daily prices (about half a second to write)."""
    result = run_cli(
        [
            "generate-data",
            "--output",
            str(root),
            "--start",
            "2020-01-02",
            "--end",
            "2023-12-29",
            "--n-symbols",
            "200",
            "--intraday-symbols",
            "0",
            "--seed",
            "5",
        ]
    )
    assert result.code == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def sweep_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sweep_market(tmp_path_factory.mktemp("sweep-market"))


def backtest_args(
    data: Path, out: Path, *extra: str, grid: Sequence[str] = tuple(GRID)
) -> list[str]:
    return ["backtest", "--input", str(data), "--output", str(out), *grid, *extra]


def tables(out: Path) -> dict[str, pd.DataFrame]:
    """Every table of a backtest run, in a canonical row order."""
    return {
        name: pd.read_parquet(out / name)
        .drop(columns="run_id")  # the runs compared have their own ids
        .sort_values(keys)
        .reset_index(drop=True)
        for name, keys in SORT_KEYS.items()
    }


def part_files(out: Path) -> dict[str, list[str]]:
    return {name: sorted(p.name for p in (out / name).iterdir()) for name in SORT_KEYS}


def assert_same_tables(out: Path, reference: Path, *, exact: bool = True) -> None:
    """The same rows; bit for bit when ``exact``. A run on another number of threads cuts the
    combinations into other chunks, and a chunk's blocks sum in another order: the last bits
    may differ then, so it is compared to 1e-12 relative."""
    got, want = tables(out), tables(reference)
    for name in SORT_KEYS:
        if exact:
            pd.testing.assert_frame_equal(got[name], want[name], check_exact=True, obj=name)
        else:
            pd.testing.assert_frame_equal(
                got[name], want[name], check_exact=False, rtol=1e-12, atol=1e-15, obj=name
            )


def comparable(manifest: dict[str, Any], root: Path) -> dict[str, Any]:
    """A manifest without what differs between two runs of the same work (times, cluster,
    the output folder's own path, the output files' bytes: every row carries its run id)."""
    skip = {"started_at", "finished_at", "duration_s", "cluster", "manifest_url", "run_id"}
    kept = {k: v for k, v in manifest.items() if k not in skip}
    kept["outputs"] = {
        table: {**fileset, "files": [{**f, "bytes": None} for f in fileset["files"]]}
        for table, fileset in manifest["outputs"].items()
    }
    kept["parameters"] = {k: v for k, v in manifest["parameters"].items() if k not in RUN_OPTIONS}
    text = json.dumps(kept, sort_keys=True)
    return dict(json.loads(text.replace(str(root), "<out>")))


@pytest.fixture(scope="module")
def clean_run(
    sweep_market: Path, scheduler: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, float]:
    """The reference: an uninterrupted run on 2 threads (as the simulated node has)."""
    out = tmp_path_factory.mktemp("clean") / "run"
    t0 = time.perf_counter()
    result = run_cli([*backtest_args(sweep_market, out), "--scheduler", scheduler, "--run-id", "s"])
    assert result.code == 0, result.stderr
    return out, time.perf_counter() - t0


def progress(out: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((out / "_progress.json").read_text())
    return record


def test_sigterm_records_progress_and_resume_equals_a_clean_run(
    sweep_market: Path,
    clean_run: tuple[Path, float],
    scheduler: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="analytics")
    reference, clean_seconds = clean_run
    out = tmp_path / "run"
    sim = Simulation(
        1,
        backtest_args(sweep_market, out),
        job_id="sweep-1",
        scheduler_port=free_port(),
        dashboard_port=0,
        echo=False,
    )
    try:
        main = sim.start(0)
        # Two of the six sweep tasks recorded: stop the job there, as a Batch timeout would.
        sim.wait_for_output(0, r"progress recorded: [2-5] finished piece", timeout=120)
        sim.signal(0, signal.SIGTERM)
        sent = time.monotonic()
        code = main.wait(timeout=30)
        assert time.monotonic() - sent < 25
    finally:
        sim.stop_all(grace=5)
    log = "".join(sim.output[0])
    assert code == 1, log
    assert "terminated by SIGTERM" in log
    assert read_manifest(str(out)) is None  # the run does not exist
    record = progress(out)
    assert record["run_id"] == "sweep-1" and record["job"] == "backtest"
    finished = record["pieces"]
    assert 2 <= len(finished) < 6, finished
    for piece in finished.values():  # every recorded piece is on disk with its size
        assert Path(piece["url"]).stat().st_size == piece["bytes"]
        assert Path(piece["blob"]["url"]).stat().st_size == piece["blob"]["bytes"]
    # What a killed attempt may leave besides: a part that no record names, and a recorded
    # part that changed since (both must be redone, never kept).
    stray = out / "results" / "part-00099.parquet"
    stray.write_bytes(b"unfinished")
    changed = Path(sorted(p["url"] for p in finished.values())[0])
    changed.write_bytes(changed.read_bytes()[:-10])

    t0 = time.perf_counter()
    result = run_cli(
        [
            *backtest_args(sweep_market, out),
            "--scheduler",
            scheduler,
            "--run-id",
            "sweep-1",
            "--resume",
        ]
    )
    resumed_seconds = time.perf_counter() - t0
    assert result.code == 0, result.stderr
    reused = len(finished) - 1
    assert f"resuming: {reused} of 6 sweep task(s) reused" in result.stdout
    assert f"{reused} finished piece(s) reused, 1 missing or changed" in caplog.text
    assert not stray.exists()
    assert_same_tables(out, reference)
    assert part_files(out) == part_files(reference)  # same names, no duplicates
    manifest, clean = read_manifest(str(out)), read_manifest(str(reference))
    assert manifest is not None and clean is not None
    assert comparable(manifest, out) == comparable(clean, reference)
    # The record and its blobs go once the run is committed.
    assert not (out / "_progress.json").exists() and not (out / "_progress").exists()
    print(
        f"resume reused {reused}/6 sweep tasks: {resumed_seconds:.1f} s "
        f"vs {clean_seconds:.1f} s for a clean run"
    )


def test_resume_of_another_run_id_starts_from_zero(
    market: Path, scheduler: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="analytics")
    out = tmp_path / "run"
    (out / "metrics").mkdir(parents=True)
    stray = out / "metrics" / "part-00007.parquet"
    stray.write_bytes(b"left by run a")
    (out / "_progress.json").write_text(
        json.dumps({"job": "market-performance", "run_id": "a", "fingerprint": "x"})
    )
    result = run_cli(
        [
            "market-performance",
            "--input",
            str(market),
            "--output",
            str(out),
            "--scheduler",
            scheduler,
            "--run-id",
            "b",
            "--resume",
        ]
    )
    assert result.code == 0, result.stderr
    assert "records job 'market-performance' run 'a', not job 'market-performance' run 'b'" in (
        caplog.text
    )
    assert not stray.exists()
    manifest = read_manifest(str(out))
    assert manifest is not None and manifest["run_id"] == "b"
    names = sorted(p.name for p in (out / "metrics").iterdir())
    assert names == [f"part-{i:05d}.parquet" for i in range(manifest["summary"]["buckets"])]


def test_resume_after_a_changed_parameter_starts_from_zero(
    market: Path, scheduler: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record of the same run id whose fingerprint differs (here: another benchmark) is not
    reused: every bucket is computed again."""
    out = tmp_path / "run"
    base = ["--input", str(market), "--output", str(out), "--scheduler", scheduler]
    base += ["--run-id", "r"]
    first = run_cli(["market-performance", *base, "--benchmark", "SPX"])
    assert first.code == 0, first.stderr
    # The committed run keeps no record; plant the record of an unfinished attempt that used
    # another benchmark, with one bucket "finished".
    manifest = read_manifest(str(out))
    assert manifest is not None
    part = manifest["outputs"]["metrics"]["files"][0]
    (out / "_manifest.json").unlink()
    record = {
        "job": "market-performance",
        "run_id": "r",
        "fingerprint": "another-benchmark",
        "plan": {"buckets": manifest["summary"]["buckets"]},
        "pieces": {"bucket-00000": {"table": "metrics", **part}},
        "blobs": {},
    }
    (out / "_progress.json").write_text(json.dumps(record))
    caplog.set_level(logging.INFO, logger="analytics")
    again = run_cli(["market-performance", *base, "--resume"])
    assert again.code == 0, again.stderr
    assert "the parameters or the input files changed" in caplog.text
    assert "reused" not in caplog.text
    resumed = read_manifest(str(out))
    assert resumed is not None and resumed["summary"]["benchmark"] == "SPX"
