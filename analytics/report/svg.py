"""Inline-SVG building blocks for the report's charts: scales, ticks, number formats, a canvas.

Each chart (:mod:`analytics.report.charts`) is one ``<svg>`` element as a string: no JavaScript,
no external font or stylesheet, nothing fetched, so the report opens the same in a private
network. Coordinates are rounded to 0.1 px.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import numpy.typing as npt

Format = Callable[[float], str]
FloatArray = npt.NDArray[np.float64]

#: Colour-blind-safe qualitative palette (Okabe-Ito, with black last).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
GRID = "#e3e3e3"
AXIS = "#555555"


def pct(value: float) -> str:
    """``0.1234`` -> ``12.3%``."""
    return "n/a" if not math.isfinite(value) else f"{value * 100:.1f}%"


def num(value: float) -> str:
    """A compact number: ``1234567`` -> ``1.23M``, ``0.0123`` -> ``0.0123``."""
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    size = abs(value)
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]``: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


@dataclass(frozen=True)
class Scale:
    """Maps data values in ``[lo, hi]`` linearly onto pixels ``[a, b]``."""

    lo: float
    hi: float
    a: float
    b: float

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return (self.a + self.b) / 2
        return self.a + (value - self.lo) / (self.hi - self.lo) * (self.b - self.a)


@dataclass(frozen=True)
class Series:
    """One line (or group of points): x values (day numbers on date axes), y values."""

    name: str
    x: Sequence[float] | FloatArray
    y: Sequence[float] | FloatArray
    color: str | None = None
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``value`` with a label (a VaR or ES level on a histogram)."""

    value: float
    label: str
    color: str = "#D55E00"
    dashed: bool = False


def coord(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


class Canvas:
    """An SVG document under construction, with the plot area's frame."""

    def __init__(self, title: str, width: int, height: int, *, left: int = 64) -> None:
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, width - 16, 34, height - 40
        self.parts: list[str] = [
            f'<text x="{width / 2:g}" y="18" text-anchor="middle" font-size="13" '
            f'font-weight="600">{escape(title)}</text>'
        ]
        self.title = title

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, label: str, anchor: str = "middle", **attrs: str) -> None:
        extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
        self.add(
            f'<text x="{coord(x)}" y="{coord(y)}" text-anchor="{anchor}"{extra}>'
            f"{escape(label)}</text>"
        )

    def y_axis(self, scale: Scale, ticks: Sequence[float], fmt: Format) -> None:
        for t in ticks:
            y = scale(t)
            self.add(
                f'<line x1="{self.left}" x2="{self.right}" y1="{coord(y)}" y2="{coord(y)}" '
                f'stroke="{GRID}"/>'
            )
            self.text(self.left - 6, y + 4, fmt(t), "end")

    def x_axis(self, scale: Scale, ticks: Sequence[tuple[float, str]]) -> None:
        self.add(
            f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" '
            f'stroke="{AXIS}"/>'
        )
        for value, label in ticks:
            x = scale(value)
            self.add(
                f'<line x1="{coord(x)}" x2="{coord(x)}" y1="{self.bottom}" y2="{self.bottom + 4}" '
                f'stroke="{AXIS}"/>'
            )
            self.text(x, self.bottom + 16, label)

    def axis_titles(self, x_title: str = "", y_title: str = "") -> None:
        if x_title:
            self.text((self.left + self.right) / 2, self.height - 6, x_title, fill=AXIS)
        if y_title:
            mid = (self.top + self.bottom) / 2
            self.add(
                f'<text transform="translate(14 {coord(mid)}) rotate(-90)" text-anchor="middle" '
                f'fill="{AXIS}">{escape(y_title)}</text>'
            )

    def legend(self, entries: Sequence[tuple[str, str, bool]]) -> float:
        """A row (wrapping) of line swatches and names; returns the y below it."""
        x, y = self.left + 8.0, self.top + 4.0
        for name, color, dashed in entries:
            width = 26 + 7.2 * len(name)
            if x + width > self.right and x > self.left + 8:
                x, y = self.left + 8.0, y + 15
            dash = ' stroke-dasharray="4 2"' if dashed else ""
            self.add(
                f'<line x1="{coord(x)}" x2="{coord(x + 16)}" y1="{coord(y + 2)}" '
                f'y2="{coord(y + 2)}" '
                f'stroke="{color}" stroke-width="2.5"{dash}/>'
            )
            self.text(x + 20, y + 6, name, "start")
            x += width
        return y + 14

    def render(self) -> str:
        body = "".join(self.parts)
        return (
            f'<svg role="img" viewBox="0 0 {self.width} '
            f'{self.height}" width="{self.width}" height="{self.height}" '
            f'style="max-width:100%;height:auto;font-family:sans-serif;font-size:11px">'
            f"<title>{escape(self.title)}</title>{body}</svg>"
        )


def finite_range(arrays: Sequence[FloatArray]) -> tuple[float, float]:
    values = np.concatenate([a[np.isfinite(a)] for a in arrays] or [np.zeros(0)])
    return (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)


_EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> float:
    """A date as days since 1970-01-01: the x coordinate of date axes."""
    return float((day - _EPOCH).days)


def date_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Ticks at year, quarter, month or week starts between two day numbers, with labels."""
    start, end = _EPOCH + dt.timedelta(days=lo), _EPOCH + dt.timedelta(days=hi)
    span = hi - lo
    if span > 3 * 366:
        years = range(start.year + (start > dt.date(start.year, 1, 1)), end.year + 1)
        step = max(1, math.ceil(len(years) / 8))
        return [(day_number(dt.date(y, 1, 1)), str(y)) for y in years[::step]]
    if span > 45:
        months = 3 if span > 400 else (2 if span > 240 else 1)
        ticks, year, month = [], start.year, start.month
        while dt.date(year, month, 1) <= end:
            first = dt.date(year, month, 1)
            if first >= start and (month - 1) % months == 0:
                ticks.append((day_number(first), first.strftime("%Y-%m")))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return ticks
    step_days = 7 if span > 14 else 1
    return [
        (lo + i, (start + dt.timedelta(days=i)).strftime("%m-%d"))
        for i in range(0, int(span) + 1, step_days)
    ]


def thin(x: FloatArray, y: FloatArray, columns: int) -> tuple[FloatArray, FloatArray]:
    """At most the first, minimum, maximum and last point of each pixel column, in order."""
    if len(x) <= 2 * columns:
        return x, y
    bucket = np.minimum(((x - x[0]) / max(x[-1] - x[0], 1e-12) * columns).astype(np.int64), columns)
    keep = np.zeros(len(x), dtype=bool)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends, strict=True):
        segment = y[s:e]
        keep[[s, e - 1]] = True
        if np.isfinite(segment).any():
            keep[s + int(np.nanargmin(segment))] = True
            keep[s + int(np.nanargmax(segment))] = True
    return x[keep], y[keep]


def path_data(xs: FloatArray, ys: FloatArray, sx: Scale, sy: Scale) -> str:
    """An SVG path; a NaN breaks the line (a new ``M``) instead of drawing to zero."""
    out, pen_down = [], False
    for xv, yv in zip(xs, ys, strict=True):
        if not (math.isfinite(xv) and math.isfinite(yv)):
            pen_down = False
            continue
        out.append(f"{'L' if pen_down else 'M'}{coord(sx(xv))} {coord(sy(yv))}")
        pen_down = True
    return "".join(out)
