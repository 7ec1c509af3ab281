"""The input datasets (``docs/data.md``): columns, types, partitioning.

One table describes every dataset; the reader, the validator and the generator all use it, so
a column is named in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pyarrow as pa

UTC_TS: Final = pa.timestamp("ns", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    required: bool = True
    nullable: bool = False


@dataclass(frozen=True)
class Dataset:
    """One input dataset: its folder name under the input root and its columns."""

    name: str
    columns: tuple[Column, ...]
    #: The column that ``--start/--end`` filter on (a date or a UTC timestamp).
    time_column: str
    #: Hive partition key written by the generator (``year`` or ``date``); optional on read.
    partition_key: str
    #: Columns that must be > 0 and finite.
    positive_columns: tuple[str, ...] = ()
    #: Columns that must be >= 0 and finite.
    nonnegative_columns: tuple[str, ...] = ()
    #: Columns that identify a row; duplicates are bad input.
    key: tuple[str, ...] = ()

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"dataset {self.name!r} has no column {name!r}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


_F = pa.float64()
_S = pa.string()

PRICES: Final = Dataset(
    name="prices",
    columns=(
        Column("symbol", _S),
        Column("date", pa.date32()),
        Column("open", _F),
        Column("high", _F),
        Column("low", _F),
        Column("close", _F),
        Column("volume", _F),
    ),
    time_column="date",
    partition_key="year",
    positive_columns=("open", "high", "low", "close"),
    nonnegative_columns=("volume",),
    key=("symbol", "date"),
)

BARS: Final = Dataset(
    name="bars",
    columns=(
        Column("symbol", _S),
        Column("ts", UTC_TS),
        Column("open", _F),
        Column("high", _F),
        Column("low", _F),
        Column("close", _F),
        Column("volume", _F),
        Column("bid", _F),
        Column("ask", _F),
        Column("vwap", _F, required=False),
    ),
    time_column="ts",
    partition_key="date",
    # bid and ask need only be finite: a crossed or non-positive quote is no quote, which the
    # TCA skips and counts (crossed_quotes) rather than rejecting the day.
    positive_columns=("open", "high", "low", "close"),
    nonnegative_columns=("volume",),
    key=("symbol", "ts"),
)

ORDERS: Final = Dataset(
    name="orders",
    columns=(
        Column("order_id", _S),
        Column("date", pa.date32()),
        Column("symbol", _S),
        Column("side", _S),
        Column("quantity", _F),
        Column("arrival_ts", UTC_TS),
        Column("end_ts", UTC_TS),
        Column("limit_price", _F, nullable=True),
        Column("broker", _S),
        Column("desk", _S),
        Column("strategy", _S),
        Column("decision_price", _F, required=False, nullable=True),
    ),
    time_column="date",
    partition_key="date",
    positive_columns=("quantity",),
    key=("order_id",),
)

FILLS: Final = Dataset(
    name="fills",
    columns=(
        Column("fill_id", _S),
        Column("order_id", _S),
        Column("ts", UTC_TS),
        Column("symbol", _S),
        Column("side", _S),
        Column("quantity", _F),
        Column("price", _F),
        Column("venue", _S),
        Column("fee", _F),
    ),
    time_column="ts",
    partition_key="date",
    positive_columns=("quantity", "price"),
    nonnegative_columns=("fee",),
    key=("fill_id",),
)

POSITIONS: Final = Dataset(
    name="positions",
    columns=(
        Column("date", pa.date32()),
        Column("portfolio", _S),
        Column("symbol", _S),
        Column("quantity", _F),
    ),
    time_column="date",
    partition_key="year",
    key=("date", "portfolio", "symbol"),
)

#: The values a ``side`` column may hold.
SIDES: Final = ("BUY", "SELL")

DATASETS: Final = {d.name: d for d in (PRICES, BARS, ORDERS, FILLS, POSITIONS)}


def arrow_schema(dataset: Dataset, *, include_optional: bool = True) -> pa.Schema:
    """The canonical Arrow schema of ``dataset`` (what the reader returns, what we write)."""
    return pa.schema(
        [
            pa.field(c.name, c.type, nullable=c.nullable)
            for c in dataset.columns
            if c.required or include_optional
        ]
    )
