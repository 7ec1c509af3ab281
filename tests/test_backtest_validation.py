"""The backtest's sweep validation (issue 14) end to end through the CLI, on synthetic markets
where the answer is known: pure noise (PBO near 0.5, DSR small) and one lookback with a planted
edge (PBO near 0, DSR near 1). ``psr``, ``dsr`` and ``pbo`` are checked against plain
numpy/scipy loops over ``returns/`` written here, independently of :mod:`analytics.stats`."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests import sweep_reference as ref
from tests.conftest import read_manifest, run_cli

# Sweeps with 12,870-split checks against plain loops: outside the fast lane.
pytestmark = pytest.mark.slow

SYMBOLS = 4
START, END = "2018-01-01", "2020-12-31"
LOOKBACKS = "lookback=1:24:1"  # 24 combinations
EDGE_LOOKBACK = 7
COSTS = ["--fees-bps", "5", "--slippage-bps", "10"]


def _market(root: Path, *, edge: bool, seed: int) -> Path:
    """Business-day closes of S00..S03. With ``edge``, the next day's return drifts by ±0.4 %
    in the direction of the 7-session return: momentum with lookback 7 follows the drift, the
    other lookbacks only in part."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range(START, END)
    frames = []
    for s in range(SYMBOLS):
        close = np.empty(len(days))
        close[0] = 100.0
        for t in range(1, len(days)):
            drift = 0.0
            if edge and t > EDGE_LOOKBACK:
                drift = 0.004 if close[t - 1] > close[t - 1 - EDGE_LOOKBACK] else -0.004
            close[t] = close[t - 1] * (1.0 + drift + 0.01 * rng.standard_normal())
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"S{s:02d}",
                    "date": days.date,
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close,
                    "volume": 1e6,
                }
            )
        )
    (root / "prices").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pandas(pd.concat(frames), preserve_index=False),
        root / "prices" / "part-0.parquet",
    )
    return root


def _run(market: Path, out: Path, *extra: str) -> str:
    result = run_cli(
        [
            "backtest",
            "--input",
            str(market),
            "--output",
            str(out),
            "--strategy",
            "momentum",
            "--grid",
            LOOKBACKS,
            "--fill",
            "close",
            *COSTS,
            "--run-id",
            "t",
            "--keep-returns",
            *extra,
        ]
    )
    assert result.code == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("noise")
    _market(root / "market", edge=False, seed=11)
    _run(root / "market", root / "run", "--workers", "1", "--walk-forward", "12:6")
    return root


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("edge")
    _market(root / "market", edge=True, seed=12)
    _run(root / "market", root / "run", "--workers", "1", "--walk-forward", "12:6")
    return root


# The independent reference (plain loops over returns/) is tests/sweep_reference.py.


def _check_against_reference(out: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    _dates, r, params = ref.matrix(out)
    n = r.shape[1]
    assert n == 24 and list(params["lookback"]) == list(range(1, 25))
    sharpes = [ref.daily_sharpe(r[:, k]) for k in range(n)]
    sr0 = ref.sr0(sharpes)
    summary = pd.read_parquet(out / "summary")
    trials = summary[summary["strategy"] == "momentum"].sort_values("lookback")
    assert trials["lookback"].tolist() == list(range(1, 25))
    expected_psr = [ref.psr(r[:, k], 0.0) for k in range(n)]
    expected_dsr = [ref.psr(r[:, k], sr0) for k in range(n)]
    np.testing.assert_allclose(trials["psr"], expected_psr, rtol=0, atol=1e-9)
    np.testing.assert_allclose(trials["dsr"], expected_dsr, rtol=0, atol=1e-9)
    # The annualized Sharpe of summary/ is the same series' daily one x sqrt(252).
    np.testing.assert_allclose(trials["sharpe"], np.asarray(sharpes) * math.sqrt(252), rtol=1e-9)
    validation = pd.read_parquet(out / "validation").iloc[0]
    reference = ref.pbo(r)
    assert validation["n_trials"] == n
    for name, value in reference.items():
        assert validation[name] == pytest.approx(value, abs=1e-9), name
    # top/ carries the same psr and dsr as summary/.
    top = pd.read_parquet(out / "top").sort_values("rank")
    for _, row in top.iterrows():
        match = trials[trials["lookback"] == row["lookback"]].iloc[0]
        assert (row["psr"], row["dsr"]) == (match["psr"], match["dsr"])
    return trials, reference


def test_noise_sweep_pbo_near_half_and_small_dsr(noise: Path) -> None:
    trials, reference = _check_against_reference(noise / "run")
    # Pure noise: the in-sample best lands anywhere out of sample.
    assert 0.2 <= reference["pbo"] <= 0.8
    best = trials.sort_values("sharpe", ascending=False).iloc[0]
    assert best["dsr"] < 0.6
    assert best["dsr"] < best["psr"]  # deflation only lowers the probability


def test_planted_edge_pbo_near_zero_and_dsr_near_one(edge: Path) -> None:
    trials, reference = _check_against_reference(edge / "run")
    assert reference["pbo"] < 0.05
    best = trials.sort_values("sharpe", ascending=False).iloc[0]
    assert best["lookback"] == EDGE_LOOKBACK
    assert best["dsr"] > 0.99
    folds = pd.read_parquet(edge / "run" / "walk_forward")
    assert (folds["lookback"] == EDGE_LOOKBACK).mean() >= 0.8


def test_returns_table_is_long_and_in_grid_order(noise: Path) -> None:
    frame = pd.read_parquet(noise / "run" / "returns")
    assert list(frame.columns) == [
        "run_id",  # every table's first column
        "combination",
        "lookback",
        "rebalance",
        "threshold",
        "date",
        "return",
    ]
    days = pd.bdate_range(START, END)
    assert len(frame) == 24 * len(days)
    assert (frame["lookback"] == frame["combination"] + 1).all()
    manifest = read_manifest(str(noise / "run"))
    assert manifest is not None
    # Not a trial: the baseline is in summary/ only.
    assert manifest["outputs"]["summary"]["rows"] == 25
    assert manifest["outputs"]["returns"]["rows"] == len(frame)


def test_one_and_two_workers_write_the_same_tables(
    edge: Path, tmp_path: Path, scheduler: str
) -> None:
    out = tmp_path / "run"
    _run(edge / "market", out, "--scheduler", scheduler, "--walk-forward", "12:6")
    keys = {
        "summary": ["strategy", "lookback"],
        "top": ["rank"],
        "equity": ["rank", "date"],
        "returns": ["combination", "date"],
        "validation": ["n_trials"],
        "walk_forward": ["fold"],
        "oos_equity": ["date"],
    }
    for name, key in keys.items():
        one = pd.read_parquet(edge / "run" / name).sort_values(key).reset_index(drop=True)
        two = pd.read_parquet(out / name).sort_values(key).reset_index(drop=True)
        pd.testing.assert_frame_equal(two, one, check_exact=False, rtol=1e-12, obj=name)


def _first_and_last(days: pd.DatetimeIndex, lo: str, hi: str) -> tuple[dt.date, dt.date]:
    inside = days[(days >= lo) & (days < hi)]
    return inside[0].date(), inside[-1].date()


def test_walk_forward_folds_by_hand(noise: Path, tmp_path: Path, scheduler: str) -> None:
    """2:2 anchored over 2020-01-01 .. 2020-07-15: m0 = 2020-01; fold 0 trains on Jan-Feb and
    tests on Mar-Apr; fold 1 trains on Jan-Apr (anchored) and tests on May-Jun; fold 2 trains
    on Jan-Jun and tests on July, short (to the 15th): a test window starting in the last
    month still holds dates. Business days: 2020-02-28 and 2020-04-30 close their months."""
    out = tmp_path / "run"
    extra = ["--start", "2020-01-01", "--end", "2020-07-15", "--cscv-blocks", "4"]
    _run(
        noise / "market",
        out,
        "--scheduler",
        scheduler,
        *extra,
        "--walk-forward",
        "2:2",
        "--anchored",
    )
    d = dt.date
    expected = [
        (0, d(2020, 1, 1), d(2020, 2, 28), d(2020, 3, 2), d(2020, 4, 30)),
        (1, d(2020, 1, 1), d(2020, 4, 30), d(2020, 5, 1), d(2020, 6, 30)),
        (2, d(2020, 1, 1), d(2020, 6, 30), d(2020, 7, 1), d(2020, 7, 15)),
    ]
    # The chosen combinations, their figures and the stitched equity, by plain loops.
    ref.check_walk_forward(out, expected, ["lookback"])
    row = pd.read_parquet(out / "validation").iloc[0]
    assert row["n_splits"] == 6  # C(4, 2)


def test_benchmark_columns_and_the_buy_and_hold_baseline(noise: Path) -> None:
    """No SPX in this market: the benchmark is the equal-weighted universe, each day the mean
    close-to-close return of the symbols; the baseline holds it, one entry charged on day 0."""
    prices = pd.read_parquet(noise / "market" / "prices").sort_values(["symbol", "date"])
    closes = prices.pivot(index="date", columns="symbol", values="close")
    universe = (closes / closes.shift(1) - 1).mean(axis=1).to_numpy()  # NaN on day 0
    summary = pd.read_parquet(noise / "run" / "summary")
    baseline = summary[summary["strategy"] == "buy-and-hold"].iloc[0]
    entry = (1 + 10e-4) * (1 + 5e-4)  # slippage 10 bps and fees 5 bps on the buy
    held = np.concatenate([[1 / entry - 1], universe[1:]])
    assert baseline["total_return"] == pytest.approx(np.prod(1 + held) - 1, rel=1e-9)
    assert baseline["benchmark_return"] == pytest.approx(np.prod(1 + universe[1:]) - 1, rel=1e-9)
    # A trial against the benchmark over the dates both have: day 0 has no benchmark return.
    _dates, r, _ = ref.matrix(noise / "run")
    k = 3
    diff = r[1:, k] - universe[1:]
    row = summary[(summary["strategy"] == "momentum") & (summary["lookback"] == k + 1)].iloc[0]
    assert row["benchmark_return"] == pytest.approx(np.prod(1 + universe[1:]) - 1, rel=1e-9)
    assert row["excess_return"] == pytest.approx(
        np.prod(1 + r[1:, k]) - np.prod(1 + universe[1:]), rel=1e-9
    )
    assert row["tracking_error"] == pytest.approx(np.std(diff, ddof=1) * math.sqrt(252), rel=1e-9)
    assert row["information_ratio"] == pytest.approx(
        np.mean(diff) / np.std(diff, ddof=1) * math.sqrt(252), rel=1e-9
    )
    cov = np.cov(r[1:, k], universe[1:], ddof=1)
    assert row["beta"] == pytest.approx(cov[0, 1] / cov[1, 1], rel=1e-9)
    manifest = read_manifest(str(noise / "run"))
    assert manifest is not None and manifest["summary"]["benchmark"] == "equal-weighted"


def test_a_named_benchmark(noise: Path, tmp_path: Path, scheduler: str) -> None:
    out = tmp_path / "run"
    _run(
        noise / "market", out, "--scheduler", scheduler, "--benchmark", "S02", "--end", "2018-12-31"
    )
    closes = pd.read_parquet(noise / "market" / "prices").query("symbol == 'S02'")
    closes = closes.sort_values("date")
    closes = closes[closes["date"] <= dt.date(2018, 12, 31)]["close"].to_numpy()
    summary = pd.read_parquet(out / "summary")
    np.testing.assert_allclose(summary["benchmark_return"], closes[-1] / closes[0] - 1, rtol=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cscv-blocks", "3"], "even number"),
        (["--anchored"], "--anchored needs --walk-forward"),
        (["--walk-forward", "12"], "TRAIN:TEST"),
        (["--cscv-blocks", "4000"], "smaller --cscv-blocks"),
        (["--benchmark", "NOPE"], "benchmark symbol 'NOPE' has no prices"),
        (["--walk-forward", "12:6", "--shard", "0/2"], "cannot be combined with --shard"),
    ],
)
def test_bad_validation_options_exit_2_without_output(
    noise: Path, tmp_path: Path, scheduler: str, args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    result = run_cli(
        [
            "backtest",
            "--input",
            str(noise / "market"),
            "--output",
            str(out),
            "--strategy",
            "momentum",
            "--grid",
            "lookback=2,3",
            "--scheduler",
            scheduler,
            *args,
        ]
    )
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert read_manifest(str(out)) is None
    assert not (out / "results").exists() and not (out / "_shards").exists()


def test_report_has_the_validation_section(noise: Path) -> None:
    page = (noise / "run" / "report.html").read_text()
    row = pd.read_parquet(noise / "run" / "validation").iloc[0]
    assert "Is the best combination luck?" in page
    assert f"{row['pbo']:.2f}" in page
    assert "CSCV: logit" in page  # the histogram of the splits' logits
    assert "Walk-forward folds" in page and "stitched out-of-sample" in page
    assert '<th class="num">dsr</th>' in page  # DSR in the top table
    folds = pd.read_parquet(noise / "run" / "walk_forward")
    assert page.count(str(folds["test_start"].iloc[-1])) >= 1
