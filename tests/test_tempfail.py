"""Exit code 75 (EX_TEMPFAIL) when the database kept failing past the load's own retries.

A real PostgreSQL (tests/postgres.py) is stopped under a run: the run commits its Parquet
outputs, its load is tried :data:`analytics.delivery.sink.LOAD_ATTEMPTS` times, and the command
exits 75, which the job definitions retry. Batch's next attempt of the same job (same run id,
``AWS_BATCH_JOB_ATTEMPT=2``) finds the run committed and only delivers it again. A failure that
no retry can cure (a refused password) is tried once and exits 1. The S3 side of exit 75 is in
tests/test_s3_faults.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.delivery import sink
from analytics.run.manifest import MANIFEST
from tests.conftest import read_manifest, run_cli
from tests.postgres import Server, local_postgres, start, stop

# A database outage waited out through the sink's retries: outside the fast lane.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres() -> Iterator[Server]:
    """A server of this module's own: the tests stop it."""
    with local_postgres() as server:
        yield server


def _count(server: Server, schema: str, table: str, run_id: str) -> int:
    with psycopg.connect(**server.params) as conn:
        row = conn.execute(
            f'SELECT count(*) FROM "{schema}"."{table}" WHERE run_id = %s'.encode(), (run_id,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_database_outage_exits_75_and_the_retry_delivers_the_committed_run(
    postgres: Server,
    market: Path,
    scheduler: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    monkeypatch.delenv("FINBATCH_DB_URL", raising=False)
    monkeypatch.setattr(sink, "RETRY_DELAYS_S", (0.0, 0.0))
    schema = f"t_{uuid.uuid4().hex[:10]}"
    out = tmp_path / "risk"
    argv = ["risk", "--input", str(market), "--output", str(out), "--as-of", "2024-03-27"]
    argv += ["--run-id", "r75", "--scheduler", scheduler]
    argv += ["--db-url", postgres.url, "--db-schema", schema]

    stop(postgres)
    try:
        with caplog.at_level("WARNING", logger=sink.__name__):
            down = run_cli(argv)
    finally:
        start(postgres)
    assert down.code == 75, down.stderr
    assert "failed while connecting" in down.stderr, down.stderr
    assert f"after {sink.LOAD_ATTEMPTS} attempts" in down.stderr
    assert "the run r75 stays committed" in down.stderr
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retries) == sink.LOAD_ATTEMPTS - 1  # the load was tried 3 times
    manifest = read_manifest(str(out))
    assert manifest is not None and manifest["run_id"] == "r75"
    committed = (out / MANIFEST).read_bytes()

    # AWS Batch retries exit 75: attempt 2 of the same job, the same run id.
    monkeypatch.setenv("AWS_BATCH_JOB_ATTEMPT", "2")
    again = run_cli(argv)
    assert again.code == 0, again.stderr
    assert "run r75 is committed already: delivering it again" in again.stdout
    assert (out / MANIFEST).read_bytes() == committed  # not computed again
    assert _count(postgres, schema, "risk_var", "r75") == manifest["outputs"]["var"]["rows"] > 0


def test_a_refused_password_is_final_and_tried_once(postgres: Server, tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": pa.array([1, 2], pa.int64())}), path)
    table = sink.TableLoad("t", ("k",), (str(path),))
    run = sink.RunKey("r1", "job", sink.dt.date(2024, 3, 27))
    params = {**sink.connection_params(postgres.url), "password": "wrong"}
    sleeps: list[float] = []
    with pytest.raises(sink.SinkError) as caught:
        sink.load_run(params, "t_pw", run, [table], sleep=sleeps.append)
    assert not isinstance(caught.value, sink.DatabaseUnavailable)
    assert caught.value.exit_code == 1
    assert "password authentication failed" in str(caught.value)
    assert sleeps == []  # not tried again
