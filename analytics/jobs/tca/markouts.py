"""Markouts per fill: how the prevailing mid moved after the fill, against the fill's side.

``markout_{h}m_bps = s * (m(ts + h) - price) / price * 1e4`` with m the prevailing mid (see
:mod:`analytics.jobs.tca.kernel`) at ts + h; NaN when ts + h is after the end of the symbol's last
bar that day, or when no quote prevails then. Negative: the market moved against the fill's
side afterwards (adverse selection). ``by_venue`` gains their filled-notional weighted means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from analytics.jobs.tca.kernel import BPS, NS_PER_MINUTE, Partition

HORIZONS_MINUTES: Final = (1, 5, 15, 30)
MARKOUT_COLUMNS: Final = tuple(f"markout_{h}m_bps" for h in HORIZONS_MINUTES)
#: The columns ``by_venue`` gains: each horizon's weighted mean.
VENUE_MARKOUT_COLUMNS: Final = tuple(f"{m}_mean" for m in MARKOUT_COLUMNS)


def fill_markouts(p: Partition) -> pd.DataFrame:
    """One row per fill of ``p``: its identity, ``ts`` (ns), price, quantity and markouts."""
    sym = p.sym[p.pos]
    s = p.sign[p.pos]
    close = p.bars.session_end(sym)
    broker_code, brokers = pd.factorize(p.orders["broker"], sort=True)
    fills = p.fills.reset_index(drop=True)
    out = pd.DataFrame(
        {
            **{c: fills[c] for c in ("fill_id", "order_id", "symbol", "venue")},
            # categorical: one string per broker, not one per fill
            "broker": pd.Categorical.from_codes(broker_code[p.pos], categories=brokers),
            "side": fills["side"],
            "ts": p.fill_ts,
            "price": p.fill_price,
            "quantity": p.fill_qty,
        }
    )
    for minutes, column in zip(HORIZONS_MINUTES, MARKOUT_COLUMNS, strict=True):
        later = p.fill_ts + minutes * NS_PER_MINUTE
        mid = p.bars.prevailing_mid(sym, later)
        value = s * (mid - p.fill_price) / p.fill_price * BPS
        out[column] = np.where(later <= close, value, np.nan)
    return out


def venue_sums(markouts: pd.DataFrame) -> pd.DataFrame:
    """Per venue of ``markouts`` (a partition's): for each horizon, the notional of its fills
    with a finite markout (``w_<column>``) and their notional-weighted sum (``wm_<column>``).
    Partitions' sums add up; :func:`venue_means` divides them."""
    code, venues = pd.factorize(markouts["venue"], sort=True)
    notional = markouts["quantity"].to_numpy(np.float64) * markouts["price"].to_numpy(np.float64)
    out = {"venue": np.asarray(venues, dtype=object)}
    for column in MARKOUT_COLUMNS:
        value = markouts[column].to_numpy(np.float64)
        w = np.where(np.isfinite(value) & (notional > 0), notional, 0.0)
        out[f"w_{column}"] = np.bincount(code, w, minlength=len(venues))
        out[f"wm_{column}"] = np.bincount(
            code, np.where(w > 0, w * value, 0.0), minlength=len(venues)
        )
    return pd.DataFrame(out)


def venue_means(sums: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per venue (sorted), each horizon's mean weighted by the fills' notional (q x price):
    the partitions' :func:`venue_sums` added up; NaN for a venue without a finite markout."""
    total = pd.concat(list(sums), ignore_index=True).groupby("venue", sort=True).sum()
    out = pd.DataFrame({"venue": total.index.to_numpy(dtype=object)})
    for column, mean in zip(MARKOUT_COLUMNS, VENUE_MARKOUT_COLUMNS, strict=True):
        w = total[f"w_{column}"].to_numpy(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[mean] = np.where(w > 0, total[f"wm_{column}"].to_numpy(np.float64) / w, np.nan)
    return out


def venue_markouts(markouts: pd.DataFrame) -> pd.DataFrame:
    """Per venue (sorted), each horizon's mean weighted by the fills' notional (q x price)."""
    return venue_means([venue_sums(markouts)])
