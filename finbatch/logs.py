"""Where log records go and how they read: text for people, JSON lines for CloudWatch.

``--log-format text`` is a line of time, level, logger and message; ``json`` is one JSON object
a line with ``time`` (UTC, ISO 8601), ``level``, ``job``, ``run_id``, ``node`` (the AWS Batch
node index, else null), ``logger`` and ``message`` (and ``exception`` with the traceback when
there is one), which CloudWatch Logs Insights reads as fields. Without the option, a terminal
gets text and anything else (a container's log driver, a file) gets JSON.

The job, run id and node are set once they are known (:func:`set_context`) and stamped on every
record, the Dask libraries' records included.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

#: What every record carries, set by :func:`set_context` as the run learns it.
_CONTEXT: dict[str, Any] = {"job": None, "run_id": None, "node": None}
#: The environment variable AWS Batch sets to a multi-node job's node index.
NODE_INDEX_ENV = "AWS_BATCH_JOB_NODE_INDEX"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def set_context(**values: Any) -> None:
    """Set ``job``, ``run_id`` or ``node`` for the records logged from now on."""
    unknown = set(values) - set(_CONTEXT)
    if unknown:
        raise TypeError(f"unknown log context {sorted(unknown)}")
    _CONTEXT.update(values)


def node_index(env: Mapping[str, str] = os.environ) -> int | None:
    raw = env.get(NODE_INDEX_ENV, "")
    return int(raw) if raw.isdigit() else None


class JsonLines(logging.Formatter):
    """One JSON object a line (a traceback stays inside the line, as ``exception``)."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            **_CONTEXT,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def resolve_format(chosen: str | None, stream: TextIO) -> str:
    """``--log-format``, or its default: text on a terminal, json otherwise."""
    if chosen:
        return chosen
    return "text" if stream.isatty() else "json"


def configure(level: str, chosen: str | None, stream: TextIO | None = None) -> str:
    """Send every record at ``level`` and above to ``stream`` (stderr) in the chosen format;
    returns the format used."""
    stream = stream or sys.stderr
    fmt = resolve_format(chosen, stream)
    set_context(node=node_index())
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _Handler)]
    if len(ours) < len(root.handlers):  # logging set up by the host (pytest, an embedding app)
        return fmt
    for old in ours:
        root.removeHandler(old)
    handler = _Handler(stream)
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    if level != "DEBUG":
        handler.addFilter(_quiet_dask)
    return fmt


def _quiet_dask(record: logging.LogRecord) -> bool:
    """Dask's own INFO lines (each comm closed, each worker started) are noise beside the
    job's: they show with ``--log-level DEBUG`` only (distributed sets its loggers' levels
    itself when it is imported, so this is a filter on finbatch's handler)."""
    return record.levelno >= logging.WARNING or not record.name.startswith(("distributed", "dask"))


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """finbatch's handler: a record printed while a progress bar is drawn on the terminal
    clears the bar's line first; the bar draws itself again below it."""

    def emit(self, record: logging.LogRecord) -> None:
        progress = sys.modules.get("analytics.run.progress")  # loaded only when a job runs
        if progress is None:
            super().emit(record)
            return
        with progress.bar_paused():
            super().emit(record)
