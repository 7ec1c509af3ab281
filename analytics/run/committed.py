"""A committed run, read back: its manifest and its tables, wherever its folder is now.

Table files are found relative to the output folder given now, so a run folder that was copied
or moved still works. The report, the database sink, the Batch metrics and the Python API's
:class:`finbatch.Run` all read runs through this one type.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analytics.data.storage import join, open_fs
from analytics.errors import OutputError
from analytics.run.folder import RUN_ID, RunFolder
from analytics.run.manifest import Manifest

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class CommittedRun:
    """A committed run: its manifest and where its output folder is now."""

    manifest: Manifest
    output_url: str
    #: Where the run's input is now (default: the ``--input`` the manifest records).
    input_override: str | None = None

    @classmethod
    def load(cls, output_url: str, input_override: str | None = None) -> CommittedRun:
        """The run committed in ``output_url``; :class:`OutputError` when there is none."""
        manifest = RunFolder(output_url).read_manifest()
        if manifest is None:
            raise OutputError(
                f"{output_url} holds no committed run (no _manifest.json): run the job first"
            )
        return cls(manifest, output_url.rstrip("/"), input_override)

    @property
    def job(self) -> str:
        return self.manifest.job or "?"

    @property
    def run_id(self) -> str:
        return self.manifest.run_id or "?"

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self.manifest.parameters

    @property
    def summary(self) -> Mapping[str, Any]:
        return self.manifest.summary

    @property
    def input_url(self) -> str | None:
        value = self.input_override or self.parameters.get("input")
        return str(value) if value else None

    def date_parameter(self, name: str) -> dt.date | None:
        """A date parameter, or None when it is absent or not a date (a relative date such as
        ``previous-session``, which the job resolved when it ran)."""
        value = self.parameters.get(name)
        try:
            return dt.date.fromisoformat(str(value)) if value else None
        except ValueError:
            return None

    def has_table(self, table: str) -> bool:
        return table in self.manifest.outputs

    def files(self, table: str) -> list[str]:
        """The committed files of ``table``, under the output folder as it is now."""
        entry = self.manifest.outputs.get(table)
        if entry is None:
            return []
        recorded = str(self.parameters.get("output") or "").rstrip("/")
        found = []
        for f in entry.files:
            if recorded and f.url.startswith(recorded + "/"):
                relative = f.url[len(recorded) + 1 :]
            else:  # an unknown layout: parts sit directly in the table's folder
                relative = posixpath.join(table, posixpath.basename(f.url))
            found.append(join(self.output_url, relative))
        return found

    def table(self, table: str, columns: Sequence[str] | None = None) -> pa.Table:
        """The committed table (all its files) with its own columns (not ``run_id``: every row
        is this run's), or :class:`OutputError` if it cannot be read."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = []
        for url in self.files(table):
            fs, path = open_fs(url)
            try:
                with fs.open(path, "rb") as handle:
                    read = pq.read_table(handle, columns=list(columns) if columns else None)
                    if columns is None and RUN_ID in read.column_names:
                        read = read.drop_columns([RUN_ID])
                    parts.append(read)
            except (OSError, pa.ArrowException) as err:
                raise OutputError(f"cannot read the committed table file {url}: {err}") from err
        if not parts:
            raise OutputError(f"the run {self.run_id!r} committed no {table!r} table")
        return pa.concat_tables(parts, promote_options="permissive")

    def as_of(self, column: tuple[str, str] | None = None) -> dt.date | None:
        """The run's as-of date: ``--as-of``, else ``--date``, else ``--end``, else the last
        date of the job's ``column`` (``(table, column)``), else the day the run finished."""
        for name in AS_OF_PARAMETERS:
            value = self.date_parameter(name)
            if value is not None:
                return value
        if column and self.has_table(column[0]):
            import pyarrow as pa
            import pyarrow.compute as pc

            values = self.table(column[0], [column[1]]).column(0)
            last = pc.max(values.cast(pa.date32())).as_py() if len(values) else None
            if last is not None:
                return dt.date.fromisoformat(str(last))
        finished = self.manifest.finished_at
        return dt.datetime.fromisoformat(finished).date() if finished else None


#: Parameters that give a run's as-of date, in order; then the last date in the data.
AS_OF_PARAMETERS = ("as_of", "date", "end")
