"""The strategies: every module of this package that defines ``STRATEGY`` (names starting with
``_`` are helpers). Adding a strategy is adding a module here; nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from analytics.jobs.backtest.strategies._base import Param, Strategy

__all__ = ["Param", "Strategy", "get", "registry"]


@cache
def registry() -> dict[str, Strategy]:
    """Every strategy, by its command-line name."""
    found: dict[str, Strategy] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        strategy = getattr(module, "STRATEGY", None)
        if isinstance(strategy, Strategy):
            if strategy.name in found:
                raise RuntimeError(f"two strategies are named {strategy.name!r}")
            found[strategy.name] = strategy
    return found


def get(name: str) -> Strategy:
    return registry()[name]
