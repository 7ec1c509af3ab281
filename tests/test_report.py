"""The HTML report of every job: the data behind the charts against the jobs' own outputs, each
section's headings and inline matplotlib charts (:data:`SECTIONS`, :data:`CHART_KINDS`), every
TCA aggregate table, and the reports of real runs opened in headless Chromium with the network
cut off.

Screenshots go to ``test-artifacts/`` at the repository root (gitignored), or to the folder
``FINBATCH_TEST_ARTIFACTS`` names (:func:`tests.browser.artifacts_dir`).
"""

from __future__ import annotations

import math
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from html import unescape
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
from analytics.jobs.tca import report as tca_report
from analytics.report import html, series
from analytics.report import sweep as report_sweep
from analytics.report.prices import read_closes
from analytics.run.committed import CommittedRun as RunView
from tests.browser import artifacts_dir, ink, network_is_cut_off, render
from tests.conftest import run_cli

AS_OF = "2024-03-27"


# --------------------------------------------------------------------------------------------
# Reports of real runs


@pytest.fixture(scope="module")
def long_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six symbols (and SPX) over two years: monthly heatmaps of more than one year, and more
    days than a rolling 6-month window (the shared ``market`` has about 125)."""
    root = tmp_path_factory.mktemp("long-market")
    args = ["--start", "2022-01-03", "--end", "2023-12-29", "--n-symbols", "6", "--seed", "3"]
    result = run_cli(["generate-data", "--output", str(root), *args, "--intraday-symbols", "0"])
    assert result.code == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def runs(
    market: Path, long_market: Path, scheduler: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reports")
    jobs = {
        "market-performance": ["market-performance", "--input", str(long_market)],
        "risk": ["risk", "--as-of", AS_OF],
        "backtest": [
            "backtest",
            "--input",
            str(long_market),
            "--strategy",
            "sma-cross",
            # fast 10..40 x slow 30..60: (30, 30), (40, 30) and (40, 40) break fast < slow.
            "--grid",
            "fast=10:40:10",
            "--grid",
            "slow=30:60:10",
            "--top",
            "4",
            "--fees-bps",
            "1",
        ],
        "tca": ["tca"],
        "execution-report": ["execution-report"],
        # 3 lookbacks x 2 quantiles (skip 21 by default): a heatmap of 6 cells.
        "portfolio-backtest": [
            "portfolio-backtest",
            "--strategy",
            "xs-momentum",
            "--grid",
            "lookback=40,60,80",
            "--grid",
            "quantile=0.2,0.5",
            "--top",
            "3",
        ],
    }
    outputs = {}
    for job, args in jobs.items():
        out = root / job
        given = [] if "--input" in args else ["--input", str(market)]
        result = run_cli(
            [
                *args,
                *given,
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
        # url(#clip) names an element of the page itself; any other url( could fetch.
        assert "@import" not in text and not re.search(r"url\((?!#)", text)
        parser = _Refs()
        parser.feed(text)
        assert all(ref.startswith(("data:", "#")) for ref in parser.refs), parser.refs
        assert "script" not in parser.tags and "iframe" not in parser.tags


#: The kinds of charts each report draws, in order (``data-kind`` of each ``<svg>``); a job may
#: draw more (another engineer's new section), never fewer or others in between.
CHART_KINDS: dict[str, list[str]] = {
    # The benchmark's cumulative return and drawdown (with 3 best and 3 worst symbols), its
    # monthly returns, the distribution of the symbols' Sharpe ratios.
    "market-performance": ["cumulative", "monthly-heatmap", "histogram"],
    # Four portfolios: the scenario P&L histogram (4 markers), the component-VaR bars and the
    # VaR backtest (exceptions as dots) each.
    "risk": ["histogram", "bars", "dated"] * 4,
    # The top combination against SPX and buy-and-hold, its monthly returns, its rolling
    # Sharpe ratio, the heatmap of 4 fast x 4 slow values, and the validation's histogram of
    # the CSCV logits.
    "backtest": [
        "cumulative",
        "monthly-heatmap",
        "rolling-sharpe",
        "parameter-heatmap",
        "histogram",
    ],
    # A box per broker, a dot per order.
    "tca": ["boxes", "scatter"],
    # Fill rate and arrival cost by broker.
    "execution-report": ["bars", "bars"],
    # The top combinations' equity and drawdown, the Sharpe ratio over lookback x quantile.
    "portfolio-backtest": ["cumulative", "parameter-heatmap"],
}


def is_subsequence(expected: Sequence[str], found: Sequence[str]) -> bool:
    """True when ``expected`` appears in ``found`` in order, others allowed in between; an
    expected text matches a found one that starts with it (a heading ending in a name)."""
    rest = iter(found)
    return all(any(f.startswith(e) for f in rest) for e in expected)


def test_is_subsequence() -> None:
    assert is_subsequence(["a", "c"], ["a", "b", "c (2)"])
    assert not is_subsequence(["c", "a"], ["a", "b", "c"])  # out of order
    assert not is_subsequence(["a", "d"], ["a", "b", "c"])


def test_reports_render_offline_with_their_charts(runs: dict[str, Path]) -> None:
    assert network_is_cut_off()  # the namespace the browser runs in has no network at all
    artifacts = artifacts_dir()
    assert set(runs) == set(CHART_KINDS)
    for job, out in runs.items():
        shot = artifacts / f"report-{job}.png"
        shot.unlink(missing_ok=True)
        page = render(out / "report.html", shot, height=3000)
        dom = page.dom
        # Every chart the browser holds is an inline matplotlib SVG of the expected kinds.
        kinds = re.findall(r'<svg class="chart" data-kind="([a-z-]+)"', dom)
        assert is_subsequence(CHART_KINDS[job], kinds), (job, kinds)
        assert dom.count("<svg") == len(kinds) and "<img" not in dom
        charts = charts_of(out)
        if job == "market-performance":
            assert _lines(charts[0], "cumulative", "line") == 7
            assert _lines(charts[0], "underwater", "line") == 7
        elif job == "risk":
            _check_risk_charts(out, charts)
        elif job == "backtest":
            # Rank 1, SPX and buy-and-hold in colour; ranks 2..4 grey.
            assert _lines(charts[0], "cumulative", "line") == 3
            assert _lines(charts[0], "cumulative", "context-line") == 3
        elif job == "tca":
            orders = RunView.load(str(out)).table("orders").to_pandas()
            finite = np.isfinite(orders["participation"]) & np.isfinite(orders["arrival_cost_bps"])
            (scatter,) = [c for c in charts if c.get("data-kind") == "scatter"]
            assert sum(_dots(scatter)) == int(finite.sum())
            (boxes,) = [c for c in charts if c.get("data-kind") == "boxes"]
            with_cost = orders.loc[np.isfinite(orders["arrival_cost_bps"]), "broker"]
            assert len(_classed(boxes, "box")) == with_cost.nunique()
        elif job == "execution-report":
            brokers = RunView.load(str(out)).table("broker_daily").to_pandas()["broker"]
            assert sum(len(_classed(c, "bar")) for c in charts) == 2 * brokers.nunique()
        else:
            # Rank 1 in colour, ranks 2 and 3 grey.
            assert _lines(charts[0], "cumulative", "line") == 1
            assert _lines(charts[0], "cumulative", "context-line") == 2
        # The screenshot is a page with charts, not a blank one: white is the background, and
        # at least 5% of the pixels carry ink (text, lines, bars).
        assert ink(page.screenshot) > 0.05


def _check_risk_charts(out: Path, charts: list[ET.Element]) -> None:
    view = RunView.load(str(out))
    var = view.table("var").to_pandas()
    contrib = view.table("contributions").to_pandas()
    exceptions = view.table("var_exceptions").to_pandas()
    method, confidence = risk_report.backtest_choice(exceptions)
    portfolios = var["portfolio"].astype(str).unique()
    levels = var.loc[var["method"] == "historical", "confidence"].nunique()
    histograms = [c for c in charts if c.get("data-kind") == "histogram"]
    # A VaR and an ES marker per confidence in every portfolio's histogram.
    assert [len(_classed(h, "marker")) for h in histograms] == [2 * levels] * len(portfolios)
    # Component VaR: a bar per holding at the first confidence and shortest horizon, at most
    # MAX_BARS (the smallest summed into the last).
    first = contrib[
        (contrib["confidence"] == contrib["confidence"].min())
        & (contrib["horizon_days"] == contrib["horizon_days"].min())
    ]
    held = first.groupby(first["portfolio"].astype(str)).size()
    bars = sorted(len(_classed(c, "bar")) for c in charts if c.get("data-kind") == "bars")
    assert bars == sorted(min(int(n), risk_report.MAX_BARS) for n in held)
    # A dot per exception of the drawn method and confidence, in every portfolio.
    drawn = exceptions[(exceptions["method"] == method) & (exceptions["confidence"] == confidence)]
    dots = [sum(_dots(c)) for c in charts if c.get("data-kind") == "dated"]
    assert sum(dots) == int(drawn["exception"].sum()) and len(dots) == len(portfolios)


def _classed(root: ET.Element, name: str) -> list[ET.Element]:
    return [g for g in root.iter("g") if g.get("class") == name]


def _dots(chart: ET.Element) -> list[int]:
    """The dots (``<use>`` of one marker) of each group of points."""
    return [len(list(g.iter("use"))) for g in _classed(chart, "points")]


def charts_of(out: Path) -> list[ET.Element]:
    """The report's matplotlib charts, each parsed as XML."""
    text = (out / "report.html").read_text()
    return [ET.fromstring(m) for m in re.findall(r'<svg class="chart".*?</svg>', text, re.DOTALL)]


def _group(root: ET.Element, name: str) -> ET.Element:
    found = [g for g in root.iter("g") if g.get("class") == name]
    assert len(found) == 1, (name, len(found))
    return found[0]


def _lines(chart: ET.Element, axes: str, kind: str) -> int:
    return len([g for g in _group(chart, axes).iter("g") if g.get("class") == kind])


def _y_ticks(chart: ET.Element, axes: str) -> list[float]:
    texts = ["".join(t.itertext()) for t in _group(_group(chart, axes), "y-axis").iter("text")]
    return [float(t.rstrip("%").replace(",", "")) / 100 for t in texts if t.endswith("%")]


class _Outline(HTMLParser):
    """The headings of each section (``h2`` -> its ``h3`` texts), and what each ``figure``
    holds first."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.figures: list[str] = []
        self._heading: str | None = None
        self._text: list[str] = []
        self._section = ""
        self._in_figure = False
        self.summaries: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h2", "h3", "summary"):
            self._heading, self._text = tag, []
        if tag == "figure":
            self._in_figure = True
        elif self._in_figure:
            self.figures.append(f"{tag} {dict(attrs).get('class', '')}")
            self._in_figure = False

    def handle_data(self, data: str) -> None:
        if self._heading:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != self._heading:
            return
        text = "".join(self._text).strip()
        if tag == "h2":
            self._section = text
            self.sections[text] = []
        elif tag == "h3":
            self.sections[self._section].append(text)
        else:
            self.summaries.append(text)
        self._heading = None


#: Each report's job section (its ``h2``) and the ``h3`` headings it must have, in order; more
#: may come between (another engineer's new part), and a heading may go on with a name or a
#: count ("Portfolio " matches "Portfolio VALUE"). Every report then has a "Run" section.
SECTIONS: dict[str, tuple[str, list[str]]] = {
    "market-performance": (
        "Market performance",
        [
            "Benchmark and the best and worst symbols",
            "Distribution of the symbols' Sharpe ratios",
            "ALL-period metrics of every symbol, by total return",
            "Monthly metrics of the best (",
        ],
    ),
    "risk": (
        "Risk",
        [
            "Portfolio ",
            "VaR and expected shortfall",
            "VaR backtest: traffic lights",
            "Top tail contributors (component historical ES)",
        ],
    ),
    "backtest": (
        "Backtest: sma-cross",
        [
            "Top combination against the benchmark and buy-and-hold",
            "Portfolio Sharpe ratio over the parameters",
            "Top combinations by portfolio Sharpe ratio",
            "Is the best combination luck?",
        ],
    ),
    "tca": (
        "Transaction-cost analysis",
        [heading for _, _, heading in tca_report.AGGREGATES],
    ),
    "execution-report": (
        "Execution report",
        ["Daily by desk", "Daily by broker", "The job's text report"],
    ),
    "portfolio-backtest": (
        "Portfolio backtest: xs-momentum",
        [
            "Top combinations by Sharpe ratio",
            "Costs of the top combinations (over the initial capital)",
            "Holdings of the best combination at the last close (",
        ],
    ),
}
RUN_HEADINGS = ["Input", "Outputs", "Details", "Parameters set", "Summary"]


def test_every_section_has_its_headings_and_inline_charts(runs: dict[str, Path]) -> None:
    assert set(runs) == set(SECTIONS)
    for job, (title, headings) in SECTIONS.items():
        text = (runs[job] / "report.html").read_text()
        outline = _Outline()
        outline.feed(text)
        assert is_subsequence([title, "Run"], list(outline.sections)), (job, outline.sections)
        assert is_subsequence(headings, outline.sections[title]), (job, outline.sections[title])
        assert outline.sections["Run"] == RUN_HEADINGS
        # Every figure holds an inline matplotlib chart, first thing; no script, no URL.
        assert outline.figures and set(outline.figures) == {"svg chart"}, job
        assert text.count("<svg") == text.count('<svg class="chart"') == len(outline.figures)
        assert "<script" not in text and not re.search(r"https?://", text)
        # The options left at their defaults are folded away, not listed with the set ones.
        assert re.fullmatch(r"defaults \(\d+ options not set\)", outline.summaries[-1])
    market = SECTIONS["market-performance"][0]
    monthly = _outline(runs["market-performance"]).sections[market][-1]
    assert monthly == "Monthly metrics of the best ({}) and the worst ({}) symbol".format(
        *_ends(runs)
    )
    # Set: the input, output, run id, scheduler, strategy, grid, top and fees; the default
    # slippage (0) and workers (not given) are in the fold.
    text = (runs["backtest"] / "report.html").read_text()
    shown, folded = text.split("<details", 1)
    folded = folded.split("</details>", 1)[0]
    for name in ("strategy", "grid", "top", "fees_bps", "run_id"):
        assert f"<td>{name}</td>" in shown and f"<td>{name}</td>" not in folded
    for name in ("slippage_bps", "workers", "db_url"):
        assert f"<td>{name}</td>" in folded and f"<td>{name}</td>" not in shown


def _outline(out: Path) -> _Outline:
    outline = _Outline()
    outline.feed((out / "report.html").read_text())
    return outline


def _ends(runs: dict[str, Path]) -> tuple[str, str]:
    metrics = RunView.load(str(runs["market-performance"])).table("metrics").to_pandas()
    whole = metrics[(metrics["period"] == "ALL") & (metrics["symbol"] != "SPX")]
    ordered = whole.sort_values("total_return", ascending=False)["symbol"].astype(str)
    return ordered.iloc[0], ordered.iloc[-1]


def test_cumulative_axes_are_sane(runs: dict[str, Path]) -> None:
    for job in ("market-performance", "backtest"):
        cumulative = charts_of(runs[job])[0]
        assert cumulative.get("data-kind") == "cumulative"
        assert min(_y_ticks(cumulative, "cumulative")) >= -1.0
        assert float(cumulative.get("data-ybottom", "nan")) >= -1.0
        underwater = _y_ticks(cumulative, "underwater")
        assert min(underwater) >= -1.0 and max(underwater) <= 0.0


def test_chart_data_agrees_with_the_jobs_outputs(runs: dict[str, Path]) -> None:
    view = RunView.load(str(runs["market-performance"]))
    metrics = view.table("metrics").to_pandas()
    whole = metrics[metrics["period"] == "ALL"].set_index("symbol")
    symbols = ["SPX", *whole.index[:4].astype(str)]
    growth = series.cumulative(read_closes(view, symbols))
    for symbol in symbols:
        # The curve ends at the ALL-period total return, and its deepest drawdown is the
        # job's max_drawdown (both computed from the same closes by the job).
        assert growth[symbol].iloc[-1] == pytest.approx(
            whole.loc[symbol, "total_return"], abs=1e-12
        )
        deepest = series.drawdown(growth[[symbol]].dropna())[symbol].min()
        assert deepest == pytest.approx(whole.loc[symbol, "max_drawdown"], abs=1e-12)
        # The monthly heatmap's returns of the daily curve are the job's monthly total returns.
        monthly = series.monthly_returns(growth[symbol])
        job = mp_report.monthly_from_metrics(
            metrics.assign(symbol=metrics["symbol"].astype(str)), symbol
        )
        assert monthly.shape == job.shape == (2, 12)
        assert np.allclose(monthly.to_numpy(), job.to_numpy(), rtol=0, atol=1e-12, equal_nan=True)

    # The monthly table: one row per month, the best's and the worst's metrics side by side.
    named = metrics.assign(symbol=metrics["symbol"].astype(str))
    best, worst = _ends(runs)
    table = mp_report.monthly_table(named, [best, worst])
    assert f"<th>{best} total_return</th>" not in table  # a number column is right-aligned
    assert f'<th class="num">{best} total_return</th>' in table
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)]
    rows = [r for r in rows if r]  # the header row has no <td>
    assert [r[0] for r in rows] == [f"{y}-{m:02d}" for y in (2022, 2023) for m in range(1, 13)]
    monthly = named[named["period"] != "ALL"].set_index(["symbol", "period"])
    for r in rows:
        # Columns: month, then 4 metrics of the best (total_return first), then of the worst.
        assert r[1] == f"{monthly.loc[(best, r[0]), 'total_return'] * 100:.2f}%"
        assert r[5] == f"{monthly.loc[(worst, r[0]), 'total_return'] * 100:.2f}%"
        assert r[3] == f"{monthly.loc[(best, r[0]), 'sharpe']:.2f}"

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
    runs: dict[str, Path], long_market: Path, tmp_path: Path
) -> None:
    moved_run, moved_input = tmp_path / "run", tmp_path / "input"
    shutil.copytree(runs["market-performance"], moved_run)
    shutil.copytree(long_market, moved_input)
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
    # SPX's monthly returns come from the job's own metrics: still drawn without the input.
    kinds = re.findall(r'<svg class="chart" data-kind="([a-z-]+)"', text)
    assert kinds == ["monthly-heatmap", "histogram"]

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
    assert body.count("<svg") == 3 and "ALL-period metrics" in body
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
    whole = view.table("summary").to_pandas()
    summary = whole[whole["strategy"] != "buy-and-hold"]  # the baseline row is not a trial
    top = view.table("top").to_pandas().sort_values("rank")
    grid = report_sweep.sharpe_grid(summary, "fast", "slow")
    # One cell per (slow, fast) pair of the sweep: fast 10..40 x slow 30..60, where (30, 30),
    # (40, 30) and (40, 40) break fast < slow and stay empty (grey).
    assert grid.shape == (4, 4) and len(summary) == 13
    assert int(grid.isna().sum().sum()) == 3
    assert np.isnan([grid.loc[30, 30], grid.loc[30, 40], grid.loc[40, 40]]).all()
    for row in summary.itertuples():
        assert grid.loc[row.slow, row.fast] == row.sharpe
    assert np.nanmax(grid.to_numpy()) == top["sharpe"].iloc[0]  # the best cell is rank 1
    # The chart says so: its legend names the grey cells' rule and the best cell.
    (heatmap,) = [
        c for c in charts_of(runs["backtest"]) if c.get("data-kind") == "parameter-heatmap"
    ]
    assert heatmap.get("data-kind") == "parameter-heatmap"
    texts = ["".join(t.itertext()) for t in heatmap.iter("text")]
    best = top.iloc[0]
    assert any("fast < slow" in t and t.startswith("grey: ") for t in texts)
    assert (
        f"outlined: the best, fast={best['fast']:g} slow={best['slow']:g} "
        f"(Sharpe {best['sharpe']:.2f})"
    ) in texts
    assert "Sharpe ratio (annualized, risk-free 0)" in texts  # the colour bar's title


def test_backtest_references_by_hand(runs: dict[str, Path], long_market: Path) -> None:
    view = RunView.load(str(runs["backtest"]))
    equity = view.table("equity").to_pandas()
    top = view.table("top").to_pandas().sort_values("rank")
    curves = report_sweep.top_growth(equity)
    assert sorted(curves) == [1, 2, 3, 4]
    # The drawn curve ends at the top combination's total return.
    assert curves[1].iloc[-1] == pytest.approx(top["total_return"].iloc[0], abs=1e-12)
    refs = backtest_report.references(view, pd.DatetimeIndex(curves[1].index))
    raw = pd.read_parquet(long_market / "prices", columns=["symbol", "date", "close"])
    raw = raw.assign(symbol=raw["symbol"].astype(str), date=pd.to_datetime(raw["date"]))
    closes = raw.pivot(index="date", columns="symbol", values="close").sort_index()
    # SPX: close over the first close. Buy-and-hold: running product of 1 + the day's mean of
    # the returns of the symbols with a close that day, each over its own previous close (a
    # halt's return spans it), in a plain loop.
    spx = closes["SPX"].to_numpy()
    assert np.allclose(refs["SPX"].to_numpy(), spx / spx[0] - 1, rtol=0, atol=1e-12)
    values = closes.to_numpy()
    assert np.isnan(values).any()  # the generated market has halts: the rule is exercised
    previous = [math.nan] * values.shape[1]
    wealth, expected = 1.0, []
    for row in values:
        day = []
        for j, close in enumerate(row):
            if math.isnan(close):
                continue
            if not math.isnan(previous[j]):
                day.append(close / previous[j] - 1.0)
            previous[j] = close
        wealth *= 1.0 + (sum(day) / len(day) if day else 0.0)
        expected.append(wealth - 1.0)
    got = refs[backtest_report.BUY_AND_HOLD].to_numpy()
    assert np.allclose(got, expected, rtol=0, atol=1e-12)


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
    cumulative = charts_of(out)[0]
    assert cumulative.get("data-kind") == "cumulative"
    assert _lines(cumulative, "cumulative", "line") == curves


def _h3_blocks(section: str) -> dict[str, str]:
    """Each ``h3`` heading of a section and the HTML after it, up to the next heading."""
    blocks = {}
    for chunk in section.split("<h3>")[1:]:
        heading, body = chunk.split("</h3>", 1)
        blocks[unescape(heading)] = body
    return blocks


def _rows(table: str) -> list[list[str]]:
    body = table.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body)
    return [[unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)] for row in rows]


def test_tca_shows_every_aggregate_table_and_every_date(runs: dict[str, Path]) -> None:
    view = RunView.load(str(runs["tca"]))
    text = (runs["tca"] / "report.html").read_text()
    section = text.split('<section id="tca">', 1)[1].split("</section>", 1)[0]
    # The job writes by_broker, by_desk, by_strategy, by_day, by_venue and the three bucket
    # tables: the report names each.
    written = sorted(t for t in view.manifest.outputs if t.startswith("by_"))
    assert written == sorted(name for name, _, _ in tca_report.AGGREGATES)
    blocks = _h3_blocks(section)
    for name, key, heading in tca_report.AGGREGATES:
        frame = view.table(name).to_pandas()
        tables = re.findall(r"<table.*?</table>", blocks[heading], re.DOTALL)
        assert len(tables) == 2, name  # the main columns, then the others folded
        heads = [re.findall(r"<th(?: [^>]*)?>(.*?)</th>", t) for t in tables]
        # Between them the two tables hold every column of the table once (the key in both).
        assert heads[0][0] == heads[1][0] == key
        assert sorted(heads[0][1:] + heads[1][1:]) == sorted(c for c in frame.columns if c != key)
        for t in tables:  # every row, in both
            assert sorted(r[0] for r in _rows(t)) == sorted(frame[key].astype(str)), name
        # Each row's notional-weighted mean arrival cost, as the job wrote it (2 decimals).
        column = heads[0].index("arrival_cost_bps_mean")
        shown = {r[0]: r[column] for r in _rows(tables[0])}
        for k, v in zip(frame[key].astype(str), frame["arrival_cost_bps_mean"], strict=True):
            assert shown[k] == ("—" if math.isnan(v) else f"{v:.2f}")
    # Buckets in their own order, not the labels' alphabetical one.
    sizes = pd.read_parquet(runs["tca"] / "by_size")["bucket"].astype(str)
    shown_sizes = [r[0] for r in _rows(re.findall(r"<table.*?</table>", blocks[
        "By order size (quantity over ADV)"], re.DOTALL)[0])]  # fmt: skip
    assert shown_sizes == [b for b in ("<1%", "1-5%", "5-10%", ">=10%") if b in set(sizes)]
    # by_day holds every date of the orders, in order, and the dates card lists them all.
    dates = sorted(str(d) for d in view.table("orders").to_pandas()["date"].unique())
    by_day = re.findall(r"<table.*?</table>", blocks["By day"], re.DOTALL)[0]
    assert [r[0] for r in _rows(by_day)] == dates and len(dates) == 2
    assert f'<div class="label">dates</div><div class="value">{", ".join(dates)}</div>' in section


def test_dates_card_lists_every_date() -> None:
    # Five dates: the card shows the range and the count, a fold lists all five.
    days = pd.Series(pd.to_datetime(["2024-01-08", "2024-01-02", "2024-01-03", "2024-01-04",
                                     "2024-01-05", "2024-01-02"]).date)  # fmt: skip
    value, fold = tca_report.dates_card(pd.DataFrame({"date": days}))
    assert value == "2024-01-02 .. 2024-01-08 (5)"
    assert "<summary>all 5 dates</summary>" in fold
    assert "2024-01-02, 2024-01-03, 2024-01-04, 2024-01-05, 2024-01-08" in fold
    # Up to three: listed in the card, no fold.
    value, fold = tca_report.dates_card(pd.DataFrame({"date": days[:3]}))
    assert (value, fold) == ("2024-01-02, 2024-01-03, 2024-01-08", "")


def test_long_tables_scroll_in_their_box() -> None:
    # SCROLL_ROWS (15) rows fit; one more and the box scrolls (CSS only, the header sticks).
    fits = html.table(["n"], [[i] for i in range(html.SCROLL_ROWS)], scroll=True)
    long = html.table(["n"], [[i] for i in range(html.SCROLL_ROWS + 1)], scroll=True)
    assert fits.startswith('<div class="wide"><table>')
    assert long.startswith('<div class="wide scroll"><table>')
    assert long.count("<tr>") == html.SCROLL_ROWS + 2  # the header and every row
    assert ".wide.scroll th { position: sticky;" in html.CSS


def test_screenshots_go_where_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ci" / "artifacts"
    monkeypatch.setenv("FINBATCH_TEST_ARTIFACTS", str(target))
    assert artifacts_dir() == target and target.is_dir()  # made when missing
    monkeypatch.delenv("FINBATCH_TEST_ARTIFACTS")
    default = artifacts_dir()
    assert default == Path(__file__).resolve().parent.parent / "test-artifacts"
    assert "test-artifacts/" in (default.parent / ".gitignore").read_text().splitlines()
