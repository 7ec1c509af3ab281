"""Distributions and bars: a histogram with named markers, horizontal bars, one box per
group, a scatter of groups."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.report import figure
from analytics.report.plots.common import BLACK, PALETTE, Format, compact


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``value`` on a histogram (a median, a VaR level), named in the
    legend."""

    value: float
    label: str
    color: str = "#D55E00"
    dashed: bool = False


def histogram(
    values: Sequence[float] | npt.NDArray[np.float64],
    *,
    title: str,
    x_label: str,
    y_label: str,
    markers: Sequence[Marker] = (),
    bins: int | None = None,
    value_format: Format = lambda v: f"{v:.3g}",
    width: float = 5.6,
    height: float = 3.2,
) -> str:
    """Counts per equal-width bin (numpy's bins over the finite values) and vertical markers,
    each named with its value in the legend."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    n_bins = bins or int(min(60, max(8, math.sqrt(max(len(data), 1)) * 2)))
    with figure.style(f"histogram {title}"):
        fig = figure.new_figure(width, height)
        ax = fig.subplots()
        ax.set_gid("fb-histogram")
        if len(data):
            ax.hist(data, bins=n_bins, color="#7FA7C9", edgecolor="#ffffff", linewidth=0.5)
        for m in markers:
            ax.axvline(
                m.value,
                color=m.color,
                linewidth=1.8,
                linestyle="--" if m.dashed else "-",
                label=f"{m.label} {value_format(m.value)}",
                gid="fb-marker",
            )
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: value_format(v)))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, loc="left")
        if markers:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return figure.to_svg(fig, title=title, kind="histogram")


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float] | npt.NDArray[np.float64],
    *,
    title: str,
    value_label: str,
    value_format: Format = lambda v: f"{v:.2f}",
    width: float = 5.6,
) -> str:
    """Horizontal bars from a zero axis, one per label (negative left, in the second colour),
    each with its value written at its end in ``value_format`` (the ticks too); a NaN has a
    label and no bar."""
    data = np.asarray(values, dtype=np.float64)
    with figure.style(f"bars {title}"):
        fig = figure.new_figure(width, 1.2 + 0.24 * max(len(labels), 1))
        ax = fig.subplots()
        ax.set_gid("fb-bars")
        position = np.arange(len(labels))
        drawn = np.isfinite(data)
        colors = [PALETTE[0] if v >= 0 else PALETTE[1] for v in data[drawn]]
        for bar in ax.barh(position[drawn], data[drawn], color=colors, height=0.7):
            bar.set_gid("fb-bar")
        for y, v in zip(position, data, strict=True):
            text = value_format(float(v)) if math.isfinite(v) else "n/a"
            ax.annotate(
                text,
                (float(np.nan_to_num(v)), float(y)),
                xytext=(3 if not v < 0 else -3, 0),
                textcoords="offset points",
                ha="left" if not v < 0 else "right",
                va="center",
                fontsize=7.5,
            )
        ax.set_yticks(position, list(labels))
        ax.invert_yaxis()
        ax.axvline(0.0, color="#555555", linewidth=0.7)
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.12)
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: value_format(v)))
        ax.set_xlabel(value_label)
        ax.set_title(title, loc="left")
        return figure.to_svg(fig, title=title, kind="bars")


def box_stats(values: Sequence[float] | npt.NDArray[np.float64]) -> dict[str, float]:
    """What a box of :func:`box_plot` draws, over the finite values: the whiskers at the 5th
    and 95th percentiles, the box from the 25th to the 75th, the median and the mean
    (numpy's linear percentiles); empty: ``n`` 0 and no other key."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if not len(data):
        return {"n": 0.0}
    p5, p25, p50, p75, p95 = (float(q) for q in np.quantile(data, [0.05, 0.25, 0.5, 0.75, 0.95]))
    return {"n": float(len(data)), "whislo": p5, "q1": p25, "med": p50, "q3": p75,
            "whishi": p95, "mean": float(data.mean())}  # fmt: skip


def box_plot(
    groups: Sequence[tuple[str, Sequence[float] | npt.NDArray[np.float64]]],
    *,
    title: str,
    value_label: str,
    value_format: Format = compact,
    width: float = 5.6,
) -> str:
    """One horizontal box per group (:func:`box_stats`: whiskers 5-95%, box 25-75%, a line at
    the median, a dot at the mean), labelled with its count; a group without a finite value
    has its label and no box."""
    stats = [box_stats(values) for _, values in groups]
    with figure.style(f"boxes {title}"):
        fig = figure.new_figure(width, 1.3 + 0.34 * max(len(groups), 1))
        ax = fig.subplots()
        ax.set_gid("fb-boxes")
        drawn = [i for i, s in enumerate(stats) if s["n"]]
        artists = ax.bxp(
            [{**stats[i], "fliers": []} for i in drawn],
            positions=drawn,
            orientation="horizontal",
            widths=0.6,
            showmeans=True,
            patch_artist=True,
            medianprops={"color": BLACK, "linewidth": 1.6},
            meanprops={"marker": "o", "markerfacecolor": BLACK, "markeredgecolor": BLACK,
                       "markersize": 3.5},
        )  # fmt: skip
        for k, (i, box) in enumerate(zip(drawn, artists["boxes"], strict=True)):
            color = PALETTE[i % len(PALETTE)]
            box.set(facecolor=color, alpha=0.4, edgecolor=color, gid="fb-box")
            artists["means"][k].set_gid("fb-mean")
        labels = [f"{name} ({int(s['n'])})" for (name, _), s in zip(groups, stats, strict=True)]
        ax.set_yticks(range(len(groups)), labels)
        ax.set_ylim(len(groups) - 0.5, -0.5)  # the first group on top
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: value_format(v)))
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(value_label)
        ax.set_title(title, loc="left")
        return figure.to_svg(fig, title=title, kind="boxes")


@dataclass(frozen=True)
class Points:
    """One group of a scatter chart: x and y values of the same length."""

    name: str
    x: Sequence[float] | npt.NDArray[np.float64]
    y: Sequence[float] | npt.NDArray[np.float64]


def scatter(
    groups: Sequence[Points],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_format: Format = compact,
    y_format: Format = compact,
    max_points: int = 4000,
    width: float = 5.6,
    height: float = 3.4,
) -> str:
    """A dot per finite (x, y) pair, a colour per group, named in the legend; past
    ``max_points`` in all, 1 pair in k of each group is drawn, and the legend says so."""
    pairs = []
    for g in groups:
        x, y = np.asarray(g.x, dtype=np.float64), np.asarray(g.y, dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        pairs.append((x[ok], y[ok]))
    total = sum(len(x) for x, _ in pairs)
    stride = max(1, math.ceil(total / max(max_points, 1)))
    with figure.style(f"scatter {title}"):
        fig = figure.new_figure(width, height)
        ax = fig.subplots()
        ax.set_gid("fb-scatter")
        for i, (g, (x, y)) in enumerate(zip(groups, pairs, strict=True)):
            ax.plot(
                x[::stride], y[::stride], linestyle="none", marker="o", markersize=3.2,
                markeredgewidth=0, alpha=0.65, color=PALETTE[i % len(PALETTE)], label=g.name,
                gid="fb-points",
            )  # fmt: skip
        ax.axhline(0.0, color="#555555", linewidth=0.7)
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: x_format(v)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: y_format(v)))
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, loc="left")
        shown = f"1 in {stride} of {total:,} points" if stride > 1 else f"{total:,} points"
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title=shown, markerscale=1.8)
        return figure.to_svg(fig, title=title, kind="scatter")
