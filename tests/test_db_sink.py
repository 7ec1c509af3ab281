"""The PostgreSQL sink against a real server (Debian's postgresql on 127.0.0.1, a free port).

Unit level: every supported type round-trips bit for bit; a rerun replaces a run's rows and
leaves other runs alone; a failure in the middle of a COPY leaves the earlier rows of the run as
they were, in every table; schema changes. End to end through the CLI: market-performance and
risk rows equal their committed Parquet, reruns replace, a failed load exits 1 with the run
still committed, and credentials come from PGPASSWORD or an AWS Secrets Manager secret (moto
server over HTTP).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics import jobs
from analytics.delivery import pgcopy, sink
from finbatch.secrets import SecretError, parse_secret
from tests.conftest import read_manifest, run_cli
from tests.postgres import Server, local_postgres

AS_OF = "2024-03-27"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Server]:
    with local_postgres() as server:
        yield server


@pytest.fixture
def schema() -> str:
    """A fresh schema per test: tests share the server, never their tables."""
    return f"t_{uuid.uuid4().hex[:10]}"


def query(server: Server, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(**server.params) as conn:
        cur = conn.execute(statement.encode(), params)
        return cur.fetchall() if cur.description else []


def same(a: Any, b: Any) -> bool:
    """Exact equality, with NaN equal to NaN and -0.0 told apart from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def assert_rows_equal(db: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    assert len(db) == len(expected)
    for got, want in zip(db, expected, strict=True):
        assert len(got) == len(want)
        bad = [(g, w) for g, w in zip(got, want, strict=True) if not same(g, w)]
        assert not bad, (got, want)


def write(folder: Path, name: str, table: pa.Table) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / name)
    return str(folder / name)


# --------------------------------------------------------------------------------------------
# Unit level


def _typed_table() -> pa.Table:
    ts = [
        dt.datetime(2024, 3, 27, 14, 30, 0, 123456, tzinfo=dt.UTC),
        None,
        dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
    ]
    return pa.table(
        {
            "k": pa.array(["a", "bé", "", "long key ✓ with spaces"]),
            "i": pa.array([1, None, -(2**63), 2**63 - 1], pa.int64()),
            "i32": pa.array([7, -7, None, 2**31 - 1], pa.int32()),
            "u8": pa.array([0, 255, None, 1], pa.uint8()),
            "f": pa.array([1.5, math.nan, math.inf, -math.inf]),
            "g": pa.array([-0.0, None, 5e-324, 1.7976931348623157e308]),
            "f32": pa.array([0.25, None, -1.5, 3.0], pa.float32()),
            "b": pa.array([True, False, None, True]),
            "d": pa.array([dt.date(2024, 3, 27), None, dt.date(1970, 1, 1), dt.date(1999, 12, 31)]),
            "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
            "naive": pa.array([dt.datetime(2000, 1, 1), None, None, dt.datetime(2030, 6, 1, 1)]),
            "cat": pa.array(["x", "y", None, "x"]).dictionary_encode(),
            "big": pa.array(["p", None, "q", ""], pa.large_string()),
        }
    )


def test_every_type_round_trips_exactly(postgres: Server, schema: str, tmp_path: Path) -> None:
    table = _typed_table()
    files = (
        write(tmp_path / "t", "part-00000.parquet", table.slice(0, 2)),
        write(tmp_path / "t", "part-00001.parquet", table.slice(2)),
    )
    run = sink.RunKey("r1", "unit", dt.date(2024, 3, 27))
    result = sink.load_run(postgres.params, schema, run, [sink.TableLoad("types", ("k",), files)])
    assert result.rows == {"types": 4}
    types = dict(
        query(
            postgres,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'types'",
            (schema,),
        )
    )
    assert types == {
        "run_id": "text",
        "job": "text",
        "as_of": "date",
        "k": "text",
        "i": "bigint",
        "i32": "integer",
        "u8": "smallint",
        "f": "double precision",
        "g": "double precision",
        "f32": "real",
        "b": "boolean",
        "d": "date",
        "ts": "timestamp with time zone",
        "naive": "timestamp without time zone",
        "cat": "text",
        "big": "text",
    }
    names = table.column_names
    db = query(
        postgres,
        f"SELECT run_id, job, as_of, {', '.join(names)} FROM {schema}.types ORDER BY k",
    )
    expected = sorted(
        (("r1", "unit", dt.date(2024, 3, 27), *row.values()) for row in table.to_pylist()),
        key=lambda r: r[3],  # ORDER BY k in the C collation: byte order, as Python sorts
    )
    expected = [tuple(_as_db(v) for v in row) for row in expected]
    assert_rows_equal(db, expected)


@pytest.mark.parametrize("layouts", ["few", "many"])
def test_large_batches_round_trip_in_either_encoding(
    postgres: Server, schema: str, tmp_path: Path, layouts: str
) -> None:
    # 20,000 rows: with a few row layouts (string lengths x NULL patterns) the encoder fills one
    # block per layout; with hundreds it writes each field where it falls. Both must be exact.
    rng = np.random.default_rng(11)
    n = 20_000
    widths = rng.integers(1, 4, n) if layouts == "few" else rng.integers(0, 200, n)
    text = pa.array(["é" * int(w) for w in widths], mask=rng.random(n) < 0.05)
    value = pa.array(rng.standard_normal(n), mask=rng.random(n) < 0.1)
    table = pa.table({"k": [f"k{i:06d}" for i in range(n)], "text": text, "value": value})
    files = (write(tmp_path, "p.parquet", table),)
    run = sink.RunKey("r", "unit", dt.date(2024, 1, 2))
    scattered = []
    original = pgcopy._scattered
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pgcopy, "_scattered", lambda *a: scattered.append(1) or original(*a))
        sink.load_run(postgres.params, schema, run, [sink.TableLoad("wide", ("k",), files)])
    # 8 layouts (3 lengths and NULL, x NULL or not) vs about 400 (200 lengths x 2).
    assert bool(scattered) == (layouts == "many")
    db = query(postgres, f"SELECT k, text, value FROM {schema}.wide ORDER BY k")
    assert_rows_equal(db, [tuple(r.values()) for r in table.to_pylist()])


def _as_db(value: Any) -> Any:
    """What PostgreSQL returns for a Python value from Arrow (float32 and timestamps)."""
    if isinstance(value, float):
        return value
    if hasattr(value, "to_pydatetime"):  # a nanosecond pandas Timestamp
        return value.to_pydatetime()
    return value


def _two_tables(folder: Path, n: int, bump: float) -> list[sink.TableLoad]:
    first = pa.table({"sym": [f"S{i}" for i in range(n)], "x": [i + bump for i in range(n)]})
    second = pa.table({"sym": [f"S{i}" for i in range(n)], "y": [2.0 * i + bump for i in range(n)]})
    return [
        sink.TableLoad("one", ("sym",), (write(folder / "one", "part-0.parquet", first),)),
        sink.TableLoad("two", ("sym",), (write(folder / "two", "part-0.parquet", second),)),
    ]


def test_rerun_replaces_its_rows_and_leaves_other_runs(
    postgres: Server, schema: str, tmp_path: Path
) -> None:
    day = dt.date(2024, 1, 2)
    a = sink.RunKey("A", "unit", day)
    sink.load_run(postgres.params, schema, a, _two_tables(tmp_path / "a1", 100, 0.5))
    sink.load_run(
        postgres.params, schema, sink.RunKey("B", "unit", day), _two_tables(tmp_path / "b", 50, 9.0)
    )
    sink.load_run(postgres.params, schema, a, _two_tables(tmp_path / "a2", 30, 0.25))
    for table, column, factor in (("one", "x", 1.0), ("two", "y", 2.0)):
        counts = query(
            postgres,
            f"SELECT run_id, count(*), sum({column}) FROM {schema}.{table} GROUP BY 1 ORDER BY 1",
        )
        # A: rows 0..29 of the rerun, sum(factor*i + 0.25); B untouched: 0..49, + 9 each.
        assert counts == [
            ("A", 30, factor * 435 + 30 * 0.25),
            ("B", 50, factor * 1225 + 50 * 9),
        ]


def test_latest_view_counts_each_date_once_however_often_it_was_rerun(
    postgres: Server, schema: str, tmp_path: Path
) -> None:
    d1, d2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)

    def at(hour: int) -> dt.datetime:
        return dt.datetime(2024, 1, 4, hour, tzinfo=dt.UTC)

    def load(run: str, job: str, day: dt.date, hour: int, n: int, offset: float) -> None:
        key = sink.RunKey(run, job, day, at(hour))
        sink.load_run(postgres.params, schema, key, _two_tables(tmp_path / run, n, offset))

    load("A", "unit", d1, 1, 10, 0.0)  # d1, first run
    load("B", "unit", d1, 2, 20, 100.0)  # d1 rerun, committed later: the latest of d1
    load("C", "unit", d2, 3, 5, 1000.0)  # d2
    load("D", "other", d1, 1, 7, 0.5)  # another job's d1: its own latest
    load("A", "unit", d1, 1, 10, 0.0)  # A loaded again later: still committed before B
    rows = query(
        postgres,
        f"SELECT job, as_of, run_id, count(*), sum(x) FROM {schema}.one_latest "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2",
    )
    # sum over i < n of (i + offset) = n (n - 1) / 2 + n * offset:
    # B 190 + 2000; C 10 + 5000; D 21 + 3.5. A's rows are in the table, not in the view.
    assert rows == [
        ("other", d1, "D", 7, 24.5),
        ("unit", d1, "B", 20, 2190.0),
        ("unit", d2, "C", 5, 5010.0),
    ]
    assert query(postgres, f"SELECT count(*) FROM {schema}.one") == [(10 + 20 + 5 + 7,)]
    two = query(postgres, f"SELECT run_id, count(*) FROM {schema}.two_latest GROUP BY 1 ORDER BY 1")
    assert two == [("B", 20), ("C", 5), ("D", 7)]
    # A run of d1 committed after B (a rerun of the date) takes over d1.
    load("E", "unit", d1, 4, 3, 0.0)
    latest = query(postgres, f"SELECT DISTINCT run_id FROM {schema}.one_latest ORDER BY 1")
    assert latest == [("C",), ("D",), ("E",)]


def test_a_failure_mid_copy_leaves_the_earlier_rows(
    postgres: Server, schema: str, tmp_path: Path
) -> None:
    run = sink.RunKey("A", "unit", dt.date(2024, 1, 2))
    sink.load_run(postgres.params, schema, run, _two_tables(tmp_path / "first", 1000, 0.0))
    before = {
        t: query(postgres, f"SELECT * FROM {schema}.{t} ORDER BY sym") for t in ("one", "two")
    }
    # The rerun: table one loads fine (its old rows already deleted in the transaction); table
    # two's second part repeats a key 150,000 rows into its COPY, so the server fails mid-way.
    tables = _two_tables(tmp_path / "second", 150_000, 1.0)
    dup = pa.table({"sym": ["S5"], "y": [0.0]})
    broken = sink.TableLoad(
        "two", ("sym",), (*tables[1].files, write(tmp_path / "second" / "two", "p1.parquet", dup))
    )
    with pytest.raises(sink.SinkError, match=r"loading t_\w+\.two.*duplicate key") as err:
        sink.load_run(postgres.params, schema, run, [tables[0], broken])
    assert "nothing of this load was committed" in str(err.value)
    for t in ("one", "two"):
        assert query(postgres, f"SELECT * FROM {schema}.{t} ORDER BY sym") == before[t]


def test_new_columns_are_added_and_a_changed_type_is_refused(
    postgres: Server, schema: str, tmp_path: Path
) -> None:
    day = dt.date(2024, 1, 2)
    old = pa.table({"sym": ["A", "B"], "x": [1.0, 2.0]})
    load = sink.TableLoad("t", ("sym",), (write(tmp_path / "v1", "p.parquet", old),))
    sink.load_run(postgres.params, schema, sink.RunKey("old", "unit", day), [load])
    new = pa.table({"sym": ["A"], "x": [3.0], "extra": ["e"]})
    load = sink.TableLoad("t", ("sym",), (write(tmp_path / "v2", "p.parquet", new),))
    sink.load_run(postgres.params, schema, sink.RunKey("new", "unit", day), [load])
    rows = query(postgres, f"SELECT run_id, sym, x, extra FROM {schema}.t ORDER BY 1, 2")
    assert rows == [("new", "A", 3.0, "e"), ("old", "A", 1.0, None), ("old", "B", 2.0, None)]

    changed = pa.table({"sym": ["A"], "x": ["three"]})
    load = sink.TableLoad("t", ("sym",), (write(tmp_path / "v3", "p.parquet", changed),))
    with pytest.raises(sink.SinkError, match=r"column 'x' .* double precision in the database"):
        sink.load_run(postgres.params, schema, sink.RunKey("new", "unit", day), [load])
    assert query(postgres, f"SELECT count(*) FROM {schema}.t") == [(3,)]


def test_connection_parameters_from_url_secret_and_environment() -> None:
    secret = {"username": "admin", "password": "s3cret", "host": "db.rds", "port": 5432}
    secret |= {"dbname": "prod", "engine": "postgres"}
    # The secret fills what the URL lacks; the URL's own values win.
    params = sink.connection_params("postgresql://reader@other:6543/?sslmode=require", secret)
    assert params["user"] == "reader"
    assert (params["host"], params["port"], params["dbname"]) == ("other", "6543", "prod")
    assert (params["password"], params["sslmode"]) == ("s3cret", "require")
    assert params["connect_timeout"] == str(sink.CONNECT_TIMEOUT_S)
    # A secret RDS manages for a master user has no host: the URL gives it.
    managed = sink.connection_params("postgresql://db.rds/prod", {"username": "u", "password": "p"})
    assert (managed["host"], managed["user"], managed["password"]) == ("db.rds", "u", "p")
    with pytest.raises(sink.SinkError, match="no host"):
        sink.connection_params(None, {"username": "u", "password": "p"})
    with pytest.raises(sink.SinkError, match="not a PostgreSQL URL"):
        sink.connection_params("postgresql://h/db?nosuchoption=1", None)
    assert "s3cret" not in sink.redact("postgresql://u:s3cret@h/db")
    assert sink.table_name("execution-report", "desk_daily") == "execution_report_desk_daily"


def test_secret_must_be_an_rds_json_object() -> None:
    assert parse_secret("n", '{"username": "u", "password": "p"}')["password"] == "p"
    with pytest.raises(SecretError, match="not a JSON object"):
        parse_secret("n", "plain-text-password")
    with pytest.raises(SecretError, match="no 'password'"):
        parse_secret("n", '{"username": "u"}')


# --------------------------------------------------------------------------------------------
# End to end: the jobs through the CLI


def db_rows(server: Server, schema: str, table: str, run_id: str, columns: Sequence[str]) -> list:
    names = ", ".join(f'"{c}"' for c in columns)
    return query(
        server,
        f'SELECT {names} FROM {schema}."{table}" WHERE run_id = %s ORDER BY {names}',
        (run_id,),
    )


def parquet_rows(output: str, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    frame = pq.read_table(f"{output}/{table}").select(list(columns))
    rows = [tuple(r.values()) for r in frame.to_pylist()]
    return sorted(rows, key=lambda r: tuple(_sort_key(v) for v in r))


def _sort_key(value: Any) -> tuple[int, Any]:
    return (1, 0) if value is None else (0, value)


def assert_table_loaded(
    server: Server, schema: str, output: str, job: str, table: str, as_of: dt.date
) -> int:
    manifest = read_manifest(output)
    assert manifest is not None
    columns = pq.read_schema(pq.ParquetDataset(f"{output}/{table}").files[0]).names
    columns = [c for c in columns if c != "as_of"]
    db_table = sink.table_name(job, table)
    run_id = manifest["run_id"]
    expected = parquet_rows(output, table, columns)
    got = db_rows(server, schema, db_table, run_id, columns)
    assert_rows_equal(got, expected)
    meta = query(
        server,
        f'SELECT DISTINCT job, as_of FROM {schema}."{db_table}" WHERE run_id = %s',
        (run_id,),
    )
    assert meta == [(job, as_of)]
    return len(got)


@pytest.fixture
def pg_env(postgres: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """libpq reads the password from the environment, as it would on a developer machine."""
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    monkeypatch.delenv("FINBATCH_DB_URL", raising=False)
    return postgres


def _risk(market: Path, out: str) -> list[str]:
    return ["risk", "--input", str(market), "--output", out, "--as-of", AS_OF, "--run-id", "r1"]


def test_jobs_load_their_tables_and_a_rerun_replaces(
    pg_env: Server, schema: str, market: Path, scheduler: str, tmp_path: Path
) -> None:
    mp_out = str(tmp_path / "mp")
    # The URL from FINBATCH_DB_URL, the password from PGPASSWORD.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FINBATCH_DB_URL", pg_env.url)
        result = run_cli(
            [
                "market-performance",
                "--input",
                str(market),
                "--output",
                mp_out,
                "--run-id",
                "mp",
                "--scheduler",
                scheduler,
                "--db-schema",
                schema,
            ]
        )
    assert result.code == 0, result.stderr
    assert f"loaded {schema}.market_performance_metrics" in result.stdout
    # No --end: the as-of date is the last date in the data (the metrics' largest end).
    last = max(r["end"] for r in pq.read_table(f"{mp_out}/metrics", columns=["end"]).to_pylist())
    n = assert_table_loaded(pg_env, schema, mp_out, "market-performance", "metrics", last)
    assert n == read_manifest(mp_out)["outputs"]["metrics"]["rows"]  # type: ignore[index]

    risk_out = str(tmp_path / "risk")
    common = ["--scheduler", scheduler, "--db-url", pg_env.url, "--db-schema", schema]
    first = run_cli(_risk(market, risk_out) + common)
    assert first.code == 0, first.stderr
    as_of = dt.date.fromisoformat(AS_OF)
    n_var = assert_table_loaded(pg_env, schema, risk_out, "risk", "var", as_of)
    n_contrib = assert_table_loaded(pg_env, schema, risk_out, "risk", "contributions", as_of)
    assert {t.name for t in jobs.get("risk").tables if t.loaded} == {
        "var",
        "contributions",
        "coverage",
        "var_backtest",
        "var_exceptions",
    }  # not scenarios
    # The backtest's tables, with their booleans and zones, load as they were committed.
    for table in ("coverage", "var_backtest", "var_exceptions"):
        assert assert_table_loaded(pg_env, schema, risk_out, "risk", table, as_of) > 0
    # The same run id again with one confidence and one horizon: a quarter of the rows, which
    # replace the earlier ones (none left over, none duplicated).
    rerun = run_cli(
        [*_risk(market, risk_out), "--confidence", "0.975", "--horizon-days", "5", *common]
    )
    assert rerun.code == 0, rerun.stderr
    assert assert_table_loaded(pg_env, schema, risk_out, "risk", "var", as_of) == n_var // 4
    assert (
        assert_table_loaded(pg_env, schema, risk_out, "risk", "contributions", as_of)
        == n_contrib // 4
    )
    confidences = query(pg_env, f"SELECT DISTINCT confidence FROM {schema}.risk_var")
    assert confidences == [(0.975,)]


def test_a_failed_load_exits_1_and_keeps_the_run_and_the_earlier_rows(
    pg_env: Server, schema: str, market: Path, scheduler: str, tmp_path: Path
) -> None:
    out = str(tmp_path / "risk")
    common = ["--scheduler", scheduler, "--db-url", pg_env.url, "--db-schema", schema]
    assert run_cli(_risk(market, out) + common).code == 0
    before = {
        t: sorted(query(pg_env, f"SELECT * FROM {schema}.{t}"), key=repr)
        for t in ("risk_var", "risk_contributions")
    }
    # A rule the rows of the rerun break, checked only for new rows (NOT VALID): the COPY into
    # risk_contributions fails after risk_var was already replaced in the same transaction.
    query(
        pg_env,
        f"ALTER TABLE {schema}.risk_contributions ADD CONSTRAINT no_ten_day "
        "CHECK (horizon_days <> 10) NOT VALID",
    )
    result = run_cli([*_risk(market, out), "--horizon-days", "1,10", *common])
    assert result.code == 1
    assert "failed while loading" in result.stderr and "no_ten_day" in result.stderr
    assert "stays committed" in result.stderr
    manifest = read_manifest(out)
    assert manifest is not None and manifest["run_id"] == "r1"  # the Parquet run is committed
    after = {
        t: sorted(query(pg_env, f"SELECT * FROM {schema}.{t}"), key=repr)
        for t in ("risk_var", "risk_contributions")
    }
    assert after == before
    assert len(after["risk_var"]) == manifest["outputs"]["var"]["rows"]


def test_credentials_from_a_secrets_manager_secret(
    postgres: Server,
    schema: str,
    market: Path,
    scheduler: str,
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("FINBATCH_DB_URL", raising=False)
    name = f"finbatch/rds-{uuid.uuid4().hex[:8]}"
    secret = {"username": postgres.user, "password": postgres.password, "engine": "postgres"}
    secret |= {"host": postgres.host, "port": postgres.port, "dbname": postgres.dbname}
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(secret))
    out = str(tmp_path / "mp")
    args = ["market-performance", "--input", str(market), "--output", out, "--run-id", "s1"]
    args += ["--end", "2024-03-15", "--scheduler", scheduler, "--db-schema", schema]
    result = run_cli([*args, "--db-secret", name])
    assert result.code == 0, result.stderr
    # --end given: it is the as-of date.
    assert_table_loaded(
        postgres, schema, out, "market-performance", "metrics", dt.date(2024, 3, 15)
    )
    manifest = read_manifest(out)
    assert manifest is not None and postgres.password not in json.dumps(manifest)

    # An unknown secret stops the run before it starts: exit 1, nothing committed.
    missing = run_cli([*args, "--output", str(tmp_path / "x"), "--db-secret", "no-such-secret"])
    assert missing.code == 1
    assert "no-such-secret" in missing.stderr and "ResourceNotFound" in missing.stderr
    assert read_manifest(str(tmp_path / "x")) is None


def test_a_password_in_the_url_never_reaches_the_manifest(
    postgres: Server, schema: str, market: Path, scheduler: str, tmp_path: Path
) -> None:
    url = (
        f"postgresql://{postgres.user}:{postgres.password}@{postgres.host}:{postgres.port}/"
        f"{postgres.dbname}?sslmode=disable"
    )
    out = str(tmp_path / "mp")
    args = ["market-performance", "--input", str(market), "--output", out, "--run-id", "p1"]
    result = run_cli([*args, "--scheduler", scheduler, "--db-schema", schema, "--db-url", url])
    assert result.code == 0, result.stderr
    text = (Path(out) / "_manifest.json").read_text()
    assert postgres.password not in text and "***" in text
    assert postgres.password not in (Path(out) / "report.html").read_text()


def test_backtest_tca_and_execution_report_tables(
    pg_env: Server, schema: str, market: Path, scheduler: str, tmp_path: Path
) -> None:
    common = ["--scheduler", scheduler, "--db-url", pg_env.url, "--db-schema", schema]
    last_day = dt.date(2024, 3, 28)  # the market's last session: its bars, orders and fills
    runs = {
        "bt-a": [
            "backtest",
            "--strategy",
            "sma-cross",
            "--grid",
            "fast=5,10",
            "--grid",
            "slow=20,40",
            "--top",
            "3",
            "--walk-forward",
            "3:1",
        ],
        # Another strategy, other parameter columns, the same database tables.
        "bt-b": [
            "backtest",
            "--strategy",
            "mean-reversion",
            "--grid",
            "window=10,20",
            "--grid",
            "entry_z=1,2",
            "--grid",
            "exit_z=0",
        ],
        "tca": ["tca"],
        "er": ["execution-report", "--date", "2024-03-27"],
    }
    for run_id, args in runs.items():
        out = str(tmp_path / run_id)
        result = run_cli(
            [*args, "--input", str(market), "--output", out, "--run-id", run_id, *common]
        )
        assert result.code == 0, result.stderr
        job = args[0]
        # The as-of date: --date when given, else the last date of the data.
        as_of = dt.date(2024, 3, 27) if job == "execution-report" else last_day
        written = read_manifest(out)["outputs"]  # type: ignore[index]
        for table in (t.name for t in jobs.get(job).tables if t.loaded):
            if run_id == "bt-b" and table in ("walk_forward", "oos_equity"):
                assert table not in written  # written with --walk-forward only
                continue
            assert assert_table_loaded(pg_env, schema, out, job, table, as_of) > 0
    # Each backtest row carries its own parameters as JSON text, the key across strategies.
    for run_id, names in (("bt-a", ("fast", "slow")), ("bt-b", ("window", "entry_z", "exit_z"))):
        columns = ", ".join(f'"{n}"' for n in names)
        rows = query(
            pg_env,
            f"SELECT parameters, {columns} FROM {schema}.backtest_summary WHERE run_id = %s",
            (run_id,),
        )
        # Four combinations and the buy-and-hold baseline, whose parameters are all null.
        assert len(rows) == 5
        assert sum(all(v is None for v in values) for _, *values in rows) == 1
        for parameters, *values in rows:
            assert json.loads(parameters) == dict(zip(names, values, strict=True))
    flags = query(pg_env, f"SELECT count(*) FROM {schema}.tca_orders WHERE flag_no_bars IS NULL")
    assert flags == [(0,)]  # booleans arrive as booleans, none lost


def test_portfolio_backtest_tables(
    pg_env: Server, schema: str, market: Path, scheduler: str, tmp_path: Path
) -> None:
    out = str(tmp_path / "pbt")
    args = ["portfolio-backtest", "--strategy", "xs-reversal", "--grid", "lookback=1,3"]
    args += ["--grid", "quantile=0.2,0.5", "--borrow-bps", "20", "--direction", "long-short"]
    args += ["--walk-forward", "2:1", "--cscv-blocks", "8"]
    common = ["--scheduler", scheduler, "--db-url", pg_env.url, "--db-schema", schema]
    result = run_cli([*args, "--input", str(market), "--output", out, "--run-id", "pbt", *common])
    assert result.code == 0, result.stderr
    counts = {
        table.name: assert_table_loaded(
            pg_env, schema, out, "portfolio-backtest", table.name, dt.date(2024, 3, 28)
        )
        for table in jobs.get("portfolio-backtest").tables
        if table.loaded
    }
    assert counts["results"] == 4 and counts["top"] == 4 and counts["holdings"] > 0
    # The validation tables: one row; a fold a month from the third month; their equity.
    assert counts["validation"] == 1 and counts["walk_forward"] >= 3
    assert counts["oos_equity"] > 0
    columns = "parameters, lookback, quantile, rebalance"
    rows = query(pg_env, f"SELECT {columns} FROM {schema}.portfolio_backtest_results")
    for parameters, *values in rows:
        assert json.loads(parameters) == dict(
            zip(("lookback", "quantile", "rebalance"), values, strict=True)
        )


def test_a_user_allowed_only_into_an_existing_schema(
    postgres: Server, schema: str, tmp_path: Path
) -> None:
    # A role without CREATE on the database (PUBLIC does not have it) but with CREATE on a
    # schema the DBA made: the load must not ask for more.
    role = f"loader_{schema}"
    query(postgres, f"CREATE SCHEMA {schema}")
    query(postgres, f"CREATE ROLE {role} LOGIN PASSWORD 'loader-pw'")
    query(postgres, f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}")
    table = pa.table({"sym": ["A", "B"], "x": [1.0, 2.0]})
    load = sink.TableLoad("t", ("sym",), (write(tmp_path, "p.parquet", table),))
    params = {**postgres.params, "user": role, "password": "loader-pw"}
    run = sink.RunKey("r", "unit", dt.date(2024, 1, 2))
    assert sink.load_run(params, schema, run, [load]).rows == {"t": 2}
    with pytest.raises(sink.SinkError, match="permission denied"):
        sink.load_run(params, f"{schema}_new", run, [load])
