"""Benchmark of the database sink: loading 1,000,000 result rows into PostgreSQL.

In one run, against the same server and the same rows (a ``metrics``-shaped table: two text
keys, two dates, an integer and eleven float64 columns with NaN and ±inf), it measures:

(a) finbatch's sink (:func:`analytics.delivery.sink.load_run`): committed Parquet parts, read in
batches,
    written as CSV by pyarrow and streamed to ``COPY ... FROM STDIN (FORMAT csv)`` in one
    transaction; first into an empty table, then again as a rerun of the same run id (DELETE of
    the run's 1,000,000 rows, then COPY), which is what an AWS Batch retry does;
(b) the same through CSV: pyarrow's CSV writer to ``COPY ... (FORMAT csv)``, same table, same
    key, new table (the text path: the server parses every float);
(c) the peer most code would write: psycopg's own COPY with ``copy.write_row`` over Python
    tuples (``pyarrow.Table.to_pylist``), conversion included;
(d) row-by-row ``INSERT`` with ``executemany`` (on a sample: it is too slow for the whole
    table).

Each prints rows per second and the ratio of (a) to it, with the machine. The server is a local
PostgreSQL started for the run with its default durability (fsync on, as on RDS) on 127.0.0.1,
unless ``--db-url`` points at another (its password from ``PGPASSWORD``). A check at the end
compares the loaded rows' count and column sums with the Parquet's.

Run it with the project's virtualenv, from the repository root::

    python bench/db_sink.py [--rows 1000000] [--parts 4] [--db-url URL] [--sample 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.delivery import sink
from analytics.jobs.market_performance.kernel import METRIC_COLUMNS
from tests.postgres import local_postgres

FLOATS = METRIC_COLUMNS  # the job's own column list


def make_rows(n: int, seed: int = 0) -> pa.Table:
    """``n`` rows with a unique (symbol, period): 240 monthly periods per symbol, plus ALL."""
    rng = np.random.default_rng(seed)
    periods = ["ALL", *[f"{2005 + m // 12}-{m % 12 + 1:02d}" for m in range(239)]]
    n_symbols = math.ceil(n / len(periods))
    symbols = np.asarray([f"S{i:05d}" for i in range(n_symbols)])
    idx = np.arange(n)
    start = np.datetime64("2005-01-03") + (idx % 240).astype("timedelta64[D]") * 30
    columns: dict[str, pa.Array] = {
        "symbol": pa.array(symbols[idx // len(periods)]),
        "period": pa.array(np.asarray(periods)[idx % len(periods)]),
        "start": pa.array(start.astype("datetime64[D]"), pa.date32()),
        "end": pa.array((start + np.timedelta64(29, "D")).astype("datetime64[D]"), pa.date32()),
        "n_returns": pa.array(rng.integers(1, 2500, n), pa.int64()),
    }
    for name in FLOATS:
        values = rng.standard_normal(n)
        values[rng.random(n) < 0.01] = np.nan  # as metrics have: too few returns
        values[rng.random(n) < 0.001] = np.inf  # a Sortino ratio without a losing day
        columns[name] = pa.array(values)
    return pa.table(columns)


def write_parts(table: pa.Table, folder: Path, parts: int) -> tuple[str, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    size = math.ceil(table.num_rows / parts)
    urls = []
    for i in range(parts):
        path = folder / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(i * size, size), path, compression="zstd")
        urls.append(str(path))
    return tuple(urls)


@contextmanager
def server(url: str | None) -> Iterator[Mapping[str, str]]:
    if url:
        yield sink.connection_params(url)
        return
    with local_postgres(durable=True) as local:
        yield local.params


def peer_csv(params: Mapping[str, str], table: pa.Table) -> float:
    """pyarrow CSV into ``COPY ... (FORMAT csv)``, batch by batch, with the primary key."""
    names = table.column_names
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.peer_csv")
        types = ", ".join(f'"{c}" {sink.pg_type(table.schema.field(c).type)}' for c in names)
        key = "PRIMARY KEY (run_id, symbol, period)"
        conn.execute(f"CREATE TABLE public.peer_csv (run_id text, {types}, {key})")
        columns = ", ".join(f'"{c}"' for c in ["run_id", *names])
        options = pacsv.WriteOptions(include_header=False)
        t0 = time.perf_counter()
        statement = f"COPY public.peer_csv ({columns}) FROM STDIN (FORMAT csv)"
        with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
            for batch in table.to_batches(65_536):
                run = pa.array(["peer"] * batch.num_rows)
                out = io.BytesIO()
                pacsv.write_csv(
                    pa.Table.from_batches([batch]).add_column(0, "run_id", run), out, options
                )
                copy.write(out.getvalue())
        return table.num_rows / (time.perf_counter() - t0)


def peer_write_row(params: Mapping[str, str], table: pa.Table) -> float:
    """psycopg's COPY with ``write_row`` over Python tuples; returns rows/s."""
    names = table.column_names
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.peer_copy")
        types = ", ".join(f'"{c}" {sink.pg_type(table.schema.field(c).type)}' for c in names)
        conn.execute(f"CREATE TABLE public.peer_copy (run_id text, {types})")
        columns = ", ".join(f'"{c}"' for c in ["run_id", *names])
        t0 = time.perf_counter()
        statement = f"COPY public.peer_copy ({columns}) FROM STDIN"
        with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
            for batch in table.to_batches(65_536):
                for row in batch.to_pylist():
                    copy.write_row(("peer", *row.values()))
        return table.num_rows / (time.perf_counter() - t0)


def peer_insert(params: Mapping[str, str], table: pa.Table) -> float:
    """Row-by-row INSERT (``executemany``) of ``table``; returns rows/s."""
    names = table.column_names
    rows = [("peer", *r.values()) for r in table.to_pylist()]
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.peer_insert")
        conn.execute("CREATE TABLE public.peer_insert (LIKE public.peer_copy)")
        columns = ", ".join(f'"{c}"' for c in ["run_id", *names])
        marks = ", ".join(["%s"] * (len(names) + 1))
        t0 = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(f"INSERT INTO public.peer_insert ({columns}) VALUES ({marks})", rows)
        return len(rows) / (time.perf_counter() - t0)


def check(params: Mapping[str, str], table: pa.Table, run_id: str) -> str:
    with psycopg.connect(**params) as conn:
        count, total = conn.execute(
            "SELECT count(*), sum(sharpe) FILTER (WHERE sharpe <> 'NaN' AND sharpe < 'Infinity') "
            "FROM bench.market_performance_metrics WHERE run_id = %s",
            (run_id,),
        ).fetchone() or (0, 0.0)
    sharpe = table.column("sharpe").to_numpy()
    expected = float(sharpe[np.isfinite(sharpe)].sum())
    ok = count == table.num_rows and math.isclose(float(total), expected, rel_tol=1e-9)
    return (
        f"{'OK' if ok else 'MISMATCH'}: {count:,} rows, sum(sharpe) {total:.9g} vs {expected:.9g}"
    )


def machine(params: Mapping[str, str]) -> list[tuple[str, str]]:
    cpu = platform.processor() or "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    with psycopg.connect(**params) as conn:
        row = conn.execute("SELECT version()").fetchone()
        version = str(row[0]).split(" on ")[0] if row else "?"
    return [
        ("CPU", cpu),
        ("cores", f"{len(os.sched_getaffinity(0))} usable ({os.cpu_count()} online)"),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("server", f"{version} at {sink.describe_target(params)}"),
        *[(n, metadata.version(n)) for n in ("psycopg", "psycopg-binary", "pyarrow")],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--sample", type=int, default=20_000, help="rows for the INSERT peer")
    parser.add_argument("--db-url", help="an existing server (default: a local one)")
    args = parser.parse_args()

    table = make_rows(args.rows)
    scratch = Path(tempfile.mkdtemp(prefix="finbatch-dbbench-"))
    try:
        files = write_parts(table, scratch / "metrics", args.parts)
        load = sink.TableLoad("market_performance_metrics", ("symbol", "period"), files)
        run = sink.RunKey("bench", "market-performance", dt.date(2024, 12, 31))
        wire = sink.table_schema(load)
        t0 = time.perf_counter()
        encoded = sum(len(c) for c, _ in sink.copy_chunks(load, wire, run))
        encode_s = time.perf_counter() - t0
        with server(args.db_url) as params:
            for name, value in machine(params):
                print(f"{name:>15}: {value}")
            print(f"{'rows':>15}: {table.num_rows:,} in {args.parts} Parquet parts")
            first = sink.load_run(params, "bench", run, [load])
            rerun = sink.load_run(params, "bench", run, [load])
            csv_rate = peer_csv(params, table)
            copy_rate = peer_write_row(params, table)
            insert_rate = peer_insert(params, table.slice(0, args.sample))
            verdict = check(params, table, run.run_id)
        rate = table.num_rows / first.seconds
        rerun_rate = table.num_rows / rerun.seconds
        print()
        print(
            f"encoding alone (Parquet to binary COPY): {table.num_rows / encode_s:,.0f} rows/s "
            f"({encoded / 2**20:,.0f} MiB)"
        )
        rows = [
            ("finbatch sink, new table (COPY binary)", rate),
            ("finbatch sink, rerun: DELETE + COPY", rerun_rate),
            ("pyarrow CSV + COPY csv (peer)", csv_rate),
            ("psycopg COPY write_row (peer)", copy_rate),
            (f"executemany INSERT ({args.sample:,} rows; peer)", insert_rate),
        ]
        for label, value in rows:
            print(f"{label:<45} {value:>12,.0f} rows/s   finbatch is {rate / value:,.1f}x")
        print(f"check: {verdict}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
