"""Walk-forward selection (:mod:`analytics.stats.walk_forward`): folds checked by hand on a small
case, an independent implementation (plain loops over the windows of a returns matrix), the
parser, Spearman against scipy, and merging chunks of columns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from analytics.errors import InputError
from analytics.stats import walk_forward as wf

D = np.datetime64
ANNUAL = math.sqrt(252)

# The small case: 9 dates over four months, three combinations A, B, C; returns in units of
# 1/128 (binary fractions: sums and means are exact, so equal ratios are equal floats).
HAND_DATES = np.array(
    [
        "2024-01-02", "2024-01-03", "2024-01-04",  # rows 0-2: January
        "2024-02-01", "2024-02-02",                # rows 3-4: February
        "2024-03-01", "2024-03-04",                # rows 5-6: March
        "2024-04-01", "2024-04-02",                # rows 7-8: April
    ],
    dtype="datetime64[D]",
)  # fmt: skip
HAND_RETURNS = (
    np.array(
        [
            # A   B   C
            [1, 2, -1],
            [2, 2, 1],
            [3, 2, -1],
            [2, 2, 1],
            [2, 4, 0],
            [1, 3, 0],
            [3, 1, 2],
            [1, 4, 3],
            [-1, 2, 1],
        ],
        dtype=np.float64,
    )
    / 128
)


def _select(spec: wf.WalkForward, returns: np.ndarray, dates: np.ndarray) -> list[wf.Fold]:
    return wf.select(spec, dates, wf.month_sums(returns, dates))


def test_rolling_folds_by_hand() -> None:
    # 2:1 from m0 = January. Fold 0 trains on [Jan, Mar) = rows 0-4 and tests on March, rows
    # 5-6; fold 1 trains on [Feb, Apr) = rows 3-6 and tests on April, rows 7-8; fold 2 would test
    # from May, after the last date: no more folds.
    folds = _select(wf.WalkForward(2, 1), HAND_RETURNS, HAND_DATES)
    assert [f.window.fold for f in folds] == [0, 1]
    assert [(f.train_start, f.train_end, f.test_start, f.test_end) for f in folds] == [
        (D("2024-01-02"), D("2024-02-02"), D("2024-03-01"), D("2024-03-04")),
        (D("2024-02-01"), D("2024-03-04"), D("2024-04-01"), D("2024-04-02")),
    ]
    f0, f1 = folds
    # Fold 0, training (daily Sharpe = mean / std, ddof=1, in 1/128 units):
    #   A [1, 2, 3, 2, 2]: mean 2, squared deviations 1 + 0 + 1 + 0 + 0 = 2, var 2/4, SR 2 sqrt 2
    #   B [2, 2, 2, 2, 4]: mean 2.4, squares 4 * 0.16 + 2.56 = 3.2, var 0.8, SR 2.4 / sqrt 0.8
    #     = 2.683 < 2 sqrt 2 = 2.828
    #   C [-1, 1, -1, 1, 0]: mean 0, SR 0                                     -> A (column 0)
    # Test (March): A [1, 3]: mean 2, std sqrt 2, SR sqrt 2; B [3, 1]: the same; C [0, 2]: mean
    # 1, std sqrt 2, SR 1 / sqrt 2. A's compounded return (1 + 1/128)(1 + 3/128) - 1.
    assert f0.combination == 0
    assert f0.train_sharpe == pytest.approx(2 * math.sqrt(2) * ANNUAL, rel=1e-12)
    assert f0.test_sharpe == pytest.approx(math.sqrt(2) * ANNUAL, rel=1e-12)
    assert f0.test_total_return == pytest.approx((1 + 1 / 128) * (1 + 3 / 128) - 1, rel=1e-12)
    # Spearman: train ranks (3, 2, 1), test ranks (2.5, 2.5, 1); centred (1, 0, -1) and
    # (0.5, 0.5, -1): 1.5 / (sqrt 2 * sqrt 1.5) = sqrt 0.75.
    assert f0.rank_correlation == pytest.approx(math.sqrt(0.75), rel=1e-12)
    # Fold 1, training (Feb + Mar):
    #   A [2, 2, 1, 3]: mean 2, squares 0 + 0 + 1 + 1 = 2, var 2/3, SR 2 / sqrt(2/3) = sqrt 6
    #   B [2, 4, 3, 1]: mean 2.5, squares 0.25 + 2.25 + 0.25 + 2.25 = 5, var 5/3, SR 1.936
    #   C [1, 0, 0, 2]: mean 0.75, squares 2.75, var 11/12, SR 0.783            -> A again
    # Test (April): A [1, -1]: SR 0; B [4, 2]: mean 3, std sqrt 2, SR 3 / sqrt 2; C [3, 1]: SR
    # sqrt 2. Spearman: train ranks (3, 2, 1), test (1, 3, 2): centred (1, 0, -1), (-1, 1, 0):
    # -1 / 2.
    assert f1.combination == 0
    assert f1.train_sharpe == pytest.approx(math.sqrt(6) * ANNUAL, rel=1e-12)
    assert f1.test_sharpe == 0.0
    assert f1.test_total_return == pytest.approx((1 + 1 / 128) * (1 - 1 / 128) - 1, rel=1e-12)
    assert f1.rank_correlation == pytest.approx(-0.5, rel=1e-12)

    # Stitched: A's March then April returns [1, 3, 1, -1] / 128.
    pieces = wf.chosen_test_returns(HAND_RETURNS, folds)
    oos = wf.stitch(folds, HAND_DATES, pieces)
    assert oos.dates.tolist() == HAND_DATES[5:].tolist()
    growth = np.cumprod([1 + 1 / 128, 1 + 3 / 128, 1 + 1 / 128, 1 - 1 / 128])
    np.testing.assert_allclose(oos.equity, growth, rtol=1e-15)
    # mean 1, squares 0 + 4 + 0 + 4 = 8, var 8/3: SR sqrt(3/8) daily, sqrt(3/8 * 252) a year.
    assert oos.sharpe == pytest.approx(math.sqrt(3 / 8 * 252), rel=1e-12)
    assert oos.mean_train_sharpe == pytest.approx(
        (2 * math.sqrt(2) + math.sqrt(6)) / 2 * ANNUAL, rel=1e-12
    )


def test_anchored_and_short_folds_by_hand() -> None:
    # Anchored 2:1: fold 1 trains on [Jan, Apr) = rows 0-6 instead of [Feb, Apr).
    #   A [1, 2, 3, 2, 2, 1, 3]: mean 2, squares 1+0+1+0+0+1+1 = 4, var 4/6, SR sqrt 6
    #   B [2, 2, 2, 2, 4, 3, 1]: mean 16/7, sum of squares 42 - 7 (16/7)^2 = 38/7, var 38/42,
    #     SR (16/7) / sqrt(38/42) = 2.403 < sqrt 6 = 2.449                   -> A
    folds = _select(wf.WalkForward(2, 1, anchored=True), HAND_RETURNS, HAND_DATES)
    assert [(f.train_start, f.train_end) for f in folds] == [
        (D("2024-01-02"), D("2024-02-02")),
        (D("2024-01-02"), D("2024-03-04")),
    ]
    assert folds[1].combination == 0
    assert folds[1].train_sharpe == pytest.approx(math.sqrt(6) * ANNUAL, rel=1e-12)
    # 1:2: fold 0 trains on January, tests on Feb-Mar; fold 1 trains on March (k * TEST = 2)
    # and tests on [Apr, Jun), which holds April only: the last fold is short.
    folds = _select(wf.WalkForward(1, 2), HAND_RETURNS, HAND_DATES)
    assert [(f.train_start, f.train_end, f.test_start, f.test_end) for f in folds] == [
        (D("2024-01-02"), D("2024-01-04"), D("2024-02-01"), D("2024-03-04")),
        (D("2024-03-01"), D("2024-03-04"), D("2024-04-01"), D("2024-04-02")),
    ]
    # Fold 1's training (March): A [1, 3] SR sqrt 2, B [3, 1] SR sqrt 2 (a tie: the lowest
    # index, A), C [0, 2] SR 1 / sqrt 2.
    assert folds[1].combination == 0


def test_month_gaps_and_too_long_windows() -> None:
    # Dates in Jan, Feb and May only, 1:1: fold 0 (Jan -> Feb) is kept; folds 1-3 have an empty
    # test or training window (Mar, Apr) and are skipped; fold 4 would test June: stop.
    dates = np.array(["2024-01-02", "2024-01-03", "2024-02-01", "2024-02-02", "2024-05-01"])
    windows = wf.windows(wf.WalkForward(1, 1), dates)
    assert [w.fold for w in windows] == [0]
    assert windows[0].train_rows == (0, 2) and windows[0].test_rows == (2, 4)
    # A training window longer than the data: no fold.
    assert wf.windows(wf.WalkForward(36, 12), HAND_DATES) == []
    assert wf.windows(wf.WalkForward(3, 12), HAND_DATES)[0].test_rows == (7, 9)


def _reference(
    spec: wf.WalkForward, returns: np.ndarray, dates: pd.DatetimeIndex
) -> list[tuple[object, ...]]:
    """Folds by plain loops over months and columns, straight from the returns."""
    month = dates.year * 12 + dates.month - 1
    m0, last = month[0], month[-1]
    rows = []
    k = 0
    while m0 + k * spec.test_months + spec.train_months <= last:
        start = m0 + k * spec.test_months + spec.train_months
        train = (month >= (m0 if spec.anchored else m0 + k * spec.test_months)) & (month < start)
        test = (month >= start) & (month < start + spec.test_months)
        train_sr, test_sr = [], []
        for column in returns.T:
            for mask, out in ((train, train_sr), (test, test_sr)):
                r = column[np.asarray(mask)]
                r = r[~np.isnan(r)]
                out.append(np.mean(r) / np.std(r, ddof=1) * ANNUAL if len(r) > 1 else np.nan)
        best = int(np.nanargmax(train_sr))
        r = returns[np.asarray(test), best]
        total = float(np.prod(1 + r[~np.isnan(r)]) - 1)
        x, y = np.array(train_sr), np.array(test_sr)
        pairs = ~(np.isnan(x) | np.isnan(y))
        rho = scipy.stats.spearmanr(x[pairs], y[pairs]).statistic
        rows.append((k, best, train_sr[best], test_sr[best], total, float(rho)))
        k += 1
    return rows


@pytest.mark.parametrize("anchored", [False, True])
def test_matches_the_reference(anchored: bool) -> None:
    # Five years of business days, 40 combinations with NaN days, 12:6 (and anchored).
    dates = pd.bdate_range("2019-03-11", "2024-02-20")
    rng = np.random.default_rng(8)
    r = rng.normal(0.0003, 0.01, size=(len(dates), 40))
    r[rng.random(r.shape) < 0.05] = np.nan
    spec = wf.WalkForward(12, 6, anchored)
    got = _select(spec, r, dates.to_numpy())
    ref = _reference(spec, r, dates)
    assert len(got) == len(ref) == 8  # test windows from 2020-03 every 6 months, the last short
    for fold, (k, best, train, test, total, rho) in zip(got, ref, strict=True):
        assert (fold.window.fold, fold.combination) == (k, best)
        assert fold.train_sharpe == pytest.approx(train, rel=1e-9)
        assert fold.test_sharpe == pytest.approx(test, rel=1e-9)
        assert fold.test_total_return == pytest.approx(total, rel=1e-9)
        assert fold.rank_correlation == pytest.approx(rho, abs=1e-12)
    # Stitching from two chunks of columns equals stitching from the whole matrix.
    pieces = wf.chosen_test_returns(r[:, :25], got) | wf.chosen_test_returns(r[:, 25:], got, 25)
    whole = wf.stitch(got, dates.to_numpy(), wf.chosen_test_returns(r, got))
    split = wf.stitch(got, dates.to_numpy(), pieces)
    np.testing.assert_array_equal(split.equity, whole.equity)
    # The stitched series: the chosen columns' non-NaN returns on the test dates, in order.
    expected = np.concatenate(
        [r[f.window.test_rows[0] : f.window.test_rows[1], f.combination] for f in got]
    )
    expected = expected[~np.isnan(expected)]
    np.testing.assert_allclose(whole.equity, np.cumprod(1 + expected), rtol=1e-12)
    assert len(whole.dates) == len(expected)


def test_month_sums_of_chunks_equal_the_whole() -> None:
    dates = pd.bdate_range("2023-01-02", "2023-12-29").to_numpy()
    r = np.random.default_rng(9).normal(0, 0.01, size=(len(dates), 10))
    whole = wf.month_sums(r, dates)
    merged = wf.concat([wf.month_sums(r[:, :3], dates), wf.month_sums(r[:, 3:], dates)])
    assert len(whole.months) == 12
    np.testing.assert_array_equal(merged.months, whole.months)
    for name in ("count", "total", "squares", "log_growth", "shift"):
        np.testing.assert_array_equal(getattr(merged.sums, name), getattr(whole.sums, name))


def test_spearman_matches_scipy() -> None:
    rng = np.random.default_rng(10)
    x = rng.integers(0, 5, size=30).astype(np.float64)  # many ties
    y = x + rng.normal(0, 2, size=30)
    x[[3, 7]] = np.nan
    y[[7, 11]] = np.nan
    y[12] = np.inf  # an infinite Sharpe ratio (zero dispersion) is ranked highest, not dropped
    pairs = ~(np.isnan(x) | np.isnan(y))
    expected = scipy.stats.spearmanr(x[pairs], y[pairs]).statistic
    assert wf.spearman(x, y) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(wf.spearman(np.ones(5), np.arange(5.0)))  # a constant side
    assert math.isnan(wf.spearman(np.array([1.0, np.nan]), np.array([1.0, 2.0])))


@pytest.mark.parametrize(
    ("text", "expected"), [("36:12", (36, 12)), (" 3 : 1 ", (3, 1)), ("1:1", (1, 1))]
)
def test_parse(text: str, expected: tuple[int, int]) -> None:
    spec = wf.parse_walk_forward(text, anchored=True)
    assert (spec.train_months, spec.test_months, spec.anchored) == (*expected, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("36", "TRAIN:TEST in whole calendar months"),
        ("36:12:1", "TRAIN:TEST"),
        ("a:b", "TRAIN:TEST"),
        ("-1:2", "TRAIN:TEST"),
        ("1.5:2", "TRAIN:TEST"),
        ("0:12", "at least 1 training and 1 test month, got 0:12"),
        ("36:0", "got 36:0"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        wf.parse_walk_forward(text)


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        wf.month_sums(np.zeros((2, 1)), np.array(["2024-01-03", "2024-01-02"]))
    with pytest.raises(ValueError, match="2 rows for 3 dates"):
        wf.month_sums(np.zeros((2, 1)), HAND_DATES[:3])
    folds = _select(wf.WalkForward(2, 1), HAND_RETURNS, HAND_DATES)
    with pytest.raises(ValueError, match=r"folds \[1\]"):
        wf.stitch(folds, HAND_DATES, wf.chosen_test_returns(HAND_RETURNS, folds[:1]))
