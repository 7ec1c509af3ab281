"""The options of ``market-performance``."""

from __future__ import annotations

from dataclasses import dataclass

from analytics.constants import DEFAULT_BENCHMARK
from analytics.options import option


@dataclass(frozen=True)
class Options:
    benchmark: str | None = option(
        None,
        metavar="SYMBOL",
        help=f"benchmark for beta and alpha (default: {DEFAULT_BENCHMARK} when present, "
        "else the equal-weighted mean return of the selected symbols)",
    )
