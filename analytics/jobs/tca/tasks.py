"""The functions the TCA graph runs on the workers (see :mod:`analytics.jobs.tca.job` for the plan).

Each partition (one date, one symbol bucket) joins its orders, fills and bars and computes its
per-order rows; it returns them with its counts and its ids cut by hash, for the duplicate
checks. Nothing is written before every partition and every check has passed (``ready``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from analytics.data.datasets import Selection
from analytics.data.reads import ReadUnit, read_unit
from analytics.jobs.execution_report import tables as report
from analytics.jobs.tca import buckets, checks, kernel, markouts, pretrade, tables
from analytics.jobs.tca.aggregate import group_costs, sort_rows
from analytics.jobs.tca.inputs import Piece, day_date, day_number, to_frame
from analytics.run.folder import Destination, WrittenPart, write_part

Kind = Literal["tca", "execution-report"]

ORDER_SUMS: Final = (
    "n_fills",
    "quantity",
    "filled_quantity",
    "notional",
    "order_value",
    "is_fees",
    "is_total",
)
VENUE_SUMS: Final = ("n_fills", "filled_quantity", "notional", "order_value", "fees")
#: The TCA aggregate tables grouped from the orders, and their keys.
ORDER_GROUPS: Final = (
    ("by_broker", "broker"),
    ("by_desk", "desk"),
    ("by_strategy", "strategy"),
    ("by_day", "date"),
)


@dataclass
class UnitResult:
    """What one partition hands on: its rows, counts, symbols and hashed ids."""

    orders: pa.Table
    venues: pd.DataFrame | None
    markouts: pa.Table | None
    #: Per venue, the markouts' weighted sums (:func:`analytics.jobs.tca.markouts.venue_sums`).
    venue_markouts: pd.DataFrame | None
    exceptions: pa.Table | None
    counts: checks.Counts
    symbols: frozenset[str]
    #: (date, symbols of its orders without an ADV): the summary lists them.
    without_adv: tuple[str, frozenset[str]]
    #: ``ids[k]`` = (order ids, fill ids) whose hash falls in slot k, each with its file index.
    ids: list[tuple[pa.Table, pa.Table]] = field(default_factory=list)


@dataclass
class Summary:
    counts: checks.Counts
    symbols: int
    #: Per date (ISO), the sorted symbols of its orders that have no ADV (no prior prices).
    without_adv: dict[str, list[str]] = field(default_factory=dict)


def piece_keys(pieces: Mapping[tuple[int, int], pa.Table]) -> set[tuple[int, int]]:
    return set(pieces)


def order_piece(pieces: Mapping[tuple[int, int], pa.Table], key: tuple[int, int]) -> Piece:
    return pieces.get(key)


def unit_part(result: UnitResult, name: str) -> object:
    return getattr(result, name)


def unit_ids(result: UnitResult, slot: int) -> tuple[pa.Table, pa.Table]:
    return result.ids[slot]


def _hashed(ids: pd.Series, files: pd.Series, n_slots: int) -> list[pa.Table]:
    """``ids`` (with their file index) cut into ``n_slots`` tables by a stable hash."""
    values = ids.astype(str).reset_index(drop=True)
    slot = pd.util.hash_pandas_object(values, index=False).to_numpy() % np.uint64(n_slots)
    order = np.argsort(slot, kind="stable")
    bounds = np.searchsorted(slot[order], np.arange(n_slots + 1, dtype=np.uint64))
    table = pa.table(
        {
            "id": pa.array(values.to_numpy(dtype=object), type=pa.string()),
            checks.FILE_COLUMN: pa.array(files.to_numpy(dtype=np.int32)),
        }
    )
    return [table.take(order[bounds[k] : bounds[k + 1]]) for k in range(n_slots)]


def compute_unit(
    kind: Kind,
    day: int,
    files: Mapping[str, Sequence[str]],
    orders: Sequence[Piece],
    fills: Sequence[Piece],
    bars: Sequence[Piece],
    n_slots: int,
    stats: Mapping[int, pd.DataFrame] | None = None,
    impact_coefficient: float = 1.0,
) -> UnitResult:
    """Join, check and compute one partition (see :func:`analytics.jobs.tca.kernel.join`);
    ``stats`` maps a day number to its ADV and sigma per symbol (tca only)."""
    src = checks.Sources(files)
    p = kernel.join(
        day_date(day).isoformat(),
        to_frame("orders", orders),
        to_frame("fills", fills),
        to_frame("bars", bars),
        src,
        None if stats is None else stats.get(day),
    )
    costs = kernel.order_costs(p, impact_coefficient)
    counts = kernel.flag_counts(p, costs)
    venues, marks, venue_marks, exceptions = None, None, None, None
    no_adv = frozenset(p.orders["symbol"].astype(str)[np.isnan(p.adv)])
    if kind == "tca":
        table = tables.to_arrow(tables.order_frame(p, costs), tables.TCA_ORDERS)
        venues = kernel.venue_costs(p, costs)
        fill_marks = markouts.fill_markouts(p)
        marks = tables.to_arrow(fill_marks, tables.MARKOUTS)
        venue_marks = markouts.venue_sums(fill_marks)
    else:
        execution, found = report.execution_columns(p, costs)
        frame = tables.order_frame(p, costs.rename(columns={"is_fees": "fees"}), execution)
        table = tables.to_arrow(frame, tables.EXECUTION_ORDERS)
        exceptions = tables.to_arrow(found, tables.FILL_EXCEPTIONS)
        counts = counts + report.report_counts(execution)
    order_ids = _hashed(p.orders["order_id"], p.orders[checks.FILE_COLUMN], n_slots)
    fill_ids = _hashed(p.fills["fill_id"], p.fills[checks.FILE_COLUMN], n_slots)
    return UnitResult(
        orders=table,
        venues=venues,
        markouts=marks,
        venue_markouts=venue_marks,
        exceptions=exceptions,
        counts=counts,
        symbols=frozenset(p.symbols),
        without_adv=(p.day, no_adv),
        ids=list(zip(order_ids, fill_ids, strict=True)),
    )


def check_ids(files: Mapping[str, Sequence[str]], *pieces: tuple[pa.Table, pa.Table]) -> int:
    """Reject an order_id or fill_id seen twice (all its copies hash to this slot)."""
    orders = pa.concat_tables([o for o, _ in pieces])
    fills = pa.concat_tables([f for _, f in pieces])
    checks.reject_duplicate_ids("orders", "order_id", orders, files["orders"])
    checks.reject_duplicate_ids("fills", "fill_id", fills, files["fills"])
    return int(fills.num_rows)


def barrier(
    counts: Sequence[checks.Counts],
    symbols: Sequence[frozenset[str]],
    without_adv: Sequence[tuple[str, frozenset[str]]],
    *_: object,
) -> Summary:
    """Every partition and check has passed: the totals (writes wait for this)."""
    total = checks.Counts()
    for c in counts:
        total = total + c
    missing: dict[str, set[str]] = {}
    for day, names in without_adv:
        if names:
            missing.setdefault(day, set()).update(names)
    listed = {day: sorted(names) for day, names in sorted(missing.items())}
    return Summary(total, len(frozenset().union(*symbols)), listed)


def read_prices(unit: ReadUnit, sel: Selection) -> pd.DataFrame:
    """The ``prices`` rows of one read unit in ``sel`` (the columns the pre-trade model needs)."""
    table = read_unit(unit, "prices", list(pretrade.PRICE_COLUMNS), sel)
    frame: pd.DataFrame = table.to_pandas(date_as_object=False)
    return frame


def price_stats(
    windows: Mapping[int, Sequence[dt.date]], *frames: pd.DataFrame
) -> dict[int, pd.DataFrame]:
    """ADV and sigma per symbol for each order day (a day number), from the prices read."""
    columns = list(pretrade.PRICE_COLUMNS)
    prices = pd.concat([f[columns] for f in frames], ignore_index=True) if frames else None
    if prices is None or prices.empty:
        return {}
    by_date = pretrade.price_stats(prices, {day_date(d): w for d, w in windows.items()})
    return {day_number(d): frame for d, frame in by_date.items()}


def write_table(
    target: Destination, table: str, index: int, data: pa.Table, ready: Summary
) -> WrittenPart:
    del ready  # an argument only so that nothing is written before every check has passed
    return write_part(target, table, index, data)


def _concat(parts: Sequence[pa.Table]) -> pd.DataFrame:
    frame: pd.DataFrame = pa.concat_tables(parts).to_pandas(date_as_object=False)
    return frame


def aggregate_orders(
    target: Destination,
    orders: Sequence[pa.Table],
    ready: Summary,
    tz: str,
    which: Literal["groups", "buckets"] = "groups",
) -> list[WrittenPart]:
    """``by_broker``, ``by_desk``, ``by_strategy`` and ``by_day`` of the TCA (``groups``), or
    its bucket tables (``buckets``; time of day in the time zone ``tz``): two tasks that run
    side by side."""
    del ready
    frame = sort_rows(_concat(orders))
    if which == "buckets":
        frame = buckets.with_buckets(frame, tz)
    groups = ORDER_GROUPS if which == "groups" else buckets.BUCKET_TABLES
    written = []
    for name, key in groups:
        result = group_costs(frame, key, sums=ORDER_SUMS, presorted=True)
        shown = "bucket" if key.endswith("_bucket") else key
        result = result.rename(columns={key: shown})
        schema = tables.aggregate_schema(shown, ORDER_SUMS)
        written.append(write_part(target, name, 0, tables.to_arrow(result, schema)))
    return written


def aggregate_venues(
    target: Destination,
    venues: Sequence[pd.DataFrame],
    marks: Sequence[pd.DataFrame],
    ready: Summary,
) -> list[WrittenPart]:
    """``by_venue`` of the TCA, from the (order, venue) slices and the partitions' markout
    sums per venue."""
    del ready
    frame = pd.concat(list(venues), ignore_index=True)
    result = group_costs(frame, "venue", sums=VENUE_SUMS)
    means = markouts.venue_means(marks)
    result = result.merge(means, on="venue", how="left")
    schema = tables.aggregate_schema("venue", VENUE_SUMS, markouts.VENUE_MARKOUT_COLUMNS)
    return [write_part(target, "by_venue", 0, tables.to_arrow(result, schema))]


def summarize_execution(
    target: Destination, orders: Sequence[pa.Table], ready: Summary
) -> tuple[list[WrittenPart], str]:
    """``desk_daily`` and ``broker_daily`` of the execution report, and its text."""
    frame = _concat(orders)
    written = []
    for name, key in (("desk_daily", "desk"), ("broker_daily", "broker")):
        summary = report.daily_summary(frame, key)
        table = tables.to_arrow(summary, tables.daily_schema(key))
        written.append(write_part(target, name, 0, table))
    dates = sorted({d.date() for d in pd.to_datetime(frame["date"])})
    text = report.text_report(frame, ready.counts, dates)
    return written, text
