"""The stressed period of the risk job: the returns of today's holdings over a past window.

The window is ``--stress-window START:END``, or by default 2008-09-01:2009-03-31 when the data
covers it (a close before START, and ``--as-of`` on or after END). Its returns start from the
previous close in the data, so the first session of the window has its move.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
import pandas as pd
from distributed import Client

from analytics.data.checks import check_unique
from analytics.data.datasets import Selection, dataset, with_bad_rows
from analytics.data.reads import read_dataset
from analytics.errors import InputError
from analytics.jobs.contract import RunSettings
from analytics.jobs.risk import kernel as rk
from analytics.jobs.risk.options import DEFAULT_STRESS_WINDOW, Options
from analytics.run.progress import Phase, Progress

log = logging.getLogger(__name__)


def stress_returns(closes: pd.DataFrame, window: tuple[dt.date, dt.date]) -> pd.DataFrame | None:
    """The returns of the sessions in ``window`` (inclusive), the first from the previous close
    in ``closes``; None when ``closes`` has no session before the window or none in it."""
    start, end = (pd.Timestamp(d) for d in window)
    if closes.empty or closes.index[0] >= start:
        return None
    returns = pd.DataFrame(
        rk.scenario_returns(closes.to_numpy(dtype=np.float64)),
        index=closes.index[1:],
        columns=closes.columns.astype(str),
    )
    inside = returns[(returns.index >= start) & (returns.index <= end)]
    return inside if len(inside) else None


def stress_gaps(
    closes: pd.DataFrame, window: tuple[dt.date, dt.date], symbols: list[str], minimum: float
) -> list[str]:
    """The holdings with a real return on fewer than ``minimum`` of the window's sessions (no
    prices there at all, a listing inside it, a halt): their missing days are 0 returns, so the
    stressed VaR understates their risk; the run names them."""
    start, end = (pd.Timestamp(d) for d in window)
    seen = pd.DataFrame(
        rk.has_return(closes.to_numpy(dtype=np.float64)),
        index=closes.index[1:],
        columns=closes.columns.astype(str),
    )
    inside = seen[(seen.index >= start) & (seen.index <= end)]
    share = inside.mean(axis=0) if len(inside) else pd.Series(dtype=float)
    return [s for s in symbols if float(share.get(s, 0.0)) < minimum]


def stressed_returns(
    client: Client,
    settings: RunSettings,
    args: Options,
    symbols: list[str],
    on_bad_rows: str,
    progress: Progress,
) -> tuple[tuple[dt.date, ...], pd.DataFrame | None, list[Any], list[str]]:
    """The stress window, its returns (one column per symbol), the files read and the holdings
    it covers thinly (:func:`stress_gaps`). The default window is used only when the data
    covers it; a window asked for must be."""
    asked = args.stress_window
    window = DEFAULT_STRESS_WINDOW if asked is None else asked
    # (The options refuse a window asked for that ends after --as-of.)
    if not window or not symbols or args.as_of < window[1]:
        return (), None, [], []
    start, end = window[0], window[1]
    sel = with_bad_rows(Selection(start - dt.timedelta(days=10), end, tuple(symbols)), on_bad_rows)
    try:
        threads = sum(client.nthreads().values()) or 1
        frame, files = read_dataset(
            settings.input_url, "prices", sel, threads, columns=["symbol", "date", "close"]
        )
    except InputError as err:
        if asked:
            raise InputError(f"--stress-window {start}:{end}: {err}") from err
        return (), None, [], []
    future = client.compute(frame)
    progress.wait([future], Phase("reading", "files", futures=[future], total=len(files)))
    prices: pd.DataFrame = future.result()
    check_unique(prices, dataset("prices"), "the stress window's prices")
    closes = prices.pivot(index="date", columns="symbol", values="close").sort_index()
    closes.index = pd.DatetimeIndex(closes.index)
    returns = stress_returns(closes, (start, end))
    if returns is None:
        if asked:
            raise InputError(
                f"--stress-window {start}:{end}: the prices have no close before {start} "
                "or none in the window",
                dataset="prices",
            )
        return (), None, [], []
    thin = stress_gaps(closes, (start, end), symbols, args.min_coverage)
    if thin:
        log.warning(
            "stressed VaR: %d holding(s) have a return on fewer than %.0f%% of the stress "
            "window's sessions and count as 0 on the others (understated): %s",
            len(thin),
            100 * args.min_coverage,
            thin[:20],
        )
    returns = returns.reindex(columns=symbols, fill_value=0.0)
    return (start, end), returns, files, thin
