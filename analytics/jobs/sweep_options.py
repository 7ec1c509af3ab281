"""The validation options every parameter sweep takes (``backtest``, ``portfolio-backtest``).

Light (the standard library and :mod:`analytics.options`): each job's options dataclass declares
its fields with these factories, so the flags, their parsing and their help are written once.
``table`` names the job's table of one row per combination (``summary/`` or ``results/``).
"""

from __future__ import annotations

from typing import Any

from analytics.options import option

DEFAULT_BLOCKS = 16


def cscv_blocks_text(text: str) -> int:
    """``--cscv-blocks``: an even number of at least 2."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number (e.g. 16)") from None
    if value < 2 or value % 2:
        raise ValueError(f"{text!r}: need an even number of at least 2 (e.g. 16)")
    return value


def walk_forward_text(text: str) -> str:
    """``--walk-forward TRAIN:TEST``: checked, the text kept (for the manifest)."""
    from analytics.errors import InputError
    from analytics.stats.walk_forward import parse_walk_forward

    try:
        spec = parse_walk_forward(text)
    except InputError as err:
        raise ValueError(str(err).removeprefix("--walk-forward ")) from None
    return f"{spec.train_months}:{spec.test_months}"


def keep_returns() -> Any:
    return option(
        False,
        switch=True,
        help="also write returns/: each combination's daily portfolio return (long format)",
    )


def cscv_blocks() -> Any:
    return option(
        DEFAULT_BLOCKS,
        parse=cscv_blocks_text,
        metavar="S",
        help="blocks of dates for the probability of backtest overfitting (even, default 16)",
    )


def walk_forward() -> Any:
    return option(
        None,
        parse=walk_forward_text,
        metavar="TRAIN:TEST",
        help="walk-forward selection in calendar months (e.g. 36:12): writes walk_forward/ "
        "and oos_equity/",
    )


def anchored() -> Any:
    return option(
        False,
        switch=True,
        help="walk-forward training windows all start at the first month (with --walk-forward)",
    )


def benchmark(table: str) -> Any:
    return option(
        None,
        metavar="SYMBOL",
        help=f"benchmark of {table}/'s relative columns (default: SPX when the data has it, "
        "else the equal-weighted universe)",
    )


def check_anchored(options: Any) -> None:
    """Raise :class:`analytics.errors.InputError` for ``--anchored`` without walk-forward."""
    from analytics.errors import InputError

    if options.anchored and options.walk_forward is None:
        raise InputError("--anchored needs --walk-forward TRAIN:TEST")
