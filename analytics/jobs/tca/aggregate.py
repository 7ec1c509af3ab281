"""Weighted aggregates of the per-order (or per-venue-slice) costs, by group.

Each metric has its weight (:data:`analytics.jobs.tca.kernel.METRIC_WEIGHTS`): the fill-based costs
(arrival, vwap, spread, impact) the filled notional, so an order without fills (notional NaN)
carries no weight; implementation shortfall, its four components and the pre-trade model the
order value (quantity x P_d), so every order with a finite value counts, filled or not.

For a group's rows with values ``v_i`` and weights ``w_i``, over the rows whose value is finite
and whose weight is finite and > 0 (a NaN metric is left out):

- weighted mean: ``sum(w_i v_i) / sum(w_i)``;
- weighted percentile ``q`` (p50: q = 0.5, p90: q = 0.9): sort the values ascending,
  ``v_(1) <= ... <= v_(n)``, with cumulative weights ``C_k = w_(1) + ... + w_(k)`` and
  ``W = C_n``; the percentile is ``v_(k)`` for the smallest k with ``C_k / W >= q``. It is the
  inverse of the weighted empirical distribution function, always one of the values (no
  interpolation), and with equal weights it is the lower percentile (the lower median for even
  n). It is numpy's ``np.quantile(v, q, weights=w, method="inverted_cdf")``.

Both are NaN for a group with no such row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.jobs.tca.kernel import COST_METRICS, METRIC_WEIGHTS

F64 = npt.NDArray[np.float64]

#: Output column suffix and percentile of each weighted percentile.
QUANTILES: Final = (("p50", 0.5), ("p90", 0.9))


def _usable(values: F64, weights: F64) -> tuple[F64, F64]:
    keep = np.isfinite(values) & np.isfinite(weights) & (weights > 0)
    return values[keep], weights[keep]


def weighted_mean(values: F64, weights: F64) -> float:
    """``sum(w v) / sum(w)`` over finite values with positive weight; NaN when there are none."""
    v, w = _usable(np.asarray(values, np.float64), np.asarray(weights, np.float64))
    if not len(v):
        return float("nan")
    return float(np.sum(w * v) / np.sum(w))


def weighted_quantiles(values: F64, weights: F64, qs: Sequence[float]) -> F64:
    """The weighted percentiles ``qs`` (inverted weighted CDF, see the module docstring)."""
    v, w = _usable(np.asarray(values, np.float64), np.asarray(weights, np.float64))
    if not len(v):
        return np.full(len(qs), np.nan)
    return np.asarray(
        np.quantile(v, np.asarray(qs, np.float64), weights=w, method="inverted_cdf"),
        dtype=np.float64,
    )


def metric_columns(metrics: Sequence[str] = COST_METRICS) -> list[str]:
    """``<metric>_mean, <metric>_p50, <metric>_p90`` for each metric."""
    return [f"{m}_{stat}" for m in metrics for stat in ("mean", *(s for s, _ in QUANTILES))]


def sort_rows(frame: pd.DataFrame, key: str = "order_id") -> pd.DataFrame:
    """``frame`` in a canonical order: by order_id (then venue, for venue slices), or by
    ``key`` when it has no order_id."""
    ties: list[str] = ["order_id"] if "order_id" in frame.columns else [key]
    ties += ["venue"] if "venue" in frame.columns else []
    return frame.sort_values(ties, kind="stable")


def group_costs(
    frame: pd.DataFrame,
    key: str,
    *,
    sums: Sequence[str],
    weights: Mapping[str, str] = METRIC_WEIGHTS,
    metrics: Sequence[str] = COST_METRICS,
    presorted: bool = False,
) -> pd.DataFrame:
    """One row per value of ``key``: ``n_orders`` (rows), the ``sums`` (NaN skipped), and for
    each metric its weighted mean and percentiles (weight column: ``weights[metric]``). Rows
    whose key is missing (no bucket) are left out.

    The result does not depend on the order of ``frame``'s rows: they are sorted first (or
    already are, ``presorted``: by :func:`sort_rows`), so the sums are the same whatever the
    partitioning.
    """
    qs = [q for _, q in QUANTILES]
    columns = [key, "n_orders", *sums, *metric_columns(metrics)]
    if frame.empty:
        return pd.DataFrame({c: [] for c in columns})
    ordered = frame if presorted else sort_rows(frame, key)
    rows = []
    # groupby keeps the rows' order within a group: each group's rows are in (order, venue) order
    for value, group in ordered.groupby(key, sort=True, observed=True):
        row: dict[str, object] = {key: value, "n_orders": len(group)}
        for name in sums:
            row[name] = group[name].sum()
        for m in metrics:
            w = group[weights[m]].to_numpy(dtype=np.float64)
            v = group[m].to_numpy(dtype=np.float64)
            row[f"{m}_mean"] = weighted_mean(v, w)
            for (suffix, _), result in zip(QUANTILES, weighted_quantiles(v, w, qs), strict=True):
                row[f"{m}_{suffix}"] = float(result)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
