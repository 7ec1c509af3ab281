"""Closes read back from a run's input for the report's curves (the run's tables hold no daily
series of single symbols)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import pandas as pd
import pyarrow as pa

from analytics.data.datasets import Selection, list_files, read_file
from analytics.errors import FinbatchError
from analytics.run.committed import CommittedRun as RunView

#: Largest prices input (bytes) read whole for an equal-weighted curve of the whole universe.
EW_MAX_BYTES: Final = 256 * 2**20


def read_closes(view: RunView, symbols: Sequence[str] | None) -> pd.DataFrame:
    """Closes (rows: dates, columns: symbols) of ``symbols`` (None: the run's selection) over
    the run's date range."""
    if not view.input_url:
        raise FinbatchError("the manifest records no --input")
    chosen = tuple(symbols) if symbols is not None else view.parameters.get("symbols")
    sel = Selection(
        view.date_parameter("start"),
        view.date_parameter("end"),
        tuple(chosen) if chosen else None,
    )
    files = list_files(view.input_url, "prices", sel)
    tables = [read_file(f.url, "prices", ["symbol", "date", "close"], sel) for f in files]
    frame = pa.concat_tables(tables).to_pandas()
    frame["symbol"] = frame["symbol"].astype(str)
    frame["date"] = pd.to_datetime(frame["date"])
    try:  # each (date, symbol) once: a plain reshape, several times faster than pivot_table
        closes: pd.DataFrame = frame.pivot(index="date", columns="symbol", values="close")
    except ValueError:  # a (date, symbol) twice: averaged
        closes = frame.pivot_table(index="date", columns="symbol", values="close")
    return closes.dropna(how="all").dropna(axis=1, how="all").sort_index()


def universe_is_small(view: RunView) -> bool:
    """True when the run's whole prices input may be read on the driver (``EW_MAX_BYTES``)."""
    prices = view.manifest.inputs.get("prices")
    return prices is None or prices.bytes <= EW_MAX_BYTES
