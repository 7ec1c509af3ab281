"""Per-group sums of daily returns, mergeable across chunks of columns.

A sweep's tasks each hold the daily returns of a chunk of columns (combinations) over the same
dates: ``returns`` of shape ``(T, n)``, ``NaN`` where a column has no return that day. A group is
a run of consecutive dates (a CSCV block, a calendar month). Per group and column the task keeps
the count of returns, their sum, the sum of their squares and the sum of ``log1p(r)``; the sums
of two chunks over the same dates concatenate along columns (:func:`concat`), and any union of
groups is reduced to a Sharpe ratio or a compounded return without the returns themselves.

The returns are summed after subtracting one value per column, its first return in the groups:
the sample variance ``(S2 - S1**2 / n) / (n - 1)`` then loses no precision to a large mean, and a
column whose returns are all equal has a variance of exactly 0 (so its Sharpe ratio is ``±inf``,
or ``NaN`` when the returns are all 0, as :mod:`analytics.stats.metrics` gives it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Fewer returns than this give a NaN Sharpe ratio (the rule of :mod:`analytics.stats.metrics`).
MIN_RETURNS = 2


@dataclass(frozen=True)
class GroupSums:
    """Sums of each column's returns over each group of dates.

    ``count``, ``total``, ``squares``, ``log_growth``: ``(G, n)``; ``total`` and ``squares`` are
    the sums of ``r - shift`` and ``(r - shift) ** 2``, ``log_growth`` the sum of ``log1p(r)``,
    all over the column's non-NaN returns in the group. ``shift``: ``(n,)``, the value subtracted.
    """

    count: FloatArray
    total: FloatArray
    squares: FloatArray
    log_growth: FloatArray
    shift: FloatArray

    @property
    def n_columns(self) -> int:
        """Number of columns."""
        return int(self.shift.shape[0])


def first_valid(returns: FloatArray) -> FloatArray:
    """Per column of ``(T, n)`` returns, its first non-NaN value (0 for an all-NaN column)."""
    valid = ~np.isnan(returns)
    if returns.shape[0] == 0:
        return np.zeros(returns.shape[1])
    first = np.argmax(valid, axis=0)
    value = returns[first, np.arange(returns.shape[1])]
    return np.asarray(np.where(valid.any(axis=0), value, 0.0), dtype=np.float64)


def group_sums(returns: FloatArray, starts: IntArray) -> GroupSums:
    """Sums of ``returns`` ``(T, n)`` over the groups of rows beginning at ``starts``.

    ``starts``: increasing row indices, the first of each group; group ``g`` is the rows
    ``[starts[g], starts[g + 1])`` (the last one runs to ``T``). Rows before ``starts[0]`` are
    left out. Every group must hold at least one row.
    """
    returns = np.asarray(returns, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    if returns.ndim != 2:
        raise ValueError(f"returns must be (T, n), got shape {returns.shape}")
    if starts.size and (
        np.any(np.diff(starts) <= 0) or starts[0] < 0 or starts[-1] >= len(returns)
    ):
        raise ValueError(f"group starts must increase within [0, {len(returns)}), got {starts}")
    shift = first_valid(returns[starts[0] :] if starts.size else returns)
    n_groups = len(starts)
    if n_groups == 0:
        empty = np.zeros((0, returns.shape[1]))
        return GroupSums(empty, empty, empty, empty, shift)
    valid = ~np.isnan(returns)
    centred = np.where(valid, returns - shift, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        growth = np.where(valid, np.log1p(returns), 0.0)
    return GroupSums(
        count=np.add.reduceat(valid.astype(np.float64), starts, axis=0),
        total=np.add.reduceat(centred, starts, axis=0),
        squares=np.add.reduceat(centred * centred, starts, axis=0),
        log_growth=np.add.reduceat(growth, starts, axis=0),
        shift=shift,
    )


def concat(parts: Sequence[GroupSums]) -> GroupSums:
    """The sums of chunks of columns over the same groups, side by side in the order given."""
    if not parts:
        raise ValueError("concat needs at least one part")
    groups = {part.count.shape[0] for part in parts}
    if len(groups) != 1:
        raise ValueError(f"parts have different numbers of groups: {sorted(groups)}")
    return GroupSums(
        count=np.concatenate([p.count for p in parts], axis=1),
        total=np.concatenate([p.total for p in parts], axis=1),
        squares=np.concatenate([p.squares for p in parts], axis=1),
        log_growth=np.concatenate([p.log_growth for p in parts], axis=1),
        shift=np.concatenate([p.shift for p in parts]),
    )


def sharpe_from_sums(
    count: FloatArray, total: FloatArray, squares: FloatArray, shift: FloatArray
) -> FloatArray:
    """Daily Sharpe ratio ``mean / std`` (ddof=1) from the shifted sums of a union of groups.

    Arrays broadcast (``shift`` against the last axis). ``NaN`` with fewer than two returns;
    zero dispersion gives ``±inf`` (``NaN`` when the mean is 0 too), like numpy's division.
    """
    shape = np.broadcast_shapes(
        np.shape(count), np.shape(total), np.shape(squares), np.shape(shift)
    )
    return sharpe_in_place(
        np.asarray(count, dtype=np.float64),
        np.array(np.broadcast_to(total, shape), dtype=np.float64),
        np.array(np.broadcast_to(squares, shape), dtype=np.float64),
        np.asarray(shift, dtype=np.float64),
        np.empty(shape),
    )


def sharpe_in_place(
    count: FloatArray, total: FloatArray, squares: FloatArray, shift: FloatArray, work: FloatArray
) -> FloatArray:
    """:func:`sharpe_from_sums` computed in the buffers ``total`` (returned, holding the ratios),
    ``squares`` and ``work`` (overwritten, all of one shape; ``count`` and ``shift`` broadcast):
    no other array of that size is allocated, which matters when the same buffers serve
    thousands of splits."""
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(total, count, out=total)  # mean of the shifted returns
        np.multiply(total, total, out=work)
        np.divide(squares, count, out=squares)
        np.subtract(squares, work, out=squares)  # population variance
        np.maximum(squares, 0.0, out=squares)
        np.subtract(count, 1.0, out=work)
        np.divide(count, work, out=work)
        np.multiply(squares, work, out=squares)  # sample variance (ddof=1)
        np.sqrt(squares, out=squares)
        np.add(total, shift, out=total)  # the mean
        np.divide(total, squares, out=total)
    np.copyto(total, np.nan, where=count < MIN_RETURNS)
    return total


def nan_lowest(values: FloatArray) -> FloatArray:
    """``values`` with ``NaN`` replaced by ``-inf``: the order in which a NaN Sharpe ratio (no
    evidence) ranks below every number and is never chosen over one."""
    return np.asarray(np.where(np.isnan(values), -np.inf, values), dtype=np.float64)
