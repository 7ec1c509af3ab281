"""Validation of a distributed parameter sweep: the layer between a job's tasks and the kernels.

A sweep job holds, per chunk of combinations, the daily returns of each combination's portfolio:
``returns`` of shape ``(T, n)`` over the run's T calendar dates (``NaN``: no return that day).
From those, and without moving them, this module gives the tables of issue 14:

1. in each chunk's task, :func:`chunk_figures` reduces its matrix to small per-column figures
   (Sharpe moments, CSCV block sums, walk-forward month sums);
2. one small task, :func:`judge`, gathers every chunk's figures (in grid order) and decides: the
   deflation's SR₀ over all N trials, CSCV, and the walk-forward folds and their choices;
3. back in each chunk's task, :func:`sharpe_columns` gives the ``psr`` and ``dsr`` columns and
   :func:`chosen_pieces` the chosen combinations' test-window returns (the second pass over the
   matrices, which stay on the workers);
4. one last task, :func:`tables`, builds ``validation/``, ``walk_forward/`` and ``oos_equity/``.

:func:`relative_columns` and :func:`baseline_returns` give the benchmark-relative columns and the
buy-and-hold baseline. Formulas and edge rules are the kernels': :mod:`analytics.stats.sharpe`,
:mod:`analytics.stats.cscv`, :mod:`analytics.stats.walk_forward`, :mod:`analytics.stats.relative`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.constants import TRADING_DAYS_PER_YEAR
from analytics.stats import cscv as cscv_kernel
from analytics.stats import sharpe, walk_forward
from analytics.stats import sums as group
from analytics.stats.relative import FIELDS as RELATIVE_FIELDS
from analytics.stats.relative import relative_statistics
from analytics.stats.walk_forward import Fold, MonthSums, WalkForward

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: The columns of ``validation/``; the last two only with walk-forward.
VALIDATION_COLUMNS = (
    "pbo",
    "n_trials",
    "n_splits",
    "median_logit",
    "oos_is_slope",
    "prob_oos_loss",
    "wf_oos_sharpe",
    "wf_mean_train_sharpe",
)
#: The columns of ``walk_forward/`` around the combination's parameters.
FOLD_COLUMNS = ("fold", "train_start", "train_end", "test_start", "test_end", "combination")
FOLD_FIGURES = ("train_sharpe", "test_sharpe", "test_total_return", "rank_correlation")
__all__ = [
    "RELATIVE_FIELDS",
    "ChunkFigures",
    "Plan",
    "Verdict",
    "baseline_returns",
    "check",
    "chosen_pieces",
    "chunk_figures",
    "judge",
    "relative_columns",
    "sharpe_columns",
    "tables",
]


@dataclass(frozen=True)
class Plan:
    """What to validate: CSCV's S blocks, and walk-forward folds (``None``: no walk-forward)."""

    n_blocks: int = cscv_kernel.DEFAULT_BLOCKS
    walk_forward: WalkForward | None = None


def check(plan: Plan, n_dates: int) -> None:
    """Raise :class:`analytics.errors.InputError` (before any task) when ``n_dates`` dates cannot
    be cut into the plan's CSCV blocks."""
    cscv_kernel.check_blocks(n_dates, plan.n_blocks)


@dataclass(frozen=True)
class ChunkFigures:
    """One chunk's per-column figures: small (a few numbers per block and month per column)."""

    moments: sharpe.SharpeMoments
    blocks: group.GroupSums
    months: MonthSums | None


def chunk_figures(returns: FloatArray, dates: npt.ArrayLike, plan: Plan) -> ChunkFigures:
    """The figures of one chunk's ``returns`` ``(T, n)`` over ``dates`` (T increasing days)."""
    r = np.asarray(returns, dtype=np.float64)
    return ChunkFigures(
        moments=sharpe.sharpe_moments(r),
        blocks=cscv_kernel.block_sums(r, plan.n_blocks),
        months=walk_forward.month_sums(r, dates) if plan.walk_forward is not None else None,
    )


@dataclass(frozen=True)
class Verdict:
    """Everything decided from all N trials: the deflation's benchmark ``sr0`` (daily), CSCV's
    outcome, and the walk-forward folds (empty without walk-forward)."""

    n_trials: int
    sr0: float
    cscv: cscv_kernel.Cscv
    folds: tuple[Fold, ...]
    walk_forward: bool


def judge(figures: Sequence[ChunkFigures], dates: npt.ArrayLike, plan: Plan) -> Verdict:
    """Gather the chunks' figures, in grid order, and decide (a small task)."""
    moments = sharpe.concat([f.moments for f in figures])
    blocks = group.concat([f.blocks for f in figures])
    folds: list[Fold] = []
    if plan.walk_forward is not None:
        months = walk_forward.concat([f.months for f in figures if f.months is not None])
        folds = walk_forward.select(plan.walk_forward, dates, months)
    return Verdict(
        n_trials=len(moments.sharpe),
        sr0=sharpe.expected_max_sharpe(moments.sharpe),
        cscv=cscv_kernel.cscv(blocks),
        folds=tuple(folds),
        walk_forward=plan.walk_forward is not None,
    )


def sharpe_columns(figures: ChunkFigures, verdict: Verdict) -> dict[str, FloatArray]:
    """The chunk's ``psr`` (against 0) and ``dsr`` (against the verdict's SR₀) columns."""
    return {
        "psr": sharpe.probabilistic_sharpe(figures.moments),
        "dsr": sharpe.probabilistic_sharpe(figures.moments, verdict.sr0),
    }


def chosen_pieces(returns: FloatArray, verdict: Verdict, first: int) -> dict[int, FloatArray]:
    """The test-window returns of the folds whose chosen combination is in this chunk (columns
    ``first ..``), by fold number: the second pass, a few hundred numbers per fold."""
    return walk_forward.chosen_test_returns(returns, verdict.folds, first)


def relative_columns(returns: FloatArray, benchmark: FloatArray) -> dict[str, FloatArray]:
    """The benchmark-relative columns (:data:`RELATIVE_FIELDS`) of ``returns`` ``(T, n)``."""
    return relative_statistics(returns, benchmark, periods_per_year=TRADING_DAYS_PER_YEAR)


def baseline_returns(universe: FloatArray, entry_cost: float) -> FloatArray:
    """Buy-and-hold of the equal-weighted universe: its daily mean returns ``universe`` ``(T,)``
    (NaN: no symbol has a return), with one entry's cost charged on the first date: that day's
    return is ``(1 + r₀) / (1 + entry_cost) − 1`` (``r₀`` = 0 when no symbol has one)."""
    r = np.array(universe, dtype=np.float64)
    if len(r):
        r0 = 0.0 if np.isnan(r[0]) else float(r[0])
        r[0] = (1.0 + r0) / (1.0 + entry_cost) - 1.0
    return r


def _dates(values: Sequence[np.datetime64]) -> npt.NDArray[np.datetime64]:
    return np.array(values, dtype="datetime64[D]").reshape(-1)


def tables(
    verdict: Verdict, dates: npt.ArrayLike, pieces: Sequence[Mapping[int, FloatArray]]
) -> tuple[dict[str, float | int], pd.DataFrame, pd.DataFrame]:
    """``validation/`` (one row, as a dict), ``walk_forward/`` (without the parameters: the job
    joins them by ``combination``) and ``oos_equity/`` from the verdict and every chunk's
    :func:`chosen_pieces` (a small task)."""
    c = verdict.cscv
    row: dict[str, float | int] = {
        "pbo": c.pbo,
        "n_trials": c.n_trials,
        "n_splits": c.n_splits,
        "median_logit": c.median_logit,
        "oos_is_slope": c.oos_is_slope,
        "prob_oos_loss": c.prob_oos_loss,
    }
    days = np.asarray(dates, dtype="datetime64[D]")
    folds = pd.DataFrame(
        {
            "fold": np.array([f.window.fold for f in verdict.folds], dtype=np.int64),
            "train_start": _dates([f.train_start for f in verdict.folds]),
            "train_end": _dates([f.train_end for f in verdict.folds]),
            "test_start": _dates([f.test_start for f in verdict.folds]),
            "test_end": _dates([f.test_end for f in verdict.folds]),
            "combination": np.array([f.combination for f in verdict.folds], dtype=np.int64),
            **{
                name: np.array([getattr(f, name) for f in verdict.folds], dtype=np.float64)
                for name in FOLD_FIGURES
            },
        }
    )
    equity = pd.DataFrame(
        {"date": np.zeros(0, "datetime64[D]"), "equity": np.zeros(0, dtype=np.float64)}
    )
    if verdict.walk_forward:
        merged: dict[int, FloatArray] = {}
        for chunk in pieces:
            merged.update(chunk)
        stitched = walk_forward.stitch(verdict.folds, days, merged)
        row["wf_oos_sharpe"] = stitched.sharpe
        row["wf_mean_train_sharpe"] = stitched.mean_train_sharpe
        equity = pd.DataFrame({"date": stitched.dates, "equity": stitched.equity})
    return row, folds, equity
