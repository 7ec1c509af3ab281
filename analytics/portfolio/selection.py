"""Who is held after a rebalance, and with what weight, for many quantiles at once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analytics.portfolio.panel import FloatArray, IntArray
from analytics.portfolio.scores import Rules

#: Digits q x n is rounded to before its ceiling, so that 0.1 x 30 (3.0000000000000004 in
#: binary floating point) selects 3 names, as the decimal grid value means.
_QUANTILE_DIGITS = 9


def long_count(quantiles: npt.ArrayLike, n_eligible: int) -> IntArray:
    """k = ceil(quantile x n_eligible) for each quantile (0 when nothing is eligible)."""
    q = np.asarray(quantiles, dtype=np.float64)
    k = np.ceil(np.round(q * n_eligible, _QUANTILE_DIGITS)).astype(np.int64)
    return np.clip(k, 0, n_eligible)


def ranking(score: FloatArray) -> IntArray:
    """(S,) rank of each eligible symbol (0 = highest score, ties by column ascending); S else.

    Columns are in symbol-name order, so ties are broken by name ascending; read from the end,
    the same order is the bottom with ties by name descending.
    """
    cols = np.flatnonzero(np.isfinite(score))
    order = cols[np.lexsort((cols, -score[cols]))]
    pos = np.full(score.shape, len(score), dtype=np.int64)
    pos[order] = np.arange(len(order))
    return pos


def target_weights(
    score: FloatArray, sigma: FloatArray, quantiles: FloatArray, rules: Rules
) -> FloatArray:
    """(C, S) target weights at one rebalance for C quantiles.

    Long the top k = ceil(q x n) by score; with long-short also short the bottom
    min(k, n - k). Equal weights, or proportional to 1 / sigma with inverse-vol. Longs sum to 1
    (long-only) or 0.5 and shorts to -0.5 (long-short; longs alone still 0.5 when n = 1 leaves
    nobody to short). Nobody eligible: all zeros (the portfolio goes to cash).
    """
    pos = ranking(score)
    n = int(np.sum(pos < len(pos)))
    k = long_count(quantiles, n)
    base = np.ones_like(score) if rules.weighting == "equal" else 1.0 / sigma
    base = np.where(pos < len(pos), base, 0.0)
    longs = pos[None, :] < k[:, None]
    w = np.where(longs, base[None, :], 0.0)
    gross = 1.0 if rules.direction == "long" else 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.nan_to_num(gross * w / w.sum(axis=1, keepdims=True))
        if rules.direction == "long-short":
            m = np.minimum(k, n - k)
            shorts = (pos[None, :] >= (n - m)[:, None]) & (pos[None, :] < n)
            s = np.where(shorts, base[None, :], 0.0)
            w -= np.nan_to_num(0.5 * s / s.sum(axis=1, keepdims=True))
    return np.asarray(w, dtype=np.float64)
