"""``report.html``: one self-contained page per committed run, the job's section then the run's.

The job's section is the ``report`` of its :class:`~analytics.jobs.contract.JobSpec`; a job
without one still gets the run section. The page is written after the commit and reads only what
the manifest committed: a failure here never touches the run's tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from analytics.report import html
from analytics.run.committed import CommittedRun
from analytics.run.folder import put

REPORT_FILE: Final = "report.html"


def run_section(view: CommittedRun, as_of: dt.date | None) -> str:
    """The run's facts: size of the input, duration, nodes, parameters, outputs."""
    m = view.manifest
    cluster: Mapping[str, Any] = m.cluster
    total_bytes = sum(v.bytes for v in m.inputs.values())
    total_files = sum(len(v.files) for v in m.inputs.values())
    hosts = cluster.get("hosts") or []
    headline = html.cards(
        [
            ("as of", as_of.isoformat() if as_of else "—"),
            ("input", f"{html.fmt_bytes(total_bytes)} in {total_files:,} files"),
            ("duration", f"{m.duration_s:,.1f} s"),
            ("nodes", f"{len(hosts) or 1}"),
            ("workers / threads", f"{cluster.get('workers', '—')} / {cluster.get('threads', '—')}"),
        ]
    )
    input_rows = [[name, len(v.files), v.bytes] for name, v in m.inputs.items()]
    output_rows = [[name, len(v.files), v.rows] for name, v in m.outputs.items()]
    facts = [
        ("job", view.job),
        ("run id", view.run_id),
        ("started", m.started_at),
        ("finished", m.finished_at),
        ("code version", m.code_version),
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


def render_report(view: CommittedRun) -> str:
    """The report's HTML: the job's section, then the run's facts."""
    from analytics import jobs

    spec = jobs.jobs().get(view.job)
    as_of = view.as_of(spec.as_of_column if spec else None)
    sections = [spec.report(view)] if spec is not None and spec.report is not None else []
    sections.append(run_section(view, as_of))
    when = f" · as of {as_of.isoformat()}" if as_of else ""
    return html.page(
        f"finbatch {view.job} · run {view.run_id}",
        f"finished {view.manifest.finished_at or '?'}{when} · {view.output_url}",
        sections,
    )


def write_report(view: CommittedRun) -> str:
    """Write ``report.html`` into the run's output folder; returns its URL."""
    url = f"{view.output_url}/{REPORT_FILE}"
    put(url, render_report(view).encode(), content_type="text/html; charset=utf-8")
    return url
