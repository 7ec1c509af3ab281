"""portfolio-backtest's sweep validation (issue 14 on issue 20's job) end to end through the CLI:
``psr``, ``dsr``, CSCV and walk-forward checked against plain numpy/scipy loops over
``returns/`` (tests/sweep_reference.py, shared with the backtest's tests), the benchmark
columns against SPX's own closes, and bad options refused before any output."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import entrypoint
from tests import sweep_reference as ref
from tests.conftest import read_manifest, run_cli

# CLI runs of a 4-year market and plain loops over their returns: outside the fast lane.
pytestmark = pytest.mark.slow

GRID = ["--grid", "lookback=20,60,120", "--grid", "skip=0", "--grid", "quantile=0.2,0.5"]
GRID += ["--grid", "rebalance=5,21"]  # 3 x 2 x 2 = 12 combinations
BLOCKS = 10  # C(10, 5) = 252 splits: the reference's loops stay quick


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 generated symbols (one listing in 2019-07) and SPX, NYSE sessions of 2019-2022."""
    root = tmp_path_factory.mktemp("pbt-market")
    code = entrypoint.main(
        [
            "generate-data", "--output", str(root), "--start", "2019-01-01", "--end",
            "2022-12-31", "--n-symbols", "30", "--seed", "7",
        ]
    )  # fmt: skip
    assert code == 0
    return root


def _args(market: Path, out: Path, *extra: str) -> list[str]:
    return [
        "portfolio-backtest", "--input", str(market), "--output", str(out),
        "--strategy", "xs-momentum", "--fees-bps", "2", "--slippage-bps", "3",
        "--run-id", "t", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(market: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pbt-valid") / "run"
    extra = [*GRID, "--keep-returns", "--walk-forward", "12:6", "--cscv-blocks", str(BLOCKS)]
    result = run_cli(_args(market, out, "--workers", "1", *extra))
    assert result.code == 0, result.stderr
    assert "probability of backtest overfitting" in result.stdout
    return out


def _results(out: Path) -> pd.DataFrame:
    frame = pd.read_parquet(out / "results")
    return frame.sort_values(["lookback", "quantile", "rebalance"]).reset_index(drop=True)


def test_psr_dsr_and_cscv_against_plain_loops(run: Path) -> None:
    dates, r, params = ref.matrix(run)
    n = r.shape[1]
    # Grid order: lookback slowest, then quantile, then rebalance.
    assert n == 12 and list(params["lookback"]) == [20] * 4 + [60] * 4 + [120] * 4
    results = _results(run)
    sharpes = [ref.daily_sharpe(r[:, k]) for k in range(n)]
    benchmark = ref.sr0(sharpes)
    np.testing.assert_allclose(
        results["psr"], [ref.psr(r[:, k], 0.0) for k in range(n)], rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        results["dsr"], [ref.psr(r[:, k], benchmark) for k in range(n)], rtol=0, atol=1e-9
    )
    # results/'s annualized Sharpe ratio is the same series' daily one x sqrt(252).
    np.testing.assert_allclose(results["sharpe"], np.asarray(sharpes) * math.sqrt(252), rtol=1e-9)
    # CSCV over the validated calendar: every date from the sweep's first fill (lookback 20's),
    # with NaN before a later combination's own first fill.
    row = pd.read_parquet(run / "validation").iloc[0]
    reference = ref.pbo(r, BLOCKS)
    assert row["n_trials"] == n and reference["n_splits"] == 252
    for name, value in reference.items():
        assert row[name] == pytest.approx(value, abs=1e-9), name
    top = pd.read_parquet(run / "top").sort_values("rank")
    for _, best in top.iterrows():
        match = results[
            (results["lookback"] == best["lookback"])
            & (results["quantile"] == best["quantile"])
            & (results["rebalance"] == best["rebalance"])
        ].iloc[0]
        assert (best["psr"], best["dsr"]) == (match["psr"], match["dsr"])
    manifest = read_manifest(str(run))
    assert manifest is not None
    assert manifest["summary"]["validated_from"] == str(pd.Timestamp(dates[0]).date())
    assert manifest["summary"]["pbo"] == row["pbo"]


def test_returns_start_on_each_first_fill(run: Path) -> None:
    """returns/ is long, in grid order, from each combination's first fill: the equity/ curve
    of a top combination, read as returns from 1.0, is its returns/ series."""
    frame = pd.read_parquet(run / "returns")
    assert list(frame.columns) == [
        "run_id", "combination", "lookback", "skip", "quantile", "rebalance", "date", "return",
    ]  # fmt: skip
    starts = frame.groupby("lookback")["date"].min()
    assert starts[20] < starts[60] < starts[120]  # a longer look-back is eligible later
    equity = pd.read_parquet(run / "equity")
    top = pd.read_parquet(run / "top")
    for _, best in top.iterrows():
        curve = equity[equity["rank"] == best["rank"]].sort_values("date")
        mine = frame[
            (frame["lookback"] == best["lookback"])
            & (frame["quantile"] == best["quantile"])
            & (frame["rebalance"] == best["rebalance"])
        ].sort_values("date")
        assert list(mine["date"]) == list(curve["date"])
        values = curve["equity"].to_numpy()
        np.testing.assert_allclose(
            mine["return"], values / np.concatenate([[1.0], values[:-1]]) - 1, rtol=1e-12
        )


def test_walk_forward_folds_by_hand(market: Path, tmp_path: Path) -> None:
    """Lookback 20 from 2021-01-04 (19 sessions in January, the 18th a holiday): the first
    decision is the 21st session, Feb 2, filled at Feb 3's open, so the validated calendar and
    m0 start in February. Anchored 2:2 to 2021-08-13: fold 0 trains Feb 3 - Mar 31 and tests
    April - May (Apr 1 - May 28; Good Friday Apr 2 and Memorial Day May 31 are closed); fold 1
    trains Feb 3 - May 28 and tests June - July (Jun 1 - Jul 30); fold 2 trains Feb 3 - Jul 30
    and tests August, short (Aug 2 - Aug 13)."""
    out = tmp_path / "run"
    grid = ["--grid", "lookback=20", "--grid", "skip=0", "--grid", "quantile=0.1,0.3,0.5"]
    grid += ["--grid", "rebalance=5,21"]
    extra = ["--start", "2021-01-01", "--end", "2021-08-13", "--cscv-blocks", "4"]
    extra += ["--walk-forward", "2:2", "--anchored", "--keep-returns", "--workers", "1"]
    result = run_cli(_args(market, out, *grid, *extra))
    assert result.code == 0, result.stderr
    d = dt.date
    expected = [
        (0, d(2021, 2, 3), d(2021, 3, 31), d(2021, 4, 1), d(2021, 5, 28)),
        (1, d(2021, 2, 3), d(2021, 5, 28), d(2021, 6, 1), d(2021, 7, 30)),
        (2, d(2021, 2, 3), d(2021, 7, 30), d(2021, 8, 2), d(2021, 8, 13)),
    ]
    days = ref.check_walk_forward(out, expected, ["quantile", "rebalance"])
    assert days[0] == pd.Timestamp("2021-02-03")
    row = pd.read_parquet(out / "validation").iloc[0]
    assert row["n_splits"] == 6  # C(4, 2)
    # The validated dates, Feb 3 - Aug 13: February 17 (19 sessions, Presidents' Day closed,
    # less Feb 1 and 2), March 23, April 21, May 20, June 22, July 21, August 10 = 134.
    assert len(days) == 134


def test_benchmark_columns_against_spx(market: Path, run: Path) -> None:
    """SPX is in the data: the default benchmark. Over the dates on which both have a return."""
    prices = pd.read_parquet(market / "prices", columns=["symbol", "date", "close"])
    spx = prices[prices["symbol"] == "SPX"].set_index("date")["close"].sort_index()
    spx_returns = (spx / spx.shift(1) - 1).dropna()
    dates, r, _ = ref.matrix(run)
    results = _results(run)
    for k in (0, 11):
        mine = pd.Series(r[:, k], index=pd.Index([d.date() for d in pd.DatetimeIndex(dates)]))
        mine = mine.dropna()
        both = mine.index.intersection(spx_returns.index)
        a, b = mine[both].to_numpy(), spx_returns[both].to_numpy()
        diff = a - b
        row = results.iloc[k]
        assert row["benchmark_return"] == pytest.approx(np.prod(1 + b) - 1, rel=1e-9)
        assert row["excess_return"] == pytest.approx(np.prod(1 + a) - np.prod(1 + b), rel=1e-9)
        te = np.std(diff, ddof=1) * math.sqrt(252)
        assert row["tracking_error"] == pytest.approx(te, rel=1e-9)
        assert row["information_ratio"] == pytest.approx(np.mean(diff) * 252 / te, rel=1e-9)
        cov = np.cov(a, b, ddof=1)
        assert row["beta"] == pytest.approx(cov[0, 1] / cov[1, 1], rel=1e-9)
    manifest = read_manifest(str(run))
    assert manifest is not None and manifest["summary"]["benchmark"] == "SPX"


SHORT = ["--grid", "lookback=20", "--grid", "skip=0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*SHORT, "--cscv-blocks", "3"], "need an even number of at least 2"),
        ([*SHORT, "--walk-forward", "12"], "TRAIN:TEST"),
        ([*SHORT, "--walk-forward", "12:x"], "TRAIN:TEST"),
        ([*SHORT, "--anchored"], "--anchored needs --walk-forward"),
        # 2019 has 252 sessions: lookback 20 fills on the 22nd, 231 dates for 4,000 blocks.
        ([*SHORT, "--cscv-blocks", "4000"], "found 231 dates for 4000 blocks"),
        ([*SHORT, "--benchmark", "NOPE"], "benchmark symbol 'NOPE' has no prices"),
        # The default lookback 252 needs 252 rows before t: never in 2019's 252 sessions.
        ([], "no xs-momentum combination of the grid ever fills"),
    ],
)
def test_bad_validation_options_exit_2_without_output(
    market: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    result = run_cli(_args(market, out, "--workers", "1", "--end", "2019-12-31", *args))
    assert result.code == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and message in errors[0]
    # No table, no traceback: at most the run's banner and the read's progress.
    assert "Traceback" not in result.stdout + result.stderr
    assert all(line.startswith("portfolio-backtest: r") for line in result.stdout.splitlines())
    assert read_manifest(str(out)) is None
    assert not (out / "results").exists()


def test_report_has_the_validation_section(run: Path) -> None:
    page = (run / "report.html").read_text()
    row = pd.read_parquet(run / "validation").iloc[0]
    assert "Is the best combination luck?" in page
    assert html_ratio(row["pbo"]) in page
    assert "CSCV: logit" in page  # the histogram of the splits' logits
    assert "Walk-forward folds" in page and "stitched out-of-sample" in page
    assert '<th class="num">dsr</th>' in page  # DSR in the top table
    assert "best&#x27;s deflated Sharpe (DSR)" in page or "best's deflated Sharpe (DSR)" in page


def html_ratio(value: float) -> str:
    from analytics.report import html

    return html.fmt_ratio(value)
