"""Rendering a matplotlib figure as a compact, deterministic inline ``<svg>`` for the report.

The SVG has no XML prolog, DOCTYPE, metadata, script or URL: text stays text (``svg.fonttype:
none``), ids are salted by the chart's title (``svg.hashsalt``) so that several charts in one
page never share one, matplotlib's own ids are dropped (its axes become ``class="x-axis"`` and
``class="y-axis"``, a ``gid`` of ``fb-NAME`` becomes ``class="NAME"``), coordinates are
rounded to 0.1 pt, and markers of one style (a scatter's dots) get it once, from their group.
Without a date, the same figure gives the same bytes.

matplotlib is imported inside the functions (about 0.5 s): the command line starts without it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_RC: Final[dict[str, Any]] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial"],
    "font.size": 9.0,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "axes.axisbelow": True,
    "path.simplify": True,
    "path.simplify_threshold": 0.5,
}


@contextmanager
def style(salt: str) -> Iterator[None]:
    """The report's matplotlib settings, with SVG ids salted by ``salt`` (the chart's title)."""
    import matplotlib

    settings: Any = {**_RC, "svg.hashsalt": salt}  # the stubs list every key as a Literal
    with matplotlib.rc_context(settings):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches with constrained layout (legends and colour
    bars outside the axes get their room); no pyplot, so no global state."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


_AUTO_ID = re.compile(r' id="(?:[A-Za-z][A-Za-z0-9]*_\d+|matplotlib\.axis_\d+)"')
_AXIS_ID = re.compile(r' id="matplotlib\.axis_(\d+)"')
_OUR_ID = re.compile(r' id="fb-([a-z-]+)"')
_GEOMETRY = re.compile(r' (d|x|y|width|height|transform|points)="([^"]*)"')
_DECIMALS = re.compile(r"(-?\d+\.\d)\d+")


#: A group of nothing but markers (``<use>``): a scatter's dots, a line's marked days.
_MARKERS = re.compile(r'<g( clip-path="[^"]*")?>((?:<use href="#[^"]+" x="[^"]+" y="[^"]+"'
                      r' style="[^"]+"/>)+)</g>')  # fmt: skip


def _shared_style(match: re.Match[str]) -> str:
    """Markers that all carry the same style get it once, from their group (fill and stroke
    inherit): a 4,000-dot scatter is 200 KB lighter."""
    styles = set(re.findall(r' style="([^"]+)"', match.group(2)))
    if len(styles) != 1:
        return match.group(0)
    style = styles.pop()
    markers = match.group(2).replace(f' style="{style}"', "")
    return f'<g{match.group(1) or ""} style="{style}">{markers}</g>'


def _rounded(match: re.Match[str]) -> str:
    value = _DECIMALS.sub(r"\1", match.group(2))
    return f' {match.group(1)}="{" ".join(value.split())}"'


def to_svg(fig: Figure, *, title: str, kind: str, **data: str) -> str:
    """``fig`` as a compact inline ``<svg>``: ``title`` for screen readers, ``kind`` and
    ``data`` as ``data-*`` attributes of the root element."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    text = re.sub(r">\s+<", "><", text)
    text = _AXIS_ID.sub(lambda m: f' class="{"x" if int(m.group(1)) % 2 else "y"}-axis"', text)
    text = _OUR_ID.sub(r' class="\1"', text)
    text = _AUTO_ID.sub("", text)
    text = _GEOMETRY.sub(_rounded, text)
    attrs = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in data.items())
    root = (
        f'<svg class="chart" data-kind="{escape(kind)}"{attrs} role="img" '
        f'aria-label="{escape(title)}" style="max-width:100%;height:auto" '
    )
    # Inline in HTML the SVG namespace is implied, and SVG 2's ``href`` replaces xlink's: the
    # page then names no URL at all.
    text = text.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "", 1)
    text = text.replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
    text = text.replace("xlink:href=", "href=")
    text = _MARKERS.sub(_shared_style, text)
    text = text.replace("<svg ", root, 1)
    # matplotlib's stylesheet says ``*{...}``: inside a page it would reach every element.
    text = text.replace('<style type="text/css">*{', '<style type="text/css">svg.chart *{', 1)
    head = text.index(">") + 1
    return f"{text[:head]}<title>{escape(title)}</title>{text[head:]}".strip()


def date_axis(ax: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def percent_axis(ax: Axes, *, wealth: bool = False, decimals: int = 0) -> None:
    from matplotlib.ticker import FuncFormatter

    shift = 1.0 if wealth else 0.0
    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _pos: signed_pct((v - shift) * 100, decimals))
    )


def signed_pct(value: float, decimals: int) -> str:
    text = f"{value:+,.{decimals}f}%"
    return text[1:] if float(text[1:-1].replace(",", "")) == 0 else text
