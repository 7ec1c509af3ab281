"""Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, López de Prado and Zhu (2015). The selection's T dates are cut into S consecutive
blocks of ``T // S`` dates (the first ``T mod S`` dates are dropped). Each of the C(S, S/2) ways to
take S/2 blocks as in-sample (IS, the rest out-of-sample, OOS) is a split. In a split, n* is the
column with the highest IS daily Sharpe ratio (mean / std, ddof=1, over the concatenated IS
returns; ties: the lowest index); ω = (rank of n*'s OOS Sharpe ratio among all N, ascending,
1..N, ties averaged) / (N + 1); the split's logit is λ = ln(ω / (1 − ω)). PBO is the share of
splits with λ <= 0: how often the IS best lands at or below the OOS median.

Everything comes from per-block sums (:func:`block_sums`, one call per chunk of columns, merged
with :func:`analytics.stats.sums.concat`). The split's IS sums are a 0/1 matrix product of the
block sums, and the OOS side of split i is the IS side of split C − 1 − i (its complement in
lexicographic order), so every split's Sharpe ratios are computed once, a bounded number of
splits at a time.

A NaN Sharpe ratio (fewer than two returns in the half, or all of them 0) ranks below every
number: such a column is never n* while another has a ratio, and as n*'s OOS ratio it ranks
lowest. If every IS ratio is NaN, n* is column 0 (the tie rule). ``prob_oos_loss`` counts a NaN
OOS ratio as no loss; ``oos_is_slope`` uses the splits where both of n*'s ratios are finite.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.errors import InputError
from analytics.stats.sums import GroupSums, group_sums, sharpe_in_place

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The default number of blocks S (12,870 splits).
DEFAULT_BLOCKS = 16
#: Splits x columns of Sharpe ratios held at once: 4 Mi cells is 32 MiB per float array.
MAX_CELLS = 4 * 2**20


@dataclass(frozen=True)
class Cscv:
    """The outcome of CSCV over N trials.

    Scalars: ``n_trials`` (N), ``n_splits``, ``pbo``, ``median_logit``, ``oos_is_slope``,
    ``prob_oos_loss``. Per split, in :func:`splits` order: ``logits`` (λ), ``chosen`` (n*),
    ``is_sharpe`` and ``oos_sharpe`` (n*'s daily Sharpe ratios).
    """

    n_trials: int
    n_splits: int
    pbo: float
    median_logit: float
    oos_is_slope: float
    prob_oos_loss: float
    logits: FloatArray
    chosen: IntArray
    is_sharpe: FloatArray
    oos_sharpe: FloatArray


def check_blocks(n_dates: int, n_blocks: int) -> None:
    """Raise :class:`InputError` unless ``n_blocks`` is even, at least 2, and at most ``n_dates``
    (each block holds at least one date)."""
    if n_blocks < 2 or n_blocks % 2:
        raise InputError(
            f"--cscv-blocks must be an even number of at least 2, got {n_blocks}; "
            f"use {DEFAULT_BLOCKS} (the default) or another even number"
        )
    if n_dates < n_blocks:
        raise InputError(
            f"CSCV needs at least one date per block: found {n_dates} dates for "
            f"{n_blocks} blocks; select more dates or pass a smaller --cscv-blocks"
        )


def block_starts(n_dates: int, n_blocks: int) -> IntArray:
    """First row of each of the ``n_blocks`` blocks of ``n_dates // n_blocks`` rows, after the
    first ``n_dates mod n_blocks`` rows are dropped."""
    check_blocks(n_dates, n_blocks)
    length = n_dates // n_blocks
    return np.asarray(n_dates % n_blocks + length * np.arange(n_blocks), dtype=np.int64)


def block_sums(returns: FloatArray, n_blocks: int = DEFAULT_BLOCKS) -> GroupSums:
    """Per-block sums of ``returns`` ``(T, n)`` (NaN: no return that day) for :func:`cscv`."""
    returns = np.asarray(returns, dtype=np.float64)
    return group_sums(returns, block_starts(returns.shape[0], n_blocks))


def splits(n_blocks: int) -> IntArray:
    """The in-sample blocks of every split, ``(C(S, S/2), S/2)``, in lexicographic order; split
    ``C − 1 − i`` is the complement of split ``i``."""
    return np.asarray(list(itertools.combinations(range(n_blocks), n_blocks // 2)), dtype=np.int64)


def _indicator(n_blocks: int) -> FloatArray:
    chosen = splits(n_blocks)
    matrix = np.zeros((len(chosen), n_blocks))
    np.put_along_axis(matrix, chosen, 1.0, axis=1)
    return matrix


def _slope(x: FloatArray, y: FloatArray) -> float:
    """Least-squares slope of y on x over the points where both are finite (NaN if < 2 or flat)."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return float("nan")
    dx = x - x.mean()
    spread = float(dx @ dx)
    return float(dx @ (y - y.mean()) / spread) if spread > 0 else float("nan")


class _Workspace:
    """Buffers of ``rows`` splits x N reused by every chunk of splits: allocating arrays of this
    size anew for each chunk costs more in page faults than the arithmetic itself."""

    def __init__(self, rows: int, n_trials: int, shared_count: bool) -> None:
        self.total = np.empty((rows, n_trials))
        self.squares = np.empty((rows, n_trials))
        self.work = np.empty((rows, n_trials))
        self.count = np.empty((rows, 1 if shared_count else n_trials))
        self.nan = np.empty((rows, n_trials), dtype=np.bool_)
        self.compare = np.empty((rows, n_trials), dtype=np.bool_)


def cscv(sums: GroupSums, *, max_cells: int = MAX_CELLS) -> Cscv:
    """CSCV over the per-block sums of all N trials (``sums.count.shape == (S, N)``).

    ``max_cells`` bounds the splits x N Sharpe ratios held at once (the memory is three float64
    and two boolean arrays of that size, allocated once).
    """
    n_blocks, n_trials = sums.count.shape
    check_blocks(n_blocks, n_blocks)
    if n_trials < 1:
        raise InputError("CSCV needs at least one trial (combination), found 0")
    indicator = _indicator(n_blocks)
    n_splits = len(indicator)
    half = n_splits // 2
    shared = bool(np.all(sums.count == sums.count[:, :1]))
    counts = sums.count[:, :1] if shared else sums.count
    step = max(1, min(half, max_cells // (2 * n_trials)))
    space = _Workspace(2 * step, n_trials, shared)

    chosen = np.empty(n_splits, dtype=np.int64)
    rank = np.empty(n_splits)
    is_sharpe = np.empty(n_splits)
    oos_sharpe = np.empty(n_splits)
    for start in range(0, half, step):
        first = np.arange(start, min(start + step, half))
        k = len(first)
        # Rows 0..k-1 hold splits `first`, rows k..2k-1 their complements: the IS side of one
        # row is the OOS side of the other.
        index = np.concatenate([first, n_splits - 1 - first])
        other = np.concatenate([np.arange(k, 2 * k), np.arange(k)])
        rows = indicator[index]
        total, squares = space.total[: 2 * k], space.squares[: 2 * k]
        np.matmul(rows, counts, out=space.count[: 2 * k])
        np.matmul(rows, sums.total, out=total)
        np.matmul(rows, sums.squares, out=squares)
        sharpe = sharpe_in_place(
            space.count[: 2 * k], total, squares, sums.shift, space.work[: 2 * k]
        )
        nan = space.nan[: 2 * k]
        np.isnan(sharpe, out=nan)
        np.copyto(sharpe, -np.inf, where=nan)  # NaN ranks lowest, never chosen over a number
        best = np.argmax(sharpe, axis=1)
        every = np.arange(2 * k)
        # Row j, as the OOS side of split `other[j]`, is judged at that split's n*.
        judged = best[other]
        value = sharpe[every, judged]
        compare = space.compare[: 2 * k]
        np.less(sharpe, value[:, None], out=compare)
        below = np.count_nonzero(compare, axis=1)
        np.equal(sharpe, value[:, None], out=compare)
        equal = np.count_nonzero(compare, axis=1)
        target = index[other]
        chosen[index] = best
        rank[target] = below + (equal + 1) / 2.0
        is_sharpe[index] = np.where(nan[every, best], np.nan, sharpe[every, best])
        oos_sharpe[target] = np.where(nan[every, judged], np.nan, value)

    omega = rank / (n_trials + 1)
    logits = np.log(omega / (1.0 - omega))
    return Cscv(
        n_trials=int(n_trials),
        n_splits=int(n_splits),
        pbo=float(np.mean(logits <= 0.0)),
        median_logit=float(np.median(logits)),
        oos_is_slope=_slope(is_sharpe, oos_sharpe),
        prob_oos_loss=float(np.mean(oos_sharpe < 0.0)),
        logits=logits,
        chosen=chosen,
        is_sharpe=is_sharpe,
        oos_sharpe=oos_sharpe,
    )


def split_count(n_blocks: int) -> int:
    """C(S, S/2), the number of splits of S blocks."""
    return math.comb(n_blocks, n_blocks // 2)
