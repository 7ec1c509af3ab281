"""The run folder (``--output``): parts, the atomic put, preparing, discarding, committing.

A run exists only once its ``_manifest.json`` does, and the manifest is written last. Part names
are deterministic (``TABLE/part-00003.parquet``), so a retry overwrites instead of duplicating.
Every small file the run folder holds (the manifest, the progress record, ``report.html``) is
written with :func:`put`: one PUT on S3, a temporary file and a rename locally, so a reader
never sees half a file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analytics.data.storage import full_url, is_local, join, open_fs
from analytics.errors import InputError, OutputError
from analytics.run.manifest import MANIFEST, FileEntry, FileSet, Manifest

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from analytics.run import ownership

log = logging.getLogger(__name__)


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class WrittenPart:
    table: str
    url: str
    rows: int
    size: int


def put(url: str, body: bytes, *, content_type: str | None = None) -> None:
    """Write ``body`` at ``url`` whole or not at all (one PUT on S3; temp file + rename
    locally). ``content_type`` sets the S3 object's Content-Type (a report opened from S3
    renders as a page)."""
    fs, path = open_fs(url)
    if is_local(fs):
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.tmp"
        with fs.open(tmp, "wb") as handle:
            handle.write(body)
        fs.mv(tmp, path)
        return
    extra = {"ContentType": content_type} if content_type else {}
    with fs.open(path, "wb", **extra) as handle:
        handle.write(body)


def get(url: str) -> bytes | None:
    """The bytes at ``url``, or None when there is no such file."""
    fs, path = open_fs(url)
    try:
        with fs.open(path, "rb") as handle:
            data: bytes = handle.read()
    except FileNotFoundError:
        return None
    return data


#: The column every result table starts with: the run that wrote the row, so that the tables
#: of several runs loaded side by side (a data lake, a database) can be told apart.
RUN_ID = "run_id"
#: Timestamps are written in microseconds, UTC: Spark and older Athena engines read Parquet's
#: nanosecond timestamps as integers, and PostgreSQL keeps microseconds anyway.
TIMESTAMP_UNIT = "us"


@dataclass(frozen=True)
class Destination:
    """Where a run's parts go: its output folder, and the run id every row carries."""

    url: str
    run_id: str


def to_arrow(frame: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """A pandas frame as an Arrow table (NaN becomes null, as ``Table.from_pandas`` does)."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def _lake_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as data lakes read it: a float's NaN as null (SQL's ``avg`` skips a null but
    returns NaN over a NaN), a timestamp in microseconds with its time zone (UTC when naive,
    as every timestamp the inputs hold is)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_floating(kind):
        nan = pc.is_nan(column)
        if pc.any(nan).as_py():
            return pc.if_else(nan, pa.scalar(None, kind), column)
        return column
    if pa.types.is_timestamp(kind) and (kind.unit != TIMESTAMP_UNIT or kind.tz is None):
        # Sub-microsecond digits are dropped (floored toward the epoch, as arrow's cast does).
        target = pa.timestamp(TIMESTAMP_UNIT, tz=kind.tz or "UTC")
        return column.cast(target, safe=False)
    return column


def lake_table(data: pd.DataFrame | pa.Table, run_id: str) -> pa.Table:
    """A result table as every part is written: ``run_id`` first, then the table's columns
    with NaN as null and timestamps in microseconds (UTC). A ``run_id`` column already there
    (a shard's part copied into the merged run) is replaced by this run's."""
    import pyarrow as pa

    table = data if isinstance(data, pa.Table) else to_arrow(data)
    if RUN_ID in table.column_names:
        table = table.drop_columns([RUN_ID])
    columns = [_lake_column(table.column(i)) for i in range(table.num_columns)]
    fields = [table.schema.field(i).with_type(c.type) for i, c in enumerate(columns)]
    ids = pa.repeat(pa.scalar(run_id, pa.string()), table.num_rows)
    return pa.Table.from_arrays(
        [ids, *columns],
        schema=pa.schema([pa.field(RUN_ID, pa.string(), nullable=False), *fields]),
    )


def write_part(target: Destination, table: str, index: int, data: Any) -> WrittenPart:
    """Write one part of a result table (a pandas frame or an Arrow table) as
    :func:`lake_table` shapes it; runs in a task."""
    import pyarrow.parquet as pq

    arrow = lake_table(data, target.run_id)
    url = join(target.url, table, part_name(index))
    fs, path = open_fs(url)
    if is_local(fs):
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        pq.write_table(arrow, handle, compression="zstd")
    return WrittenPart(table, url, arrow.num_rows, int(fs.size(path)))


def outputs_of(parts: Sequence[WrittenPart]) -> dict[str, FileSet]:
    """Per table, its files with rows and bytes (for the manifest), in name order."""
    tables: dict[str, list[FileEntry]] = {}
    for part in sorted(parts, key=lambda p: (p.table, p.url)):
        tables.setdefault(part.table, []).append(FileEntry(part.url, part.size, part.rows))
    return {name: FileSet(tuple(files)) for name, files in tables.items()}


class RunFolder:
    """The output folder of one run."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, self.path = open_fs(self.url)

    @property
    def manifest_url(self) -> str:
        return join(self.url, MANIFEST)

    def child(self, *parts: str) -> str:
        return join(self.url, *parts)

    def read_manifest(self) -> Manifest | None:
        """The committed run's manifest, or None when the folder holds no committed run."""
        try:
            data = get(self.manifest_url)
            return None if data is None else Manifest.loads(data)
        except (OSError, ValueError) as err:
            raise OutputError(f"cannot read {self.manifest_url}: {err}") from err

    def prepare(
        self,
        job: str,
        run_id: str,
        tables: Sequence[str],
        *,
        overwrite: bool,
        keep_tables: bool = False,
    ) -> None:
        """Make the folder ready for this run: refuse what it may not replace, clear the rest.

        Only finbatch's files go (:mod:`analytics.run.ownership`): a committed run of another
        job or run id needs ``overwrite``; a file no finbatch run wrote is refused, and kept
        even with ``overwrite``. The manifest goes first, so an interrupted clean-up never
        leaves a run that looks complete. ``keep_tables`` (a resumed run) leaves this run's
        tables to :meth:`analytics.run.resume.Checkpoint.begin`, which keeps the verified
        finished pieces and deletes the rest.
        """
        from analytics.run import ownership

        try:
            found = self.check(job, run_id, tables, overwrite=overwrite)
            if found.manifest is not None:
                log.info("replacing the committed run %r in %s", found.manifest.run_id, self.url)
            ownership.clear(found, tables, keep_tables=keep_tables)
            if is_local(self.fs):
                self.fs.makedirs(self.path, exist_ok=True)
            self.fs.invalidate_cache()
        except OutputError:
            raise
        except OSError as err:
            raise OutputError(f"cannot prepare the output folder {self.url}: {err}") from err

    def check(
        self, job: str, run_id: str, tables: Sequence[str], *, overwrite: bool
    ) -> ownership.Survey:
        """What the folder holds, once checked that this run may write there (no change)."""
        from analytics.run import ownership

        found = ownership.survey(self.url, self.read_manifest(), job, tables)
        ownership.check(found, job, run_id, tables, overwrite=overwrite)
        return found

    def discard(self, tables: Sequence[str]) -> None:
        """Remove what a failed run wrote (best effort: the missing manifest already says so).
        The tables were checked to hold finbatch's files only when the run began."""
        for table in tables:
            folder = join(self.path, table)
            try:
                if self.fs.exists(folder):
                    self.fs.rm(folder, recursive=True)
            except OSError as err:
                log.warning("could not remove the partial table %s: %s", folder, err)

    def commit(self, manifest: Manifest) -> str:
        """Write the manifest, last: the run exists from this moment. Returns its URL."""
        url = (
            full_url(self.fs, join(self.path, MANIFEST))
            if not is_local(self.fs)
            else join(self.path, MANIFEST)
        )
        put(self.manifest_url, manifest.dumps())
        return url


# --------------------------------------------------------------------------------------------
# Shards: a run fanned out over an AWS Batch array job writes each shard into its own folder
# under the run's, and a merge run combines them (a job declares whether it can).

SHARDS_FOLDER = "_shards"
#: The environment variable AWS Batch sets in each child of an array job.
ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"


def shard_url(output_url: str, index: int, count: int) -> str:
    """The folder of shard ``index`` of ``count`` under the run's output folder."""
    return join(output_url, SHARDS_FOLDER, f"shard-{index:04d}-of-{count:04d}")


def shard_index(text: str, env: Any = None) -> tuple[int, int]:
    """The (index, count) of ``--shard I/K``, or of ``array/K`` with the index from the array
    job's variable."""
    import os

    env = os.environ if env is None else env
    index, _, count = text.partition("/")
    k = int(count)
    if index.strip() != "array":
        return int(index), k
    raw = env.get(ARRAY_INDEX)
    if raw is None or not raw.isdigit():
        raise InputError(
            f"--shard array/{k}: ${ARRAY_INDEX} is {raw!r}; run it as a child of an "
            "array job, or give the index: --shard I/K"
        )
    i = int(raw)
    if i >= k:
        raise InputError(f"${ARRAY_INDEX}={i} is not below the shard count {k}")
    return i, k
