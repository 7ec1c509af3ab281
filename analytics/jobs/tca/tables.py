"""The output tables' columns and types, and their conversion to Arrow with exactly those types.

Every part of a table has the same schema whatever its rows (an empty partition, a column that
is all NaN), so the parts read back as one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from analytics.data.schemas import UTC_TS
from analytics.jobs.execution_report.tables import DAILY_COLUMNS, DAILY_COUNTS
from analytics.jobs.tca.aggregate import metric_columns
from analytics.jobs.tca.checks import FLAG_COLUMNS
from analytics.jobs.tca.kernel import COST_METRICS, Partition, timestamps_ns
from analytics.jobs.tca.markouts import MARKOUT_COLUMNS

_F, _S, _I, _B = pa.float64(), pa.string(), pa.int64(), pa.bool_()

_IDENTITY: Final = (
    ("order_id", _S),
    ("date", pa.date32()),
    ("symbol", _S),
    ("side", _S),
    ("broker", _S),
    ("desk", _S),
    ("strategy", _S),
    ("quantity", _F),
)
_FLAGS: Final = tuple((name, _B) for name in FLAG_COLUMNS)

TCA_ORDERS: Final = pa.schema(
    [
        *_IDENTITY,
        ("filled_quantity", _F),
        ("fill_rate", _F),
        ("n_fills", _I),
        ("avg_price", _F),
        ("notional", _F),
        ("order_value", _F),
        ("arrival_ts", UTC_TS),
        ("end_ts", UTC_TS),
        ("decision_price", _F),
        ("arrival_mid", _F),
        ("interval_vwap", _F),
        ("end_mid", _F),
        ("market_volume", _F),
        ("participation", _F),
        *((m, _F) for m in COST_METRICS[:3]),
        ("is_delay", _F),
        ("is_trading", _F),
        ("is_opportunity", _F),
        ("is_fees", _F),
        ("is_total", _F),
        ("is_bps", _F),
        ("is_delay_bps", _F),
        ("is_trading_bps", _F),
        ("is_opportunity_bps", _F),
        ("is_fees_bps", _F),
        ("impact_bps", _F),
        ("adv", _F),
        ("sigma", _F),
        ("half_spread_bps", _F),
        ("expected_cost_bps", _F),
        ("cost_vs_expected_bps", _F),
        *_FLAGS,
    ]
)

MARKOUTS: Final = pa.schema(
    [
        ("fill_id", _S),
        ("order_id", _S),
        ("symbol", _S),
        ("venue", _S),
        ("broker", _S),
        ("side", _S),
        ("ts", UTC_TS),
        ("price", _F),
        ("quantity", _F),
        *((m, _F) for m in MARKOUT_COLUMNS),
    ]
)

EXECUTION_ORDERS: Final = pa.schema(
    [
        *_IDENTITY,
        ("limit_price", _F),
        ("arrival_ts", UTC_TS),
        ("end_ts", UTC_TS),
        ("filled_quantity", _F),
        ("fill_rate", _F),
        ("n_fills", _I),
        ("avg_price", _F),
        ("notional", _F),
        ("order_value", _F),
        ("first_fill_ts", UTC_TS),
        ("last_fill_ts", UTC_TS),
        ("time_to_complete_s", _F),
        ("time_to_last_fill_s", _F),
        ("n_venues", _I),
        ("venue_shares", _S),
        ("top_venue", _S),
        ("top_venue_share", _F),
        ("limit_breaches", _I),
        ("price_anomalies", _I),
        ("fills_without_bar", _I),
        ("fees", _F),
        ("arrival_cost_bps", _F),
        ("is_bps", _F),
        ("is_total", _F),
        *_FLAGS,
    ]
)

FILL_EXCEPTIONS: Final = pa.schema(
    [
        ("fill_id", _S),
        ("order_id", _S),
        ("symbol", _S),
        ("side", _S),
        ("ts", UTC_TS),
        ("quantity", _F),
        ("price", _F),
        ("venue", _S),
        ("limit_price", _F),
        ("bar_low", _F),
        ("bar_high", _F),
        ("limit_breach", _B),
        ("price_anomaly", _B),
    ]
)


def _array(values: pd.Series, kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
    if pa.types.is_timestamp(kind):
        is_datetime = values.dtype.kind == "M"
        ns = timestamps_ns(values) if is_datetime else values.to_numpy(dtype=np.int64)
        mask = ns == np.iinfo(np.int64).min
        return pa.array(ns, type=pa.int64(), mask=mask).cast(kind)
    if pa.types.is_date(kind):
        return pa.array(values.to_numpy(dtype="datetime64[D]"), type=kind)
    if pa.types.is_string(kind):
        if isinstance(values.dtype, pd.CategoricalDtype | pd.StringDtype):
            # Arrow-backed or categorical text converts in Arrow, not string by string
            return pa.array(values).cast(kind)
        return pa.array(values.astype(str).to_numpy(dtype=object), type=kind)
    if kind == _F:
        return pa.array(values.to_numpy(dtype=np.float64, na_value=np.nan), type=kind)
    return pa.array(values.to_numpy(), type=kind)


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame``'s columns of ``schema``, in its order and with its types.

    Timestamp columns may hold datetimes or int64 nanoseconds (int64 min is missing).
    """
    return pa.Table.from_arrays([_array(frame[f.name], f.type) for f in schema], schema=schema)


def order_frame(p: Partition, *parts: pd.DataFrame) -> pd.DataFrame:
    """The orders' own columns of ``p`` next to computed ``parts`` (same rows)."""
    own = p.orders.reset_index(drop=True)
    if "decision_price" not in own.columns:
        own = own.assign(decision_price=np.nan)
    computed = pd.concat([part.reset_index(drop=True) for part in parts], axis=1)
    return pd.concat([own.drop(columns=computed.columns, errors="ignore"), computed], axis=1)


def aggregate_schema(key: str, sums: Sequence[str], extra: Sequence[str] = ()) -> pa.Schema:
    """An aggregate table's schema: the key (a date for ``date``), counts, sums, statistics,
    then ``extra`` float columns."""
    fields = [pa.field(key, pa.date32() if key == "date" else _S), pa.field("n_orders", _I)]
    fields += [pa.field(s, _I if s.startswith("n_") else _F) for s in sums]
    fields += [pa.field(c, _F) for c in [*metric_columns(), *extra]]
    return pa.schema(fields)


def daily_schema(key: str) -> pa.Schema:
    """The execution report's ``desk_daily`` / ``broker_daily`` schema."""
    return pa.schema(
        [
            pa.field("date", pa.date32()),
            pa.field(key, _S),
            *(
                pa.field(c, _I if c.startswith("n_") or c in DAILY_COUNTS else _F)
                for c in DAILY_COLUMNS
            ),
        ]
    )
