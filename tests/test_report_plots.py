"""The report's matplotlib charts and the series behind them, without a cluster: axes (never
below -100%, log scale past 10x), legends, colour bars, compact deterministic SVG; monthly
returns and the rolling Sharpe ratio by hand or against :mod:`analytics.metrics`; the run
section's split of the parameters into set and default."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from analytics.report import plots, series
from analytics.report.page import split_parameters
from analytics.stats import metrics


def _svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # well-formed XML, or this raises


def _group(root: ET.Element, name: str) -> ET.Element:
    found = [g for g in root.iter("g") if g.get("class") == name]
    assert len(found) == 1, (name, len(found))
    return found[0]


def _texts(element: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in element.iter("text")]


def y_ticks(root: ET.Element, axes: str) -> list[float]:
    """The y tick labels (percent) of the axes with class ``axes``, as fractions."""
    labels = _texts(_group(_group(root, axes), "y-axis"))
    return [float(t.rstrip("%").replace(",", "")) / 100 for t in labels if t.endswith("%")]


def _days(n: int, start: str = "2024-01-02") -> pd.DatetimeIndex:
    return pd.bdate_range(start, periods=n)


def test_a_total_loss_keeps_the_return_axis_at_or_above_minus_100() -> None:
    # Wealth 1 -> 0 (a -100% total loss): no log scale can show 0, so the axis is linear, and
    # matplotlib's 5% margin would start it at -106.5% (-1 - 0.05 x 1.3); it stops at -100%.
    days = _days(50)
    growth = pd.Series(np.linspace(0.0, -1.0, 50), index=days)
    other = pd.Series(np.linspace(0.0, 0.3, 50), index=days)
    lines = [plots.Line("ruin", growth, plots.PALETTE[0]), plots.Line("up", other, plots.BLACK)]
    assert plots.growth_span(lines) == math.inf and not plots.log_scale(lines)
    chart = _svg(plots.cumulative_chart(lines, title="c"))
    assert chart.get("data-yscale") == "linear"
    assert float(chart.get("data-ybottom", "nan")) == pytest.approx(-1.0)
    cumulative = y_ticks(chart, "cumulative")
    # Ticks every 20%: -100% at the bottom, +20% the last below the top (0.3 + 6.5% margin).
    assert min(cumulative) == pytest.approx(-1.0) and max(cumulative) == pytest.approx(0.2)
    underwater = y_ticks(chart, "underwater")
    assert min(underwater) == pytest.approx(-1.0) and max(underwater) == 0.0


def test_log_scale_only_when_wealth_spans_more_than_ten_times() -> None:
    days = _days(100)
    # Wealth 1 -> 49 (+4,800%) against one at 0.8 (-20%): span 49 / 0.8 = 61.25 > 10.
    boom = pd.Series(np.geomspace(1.0, 49.0, 100) - 1.0, index=days)
    dip = pd.Series(np.linspace(0.0, -0.2, 100), index=days)
    lines = [plots.Line("boom", boom, plots.PALETTE[0]), plots.Line("dip", dip, plots.BLACK)]
    assert plots.growth_span(lines) == pytest.approx(49.0 / 0.8)
    chart = _svg(plots.cumulative_chart(lines, title="c"))
    assert chart.get("data-yscale") == "log"
    # A log axis of wealth reaches 0 (-100%) never: its margin below 0.8 is a ratio,
    # 0.8 / 61.25^0.05 = 0.651, so -34.9%.
    assert float(chart.get("data-ybottom", "nan")) == pytest.approx(
        0.8 / (49 / 0.8) ** 0.05 - 1, rel=1e-5
    )
    assert any("log scale" in t for t in _texts(_group(chart, "cumulative")))
    ticks = y_ticks(chart, "cumulative")
    # Wealth 1, 2, 5, 10, 20 (and 0.5 below) as returns: 0%, +100%, +400%, +900%, +1,900%.
    assert {0.0, 1.0, 4.0, 9.0, 19.0} <= set(ticks) and min(ticks) >= -1.0
    # Wealth 0.5 -> 4.75: span 9.5, not more than 10: linear.
    calm = [plots.Line("calm", pd.Series(np.linspace(-0.5, 3.75, 100), index=days), "#000")]
    assert plots.growth_span(calm) == pytest.approx(9.5)
    assert _svg(plots.cumulative_chart(calm, title="c")).get("data-yscale") == "linear"
    # By hand: wealth 0.5, 1, 6 -> 6 / 0.5 = 12.
    three = [plots.Line("x", pd.Series([-0.5, 0.0, 5.0], index=_days(3)))]
    assert plots.growth_span(three) == pytest.approx(12.0)


def test_many_lines_highlight_a_few_and_count_the_grey_ones_once() -> None:
    days = _days(30)
    lines = [plots.Line("top", pd.Series(np.linspace(0, 0.2, 30), index=days), "#0072B2")]
    lines += [
        plots.Line(f"#{i}", pd.Series(np.linspace(0, 0.02 * i, 30), index=days))
        for i in range(2, 7)
    ]
    chart = _svg(plots.cumulative_chart(lines, title="c"))
    top = _group(chart, "cumulative")
    assert len([g for g in top.iter("g") if g.get("class") == "line"]) == 1
    assert len([g for g in top.iter("g") if g.get("class") == "context-line"]) == 5
    legend = _texts(top)
    assert "top" in legend and "5 others (grey)" in legend and "#3" not in legend


def test_svg_is_inline_compact_and_deterministic() -> None:
    days = _days(260)
    rng = np.random.default_rng(5)
    walk = pd.Series(np.cumprod(1 + rng.normal(0, 0.01, 260)) - 1, index=days)
    one = plots.cumulative_chart([plots.Line("a", walk, plots.BLACK)], title="one")
    again = plots.cumulative_chart([plots.Line("a", walk, plots.BLACK)], title="one")
    assert one == again  # no date, a fixed hash salt
    other = plots.histogram(walk.to_numpy(), title="two", x_label="x", y_label="days")
    for markup in (one, other):
        assert markup.startswith('<svg class="chart"') and markup.endswith("</svg>")
        assert not re.search(r"<\?xml|DOCTYPE|<metadata|<script|https?://|xlink:", markup)
        # Text is text, not glyph outlines.
        assert "<text" in markup and 'id="DejaVuSans' not in markup
        # Coordinates carry one decimal at most.
        assert not re.search(r' d="[^"]*\d\.\d\d', markup)
    # Two charts in one page share no id (each is salted by its title).
    ids = re.findall(r' id="([^"]+)"', one) + re.findall(r' id="([^"]+)"', other)
    assert len(ids) == len(set(ids)) > 0


def test_monthly_returns_by_hand_and_their_heatmap() -> None:
    growth = pd.Series(
        [0.0, 0.1, 0.21, -0.01, 0.089],
        index=pd.to_datetime(
            ["2023-12-29", "2024-01-31", "2024-02-15", "2024-02-29", "2025-01-02"]
        ),
    )
    grid = series.monthly_returns(growth)
    # 2023-12: 1.0 / 1.0 - 1 = 0; 2024-01: 1.1 / 1.0 - 1 = 0.10; 2024-02: last wealth 0.99 over
    # January's 1.1 = -0.10; 2025-01: 1.089 / 0.99 - 1 = 0.10 (March..December 2024 empty).
    assert list(grid.index) == [2023, 2024, 2025] and list(grid.columns) == list(range(1, 13))
    assert grid.loc[2023, 12] == 0.0
    assert grid.loc[2024, 1] == pytest.approx(0.10) and grid.loc[2024, 2] == pytest.approx(-0.10)
    assert grid.loc[2025, 1] == pytest.approx(0.10)
    assert int(grid.notna().sum().sum()) == 4
    chart = _svg(plots.monthly_heatmap(grid, title="m"))
    texts = _texts(_group(chart, "monthly"))
    assert sorted(t for t in texts if re.fullmatch(r"-?\d+\.\d", t)) == [
        "-10.0",
        "0.0",
        "10.0",
        "10.0",
    ]
    assert "grey: no data that month" in texts
    assert "monthly return (%)" in _texts(chart)  # the colour bar's title, with its unit


def test_rolling_sharpe_against_the_metric_kernel() -> None:
    rng = np.random.default_rng(11)
    returns = pd.Series(rng.normal(0.0005, 0.01, 300), index=_days(300))
    rolling = series.rolling_sharpe(returns)
    window = series.ROLLING_WINDOW
    assert rolling.iloc[: window - 1].isna().all()
    for end in (window - 1, 200, 299):
        expected = metrics.sharpe_ratio(
            returns.iloc[end - window + 1 : end + 1].to_numpy(), periods_per_year=252
        )
        assert rolling.iloc[end] == pytest.approx(float(expected), rel=1e-9)
    flat = series.rolling_sharpe(pd.Series(np.full(130, 0.001)))
    assert flat.isna().all()  # std 0: undefined, not inf


def test_parameter_heatmap_explains_grey_and_best_cells() -> None:
    grid = pd.DataFrame(
        [[0.5, math.nan, -0.2], [1.4, 0.3, math.nan]],
        index=pd.Index([30, 40], name="slow"),
        columns=pd.Index([5, 10, 40], name="fast"),
    )
    chart = _svg(
        plots.parameter_heatmap(
            grid,
            title="p",
            value_label="Sharpe ratio (annualized)",
            missing_label="fast >= slow",
            best_label="outlined: the best, fast=5 slow=40",
        )
    )
    texts = _texts(chart)
    assert "Sharpe ratio (annualized)" in texts  # the colour bar
    assert "grey: fast >= slow" in texts and "outlined: the best, fast=5 slow=40" in texts
    values = [
        t for t in _texts(_group(chart, "parameter-heatmap")) if re.fullmatch(r"-?\d\.\d\d", t)
    ]
    assert sorted(values) == ["-0.20", "0.30", "0.50", "1.40"]  # the four finite cells
    assert {"slow", "fast"} <= set(texts)


def test_histogram_bars_and_named_markers() -> None:
    values = np.asarray([-2.0, -1.0, -1.0, 0.0, 0.5, 1.0, math.nan])
    chart = plots.histogram(
        values,
        title="h",
        x_label="P&L",
        y_label="scenarios",
        bins=4,
        markers=[plots.Marker(-1.5, "VaR 95%"), plots.Marker(-1.8, "ES 95%", dashed=True)],
        value_format=lambda v: f"{v:.1f}",
    )
    # Four bins of the six finite values: one bar each (fill #7fa7c9).
    assert chart.count("fill: #7fa7c9") == 4
    texts = _texts(_svg(chart))
    assert "VaR 95% -1.5" in texts and "ES 95% -1.8" in texts


def test_bar_chart_writes_each_value_and_draws_no_bar_for_nan() -> None:
    chart = plots.bar_chart(["a", "b", "c"], [1.25, -0.5, math.nan], title="b", value_label="x")
    texts = _texts(_svg(chart))
    assert {"1.25", "-0.50", "n/a"} <= set(texts)
    # One bar each for a and b; c (NaN) has its label and no bar.
    bars = [g for g in _svg(chart).iter("g") if g.get("class") == "bar"]
    assert len(bars) == 2
    assert chart.count(f"fill: {plots.PALETTE[0].lower()}") == 1  # a is positive
    assert chart.count(f"fill: {plots.PALETTE[1].lower()}") == 1  # b is negative


def test_split_parameters_into_set_and_default() -> None:
    params = {
        "input": "/data",
        "workers": None,  # not given, no default known
        "top": 20,  # the default
        "fees_bps": 5.0,  # set
        "grid": ["fast=5:20:5"],  # a list in the manifest, a tuple default: the same when equal
        "on_bad_rows": "fail",
        "start": "2024-01-02",
    }
    defaults = {"top": 20, "fees_bps": 0.0, "grid": ("fast=5:20:5",), "on_bad_rows": "fail"}
    chosen, default = split_parameters(params, defaults)
    assert [k for k, _ in chosen] == ["fees_bps", "input", "start"]
    assert [k for k, _ in default] == ["grid", "on_bad_rows", "top", "workers"]
    # Without defaults, only what is None counts as not set.
    chosen, default = split_parameters(params, None)
    assert [k for k, _ in default] == ["workers"]


def test_importing_the_report_sections_does_not_import_matplotlib() -> None:
    # The command line imports job packages (and may import their report sections) when it
    # starts: matplotlib (about 0.5 s) must wait until a chart is drawn.
    import subprocess
    import sys

    probe = (
        "import sys, analytics.report.plots, analytics.report.figure, "
        "analytics.jobs.market_performance.report, analytics.jobs.backtest.report, "
        "analytics.jobs.risk.report, analytics.jobs.tca.report, "
        "analytics.jobs.portfolio_backtest.report; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


def _x_span(path: ET.Element) -> float:
    """Width (in the SVG's points) of a path: its largest x less its smallest."""
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", path.get("d", ""))]
    xs = numbers[0::2]
    return max(xs) - min(xs)


def test_box_stats_by_hand_and_one_box_per_group_with_values() -> None:
    # 0, 1, ..., 100: numpy's linear percentile q of 101 evenly spaced values is 100 q exactly.
    stats = plots.box_stats(np.arange(101.0))
    assert stats == {
        "n": 101.0, "whislo": 5.0, "q1": 25.0, "med": 50.0, "q3": 75.0, "whishi": 95.0,
        "mean": 50.0,
    }  # fmt: skip
    # 1, 2, 3 (and a NaN left out): positions (n-1) q = 0.5 -> 1.5; 1.5 -> 2.5; 0.1 -> 1.1.
    small = plots.box_stats([1.0, 2.0, 3.0, math.nan])
    assert (small["n"], small["q1"], small["q3"], small["whislo"]) == (3.0, 1.5, 2.5, 1.1)
    assert plots.box_stats([math.nan]) == {"n": 0.0}
    chart = _svg(
        plots.box_plot(
            [("a", np.arange(101.0)), ("b", [math.nan]), ("c", [1.0, 2.0, 3.0])],
            title="b",
            value_label="bps",
        )
    )
    boxes = [g for g in chart.iter("g") if g.get("class") == "box"]
    means = [g for g in chart.iter("g") if g.get("class") == "mean"]
    assert len(boxes) == 2 and len(means) == 2  # b has no finite value: a label, no box
    assert {"a (101)", "b (0)", "c (3)"} <= set(_texts(chart))
    # One scale for both boxes: a's box (25..75) is 50 times as wide as c's (1.5..2.5).
    widths = [_x_span(next(b.iter("path"))) for b in boxes]
    assert widths[0] / widths[1] == pytest.approx(50.0, rel=0.06)  # 0.1 pt rounding


def _classed(root: ET.Element, name: str) -> list[ET.Element]:
    return [g for g in root.iter("g") if g.get("class") == name]


def _dots(chart: ET.Element) -> list[int]:
    """The number of dots (``<use>`` of one marker) in each group of points."""
    return [len(list(g.iter("use"))) for g in _classed(chart, "points")]


def test_scatter_draws_each_finite_pair_and_thins_past_the_limit() -> None:
    groups = [
        plots.Points("x", [1.0, 2.0, math.nan, 4.0], [1.0, 2.0, 3.0, math.nan]),
        plots.Points("y", np.arange(25.0), np.arange(25.0)),
    ]
    chart = _svg(plots.scatter(groups, title="s", x_label="x", y_label="y"))
    assert _dots(chart) == [2, 25]  # (1, 1) and (2, 2); NaN in x or y is left out
    # Each group's dots share one style, given once by their group (fill inherits).
    for group, color in zip(_classed(chart, "points"), plots.PALETTE, strict=False):
        (holder,) = [g for g in group.iter("g") if g.find("use") is not None]
        assert f"fill: {color.lower()}" in holder.get("style", "")
        assert all(use.get("style") is None for use in holder.iter("use"))
    assert "27 points" in _texts(chart)
    # 27 pairs, at most 10: stride ceil(27 / 10) = 3; x keeps 1 of its 2, y 0, 3, ..., 24 (9).
    thin = _svg(plots.scatter(groups, title="s", x_label="x", y_label="y", max_points=10))
    assert _dots(thin) == [1, 9]
    assert "1 in 3 of 27 points" in _texts(thin)


def test_dated_chart_lines_and_a_dot_per_marked_day() -> None:
    days = _days(20)
    pnl = pd.Series(np.linspace(-1.0, 1.0, 20), index=days)
    var = pd.Series(np.full(20, 0.5), index=days)
    hit = pnl < -var  # -1.0 .. -0.579: the first 5 days (step 2/19 = 0.105)
    chart = _svg(
        plots.dated_chart(
            [
                plots.Trace("daily P&L", pnl, plots.PALETTE[0]),
                plots.Trace("-VaR", -var, plots.PALETTE[1]),
                plots.Trace("5 exceptions", pnl[hit], plots.BLACK, dots=True),
            ],
            title="d",
            y_label="P&L",
        )
    )
    assert int(hit.sum()) == 5
    assert len([g for g in chart.iter("g") if g.get("class") == "line"]) == 2
    assert _dots(chart) == [5]
    assert {"daily P&L", "-VaR", "5 exceptions"} <= set(_texts(chart))
    assert chart.get("data-kind") == "dated"
