"""The report's charts, drawn with matplotlib and inlined as ``<svg>`` strings.

Each function returns one ``<svg>`` element rendered by :func:`analytics.report.figure.to_svg`
(compact, deterministic, no script and no URL); long lines are simplified by matplotlib's path
simplification. matplotlib is imported inside the functions: the command line starts without it.
The root element carries ``class="chart"`` and ``data-kind`` (and, for a cumulative chart,
``data-yscale`` and ``data-ybottom``, the return at the bottom of its axis) so that a test or a
reader can tell the charts apart; an artist drawn with ``gid="fb-NAME"`` is a ``<g
class="NAME">`` (a line, a bar, a box, a marker, the dots of a scatter).

The charts live in three modules by family (:mod:`.curves`, :mod:`.heatmaps`,
:mod:`.distributions`); a report section imports them from here.
"""

from analytics.report.plots.common import BLACK, GREY, MISSING, PALETTE, Format, compact
from analytics.report.plots.curves import (
    LOG_SPAN,
    Line,
    Trace,
    cumulative_chart,
    dated_chart,
    growth_span,
    log_scale,
    rolling_sharpe_chart,
)
from analytics.report.plots.distributions import (
    Marker,
    Points,
    bar_chart,
    box_plot,
    box_stats,
    histogram,
    scatter,
)
from analytics.report.plots.heatmaps import (
    ANNOTATED_CELLS,
    VECTOR_CELLS,
    monthly_heatmap,
    parameter_heatmap,
)

__all__ = [
    "ANNOTATED_CELLS",
    "BLACK",
    "GREY",
    "LOG_SPAN",
    "MISSING",
    "PALETTE",
    "VECTOR_CELLS",
    "Format",
    "Line",
    "Marker",
    "Points",
    "Trace",
    "bar_chart",
    "box_plot",
    "box_stats",
    "compact",
    "cumulative_chart",
    "dated_chart",
    "growth_span",
    "histogram",
    "log_scale",
    "monthly_heatmap",
    "parameter_heatmap",
    "rolling_sharpe_chart",
    "scatter",
]
