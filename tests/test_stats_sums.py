"""Per-group sums (:mod:`analytics.stats.sums`): hand cases, the Sharpe ratio from sums against
two-pass numpy, edge rules, and merging chunks of columns (hypothesis)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from analytics.stats import metrics
from analytics.stats import sums as group


def test_group_sums_by_hand() -> None:
    # One column [0.1, -0.05, NaN, 0.02, 0.04] in groups starting at rows 1 and 3 (row 0 is
    # left out). shift = the first valid value in the groups = -0.05; group 0: rows 1..2 -> one
    # return -0.05: count 1, total 0, squares 0, log_growth log(0.95); group 1: rows 3..4 ->
    # 0.02, 0.04: count 2, total 0.07 + 0.09 = 0.16, squares 0.0049 + 0.0081 = 0.013,
    # log_growth log(1.02 * 1.04).
    r = np.array([[0.1], [-0.05], [np.nan], [0.02], [0.04]])
    s = group.group_sums(r, np.array([1, 3]))
    assert s.shift.tolist() == [-0.05]
    assert s.count[:, 0].tolist() == [1.0, 2.0]
    np.testing.assert_allclose(s.total[:, 0], [0.0, 0.16], rtol=1e-14, atol=0)
    np.testing.assert_allclose(s.squares[:, 0], [0.0, 0.013], rtol=1e-14, atol=0)
    np.testing.assert_allclose(s.log_growth[:, 0], [math.log(0.95), math.log(1.02 * 1.04)])


def test_sharpe_from_sums_matches_two_pass() -> None:
    rng = np.random.default_rng(3)
    # A large mean against a small spread: the shift keeps the precision a raw sum of squares
    # would lose (mean / std = 1000).
    r = 0.01 + rng.normal(0.0, 1e-5, size=(500, 4))
    r[rng.random(r.shape) < 0.1] = np.nan
    s = group.group_sums(r, np.array([0]))
    got = group.sharpe_from_sums(s.count[0], s.total[0], s.squares[0], s.shift)
    expected = [np.nanmean(c) / np.nanstd(c, ddof=1) for c in r.T]
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_sharpe_from_sums_edge_rules() -> None:
    # Columns: constant 0.01 (std exactly 0 -> +inf), constant -0.02 (-inf), all zero (0/0 ->
    # NaN), one return only (NaN), all NaN (NaN). The same as analytics.stats.metrics gives.
    r = np.array(
        [
            [0.01, -0.02, 0.0, np.nan, np.nan],
            [0.01, -0.02, 0.0, 0.03, np.nan],
            [0.01, -0.02, 0.0, np.nan, np.nan],
        ]
    )
    s = group.group_sums(r, np.array([0]))
    got = group.sharpe_from_sums(s.count[0], s.total[0], s.squares[0], s.shift)
    assert got[0] == np.inf and got[1] == -np.inf
    assert np.isnan(got[2:]).all()
    with np.errstate(invalid="ignore", divide="ignore"):
        reference = metrics.sharpe_ratio(r.T, periods_per_year=1)
    np.testing.assert_array_equal(got, reference)


def test_group_starts_are_checked() -> None:
    r = np.zeros((4, 2))
    with pytest.raises(ValueError, match="increase"):
        group.group_sums(r, np.array([0, 2, 2]))
    with pytest.raises(ValueError, match="increase"):
        group.group_sums(r, np.array([0, 4]))
    with pytest.raises(ValueError, match="different numbers of groups"):
        group.concat([group.group_sums(r, np.array([0])), group.group_sums(r, np.array([0, 1]))])


returns_matrices = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 30), st.integers(1, 8)),
    elements=st.one_of(st.floats(-0.5, 0.5, allow_nan=False, width=64), st.just(float("nan"))),
)


@settings(max_examples=80, deadline=None)
@given(returns_matrices, st.data())
def test_merged_chunks_equal_the_whole(returns: np.ndarray, data: st.DataObject) -> None:
    days, width = returns.shape
    n_groups = data.draw(st.integers(1, days))
    starts = np.sort(data.draw(st.permutations(range(days)))[:n_groups]).astype(np.int64)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(width - 1, 1)), max_size=3)))
    edges = [0, *[c for c in cuts if c < width], width]
    parts = [
        group.group_sums(returns[:, a:b], starts) for a, b in itertools.pairwise(edges) if b > a
    ]
    merged = group.concat(parts)
    whole = group.group_sums(returns, starts)
    for name in ("count", "total", "squares", "log_growth", "shift"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name), err_msg=name)
