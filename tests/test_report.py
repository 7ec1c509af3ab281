"""The HTML report: SVG charts by hand, the data behind them against the jobs' own outputs, and
the reports of real runs opened in headless Chromium with the network cut off.

Screenshots go to ``test-artifacts/`` (gitignored) at the repository root.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
import s3fs

from analytics.jobs.backtest import report as backtest_report
from analytics.jobs.market_performance import report as mp_report
from analytics.jobs.risk import report as risk_report
from analytics.report import charts, svg
from analytics.run.committed import CommittedRun as RunView
from tests.browser import ink, network_is_cut_off, render
from tests.conftest import run_cli

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
AS_OF = "2024-03-27"


# --------------------------------------------------------------------------------------------
# Charts


def test_nice_ticks_and_scale_by_hand() -> None:
    # Range 0..0.37 in ~5 steps: raw step 0.074 -> the next nice step is 0.1 (1 x 10^-1).
    assert svg.nice_ticks(0.0, 0.37) == [0.0, 0.1, 0.2, 0.3, 0.4]
    # -0.52..0.18: raw 0.14 -> 0.2 (2 x 10^-1); floor(-2.6) = -3, ceil(0.9) = 1.
    assert svg.nice_ticks(-0.52, 0.18) == [-0.6, -0.4, -0.2, 0.0, 0.2]
    # 0..1234 in 5: raw 246.8 -> 250 (2.5 x 10^2).
    assert svg.nice_ticks(0, 1234) == [0, 250, 500, 750, 1000, 1250]
    assert svg.nice_ticks(3.0, 3.0)[0] < 3.0 < svg.nice_ticks(3.0, 3.0)[-1]
    scale = svg.Scale(0.0, 10.0, 100.0, 200.0)
    assert (scale(0.0), scale(2.5), scale(10.0)) == (100.0, 125.0, 200.0)
    inverted = svg.Scale(-1.0, 1.0, 300.0, 100.0)  # y grows downwards on screen
    assert (inverted(-1.0), inverted(0.0), inverted(1.0)) == (300.0, 200.0, 100.0)
    assert svg.pct(0.1234) == "12.3%" and svg.num(1_234_567) == "1.23M"
    # Five months of days: monthly ticks at each first of the month within the range.
    ticks = svg.date_ticks(
        svg.day_number(dt.date(2023, 10, 2)), svg.day_number(dt.date(2024, 3, 1))
    )
    assert [label for _, label in ticks] == ["2023-11", "2023-12", "2024-01", "2024-02", "2024-03"]


def _svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # well-formed XML, or this raises


def test_line_chart_breaks_at_nan_and_keeps_every_point() -> None:
    x = [0.0, 1.0, 2.0, 3.0, 4.0]
    chart = _svg(
        charts.line_chart(
            [svg.Series("a", x, [0.0, 0.1, math.nan, 0.3, 0.2])], title="t", dates=False
        )
    )
    paths = [p.get("d", "") for p in chart.iter("path")]
    assert len(paths) == 1
    # Two segments: M L (points 0, 1), then M L L (points 3, 4 after the NaN).
    assert re.findall(r"[ML]", paths[0]) == ["M", "L", "M", "L"]
    many = np.linspace(0, 1, 5000)
    thinned = _svg(
        charts.line_chart([svg.Series("b", many, np.sin(many * 40))], title="t", dates=False)
    )
    points = len(re.findall(r"[ML]", next(thinned.iter("path")).get("d", "")))
    # At most first, min, max and last of each of the 656 pixel columns, and fewer than 5000.
    assert points <= 4 * 657 and points < 5000


def test_histogram_bars_are_numpys_counts_and_markers_are_drawn() -> None:
    rng = np.random.default_rng(3)
    values = rng.standard_normal(400)
    markers = [svg.Marker(-1.64, "VaR"), svg.Marker(-2.06, "ES", dashed=True)]
    chart = _svg(charts.histogram(values, title="h", markers=markers, bins=20))
    bars = [r for r in chart.iter("rect") if r.get("class") == "bar"]
    lo, hi = min(values.min(), -2.06), values.max()
    counts, _ = np.histogram(values, bins=20, range=(lo, hi))
    titles = [int(b.findtext("title", "").rsplit(": ", 1)[1]) for b in bars]
    assert titles == [int(c) for c in counts if c]
    heights = np.asarray([float(b.get("height", 0)) for b in bars])
    # Heights are proportional to counts (one pixel scale for the whole chart).
    assert np.allclose(heights / heights.max(), np.asarray(titles) / max(titles), atol=0.01)
    assert len([line for line in chart.iter("line") if line.get("class") == "marker"]) == 2


def test_bar_heatmap_and_scatter_draw_every_value() -> None:
    bars = _svg(charts.bar_chart(["a", "b", "c"], [3.0, -1.0, math.nan], title="b"))
    drawn = [r for r in bars.iter("rect") if r.get("class") == "bar"]
    assert len(drawn) == 2  # NaN has a label and no bar
    widths = [float(r.get("width", 0)) for r in drawn]
    assert widths[0] == pytest.approx(3 * widths[1], rel=1e-3)  # |3| vs |-1| on one scale
    grid = _svg(
        charts.heatmap(
            ["5", "10", "20"], ["50", "100"], [[1.0, -0.5, math.nan], [0.2, 0.0, 0.8]], title="h"
        )
    )
    cells = [r for r in grid.iter("rect") if r.get("class") == "cell"]
    assert len(cells) == 6
    assert cells[2].get("fill") == "#cccccc"  # NaN is grey
    assert cells[0].get("fill") == "#2166ac"  # the largest value takes the full blue
    points = _svg(
        charts.scatter(
            [svg.Series("x", [1.0, 2.0, math.nan], [1.0, 2.0, 3.0]), svg.Series("y", [3.0], [1.0])],
            title="s",
        )
    )
    assert len(list(points.iter("circle"))) == 3  # the NaN point is left out


# --------------------------------------------------------------------------------------------
# Reports of real runs


@pytest.fixture(scope="module")
def runs(market: Path, scheduler: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reports")
    jobs = {
        "market-performance": ["market-performance"],
        "risk": ["risk", "--as-of", AS_OF],
        "backtest": [
            "backtest",
            "--strategy",
            "sma-cross",
            "--grid",
            "fast=5:20:5",
            "--grid",
            "slow=30:60:10",
            "--top",
            "4",
        ],
        "tca": ["tca"],
        "execution-report": ["execution-report"],
    }
    outputs = {}
    for job, args in jobs.items():
        out = root / job
        result = run_cli(
            [
                *args,
                "--input",
                str(market),
                "--output",
                str(out),
                "--scheduler",
                scheduler,
                "--run-id",
                f"report-{job}",
            ]
        )
        assert result.code == 0, result.stderr
        assert f"{job}: report {out / 'report.html'}" in result.stdout
        outputs[job] = out
    return outputs


class _Refs(HTMLParser):
    """Every attribute that can make a browser fetch something, and every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "data", "poster"):
                self.refs.append(value or "")


def test_reports_are_self_contained(runs: dict[str, Path]) -> None:
    for out in runs.values():
        text = (out / "report.html").read_text()
        assert not re.search(r"https?://|ftp://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE)
        assert "@import" not in text and "url(" not in text
        parser = _Refs()
        parser.feed(text)
        assert all(ref.startswith(("data:", "#")) for ref in parser.refs), parser.refs
        assert "script" not in parser.tags and "iframe" not in parser.tags


def test_reports_render_offline_with_their_charts(runs: dict[str, Path]) -> None:
    assert network_is_cut_off()  # the namespace the browser runs in has no network at all
    ARTIFACTS.mkdir(exist_ok=True)
    expected = {
        # Cumulative returns and drawdowns: 3 best, 3 worst and the benchmark, each a line
        # through every one of its ~123 dates.
        "market-performance": {"svg": 2, "paths": 14, "points": 100},
        # Four portfolios: a histogram (bars, 4 markers), a component-VaR chart and a VaR
        # backtest chart (exceptions as points) each.
        "risk": {"svg": 12, "markers": 16, "bars": 4 * 15},
        # The top 4 equity curves, and a heatmap of 4 fast x 4 slow values.
        "backtest": {"svg": 2, "paths": 4, "cells": 16},
        # A box per broker, a point per order; fill rate and cost bars per broker.
        "tca": {"svg": 2},
        "execution-report": {"svg": 2},
    }
    for job, out in runs.items():
        shot = ARTIFACTS / f"report-{job}.png"
        shot.unlink(missing_ok=True)
        page = render(out / "report.html", shot, height=1800)
        dom = page.dom
        assert dom.count("<svg") == expected[job]["svg"]
        if job == "market-performance":
            lines = re.findall(r'<path d="([^"]+)" fill="none"', dom)
            assert len(lines) == expected[job]["paths"]
            assert all(len(re.findall("[ML]", d)) >= expected[job]["points"] for d in lines)
        elif job == "risk":
            assert dom.count('class="marker"') == expected[job]["markers"]
            assert dom.count('<rect class="bar"') > expected[job]["bars"]
            # One dot per exception of the drawn method and confidence, in every portfolio.
            exceptions = RunView.load(str(out)).table("var_exceptions").to_pandas()
            method, confidence = risk_report.backtest_choice(exceptions)
            drawn = exceptions[
                (exceptions["method"] == method) & (exceptions["confidence"] == confidence)
            ]
            assert dom.count('<circle cx="') == int(drawn["exception"].sum())
            assert "traffic lights" in dom and "Top tail contributors" in dom
        elif job == "backtest":
            assert len(re.findall(r'<path d="M[^"]+" fill="none"', dom)) == expected[job]["paths"]
            assert dom.count('<rect class="cell"') == expected[job]["cells"]
        elif job == "tca":
            orders = RunView.load(str(out)).table("orders").to_pandas()
            finite = np.isfinite(orders["participation"]) & np.isfinite(orders["arrival_cost_bps"])
            assert dom.count("<circle") - dom.count('class="box"') == int(finite.sum())
            assert dom.count('class="box"') == orders["broker"].nunique()
        else:
            brokers = RunView.load(str(out)).table("broker_daily").to_pandas()["broker"]
            assert dom.count('<rect class="bar"') == 2 * brokers.nunique()
        # The screenshot is a page with charts, not a blank one: white is the background, and
        # at least 5% of the pixels carry ink (text, lines, bars).
        assert ink(page.screenshot) > 0.05


def test_chart_data_agrees_with_the_jobs_outputs(runs: dict[str, Path]) -> None:
    view = RunView.load(str(runs["market-performance"]))
    metrics = view.table("metrics").to_pandas()
    whole = metrics[metrics["period"] == "ALL"].set_index("symbol")
    symbols = ["SPX", *whole.index[:4].astype(str)]
    growth = mp_report.cumulative(mp_report.read_closes(view, symbols))
    for symbol in symbols:
        # The curve ends at the ALL-period total return, and its deepest drawdown is the
        # job's max_drawdown (both computed from the same closes by the job).
        assert growth[symbol].iloc[-1] == pytest.approx(
            whole.loc[symbol, "total_return"], abs=1e-12
        )
        deepest = mp_report.drawdown(growth[[symbol]].dropna())[symbol].min()
        assert deepest == pytest.approx(whole.loc[symbol, "max_drawdown"], abs=1e-12)

    risk = RunView.load(str(runs["risk"]))
    var = risk.table("var").to_pandas()
    scenarios = risk.table("scenarios").to_pandas()
    assert set(scenarios.columns) == {"portfolio", "date", "pnl"}
    hist = var[(var["method"] == "historical") & (var["horizon_days"] == 1)]
    for row in hist.itertuples():
        pnl = scenarios.loc[scenarios["portfolio"] == row.portfolio, "pnl"].to_numpy()
        # The scenarios are the P&L the job's historical VaR is the quantile of.
        assert -np.quantile(pnl, 1 - row.confidence) == pytest.approx(row.var, rel=1e-12)
    markers = risk_report._markers(var[var["portfolio"] == hist["portfolio"].iloc[0]])
    first = hist[hist["portfolio"] == hist["portfolio"].iloc[0]]
    assert sorted(-m.value for m in markers if m.label.startswith("VaR")) == sorted(first["var"])


def test_report_command_regenerates_from_a_moved_run(
    runs: dict[str, Path], market: Path, tmp_path: Path
) -> None:
    moved_run, moved_input = tmp_path / "run", tmp_path / "input"
    shutil.copytree(runs["market-performance"], moved_run)
    shutil.copytree(market, moved_input)
    (moved_run / "report.html").unlink()
    result = run_cli(["report", "--output", str(moved_run), "--input", str(moved_input)])
    assert result.code == 0, result.stderr
    original = (runs["market-performance"] / "report.html").read_text()
    again = (moved_run / "report.html").read_text()

    # The same report, byte for byte, but for the folder it names.
    def folders_out(text: str) -> str:
        return text.replace(str(moved_run), "X").replace(str(runs["market-performance"]), "X")

    assert folders_out(again) == folders_out(original)

    # Without its input the report still comes, with a note instead of the curves.
    (moved_run / "report.html").unlink()
    result = run_cli(["report", "--output", str(moved_run), "--input", str(tmp_path / "gone")])
    assert result.code == 0, result.stderr
    text = (moved_run / "report.html").read_text()
    assert "cumulative returns are not drawn" in text and "ALL-period metrics" in text

    empty = run_cli(["report", "--output", str(tmp_path / "nothing")])
    assert empty.code == 2 and "no committed run" in empty.stderr


def test_report_on_s3_is_served_as_html(market: Path, scheduler: str, s3_bucket: str) -> None:
    out = f"s3://{s3_bucket}/runs/mp"
    args = ["market-performance", "--input", str(market), "--output", out]
    result = run_cli([*args, "--scheduler", scheduler, "--symbols", "SPX,OKEG,NGKB,FWG"])
    assert result.code == 0, result.stderr
    head = boto3.client("s3").head_object(Bucket=s3_bucket, Key="runs/mp/report.html")
    assert head["ContentType"].startswith("text/html")
    body = s3fs.S3FileSystem().cat(f"{s3_bucket}/runs/mp/report.html").decode()
    assert body.count("<svg") == 2 and "ALL-period metrics" in body
    regenerated = run_cli(["report", "--output", out])
    assert regenerated.code == 0, regenerated.stderr
    assert s3fs.S3FileSystem().cat(f"{s3_bucket}/runs/mp/report.html").decode() == body


def test_risk_scenarios_match_a_direct_computation(runs: dict[str, Path], market: Path) -> None:
    # pnl_s = sum_i q_i * close_i(as-of) * r_i,s, from the raw input with pandas.
    risk = RunView.load(str(runs["risk"]))
    scenarios = risk.table("scenarios").to_pandas()
    positions = pd.read_parquet(market / "positions")
    prices = pd.read_parquet(market / "prices", columns=["symbol", "date", "close"])
    as_of = pd.Timestamp(AS_OF)
    positions = positions[pd.to_datetime(positions["date"]) == as_of]
    name = sorted(positions["portfolio"].astype(str).unique())[0]
    mine = positions[positions["portfolio"].astype(str) == name]
    held = mine.groupby(mine["symbol"].astype(str))["quantity"].sum()
    held = held[held != 0]
    closes = prices.assign(date=pd.to_datetime(prices["date"]), symbol=prices["symbol"].astype(str))
    closes = closes[closes["symbol"].isin(held.index) & (closes["date"] <= as_of)]
    closes = closes.pivot(index="date", columns="symbol", values="close").sort_index()[held.index]
    returns = (closes.ffill() / closes.ffill().shift(1) - 1).fillna(0.0).iloc[1:]
    exposure = held.to_numpy() * closes.iloc[-1].to_numpy()
    expected = returns.to_numpy() @ exposure
    got = scenarios[scenarios["portfolio"] == name].sort_values("date")
    assert len(got) == len(expected)
    assert np.allclose(got["pnl"].to_numpy(), expected, rtol=1e-12, atol=1e-6)


def test_backtest_heatmap_is_the_summarys_sharpe(runs: dict[str, Path]) -> None:
    view = RunView.load(str(runs["backtest"]))
    summary = view.table("summary").to_pandas()
    top = view.table("top").to_pandas().sort_values("rank")
    grid = backtest_report.sharpe_grid(summary, "fast", "slow")
    # One cell per (slow, fast) pair of the sweep, fast < slow always holds here (5..20 < 30).
    assert grid.shape == (4, 4)
    for row in summary.itertuples():
        assert grid.loc[row.slow, row.fast] == row.sharpe
    assert np.nanmax(grid.to_numpy()) == top["sharpe"].iloc[0]  # the best cell is rank 1


@pytest.mark.parametrize(
    ("symbols", "curves"),
    [("SPX", 1), ("OKEG,SPX", 2), ("OKEG,NGKB,SPX", 3)],
)
def test_market_performance_report_with_few_symbols(
    market: Path, scheduler: str, tmp_path: Path, symbols: str, curves: int
) -> None:
    # Only the benchmark; one symbol (best, no worst); two (one best, one worst): never a
    # symbol drawn twice, and the benchmark always drawn.
    out = tmp_path / "run"
    args = ["market-performance", "--input", str(market), "--output", str(out)]
    result = run_cli([*args, "--scheduler", scheduler, "--symbols", symbols])
    assert result.code == 0, result.stderr
    text = (out / "report.html").read_text()
    cumulative = text[text.index("<title>Cumulative return</title>") :].split("</svg>", 1)[0]
    assert cumulative.count('fill="none" stroke=') == curves
