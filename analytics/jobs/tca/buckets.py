"""The buckets of the ``by_time_of_day``, ``by_size`` and ``by_volatility`` tables.

- time of day: the order's arrival in the exchange's local time (``--calendar``), in
  30-minute buckets named by their start, ``HH:MM``;
- size: quantity as a percentage of the symbol's ADV, ``100 * quantity / adv``, in ``<1%``,
  ``1-5%``, ``5-10%``, ``>=10%`` (lower edges inclusive); none when ADV is NaN or not positive;
- volatility: terciles of sigma across the day's orders with a finite sigma: edges at numpy's
  linear 1/3 and 2/3 quantiles, ``low`` (sigma <= e1), ``mid`` (e1 < sigma <= e2), ``high``;
  a value equal to an edge is in the lower bucket; none when sigma is NaN.

Each function returns an ordered categorical (NaN: no bucket), so tables list buckets in order.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

BUCKET_MINUTES: Final = 30
SIZE_LABELS: Final = ("<1%", "1-5%", "5-10%", ">=10%")
SIZE_EDGES_PCT: Final = (1.0, 5.0, 10.0)
VOLATILITY_LABELS: Final = ("low", "mid", "high")
#: The bucket tables and the per-order column each is grouped by.
BUCKET_TABLES: Final = (
    ("by_time_of_day", "time_of_day_bucket"),
    ("by_size", "size_bucket"),
    ("by_volatility", "volatility_bucket"),
)


def time_of_day(arrival_ns: I64, tz: str) -> pd.Categorical[str]:
    """The 30-minute bucket of each arrival in the time zone ``tz``, as ``HH:MM``."""
    local = pd.DatetimeIndex(pd.to_datetime(arrival_ns, utc=True)).tz_convert(tz)
    minutes = local.hour * 60 + local.minute
    start = (np.asarray(minutes) // BUCKET_MINUTES) * BUCKET_MINUTES
    labels = [f"{m // 60:02d}:{m % 60:02d}" for m in start]
    return pd.Categorical(labels, categories=sorted(set(labels)), ordered=True)


def size_pct_adv(quantity: F64, adv: F64) -> F64:
    """``100 * quantity / adv`` (NaN where adv is NaN or not positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(adv > 0, quantity * 100.0 / np.where(adv > 0, adv, 1.0), np.nan)


def size(pct_adv: F64) -> pd.Categorical[str]:
    """The size bucket of each percentage of ADV (lower edges inclusive)."""
    code = np.searchsorted(np.asarray(SIZE_EDGES_PCT), pct_adv, side="right")
    code = np.where(np.isfinite(pct_adv), code, -1).astype(np.int64)
    return pd.Categorical.from_codes(code, categories=pd.Index(list(SIZE_LABELS)), ordered=True)


def volatility(sigma: F64, day: npt.ArrayLike) -> pd.Categorical[str]:
    """The tercile of each sigma among the finite sigmas of the same ``day``."""
    code = np.full(len(sigma), -1, dtype=np.int64)
    days = np.asarray(day)
    for value in np.unique(days):
        rows = np.flatnonzero((days == value) & np.isfinite(sigma))
        if not len(rows):
            continue
        edges = np.quantile(sigma[rows], [1.0 / 3.0, 2.0 / 3.0])
        code[rows] = np.searchsorted(edges, sigma[rows], side="left")
    return pd.Categorical.from_codes(
        code, categories=pd.Index(list(VOLATILITY_LABELS)), ordered=True
    )


def with_buckets(orders: pd.DataFrame, tz: str) -> pd.DataFrame:
    """``orders`` (per-order TCA rows) with the three bucket columns of :data:`BUCKET_TABLES`."""
    adv = orders["adv"].to_numpy(np.float64)
    quantity = orders["quantity"].to_numpy(np.float64)
    arrival = orders["arrival_ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    return orders.assign(
        time_of_day_bucket=time_of_day(arrival, tz),
        size_bucket=size(size_pct_adv(quantity, adv)),
        volatility_bucket=volatility(orders["sigma"].to_numpy(np.float64), orders["date"]),
    )
