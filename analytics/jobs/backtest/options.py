"""The options of ``backtest`` (light: the strategies load only to list or check them)."""

from __future__ import annotations

from dataclasses import dataclass

from analytics.jobs import sweep_options
from analytics.options import bps, option, positive_int, relative_month

DEFAULT_TOP = 10
DEFAULT_CALENDAR = "XNYS"


def _strategies_help() -> str:
    from analytics.jobs.backtest.strategies import registry

    return "the trading rule: " + "; ".join(
        f"{s.name} ({', '.join(p.name for p in s.params)})" for s in registry().values()
    )


def strategy_name(text: str) -> str:
    from analytics.jobs.backtest.strategies import registry

    if text not in registry():
        raise ValueError(f"{text!r} is not a strategy (the strategies: {', '.join(registry())})")
    return text


def grid_text(text: str) -> str:
    """A ``--grid`` value: the syntax is checked, the text kept (for the manifest)."""
    from analytics.jobs.backtest.grid import grid_option

    return grid_option(text)


def shard_text(text: str) -> str:
    """``I/K`` (0 <= I < K) or ``array/K`` (I from ``AWS_BATCH_JOB_ARRAY_INDEX``)."""
    index, sep, count = text.partition("/")
    try:
        k = int(count)
        i = None if index.strip() == "array" else int(index)
    except ValueError:
        raise ValueError(f"{text!r} is not I/K or array/K (e.g. 0/4)") from None
    if not sep or not 1 <= k <= 10_000 or (i is not None and not 0 <= i < k):
        raise ValueError(f"{text!r}: need 1 <= K <= 10000 and 0 <= I < K")
    return text.strip()


@dataclass(frozen=True)
class Options:
    strategy: str = option(
        None, parse=strategy_name, metavar="NAME", required=True, help=_strategies_help
    )
    grid: tuple[str, ...] = option(
        (),
        parse=grid_text,
        repeat=True,
        metavar="PARAM=SPEC",
        help="values of a parameter: start:stop:step (stop inclusive) or v1,v2,...; repeat per "
        "parameter; the sweep is their product",
    )
    direction: str = option("long", choices=("long", "long-short"), help="default long")
    fill: str = option(
        "next-open",
        choices=("next-open", "close"),
        help="fill at the next day's open (default) or at the signal day's close",
    )
    fees_bps: float = option(0.0, parse=bps, metavar="F", help="default 0")
    slippage_bps: float = option(0.0, parse=bps, metavar="S", help="default 0")
    top: int = option(DEFAULT_TOP, parse=positive_int, metavar="N", help="default 10")
    as_of_month: str | None = option(
        None,
        parse=relative_month,
        metavar="YYYY-MM",
        help="end at the last trading day of this month in the data (instead of --end); "
        "'previous': the month before today's, on the first session of a month only "
        "(other days: nothing to do, exit 0)",
    )
    calendar: str = option(
        DEFAULT_CALENDAR,
        metavar="NAME",
        help=f"exchange calendar for relative dates (default {DEFAULT_CALENDAR})",
    )
    catch_up: int | None = option(
        None,
        parse=positive_int,
        metavar="N",
        help="run every one of the N months ending with --as-of-month's that has no committed "
        "run under --output (then an output root), oldest first, each into OUTPUT/YYYY-MM",
    )
    shard: str | None = option(
        None,
        parse=shard_text,
        metavar="I/K",
        help="run only shard I of K of the combinations, into OUTPUT/_shards/shard-I-of-K "
        "(array/K: I from $AWS_BATCH_JOB_ARRAY_INDEX); see --merge-shards",
    )
    merge_shards: int | None = option(
        None,
        parse=positive_int,
        metavar="K",
        help="combine the K committed shards in OUTPUT/_shards into OUTPUT's tables "
        "(give the shards' options)",
    )
    keep_returns: bool = sweep_options.keep_returns()
    cscv_blocks: int = sweep_options.cscv_blocks()
    walk_forward: str | None = sweep_options.walk_forward()
    anchored: bool = sweep_options.anchored()
    benchmark: str | None = sweep_options.benchmark("summary")
