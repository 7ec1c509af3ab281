"""Walk-forward selection in calendar months (``--walk-forward TRAIN:TEST``, ``--anchored``).

With m0 the month of the selection's first date, fold k (k = 0, 1, ...) trains on the months
``[m0 + k·TEST, m0 + k·TEST + TRAIN)`` (anchored: ``[m0, m0 + k·TEST + TRAIN)``) and tests on the
next TEST months. Folds continue while the test window starts at or before the month of the last
date, so the last one may be short; a fold is kept when both of its windows hold at least one
date (only a gap of whole months in the data can empty one, and then that fold number is
skipped). In each fold the column with the highest training Sharpe ratio (mean / std, ddof=1,
× √252 over the window's daily returns; ties: the lowest index; a NaN ratio ranks below every
number) is chosen and judged on the test window.

The windows' Sharpe ratios and compounded returns come from per-month sums
(:func:`month_sums`, one call per chunk of columns, merged with :func:`concat`); the stitched
out-of-sample series needs only the chosen columns' returns on their test windows
(:func:`chosen_test_returns` in the task holding each, then :func:`stitch`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from analytics.constants import TRADING_DAYS_PER_YEAR
from analytics.errors import InputError
from analytics.stats import metrics
from analytics.stats import sums as group
from analytics.stats.sums import GroupSums, group_sums, nan_lowest, sharpe_from_sums

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DateArray = npt.NDArray[np.datetime64]

PPY = TRADING_DAYS_PER_YEAR
_SPEC = re.compile(r"\s*(\d+)\s*:\s*(\d+)\s*")


@dataclass(frozen=True)
class WalkForward:
    """The folds' shape: training and test windows in calendar months; anchored training
    windows all start at the first month."""

    train_months: int
    test_months: int
    anchored: bool = False


def parse_walk_forward(text: str, *, anchored: bool = False) -> WalkForward:
    """``"TRAIN:TEST"`` (whole calendar months, both at least 1) as a :class:`WalkForward`."""
    match = _SPEC.fullmatch(text)
    if match is None:
        raise InputError(
            f"--walk-forward takes TRAIN:TEST in whole calendar months (for example 36:12), "
            f"got {text!r}"
        )
    train, test = int(match[1]), int(match[2])
    if train < 1 or test < 1:
        raise InputError(
            f"--walk-forward needs at least 1 training and 1 test month, got {train}:{test}; "
            f"for example 36:12"
        )
    return WalkForward(train, test, anchored)


def months_of(dates: npt.ArrayLike) -> IntArray:
    """Calendar month of each date as a count of months since 1970-01."""
    return np.asarray(np.asarray(dates, dtype="datetime64[M]").astype(np.int64), dtype=np.int64)


def _as_dates(dates: npt.ArrayLike) -> DateArray:
    days = np.asarray(dates, dtype="datetime64[D]")
    if days.ndim != 1 or np.any(np.diff(days) <= np.timedelta64(0, "D")):
        raise ValueError("dates must be one strictly increasing series of days")
    return days


@dataclass(frozen=True)
class MonthSums:
    """Per-month sums (:class:`GroupSums`, one group per month that holds a date) and the
    months they cover (``months``: counts of months since 1970-01, increasing)."""

    months: IntArray
    sums: GroupSums


def month_sums(returns: FloatArray, dates: npt.ArrayLike) -> MonthSums:
    """Sums of ``returns`` ``(T, n)`` (NaN: no return that day) over each calendar month of
    ``dates`` (T increasing days)."""
    months = months_of(_as_dates(dates))
    returns = np.asarray(returns, dtype=np.float64)
    if returns.shape[0] != len(months):
        raise ValueError(f"returns has {returns.shape[0]} rows for {len(months)} dates")
    starts = np.flatnonzero(np.diff(months, prepend=months[:1] - 1))
    return MonthSums(months[starts], group_sums(returns, starts))


def concat(parts: Sequence[MonthSums]) -> MonthSums:
    """The month sums of chunks of columns over the same dates, side by side."""
    if not parts or any(not np.array_equal(p.months, parts[0].months) for p in parts):
        raise ValueError("concat needs at least one part, all over the same months")
    return MonthSums(parts[0].months, group.concat([p.sums for p in parts]))


@dataclass(frozen=True)
class Window:
    """Fold ``fold``'s training and test windows: months ``[start, stop)`` and the row ranges
    ``[first, stop)`` of the dates inside them."""

    fold: int
    train_months: tuple[int, int]
    test_months: tuple[int, int]
    train_rows: tuple[int, int]
    test_rows: tuple[int, int]


def windows(spec: WalkForward, dates: npt.ArrayLike) -> list[Window]:
    """The folds over ``dates`` (increasing days), in order."""
    months = months_of(_as_dates(dates))
    if len(months) == 0:
        return []
    m0, last = int(months[0]), int(months[-1])
    found = []
    k = 0
    while m0 + k * spec.test_months + spec.train_months <= last:
        test_start = m0 + k * spec.test_months + spec.train_months
        train = (m0 if spec.anchored else m0 + k * spec.test_months, test_start)
        test = (test_start, test_start + spec.test_months)
        train_rows = (_row(months, train[0]), _row(months, train[1]))
        test_rows = (_row(months, test[0]), _row(months, test[1]))
        if train_rows[1] > train_rows[0] and test_rows[1] > test_rows[0]:
            found.append(Window(k, train, test, train_rows, test_rows))
        k += 1
    return found


def _row(months: IntArray, month: int) -> int:
    return int(np.searchsorted(months, month, side="left"))


@dataclass(frozen=True)
class Fold:
    """One row of ``walk_forward/``: the window, its first and last trading dates, the chosen
    column, its annualized train and test Sharpe ratios and compounded test return, and the
    Spearman correlation over all columns of train against test Sharpe ratio."""

    window: Window
    train_start: np.datetime64
    train_end: np.datetime64
    test_start: np.datetime64
    test_end: np.datetime64
    combination: int
    train_sharpe: float
    test_sharpe: float
    test_total_return: float
    rank_correlation: float


def _window_sums(sums: MonthSums, months: tuple[int, int]) -> tuple[FloatArray, ...]:
    lo, hi = np.searchsorted(sums.months, months, side="left")
    s = sums.sums
    return (
        s.count[lo:hi].sum(axis=0),
        s.total[lo:hi].sum(axis=0),
        s.squares[lo:hi].sum(axis=0),
        s.log_growth[lo:hi].sum(axis=0),
    )


def _annual_sharpe(sums: MonthSums, months: tuple[int, int]) -> tuple[FloatArray, FloatArray]:
    count, total, squares, log_growth = _window_sums(sums, months)
    sharpe = sharpe_from_sums(count, total, squares, sums.sums.shift) * np.sqrt(PPY)
    return sharpe, np.where(count > 0, np.expm1(log_growth), np.nan)


def spearman(x: FloatArray, y: FloatArray) -> float:
    """Spearman's rank correlation over the pairs where neither is NaN: ``scipy.stats.spearmanr``
    of those pairs (average ranks for ties; ``±inf``, a ratio of zero dispersion, ranks at the
    end). NaN with fewer than two pairs or a constant side."""
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2:
        return float("nan")
    rx, ry = rankdata(x[keep]), rankdata(y[keep])
    dx, dy = rx - rx.mean(), ry - ry.mean()
    spread = float(np.sqrt((dx @ dx) * (dy @ dy)))
    return float(np.clip(dx @ dy / spread, -1.0, 1.0)) if spread > 0 else float("nan")


def select(spec: WalkForward, dates: npt.ArrayLike, sums: MonthSums) -> list[Fold]:
    """Every fold's choice and judgement from the month sums of all N columns."""
    days = _as_dates(dates)
    folds = []
    for window in windows(spec, days):
        train, _ = _annual_sharpe(sums, window.train_months)
        test, growth = _annual_sharpe(sums, window.test_months)
        chosen = int(np.argmax(nan_lowest(train)))
        folds.append(
            Fold(
                window=window,
                train_start=days[window.train_rows[0]],
                train_end=days[window.train_rows[1] - 1],
                test_start=days[window.test_rows[0]],
                test_end=days[window.test_rows[1] - 1],
                combination=chosen,
                train_sharpe=float(train[chosen]),
                test_sharpe=float(test[chosen]),
                test_total_return=float(growth[chosen]),
                rank_correlation=spearman(train, test),
            )
        )
    return folds


def chosen_test_returns(
    returns: FloatArray, folds: Sequence[Fold], first_column: int = 0
) -> dict[int, FloatArray]:
    """The test-window returns of the folds whose chosen column is in this chunk: ``returns``
    ``(T, n)`` holds columns ``first_column .. first_column + n - 1``. Keyed by fold number."""
    width = np.shape(returns)[1]
    pieces = {}
    for fold in folds:
        column = fold.combination - first_column
        if 0 <= column < width:
            lo, hi = fold.window.test_rows
            pieces[fold.window.fold] = np.array(returns[lo:hi, column], dtype=np.float64)
    return pieces


@dataclass(frozen=True)
class OutOfSample:
    """The stitched test windows: the dates with a return, those returns, the equity from 1.0
    after each of them, its annualized Sharpe ratio (``wf_oos_sharpe``) and the mean training
    Sharpe ratio of the chosen columns (``wf_mean_train_sharpe``)."""

    dates: DateArray
    returns: FloatArray
    equity: FloatArray
    sharpe: float
    mean_train_sharpe: float


def stitch(
    folds: Sequence[Fold], dates: npt.ArrayLike, pieces: Mapping[int, FloatArray]
) -> OutOfSample:
    """Join the chosen columns' test-window returns (``pieces``, by fold number, as
    :func:`chosen_test_returns` gives them) in fold order; days without a return are left out."""
    days = _as_dates(dates)
    missing = [f.window.fold for f in folds if f.window.fold not in pieces]
    if missing:
        raise ValueError(f"no test-window returns for folds {missing}")
    if folds:
        rows = np.concatenate([np.arange(*f.window.test_rows) for f in folds])
        values = np.concatenate([np.asarray(pieces[f.window.fold], np.float64) for f in folds])
    else:
        rows, values = np.zeros(0, dtype=np.int64), np.zeros(0)
    if len(values) != len(rows):
        raise ValueError(f"{len(values)} test-window returns for {len(rows)} test dates")
    keep = ~np.isnan(values)
    values = values[keep]
    with np.errstate(invalid="ignore"):
        mean_train = float(np.mean([f.train_sharpe for f in folds])) if folds else float("nan")
    return OutOfSample(
        dates=days[rows[keep]],
        returns=values,
        equity=np.cumprod(1.0 + values),
        sharpe=float(metrics.sharpe_ratio(values, periods_per_year=PPY)),
        mean_train_sharpe=mean_train,
    )
