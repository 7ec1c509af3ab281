"""A committed run as the report and the database sink see it, and the report's run section.

Everything comes from the run's ``_manifest.json``: the job and its parameters, the input files
and their sizes, the committed table files, the duration and the cluster. Table files are found
relative to the output folder given now, so a run folder that was copied or moved still works.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analytics.errors import OutputError
from analytics.output import RunOutput
from analytics.report import html
from analytics.storage import join, open_fs


@dataclass(frozen=True)
class RunView:
    """A committed run: its manifest and where its output folder is now."""

    manifest: Mapping[str, Any]
    output_url: str
    #: Where the run's input is now (default: the ``--input`` the manifest records).
    input_override: str | None = None

    @classmethod
    def load(cls, output_url: str, input_override: str | None = None) -> RunView:
        """The run committed in ``output_url``; :class:`OutputError` when there is none."""
        manifest = RunOutput(output_url).read_manifest()
        if manifest is None:
            raise OutputError(
                f"{output_url} holds no committed run (no _manifest.json): run the job first"
            )
        return cls(manifest, output_url.rstrip("/"), input_override)

    @property
    def job(self) -> str:
        return str(self.manifest.get("job", "?"))

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", "?"))

    @property
    def parameters(self) -> Mapping[str, Any]:
        params: Mapping[str, Any] = self.manifest.get("parameters") or {}
        return params

    @property
    def summary(self) -> Mapping[str, Any]:
        summary: Mapping[str, Any] = self.manifest.get("summary") or {}
        return summary

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
        return table in (self.manifest.get("outputs") or {})

    def files(self, table: str) -> list[str]:
        """The committed files of ``table``, under the output folder as it is now."""
        entry = (self.manifest.get("outputs") or {}).get(table)
        if entry is None:
            return []
        recorded = str(self.parameters.get("output") or "").rstrip("/")
        found = []
        for f in entry.get("files", []):
            url = str(f["url"])
            if recorded and url.startswith(recorded + "/"):
                relative = url[len(recorded) + 1 :]
            else:  # an unknown layout: parts sit directly in the table's folder
                relative = posixpath.join(table, posixpath.basename(url))
            found.append(join(self.output_url, relative))
        return found

    def table(self, table: str, columns: Sequence[str] | None = None) -> pa.Table:
        """The committed table (all its files), or :class:`OutputError` if it cannot be read."""
        parts = []
        for url in self.files(table):
            fs, path = open_fs(url)
            try:
                with fs.open(path, "rb") as handle:
                    parts.append(pq.read_table(handle, columns=list(columns) if columns else None))
            except (OSError, pa.ArrowException) as err:
                raise OutputError(f"cannot read the committed table file {url}: {err}") from err
        if not parts:
            raise OutputError(f"the run {self.run_id!r} committed no {table!r} table")
        return pa.concat_tables(parts, promote_options="permissive")


def run_section(view: RunView, as_of: dt.date | None) -> str:
    """The run's facts: size of the input, duration, nodes, parameters, outputs."""
    m = view.manifest
    inputs: Mapping[str, Any] = m.get("inputs") or {}
    outputs: Mapping[str, Any] = m.get("outputs") or {}
    cluster: Mapping[str, Any] = m.get("cluster") or {}
    total_bytes = sum(int(v.get("bytes", 0)) for v in inputs.values())
    total_files = sum(len(v.get("files", [])) for v in inputs.values())
    hosts = cluster.get("hosts") or []
    headline = html.cards(
        [
            ("as of", as_of.isoformat() if as_of else "—"),
            ("input", f"{html.fmt_bytes(total_bytes)} in {total_files:,} files"),
            ("duration", f"{float(m.get('duration_s') or 0):,.1f} s"),
            ("nodes", f"{len(hosts) or 1}"),
            ("workers / threads", f"{cluster.get('workers', '—')} / {cluster.get('threads', '—')}"),
        ]
    )
    input_rows = [
        [name, len(v.get("files", [])), int(v.get("bytes", 0))] for name, v in inputs.items()
    ]
    output_rows = [
        [name, len(v.get("files", [])), int(v.get("rows", 0))] for name, v in outputs.items()
    ]
    facts = [
        ("job", view.job),
        ("run id", view.run_id),
        ("started", m.get("started_at")),
        ("finished", m.get("finished_at")),
        ("code version", m.get("code_version")),
        ("scheduler", cluster.get("scheduler")),
        ("hosts", hosts),
    ]
    return html.section(
        "Run",
        headline,
        '<div class="charts"><div>',
        "<h3>Input</h3>",
        html.table(["dataset", "files", "bytes"], input_rows, [None, html.fmt_int, html.fmt_bytes]),
        "<h3>Outputs</h3>",
        html.table(["table", "files", "rows"], output_rows, [None, html.fmt_int, html.fmt_int]),
        "<h3>Details</h3>",
        html.key_values(facts),
        "</div><div>",
        "<h3>Parameters</h3>",
        html.key_values(sorted(view.parameters.items())),
        "<h3>Summary</h3>",
        html.key_values(sorted(view.summary.items())),
        "</div></div>",
        anchor="run",
    )
