"""The data checks of TCA inputs, and for each the decision: reject the input or flag the rows.

*Reject* raises :class:`~analytics.errors.InputError` (exit code 2, nothing committed) naming
the dataset, the file and the column; *flag* keeps the rows, sets a boolean ``flag_*`` column on
the order and counts the cases in the manifest's summary; *skip* keeps the row for what it is
still good for, ignores the bad part and counts it. :data:`CHECKS` is the one table of
decisions (the table in ``docs/jobs/tca.md`` is written from it); the reasons are in ``why``.

Sides other than exactly ``BUY``/``SELL`` never get here: the reader rejects them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analytics.errors import InputError

I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]

#: The column of a partition's input rows naming the file they came from (an index into
#: :attr:`Sources.files`).
FILE_COLUMN: Final = "_file"


@dataclass(frozen=True)
class Check:
    name: str
    decision: Literal["reject", "flag", "skip"]
    #: The boolean order column set by a flag.
    flag_column: str | None
    why: str


CHECKS: Final = (
    Check(
        "fill_without_order",
        "reject",
        None,
        "a fill that matches no order of its date (same order_id and symbol) cannot be "
        "attributed to a side, broker or desk; dropping it would understate the venues' and "
        "brokers' volumes, and it means the orders and fills extracts disagree",
    ),
    Check(
        "fill_before_arrival",
        "flag",
        "flag_fills_before_arrival",
        "the execution happened and cost money, so it stays in every metric; a clock or "
        "booking-time error on one fill should not stop the whole day's report",
    ),
    Check(
        "fill_after_end",
        "flag",
        "flag_fills_after_end",
        "as for fills before arrival: late bookings and overruns happen, the fill is real",
    ),
    Check(
        "side_mismatch",
        "reject",
        None,
        "a sell booked against a buy order (or the reverse) inverts the sign of every cost; "
        "no number computed from it would mean anything",
    ),
    Check(
        "overfilled_order",
        "flag",
        "flag_overfilled",
        "over-fills happen (a broker's error) and the fills are real; the metrics stay "
        "defined (fill_rate > 1, a negative opportunity term) and the flag points at the order",
    ),
    Check(
        "duplicate_fill_id",
        "reject",
        None,
        "the same fill twice would double its quantity, notional and fees; which copy is right "
        "cannot be decided here, and silently dropping one could hide a real execution",
    ),
    Check(
        "order_without_bars",
        "flag",
        "flag_no_bars",
        "one symbol missing from the market-data extract (a halt, a new listing) must not "
        "block 100,000 other orders; the order's fills, fees and fill rate are still reported, "
        "its market-based metrics are NaN",
    ),
    Check(
        "symbol_mismatch",
        "reject",
        None,
        "a fill whose symbol differs from its order's would be priced against the wrong bars",
    ),
    Check(
        "duplicate_order_id",
        "reject",
        None,
        "fills could not be attributed to one order",
    ),
    Check(
        "duplicate_bar",
        "reject",
        None,
        "two bars of a symbol starting at the same time make every mid at that time ambiguous",
    ),
    Check(
        "end_before_arrival",
        "reject",
        None,
        "an order whose end_ts precedes its arrival_ts has no trading interval",
    ),
    Check(
        "bar_out_of_range",
        "reject",
        None,
        "a bar with high < low, or its close outside [low, high], is corrupt: its volume-weighted "
        "price and the price-anomaly check would be computed from impossible numbers",
    ),
    Check(
        "crossed_quote",
        "skip",
        None,
        "a bar whose bid > ask, or whose bid is not positive, has no usable quote (a feed "
        "glitch or a locked-out book); its trades (volume, vwap) are still real, so the bar "
        "stays in the interval, but mids come from the last completed bar that has a quote",
    ),
)
CHECK_BY_NAME: Final = {c.name: c for c in CHECKS}
FLAG_COLUMNS: Final = tuple(c.flag_column for c in CHECKS if c.flag_column)


@dataclass(frozen=True)
class Sources:
    """The files a partition's rows came from (rows carry their index in ``FILE_COLUMN``)."""

    files: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def file(self, dataset: str, frame: pd.DataFrame, row: int) -> str | None:
        urls = self.files.get(dataset, ())
        if FILE_COLUMN not in frame.columns or not len(urls):
            return None
        return urls[int(frame[FILE_COLUMN].iloc[row])]


@dataclass
class Counts:
    """What a partition saw and flagged; partitions' counts add up."""

    orders: int = 0
    fills: int = 0
    fills_before_arrival: int = 0
    orders_with_fills_before_arrival: int = 0
    fills_after_end: int = 0
    orders_with_fills_after_end: int = 0
    overfilled_orders: int = 0
    orders_without_bars: int = 0
    #: Orders whose symbol has bars, but no quote completed by arrival_ts (arrival_mid NaN).
    orders_without_arrival_bar: int = 0
    #: Bars of the orders' symbols whose quote is crossed or has a non-positive bid.
    crossed_quotes: int = 0
    #: Execution report: fills worse than their order's limit_price.
    limit_breaches: int = 0
    #: Execution report: fills priced outside their bar's [low, high].
    price_anomalies: int = 0
    #: Execution report: fills that fall in no bar (their [low, high] cannot be checked).
    fills_without_bar: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            **{
                f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in dataclasses.fields(self)
            }
        )

    def data_checks(self) -> dict[str, dict[str, Any]]:
        """The manifest's ``data_checks``: each check's decision and, for flags, its counts."""
        counted = {
            "fill_before_arrival": {
                "fills": self.fills_before_arrival,
                "orders": self.orders_with_fills_before_arrival,
            },
            "fill_after_end": {
                "fills": self.fills_after_end,
                "orders": self.orders_with_fills_after_end,
            },
            "overfilled_order": {"orders": self.overfilled_orders},
            "order_without_bars": {"orders": self.orders_without_bars},
            "crossed_quote": {"bars": self.crossed_quotes},
        }
        out: dict[str, dict[str, Any]] = {}
        for check in CHECKS:
            entry: dict[str, Any] = {"decision": check.decision}
            if check.flag_column:
                entry["flag_column"] = check.flag_column
            entry.update(counted.get(check.name, {}))
            out[check.name] = entry
        return out


def _first(mask: BOOL) -> int:
    return int(np.flatnonzero(mask)[0])


def reject_bad_windows(orders: pd.DataFrame, arrival: I64, end: I64, src: Sources) -> None:
    """Reject orders whose ``end_ts`` precedes their ``arrival_ts``."""
    bad = end < arrival
    if bad.any():
        i = _first(bad)
        raise InputError(
            f"{int(bad.sum())} order(s) end before they arrive; first order_id "
            f"{orders['order_id'].iloc[i]!r}: arrival_ts {orders['arrival_ts'].iloc[i]}, "
            f"end_ts {orders['end_ts'].iloc[i]}",
            dataset="orders",
            file=src.file("orders", orders, i),
            column="end_ts",
        )


def reject_duplicate_orders(orders: pd.DataFrame, src: Sources) -> None:
    """Reject an order_id that appears twice in one partition."""
    dup = orders["order_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        i = _first(dup)
        raise InputError(
            f"{int(dup.sum())} rows share an order_id; first {orders['order_id'].iloc[i]!r}",
            dataset="orders",
            file=src.file("orders", orders, i),
            column="order_id",
        )


def reject_orphans(fills: pd.DataFrame, pos: I64, day: str, src: Sources) -> None:
    """Reject fills that match no order of the partition (same date, same symbol)."""
    bad = pos < 0
    if bad.any():
        i = _first(bad)
        raise InputError(
            f"{int(bad.sum())} fill(s) of {day} match no order of that date with the same "
            "symbol (the order is missing from orders/, or its symbol differs from the "
            f"fill's); first fill_id {fills['fill_id'].iloc[i]!r}, order_id "
            f"{fills['order_id'].iloc[i]!r}, symbol {fills['symbol'].iloc[i]!s}",
            dataset="fills",
            file=src.file("fills", fills, i),
            column="order_id",
        )


def reject_mismatch(
    fills: pd.DataFrame, orders: pd.DataFrame, pos: I64, column: str, src: Sources
) -> None:
    """Reject fills whose ``column`` (side or symbol) differs from their order's."""
    mine = fills[column].astype(str).to_numpy()
    theirs = orders[column].astype(str).to_numpy()[pos]
    bad = mine != theirs
    if bad.any():
        i = _first(bad)
        raise InputError(
            f"{int(bad.sum())} fill(s) have a {column} that differs from their order's; first "
            f"fill_id {fills['fill_id'].iloc[i]!r} is {mine[i]} but its order "
            f"{fills['order_id'].iloc[i]!r} is {theirs[i]}",
            dataset="fills",
            file=src.file("fills", fills, i),
            column=column,
        )


def reject_duplicate_bars(bars: pd.DataFrame, sym: I64, start: I64, src: Sources) -> None:
    """Reject two bars of a symbol with the same start; ``sym, start`` sorted, rows of ``bars``
    in the same order."""
    same = (sym[1:] == sym[:-1]) & (start[1:] == start[:-1])
    if same.any():
        i = _first(same)
        raise InputError(
            f"{int(same.sum())} bar(s) repeat a (symbol, ts); first symbol "
            f"{bars['symbol'].iloc[i]!s} at {bars['ts'].iloc[i]}",
            dataset="bars",
            file=src.file("bars", bars, i + 1),
            column="symbol, ts",
        )


def reject_bad_bars(bars: pd.DataFrame, high: F64, low: F64, close: F64, src: Sources) -> None:
    """Reject a bar with ``high < low`` or its close outside [low, high] (``high``, ``low``,
    ``close`` are the columns of ``bars``, in its row order)."""
    for column, bad, what in (
        ("high, low", high < low, "high < low"),
        ("close", (close < low) | (close > high), "close outside [low, high]"),
    ):
        if bad.any():
            i = _first(bad)
            raise InputError(
                f"{int(bad.sum())} bar(s) have {what}; first symbol {bars['symbol'].iloc[i]!s} "
                f"at {bars['ts'].iloc[i]}: high {high[i]}, low {low[i]}, close {close[i]}",
                dataset="bars",
                file=src.file("bars", bars, i),
                column=column,
            )


def reject_duplicate_ids(dataset: str, column: str, ids: pa.Table, urls: Sequence[str]) -> None:
    """Reject an id that appears twice among ``ids`` (columns ``id`` and ``FILE_COLUMN``)."""
    if not ids.num_rows:
        return
    # value_counts, not group_by: Acero warns about the unaligned buffers of unpickled tables
    counts = pc.value_counts(ids.column("id"))
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if not len(repeated):
        return
    first = repeated.field("values")[0].as_py()
    rows = ids.filter(pc.equal(ids.column("id"), first))
    files = sorted({urls[i] for i in rows.column(FILE_COLUMN).to_pylist()})
    where = "" if len(files) < 2 else f" (in {', '.join(files)})"
    raise InputError(
        f"{len(repeated)} {column}(s) appear more than once; first {first!r}, "
        f"{rows.num_rows} times{where}",
        dataset=dataset,
        file=files[0],
        column=column,
    )
