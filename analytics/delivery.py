"""Delivering a committed run: its ``report.html`` and its rows in PostgreSQL.

Each job plugs in with one :class:`Delivery` in :data:`DELIVERIES`: which result tables go to
the database with their natural key, where its as-of date comes from, and its report section.
A job without one still gets a report (the run section alone) and loads nothing.

Both steps run after ``execute()`` committed the manifest, and read only what it committed: a
failure here never touches the run's Parquet outputs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from analytics import sink
from analytics.backtest.stats import METRICS, TRADE_STATS
from analytics.report import backtest as backtest_report
from analytics.report import html
from analytics.report import market_performance as mp_report
from analytics.report import risk as risk_report
from analytics.report import tca as tca_report
from analytics.report.run import RunView, run_section
from analytics.storage import is_local, join, open_fs

log = logging.getLogger(__name__)

REPORT_FILE: Final = "report.html"
#: Parameters that give a run's as-of date, in order; then the last date in the data.
AS_OF_PARAMETERS: Final = ("as_of", "date", "end")

Section = Callable[[RunView], str]


@dataclass(frozen=True)
class Delivery:
    """How a job's results are delivered.

    ``db_tables`` maps each result table loaded into the database to its natural key (the
    primary key is the run id and these columns). ``as_of_column`` names the ``(table, column)``
    whose largest date is the as-of date when no parameter in :data:`AS_OF_PARAMETERS` gives it.
    """

    db_tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    as_of_column: tuple[str, str] | None = None
    section: Section | None = None
    #: Columns computed for the database (a key spread over run-dependent columns).
    derived: Mapping[str, tuple[sink.Derived, ...]] = field(default_factory=dict)


#: Columns of backtest's summary/ and top/ that are not the strategy's parameters.
_NOT_PARAMETERS: Final = frozenset({"rank", "strategy", *METRICS, *TRADE_STATS})


def parameters_json(batch: pa.RecordBatch) -> pa.Array:
    """A backtest combination's parameters as JSON text, ``{"fast":5,"slow":20}``.

    Each strategy has its own parameter columns, so one database table for every strategy
    cannot key on them (a key column cannot be NULL): it keys on this text instead.
    """
    names = [n for n in batch.schema.names if n not in _NOT_PARAMETERS]
    if not names:
        return pa.repeat(pa.scalar("{}"), batch.num_rows)
    pieces: list[object] = []
    for i, name in enumerate(names):
        pieces.append(("{" if i == 0 else ",") + json.dumps(name) + ":")
        pieces.append(pc.cast(batch.column(name), pa.string()))
    pieces.append("}")
    joined: pa.Array = pc.binary_join_element_wise(*pieces, "")
    return joined


DELIVERIES: Final[dict[str, Delivery]] = {
    "market-performance": Delivery(
        db_tables={"metrics": ("symbol", "period")},
        as_of_column=("metrics", "end"),
        section=mp_report.section,
    ),
    "risk": Delivery(
        db_tables={
            "var": ("portfolio", "method", "confidence", "horizon_days"),
            "contributions": ("portfolio", "symbol", "confidence", "horizon_days"),
        },
        section=risk_report.section,
    ),
    "backtest": Delivery(
        db_tables={"summary": ("strategy", "parameters"), "top": ("rank",)},
        as_of_column=("equity", "date"),
        section=backtest_report.section,
        derived={
            "summary": (sink.Derived("parameters", parameters_json),),
            "top": (sink.Derived("parameters", parameters_json),),
        },
    ),
    "tca": Delivery(
        db_tables={
            "orders": ("order_id",),
            "by_broker": ("broker",),
            "by_venue": ("venue",),
            "by_desk": ("desk",),
            "by_strategy": ("strategy",),
            "by_day": ("date",),
        },
        as_of_column=("orders", "date"),
        section=tca_report.tca_section,
    ),
    "execution-report": Delivery(
        db_tables={"desk_daily": ("date", "desk"), "broker_daily": ("date", "broker")},
        as_of_column=("orders", "date"),
        section=tca_report.execution_section,
    ),
}


def delivery_of(job: str) -> Delivery:
    return DELIVERIES.get(job, Delivery())


def as_of_date(view: RunView) -> dt.date | None:
    """The run's as-of date: ``--as-of``, else ``--date``, else ``--end``, else the last date
    of the job's ``as_of_column``, else the day the run finished."""
    for name in AS_OF_PARAMETERS:
        value = view.date_parameter(name)
        if value is not None:
            return value
    declared = delivery_of(view.job).as_of_column
    if declared and view.has_table(declared[0]):
        column = view.table(declared[0], [declared[1]]).column(0)
        last = pc.max(column.cast(pa.date32())).as_py() if len(column) else None
        if last is not None:
            return dt.date.fromisoformat(str(last))
    finished = view.manifest.get("finished_at")
    return dt.datetime.fromisoformat(str(finished)).date() if finished else None


# --------------------------------------------------------------------------------------------
# Database


@dataclass(frozen=True)
class DbTarget:
    """Where the rows go: libpq parameters (password included, never logged) and the schema."""

    params: Mapping[str, str]
    schema: str = sink.DEFAULT_SCHEMA


def db_tables(view: RunView) -> list[sink.TableLoad]:
    """The run's tables to load, with their database names, keys and committed files."""
    delivery = delivery_of(view.job)
    return [
        sink.TableLoad(
            sink.table_name(view.job, table),
            tuple(key),
            tuple(view.files(table)),
            delivery.derived.get(table, ()),
        )
        for table, key in delivery.db_tables.items()
        if view.has_table(table)
    ]


def load_database(view: RunView, target: DbTarget) -> sink.LoadResult | None:
    """Replace the run's rows in the database (one transaction); None if the job loads nothing."""
    tables = db_tables(view)
    if not tables:
        log.warning("job %s declares no table for the database: nothing loaded", view.job)
        return None
    as_of = as_of_date(view)
    if as_of is None:
        raise sink.SinkError(f"run {view.run_id!r}: no as-of date (no parameter, no data)")
    run = sink.RunKey(view.run_id, view.job, as_of)
    return sink.load_run(target.params, target.schema, run, tables)


# --------------------------------------------------------------------------------------------
# Report


def render_report(view: RunView) -> str:
    """The report's HTML: the job's section, then the run's facts."""
    as_of = as_of_date(view)
    section = delivery_of(view.job).section
    sections = [section(view)] if section else []
    sections.append(run_section(view, as_of))
    when = f" · as of {as_of.isoformat()}" if as_of else ""
    return html.page(
        f"finbatch {view.job} · run {view.run_id}",
        f"finished {view.manifest.get('finished_at', '?')}{when} · {view.output_url}",
        sections,
    )


def write_report(view: RunView) -> str:
    """Write ``report.html`` into the run's output folder; returns its URL."""
    body = render_report(view).encode()
    url = join(view.output_url, REPORT_FILE)
    fs, path = open_fs(url)
    if is_local(fs):
        tmp = path + ".tmp"
        with fs.open(tmp, "wb") as handle:
            handle.write(body)
        fs.mv(tmp, path)
    else:  # a browser opening it from S3 renders it as a page, not a download
        with fs.open(path, "wb", ContentType="text/html; charset=utf-8") as handle:
            handle.write(body)
    return url
