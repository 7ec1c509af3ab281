"""Parameter grids: ``PARAM=start:stop:step`` (stop inclusive) or ``PARAM=v1,v2,...``.

The sweep is the Cartesian product of the parameters' values (the strategy's parameter order,
the first varying slowest), filtered by the strategy's constraint. Syntax errors are argument
errors; a grid that does not fit the strategy is an :class:`InputError`: both exit 2.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

from analytics.errors import InputError
from analytics.jobs.backtest.strategies._base import Combos, Param, Values

log = logging.getLogger(__name__)

#: The largest sweep accepted (after the constraint filter is applied, the product before it).
MAX_COMBINATIONS = 1_000_000


class Family(Protocol):
    """What a grid is built for: a named family of rules with typed parameters (backtest's
    strategies, portfolio-backtest's)."""

    @property
    def name(self) -> str: ...
    @property
    def params(self) -> tuple[Param, ...]: ...
    @property
    def constraint(self) -> Callable[[Combos], npt.NDArray[np.bool_]] | None: ...
    @property
    def constraint_text(self) -> str: ...
    def param(self, name: str) -> Param: ...


@dataclass(frozen=True)
class GridSpec:
    """The values one ``--grid`` option gives one parameter."""

    name: str
    values: tuple[float | int, ...]
    text: str


def _number(token: str, spec: str) -> int | float:
    token = token.strip()
    try:
        return int(token)
    except ValueError:
        pass
    try:
        value = float(token)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: {token!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{spec!r}: {token!r} is not a finite number")
    return value


def _range(start: float, stop: float, step: float, spec: str) -> list[int | float]:
    if step <= 0:
        raise argparse.ArgumentTypeError(f"{spec!r}: the step must be > 0 (got {step})")
    if start > stop:
        raise argparse.ArgumentTypeError(f"{spec!r}: start {start} is above stop {stop}")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_COMBINATIONS:
        raise argparse.ArgumentTypeError(f"{spec!r}: {count:,} values is too many")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return list(range(int(start), int(stop) + 1, int(step)))
    # Rounded so that 0.1 steps give 0.3, not 0.30000000000000004.
    return [round(start + i * step, 12) for i in range(count)]


def parse_grid(text: str) -> GridSpec:
    """``NAME=start:stop:step`` or ``NAME=v1,v2,...`` (an argparse type)."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not PARAM=start:stop:step or PARAM=v1,v2,... (e.g. fast=5:50:5)"
        )
    if not name.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"{text!r}: {name!r} is not a parameter name")
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3 or "," in spec:
            raise argparse.ArgumentTypeError(
                f"{text!r}: a range is start:stop:step with three numbers (e.g. fast=5:50:5)"
            )
        start, stop, step = (_number(p, text) for p in parts)
        values = _range(start, stop, step, text)
    else:
        tokens = spec.split(",")
        if any(not t.strip() for t in tokens):
            raise argparse.ArgumentTypeError(f"{text!r}: empty value in the list")
        values = [_number(t, text) for t in tokens]
    return GridSpec(name, tuple(dict.fromkeys(values)), text)


def grid_option(text: str) -> str:
    """The ``--grid`` argument type: checks the syntax, keeps the text (for the manifest)."""
    parse_grid(text)
    return text


def _typed(strategy: Family, spec: GridSpec) -> Values:
    param = strategy.param(spec.name)
    values = np.asarray(spec.values, dtype=np.float64)
    if param.kind is int:
        if not np.all(values == np.round(values)):
            raise InputError(f"--grid {spec.text}: {spec.name} takes whole numbers")
        typed: Values = values.astype(np.int64)
    else:
        typed = values
    low = param.minimum
    if low is not None and np.any(values < low):
        raise InputError(f"--grid {spec.text}: {spec.name} must be >= {low:g}")
    if param.above is not None and np.any(values <= param.above):
        raise InputError(f"--grid {spec.text}: {spec.name} must be > {param.above:g}")
    return typed


def build_combinations(
    strategy: Family, specs: list[GridSpec] | list[str] | None, *, say_refused: bool = False
) -> Combos:
    """The parameter combinations of a sweep: name -> array of K values.

    Raises :class:`InputError` naming the problem: an unknown or repeated parameter, a missing
    one without a default, a value of the wrong kind or out of bounds, too many combinations,
    or none left by the strategy's constraint. With ``say_refused`` (once per run, before any
    cluster), the combinations the constraint leaves out are logged as a warning.
    """
    names = [p.name for p in strategy.params]
    given: dict[str, GridSpec] = {}
    for item in specs or []:
        spec = parse_grid(item) if isinstance(item, str) else item
        if spec.name not in names:
            raise InputError(
                f"--grid {spec.text}: strategy {strategy.name!r} has no parameter "
                f"{spec.name!r} (its parameters: {', '.join(names)})"
            )
        if spec.name in given:
            raise InputError(
                f"--grid gives {spec.name!r} twice ({given[spec.name].text!r} and {spec.text!r})"
            )
        given[spec.name] = spec
    axes: list[Values] = []
    for param in strategy.params:
        if param.name in given:
            axes.append(_typed(strategy, given[param.name]))
        elif param.default is None:
            raise InputError(
                f"strategy {strategy.name!r} needs --grid {param.name}=... ({param.help})"
            )
        elif param.kind is int:
            axes.append(np.asarray([param.default], dtype=np.int64))
        else:
            axes.append(np.asarray([param.default], dtype=np.float64))
    total = math.prod(len(a) for a in axes)
    if total > MAX_COMBINATIONS:
        raise InputError(
            f"the grid has {total:,} combinations; at most {MAX_COMBINATIONS:,} per run "
            "(split the sweep into several runs)"
        )
    mesh = np.meshgrid(*axes, indexing="ij")
    combos: dict[str, Values] = {
        p.name: cast(Values, m.ravel()) for p, m in zip(strategy.params, mesh, strict=True)
    }
    if strategy.constraint is not None:
        keep = strategy.constraint(combos)
        combos = {name: values[keep] for name, values in combos.items()}
        if not keep.any():
            raise InputError(
                f"no combination of the grid satisfies {strategy.name}'s constraint "
                f"{strategy.constraint_text} ({total:,} tried)"
            )
        refused = total - int(keep.sum())
        if refused and say_refused:
            # Said, not silent: a grid value whose every combination breaks the rule would
            # otherwise vanish from every table without a word.
            log.warning(
                "--grid: %s of %s combinations break %s's rule %s and are left out; %s run",
                f"{refused:,}",
                f"{total:,}",
                strategy.name,
                strategy.constraint_text,
                f"{total - refused:,}",
            )
    return combos


def combination_count(combos: Combos) -> int:
    return len(next(iter(combos.values()))) if combos else 0


def take(combos: Combos, index: slice | np.ndarray) -> Combos:
    """The combinations at ``index`` (a slice or an integer array)."""
    return {name: values[index] for name, values in combos.items()}
