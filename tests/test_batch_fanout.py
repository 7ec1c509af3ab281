"""The Spot fan-out of a backtest, end to end on this machine.

Each shard and the merge run as their own process with the container's command
(``finbatch batch run JOB INPUT OUTPUT DATES OPTIONS``, the shard index in
``AWS_BATCH_JOB_ARRAY_INDEX``), as the array job's children and the merge job would; they share
the test session's cluster (``--scheduler``) to save the start-up of one per process. The merged
tables must equal a single run's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analytics.jobs.backtest import shards
from tests.conftest import read_manifest, run_cli

# Separate processes for every shard and the merge, run twice: outside the fast lane.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
K = 3
OPTIONS = [
    "--strategy",
    "sma-cross",
    "--grid",
    "fast=2:8:3",
    "--grid",
    "slow=6,10,20",  # 3 x 3 less fast >= slow: 8 combinations
    "--top",
    "4",
    "--fees-bps",
    "5",
]
KEYS = {
    "results": ["fast", "slow", "symbol"],
    "summary": ["fast", "slow"],
    "top": ["rank"],
    "equity": ["rank", "date"],
}


def _start(
    market: Path,
    out: Path,
    scheduler: str,
    extra: str,
    index: int | None,
    run_id: str = "fanout",
) -> subprocess.Popen[str]:
    """Start the job definition's command in a new process, as a Batch child would (a new
    submission is a new Batch job: a new ``run_id``)."""
    env = {**os.environ, "FINBATCH_METRICS": "emf"}
    if index is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
    options = " ".join([*OPTIONS, "--scheduler", scheduler, "--run-id", run_id, extra])
    command = [sys.executable, str(ROOT / "entrypoint.py"), "batch", "run", "backtest"]
    command += [str(market), str(out), "--start 2023-10-02 --end 2024-03-28", options]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def _container(market: Path, out: Path, scheduler: str, extra: str, index: int | None) -> str:
    return _finish(_start(market, out, scheduler, extra, index))


def _table(out: Path, name: str) -> pd.DataFrame:
    """A table's own columns (its run_id is the run's: the merge's, or the single run's)."""
    frame = pd.read_parquet(out / name).drop(columns="run_id")
    return frame.sort_values(KEYS[name], kind="stable").reset_index(drop=True)


def _assert_merged_equals_single(out: Path, single: Path) -> None:
    """The merged tables are the single run's, but ``dsr``: no shard holds every trial, so the
    merge cannot deflate, and says so with NaN."""
    for name in KEYS:
        merged_table, single_table = _table(out, name), _table(single, name)
        if "dsr" in merged_table.columns:
            assert merged_table["dsr"].isna().all() and single_table["dsr"].notna().any()
            merged_table = merged_table.drop(columns="dsr")
            single_table = single_table.drop(columns="dsr")
        pd.testing.assert_frame_equal(
            merged_table, single_table, check_exact=False, rtol=0, atol=1e-12
        )


@pytest.fixture(scope="module")
def single(market: Path, scheduler: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "run"
    argv = ["backtest", "--input", str(market), "--output", str(out), "--scheduler", scheduler]
    result = run_cli([*argv, "--start", "2023-10-02", "--end", "2024-03-28", *OPTIONS])
    assert result.code == 0, result.stderr
    return out


def test_shards_then_merge_equal_a_single_run(
    market: Path, scheduler: str, single: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fanout"
    children = [_start(market, out, scheduler, f"--shard array/{K}", i) for i in range(K)]
    outputs = [_finish(child) for child in children]  # the array job's children, at once
    assert all("node-hours" in text for text in outputs)  # each child's summary line
    merged = _container(market, out, scheduler, f"--merge-shards {K}", None)
    assert "merged 3 shards" in merged

    _assert_merged_equals_single(out, single)
    one, fan = read_manifest(str(single)), read_manifest(str(out))
    assert one is not None and fan is not None
    assert fan["job"] == one["job"] == "backtest"
    # The merge writes no validation/ (it has no daily returns); every other table matches.
    assert "validation" not in fan["outputs"] and "validation" in one["outputs"]
    assert {t: v["rows"] for t, v in fan["outputs"].items()} == {
        t: v["rows"] for t, v in one["outputs"].items() if t != "validation"
    }
    assert fan["summary"]["combinations"] == one["summary"]["combinations"] == 8
    assert fan["summary"]["symbols"] == one["summary"]["symbols"]
    assert fan["inputs"]["prices"]["bytes"] == one["inputs"]["prices"]["bytes"]


def test_a_shard_run_twice_leaves_no_duplicate_rows(
    market: Path, scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "fanout"
    folder = Path(shards.shard_url(str(out), 1, K))
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "1")
    options = " ".join([*OPTIONS, "--scheduler", scheduler, "--run-id", "fanout"])
    command = ["batch", "run", "backtest", str(market), str(out), "none"]
    command.append(f"{options} --shard array/{K}")  # in this process, to save a start-up
    assert run_cli(command).code == 0
    first = _table(folder, "results")
    assert run_cli(command).code == 0  # a Spot reclaim's retry: the same array child again
    again = _table(folder, "results")
    assert len(again) == len(first) > 0
    assert not again.duplicated(KEYS["results"]).any()
    # Shard 1 of 3 over 8 combinations holds combinations 2 .. 4 (8 // 3 = 2, 16 // 3 = 5).
    assert len(again.drop_duplicates(["fast", "slow"])) == 3


def test_merge_refuses_missing_or_different_shards(
    market: Path, scheduler: str, tmp_path: Path
) -> None:
    out = tmp_path / "fanout"
    argv = ["backtest", "--input", str(market), "--output", str(out), "--scheduler", scheduler]
    argv += OPTIONS
    too_many = run_cli([*argv, "--shard", "0/9"])
    assert too_many.code == 2 and "use at most 8 shards" in too_many.stderr
    assert run_cli([*argv, "--shard", "0/2"]).code == 0
    missing = run_cli([*argv, "--merge-shards", "2"])
    assert missing.code == 2 and "shard 1 of 2 has not committed" in missing.stderr
    assert run_cli([*argv, "--shard", "1/2"]).code == 0
    other = run_cli([*argv, "--fees-bps", "1", "--merge-shards", "2"])
    assert other.code == 2 and "shard 0 ran with fees_bps=5.0 but the merge has 1.0" in other.stderr
    assert read_manifest(str(out)) is None
    assert run_cli([*argv, "--merge-shards", "2"]).code == 0
    assert read_manifest(str(out)) is not None


def _shard_manifest(out: Path, index: int) -> bytes:
    return (Path(shards.shard_url(str(out), index, K)) / "_manifest.json").read_bytes()


def test_a_resubmitted_fanout_runs_only_the_failed_shard_and_the_merge(
    market: Path, scheduler: str, single: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fanout"
    # Submission 1: shard 1's instance is reclaimed (killed at once) and its attempts run out.
    children = [_start(market, out, scheduler, f"--shard array/{K}", i, "sub-1") for i in (0, 2)]
    lost = _start(market, out, scheduler, f"--shard array/{K}", 1, "sub-1")
    lost.kill()
    lost.communicate(timeout=60)
    assert lost.returncode != 0
    for child in children:
        _finish(child)
    assert read_manifest(shards.shard_url(str(out), 1, K)) is None
    # The merge (a dependency of the array) never ran. Submission 2: every child, then the merge.
    before = {i: _shard_manifest(out, i) for i in (0, 2)}
    again = [_start(market, out, scheduler, f"--shard array/{K}", i, "sub-2") for i in range(K)]
    printed = [_finish(child) for child in again]
    for i in (0, 2):
        assert f"nothing to do: shard {i}/{K} is already committed" in printed[i]
        assert "node-hours" not in printed[i]  # no cluster, no job: it stopped before both
        assert _shard_manifest(out, i) == before[i]  # not run again
    assert "nothing to do" not in printed[1]
    redone = read_manifest(shards.shard_url(str(out), 1, K))
    assert redone is not None and redone["run_id"] == "sub-2"
    assert "merged 3 shards" in _container(market, out, scheduler, f"--merge-shards {K}", None)
    _assert_merged_equals_single(out, single)


def test_merge_refuses_shards_of_other_input_versions_and_a_resubmission_redoes_them(
    market: Path, scheduler: str, single: Path, tmp_path: Path
) -> None:
    data = tmp_path / "market"
    shutil.copytree(market, data)
    out = tmp_path / "fanout"
    for i in range(K):
        assert run_cli(_shard_argv(data, out, scheduler, i, "sub-1")).code == 0
    # A data correction rewrites one prices file in place (same bytes, a newer mtime): a new
    # version of the input, which shards 0 to 2 did not read.
    rewritten = sorted((data / "prices").rglob("*.parquet"))[-1]
    body = rewritten.read_bytes()
    rewritten.write_bytes(body)
    stat = rewritten.stat()
    os.utime(rewritten, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    merge = ["backtest", "--input", str(data), "--output", str(out), "--scheduler", scheduler]
    refused = run_cli([*merge, *OPTIONS, "--merge-shards", str(K)])
    assert refused.code == 2, refused.stderr
    assert "3 shard(s) read other input file versions than the current ones" in refused.stderr
    assert rewritten.name in refused.stderr and read_manifest(str(out)) is None
    # Resubmitted: every shard's inputs changed, so each replaces its folder; the merge then runs.
    for i in range(K):
        redo = run_cli(_shard_argv(data, out, scheduler, i, "sub-2"))
        assert redo.code == 0 and "nothing to do" not in redo.stdout, redo.stderr
        assert read_manifest(shards.shard_url(str(out), i, K))["run_id"] == "sub-2"  # type: ignore[index]
    assert run_cli([*merge, *OPTIONS, "--merge-shards", str(K)]).code == 0
    _assert_merged_equals_single(out, single)


def _shard_argv(data: Path, out: Path, scheduler: str, index: int, run_id: str) -> list[str]:
    argv = ["backtest", "--input", str(data), "--output", str(out), "--scheduler", scheduler]
    return [*argv, *OPTIONS, "--shard", f"{index}/{K}", "--run-id", run_id]
