"""What the report's charts share: the palette, the number format of a tick or a label."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

Format = Callable[[float], str]

#: Colour-blind-safe qualitative palette (Okabe-Ito); black is kept for benchmarks.
PALETTE: Final = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
BLACK: Final = "#000000"
GREY: Final = "#b0b0b0"
MISSING: Final = "#d9d9d9"


def compact(value: float) -> str:
    """A short number for ticks and labels: ``1234567`` -> ``1.23M``, ``-0.0123`` ->
    ``-0.0123``; NaN as ``n/a``."""
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"
