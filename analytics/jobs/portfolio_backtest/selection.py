"""Who is held after a rebalance, and with what weight, for many quantiles at once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analytics.jobs.portfolio_backtest.panel import FloatArray, IntArray
from analytics.jobs.portfolio_backtest.scores import Rules

#: Digits q x n is rounded to before its ceiling, so that 0.1 x 30 (3.0000000000000004 in
#: binary floating point) selects 3 names, as the decimal grid value means.
_QUANTILE_DIGITS = 9


def long_count(quantiles: npt.ArrayLike, n_eligible: int) -> IntArray:
    """k = ceil(quantile x n_eligible) for each quantile (0 when nothing is eligible)."""
    q = np.asarray(quantiles, dtype=np.float64)
    k = np.ceil(np.round(q * n_eligible, _QUANTILE_DIGITS)).astype(np.int64)
    return np.clip(k, 0, n_eligible)


def rankings(score: FloatArray) -> IntArray:
    """(R, S) rank of each eligible symbol at each date (0 = highest score); S if ineligible.

    Ties are broken by column, and columns are in symbol-name order, so by name ascending;
    read from the end, the same order is the bottom with ties by name descending.
    """
    score = np.atleast_2d(score)
    s = score.shape[1]
    cols = np.broadcast_to(np.arange(s), score.shape)
    # lexsort: the last key is the primary one; NaN (ineligible) sorts after every number.
    order = np.lexsort((cols, -score), axis=-1)
    eligible = np.isfinite(score)
    pos = np.full(score.shape, s, dtype=np.int64)
    rank = np.broadcast_to(np.arange(s), score.shape)
    np.put_along_axis(pos, order, rank, axis=-1)
    return np.asarray(np.where(eligible, pos, s), dtype=np.int64)


def inverse_volatility(sigma: FloatArray, eligible: npt.NDArray[np.bool_]) -> FloatArray:
    """1 / sigma of the eligible symbols (0 for the others), NaN where an eligible symbol's
    sigma is unknown: fewer than 20 returns before the decision, or a flat price (sigma 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.where(np.isfinite(sigma) & (sigma > 0), 1.0 / sigma, np.nan)
    return np.asarray(np.where(eligible, inverse, 0.0), dtype=np.float64)


def _side(members: npt.NDArray[np.bool_], inverse: FloatArray, total: float) -> FloatArray:
    """(C, S) weights of one side summing to ``total``, proportional to ``inverse``; a member
    whose ``inverse`` is NaN (unknown sigma) counts as the mean of the side's known ones, and a
    side with none known is equally weighted."""
    known = np.isfinite(inverse)
    w = members * np.where(known, inverse, 0.0)[None, :]
    unknown = members & ~known[None, :]
    if unknown.any():
        n_known = (members & known[None, :]).sum(axis=1)
        typical = np.where(n_known > 0, w.sum(axis=1) / np.maximum(n_known, 1), 1.0)
        w = np.where(unknown, typical[:, None], w)
    sums = w.sum(axis=1)
    return np.asarray(w * (total / np.where(sums > 0, sums, 1.0))[:, None], dtype=np.float64)


def weights_from_ranks(
    pos: IntArray, k: IntArray, inverse_sigma: FloatArray | None, rules: Rules
) -> FloatArray:
    """(C, S) target weights at one date from the ranks ``pos`` (S,) and long counts ``k`` (C,).

    Long the top k; with long-short also short the bottom min(k, n - k). Equal weights, or
    proportional to ``inverse_sigma`` (1 / sigma, NaN where unknown: see :func:`_side`). Longs
    sum to 1 (long-only) or 0.5 and shorts to -0.5 (long-short; longs alone still 0.5 when
    n = 1 leaves nobody to short). Nobody eligible: all zeros (the portfolio goes to cash).
    """
    s = len(pos)
    n = int(np.sum(pos < s))
    gross = 1.0 if rules.direction == "long" else 0.5
    longs = pos[None, :] < k[:, None]
    if inverse_sigma is None:
        w = longs * (gross / np.maximum(k, 1))[:, None]
    else:
        w = _side(longs, inverse_sigma, gross)
    if rules.direction == "long-short":
        m = np.minimum(k, n - k)
        shorts = (pos[None, :] >= (n - m)[:, None]) & (pos[None, :] < n)
        if inverse_sigma is None:
            w -= shorts * (0.5 / np.maximum(m, 1))[:, None]
        else:
            w -= _side(shorts, inverse_sigma, 0.5)
    return np.asarray(w, dtype=np.float64)


def target_weights(
    score: FloatArray, sigma: FloatArray, quantiles: FloatArray, rules: Rules
) -> FloatArray:
    """(C, S) target weights at one rebalance for C quantiles (see :func:`weights_from_ranks`).

    ``score`` is NaN for ineligible symbols; ``sigma`` is used with inverse-vol weighting.
    """
    pos = rankings(score)[0]
    k = long_count(quantiles, int(np.sum(pos < len(pos))))
    eligible = pos < len(pos)
    inverse = None if rules.weighting == "equal" else inverse_volatility(sigma, eligible)
    return weights_from_ranks(pos, k, inverse, rules)
