"""Loading a committed run's result tables into PostgreSQL (for example RDS) with COPY.

One database table per result table, in a schema (default ``finbatch``): the run's ``run_id``,
``job`` and ``as_of`` first, then the result table's own columns. The primary key is the run id
and the table's natural key, which the job declares (:mod:`analytics.delivery.database`). A load
is one transaction: for every table, delete the run's rows, then COPY the new ones; commit. Any
failure rolls back, so the rows of an earlier load of the same run stay as they were, and a
reader never sees half a run.

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
from analytics.errors import FinbatchError

log = logging.getLogger(__name__)

DEFAULT_SCHEMA: Final = "finbatch"
#: Rows per chunk sent to COPY: a few MB, so memory stays flat and the stream stays busy.
BATCH_ROWS: Final = 65_536
#: Seconds to wait for the server: an unreachable RDS endpoint fails quickly instead of hanging.
CONNECT_TIMEOUT_S: Final = 30
#: Advisory lock serializing the DDL of concurrent loads (``CREATE ... IF NOT EXISTS`` of two
#: sessions can still collide on the catalog's unique index).
_DDL_LOCK: Final = 0x66696E62
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


class SinkError(FinbatchError):
    """The database load failed (exit code 1); the run's Parquet outputs stay committed."""


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


def table_name(job: str, table: str) -> str:
    """The database table of a job's result table: ``risk`` + ``var`` -> ``risk_var``."""
    return re.sub(r"[^0-9a-z]+", "_", f"{job}_{table}".lower()).strip("_")[:63]


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
    clash = sorted({"run_id", "job", *derived} & set(own.names))
    if clash:
        raise SinkError(f"{table.name}: the result table has reserved column(s) {clash}")
    missing = sorted(set(table.key) - set(own.names) - set(derived))
    if missing:
        raise SinkError(f"{table.name}: declared key column(s) {missing} are not in the table")
    as_of = own.field("as_of").type if "as_of" in own.names else pa.date32()
    if not pa.types.is_date(as_of):
        raise SinkError(f"{table.name}: the table's own as_of column is {as_of}, not a date")
    run = [pa.field("run_id", pa.string()), pa.field("job", pa.string())]
    run.append(pa.field("as_of", pa.date32()))
    rest = [pa.field(f.name, _wire_type(f.type)) for f in own if f.name != "as_of"]
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
    params: Mapping[str, str], schema: str, run: RunKey, tables: Sequence[TableLoad]
) -> LoadResult:
    """Replace the run's rows in each table's database table, all in one transaction.

    The tables (and the schema) are created when missing and gain the run's new columns first,
    in a transaction of their own (DDL is idempotent). Raises :class:`SinkError` naming the
    table on any failure, after which the database holds exactly what it held before.
    """
    wires = {t.name: table_schema(t) for t in tables}  # the files' footers: fail before we connect
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
                for t in tables:
                    ensure_table(conn, schema, t, wires[t.name])
            rows: dict[str, int] = {}
            with conn.transaction():
                # Two loads of the same run wait for each other instead of colliding on the key.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{run.job}/{run.run_id}",)
                )
                for t in tables:
                    stage = f"loading {schema}.{t.name}"
                    rows[t.name] = _copy(conn, schema, t, wires[t.name], run)
                stage = "committing"
    except psycopg.Error as err:
        detail = str(err).strip().replace("\n", " ")
        raise SinkError(
            f"database load of run {run.run_id!r} failed while {stage} ({target}): {detail}; "
            "nothing of this load was committed (the run's earlier rows, if any, are unchanged)"
        ) from err
    except (OSError, pa.ArrowException) as err:  # reading a committed Parquet file
        raise SinkError(
            f"database load of run {run.run_id!r} failed while {stage}: {err}; "
            "nothing of this load was committed"
        ) from err
    return LoadResult(rows, time.perf_counter() - t0)
