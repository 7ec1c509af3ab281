"""Probability of backtest overfitting (:mod:`analytics.stats.cscv`): an independent
implementation (a plain loop over every split on the returns matrix) to 1e-9, sweeps whose answer
is known in advance, a hand-computed case, chunking of splits and of columns, and the checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats

from analytics.errors import InputError
from analytics.stats import sums as group
from analytics.stats.cscv import Cscv, block_starts, block_sums, cscv, split_count, splits


def _sharpe(block: np.ndarray) -> np.ndarray:
    """Daily Sharpe ratio of each column over its non-NaN returns; NaN if fewer than two."""
    if not np.isnan(block).any():
        return np.asarray(np.mean(block, axis=0) / np.std(block, axis=0, ddof=1))
    out = np.full(block.shape[1], np.nan)
    for j, column in enumerate(block.T):
        r = column[~np.isnan(column)]
        if len(r) >= 2:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[j] = np.mean(r) / np.std(r, ddof=1)
    return out


def _reference(returns: np.ndarray, n_blocks: int) -> dict[str, object]:
    """The issue's CSCV, split by split, straight from the returns."""
    days, n = returns.shape
    length = days // n_blocks
    kept = returns[days % n_blocks :]
    blocks = [kept[b * length : (b + 1) * length] for b in range(n_blocks)]
    logits, chosen, is_sr, oos_sr = [], [], [], []
    for ins in itertools.combinations(range(n_blocks), n_blocks // 2):
        outs = [b for b in range(n_blocks) if b not in ins]
        is_sharpe = _sharpe(np.concatenate([blocks[b] for b in ins]))
        oos_sharpe = _sharpe(np.concatenate([blocks[b] for b in outs]))
        ordered_is = np.where(np.isnan(is_sharpe), -np.inf, is_sharpe)
        best = 0
        for j in range(n):  # strictly greater: ties keep the lowest index
            if ordered_is[j] > ordered_is[best]:
                best = j
        ordered_oos = np.where(np.isnan(oos_sharpe), -np.inf, oos_sharpe)
        rank = scipy.stats.rankdata(ordered_oos, method="average")[best]
        omega = rank / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
        chosen.append(best)
        is_sr.append(is_sharpe[best])
        oos_sr.append(oos_sharpe[best])
    x, y = np.array(is_sr), np.array(oos_sr)
    keep = np.isfinite(x) & np.isfinite(y)
    lam = np.array(logits)
    return {
        "logits": lam,
        "chosen": np.array(chosen),
        "is_sharpe": x,
        "oos_sharpe": y,
        "pbo": float(np.mean(lam <= 0)),
        "median_logit": float(np.median(lam)),
        "oos_is_slope": float(np.polyfit(x[keep], y[keep], 1)[0]),
        "prob_oos_loss": float(np.mean(y < 0)),
    }


def _check(returns: np.ndarray, n_blocks: int, **kwargs: int) -> Cscv:
    got = cscv(block_sums(returns, n_blocks), **kwargs)
    ref = _reference(returns, n_blocks)
    assert got.n_trials == returns.shape[1]
    assert got.n_splits == math.comb(n_blocks, n_blocks // 2) == len(ref["logits"])
    np.testing.assert_array_equal(got.chosen, ref["chosen"])
    np.testing.assert_allclose(got.logits, ref["logits"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.is_sharpe, ref["is_sharpe"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.oos_sharpe, ref["oos_sharpe"], rtol=0, atol=1e-9)
    assert got.pbo == ref["pbo"]
    assert got.prob_oos_loss == ref["prob_oos_loss"]
    assert got.median_logit == pytest.approx(ref["median_logit"], abs=1e-9)
    assert got.oos_is_slope == pytest.approx(ref["oos_is_slope"], abs=1e-9)
    return got


def _sweep(seed: int, edge: float = 0.0, days: int = 2520, n: int = 50) -> np.ndarray:
    """Daily returns of ``n`` noise strategies (mean 0, std 1%); column 17 gets ``edge`` a day."""
    r = np.random.default_rng(seed).normal(0.0, 0.01, size=(days, n))
    if edge:
        r[:, 17] += edge
    return r


# ---------------------------------------------------------------------------------------------
# Known answers, against the reference (the default S = 16: 12,870 splits)


def test_pure_noise_matches_the_reference_and_overfits() -> None:
    # 50 noise strategies over 10 years: the IS best's OOS rank is uniform, so PBO is near 0.5
    # (the splits are strongly dependent, so one sweep's PBO wanders: see the averaged test
    # below). S = 12 (924 splits) keeps the reference loop short; S = 16 is checked below.
    got = _check(_sweep(seed=1, days=2531), 12)  # 2531 = 12 * 210 + 11: 11 dates dropped
    assert 0.3 < got.pbo < 0.7


def test_planted_edge_matches_the_reference_and_does_not_overfit() -> None:
    # Column 17 earns 0.15% a day more (annual Sharpe ratio about 2.4): it is n* in nearly every
    # split and stays in the top OOS ranks, so PBO is near 0.
    got = _check(_sweep(seed=1, edge=0.0015), 12)
    assert got.pbo < 0.02
    assert np.mean(got.chosen == 17) > 0.98
    assert got.prob_oos_loss < 0.02
    # With the same n* in every split, its IS and OOS halves are complements of one series
    # (IS mean + OOS mean = twice the whole mean), so its OOS Sharpe ratio falls as the IS one
    # rises: the slope is near -1 although nothing is overfit.
    assert got.oos_is_slope < -0.5


def test_default_blocks_match_the_reference() -> None:
    # S = 16, the default: all 12,870 splits, on a small matrix (20 dates a block, 8 columns).
    _check(_sweep(seed=7, days=16 * 20 + 3, n=8), 16)


def test_noise_pbo_is_one_half_on_average() -> None:
    # Over 20 independent noise sweeps (S = 10, 252 splits), the mean PBO is within 0.12 of the
    # 0.5 that a uniform OOS rank gives (P(rank <= 25) with N = 50).
    pbos = [cscv(block_sums(_sweep(seed=200 + s, days=1000), 10)).pbo for s in range(20)]
    assert abs(np.mean(pbos) - 0.5) < 0.12


# ---------------------------------------------------------------------------------------------
# Hand-computed


def test_cscv_by_hand() -> None:
    # S = 2 blocks of 3 dates (T = 7: the first date is dropped), N = 3 columns, returns in
    # units of 1/128 (binary fractions: every sum, mean and std below is exact, so the ties are
    # real ties). Block 0 / block 1 returns and daily Sharpe ratios (mean / std, ddof=1):
    #   col 0: [1, 2, 3] -> 2/1 = 2       | [3, 2, 1] -> 2
    #   col 1: [1, 3, 5] -> 3/2 = 1.5     | [-1, -2, -3] -> -2
    #   col 2: [2, 4, 6] -> 4/2 = 2       | [1, 1.5, 2] -> 1.5/0.5 = 3
    # Split 0 (IS block 0): IS 2, 1.5, 2 -> n* = 0 (tie with 2: lowest index); OOS 2, -2, 3:
    #   rank of 2 is 2 -> omega = 2/4, logit 0.
    # Split 1 (IS block 1): IS 2, -2, 3 -> n* = 2; OOS 2, 1.5, 2: rank of 2 among (1.5, 2, 2)
    #   is (2 + 3) / 2 = 2.5 -> omega = 2.5/4 = 0.625, logit ln(0.625 / 0.375) = ln(5/3).
    # pbo = 1/2 (logit 0 counts), median logit ln(5/3) / 2; n* OOS Sharpe 2 and 2 -> no loss;
    # slope of OOS on IS over (2, 2), (3, 2) = 0.
    day0 = [99.0, 99.0, 99.0]  # dropped: would change every ratio if kept
    r = (
        np.array(
            [day0, [1, 1, 2], [2, 3, 4], [3, 5, 6], [3, -1, 1], [2, -2, 1.5], [1, -3, 2]],
            dtype=np.float64,
        )
        / 128
    )
    got = cscv(block_sums(r, 2))
    assert got.n_splits == 2 and got.n_trials == 3
    assert got.chosen.tolist() == [0, 2]
    np.testing.assert_allclose(got.logits, [0.0, math.log(5 / 3)], atol=1e-12)
    assert got.pbo == 0.5
    assert got.median_logit == pytest.approx(math.log(5 / 3) / 2, abs=1e-12)
    np.testing.assert_allclose(got.is_sharpe, [2.0, 3.0], rtol=1e-12)
    np.testing.assert_allclose(got.oos_sharpe, [2.0, 2.0], rtol=1e-12)
    assert got.prob_oos_loss == 0.0
    assert got.oos_is_slope == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# NaN returns, chunking, the checks


def test_nan_days_and_flat_columns_match_the_reference() -> None:
    # Missing days (a combination's returns are the days it has), a column with no return in the
    # first half (NaN ratios there: never chosen, ranked lowest), and an all-zero column (0/0).
    r = _sweep(seed=4, days=400, n=12)
    rng = np.random.default_rng(5)
    r[rng.random(r.shape) < 0.2] = np.nan
    r[:200, 3] = np.nan
    r[:, 5] = 0.0
    _check(r, 8)


def test_chunks_of_splits_and_columns_give_the_same_answer() -> None:
    r = _sweep(seed=6, days=600, n=30)
    whole = cscv(block_sums(r, 10))
    merged = group.concat([block_sums(r[:, :7], 10), block_sums(r[:, 7:], 10)])
    for result in (cscv(merged, max_cells=1), cscv(merged, max_cells=30 * 2 * 37)):
        np.testing.assert_array_equal(result.logits, whole.logits)
        np.testing.assert_array_equal(result.chosen, whole.chosen)
        assert result.pbo == whole.pbo


def test_splits_are_lexicographic_with_mirrored_complements() -> None:
    for s in (2, 4, 8, 16):
        chosen = splits(s)
        assert len(chosen) == split_count(s) == math.comb(s, s // 2)
        assert [tuple(x) for x in chosen] == list(itertools.combinations(range(s), s // 2))
        c = len(chosen)
        for i in range(c):
            together = set(chosen[i]) | set(chosen[c - 1 - i])
            assert together == set(range(s))


def test_block_starts() -> None:
    # T = 35, S = 4: 3 dates dropped, blocks of 8 from row 3.
    assert block_starts(35, 4).tolist() == [3, 11, 19, 27]
    assert block_starts(16, 16).tolist() == list(range(16))


@pytest.mark.parametrize(
    ("days", "blocks", "message"),
    [
        (100, 15, "even number"),
        (100, 0, "even number"),
        (10, 16, "found 10 dates for 16 blocks"),
    ],
)
def test_bad_blocks_are_refused(days: int, blocks: int, message: str) -> None:
    with pytest.raises(InputError, match=message):
        block_sums(np.zeros((days, 2)), blocks)
