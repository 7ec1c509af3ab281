"""``report.html``: one self-contained page per committed run, the job's section then the run's.

The job's section is the ``report`` of its :class:`~analytics.jobs.contract.JobSpec`; a job
without one still gets the run section. The page is written after the commit and reads only what
the manifest committed: a failure here never touches the run's tables.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from analytics.options import defaults_of
from analytics.report import html
from analytics.run.committed import CommittedRun
from analytics.run.folder import put

if TYPE_CHECKING:
    from analytics.jobs.contract import JobSpec

REPORT_FILE: Final = "report.html"


def _plain(value: Any) -> str:
    """A value as the manifest's JSON writes it (tuples as lists, dates as ISO text)."""
    return json.dumps(value, default=str, sort_keys=True)


def split_parameters(
    parameters: Mapping[str, Any], defaults: Mapping[str, Any] | None
) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """The parameters that were set, and those at their default, each sorted by name.

    A parameter is at its default when ``defaults`` names it with the same value (as JSON),
    or when ``defaults`` does not name it and it is None (an option that was not given).
    """
    known = defaults or {}
    chosen: list[tuple[str, Any]] = []
    default: list[tuple[str, Any]] = []
    for name, value in sorted(parameters.items()):
        at_default = _plain(value) == _plain(known[name]) if name in known else value is None
        (default if at_default else chosen).append((name, value))
    return chosen, default


def _parameters_block(view: CommittedRun, defaults: Mapping[str, Any] | None) -> str:
    # The job's name is the subcommand, not an option: the details say it.
    shown = {k: v for k, v in view.parameters.items() if k != "job"}
    chosen, default = split_parameters(shown, defaults)
    fold = (
        html.fold(
            f"defaults ({len(default)} options not set)",
            html.key_values(default),
            css_class="defaults",
        )
        if default
        else ""
    )
    return f"<h3>Parameters set</h3>{html.key_values(chosen)}{fold}"


def run_section(
    view: CommittedRun, as_of: dt.date | None, defaults: Mapping[str, Any] | None = None
) -> str:
    """The run's facts: size of the input, duration, nodes, outputs, and the parameters that
    were set, with those at their default (``defaults``: option name -> default value) folded
    away."""
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
        _parameters_block(view, defaults),
        "<h3>Summary</h3>",
        html.key_values(sorted(view.summary.items())),
        "</div></div>",
        anchor="run",
    )


def option_defaults(spec: JobSpec | None, recorded: Mapping[str, Any] | None) -> dict[str, Any]:
    """The defaults of a run's parameters as the manifest names them: the common options, the
    job's own, and ``recorded`` (those of the options the face records, which it knows)."""
    from analytics.jobs.contract import RunSettings

    common = defaults_of(RunSettings)
    named = {"input": None, "output": None, **common}
    named.pop("input_url")
    named.pop("output_url")
    return {**named, **(defaults_of(spec.options) if spec else {}), **(recorded or {})}


def render_report(view: CommittedRun, recorded_defaults: Mapping[str, Any] | None = None) -> str:
    """The report's HTML: the job's section, then the run's facts (``recorded_defaults``: the
    defaults of the cluster and database options the manifest records, to fold those unset)."""
    from analytics import jobs

    spec = jobs.jobs().get(view.job)
    as_of = view.as_of(spec.as_of_column if spec else None)
    sections = [spec.report(view)] if spec is not None and spec.report is not None else []
    sections.append(run_section(view, as_of, option_defaults(spec, recorded_defaults)))
    when = f" · as of {as_of.isoformat()}" if as_of else ""
    return html.page(
        f"finbatch {view.job} · run {view.run_id}",
        f"finished {view.manifest.finished_at or '?'}{when} · {view.output_url}",
        sections,
    )


def write_report(view: CommittedRun, recorded_defaults: Mapping[str, Any] | None = None) -> str:
    """Write ``report.html`` into the run's output folder; returns its URL."""
    url = f"{view.output_url}/{REPORT_FILE}"
    body = render_report(view, recorded_defaults).encode()
    put(url, body, content_type="text/html; charset=utf-8")
    return url
