"""Independent reference for the sweeps' validation (issue 14), shared by the backtest and
portfolio-backtest tests: plain numpy/scipy loops over ``returns/``, written apart from
:mod:`analytics.stats`. A day without a return (NaN) is left out of a combination's series."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats


def matrix(out: Path) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """returns/ as dates (T,) and a (T, N) matrix in combination order (NaN: no return that
    day), and the parameters by combination."""
    frame = pd.read_parquet(out / "returns")
    wide = frame.pivot(index="date", columns="combination", values="return").sort_index()
    params = frame.drop_duplicates("combination").set_index("combination").sort_index()
    return wide.index.to_numpy(), wide.to_numpy(dtype=np.float64), params


def daily_sharpe(r: np.ndarray) -> float:
    """Mean over std (ddof=1) of the returns that are there."""
    r = r[~np.isnan(r)]
    return float(np.mean(r) / np.std(r, ddof=1))


def psr(r: np.ndarray, sr0: float) -> float:
    """Probabilistic Sharpe ratio against ``sr0`` (Bailey and López de Prado)."""
    r = r[~np.isnan(r)]
    sr = daily_sharpe(r)
    g3 = stats.skew(r)
    g4 = stats.kurtosis(r, fisher=False)
    z = (sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


def sr0(sharpes: list[float]) -> float:
    """The expected maximum Sharpe ratio of N trials: the deflation's benchmark."""
    n, gamma = len(sharpes), 0.5772156649
    return float(
        math.sqrt(np.var(sharpes, ddof=1))
        * ((1 - gamma) * stats.norm.ppf(1 - 1 / n) + gamma * stats.norm.ppf(1 - 1 / (n * math.e)))
    )


def pbo(returns: np.ndarray, blocks: int = 16) -> dict[str, float]:
    """CSCV over the (T, N) matrix: the first T mod S dates dropped, S blocks, every choice of
    S/2 in-sample blocks. Assumes every Sharpe ratio is a number (no rule for NaN here)."""
    t, n = returns.shape
    length = t // blocks
    kept = returns[t % blocks :]
    cut = [kept[b * length : (b + 1) * length] for b in range(blocks)]
    logits, is_best, oos_best = [], [], []
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        rest = [b for b in range(blocks) if b not in chosen]
        ins = np.concatenate([cut[b] for b in chosen])
        oos = np.concatenate([cut[b] for b in rest])
        is_sr = [daily_sharpe(ins[:, k]) for k in range(n)]
        oos_sr = [daily_sharpe(oos[:, k]) for k in range(n)]
        assert np.isfinite(is_sr).all() and np.isfinite(oos_sr).all()
        best = int(np.argmax(is_sr))  # the first of equal maxima: the lowest index
        omega = stats.rankdata(oos_sr)[best] / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
        is_best.append(is_sr[best])
        oos_best.append(oos_sr[best])
    slope = np.polyfit(is_best, oos_best, 1)[0]
    return {
        "pbo": float(np.mean(np.asarray(logits) <= 0)),
        "n_splits": len(logits),
        "median_logit": float(np.median(logits)),
        "oos_is_slope": float(slope),
        "prob_oos_loss": float(np.mean(np.asarray(oos_best) < 0)),
    }


def check_walk_forward(
    out: Path, expected: list[tuple[int, dt.date, dt.date, dt.date, dt.date]], names: list[str]
) -> pd.DatetimeIndex:
    """Check a run's ``walk_forward/``, ``oos_equity/`` and walk-forward figures against plain
    loops over its ``returns/``: each fold's windows are ``expected`` (fold, train start and
    end, test start and end, derived by hand in the caller), the chosen combination is the
    highest training Sharpe (mean/std ddof=1 × sqrt(252)) with its parameters ``names``, its
    test figures, the Spearman rank correlation of train vs test Sharpe over all combinations,
    and the stitched equity (the chosen combinations' test returns compounded from 1.0).
    Returns the dates of ``returns/``."""
    folds = pd.read_parquet(out / "walk_forward").sort_values("fold")
    columns = ["fold", "train_start", "train_end", "test_start", "test_end"]
    assert [tuple(r) for r in folds[columns].itertuples(index=False)] == expected
    dates, r, params = matrix(out)
    days = pd.DatetimeIndex(dates)
    pieces = []
    for fold, (_, train_lo, train_hi, test_lo, test_hi) in zip(
        folds.itertuples(index=False), expected, strict=True
    ):
        train = (days >= pd.Timestamp(train_lo)) & (days <= pd.Timestamp(train_hi))
        test = (days >= pd.Timestamp(test_lo)) & (days <= pd.Timestamp(test_hi))
        sharpes = [daily_sharpe(r[train, k]) * math.sqrt(252) for k in range(r.shape[1])]
        best = int(np.argmax(sharpes))
        assert fold.combination == best
        assert tuple(getattr(fold, n) for n in names) == tuple(params.loc[best, names])
        assert fold.train_sharpe == pytest.approx(sharpes[best], rel=1e-9)
        assert fold.test_sharpe == pytest.approx(
            daily_sharpe(r[test, best]) * math.sqrt(252), rel=1e-9
        )
        assert fold.test_total_return == pytest.approx(np.prod(1 + r[test, best]) - 1, rel=1e-9)
        test_sharpes = [daily_sharpe(r[test, k]) for k in range(r.shape[1])]
        assert fold.rank_correlation == pytest.approx(
            stats.spearmanr(sharpes, test_sharpes).statistic, rel=1e-9
        )
        pieces.append(pd.Series(r[test, best], index=days[test]))
    stitched = pd.concat(pieces)
    equity = pd.read_parquet(out / "oos_equity").sort_values("date")
    assert list(equity["date"]) == [t.date() for t in stitched.index]
    np.testing.assert_allclose(equity["equity"], np.cumprod(1 + stitched.to_numpy()), rtol=1e-12)
    row = pd.read_parquet(out / "validation").iloc[0]
    assert row["wf_oos_sharpe"] == pytest.approx(
        daily_sharpe(stitched.to_numpy()) * math.sqrt(252), rel=1e-9
    )
    assert row["wf_mean_train_sharpe"] == pytest.approx(folds["train_sharpe"].mean(), rel=1e-12)
    return days
