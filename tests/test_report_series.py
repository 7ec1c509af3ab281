"""The report's equal-weighted curve, checked by hand on halts and late starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.report import series


def test_equal_weighted_spans_halts_and_leaves_out_missing_symbols() -> None:
    dates = pd.date_range("2024-01-01", periods=4, freq="D")
    closes = pd.DataFrame(
        {
            "A": [10.0, 11.0, np.nan, 13.2],  # halted on day 3
            "B": [np.nan, 20.0, 22.0, 22.0],  # starts on day 2
        },
        index=dates,
    )
    got = series.equal_weighted(closes)
    # Day 1: A has no previous close, B no row: mean of nothing -> 0.
    # Day 2: A 11/10 - 1 = 0.1; B its first close -> left out. Mean 0.1.
    # Day 3: A halted -> left out; B 22/20 - 1 = 0.1. Mean 0.1.
    # Day 4: A over its last close (day 2): 13.2/11 - 1 = 0.2; B 0. Mean 0.1.
    mean = [0.0, 0.1, 0.1, 0.1]
    want = np.cumprod([1.0 + m for m in mean]) - 1.0
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-14, atol=1e-15)
    assert list(got.index) == list(dates)
    assert got.name == "equal-weighted"


def test_equal_weighted_equals_each_columns_own_percent_change() -> None:
    """Against the column-by-column form written out here: each symbol's returns over its
    own rows (``dropna().pct_change()``), realigned on the dates, averaged per date."""
    rng = np.random.default_rng(7)
    closes = pd.DataFrame(
        50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, (60, 5)), axis=0)),
        index=pd.date_range("2024-01-01", periods=60, freq="D"),
        columns=list("VWXYZ"),
    )
    closes.iloc[rng.random(closes.shape) < 0.2] = np.nan
    by_column = pd.DataFrame(
        {s: closes[s].dropna().pct_change() for s in closes.columns}, index=closes.index
    )
    mean = by_column.mean(axis=1, skipna=True).fillna(0.0)
    want = (1.0 + mean).cumprod() - 1.0
    got = series.equal_weighted(closes)
    assert got.to_numpy() == pytest.approx(want.to_numpy(), rel=1e-14, abs=1e-15)
