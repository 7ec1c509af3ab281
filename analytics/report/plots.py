"""The report's charts, drawn with matplotlib and inlined as ``<svg>`` strings.

Each function returns one ``<svg>`` element rendered by :func:`analytics.report.figure.to_svg`
(compact, deterministic, no script and no URL); long lines are simplified by matplotlib's path
simplification. matplotlib is imported inside the functions: the command line starts without it.
The root element carries ``class="chart"`` and ``data-kind`` (and, for a cumulative chart,
``data-yscale`` and ``data-ybottom``, the return at the bottom of its axis) so that a test or a
reader can tell the charts apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.report import figure, series

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Format = Callable[[float], str]

#: Colour-blind-safe qualitative palette (Okabe-Ito); black is kept for benchmarks.
PALETTE: Final = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
BLACK: Final = "#000000"
GREY: Final = "#b0b0b0"
MISSING: Final = "#d9d9d9"
#: A series whose wealth spans more than this ratio (max / min) is drawn on a log scale.
LOG_SPAN: Final = 10.0
#: Cells above which a heatmap is drawn as one image instead of one vector path per cell.
VECTOR_CELLS: Final = 2500
#: Cells up to which each heatmap cell shows its value.
ANNOTATED_CELLS: Final = 400
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


@dataclass(frozen=True)
class Line:
    """One cumulative-return curve: ``growth`` (dates -> wealth - 1). ``color`` None draws it
    grey, as context; ``fill`` shades its underwater area."""

    name: str
    growth: pd.Series
    color: str | None = None
    dashed: bool = False
    fill: bool = False


@dataclass(frozen=True)
class Marker:
    """A vertical line at ``value`` on a histogram (a median, a VaR level), named in the
    legend."""

    value: float
    label: str
    color: str = "#D55E00"
    dashed: bool = False


# --------------------------------------------------------------------------------------------
# Cumulative return and drawdown


def growth_span(lines: Sequence[Line]) -> float:
    """Largest over smallest wealth (``1 + growth``) of all the lines; inf when some wealth is
    0 or below (a total loss: no log scale can show it), NaN with no data."""
    values = np.concatenate(
        [1.0 + line.growth.to_numpy(dtype=np.float64) for line in lines] or [np.zeros(0)]
    )
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan
    low = float(values.min())
    return math.inf if low <= 0 else float(values.max()) / low


def log_scale(lines: Sequence[Line]) -> bool:
    """True when the lines' wealth spans more than :data:`LOG_SPAN` times and stays positive:
    one +4,800% curve then no longer flattens the others."""
    span = growth_span(lines)
    return math.isfinite(span) and span > LOG_SPAN


def _draw_lines(
    ax: Axes,
    lines: Sequence[Line],
    values: Callable[[Line], pd.Series],
    *,
    legend: bool,
    stress_filled: bool = False,
) -> None:
    """Grey lines underneath, then the coloured ones; ``stress_filled`` draws the coloured lines
    that are not ``fill`` thin and faint (an underwater panel's subject stands out)."""
    from matplotlib.lines import Line2D

    context = [line for line in lines if line.color is None]
    for line in context:  # grey first, underneath
        y = values(line)
        ax.plot(
            y.index,
            y.to_numpy(dtype=np.float64),
            color=GREY,
            linewidth=0.9,
            alpha=0.8,
            gid="fb-context-line",
        )
    for line in lines:
        if line.color is None:
            continue
        y = values(line)
        faint = stress_filled and not line.fill
        ax.plot(
            y.index,
            y.to_numpy(dtype=np.float64),
            color=line.color,
            linewidth=0.8 if faint else 1.7,
            alpha=0.55 if faint else 1.0,
            linestyle="--" if line.dashed else "-",
            label=line.name,
            gid="fb-line",
        )
    if not legend:
        return
    handles, labels = ax.get_legend_handles_labels()
    if context:
        handles.append(Line2D([], [], color=GREY, linewidth=0.9))
        labels.append(f"{len(context)} other{'s' if len(context) > 1 else ''} (grey)")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def cumulative_chart(
    lines: Sequence[Line],
    *,
    title: str,
    underwater: bool = True,
    width: float = 7.6,
    height: float = 4.6,
) -> str:
    """Cumulative return of each line over time, and (``underwater``) each line's drawdown
    from its running peak in a panel beneath.

    The return axis never goes below -100%; when the wealth spans more than :data:`LOG_SPAN`
    times (:func:`log_scale`) it is drawn on a log scale of wealth, labelled as returns.
    Lines without a colour are drawn thin and grey, and counted as one legend entry."""
    logarithmic = log_scale(lines)
    with figure.style(f"cumulative {title}"):
        fig = figure.new_figure(width, height)
        if underwater:
            top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.2))
        else:
            top, bottom = fig.subplots(), None
        top.set_gid("fb-cumulative")
        if logarithmic:
            from matplotlib.ticker import LogLocator, NullFormatter

            _draw_lines(top, lines, lambda line: 1.0 + line.growth, legend=True)
            top.set_yscale("log")
            # 1-2-5 ticks over a few decades; beyond, one tick per decade stays legible.
            subs = (1.0, 2.0, 5.0) if growth_span(lines) < 1e3 else (1.0,)
            top.yaxis.set_major_locator(LogLocator(base=10.0, subs=subs))
            top.yaxis.set_minor_formatter(NullFormatter())
            figure.percent_axis(top, wealth=True)
            top.set_ylabel("cumulative return (log scale of wealth)")
        else:
            _draw_lines(top, lines, lambda line: line.growth, legend=True)
            low, high = top.get_ylim()
            top.set_ylim(max(low, -1.0), high)  # a return cannot go below -100%
            figure.percent_axis(top)
            top.set_ylabel("cumulative return")
        top.axhline(1.0 if logarithmic else 0.0, color="#555555", linewidth=0.7)
        top.set_title(title, loc="left")
        if bottom is not None:
            bottom.set_gid("fb-underwater")

            def underwater_of(line: Line) -> pd.Series:
                return series.drawdown(line.growth.to_frame()).iloc[:, 0]

            _draw_lines(bottom, lines, underwater_of, legend=False, stress_filled=True)
            for line in lines:
                if line.fill:
                    dd = underwater_of(line)
                    bottom.fill_between(
                        dd.index, dd.to_numpy(dtype=np.float64), 0.0, color=line.color or GREY,
                        alpha=0.25, linewidth=0,
                    )  # fmt: skip
            low, _ = bottom.get_ylim()
            bottom.set_ylim(max(low, -1.0), 0.0)
            figure.percent_axis(bottom)
            bottom.set_ylabel("drawdown")
            figure.date_axis(bottom)
        else:
            figure.date_axis(top)
        low = top.get_ylim()[0] - (1.0 if logarithmic else 0.0)
        return figure.to_svg(
            fig,
            title=title,
            kind="cumulative",
            yscale="log" if logarithmic else "linear",
            ybottom=f"{low:.6g}",
        )


def rolling_sharpe_chart(
    lines: Sequence[tuple[str, pd.Series, str]],
    *,
    title: str,
    width: float = 7.6,
    height: float = 2.8,
) -> str:
    """Rolling Sharpe ratios over time: ``(name, series, colour)``; a zero line."""
    with figure.style(f"rolling {title}"):
        fig = figure.new_figure(width, height)
        ax = fig.subplots()
        ax.set_gid("fb-rolling-sharpe")
        for i, (name, values, color) in enumerate(lines):
            ax.plot(
                values.index,
                values.to_numpy(dtype=np.float64),
                color=color,
                linewidth=1.5,
                linestyle="-" if i == 0 else "--",
                label=name,
            )
        ax.axhline(0.0, color="#555555", linewidth=0.7)
        ax.set_ylabel("Sharpe ratio (annualized)")
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        figure.date_axis(ax)
        return figure.to_svg(fig, title=title, kind="rolling-sharpe")


# --------------------------------------------------------------------------------------------
# Heatmaps


def _diverging_limit(values: npt.NDArray[np.float64]) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if len(finite) and finite.max() > 0 else 1.0


def _cells(ax: Axes, values: npt.NDArray[np.float64], limit: float, value_format: Format) -> Any:
    """A diverging grid centred at 0 (red below, blue above), NaN left grey, values written
    in the cells when there are few."""
    rows, cols = values.shape
    mesh = ax.pcolormesh(
        np.arange(cols + 1) - 0.5,
        np.arange(rows + 1) - 0.5,
        np.ma.masked_invalid(values),
        cmap="RdBu",
        vmin=-limit,
        vmax=limit,
        edgecolors="#ffffff" if rows * cols <= ANNOTATED_CELLS else "face",
        linewidth=0.5,
        rasterized=rows * cols > VECTOR_CELLS,
    )
    ax.set_facecolor(MISSING)
    ax.grid(False)
    if rows * cols <= ANNOTATED_CELLS:
        for r in range(rows):
            for c in range(cols):
                v = float(values[r, c])
                if math.isfinite(v):
                    ink = "#ffffff" if abs(v) > 0.6 * limit else "#222222"
                    ax.text(c, r, value_format(v), ha="center", va="center", color=ink, fontsize=7)
    return mesh


def monthly_heatmap(monthly: pd.DataFrame, *, title: str, width: float = 7.6) -> str:
    """Monthly returns (rows: years, columns: months 1..12) as a year x month grid coloured
    around 0, each cell's value in %, a colour bar in %; grey where there is no month."""
    values = monthly.reindex(columns=range(1, 13)).to_numpy(dtype=np.float64) * 100.0
    height = 1.3 + 0.32 * max(len(monthly), 1)
    with figure.style(f"monthly {title}"):
        fig = figure.new_figure(width, height)
        ax = fig.subplots()
        ax.set_gid("fb-monthly")
        mesh = _cells(ax, values, _diverging_limit(values), lambda v: f"{v:.1f}")
        ax.set_xticks(range(12), _MONTHS)
        ax.set_yticks(range(len(monthly)), [str(y) for y in monthly.index])
        ax.invert_yaxis()
        ax.tick_params(length=0)
        ax.set_title(title, loc="left")
        bar = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.04)
        bar.set_label("monthly return (%)")
        if np.isnan(values).any():
            from matplotlib.patches import Patch

            ax.legend(
                [Patch(facecolor=MISSING)],
                ["grey: no data that month"],
                loc="upper left",
                bbox_to_anchor=(0.0, -0.08 - 0.6 / height),
                ncols=1,
            )
        return figure.to_svg(fig, title=title, kind="monthly-heatmap")


def parameter_heatmap(
    grid: pd.DataFrame,
    *,
    title: str,
    value_label: str,
    missing_label: str,
    best_label: str,
    value_format: Format = lambda v: f"{v:.2f}",
    width: float = 6.4,
) -> str:
    """A sweep's value over two parameters (rows: the y parameter's values, columns: the x
    parameter's; the index and column names are the axis titles), coloured around 0 with a
    colour bar titled ``value_label``. Grey cells (NaN) and the outlined best cell are named in
    the legend: ``missing_label`` says why a cell has no value, ``best_label`` what the best
    is."""
    from matplotlib.patches import Patch, Rectangle

    values = grid.to_numpy(dtype=np.float64)
    rows, cols = values.shape
    with figure.style(f"parameters {title}"):
        fig = figure.new_figure(width, min(2.2 + 0.3 * rows, 7.0))
        ax = fig.subplots()
        ax.set_gid("fb-parameter-heatmap")
        mesh = _cells(ax, values, _diverging_limit(values), value_format)
        step_x, step_y = max(1, math.ceil(cols / 12)), max(1, math.ceil(rows / 16))
        ax.set_xticks(range(0, cols, step_x), [_label(v) for v in grid.columns[::step_x]])
        ax.set_yticks(range(0, rows, step_y), [_label(v) for v in grid.index[::step_y]])
        ax.set_xlabel(str(grid.columns.name or ""))
        ax.set_ylabel(str(grid.index.name or ""))
        ax.tick_params(length=0)
        ax.set_title(title, loc="left")
        bar = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.05)
        bar.set_label(value_label)
        handles, labels = [], []
        if np.isfinite(values).any():
            r, c = np.unravel_index(int(np.nanargmax(values)), values.shape)
            ax.add_patch(
                Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor=BLACK, linewidth=2.0)
            )
            handles.append(Patch(fill=False, edgecolor=BLACK, linewidth=2.0))
            labels.append(best_label)
        if np.isnan(values).any():
            handles.append(Patch(facecolor=MISSING))
            labels.append(f"grey: {missing_label}")
        if handles:
            fig.legend(handles, labels, loc="outside lower left", ncols=1)
        return figure.to_svg(fig, title=title, kind="parameter-heatmap")


def _label(value: object) -> str:
    try:
        return f"{float(str(value)):g}"
    except ValueError:
        return str(value)


# --------------------------------------------------------------------------------------------
# Distributions and bars


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
    each with its value written at its end; a NaN has a label and no bar."""
    data = np.asarray(values, dtype=np.float64)
    with figure.style(f"bars {title}"):
        fig = figure.new_figure(width, 1.2 + 0.24 * max(len(labels), 1))
        ax = fig.subplots()
        ax.set_gid("fb-bars")
        position = np.arange(len(labels))
        drawn = np.nan_to_num(data, nan=0.0)
        colors = [PALETTE[0] if v >= 0 else PALETTE[1] for v in drawn]
        ax.barh(position, drawn, color=colors, height=0.7)
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
        ax.set_xlabel(value_label)
        ax.set_title(title, loc="left")
        return figure.to_svg(fig, title=title, kind="bars")
