"""Committing a run's outputs: Parquet tables, then ``_manifest.json`` last.

A run exists only once its manifest does. File names are deterministic (``part-00003.parquet``),
so a retry overwrites instead of duplicating; before writing, the tables this job writes are
cleared, so a rerun with fewer parts leaves no stale file behind.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.errors import OutputError
from analytics.storage import full_url, is_local, join, open_fs

MANIFEST = "_manifest.json"
log = logging.getLogger(__name__)


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class WrittenPart:
    table: str
    url: str
    rows: int
    size: int


def to_arrow(frame: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """A pandas frame as an Arrow table that keeps NaN as NaN.

    ``Table.from_pandas`` turns NaN into null; a metric that is NaN by its definition (fewer than
    two returns, 0 / 0) stays NaN in Parquet, as empyrical and numpy give it. Real nulls
    (``None``, ``pd.NA``) stay null.
    """
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    for i, name in enumerate(table.column_names):
        column = frame[name]
        if column.dtype.kind == "f" and table.column(i).null_count:
            field = table.schema.field(i)
            values = pa.array(column.to_numpy(), type=field.type, from_pandas=False)
            table = table.set_column(i, field, values)
    return table


def write_part(
    output_url: str, table: str, index: int, data: pd.DataFrame | pa.Table
) -> WrittenPart:
    """Write one part of a result table (runs in a Dask task, on a worker)."""
    arrow = data if isinstance(data, pa.Table) else to_arrow(data)
    url = join(output_url, table, part_name(index))
    fs, path = open_fs(url)
    if is_local(fs):
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        pq.write_table(arrow, handle, compression="zstd")
    return WrittenPart(table, url, arrow.num_rows, int(fs.size(path)))


class RunOutput:
    """The output folder of one run."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, self.path = open_fs(self.url)

    @property
    def manifest_url(self) -> str:
        return join(self.url, MANIFEST)

    def read_manifest(self) -> dict[str, Any] | None:
        path = join(self.path, MANIFEST)
        try:
            if not self.fs.exists(path):
                return None
            with self.fs.open(path, "rb") as handle:
                manifest: dict[str, Any] = json.load(handle)
        except (OSError, ValueError) as err:
            raise OutputError(f"cannot read {self.manifest_url}: {err}") from err
        return manifest

    def prepare(
        self, run_id: str, tables: Sequence[str], *, overwrite: bool, keep_tables: bool = False
    ) -> None:
        """Make the folder ready for this run: refuse another run's results, clear our tables.

        A manifest of the same run id (a retry) or ``overwrite`` lets the run replace it. The
        manifest goes first, so an interrupted clean-up never leaves a run that looks complete.
        ``keep_tables`` (a resumed run) leaves the tables to
        :meth:`analytics.checkpoint.Checkpoint.begin`, which keeps the verified finished pieces
        once the job has listed its inputs and deletes the rest.
        """
        try:
            previous = self.read_manifest()
            if previous is not None:
                other = previous.get("run_id")
                if other != run_id and not overwrite:
                    raise OutputError(
                        f"{self.url} already holds the committed run {other!r} "
                        f"(job {previous.get('job')!r}); choose another --output, "
                        f"rerun with --run-id {other}, or pass --overwrite to replace it"
                    )
                log.info("replacing the committed run %r in %s", other, self.url)
                self.fs.rm(join(self.path, MANIFEST))
            for table in () if keep_tables else tables:
                folder = join(self.path, table)
                if self.fs.exists(folder):
                    self.fs.rm(folder, recursive=True)
            if is_local(self.fs):
                self.fs.makedirs(self.path, exist_ok=True)
            self.fs.invalidate_cache()
        except OutputError:
            raise
        except OSError as err:
            raise OutputError(f"cannot prepare the output folder {self.url}: {err}") from err

    def discard(self, tables: Sequence[str]) -> None:
        """Remove what a failed run wrote (best effort: the missing manifest already says so)."""
        for table in tables:
            folder = join(self.path, table)
            try:
                if self.fs.exists(folder):
                    self.fs.rm(folder, recursive=True)
            except OSError as err:
                log.warning("could not remove the partial table %s: %s", folder, err)

    def commit(self, manifest: Mapping[str, Any]) -> str:
        """Write the manifest, last: the run exists from this moment."""
        body = json.dumps(_jsonable(manifest), indent=2, sort_keys=True).encode()
        path = join(self.path, MANIFEST)
        if is_local(self.fs):
            tmp = path + ".tmp"
            with self.fs.open(tmp, "wb") as handle:
                handle.write(body)
            self.fs.mv(tmp, path)
        else:  # one PUT is atomic on S3
            with self.fs.open(path, "wb") as handle:
                handle.write(body)
        return full_url(self.fs, path) if not is_local(self.fs) else path


def summarize_parts(parts: Sequence[WrittenPart]) -> dict[str, dict[str, Any]]:
    """Per table: its files (with rows and bytes) and its row count, for the manifest."""
    tables: dict[str, dict[str, Any]] = {}
    for part in sorted(parts, key=lambda p: (p.table, p.url)):
        entry = tables.setdefault(part.table, {"rows": 0, "files": []})
        entry["rows"] += part.rows
        entry["files"].append({"url": part.url, "rows": part.rows, "bytes": part.size})
    return tables


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value
