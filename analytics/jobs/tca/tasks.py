"""The functions the TCA graph runs on the workers (see :mod:`analytics.jobs.tca.job` for the plan).

Each partition (one date, one symbol bucket) joins its orders, fills and bars and computes its
per-order rows; it returns them with its counts and its ids cut by hash, for the duplicate
checks. Nothing is written before every partition and every check has passed (``ready``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from analytics.jobs.execution_report import tables as report
from analytics.jobs.tca import checks, kernel, tables
from analytics.jobs.tca.aggregate import group_costs
from analytics.jobs.tca.inputs import Piece, day_date, to_frame
from analytics.run.folder import WrittenPart, write_part

Kind = Literal["tca", "execution-report"]

ORDER_SUMS: Final = ("n_fills", "quantity", "filled_quantity", "notional", "is_fees", "is_total")
VENUE_SUMS: Final = ("n_fills", "filled_quantity", "notional", "fees")
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
    exceptions: pa.Table | None
    counts: checks.Counts
    symbols: frozenset[str]
    #: ``ids[k]`` = (order ids, fill ids) whose hash falls in slot k, each with its file index.
    ids: list[tuple[pa.Table, pa.Table]] = field(default_factory=list)


@dataclass
class Summary:
    counts: checks.Counts
    symbols: int


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
) -> UnitResult:
    """Join, check and compute one partition (see :func:`analytics.jobs.tca.kernel.join`)."""
    src = checks.Sources(files)
    p = kernel.join(
        day_date(day).isoformat(),
        to_frame("orders", orders),
        to_frame("fills", fills),
        to_frame("bars", bars),
        src,
    )
    costs = kernel.order_costs(p)
    counts = kernel.flag_counts(p, costs)
    venues, exceptions = None, None
    if kind == "tca":
        table = tables.to_arrow(tables.order_frame(p, costs), tables.TCA_ORDERS)
        venues = kernel.venue_costs(p, costs)
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
        exceptions=exceptions,
        counts=counts,
        symbols=frozenset(p.symbols),
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
    counts: Sequence[checks.Counts], symbols: Sequence[frozenset[str]], *_: object
) -> Summary:
    """Every partition and check has passed: the totals (writes wait for this)."""
    total = checks.Counts()
    for c in counts:
        total = total + c
    return Summary(total, len(frozenset().union(*symbols)))


def write_table(
    output_url: str, table: str, index: int, data: pa.Table, ready: Summary
) -> WrittenPart:
    del ready  # an argument only so that nothing is written before every check has passed
    return write_part(output_url, table, index, data)


def _concat(parts: Sequence[pa.Table]) -> pd.DataFrame:
    frame: pd.DataFrame = pa.concat_tables(parts).to_pandas(date_as_object=False)
    return frame


def aggregate_orders(
    output_url: str, orders: Sequence[pa.Table], ready: Summary
) -> list[WrittenPart]:
    """``by_broker``, ``by_desk``, ``by_strategy`` and ``by_day`` of the TCA."""
    del ready
    frame = _concat(orders)
    written = []
    for name, key in ORDER_GROUPS:
        result = group_costs(frame, key, sums=ORDER_SUMS)
        schema = tables.aggregate_schema(key, ORDER_SUMS)
        written.append(write_part(output_url, name, 0, tables.to_arrow(result, schema)))
    return written


def aggregate_venues(
    output_url: str, venues: Sequence[pd.DataFrame], ready: Summary
) -> list[WrittenPart]:
    """``by_venue`` of the TCA, from the (order, venue) slices."""
    del ready
    frame = pd.concat(list(venues), ignore_index=True)
    result = group_costs(frame, "venue", sums=VENUE_SUMS)
    schema = tables.aggregate_schema("venue", VENUE_SUMS)
    return [write_part(output_url, "by_venue", 0, tables.to_arrow(result, schema))]


def summarize_execution(
    output_url: str, orders: Sequence[pa.Table], ready: Summary
) -> tuple[list[WrittenPart], str]:
    """``desk_daily`` and ``broker_daily`` of the execution report, and its text."""
    frame = _concat(orders)
    written = []
    for name, key in (("desk_daily", "desk"), ("broker_daily", "broker")):
        summary = report.daily_summary(frame, key)
        table = tables.to_arrow(summary, tables.daily_schema(key))
        written.append(write_part(output_url, name, 0, table))
    dates = sorted({d.date() for d in pd.to_datetime(frame["date"])})
    text = report.text_report(frame, ready.counts, dates)
    return written, text
