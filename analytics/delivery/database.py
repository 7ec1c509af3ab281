"""Loading a committed run into PostgreSQL: which tables, with which keys, as of which date.

Each job declares its tables in its :class:`~analytics.jobs.contract.JobSpec`; a table with a
``key`` is loaded (the primary key is the run id and that key). A job with no such table loads
nothing. The load runs after the commit and reads only what the manifest committed: a failure
here never touches the run's Parquet outputs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from analytics import jobs
from analytics.delivery import sink
from analytics.run.committed import CommittedRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DbTarget:
    """Where the rows go: libpq parameters (password included, never logged) and the schema."""

    params: Mapping[str, str]
    schema: str = sink.DEFAULT_SCHEMA


def db_tables(view: CommittedRun) -> list[sink.TableLoad]:
    """The run's tables to load, with their database names, keys and committed files."""
    spec = jobs.jobs().get(view.job)
    if spec is None:
        return []
    return [
        sink.TableLoad(
            sink.table_name(view.job, table.name),
            tuple(table.key),
            tuple(view.files(table.name)),
            tuple(sink.Derived(name, fn) for name, fn in table.derived.items()),
        )
        for table in spec.tables
        if table.loaded and view.has_table(table.name)
    ]


def load_database(view: CommittedRun, target: DbTarget) -> sink.LoadResult | None:
    """Replace the run's rows in the database (one transaction); None if the job loads nothing."""
    tables = db_tables(view)
    if not tables:
        log.warning("job %s declares no table for the database: nothing loaded", view.job)
        return None
    spec = jobs.jobs().get(view.job)
    as_of = view.as_of(spec.as_of_column if spec else None)
    if as_of is None:
        raise sink.SinkError(f"run {view.run_id!r}: no as-of date (no parameter, no data)")
    finished = view.manifest.finished_at
    committed = dt.datetime.fromisoformat(finished) if finished else None
    run = sink.RunKey(view.run_id, view.job, as_of, committed)
    return sink.load_run(target.params, target.schema, run, tables)
