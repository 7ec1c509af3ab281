"""A corpus of bad inputs, generated from the small market: one kind of damage per case, run
through the CLI of a job that reads the damaged dataset.

Every kind must fail with exit code 2, a message naming the dataset (and the file and the column
where there is one), no manifest and no partial table. The row-level kinds are also run with
``--on-bad-rows skip``: the run succeeds, its manifest lists what was skipped, and its tables
equal those of a run on the same input with the bad row deleted by hand (an independent way to
the same answer). The access-denied S3 object is in tests/test_s3_faults.py (it needs the
fault proxy).
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from analytics.errors import InputError
from tests.conftest import read_manifest, run_cli

DAY = "2024-03-28"  # the market's last session: it has orders, fills, bars and positions
NO_FILLS_ORDER = "O20240328-VRN-0003"  # an order of DAY without fills
FILES = {
    "prices": "prices/year=2024/part-0.parquet",
    "positions": "positions/year=2024/part-0.parquet",
    "orders": f"orders/date={DAY}/part-0.parquet",
    "fills": f"fills/date={DAY}/part-0.parquet",
    "bars": f"bars/date={DAY}/part-0.parquet",
}
JOB = {
    "prices": ["market-performance"],
    "positions": ["risk", "--as-of", DAY, "--lookback-days", "20"],
    "orders": ["tca", "--date", DAY],
    "fills": ["tca", "--date", DAY],
    "bars": ["tca", "--date", DAY],
}

Edit = Callable[[pa.Table], pa.Table]


def set_value(column: str, value: Any, *, row: int = 0, type_: pa.DataType | None = None) -> Edit:
    """Set one cell (``type_``: also change the column's type, e.g. a string in a number)."""

    def edit(table: pa.Table) -> pa.Table:
        values = table.column(column).to_pylist()
        values[row] = value
        field = pa.field(column, type_ or table.schema.field(column).type)
        array = pa.array([str(v) for v in values] if type_ == pa.string() else values, field.type)
        return table.set_column(table.schema.get_field_index(column), field, array)

    return edit


def set_where(column: str, value: Any, key: str, equals: str) -> Edit:
    """Set ``column`` to ``value`` on the rows whose ``key`` equals ``equals``."""

    def edit(table: pa.Table) -> pa.Table:
        hit = pc.equal(table.column(key), equals)
        replaced = pc.if_else(hit, pa.scalar(value, table.schema.field(column).type), table[column])
        return table.set_column(table.schema.get_field_index(column), column, replaced)

    return edit


def retype(column: str, type_: pa.DataType) -> Edit:
    def edit(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index(column)
        return table.set_column(index, pa.field(column, type_), table.column(column).cast(type_))

    return edit


def rename(column: str, to: str) -> Edit:
    return lambda t: t.rename_columns([to if c == column else c for c in t.column_names])


def drop(column: str) -> Edit:
    return lambda t: t.drop_columns([column])


def naive_ts(column: str) -> Edit:
    return retype(column, pa.timestamp("ns"))


def with_time_of_day(table: pa.Table) -> pa.Table:
    """orders.date written as a timestamp that has a time of day (a lossy cast to a date)."""
    ts = pc.add(
        table.column("date").cast(pa.timestamp("s")), pa.scalar(13 * 3600, pa.duration("s"))
    )
    return table.set_column(table.schema.get_field_index("date"), "date", ts)


def end_before_arrival(table: pa.Table) -> pa.Table:
    end = table.column("end_ts").to_pylist()
    end[2] = table.column("arrival_ts")[2].as_py() - pd.Timedelta(minutes=5)
    index = table.schema.get_field_index("end_ts")
    return table.set_column(
        index, table.schema.field(index), pa.array(end, table.schema.field(index).type)
    )


@dataclass(frozen=True)
class Kind:
    id: str
    dataset: str
    #: A change to the dataset's file, or a change to the whole input root.
    edit: Edit | None = None
    on_root: Callable[[Path], None] | None = None
    column: str | None = None
    needle: str = ""
    extra: tuple[str, ...] = ()
    names_file: bool = True
    #: For ``--on-bad-rows skip``: the same input with the bad row deleted by hand (None: the
    #: kind is not skippable).
    without: Edit | None = None


def without_row(row: int) -> Edit:
    def edit(table: pa.Table) -> pa.Table:
        index = row % table.num_rows
        return pa.concat_tables([table.slice(0, index), table.slice(index + 1)])

    return edit


def without(key: str, value: str) -> Edit:
    return lambda t: t.filter(pc.not_equal(t.column(key), value))


def _write(root: Path, dataset: str, edit: Edit) -> None:
    path = root / FILES[dataset]
    pq.write_table(edit(pq.read_table(path)), path)


def _not_parquet(root: Path) -> None:
    (root / FILES["fills"]).write_text("fill_id,order_id\nF1,O1\n")


def _truncated(root: Path) -> None:
    path = root / FILES["prices"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty_file(root: Path) -> None:
    (root / FILES["bars"]).write_bytes(b"")


def _copy_file(dataset: str, edit: Edit, name: str) -> Callable[[Path], None]:
    """A second file in the same folder: duplicate keys across files, or drift between them."""

    def change(root: Path) -> None:
        path = root / FILES[dataset]
        pq.write_table(edit(pq.read_table(path)), path.with_name(name))

    return change


def _empty_dataset(root: Path) -> None:
    shutil.rmtree(root / "positions")
    (root / "positions" / "year=2024").mkdir(parents=True)


def _first_rows(n: int) -> Edit:
    return lambda t: t.slice(0, n)


def _ghost(table: pa.Table) -> pa.Table:
    ghost = table.filter(pc.equal(table.column("date"), pa.scalar(pd.Timestamp(DAY).date())))
    ghost = ghost.slice(0, 1)
    symbols = pa.array(["GHOST"], pa.string())
    return pa.concat_tables([table, ghost.set_column(2, table.schema.field(2), symbols)])


def _duplicate_column(table: pa.Table) -> pa.Table:
    return table.append_column("close", table.column("close"))


def _special(dataset: str, make: Callable[[str], None]) -> Callable[[Path], None]:
    """A FIFO or a socket beside the dataset's file (reading a FIFO would hang)."""

    def change(root: Path) -> None:
        make(str((root / FILES[dataset]).with_name("special")))

    return change


def _socket(path: str) -> None:
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.close()  # the socket file stays


def _misfiled(column: str, row: int, shift_days: int) -> Edit:
    """Row ``row``'s time moved ``shift_days`` days: out of its year=/date= folder."""

    def edit(table: pa.Table) -> pa.Table:
        values = table.column(column).to_pylist()
        values[row] = values[row] - pd.Timedelta(days=shift_days).to_pytimedelta()
        index = table.schema.get_field_index(column)
        field = table.schema.field(index)
        return table.set_column(index, field, pa.array(values, field.type))

    return edit


def _duplicate_position(root: Path) -> None:
    path = root / FILES["positions"]
    table = pq.read_table(path)
    on_day = table.filter(pc.equal(table.column("date"), pa.scalar(pd.Timestamp(DAY).date())))
    pq.write_table(on_day.slice(0, 1), path.with_name("dup.parquet"))


KINDS = (
    # --- files that are not (whole) Parquet, or not files at all
    Kind(
        "fifo-in-dataset",
        "prices",
        on_root=_special("prices", os.mkfifo),
        needle="FIFO (named pipe), not a regular file",
        names_file=False,
    ),
    Kind(
        "socket-in-dataset",
        "bars",
        on_root=_special("bars", _socket),
        needle="socket, not a regular file",
        names_file=False,
    ),
    Kind(
        "duplicate-column-names",
        "prices",
        _duplicate_column,
        column="close",
        needle="duplicate column name(s): ['close']",
    ),
    Kind("truncated-parquet", "prices", on_root=_truncated, needle="not a readable Parquet"),
    Kind("not-parquet", "fills", on_root=_not_parquet, needle="not a readable Parquet"),
    Kind("empty-file", "bars", on_root=_empty_file, needle="not a readable Parquet"),
    # --- schema: drift between the files of one dataset, missing columns, types
    Kind(
        "drift-renamed-column",
        "bars",
        on_root=_copy_file(
            "bars", lambda t: rename("close", "last")(_first_rows(0)(t)), "x.parquet"
        ),
        column="close",
        needle="column is missing",
    ),
    Kind(
        "drift-int-id-in-one-file",
        "orders",
        on_root=_copy_file(
            "orders",
            lambda t: retype("order_id", pa.int64())(
                set_value("order_id", "7", row=0)(_first_rows(1)(t))
            ),
            "x.parquet",
        ),
        column="order_id",
        needle="cannot be read as string",
    ),
    Kind("missing-column-bars", "bars", drop("ask"), column="ask", needle="column is missing"),
    Kind("missing-column-orders", "orders", drop("broker"), column="broker", needle="missing"),
    Kind("missing-column-fills", "fills", drop("venue"), column="venue", needle="missing"),
    Kind(
        "string-in-numeric",
        "bars",
        set_value("volume", "12k", type_=pa.string()),
        column="volume",
        needle="cannot be read as double",
    ),
    Kind("naive-timestamps", "fills", naive_ts("ts"), column="ts", needle="no time zone"),
    Kind("date-with-time-of-day", "orders", with_time_of_day, column="date", needle="without loss"),
    # --- row values
    Kind(
        "nan-price",
        "prices",
        set_value("close", math.nan, row=40),
        column="close",
        needle="not > 0",
    ),
    Kind(
        "inf-bid",
        "bars",
        set_value("bid", math.inf, row=5),
        column="bid",
        # bid/ask need only be finite: a crossed or non-positive quote is skipped by the TCA
        needle="not finite",
        without=without_row(5),
    ),
    Kind(
        "non-positive-fill-price",
        "fills",
        set_value("price", 0.0, row=3),
        column="price",
        needle="not > 0",
        without=without_row(3),
    ),
    Kind(
        "zero-quantity-order",
        "orders",
        set_where("quantity", 0.0, "order_id", NO_FILLS_ORDER),
        column="quantity",
        needle="not > 0",
        without=without("order_id", NO_FILLS_ORDER),
    ),
    Kind(
        "negative-fee",
        "fills",
        set_value("fee", -0.5, row=7),
        column="fee",
        needle="not >= 0",
        without=without_row(7),
    ),
    Kind(
        "side-lower-case",
        "orders",
        set_where("side", "buy", "order_id", NO_FILLS_ORDER),
        column="side",
        needle="unexpected side value(s) ['buy']",
        without=without("order_id", NO_FILLS_ORDER),
    ),
    Kind(
        "side-title-case",
        "fills",
        set_value("side", "Sell", row=11),
        column="side",
        needle="unexpected side value(s) ['Sell']",
        without=without_row(11),
    ),
    Kind(
        "side-abbreviated",
        "orders",
        set_where("side", "B", "order_id", NO_FILLS_ORDER),
        column="side",
        needle="['B']",
        without=without("order_id", NO_FILLS_ORDER),
    ),
    Kind(
        "null-in-required-column",
        "orders",
        set_where("desk", None, "order_id", NO_FILLS_ORDER),
        column="desk",
        needle="missing value(s)",
        without=without("order_id", NO_FILLS_ORDER),
    ),
    Kind(
        "nan-position-quantity",
        "positions",
        set_value("quantity", math.nan, row=-1),
        column="quantity",
        needle="not finite",
        without=without_row(-1),
    ),
    Kind("end-before-arrival", "orders", end_before_arrival, column="end_ts", needle="end_ts"),
    # --- rows outside their year=/date= folder (partition pruning would drop them silently)
    Kind(
        "row-outside-year-folder",
        "prices",
        _misfiled("date", 0, 10),
        column="date",
        needle="outside the folder year=2024",
        without=without_row(0),
    ),
    Kind(
        "row-outside-date-folder",
        "fills",
        _misfiled("ts", 4, 1),
        column="ts",
        needle=f"outside the folder date={DAY}",
        without=without_row(4),
    ),
    Kind(
        "order-outside-date-folder",
        "orders",
        _misfiled("date", 0, 3),
        column="date",
        needle=f"outside the folder date={DAY}",
    ),
    # --- keys
    Kind(
        "duplicate-position-across-files",
        "positions",
        on_root=_duplicate_position,
        column="date, portfolio, symbol",
        needle="rows share a key",
    ),
    Kind(
        "duplicate-price-across-files",
        "prices",
        on_root=_copy_file("prices", _first_rows(1), "dup.parquet"),
        column="symbol, date",
        needle="1 duplicate (symbol, date) row(s)",
    ),
    Kind(
        "duplicate-order-id",
        "orders",
        on_root=_copy_file("orders", _first_rows(1), "dup.parquet"),
        column="order_id",
        needle="order_id",
    ),
    Kind(
        "duplicate-fill-id",
        "fills",
        on_root=_copy_file("fills", _first_rows(1), "dup.parquet"),
        column="fill_id",
        needle="fill_id",
    ),
    # --- selections that find nothing, references to nothing
    Kind(
        "empty-dataset-folder",
        "positions",
        on_root=_empty_dataset,
        needle="no files found",
        names_file=False,
    ),
    Kind(
        "date-range-without-data",
        "orders",
        extra=("--date", "2024-03-20"),
        needle="falls in 2024-03-20 .. 2024-03-20",
        names_file=False,
    ),
    Kind(
        "unknown-benchmark",
        "prices",
        extra=("--benchmark", "NOPE"),
        needle="'NOPE'",
        names_file=False,
    ),
    Kind(
        "position-in-unknown-symbol",
        "positions",
        _ghost,
        column="symbol",
        needle="GHOST",
        names_file=False,
    ),
)


def _setup(market: Path, root: Path, kind: Kind) -> None:
    shutil.copytree(market, root)
    if kind.edit is not None:
        _write(root, kind.dataset, kind.edit)
    if kind.on_root is not None:
        kind.on_root(root)


def _run(root: Path, out: Path, scheduler: str, kind: Kind, *extra: str) -> Any:
    args = [*JOB[kind.dataset], *kind.extra, *extra]
    return run_cli([*args, "--input", str(root), "--output", str(out), "--scheduler", scheduler])


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("_")):
        frame = pd.read_parquet(folder).drop(columns="run_id")  # each run has its own
        tables[folder.name] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return tables


@pytest.mark.parametrize("kind", KINDS, ids=[k.id for k in KINDS])
def test_bad_input_fails_clearly(market: Path, tmp_path: Path, scheduler: str, kind: Kind) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    _setup(market, root, kind)
    result = _run(root, out, scheduler, kind)
    err = result.stderr
    assert result.code == 2, err
    assert kind.needle in err, err
    assert f"dataset '{kind.dataset}'" in err, err
    if kind.column is not None:
        assert f"column '{kind.column}'" in err or f"column {kind.column!r}" in err, err
    if kind.names_file:
        assert "file '" in err and str(root) in err, err
    assert "Traceback" not in err
    assert read_manifest(str(out)) is None
    assert not list(out.rglob("*.parquet"))  # no partial table


def test_the_corpus_spans_the_datasets() -> None:
    assert len(KINDS) >= 20 and len({k.id for k in KINDS}) == len(KINDS)
    assert {k.dataset for k in KINDS} == set(FILES)


SKIPPABLE = [k for k in KINDS if k.without is not None]


@pytest.mark.parametrize("kind", SKIPPABLE, ids=[k.id for k in SKIPPABLE])
def test_skip_drops_the_bad_row_and_lists_it(
    market: Path, tmp_path: Path, scheduler: str, kind: Kind
) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    _setup(market, root, kind)
    result = _run(root, out, scheduler, kind, "--on-bad-rows", "skip")
    assert result.code == 0, result.stderr
    manifest = read_manifest(str(out))
    assert manifest is not None
    assert manifest["parameters"]["on_bad_rows"] == "skip"
    skipped = manifest["summary"]["skipped_rows"]
    assert [(s["dataset"], s["file"], s["column"], s["rows"]) for s in skipped] == [
        (kind.dataset, str(root / FILES[kind.dataset]), kind.column, 1)
    ]
    assert kind.needle in skipped[0]["reason"]  # the same words as the failure's message

    # The same input with the bad row deleted by hand gives the same tables.
    clean_root, clean_out = tmp_path / "clean", tmp_path / "clean-out"
    shutil.copytree(market, clean_root)
    assert kind.without is not None
    _write(clean_root, kind.dataset, kind.without)
    clean = _run(clean_root, clean_out, scheduler, kind)
    assert clean.code == 0, clean.stderr
    mine, theirs = _tables(out), _tables(clean_out)
    assert mine.keys() == theirs.keys() and mine
    for name in mine:
        pd.testing.assert_frame_equal(mine[name], theirs[name], obj=name)
    clean_manifest = read_manifest(str(clean_out))
    assert clean_manifest is not None and clean_manifest["summary"]["skipped_rows"] == []


def test_file_level_problems_fail_even_with_skip(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    kind = next(k for k in KINDS if k.id == "naive-timestamps")
    root, out = tmp_path / "in", tmp_path / "out"
    _setup(market, root, kind)
    result = _run(root, out, scheduler, kind, "--on-bad-rows", "skip")
    assert result.code == 2 and "no time zone" in result.stderr, result.stderr
    assert read_manifest(str(out)) is None


def test_skip_counts_each_reason_and_drops_each_row_once() -> None:
    from analytics.data.checks import check_values
    from analytics.data.schemas import FILLS

    table = pa.table(
        {
            "fill_id": ["a", "b", "c", "d"],
            "side": ["BUY", "Sell", None, "SELL"],
            "fee": [1.0, -2.0, math.nan, 0.0],
        }
    )
    kept, skipped = check_values(table, FILLS, "f.parquet", "skip")
    # b fails two checks (side, fee), c two (missing side, NaN fee): 2 rows go; one record per
    # (column, reason), the fee record counting both rows.
    assert kept.column("fill_id").to_pylist() == ["a", "d"]
    assert sorted((s["column"], s["reason"].split(" (")[0], s["rows"]) for s in skipped) == [
        ("fee", "value(s) not >= 0", 2),
        ("side", "missing value(s)", 1),
        ("side", "unexpected side value(s) ['Sell']; expected exactly ['BUY', 'SELL']", 1),
    ]
    with pytest.raises(
        InputError, match=r"column 'side': 1 missing value\(s\), first None at row 2"
    ):
        check_values(table, FILLS, "f.parquet", "fail")


def test_market_performance_skips_a_bad_close(market: Path, tmp_path: Path, scheduler: str) -> None:
    """market-performance honours --on-bad-rows skip too: the NaN row goes and is listed."""
    src = sorted((market / "prices").rglob("*.parquet"))[-1]
    root = tmp_path / "in"
    (root / "prices").mkdir(parents=True)
    table = pq.read_table(src)
    close = table.column("close").to_numpy().copy()
    close[5] = float("nan")
    pq.write_table(
        table.set_column(
            table.column_names.index("close"), "close", pa.array(close, from_pandas=False)
        ),
        root / "prices" / "p.parquet",
    )
    out = tmp_path / "run"
    result = run_cli(
        [
            "market-performance",
            "--input",
            str(root),
            "--output",
            str(out),
            "--scheduler",
            scheduler,
            "--on-bad-rows",
            "skip",
            "--run-id",
            "s",
        ]
    )
    assert result.code == 0, result.stderr
    manifest = read_manifest(str(out))
    assert manifest is not None
    skipped = manifest["summary"]["skipped_rows"]
    assert sum(entry["rows"] for entry in skipped) == 1
    assert skipped[0]["column"] == "close"


# --- the edges of the command line, the environment and the output folder: each a clean exit 2
# before any cluster starts (the run says nothing on stdout), no traceback, nothing deleted.

SECRET = "hunter2-s3cret"


@dataclass(frozen=True)
class Edge:
    id: str
    args: tuple[str, ...]
    needle: str
    #: Prepares the input root and the output folder.
    setup: Callable[[Path, Path], None] | None = None
    env: tuple[tuple[str, str], ...] = ()
    job: tuple[str, ...] = ("market-performance",)


def _foreign(root: Path, out: Path) -> None:
    out.mkdir()
    (out / "thesis.docx").write_bytes(b"not finbatch's")


def _other_job(root: Path, out: Path) -> None:
    out.mkdir()
    (out / "_manifest.json").write_text('{"job": "risk", "run_id": "same", "outputs": {}}')


def _output_is_a_file(root: Path, out: Path) -> None:
    out.write_text("a file")


EDGES = (
    Edge("output-is-the-input", ("--output", "{root}"), "holds the input dataset 'prices'"),
    Edge("output-inside-a-dataset", ("--output", "{root}/prices/x"), "is inside the input"),
    Edge("output-holds-foreign-files", (), "thesis.docx", setup=_foreign),
    Edge(
        "output-holds-another-jobs-run-with-the-same-run-id",
        ("--run-id", "same"),
        "already holds the committed run 'same' (job 'risk')",
        setup=_other_job,
    ),
    Edge("output-is-a-file", (), "is a file, not a folder", setup=_output_is_a_file),
    Edge("threads-per-worker-over-the-cap", ("--threads-per-worker", "100000"), "add --force"),
    Edge("workers-over-the-cap", ("--workers", "100000"), "add --force"),
    Edge("workers-zero", ("--workers", "0"), "--workers"),
    Edge("scheduler-not-a-url", ("--scheduler", "not a url"), "--scheduler 'not a url'"),
    Edge("scheduler-port-out-of-range", ("--scheduler", "tcp://h:99999"), "not an address"),
    Edge(
        "aws-endpoint-not-a-url",
        (),
        "AWS_ENDPOINT_URL 'not-a-url' is not an address",
        env=(("AWS_ENDPOINT_URL", "not-a-url"),),
    ),
    Edge(
        "input-of-an-unknown-scheme",
        ("--input", f"pg://user:{SECRET}@host/db"),
        "pg:// is not a place",
    ),
    Edge(
        "db-url-with-a-bad-port",
        ("--db-url", f"postgresql://user:{SECRET}@host:notaport/db"),
        "the port 'notaport'",
    ),
    Edge(
        "db-url-not-a-conninfo",
        ("--db-url", f"host=h password={SECRET} port"),
        "--db-url is not a PostgreSQL URL",
    ),
    Edge("db-schema-empty", ("--db-schema", ""), "is not a schema name"),
    Edge(
        "start-without-data-says-no-none",
        ("--start", "2031-01-01"),
        "falls in 2031-01-01 or later",
    ),
    Edge("start-after-end", ("--start", "2024-02-01", "--end", "2024-01-01"), "is after"),
    Edge(
        "grid-with-a-300-digit-number",
        ("--strategy", "sma-cross", "--grid", f"fast=2:{10**300}:1", "--grid", "slow=10:20:2"),
        "<a 301-digit number> values is too many",
        job=("backtest",),
    ),
    Edge(
        "lookback-days-overflow",
        ("--as-of", DAY, "--lookback-days", "99999999999"),
        "the lookback must be an integer",
        job=("risk",),
    ),
)


@pytest.mark.parametrize("edge", EDGES, ids=[e.id for e in EDGES])
def test_edges_exit_2_before_the_cluster(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edge: Edge
) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(market, root)
    if edge.setup is not None:
        edge.setup(root, out)
    for key, value in edge.env:
        monkeypatch.setenv(key, value)
    before = sorted(p for p in tmp_path.rglob("*"))
    args = [a.format(root=root) for a in edge.args]
    given = {a for a in args if a.startswith("--")}
    base = [] if "--input" in given else ["--input", str(root)]
    base += [] if "--output" in given else ["--output", str(out)]
    result = run_cli([*edge.job, *base, *args])
    assert result.code == 2, result.stderr
    assert edge.needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # no cluster started, nothing computed
    assert SECRET not in result.stdout + result.stderr
    assert not re.search(r"\d{25}", result.stderr), result.stderr  # no 300-digit numbers
    assert "None" not in result.stderr
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing deleted or added


def test_the_corpus_has_at_least_45_kinds() -> None:
    ids = [k.id for k in KINDS] + [e.id for e in EDGES]
    assert len(ids) >= 45 and len(set(ids)) == len(ids)


def test_no_worker_traceback_on_the_screen(market: Path, tmp_path: Path) -> None:
    """A real LocalCluster of worker processes: the bad input's message once, no worker
    ``Compute Failed`` record nor traceback on the terminal."""
    import subprocess
    import sys

    kind = next(k for k in KINDS if k.id == "nan-price")
    root, out = tmp_path / "in", tmp_path / "out"
    _setup(market, root, kind)
    where = ("--input", str(root), "--output", str(out))
    proc = subprocess.run(
        [sys.executable, "-m", "finbatch", *JOB["prices"], *where, "--workers", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count(kind.needle) == 1, proc.stderr
    assert "Compute Failed" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
