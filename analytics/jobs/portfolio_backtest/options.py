"""The options of ``portfolio-backtest`` (light: standard library and analytics.options)."""

from __future__ import annotations

from dataclasses import dataclass

from analytics.jobs import sweep_options
from analytics.options import bps, finite_float, option, positive_int

#: The strategies (the kernel's ``scores.DEFAULTS`` keys; a test keeps the two lists equal).
STRATEGIES = ("xs-momentum", "xs-reversal", "low-volatility")
DEFAULT_TOP = 10


def nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise ValueError(f"{text!r} must be 0 or more")
    return value


def grid_text(text: str) -> str:
    """A ``--grid`` value: backtest's syntax, checked; the text is kept (for the manifest)."""
    from analytics.jobs.backtest.grid import grid_option

    return grid_option(text)


@dataclass(frozen=True)
class Options:
    strategy: str = option(
        None,
        choices=STRATEGIES,
        required=True,
        help="xs-momentum (lookback, skip, quantile, rebalance); xs-reversal (lookback, "
        "quantile, rebalance); low-volatility (window, quantile, rebalance)",
    )
    grid: tuple[str, ...] = option(
        (),
        parse=grid_text,
        repeat=True,
        metavar="PARAM=SPEC",
        help="values of a parameter: start:stop:step (stop inclusive) or v1,v2,...; repeat per "
        "parameter; the sweep is their product (parameters not given keep their defaults)",
    )
    direction: str = option(
        "long",
        choices=("long", "long-short"),
        help="long the top names (default), or also short the bottom ones (gross 1, net 0)",
    )
    fill: str = option(
        "next-open",
        choices=("next-open", "close"),
        help="fill at the next session's open (default) or at the decision day's close",
    )
    fees_bps: float = option(0.0, parse=bps, metavar="F", help="fees, bps of traded value")
    slippage_bps: float = option(0.0, parse=bps, metavar="S", help="slippage, bps of traded value")
    impact_coefficient: float = option(
        0.0,
        parse=nonnegative_float,
        metavar="Y",
        help="market impact Y x sigma x sqrt(shares / ADV) per trade's value (default 0)",
    )
    borrow_bps: float = option(
        0.0, parse=bps, metavar="B", help="borrow fee of the shorts, bps a year (default 0)"
    )
    weighting: str = option(
        "equal",
        choices=("equal", "inverse-vol"),
        help="equal weights (default) or proportional to 1 / 20-row volatility",
    )
    min_price: float = option(
        0.0, parse=nonnegative_float, metavar="P", help="eligible only with close >= P"
    )
    min_adv: float = option(
        0.0,
        parse=nonnegative_float,
        metavar="DOLLARS",
        help="eligible only with mean close x volume over its 20 rows before >= DOLLARS",
    )
    top: int = option(DEFAULT_TOP, parse=positive_int, metavar="N", help="default 10")
    keep_returns: bool = sweep_options.keep_returns()
    cscv_blocks: int = sweep_options.cscv_blocks()
    walk_forward: str | None = sweep_options.walk_forward()
    anchored: bool = sweep_options.anchored()
    benchmark: str | None = sweep_options.benchmark("results")
