"""The ``backtest`` job end to end through the CLI, on real multi-process Dask clusters."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.stats import metrics
from tests import test_backtest_reference as ref
from tests.conftest import read_manifest, run_cli

GRID = ["--grid", "fast=2:8:3", "--grid", "slow=6,10,20"]  # 3 x 3, fast < slow keeps 8
COSTS = ["--fees-bps", "5", "--slippage-bps", "10"]
RESULT_COLUMNS = [
    "strategy",
    "fast",
    "slow",
    "symbol",
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "n_trades",
    "win_rate",
    "exposure",
    "turnover",
]

VALIDATION = [
    "psr",
    "dsr",
    "benchmark_return",
    "excess_return",
    "tracking_error",
    "information_ratio",
    "beta",
    "alpha",
]


def _run(market: Path, out: Path, *extra: str) -> str:
    result = run_cli(
        [
            "backtest",
            "--input",
            str(market),
            "--output",
            str(out),
            "--strategy",
            "sma-cross",
            *GRID,
            *COSTS,
            "--run-id",
            "t",
            *extra,
        ]
    )
    assert result.code == 0, result.stderr
    return result.stdout


def _table(out: Path, name: str, keys: list[str]) -> pd.DataFrame:
    frame = pd.read_parquet(out / name)
    return frame.sort_values(keys).reset_index(drop=True)


def _prices(market: Path) -> pd.DataFrame:
    frame = pd.read_parquet(market / "prices", columns=["symbol", "date", "open", "close"])
    frame["symbol"] = frame["symbol"].astype(str)
    return frame.sort_values(["symbol", "date"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def one_worker(market: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bt1") / "run"
    stdout = _run(market, out, "--workers", "1", "--top", "3")
    return out, stdout


def test_output_contract(one_worker: tuple[Path, str], market: Path) -> None:
    out, stdout = one_worker
    results = pd.read_parquet(out / "results")
    assert list(results.columns) == ["run_id", *RESULT_COLUMNS]
    assert set(results.pop("run_id")) == {"t"}
    symbols = sorted(_prices(market)["symbol"].unique())
    combos = {(2, 6), (2, 10), (2, 20), (5, 6), (5, 10), (5, 20), (8, 10), (8, 20)}
    assert set(zip(results["fast"], results["slow"], strict=True)) == combos
    assert len(results) == len(combos) * len(symbols)
    assert set(results["symbol"]) == set(symbols)
    whole = pd.read_parquet(out / "summary").drop(columns="run_id")
    assert list(whole.columns) == [c for c in RESULT_COLUMNS if c != "symbol"] + VALIDATION
    # One row per combination and the buy-and-hold baseline, which has no parameters.
    assert len(whole) == len(combos) + 1
    baseline = whole[whole["strategy"] == "buy-and-hold"]
    assert len(baseline) == 1 and baseline[["fast", "slow", "psr", "dsr"]].isna().all(axis=None)
    summary = whole[whole["strategy"] != "buy-and-hold"]
    top = _table(out, "top", ["rank"])
    assert top["rank"].tolist() == [1, 2, 3]
    best = summary.sort_values("sharpe", ascending=False).head(3)
    assert top["sharpe"].tolist() == best["sharpe"].tolist()
    # The top table goes to stdout, best first.
    assert "rank" in stdout and "sharpe" in stdout
    first_line = stdout.splitlines()[
        stdout.splitlines().index(
            next(line for line in stdout.splitlines() if line.strip().startswith("rank"))
        )
        + 1
    ]
    assert first_line.split()[:3] == ["1", str(top["fast"][0]), str(top["slow"][0])]
    manifest = read_manifest(str(out))
    assert manifest is not None
    assert manifest["summary"]["combinations"] == len(combos)
    assert manifest["outputs"]["results"]["rows"] == len(results)


def test_results_agree_with_the_day_loop(one_worker: tuple[Path, str], market: Path) -> None:
    """Every row of results/ against the plain-loop reference on the symbol's own rows."""
    out, _ = one_worker
    results = _table(out, "results", ["fast", "slow", "symbol"])
    prices = _prices(market)
    rows = []
    for (fast, slow), _ in results.groupby(["fast", "slow"]):
        for symbol, series in prices.groupby("symbol"):
            o, c = series["open"].tolist(), series["close"].tolist()
            target = ref.targets("sma-cross", c, {"fast": fast, "slow": slow}, False)
            run = ref.execute(o, c, target, fill="next-open", fee=0.0005, slippage=0.001)
            rows.append({"fast": fast, "slow": slow, "symbol": symbol, **ref.statistics(run)})
    want = pd.DataFrame(rows).sort_values(["fast", "slow", "symbol"]).reset_index(drop=True)
    for name in RESULT_COLUMNS[4:]:
        np.testing.assert_allclose(
            results[name].astype(float), want[name], rtol=1e-9, atol=1e-12, err_msg=name
        )


def _portfolio_returns(market: Path, fast: int, slow: int, fill: str) -> pd.Series:
    """The equal-weighted portfolio: each day, the mean return of the symbols with a row."""
    parts = []
    for _, series in _prices(market).groupby("symbol"):
        o, c = series["open"].tolist(), series["close"].tolist()
        target = ref.targets("sma-cross", c, {"fast": fast, "slow": slow}, False)
        run = ref.execute(o, c, target, fill=fill, fee=0.0005, slippage=0.001)
        parts.append(pd.Series(run.returns, index=series["date"].to_numpy()))
    return pd.concat(parts).groupby(level=0).mean().sort_index()


def test_summary_top_and_equity_are_the_equal_weighted_portfolio(
    one_worker: tuple[Path, str], market: Path
) -> None:
    out, _ = one_worker
    summary = _table(out, "summary", ["fast", "slow"]).set_index(["fast", "slow"])
    results = pd.read_parquet(out / "results")
    top = _table(out, "top", ["rank"])
    equity = _table(out, "equity", ["rank", "date"])
    for fast, slow in [(2, 6), (8, 20), (int(top["fast"][0]), int(top["slow"][0]))]:
        r = _portfolio_returns(market, fast, slow, "next-open")
        row = summary.loc[(fast, slow)]
        arr = r.to_numpy()[None, :]
        assert row["sharpe"] == pytest.approx(metrics.sharpe_ratio(arr, periods_per_year=252)[0])
        assert row["total_return"] == pytest.approx(metrics.total_return(arr)[0], rel=1e-9)
        assert row["max_drawdown"] == pytest.approx(metrics.max_drawdown(arr)[0], rel=1e-9)
        mine = results[(results["fast"] == fast) & (results["slow"] == slow)]
        assert row["n_trades"] == mine["n_trades"].sum()
        assert row["turnover"] == pytest.approx(mine["turnover"].mean(), rel=1e-9)
    # equity/: the top combinations' portfolio equity, one row per date, ending at 1 + total.
    dates = sorted(_prices(market)["date"].unique())
    assert equity.groupby("rank").size().tolist() == [len(dates)] * len(top)
    for rank, curve in equity.groupby("rank"):
        row = top[top["rank"] == rank].iloc[0]
        assert curve["equity"].iloc[-1] == pytest.approx(1 + row["total_return"], rel=1e-9)
        assert list(curve["date"]) == dates


def _reshard(src: Path, dst: Path) -> None:
    """The same prices as a flat folder of one shuffled file per month."""
    frame = pq.read_table(src / "prices").to_pandas()
    frame = frame.drop(columns=[c for c in ("year",) if c in frame.columns])
    months = pd.to_datetime(frame["date"]).dt.to_period("M")
    (dst / "prices").mkdir(parents=True)
    for i, (_, part) in enumerate(frame.groupby(months)):
        pq.write_table(
            pa.Table.from_pandas(part.sample(frac=1.0, random_state=i), preserve_index=False),
            dst / "prices" / f"chunk-{i:03d}.parquet",
        )


def test_same_results_with_two_workers_and_many_partitions(
    one_worker: tuple[Path, str], market: Path, tmp_path: Path, scheduler: str
) -> None:
    out1, _ = one_worker
    flat = tmp_path / "flat"
    _reshard(market, flat)
    out2 = tmp_path / "run"
    _run(flat, out2, "--scheduler", scheduler, "--top", "3")
    for table, keys in [
        ("results", ["fast", "slow", "symbol"]),
        ("summary", ["fast", "slow"]),
        ("top", ["rank"]),
        ("equity", ["rank", "date"]),
    ]:
        pd.testing.assert_frame_equal(
            _table(out2, table, keys), _table(out1, table, keys), rtol=1e-12, check_exact=False
        )
    files = read_manifest(str(out2))["outputs"]["results"]["files"]  # type: ignore[index]
    assert len(files) > 1  # the results were written by several tasks


def test_long_short_close_fill_and_month_end(market: Path, tmp_path: Path, scheduler: str) -> None:
    prices = _prices(market)
    other = sorted(set(prices["symbol"]) - {"SPX"})[0]
    out = tmp_path / "run"
    stdout = _run(
        market,
        out,
        "--scheduler",
        scheduler,
        "--direction",
        "long-short",
        "--fill",
        "close",
        "--as-of-month",
        "2024-02",
        "--symbols",
        f"SPX,{other}",
    )
    feb = prices[(prices["date"] >= dt.date(2024, 2, 1)) & (prices["date"] <= dt.date(2024, 2, 29))]
    last = max(feb["date"])
    manifest = read_manifest(str(out))
    assert manifest is not None
    assert manifest["summary"]["end"] == last.isoformat()
    assert "2024-02" in stdout
    results = _table(out, "results", ["fast", "slow", "symbol"])
    picked = prices[prices["symbol"].isin(["SPX", other]) & (prices["date"] <= last)]
    assert set(results["symbol"]) == {"SPX", other}
    for (fast, slow, symbol), row in results.set_index(["fast", "slow", "symbol"]).iterrows():
        series = picked[picked["symbol"] == symbol]
        o, c = series["open"].tolist(), series["close"].tolist()
        target = ref.targets("sma-cross", c, {"fast": fast, "slow": slow}, True)
        run = ref.execute(o, c, target, fill="close", fee=0.0005, slippage=0.001)
        for name, value in ref.statistics(run).items():
            assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "fast=5:2:1", "--grid", "slow=10"], "start 5 is above stop 2"),
        (["--grid", "fast=a,b", "--grid", "slow=10"], "'a' is not a number"),
        (["--grid", "fast5", "--grid", "slow=10"], "is not PARAM=start:stop:step"),
        (["--grid", "fast=1:10:0", "--grid", "slow=10"], "the step must be > 0"),
        (["--grid", "fats=2", "--grid", "slow=10"], "has no parameter 'fats'"),
        (["--grid", "fast=2.5", "--grid", "slow=10"], "fast takes whole numbers"),
        (["--grid", "fast=20,30", "--grid", "slow=10"], "fast < slow"),
        (["--grid", "fast=2"], "needs --grid slow="),
        (["--grid", "fast=2", "--grid", "slow=5", "--grid", "slow=6"], "gives 'slow' twice"),
        (["--grid", "fast=2", "--grid", "slow=5", "--as-of-month", "2024-13"], "YYYY-MM"),
        (
            ["--grid", "fast=2", "--grid", "slow=5", "--as-of-month", "2030-01"],
            "no prices in 2030-01",
        ),
        (
            [
                "--grid",
                "fast=2",
                "--grid",
                "slow=5",
                "--as-of-month",
                "2024-01",
                "--end",
                "2024-01-31",
            ],
            "either --end or --as-of-month",
        ),
        (["--grid", "fast=2", "--grid", "slow=5", "--fees-bps", "-1"], "basis points"),
    ],
)
def test_bad_arguments_exit_2_without_output(
    market: Path, tmp_path: Path, scheduler: str, args: list[str], message: str
) -> None:
    out = tmp_path / "run"
    result = run_cli(
        [
            "backtest",
            "--input",
            str(market),
            "--output",
            str(out),
            "--strategy",
            "sma-cross",
            "--scheduler",
            scheduler,
            *args,
        ]
    )
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert read_manifest(str(out)) is None
    assert not (out / "results").exists()


def test_adding_a_strategy_touches_nothing_else(tmp_path: Path) -> None:
    """A new module in the strategies package is found by the registry and the CLI."""
    import analytics.jobs.backtest.strategies as package
    from analytics.jobs.backtest.strategies import registry

    source = Path(package.__file__).parent
    module = source / "always_long.py"
    module.write_text(
        "import numpy as np\n"
        "from analytics.jobs.backtest.strategies._base import Param, Strategy\n"
        "def positions(prices, combos, long_short):\n"
        "    d, s = prices.shape\n"
        "    return np.ones((d, len(combos['k']), s), dtype=np.int8)\n"
        "STRATEGY = Strategy('always-long', 'test', (Param('k', int, 'unused'),), positions)\n"
    )
    try:
        registry.cache_clear()
        assert "always-long" in registry()
        result = run_cli(["backtest", "--help"])
        assert "always-long" in result.stdout
    finally:
        module.unlink()
        shutil.rmtree(source / "__pycache__", ignore_errors=True)
        registry.cache_clear()


@pytest.mark.parametrize(
    ("today", "month"), [(dt.date(2024, 3, 1), "2024-02"), (dt.date(2024, 3, 4), None)]
)
def test_previous_month_on_the_first_session_only(
    market: Path,
    tmp_path: Path,
    scheduler: str,
    monkeypatch: pytest.MonkeyPatch,
    today: dt.date,
    month: str | None,
) -> None:
    """The monthly schedule's ``--as-of-month previous``: on the first session of a month (a
    Friday, 2024-03-01) it runs the month before; on another day it has nothing to do."""
    from analytics import sessions

    monkeypatch.setattr(sessions, "exchange_today", lambda *args, **kwargs: today)
    out = tmp_path / "run"
    result = run_cli(
        [
            "backtest",
            "--input",
            str(market),
            "--output",
            str(out),
            "--strategy",
            "sma-cross",
            "--grid",
            "fast=2",
            "--grid",
            "slow=5",
            "--scheduler",
            scheduler,
            "--as-of-month",
            "previous",
            "--calendar",
            "XNYS",
        ]
    )
    assert result.code == 0, result.stderr
    manifest = read_manifest(str(out))
    if month is None:
        assert manifest is None
        assert "is not the first session of 2024-03" in result.stdout + result.stderr
    else:
        assert manifest is not None
        assert manifest["summary"]["end"] == "2024-02-29"


def test_a_small_sweep_runs_as_one_task_per_thread_and_a_large_one_as_three() -> None:
    from analytics.jobs.backtest.job import combinations_per_chunk

    # 1,000 days x 100 symbols x 100 combinations = 10 M cells: one task of 10 M at least,
    # fewer than the 2 threads, so one task per thread: 50 combinations each.
    assert combinations_per_chunk(100, 1000, 100.0, 1, 2) == 50
    # 2,520 x 150 (x 2 buckets) x 200 = 151 M cells: 15 tasks of 10 M would fit, 3 per thread
    # are enough: 3 chunks of ceil(200 / 3) = 67 in each of the 2 buckets.
    assert combinations_per_chunk(200, 2520, 150.0, 2, 2) == 67
    # 1,000 x 100 x 400 = 40 M cells: 4 tasks of 10 M, under 3 per thread (6): 100 each.
    assert combinations_per_chunk(400, 1000, 100.0, 1, 2) == 100
    # 1,000 x 100 x 1,000 = 100 M cells: 10 tasks fit, 6 wanted: ceil(1,000 / 6) = 167.
    assert combinations_per_chunk(1000, 1000, 100.0, 1, 2) == 167
    # 200 M cells a task: 1,006 x 201 = 202,206 cells a combination, int(200 M / 202,206) =
    # 989 combinations; 5,488 / 989 -> 6 tasks, already 3 per thread.
    assert combinations_per_chunk(5488, 1006, 201.0, 1, 2) == 989
