"""Loading a committed run's result tables into PostgreSQL (for example RDS) with COPY.

One database table per result table, in a schema (default ``finbatch``): the run's ``run_id``,
``job`` and ``as_of`` first, then the result table's own columns. The primary key is the run id
and the table's natural key, which the job declares (:mod:`analytics.delivery.database`). A load
is one transaction: for every table, delete the run's rows, then COPY the new ones; commit. Any
failure rolls back, so the rows of an earlier load of the same run stay as they were, and a
reader never sees half a run.

Reruns: a date run again under a new run id adds its rows beside the earlier run's. Every load
also records the run in ``loaded_runs`` (run id, job, as-of date, when the run committed and when
it was loaded), and each table has a view ``<table>_latest`` holding only the rows of the latest
committed run per job and as-of date (the latest commit wins; a tie, the latest load), so a
dashboard that sums the view counts each date once however often it was rerun.

Rows travel in PostgreSQL's binary COPY format (:mod:`analytics.delivery.pgcopy`), one Parquet
batch at a time, so memory stays bounded whatever the table's size and floats arrive bit for bit
(NaN and ±inf included); a Parquet null is a NULL; timestamps go as microseconds (what
PostgreSQL keeps).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from analytics.data.storage import open_fs
from analytics.delivery import pgcopy
from analytics.errors import EXIT_TEMPFAIL, FinbatchError

log = logging.getLogger(__name__)

DEFAULT_SCHEMA: Final = "finbatch"
#: Rows per chunk sent to COPY: a few MB, so memory stays flat and the stream stays busy.
BATCH_ROWS: Final = 65_536
#: Seconds to wait for the server: an unreachable RDS endpoint fails quickly instead of hanging.
CONNECT_TIMEOUT_S: Final = 30
#: Attempts of a load that met an unreachable or restarting server (each a whole transaction,
#: so a retry is idempotent), and the seconds before the second and third: psycopg retries
#: nothing itself. Past them the run exits 75 and AWS Batch retries the job.
LOAD_ATTEMPTS: Final = 3
RETRY_DELAYS_S: Final = (2.0, 8.0)
#: SQLSTATE classes of a server that may answer later: connection exceptions (08), rollbacks
#: of serialization failures and deadlocks (40), insufficient resources (53), an operator
#: intervention such as a shutdown or a restart (57P).
_TRANSIENT_SQLSTATES: Final = ("08", "40", "53", "57P")
#: libpq's FATAL texts of a server that may accept the connection later (57P03, 57P01, 53300).
_TRANSIENT_FATAL: Final = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "remaining connection slots",
)
#: Advisory lock serializing the DDL of concurrent loads (``CREATE ... IF NOT EXISTS`` of two
#: sessions can still collide on the catalog's unique index).
_DDL_LOCK: Final = 0x66696E62
#: The table of loaded runs, which the ``_latest`` views read.
RUNS_TABLE: Final = "loaded_runs"
#: Suffix of each table's view of the latest committed run per job and as-of date.
LATEST_SUFFIX: Final = "_latest"
#: How an RDS secret's keys (Secrets Manager JSON) map to libpq's parameters.
_SECRET_KEYS: Final = {
    "username": "user",
    "user": "user",
    "password": "password",
    "host": "host",
    "port": "port",
    "dbname": "dbname",
    "database": "dbname",
}


#: Columns the loader fills (``as_of`` from the table's own column when it has one).
RUN_COLUMNS: Final = ("run_id", "job", "as_of")


class SinkError(FinbatchError):
    """The database load failed (exit code 1); the run's Parquet outputs stay committed."""


class DatabaseUnavailable(SinkError):
    """The database could not be reached, or kept failing transiently, past the load's retries
    (exit code 75: a later attempt may succeed); the run's Parquet outputs stay committed."""

    exit_code = EXIT_TEMPFAIL


def is_transient(err: psycopg.Error) -> bool:
    """A failure a later attempt may not meet: no answer from the server at all (refused,
    unreachable, timed out, the connection lost: no SQLSTATE), or one of the transient
    SQLSTATE classes. A refused password (28P01) or a missing privilege is final."""
    state = err.sqlstate
    if state is not None:
        return state.startswith(_TRANSIENT_SQLSTATES)
    if not isinstance(err, psycopg.OperationalError):
        return False
    # A connection refused before any session carries no SQLSTATE; libpq then gives the
    # server's own FATAL text when it answered: final (a password, a database, pg_hba), but
    # for a server that is starting, stopping or full.
    text = str(err)
    return "FATAL:" not in text or any(m in text for m in _TRANSIENT_FATAL)


@dataclass(frozen=True)
class Derived:
    """A text column computed from each batch of the result table (e.g. a key that the table
    spreads over columns that vary by run, such as a backtest's parameters)."""

    name: str
    compute: Callable[[pa.RecordBatch], pa.Array]


@dataclass(frozen=True)
class TableLoad:
    """One result table to load: its database table, natural key and committed Parquet files."""

    name: str
    key: tuple[str, ...]
    files: tuple[str, ...]
    derived: tuple[Derived, ...] = ()


@dataclass(frozen=True)
class RunKey:
    """What identifies a run's rows in every table."""

    run_id: str
    job: str
    as_of: dt.date
    #: When the run committed (its manifest's ``finished_at``): what makes a run the latest.
    committed_at: dt.datetime | None = None


def table_name(job: str, table: str) -> str:
    """The database table of a job's result table: ``risk`` + ``var`` -> ``risk_var``."""
    return re.sub(r"[^0-9a-z]+", "_", f"{job}_{table}".lower()).strip("_")[:63]


def latest_view(table: str) -> str:
    """The view of a database table's latest committed run per job and as-of date."""
    return f"{table[: 63 - len(LATEST_SUFFIX)]}{LATEST_SUFFIX}"


# --------------------------------------------------------------------------------------------
# Connection parameters


def connection_params(url: str | None, secret: Mapping[str, Any] | None = None) -> dict[str, str]:
    """libpq parameters from ``--db-url`` and an RDS secret.

    Each parameter comes from the URL when it has it, else from the secret (``username``,
    ``password``, ``host``, ``port``, ``dbname``); what neither gives, libpq takes from its
    environment at connect time (``PGPASSWORD``, ``PGSSLMODE``, ...).
    """
    params: dict[str, str] = {}
    if url:
        try:
            params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
        except psycopg.ProgrammingError as err:
            raise SinkError(f"--db-url is not a PostgreSQL URL or conninfo: {err}") from None
    for key, target in _SECRET_KEYS.items():
        value = (secret or {}).get(key)
        if value not in (None, "") and target not in params:
            params[target] = str(value)
    if not params.get("host") and not params.get("hostaddr") and not url:
        raise SinkError("the database secret names no host: give --db-url postgresql://HOST/DB")
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    params.setdefault("application_name", "finbatch")
    params["client_encoding"] = "UTF8"  # binary COPY sends text as the client encoding: UTF-8
    return params


def describe_target(params: Mapping[str, str]) -> str:
    """``user@host:port/dbname``, never the password: for messages and the log."""
    user = params.get("user", "")
    where = f"{params.get('host', '')}:{params.get('port', '5432')}/{params.get('dbname', '')}"
    return f"{user}@{where}" if user else where


def redact(url: str) -> str:
    """``url`` without its password (for the manifest)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparseable)"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


# --------------------------------------------------------------------------------------------
# Types


def _wire_type(kind: pa.DataType) -> pa.DataType:
    try:
        return pgcopy.wire_type(kind)
    except pgcopy.UnsupportedType as err:
        raise SinkError(str(err)) from None


def pg_type(kind: pa.DataType) -> str:
    """The PostgreSQL type of an Arrow type, spelled as ``format_type`` spells it."""
    kind = _wire_type(kind)
    if pa.types.is_timestamp(kind):
        return "timestamp with time zone" if kind.tz else "timestamp without time zone"
    return {
        pa.bool_(): "boolean",
        pa.int16(): "smallint",
        pa.int32(): "integer",
        pa.int64(): "bigint",
        pa.float32(): "real",
        pa.float64(): "double precision",
        pa.string(): "text",
        pa.date32(): "date",
    }[kind]


def _read_schema(url: str) -> pa.Schema:
    fs, path = open_fs(url)
    try:
        with fs.open(path, "rb") as handle:
            schema: pa.Schema = pq.read_schema(handle)
    except (OSError, pa.ArrowInvalid) as err:
        raise SinkError(f"cannot read the committed table file {url}: {err}") from err
    return schema


def table_schema(table: TableLoad) -> pa.Schema:
    """The wire schema of a table: run columns, then its own columns (all files unified)."""
    if not table.files:
        raise SinkError(f"{table.name}: the run committed no file for this table")
    try:
        own = pa.unify_schemas([_read_schema(u) for u in table.files], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise SinkError(
            f"{table.name}: the table's files disagree on their columns: {err}"
        ) from err
    derived = [d.name for d in table.derived]
    clash = sorted({"job", *derived} & set(own.names))
    if clash:
        raise SinkError(f"{table.name}: the result table has reserved column(s) {clash}")
    # Every part starts with the run's id (analytics.run.folder.RUN_ID): the row's run_id.
    if "run_id" in own.names and not pa.types.is_string(own.field("run_id").type):
        raise SinkError(f"{table.name}: its run_id column is {own.field('run_id').type}")
    missing = sorted(set(table.key) - set(own.names) - set(derived))
    if missing:
        raise SinkError(f"{table.name}: declared key column(s) {missing} are not in the table")
    as_of = own.field("as_of").type if "as_of" in own.names else pa.date32()
    if not pa.types.is_date(as_of):
        raise SinkError(f"{table.name}: the table's own as_of column is {as_of}, not a date")
    run = [pa.field("run_id", pa.string()), pa.field("job", pa.string())]
    run.append(pa.field("as_of", pa.date32()))
    rest = [pa.field(f.name, _wire_type(f.type)) for f in own if f.name not in RUN_COLUMNS]
    return pa.schema([*run, *rest, *(pa.field(name, pa.string()) for name in derived)])


# --------------------------------------------------------------------------------------------
# DDL


def _qualified(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def _existing_columns(conn: psycopg.Connection[Any], schema: str, name: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
        (schema, name),
    ).fetchall()
    return {str(col): str(kind) for col, kind in rows}


def ensure_table(
    conn: psycopg.Connection[Any], schema: str, table: TableLoad, wire: pa.Schema
) -> None:
    """Create the table if missing, add new columns, and refuse a column whose type changed."""
    target = _qualified(schema, table.name)
    key = {"run_id", "job", "as_of", *table.key}
    existing = _existing_columns(conn, schema, table.name)
    if not existing:
        columns = [
            sql.SQL("{} {}{}").format(
                sql.Identifier(f.name),
                sql.SQL(pg_type(f.type)),
                sql.SQL(" NOT NULL" if f.name in key else ""),
            )
            for f in wire
        ]
        primary = sql.SQL(", ").join(sql.Identifier(c) for c in ("run_id", *table.key))
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
                target, sql.SQL(", ").join(columns), primary
            )
        )
        log.info("created the table %s.%s", schema, table.name)
        return
    for f in wire:
        wanted = pg_type(f.type)
        found = existing.get(f.name)
        if found is None:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    target, sql.Identifier(f.name), sql.SQL(wanted)
                )
            )
            log.info("added the column %s to %s.%s", f.name, schema, table.name)
        elif found != wanted:
            raise SinkError(
                f"column {f.name!r} of {schema}.{table.name} is {found} in the database but "
                f"{wanted} in this run: migrate the column (or drop the table) and load again"
            )


def ensure_runs_table(conn: psycopg.Connection[Any], schema: str) -> None:
    """The table of loaded runs (one row per job and run id, replaced by a reload)."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, job text NOT NULL, "
            "as_of date NOT NULL, committed_at timestamp with time zone, "
            "loaded_at timestamp with time zone NOT NULL DEFAULT now(), "
            "PRIMARY KEY (run_id, job))"
        ).format(_qualified(schema, RUNS_TABLE))
    )


def ensure_latest_view(conn: psycopg.Connection[Any], schema: str, table: str) -> None:
    """(Re)create ``<table>_latest``: the rows of the latest committed run per job and as-of
    date. Made again on every load, so it gains the table's new columns (added last)."""
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE VIEW {view} AS SELECT t.* FROM {table} t JOIN ("
            "SELECT DISTINCT ON (job, as_of) run_id, job FROM {runs} "
            "ORDER BY job, as_of, committed_at DESC NULLS LAST, loaded_at DESC, run_id DESC"
            ") latest ON latest.run_id = t.run_id AND latest.job = t.job"
        ).format(
            view=_qualified(schema, latest_view(table)),
            table=_qualified(schema, table),
            runs=_qualified(schema, RUNS_TABLE),
        )
    )


def _record_run(conn: psycopg.Connection[Any], schema: str, run: RunKey) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (run_id, job, as_of, committed_at, loaded_at) "
            "VALUES (%s, %s, %s, %s, now()) ON CONFLICT (run_id, job) DO UPDATE SET "
            "as_of = EXCLUDED.as_of, committed_at = EXCLUDED.committed_at, loaded_at = now()"
        ).format(_qualified(schema, RUNS_TABLE)),
        (run.run_id, run.job, run.as_of, run.committed_at),
    )


# --------------------------------------------------------------------------------------------
# Rows


def _column(batch: pa.RecordBatch, field: pa.Field) -> pa.Array:
    index = batch.schema.get_field_index(field.name)
    if index < 0:  # a column that an older part of the table lacks
        return pa.nulls(batch.num_rows, field.type)
    return batch.column(index)


def copy_chunks(table: TableLoad, wire: pa.Schema, run: RunKey) -> Iterator[tuple[bytes, int]]:
    """The table's rows as binary COPY chunks in ``wire``'s column order, with their row counts
    (the header comes with the first chunk, the trailer is a last chunk of 0 rows)."""
    constants = {
        "run_id": pa.scalar(run.run_id, pa.string()),
        "job": pa.scalar(run.job, pa.string()),
        "as_of": pa.scalar(run.as_of, pa.date32()),
    }
    derived = {d.name: d.compute for d in table.derived}
    header = pgcopy.HEADER
    for url in table.files:
        fs, path = open_fs(url)
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            # run_id and job are always the run's; as_of is the table's own when it has one.
            fill = {"run_id", "job"} | ({"as_of"} - set(parquet.schema_arrow.names))
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                n = batch.num_rows
                arrays = [
                    pa.repeat(constants[f.name], n)
                    if f.name in fill
                    else (derived[f.name](batch) if f.name in derived else _column(batch, f))
                    for f in wire
                ]
                rows = pa.RecordBatch.from_arrays(arrays, names=wire.names)
                yield header + pgcopy.encode_batch(rows, wire), n
                header = b""
    yield header + pgcopy.TRAILER, 0


# --------------------------------------------------------------------------------------------
# The load


@dataclass(frozen=True)
class LoadResult:
    """Rows loaded per database table, and the seconds the transaction took."""

    rows: dict[str, int]
    seconds: float


def _copy(
    conn: psycopg.Connection[Any], schema: str, table: TableLoad, wire: pa.Schema, run: RunKey
) -> int:
    target = _qualified(schema, table.name)
    conn.execute(sql.SQL("DELETE FROM {} WHERE run_id = %s").format(target), (run.run_id,))
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in wire.names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(target, columns)
    rows = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for chunk, n in copy_chunks(table, wire, run):
            copy.write(chunk)
            rows += n
    return rows


def load_run(
    params: Mapping[str, str],
    schema: str,
    run: RunKey,
    tables: Sequence[TableLoad],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> LoadResult:
    """Replace the run's rows in each table's database table, all in one transaction.

    The tables (and the schema) are created when missing and gain the run's new columns first,
    in a transaction of their own (DDL is idempotent). A transient failure (:func:`is_transient`)
    is tried again, :data:`LOAD_ATTEMPTS` times in all. Raises :class:`DatabaseUnavailable`
    when the server kept failing transiently, :class:`SinkError` naming the table on any other
    failure; after either the database holds exactly what it held before.
    """
    wires = {t.name: table_schema(t) for t in tables}  # the files' footers: fail before we connect
    for attempt in range(1, LOAD_ATTEMPTS + 1):
        try:
            return _load_once(params, schema, run, tables, wires)
        except DatabaseUnavailable as err:
            if attempt == LOAD_ATTEMPTS:
                raise DatabaseUnavailable(
                    f"{err} (after {LOAD_ATTEMPTS} attempts: the run exits 75 to be tried again)"
                ) from err.__cause__
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S)) - 1]
            log.warning("%s; trying again in %.0f s", err, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


def _load_once(
    params: Mapping[str, str],
    schema: str,
    run: RunKey,
    tables: Sequence[TableLoad],
    wires: Mapping[str, pa.Schema],
) -> LoadResult:
    target = describe_target(params)
    stage = f"connecting to {target}"
    t0 = time.perf_counter()
    try:
        with psycopg.connect(make_conninfo("", **params), autocommit=True) as conn:
            stage = f"creating the tables in schema {schema!r}"
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                # CREATE SCHEMA needs CREATE on the database even when the schema exists: a
                # user given only an existing schema must not be asked for it.
                found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
                if found.fetchone() is None:
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                ensure_runs_table(conn, schema)
                for t in tables:
                    ensure_table(conn, schema, t, wires[t.name])
                    ensure_latest_view(conn, schema, t.name)
            rows: dict[str, int] = {}
            with conn.transaction():
                # Two loads of the same run wait for each other instead of colliding on the key.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{run.job}/{run.run_id}",)
                )
                for t in tables:
                    stage = f"loading {schema}.{t.name}"
                    rows[t.name] = _copy(conn, schema, t, wires[t.name], run)
                stage = f"recording the run in {schema}.{RUNS_TABLE}"
                _record_run(conn, schema, run)
                stage = "committing"
    except psycopg.Error as err:
        detail = str(err).strip().replace("\n", " ")
        kind = DatabaseUnavailable if is_transient(err) else SinkError
        raise kind(
            f"database load of run {run.run_id!r} failed while {stage} ({target}): {detail}; "
            "nothing of this load was committed (the run's earlier rows, if any, are unchanged)"
        ) from err
    except (OSError, pa.ArrowException) as err:  # reading a committed Parquet file
        raise SinkError(
            f"database load of run {run.run_id!r} failed while {stage}: {err}; "
            "nothing of this load was committed"
        ) from err
    return LoadResult(rows, time.perf_counter() - t0)
