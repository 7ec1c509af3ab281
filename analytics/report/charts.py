"""The hand-written charts still used by the risk and TCA sections: lines (risk's VaR
backtest), histogram, bar, scatter and box plot, each an inline ``<svg>`` (the other sections
draw with :mod:`analytics.report.plots`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

from analytics.report.svg import (
    AXIS,
    GRID,
    PALETTE,
    Canvas,
    FloatArray,
    Format,
    Marker,
    Scale,
    Series,
    coord,
    date_ticks,
    finite_range,
    nice_ticks,
    num,
    path_data,
    thin,
)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_format: Format = num,
    dates: bool = True,
    y_title: str = "",
    width: int = 720,
    height: int = 300,
    points: Sequence[Series] = (),
) -> str:
    """Lines over a shared x axis (day numbers when ``dates``), with a legend and a zero line;
    ``points`` are drawn over them as dots (marked days, such as VaR exceptions)."""
    svg = Canvas(title, width, height)
    xs = [np.asarray(s.x, dtype=np.float64) for s in series]
    ys = [np.asarray(s.y, dtype=np.float64) for s in series]
    px = [np.asarray(s.x, dtype=np.float64) for s in points]
    py = [np.asarray(s.y, dtype=np.float64) for s in points]
    x_lo, x_hi = finite_range(xs)
    y_ticks = nice_ticks(*finite_range(ys + py))
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    dot_colors = [
        s.color or PALETTE[(len(series) + i) % len(PALETTE)] for i, s in enumerate(points)
    ]
    below = svg.legend(
        [(s.name, c, s.dashed) for s, c in zip(series, colors, strict=True)]
        + [(s.name, c, False) for s, c in zip(points, dot_colors, strict=True)]
    )
    sx = Scale(x_lo, x_hi, svg.left, svg.right)
    sy = Scale(y_ticks[0], y_ticks[-1], svg.bottom, below + 6)
    svg.y_axis(sy, y_ticks, y_format)
    x_ticks = (
        date_ticks(x_lo, x_hi) if dates else [(t, num(t)) for t in nice_ticks(x_lo, x_hi)[1:-1]]
    )
    svg.x_axis(sx, [(v, label) for v, label in x_ticks if x_lo <= v <= x_hi])
    if y_ticks[0] < 0 < y_ticks[-1]:
        svg.add(
            f'<line x1="{svg.left}" x2="{svg.right}" y1="{coord(sy(0))}" y2="{coord(sy(0))}" '
            f'stroke="{AXIS}"/>'
        )
    for s, color, x, y in zip(series, colors, xs, ys, strict=True):
        tx, ty = thin(x, y, svg.right - svg.left)
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        svg.add(
            f'<path d="{path_data(tx, ty, sx, sy)}" fill="none" stroke="{color}" '
            f'stroke-width="1.6"{dash}><title>{escape(s.name)}</title></path>'
        )
    for color, x, y in zip(dot_colors, px, py, strict=True):
        ok = np.isfinite(x) & np.isfinite(y)
        dots = "".join(
            f'<circle cx="{coord(sx(a))}" cy="{coord(sy(b))}" r="3"/>'
            for a, b in zip(x[ok], y[ok], strict=True)
        )
        svg.add(f'<g class="points" fill="{color}">{dots}</g>')
    svg.axis_titles(y_title=y_title)
    return svg.render()


def histogram(
    values: Sequence[float] | FloatArray,
    *,
    title: str,
    markers: Sequence[Marker] = (),
    bins: int | None = None,
    x_format: Format = num,
    x_title: str = "",
    width: int = 720,
    height: int = 280,
) -> str:
    """Bars of counts per bin (numpy's equal-width bins), with labelled vertical markers."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    n_bins = bins or int(min(60, max(10, math.sqrt(max(len(data), 1)) * 2)))
    lo, hi = finite_range([data, np.asarray([m.value for m in markers], dtype=np.float64)])
    counts, edges = np.histogram(data, bins=n_bins, range=(lo, hi) if hi > lo else None)
    svg = Canvas(title, width, height)
    y_ticks = nice_ticks(0.0, float(max(counts.max(initial=0), 1)))
    sx = Scale(float(edges[0]), float(edges[-1]), svg.left, svg.right)
    below = svg.legend([(f"{m.label} {x_format(m.value)}", m.color, m.dashed) for m in markers])
    sy = Scale(0.0, y_ticks[-1], svg.bottom, below + 6)
    svg.y_axis(sy, y_ticks, num)
    ticks = [t for t in nice_ticks(float(edges[0]), float(edges[-1]), 6) if lo <= t <= hi]
    svg.x_axis(sx, [(t, x_format(t)) for t in ticks])
    for count, left, right in zip(counts, edges[:-1], edges[1:], strict=True):
        if count:
            x0, x1, y = sx(left), sx(right), sy(count)
            svg.add(
                f'<rect class="bar" x="{coord(x0)}" y="{coord(y)}" '
                f'width="{coord(max(x1 - x0 - 1, 0.5))}" '
                f'height="{coord(svg.bottom - y)}" fill="#7FA7C9"><title>{x_format(left)} .. '
                f"{x_format(right)}: {count}</title></rect>"
            )
    for marker in markers:
        x = sx(marker.value)
        dash = ' stroke-dasharray="5 3"' if marker.dashed else ""
        svg.add(
            f'<line class="marker" x1="{coord(x)}" x2="{coord(x)}" y1="{coord(sy(y_ticks[-1]))}" '
            f'y2="{svg.bottom}" stroke="{marker.color}" stroke-width="2"{dash}>'
            f"<title>{escape(marker.label)} {x_format(marker.value)}</title></line>"
        )
    svg.axis_titles(x_title=x_title, y_title="scenarios")
    return svg.render()


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float] | FloatArray,
    *,
    title: str,
    value_format: Format = num,
    x_title: str = "",
    width: int = 720,
) -> str:
    """Horizontal bars, one row per label, from a zero axis (negative values go left)."""
    data = np.asarray(values, dtype=np.float64)
    row = 18
    height = 34 + row * max(len(labels), 1) + 44
    svg = Canvas(title, width, height, left=130)
    ticks = nice_ticks(min(0.0, *finite_range([data])), max(0.0, finite_range([data])[1]))
    sx = Scale(ticks[0], ticks[-1], svg.left, svg.right - 50)
    for t in ticks:
        x = sx(t)
        svg.add(
            f'<line x1="{coord(x)}" x2="{coord(x)}" y1="{svg.top}" y2="{svg.bottom}" '
            f'stroke="{GRID}"/>'
        )
    svg.x_axis(sx, [(t, value_format(t)) for t in ticks])
    zero = sx(0.0)
    for i, (label, value) in enumerate(zip(labels, data, strict=True)):
        y = svg.top + i * row + 3
        short = label if len(label) <= 18 else label[:17] + "…"
        svg.text(svg.left - 6, y + 11, short, "end")
        if not math.isfinite(value):
            continue
        x = sx(value)
        color = PALETTE[0] if value >= 0 else PALETTE[1]
        svg.add(
            f'<rect class="bar" x="{coord(min(x, zero))}" y="{y}" width="{coord(abs(x - zero))}" '
            f'height="{row - 5}" fill="{color}"><title>{escape(label)}: '
            f"{value_format(value)}</title></rect>"
        )
        svg.text(max(x, zero) + 4, y + 11, value_format(value), "start", fill=AXIS)
    svg.add(
        f'<line x1="{coord(zero)}" x2="{coord(zero)}" y1="{svg.top}" y2="{svg.bottom}" '
        f'stroke="{AXIS}"/>'
    )
    svg.axis_titles(x_title=x_title)
    return svg.render()


def scatter(
    series: Sequence[Series],
    *,
    title: str,
    x_format: Format = num,
    y_format: Format = num,
    x_title: str = "",
    y_title: str = "",
    width: int = 720,
    height: int = 320,
    max_points: int = 4000,
) -> str:
    """Points of one or more groups (colours and a legend); large groups keep every k-th."""
    svg = Canvas(title, width, height)
    xs = [np.asarray(s.x, dtype=np.float64) for s in series]
    ys = [np.asarray(s.y, dtype=np.float64) for s in series]
    x_ticks, y_ticks = nice_ticks(*finite_range(xs)), nice_ticks(*finite_range(ys))
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    below = svg.legend([(s.name, c, False) for s, c in zip(series, colors, strict=True)])
    sx = Scale(x_ticks[0], x_ticks[-1], svg.left, svg.right)
    sy = Scale(y_ticks[0], y_ticks[-1], svg.bottom, below + 6)
    svg.y_axis(sy, y_ticks, y_format)
    svg.x_axis(sx, [(t, x_format(t)) for t in x_ticks])
    total = sum(len(x) for x in xs)
    stride = max(1, math.ceil(total / max_points))
    for color, x, y in zip(colors, xs, ys, strict=True):
        ok = np.isfinite(x) & np.isfinite(y)
        points = "".join(
            f'<circle cx="{coord(sx(a))}" cy="{coord(sy(b))}" r="2.5"/>'
            for a, b in zip(x[ok][::stride], y[ok][::stride], strict=True)
        )
        svg.add(f'<g class="points" fill="{color}" fill-opacity="0.6">{points}</g>')
    svg.axis_titles(x_title=x_title, y_title=y_title)
    return svg.render()


def box_plot(
    groups: Sequence[tuple[str, Sequence[float] | FloatArray]],
    *,
    title: str,
    value_format: Format = num,
    x_title: str = "",
    width: int = 720,
) -> str:
    """One horizontal box per group: whiskers at the 5th and 95th percentiles, the box from the
    25th to the 75th, a line at the median and a dot at the mean (numpy's linear quantiles)."""
    row = 26
    height = 34 + row * max(len(groups), 1) + 44
    svg = Canvas(title, width, height, left=130)
    data = [np.asarray(v, dtype=np.float64) for _, v in groups]
    data = [d[np.isfinite(d)] for d in data]
    ticks = nice_ticks(*finite_range(data), 6)
    sx = Scale(ticks[0], ticks[-1], svg.left, svg.right - 10)
    for t in ticks:
        x = sx(t)
        svg.add(
            f'<line x1="{coord(x)}" x2="{coord(x)}" y1="{svg.top}" y2="{svg.bottom}" '
            f'stroke="{GRID}"/>'
        )
    svg.x_axis(sx, [(t, value_format(t)) for t in ticks])
    for i, ((label, _), values) in enumerate(zip(groups, data, strict=True)):
        mid = svg.top + i * row + row / 2
        color = PALETTE[i % len(PALETTE)]
        svg.text(svg.left - 6, mid + 4, f"{label} ({len(values)})", "end")
        if not len(values):
            continue
        p5, p25, p50, p75, p95 = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
        tip = (
            f"{escape(label)}: n={len(values)}, p5 {value_format(p5)}, p25 {value_format(p25)}, "
            f"median {value_format(p50)}, p75 {value_format(p75)}, p95 {value_format(p95)}, "
            f"mean {value_format(float(values.mean()))}"
        )
        svg.add(
            f'<g class="box"><title>{tip}</title>'
            f'<line x1="{coord(sx(p5))}" x2="{coord(sx(p95))}" y1="{coord(mid)}" '
            f'y2="{coord(mid)}" stroke="{AXIS}"/>'
            f'<rect x="{coord(sx(p25))}" y="{coord(mid - 8)}" '
            f'width="{coord(max(sx(p75) - sx(p25), 1))}" height="16" fill="{color}" '
            f'fill-opacity="0.35" stroke="{color}"/>'
            f'<line x1="{coord(sx(p50))}" x2="{coord(sx(p50))}" y1="{coord(mid - 8)}" '
            f'y2="{coord(mid + 8)}" stroke="{color}" stroke-width="2.5"/>'
            f'<circle cx="{coord(sx(float(values.mean())))}" cy="{coord(mid)}" r="3" '
            f'fill="{AXIS}"/></g>'
        )
    svg.axis_titles(x_title=x_title)
    return svg.render()
