"""Nothing lost: a run deletes only what finbatch wrote, one writer at a time, on local folders
and on the moto S3 server (issue 19, defects 1 to 5).

Every test lists the files it did not ask to delete before the run and checks they are all
still there, byte for byte, after it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.data.datasets import Selection, list_files
from tests.conftest import read_manifest, run_cli

MP = "market-performance"


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _s3_snapshot(bucket: str, prefix: str = "") -> dict[str, bytes]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in sorted(keys)}


def _mp(market: Path | str, out: Path | str, scheduler: str, *extra: str) -> object:
    return run_cli(
        [MP, "--input", str(market), "--output", str(out), "--scheduler", scheduler, *extra]
    )


# ---- defect 1: a run deleted its own input ---------------------------------------------------


def test_output_equal_to_the_input_is_refused_and_nothing_deleted(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(market, data)
    before = _snapshot(data)
    tca = ["tca", "--input", str(data), "--output", str(data), "--date", "2024-03-28"]
    result = run_cli([*tca, "--scheduler", scheduler])
    assert result.code == 2, result.stderr
    assert "holds the input dataset 'orders'" in result.stderr, result.stderr
    assert _snapshot(data) == before


@pytest.mark.parametrize("where", ["prices", "prices/year=2024/out"])
def test_output_inside_an_input_dataset_is_refused(
    market: Path, tmp_path: Path, scheduler: str, where: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(market, data)
    before = _snapshot(data)
    result = _mp(data, data / where, scheduler)
    assert result.code == 2, result.stderr  # type: ignore[attr-defined]
    assert "the input dataset 'prices'" in result.stderr  # type: ignore[attr-defined]
    assert _snapshot(data) == before


# ---- defect 2: a run deleted other data in a folder it does not own ---------------------------


def test_a_folder_with_foreign_files_is_refused_and_overwrite_keeps_them(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    out = tmp_path / "out"
    (out / "metrics" / "old-run").mkdir(parents=True)
    (out / "metrics" / "old-run" / "keep.parquet").write_bytes(b"someone else's")
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    refused = _mp(market, out, scheduler, "--run-id", "a")
    assert refused.code == 2  # type: ignore[attr-defined]
    assert "metrics/old-run/keep.parquet" in refused.stderr  # type: ignore[attr-defined]
    assert "notes.txt" in refused.stderr  # type: ignore[attr-defined]
    assert _snapshot(out) == before
    # --overwrite replaces finbatch's files only: a foreign file where a table goes still
    # refuses, one beside the tables stays.
    assert _mp(market, out, scheduler, "--run-id", "a", "--overwrite").code == 2  # type: ignore[attr-defined]
    assert _snapshot(out) == before
    shutil.rmtree(out / "metrics")
    assert _mp(market, out, scheduler, "--run-id", "a", "--overwrite").code == 0  # type: ignore[attr-defined]
    assert (out / "notes.txt").read_text() == "mine"
    assert read_manifest(str(out)) is not None


def test_bad_input_in_a_foreign_folder_deletes_nothing(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    out = tmp_path / "out"
    (out / "metrics").mkdir(parents=True)
    (out / "metrics" / "x.parquet").write_bytes(b"not ours")
    before = _snapshot(out)
    result = _mp(market, out, scheduler, "--benchmark", "NOPE")
    assert result.code == 2  # type: ignore[attr-defined]
    assert _snapshot(out) == before


def test_s3_output_one_level_too_high_deletes_nothing(
    market: Path, s3_bucket: str, scheduler: str
) -> None:
    s3 = boto3.client("s3")
    earlier = {
        "finbatch/results/run-1/_manifest.json": b'{"job": "backtest"}',
        "finbatch/results/run-1/results/part-00000.parquet": b"PAR1",
        "finbatch/metrics/part-00000.parquet": b"an older layout",
        "finbatch/unrelated.csv": b"a,b\n",
    }
    for key, body in earlier.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
    result = _mp(market, f"s3://{s3_bucket}/finbatch", scheduler, "--overwrite")
    assert result.code == 2, result.stderr  # type: ignore[attr-defined]
    assert "metrics/part-00000.parquet" in result.stderr  # type: ignore[attr-defined]
    assert _s3_snapshot(s3_bucket) == earlier
    result = _mp(market, f"s3://{s3_bucket}/finbatch", scheduler)
    assert result.code == 2 and "unrelated.csv" in result.stderr  # type: ignore[attr-defined]
    assert _s3_snapshot(s3_bucket) == earlier


# ---- defect 5: another job's run with the same run id ------------------------------------------


def test_another_jobs_run_with_the_same_run_id_needs_overwrite(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    out = tmp_path / "out"
    assert _mp(market, out, scheduler, "--run-id", "same").code == 0  # type: ignore[attr-defined]
    before = _snapshot(out)
    risk = ["risk", "--input", str(market), "--output", str(out), "--scheduler", scheduler]
    risk += ["--as-of", "2024-03-28", "--lookback-days", "20", "--run-id", "same"]
    refused = run_cli(risk)
    assert refused.code == 2, refused.stderr
    assert "job 'market-performance'" in refused.stderr
    assert _snapshot(out) == before
    replaced = run_cli([*risk, "--overwrite"])
    assert replaced.code == 0, replaced.stderr
    manifest = read_manifest(str(out))
    assert manifest is not None and manifest["job"] == "risk"
    # The old job's tables went with it: only risk's tables and finbatch's files remain.
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == sorted(manifest["outputs"]), folders


# ---- defect 3: two runs writing one --output at once --------------------------------------------


def _start(args: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "finbatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _await_lease(read: object, run_id: str, proc: subprocess.Popen[str]) -> None:
    """Wait until the run ``run_id`` holds the lease (a condition, polled)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = read()  # type: ignore[operator]
        if body and json.loads(body).get("run_id") == run_id:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the first run never took the lease")


def _two_writers(market: Path, out: str, scheduler: str, read_lease: object) -> None:
    args = [MP, "--input", str(market), "--output", out, "--scheduler", scheduler]
    first = _start([*args, "--run-id", "first"])
    try:
        _await_lease(read_lease, "first", first)
        first.send_signal(signal.SIGSTOP)  # hold it mid-run: the lease stays taken
        second = subprocess.run(
            [sys.executable, "-m", "finbatch", *args, "--run-id", "second"],
            capture_output=True,
            text=True,
            check=False,
        )
        first.send_signal(signal.SIGCONT)
        _, err_first = first.communicate(timeout=300)
    finally:
        first.kill()
    assert second.returncode == 2, second.stderr
    assert "being written by another run: run 'first'" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err_first
    manifest = read_manifest(out)
    assert manifest is not None and manifest["run_id"] == "first"
    assert read_lease() is None  # type: ignore[operator]  # released at the end


def test_two_concurrent_runs_locally_one_is_refused(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    out = tmp_path / "out"
    lease = out / "_lease.json"

    def read() -> bytes | None:
        try:
            return lease.read_bytes() or None
        except FileNotFoundError:
            return None

    _two_writers(market, str(out), scheduler, read)


def test_two_concurrent_runs_on_s3_one_is_refused(
    market: Path, s3_bucket: str, scheduler: str
) -> None:
    s3 = boto3.client("s3")

    def read() -> bytes | None:
        try:
            body: bytes = s3.get_object(Bucket=s3_bucket, Key="out/_lease.json")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return body

    _two_writers(market, f"s3://{s3_bucket}/out", scheduler, read)


def test_an_expired_s3_lease_is_taken_over(
    market: Path, s3_bucket: str, scheduler: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="analytics")
    s3 = boto3.client("s3")
    stale = {
        "run_id": "killed",
        "host": "gone",
        "pid": 1,
        "expires_at": "2020-01-01T00:00:00+00:00",
    }
    s3.put_object(Bucket=s3_bucket, Key="out/_lease.json", Body=json.dumps(stale).encode())
    result = _mp(market, f"s3://{s3_bucket}/out", scheduler, "--run-id", "next")
    assert result.code == 0, result.stderr  # type: ignore[attr-defined]
    assert "taking over the lease" in caplog.text and "run 'killed'" in caplog.text
    assert "out/_lease.json" not in _s3_snapshot(s3_bucket, "out/")


def test_a_live_s3_lease_refuses(market: Path, s3_bucket: str, scheduler: str) -> None:
    s3 = boto3.client("s3")
    live = {"run_id": "busy", "host": "h1", "pid": 7, "expires_at": "2999-01-01T00:00:00+00:00"}
    s3.put_object(Bucket=s3_bucket, Key="out/_lease.json", Body=json.dumps(live).encode())
    result = _mp(market, f"s3://{s3_bucket}/out", scheduler)
    assert result.code == 2  # type: ignore[attr-defined]
    assert "run 'busy' on host 'h1'" in result.stderr  # type: ignore[attr-defined]
    assert list(_s3_snapshot(s3_bucket)) == ["out/_lease.json"]


def test_a_missing_bucket_fails_before_the_cluster_starts(market: Path, s3_endpoint: str) -> None:
    result = run_cli([MP, "--input", str(market), "--output", "s3://no-such-bucket-19/out"])
    assert result.code == 2, result.stderr
    assert "cannot write to the output location" in result.stderr
    assert "bucket does not exist" in result.stderr
    assert "workers" not in result.stdout  # no cluster was started


# ---- defect 4: resume sees a same-size rewrite ------------------------------------------------


def _uncompressed(path: Path, close: float) -> None:
    table = pa.table({"x": pa.array([1.0, 2.0, close])})
    pq.write_table(table, path, compression="none", use_dictionary=False, write_statistics=False)


def _rewrite_same_size(
    url: str, path: Path, put: object, out: str, caplog: pytest.LogCaptureFixture
) -> None:
    from analytics.run.resume import Checkpoint, read_record

    _uncompressed(path, 3.0)
    put(path.read_bytes())  # type: ignore[operator]
    first = list_files(url, "prices", Selection())
    size = path.stat().st_size
    _uncompressed(path, 4.0)
    assert path.stat().st_size == size  # the same size, another content
    put(path.read_bytes())  # type: ignore[operator]
    second = list_files(url, "prices", Selection())
    assert [f.size for f in first] == [f.size for f in second]
    assert first[0].version != second[0].version

    # An attempt recorded on the old file; the next one sees the change, says so, starts clean.
    Checkpoint(out, "j", "r", ("t",), {}, None).begin({"prices": first}, {})
    previous = read_record(out)
    retry = Checkpoint(out, "j", "r", ("t",), {}, previous)
    with caplog.at_level("WARNING", logger="analytics"):
        retry.begin({"prices": second}, {})
    assert not retry.resumed
    assert f"the input file(s) changed: {first[0].url}" in caplog.text, caplog.text


def test_a_same_size_rewrite_is_not_resumed_locally(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "prices" / "p.parquet"
    path.parent.mkdir()
    _rewrite_same_size(str(tmp_path), path, lambda body: None, str(tmp_path / "out"), caplog)


def test_a_same_size_rewrite_is_not_resumed_on_s3(
    tmp_path: Path, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = boto3.client("s3")
    _rewrite_same_size(
        f"s3://{s3_bucket}/in",
        tmp_path / "p.parquet",
        lambda body: s3.put_object(Bucket=s3_bucket, Key="in/prices/p.parquet", Body=body),
        f"s3://{s3_bucket}/out",
        caplog,
    )


# ---- defect 7: an all-zero portfolio vanished from var/ ---------------------------------------


def test_an_all_zero_portfolio_is_a_row_with_value_0_and_a_note(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    import pandas as pd
    import pyarrow.compute as pc

    data = tmp_path / "data"
    shutil.copytree(market, data)
    path = data / "positions" / "year=2024" / "part-0.parquet"
    table = pq.read_table(path)
    day = pa.scalar(pd.Timestamp("2024-03-28").date())
    books = sorted(set(table.filter(pc.equal(table["date"], day))["portfolio"].to_pylist()))
    flat = books[0]
    hit = pc.and_(pc.equal(table["date"], day), pc.equal(table["portfolio"], flat))
    zero = pc.if_else(hit, pa.scalar(0.0, table.schema.field("quantity").type), table["quantity"])
    pq.write_table(
        table.set_column(table.schema.get_field_index("quantity"), "quantity", zero), path
    )

    def risk(root: Path, out: Path) -> pd.DataFrame:
        args = ["risk", "--input", str(root), "--output", str(out), "--scheduler", scheduler]
        result = run_cli([*args, "--as-of", "2024-03-28", "--lookback-days", "20"])
        assert result.code == 0, result.stderr
        return (
            pd.read_parquet(out / "var")
            .drop(columns="run_id")  # each run has its own
            .sort_values(["portfolio", "method"])
            .reset_index(drop=True)
        )

    got = risk(data, tmp_path / "out")
    rows = got[got["portfolio"] == flat]
    # Every method x confidence x horizon row is there, each gross, net, VaR and ES 0.
    assert len(rows) == len(got) // len(books) and len(rows) > 0
    assert (rows[["gross", "net", "var", "es"]] == 0).all().all()
    manifest = read_manifest(str(tmp_path / "out"))
    assert manifest is not None
    assert manifest["summary"]["notes"] == [
        f"portfolio {flat!r} holds only zero quantities on 2024-03-28"
    ]
    assert manifest["summary"]["portfolios"] == len(books)
    # The other portfolios are as in a run on the untouched market.
    clean = risk(market, tmp_path / "clean")
    others = got[got["portfolio"] != flat].reset_index(drop=True)
    expected = clean[clean["portfolio"] != flat].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, expected)


def test_missing_credentials_are_named_as_such(tmp_path: Path) -> None:
    """No credentials anywhere: the message says so (not "run again"), exit 2, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_ENDPOINT_URL="http://127.0.0.1:1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "finbatch", MP, "--input", "s3://b/in", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "the AWS credentials were not found or were refused" in proc.stderr
    assert "run the job again" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_run_whose_s3_lease_was_taken_over_does_not_commit(
    market: Path, s3_bucket: str, scheduler: str
) -> None:
    """Run A is frozen past its lease; another run takes the lease over (here: the test puts a
    new lease, as an expired-lease takeover does). A resumes, finds the lease not its own, and
    exits 2 without a manifest, leaving the other run's lease in place."""
    s3 = boto3.client("s3")

    def read() -> bytes | None:
        try:
            body: bytes = s3.get_object(Bucket=s3_bucket, Key="out/_lease.json")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return body

    out = f"s3://{s3_bucket}/out"
    other = {"run_id": "B", "host": "h2", "pid": 2, "expires_at": "2999-01-01T00:00:00+00:00"}
    args = [MP, "--input", str(market), "--output", out, "--scheduler", scheduler]
    a = _start([*args, "--run-id", "A"])
    try:
        _await_lease(read, "A", a)
        a.send_signal(signal.SIGSTOP)
        s3.put_object(Bucket=s3_bucket, Key="out/_lease.json", Body=json.dumps(other).encode())
        a.send_signal(signal.SIGCONT)
        _, err = a.communicate(timeout=300)
    finally:
        a.kill()
    assert a.returncode == 2, err
    assert "was taken over by another run while this one ran: not committing" in err, err
    assert read_manifest(out) is None
    assert json.loads(read() or b"{}")["run_id"] == "B"
