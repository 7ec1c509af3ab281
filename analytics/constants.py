"""Annualization and market conventions, in one place (empyrical's conventions)."""

from __future__ import annotations

from typing import Final

#: Trading days a year: the annualization factor of daily returns.
TRADING_DAYS_PER_YEAR: Final = 252

#: The benchmark symbol used when present and no ``--benchmark`` is given.
DEFAULT_BENCHMARK: Final = "SPX"

#: The quantile behind ``var_95`` and ``cvar_95``.
TAIL_QUANTILE: Final = 0.05

#: Period label of the whole selected range in ``metrics/``.
PERIOD_ALL: Final = "ALL"
