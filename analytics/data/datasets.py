"""Finding, reading and validating the input datasets (local folder or ``s3://``).

Listing and pruning happen on the driver (:func:`list_files`); reading happens in Dask tasks
(:func:`read_file`, one file or some of its row groups at a time, so a worker reads straight
from storage; :mod:`analytics.data.reads` plans which files each task reads). Every error names
the dataset, the file and the column.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.data.schemas import DATASETS, Dataset
from analytics.data.storage import (
    credential_problem,
    full_url,
    is_local,
    join,
    open_fs,
    transport_errors,
)
from analytics.errors import FinbatchError, InputError, StorageError

if TYPE_CHECKING:
    import pandas as pd

_HIVE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$")
_SKIP_PREFIXES = ("_", ".")

OnBadRows = Literal["fail", "skip"]
#: ``--on-bad-rows`` choices. Only row-level problems are skippable (a missing, NaN, infinite
#: or out-of-range value in a checked column, a side other than BUY/SELL); a file that cannot
#: be read, a missing or retyped column, time zones and duplicate keys always fail.
ON_BAD_ROWS: Final = ("fail", "skip")
#: A remote file of at most this many bytes is fetched whole, in one request: below this,
#: a request's latency costs more than the bytes of the columns a job does not read.
WHOLE_FILE_BYTES: Final = 2 * 2**20


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of a dataset, with the hive partition values found in its path."""

    url: str
    size: int
    partition: tuple[tuple[str, str], ...] = ()
    #: What changes when the file's content does: the object's ETag on S3, size and
    #: modification time locally (a file rewritten in place with the same size is seen).
    version: str = ""


@dataclass(frozen=True)
class Selection:
    """What to read: a time range (inclusive dates) and optionally some symbols."""

    start: dt.date | None = None
    end: dt.date | None = None
    symbols: tuple[str, ...] | None = None
    extra_symbols: tuple[str, ...] = field(default=())
    #: What to do with a row that fails a value check: fail the run, or drop the row.
    on_bad_rows: OnBadRows = "fail"
    #: Where skipped rows are reported: a Dask event topic (see :func:`skipped_rows`).
    skip_topic: str | None = None

    @property
    def symbol_filter(self) -> tuple[str, ...] | None:
        if self.symbols is None:
            return None
        return tuple(sorted(set(self.symbols) | set(self.extra_symbols)))


def span(start: dt.date | None, end: dt.date | None) -> str:
    """A date range in words, an open end said as such (never "None .. None")."""
    if start is None and end is None:
        return "any date"
    if start is None:
        return f"any date up to {end}"
    if end is None:
        return f"{start} or later"
    return f"{start} .. {end}"


def dataset(name: str) -> Dataset:
    return DATASETS[name]


# ---------------------------------------------------------------------------------------------
# Listing and partition pruning (driver side)


def _partition_values(relative: str) -> tuple[tuple[str, str], ...]:
    values = []
    for part in relative.split("/")[:-1]:
        match = _HIVE.match(part)
        if match:
            values.append((match.group(1), match.group(2)))
    return tuple(values)


def _in_range(partition: Iterable[tuple[str, str]], sel: Selection, where: str) -> bool:
    for key, value in partition:
        try:
            if key == "year":
                year = int(value)
                if (sel.start and year < sel.start.year) or (sel.end and year > sel.end.year):
                    return False
            elif key == "date":
                day = dt.date.fromisoformat(value)
                if (sel.start and day < sel.start) or (sel.end and day > sel.end):
                    return False
        except ValueError as err:
            raise InputError(
                f"partition folder {key}={value!r} is not a valid {key}", file=where
            ) from err
    return True


def _is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def _storage_error(url: str, name: str, err: BaseException) -> FinbatchError:
    credentials = credential_problem(err)
    if credentials is not None:  # no retry helps: the environment must change (exit 2)
        return InputError(credentials, dataset=name, file=url)
    return StorageError(
        f"dataset {name!r}, file {url!r}: storage kept failing after its retries "
        f"({type(err).__name__}: {err}); the input may be fine: run the job again, or raise "
        "AWS_MAX_ATTEMPTS"
    )


def _version(info: dict[str, Any], size: int) -> str:
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"etag:{str(etag).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or ""
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return f"size:{size}:mtime:{mtime!r}"


def _special_kind(info: dict[str, Any]) -> str:
    import stat

    mode = int(info.get("mode") or 0)
    for test, kind in (
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return kind
    return f"special file ({info.get('type')})"


def list_files(input_url: str, name: str, sel: Selection) -> list[DataFile]:
    """The dataset's Parquet files under ``input_url/name``, pruned by hive ``year``/``date``.

    Raises :class:`InputError` when the folder is missing or empty, or when no file can hold
    rows of the selected range.
    """
    root = join(input_url, name)
    fs, path = open_fs(root)
    try:
        # One listing of everything under the prefix (on S3 a ListObjectsV2 without a
        # delimiter, paginated): no request per folder, and no separate "is it a folder?".
        found = fs.find(path, detail=True)
    except PermissionError as err:
        raise InputError(f"cannot list {root}: access denied ({err})", dataset=name) from err
    except transport_errors() as err:
        raise _storage_error(root, name, err) from err
    except OSError as err:
        if _is_remote(root):
            raise _storage_error(root, name, err) from err
        raise InputError(f"cannot list {root}: {err}", dataset=name) from err
    files = []
    for key, info in sorted(found.items()):
        if key.rstrip("/") == path:
            continue  # the dataset's path is a file (or a folder marker), not a folder
        relative = key[len(path) :].lstrip("/")
        if info.get("type") == "directory" or any(
            part.startswith(_SKIP_PREFIXES) for part in relative.split("/")
        ):
            continue
        if info.get("type") not in (None, "file"):  # reading a FIFO would hang forever
            raise InputError(
                f"{key} is a {_special_kind(info)}, not a regular file: a dataset folder "
                "holds only Parquet files (remove it)",
                dataset=name,
            )
        size = int(info.get("size") or 0)
        files.append(
            DataFile(full_url(fs, key), size, _partition_values(relative), _version(info, size))
        )
    if not files:
        raise InputError(
            f"no files found under {root} (expected a folder of Parquet files)", dataset=name
        )
    selected = [f for f in files if _in_range(f.partition, sel, f.url)]
    if not selected:
        raise InputError(
            f"no partition of {root} falls in {span(sel.start, sel.end)}", dataset=name
        )
    return selected


# ---------------------------------------------------------------------------------------------
# Reading one file (runs in a Dask task)


def _target_type(ds: Dataset, column: str, categorical: bool) -> pa.DataType:
    target = ds.column(column).type
    if categorical and pa.types.is_string(target):
        return pa.dictionary(pa.int32(), pa.string())
    return target


def _compatible(source: pa.DataType, target: pa.DataType) -> bool:
    """Which type families may be cast (the cast itself then checks it loses nothing)."""
    if pa.types.is_dictionary(source):
        source = source.value_type
    if pa.types.is_dictionary(target):
        target = target.value_type
    if pa.types.is_floating(target):
        return bool(pa.types.is_floating(source) or pa.types.is_integer(source))
    if pa.types.is_string(target):
        return bool(pa.types.is_string(source) or pa.types.is_large_string(source))
    if pa.types.is_date(target):
        return bool(pa.types.is_date(source) or pa.types.is_timestamp(source))
    if pa.types.is_timestamp(target):
        return bool(pa.types.is_timestamp(source))
    return bool(source == target)


def _cast(column: pa.ChunkedArray, target: pa.DataType, name: str, ds: Dataset, url: str) -> Any:
    source = column.type
    if source == target:
        return column
    if not _compatible(source, target):
        raise InputError(
            f"has type {source}, which cannot be read as {target}",
            dataset=ds.name,
            file=url,
            column=name,
        )
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(source) and source.tz is None:
        raise InputError(
            f"timestamps have no time zone ({source}); finbatch needs UTC timestamps "
            "(write them tz-aware, e.g. timestamp[ns, tz=UTC])",
            dataset=ds.name,
            file=url,
            column=name,
        )
    try:
        if pa.types.is_dictionary(target) and not pa.types.is_dictionary(source):
            return pc.dictionary_encode(column.cast(pa.string()))
        cast = column.cast(target, safe=True)
        if pa.types.is_date(target) and pa.types.is_timestamp(source):
            # pyarrow truncates a time of day silently: a date column must hold whole days.
            kept = pc.equal(cast.cast(source), column)
            if not pc.all(kept).as_py():
                first = column.filter(pc.invert(kept))[0]
                raise pa.ArrowInvalid(f"{first} has a time of day, which a date would drop")
        return cast
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise InputError(
            f"has type {source}, which cannot be cast to {target} without loss: {err}",
            dataset=ds.name,
            file=url,
            column=name,
        ) from err


def _time_bounds(ds: Dataset, sel: Selection) -> tuple[pa.Scalar | None, pa.Scalar | None]:
    target = ds.column(ds.time_column).type
    if pa.types.is_date(target):
        low = pa.scalar(sel.start, pa.date32()) if sel.start else None
        high = pa.scalar(sel.end, pa.date32()) if sel.end else None
        return low, high
    day = dt.timedelta(days=1)
    import pandas as pd

    low = pd.Timestamp(sel.start, tz="UTC") if sel.start else None
    high = pd.Timestamp(sel.end + day, tz="UTC") - pd.Timedelta(1, "ns") if sel.end else None
    return (
        pa.scalar(low, target) if low is not None else None,
        pa.scalar(high, target) if high is not None else None,
    )


def _may_hold(stats: Any, low: Any, high: Any) -> bool:
    """Whether a row group whose ``stats`` (min and max of a column) are those may hold a value
    in [low, high] (True when the statistics cannot tell)."""
    if stats is None or not stats.has_min_max:
        return True
    try:
        return not (
            (high is not None and stats.min > high) or (low is not None and stats.max < low)
        )
    except TypeError:
        return True


def _may_hold_any(stats: Any, values: Sequence[str]) -> bool:
    """Whether a row group may hold one of the sorted ``values`` (True when it cannot tell)."""
    if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
        return True
    if not getattr(stats, "is_min_value_exact", True) or not getattr(
        stats, "is_max_value_exact", True
    ):
        return True
    first = bisect.bisect_left(values, stats.min)
    return first < len(values) and values[first] <= stats.max


def _row_groups(
    meta: pq.FileMetaData,
    column: str,
    low: Any,
    high: Any,
    symbols: Sequence[str] | None = None,
) -> list[int] | None:
    """Row groups whose statistics may overlap [low, high] on ``column`` and hold one of the
    sorted ``symbols`` (None: read all)."""
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    time_index = names.index(column) if column in names and (low, high) != (None, None) else None
    symbol_index = names.index("symbol") if symbols is not None and "symbol" in names else None
    if time_index is None and symbol_index is None:
        return None
    keep = []
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        if time_index is not None and not _may_hold(group.column(time_index).statistics, low, high):
            continue
        if symbol_index is not None and not _may_hold_any(
            group.column(symbol_index).statistics, symbols or ()
        ):
            continue
        keep.append(rg)
    return None if len(keep) == meta.num_row_groups else keep


@contextlib.contextmanager
def _source(fs: Any, path: str, size: int | None) -> Iterator[Any]:
    """What pyarrow reads the file from: the path itself for a local file (pyarrow's own I/O,
    no Python in the loop), the whole object fetched in one request for a small remote file
    (one GET instead of a HEAD and two ranged GETs), else a file handle."""
    if is_local(fs):
        yield path
    elif size is not None and size <= WHOLE_FILE_BYTES:
        yield pa.BufferReader(fs.cat_file(path))
    else:
        with fs.open(path, "rb") as handle:
            yield handle


def read_file(
    url: str,
    name: str,
    columns: Sequence[str] | None,
    sel: Selection,
    *,
    categorical: bool = False,
    check_keys: bool = True,
    row_groups: Sequence[int] | None = None,
    size: int | None = None,
) -> pa.Table:
    """Read one file of dataset ``name``: project, cast to the canonical types, filter, validate.

    ``categorical`` keeps string columns dictionary-encoded (pandas ``category``), which is much
    cheaper for long tables of repeated symbols. ``row_groups`` reads only those row groups of
    the file (a read unit's share of a large file, :mod:`analytics.data.reads`); None reads all.
    ``size`` is the file's size from the listing: a remote file of at most
    :data:`WHOLE_FILE_BYTES` is then fetched in one request. Row groups whose statistics show no
    row of the selected dates, or of the selected symbols, are not read.
    """
    ds = dataset(name)
    wanted = list(columns) if columns is not None else ds.names
    time_col = ds.time_column
    fs, path = open_fs(url)
    try:
        with _source(fs, path, size) as source:
            parquet = pq.ParquetFile(source)
            names = parquet.schema_arrow.names
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise InputError(
                    f"the file has {len(twice)} duplicate column name(s): {twice}; "
                    "write each column once",
                    dataset=name,
                    file=url,
                    column=twice[0],
                )
            present = set(names)
            for col in wanted:
                if col not in present and ds.column(col).required:
                    raise InputError(
                        f"column is missing (the file has {sorted(present)})",
                        dataset=name,
                        file=url,
                        column=col,
                    )
            to_read = [c for c in dict.fromkeys([*wanted, time_col]) if c in present]
            low, high = _time_bounds(ds, sel)
            groups = _row_groups(parquet.metadata, time_col, _py(low), _py(high), sel.symbol_filter)
            if row_groups is not None:
                groups = [g for g in (row_groups if groups is None else groups) if g in row_groups]
            dictionaries = [c for c in to_read if categorical and ds.column(c).type == pa.string()]
            if dictionaries:
                parquet = pq.ParquetFile(
                    source, metadata=parquet.metadata, read_dictionary=dictionaries
                )
            # pyarrow's thread pool costs more than it saves on a small file (a read unit's
            # many small files are read one after another by one task).
            threads = size is None or size > WHOLE_FILE_BYTES
            table = (
                parquet.read(columns=to_read, use_threads=threads)
                if groups is None
                else parquet.read_row_groups(groups, columns=to_read, use_threads=threads)
            )
    except InputError:
        raise
    except FileNotFoundError as err:
        raise InputError(f"file not found: {err}", dataset=name, file=url) from err
    except PermissionError as err:
        raise InputError(f"access denied: {err}", dataset=name, file=url) from err
    except transport_errors() as err:
        raise _storage_error(url, name, err) from err
    except OSError as err:
        if not isinstance(err, pa.ArrowException) and _is_remote(url):
            raise _storage_error(url, name, err) from err
        raise InputError(
            f"not a readable Parquet file (corrupt, truncated or another format): {err}",
            dataset=name,
            file=url,
        ) from err
    except (pa.ArrowException, ValueError) as err:
        raise InputError(
            f"not a readable Parquet file (corrupt, truncated or another format): {err}",
            dataset=name,
            file=url,
        ) from err

    arrays = {}
    for col in table.column_names:
        arrays[col] = _cast(table.column(col), _target_type(ds, col, categorical), col, ds, url)
    absent = [c for c in wanted if c not in arrays]  # optional columns this file does not have
    for col in absent:
        arrays[col] = pa.nulls(table.num_rows, ds.column(col).type)
    table = pa.table(arrays)
    table, misfiled = _check_folder_range(table, ds, url, sel.on_bad_rows)

    mask = None
    if low is not None:
        mask = pc.greater_equal(table.column(time_col), low)
    if high is not None:
        upper = pc.less_equal(table.column(time_col), high)
        mask = upper if mask is None else pc.and_(mask, upper)
    symbols = sel.symbol_filter
    if symbols is not None and "symbol" in table.column_names:
        keep = pc.is_in(table.column("symbol"), value_set=pa.array(symbols, pa.string()))
        mask = keep if mask is None else pc.and_(mask, keep)
    if mask is not None:
        table = table.filter(mask)
    table = table.select(wanted)
    from analytics.data.checks import check_unique, check_values, report_skips

    checked, skipped = check_values(table.drop_columns(absent), ds, url, sel.on_bad_rows)
    skipped = misfiled + skipped
    if skipped:
        for col in absent:
            checked = checked.append_column(col, pa.nulls(checked.num_rows, ds.column(col).type))
        table = checked.select(wanted)
        report_skips(sel.skip_topic, skipped)
    if check_keys and set(ds.key) <= set(table.column_names) and table.num_rows:
        check_unique(table.to_pandas(), ds, url)
    return table


def _folder_range(url: str) -> tuple[str, dt.date, dt.date] | None:
    """The dates a file's ``year=``/``date=`` folder stands for: (folder, first, last)."""
    found = None
    for part in url.split("/")[:-1]:
        match = _HIVE.match(part)
        if not match:
            continue
        key, value = match.groups()
        try:
            if key == "year":
                found = (part, dt.date(int(value), 1, 1), dt.date(int(value), 12, 31))
            elif key == "date":
                day = dt.date.fromisoformat(value)
                found = (part, day, day)
        except ValueError:
            continue  # the listing names a malformed folder
    return found


def _check_folder_range(
    table: pa.Table, ds: Dataset, url: str, on_bad_rows: str
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Rows outside their ``year=``/``date=`` folder's dates: an error, or skipped and counted.

    Partition pruning trusts the folders, so a misfiled row would be dropped without a word by
    one selection and kept by another."""
    folder = _folder_range(url)
    column = ds.time_column
    if folder is None or column not in table.column_names or not table.num_rows:
        return table, []
    part, first, last = folder
    values = table.column(column)
    if pa.types.is_timestamp(values.type):
        values = pc.cast(pc.floor_temporal(values, unit="day"), pa.timestamp("s", "UTC"))
        values = pc.cast(values, pa.date32())
    outside = pc.or_(
        pc.less(values, pa.scalar(first, pa.date32())),
        pc.greater(values, pa.scalar(last, pa.date32())),
    )
    n_bad = int(pc.sum(outside).as_py() or 0)
    if not n_bad:
        return table, []
    what = f"row(s) outside the folder {part} ({first} .. {last})"
    if on_bad_rows != "skip":
        row = int(pc.index(outside, True).as_py())
        raise InputError(
            f"{n_bad} {what}, first {values[row].as_py()} at row {row} "
            "(move them to their folder, or --on-bad-rows skip drops such rows)",
            dataset=ds.name,
            file=url,
            column=column,
        )
    record = {"dataset": ds.name, "file": url, "column": column, "reason": what, "rows": n_bad}
    return table.filter(pc.invert(outside)), [record]


def _py(scalar: pa.Scalar | None) -> Any:
    return None if scalar is None else scalar.as_py()


def empty_frame(name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """An empty pandas frame with the dataset's canonical dtypes (Dask ``meta``)."""
    ds = dataset(name)
    wanted = list(columns) if columns is not None else ds.names
    schema = pa.schema([pa.field(c, ds.column(c).type) for c in wanted])
    frame: pd.DataFrame = schema.empty_table().to_pandas()
    return frame


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with datetime64 dates (not Python ``date`` objects)."""
    frame: pd.DataFrame = table.to_pandas(date_as_object=False)
    return frame


# ---------------------------------------------------------------------------------------------
# --on-bad-rows skip: what was dropped goes to the manifest through Dask events


def with_bad_rows(sel: Selection, on_bad_rows: str) -> Selection:
    """``sel`` with the ``--on-bad-rows`` policy; ``skip`` gets a fresh event topic."""
    if on_bad_rows not in ON_BAD_ROWS:
        raise InputError(f"--on-bad-rows {on_bad_rows!r}: expected one of {list(ON_BAD_ROWS)}")
    if on_bad_rows == "fail":
        return replace(sel, on_bad_rows="fail", skip_topic=None)
    return replace(sel, on_bad_rows="skip", skip_topic=f"finbatch-skipped-{uuid.uuid4().hex}")


def skipped_rows(client: Any, *selections: Selection) -> list[dict[str, Any]]:
    """What the reads of ``selections`` skipped (for the manifest's summary), one record per
    (dataset, file, column, reason), each file counted once even if its task ran twice."""
    from analytics.data.checks import collect_skips

    return collect_skips(client, [s.skip_topic for s in selections if s.skip_topic])
