"""Heatmaps coloured around 0 with a colour bar: monthly returns (year x month) and a sweep's
value over two parameters (grey and best cells named in the legend)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.report import figure
from analytics.report.plots.common import BLACK, MISSING, Format

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Cells above which a heatmap is drawn as one image instead of one vector path per cell.
VECTOR_CELLS: Final = 2500
#: Cells up to which each heatmap cell shows its value.
ANNOTATED_CELLS: Final = 400
_MONTHS: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip


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
