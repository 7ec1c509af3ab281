"""Typed job options: how a dataclass field becomes a command-line option, and the value types.

A job's options are a frozen dataclass; each field declared with :func:`option` carries what the
command line needs (flag, help, parser of the text) in its metadata, so the command line, the
Python API (``finbatch.run(job, **options)``) and the manifest all read one declaration. The
job itself only ever sees the dataclass.

This module is imported by the command line before anything else: it stays light (standard
library only), and so must every job's options module.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analytics.errors import InputError, readable

#: The largest count any integer option accepts (days, symbols, combinations...): a bound that
#: keeps every derived size finite and every message short.
MAX_COUNT = 10_000_000

Parse = Callable[[str], Any]


@dataclass(frozen=True)
class Flag:
    """How one option field appears on the command line."""

    flag: str
    #: The help text, or a function giving it (when it lists something found at run time).
    help: str | Callable[[], str]
    parse: Parse | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False
    #: ``--x A --x B`` collects a tuple (argparse's ``append``).
    repeat: bool = False
    #: A switch: present is True (argparse's ``store_true``).
    switch: bool = False


def option(
    default: Any = None,
    *,
    help: str | Callable[[], str],
    flag: str | None = None,
    parse: Parse | None = None,
    metavar: str | None = None,
    choices: Sequence[str] | None = None,
    required: bool = False,
    repeat: bool = False,
    switch: bool = False,
) -> Any:
    """A dataclass field that is also a command-line option (``--field-name`` by default)."""
    spec = Flag(
        flag or "",
        help,
        parse,
        metavar,
        tuple(choices) if choices is not None else None,
        required,
        repeat,
        switch,
    )
    return dataclasses.field(default=default, metadata={"option": spec})


def flag_of(field: dataclasses.Field[Any]) -> Flag | None:
    """The field's :class:`Flag` with its flag name filled in, or None (not an option)."""
    spec = field.metadata.get("option")
    if not isinstance(spec, Flag):
        return None
    return (
        spec if spec.flag else dataclasses.replace(spec, flag="--" + field.name.replace("_", "-"))
    )


def option_fields(cls: type) -> list[tuple[dataclasses.Field[Any], Flag]]:
    """The option fields of an options dataclass, in declaration order."""
    found = []
    for field in dataclasses.fields(cls):
        spec = flag_of(field)
        if spec is not None:
            found.append((field, spec))
    return found


def add_options(parser: argparse.ArgumentParser | Any, cls: type) -> None:
    """Add the options of ``cls`` to an argparse parser (or argument group)."""
    for field, spec in option_fields(cls):
        text = spec.help() if callable(spec.help) else spec.help
        kwargs: dict[str, Any] = {"dest": field.name, "help": text}
        if spec.switch:
            kwargs["action"] = "store_true"
        else:
            if spec.parse is not None:
                kwargs["type"] = argtype(spec.parse)
            if spec.metavar:
                kwargs["metavar"] = spec.metavar
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
            if spec.repeat:
                kwargs["action"] = "append"
            if spec.required:
                kwargs["required"] = True
        # argparse's default stays None: the dataclass holds the defaults, in one place.
        kwargs["default"] = None
        parser.add_argument(spec.flag, **kwargs)


def argtype(parse: Parse) -> Parse:
    """``parse`` as an argparse ``type``: its errors become argparse's, message kept."""

    def parsed(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, InputError) as err:
            raise argparse.ArgumentTypeError(readable(str(err))) from None

    parsed.__name__ = getattr(parse, "__name__", "value")
    return parsed


def build(cls: type, values: Mapping[str, Any], *, where: str = "") -> Any:
    """An options object from ``values`` (field name -> value; None or absent: the default).

    Text is parsed with the field's parser, so ``finbatch.run(..., confidence="0.95,0.99")``
    and ``confidence=(0.95, 0.99)`` are the same; a list becomes a tuple. Unknown names and
    bad values raise :class:`InputError` naming the option."""
    fields = {f.name: (f, flag_of(f)) for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise InputError(f"{where}unknown option(s) {unknown}; the options are: {known}")
    kwargs: dict[str, Any] = {}
    for name, given in values.items():
        if given is None:
            continue
        spec = fields[name][1]
        label = spec.flag if spec else name
        value = given
        if spec is not None and spec.repeat:
            items = [given] if isinstance(given, str) else list(given)
            value = tuple(_parse(spec, item, label) for item in items)
        elif isinstance(given, str) and spec is not None and spec.parse is not None:
            value = _parse(spec, given, label)
        elif isinstance(given, list):
            value = tuple(given)
        if spec is not None and spec.choices is not None and value not in spec.choices:
            raise InputError(f"{label} {value!r}: expected one of {list(spec.choices)}")
        kwargs[name] = value
    missing = [
        spec.flag
        for name, (_, spec) in fields.items()
        if spec and spec.required and name not in kwargs
    ]
    if missing:
        raise InputError(f"{where}missing required option(s): {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise InputError(f"{where}{err}") from err


def _parse(spec: Flag, value: Any, label: str) -> Any:
    if not isinstance(value, str) or spec.parse is None:
        return value
    try:
        return spec.parse(value)
    except (ValueError, argparse.ArgumentTypeError) as err:
        raise InputError(f"{label}: {err}") from None


def values_of(options: Any) -> dict[str, Any]:
    """An options object as ``{field: value}`` (for the manifest's parameters)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}


def defaults_of(cls: type) -> dict[str, Any]:
    """Each field's default of an options dataclass (None when it has none), by field name."""
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else None
        for f in dataclasses.fields(cls)
    }


def explicit(options: Any) -> dict[str, Any]:
    """The fields of ``options`` that differ from their defaults (what the user set)."""
    found = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if value != default:
            found[f.name] = value
    return found


# --------------------------------------------------------------------------------------------
# Value types: text -> value, each failure naming the value


def iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date in YYYY-MM-DD form") from None


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if abs(value) > MAX_COUNT:
        raise ValueError(f"{text[:20]!r} is out of range (at most {MAX_COUNT:,})")
    return value


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise ValueError(f"{text!r} must be at least 1")
    return value


def nonnegative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise ValueError(f"{text!r} must be 0 or more")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def bps(text: str) -> float:
    """Basis points in [0, 10000)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of basis points") from None
    if not 0 <= value < 10_000:
        raise ValueError(f"{text!r} must be in [0, 10000) basis points")
    return value


def symbol_list(text: str) -> tuple[str, ...]:
    symbols = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not symbols:
        raise ValueError(f"{text!r} names no symbol (expected A,B,...)")
    return symbols


def instant(text: str) -> str:
    """``--today``: a date (``YYYY-MM-DD``, that day at the exchange) or a moment with its time
    zone (``2024-03-01T11:00:00Z``, as AWS schedules give their scheduled time); kept as text."""
    try:
        if len(text) == 10:
            dt.date.fromisoformat(text)
            return text
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a date (YYYY-MM-DD) nor a moment with its time zone "
            "(YYYY-MM-DDTHH:MM:SSZ)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (end it with Z or +HH:MM)")
    return text


PREVIOUS_SESSION = "previous-session"
PREVIOUS_MONTH = "previous"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def relative_date(text: str) -> str:
    """``YYYY-MM-DD`` or ``previous-session`` (resolved later, with the exchange calendar)."""
    if text != PREVIOUS_SESSION:
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a date in YYYY-MM-DD form nor {PREVIOUS_SESSION!r}"
            ) from None
    return text


def relative_month(text: str) -> str:
    """``YYYY-MM`` or ``previous`` (resolved later, with the exchange calendar)."""
    match = _MONTH.match(text)
    if text != PREVIOUS_MONTH and not (match and 1 <= int(match.group(2)) <= 12):
        raise ValueError(f"{text!r} is neither a month in YYYY-MM form nor {PREVIOUS_MONTH!r}")
    return text
