"""Lines over dates: cumulative return with its drawdown (log scale past 10x, never below
-100%), the rolling Sharpe ratio, and lines with marked days (a VaR backtest)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from analytics.report import figure, series
from analytics.report.plots.common import GREY, Format, compact

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: A series whose wealth spans more than this ratio (max / min) is drawn on a log scale.
LOG_SPAN: Final = 10.0


@dataclass(frozen=True)
class Line:
    """One cumulative-return curve: ``growth`` (dates -> wealth - 1). ``color`` None draws it
    grey, as context; ``fill`` shades its underwater area."""

    name: str
    growth: pd.Series
    color: str | None = None
    dashed: bool = False
    fill: bool = False


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


@dataclass(frozen=True)
class Trace:
    """One series of :func:`dated_chart` (``values`` indexed by dates): a line, or dots on
    marked days (``dots``, such as a VaR backtest's exceptions)."""

    name: str
    values: pd.Series
    color: str
    dashed: bool = False
    dots: bool = False


def dated_chart(
    traces: Sequence[Trace],
    *,
    title: str,
    y_label: str,
    value_format: Format = compact,
    width: float = 5.6,
    height: float = 3.2,
) -> str:
    """Lines and dots over dates, named in the legend, with a zero line when the values
    cross 0; NaN breaks a line, a NaN dot is not drawn."""
    with figure.style(f"dated {title}"):
        fig = figure.new_figure(width, height)
        ax = fig.subplots()
        ax.set_gid("fb-dated")
        low, high = math.inf, -math.inf
        for t in traces:
            y = t.values.to_numpy(dtype=np.float64)
            finite = y[np.isfinite(y)]
            if len(finite):
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
            if t.dots:
                ok = np.isfinite(y)
                ax.plot(
                    t.values.index[ok], y[ok], linestyle="none", marker="o", markersize=4,
                    color=t.color, label=t.name, gid="fb-points", zorder=3,
                )  # fmt: skip
            else:
                ax.plot(
                    t.values.index, y, color=t.color, linewidth=1.2,
                    linestyle="--" if t.dashed else "-", label=t.name, gid="fb-line",
                )  # fmt: skip
        if low < 0 < high:
            ax.axhline(0.0, color="#555555", linewidth=0.7)
        from matplotlib.ticker import FuncFormatter

        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: value_format(v)))
        figure.date_axis(ax)
        ax.set_ylabel(y_label)
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return figure.to_svg(fig, title=title, kind="dated")
