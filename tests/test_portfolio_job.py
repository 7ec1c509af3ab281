"""The ``portfolio-backtest`` job end to end: against the kernel run directly on the same panel,
one worker against a two-process cluster, and an AWS Batch multi-node job (simulated)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.jobs.portfolio_backtest import job as pjob
from analytics.jobs.portfolio_backtest.kernel import Panel, Rules, panel_from_rows, simulate
from analytics.jobs.portfolio_backtest.options import STRATEGIES
from analytics.jobs.portfolio_backtest.scores import DEFAULTS
from analytics.jobs.portfolio_backtest.simulate import Run
from cluster.simulate import Simulation, node_host
from tests.conftest import read_manifest, run_cli

# 3 lookbacks x 2 skips x 2 quantiles x 2 rebalances = 24 combinations, none refused.
GRID = {"lookback": [20, 40, 60], "skip": [0, 5], "quantile": [0.2, 0.5], "rebalance": [5, 10]}
GRID_ARGS = [
    a for name, values in GRID.items() for a in ("--grid", f"{name}={','.join(map(str, values))}")
]
# Every cost, long-short, inverse-vol weights and both filters.
RULES = Rules(
    direction="long-short",
    fill="next-open",
    weighting="inverse-vol",
    fees_bps=5.0,
    slippage_bps=10.0,
    impact_coefficient=0.1,
    borrow_bps=50.0,
    min_price=1.0,
    min_adv=1000.0,
)
RULE_ARGS = [
    "--direction", "long-short", "--weighting", "inverse-vol", "--fees-bps", "5",
    "--slippage-bps", "10", "--impact-coefficient", "0.1", "--borrow-bps", "50",
    "--min-price", "1", "--min-adv", "1000",
]  # fmt: skip
TOP = 4
TABLES = {
    "results": ["lookback", "skip", "quantile", "rebalance"],
    "top": ["rank"],
    "equity": ["rank", "date"],
    "holdings": ["rank", "symbol"],
    "returns": ["combination", "date"],
    "validation": ["n_trials"],
    "walk_forward": ["fold"],
    "oos_equity": ["date"],
}
# The validation outputs too: the market's six months make 2-month training windows.
VALIDATION_ARGS = ["--keep-returns", "--walk-forward", "2:1", "--cscv-blocks", "8"]


def _args(market: Path, out: Path, *extra: str) -> list[str]:
    return [
        "portfolio-backtest", "--input", str(market), "--output", str(out),
        "--strategy", "xs-momentum", *GRID_ARGS, *RULE_ARGS, "--top", str(TOP),
        *VALIDATION_ARGS, "--run-id", "t", *extra,
    ]  # fmt: skip


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    """Every table with its own columns (run_id first, one value: each run has its own)."""
    found = {}
    for name, keys in TABLES.items():
        frame = pd.read_parquet(out / name)
        assert frame.columns[0] == "run_id" and frame["run_id"].nunique() == 1, name
        found[name] = frame.drop(columns="run_id").sort_values(keys).reset_index(drop=True)
    return found


@pytest.fixture(scope="module")
def one_worker(market: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pbt1") / "run"
    result = run_cli(_args(market, out, "--workers", "1"))
    assert result.code == 0, result.stderr
    assert "portfolio-backtest: top 4 of 24 xs-momentum combinations" in result.stdout
    return out


def _panel(market: Path) -> Panel:
    """The panel built here from the Parquet files with pandas (not the job's reading path)."""
    frame = pd.read_parquet(
        market / "prices", columns=["symbol", "date", "open", "close", "volume"]
    )
    return panel_from_rows(
        frame["date"].to_numpy(),
        frame["symbol"].astype(str).to_numpy(),
        frame["open"],
        frame["close"],
        frame["volume"],
    )


def _combos() -> list[dict[str, float]]:
    return [
        {"lookback": lb, "skip": sk, "quantile": q, "rebalance": rb}
        for lb in GRID["lookback"]
        for sk in GRID["skip"]
        for q in GRID["quantile"]
        for rb in GRID["rebalance"]
    ]


@pytest.fixture(scope="module")
def kernel_runs(market: Path) -> tuple[Panel, list[Run]]:
    panel = _panel(market)
    return panel, simulate(panel, "xs-momentum", _combos(), RULES, holdings=True)


def _sharpe(returns: np.ndarray) -> float:
    """Mean over sample std (ddof=1), x sqrt(252): written here, not taken from the job."""
    return float(np.mean(returns) / np.std(returns, ddof=1) * np.sqrt(252))


def test_results_equal_the_kernel_on_the_same_panel(
    one_worker: Path, kernel_runs: tuple[Panel, list[Run]]
) -> None:
    _, runs = kernel_runs
    results = _tables(one_worker)["results"]
    assert list(results.columns) == [
        "strategy", "lookback", "skip", "quantile", "rebalance", "total_return",
        "annual_return", "annual_volatility", "sharpe", "sortino", "max_drawdown", "calmar",
        "turnover", "avg_long", "avg_short", "cost_fees", "cost_slippage", "cost_impact",
        "cost_borrow", "n_rebalances", "psr", "dsr", "benchmark_return", "excess_return",
        "tracking_error", "information_ratio", "beta", "alpha",
    ]  # fmt: skip
    assert len(results) == len(runs) == 24
    assert set(results["strategy"]) == {"xs-momentum"}
    for row, run in zip(results.itertuples(index=False), runs, strict=True):
        assert (row.lookback, row.skip, row.quantile, row.rebalance) == tuple(run.params.values())
        assert run.first_fill >= 0 and len(run.returns) >= 2
        assert row.total_return == pytest.approx(run.equity[-1] - 1.0, rel=1e-12, abs=1e-15)
        assert row.sharpe == pytest.approx(_sharpe(run.returns), rel=1e-9)
        years = len(run.returns) / 252
        assert row.annual_return == pytest.approx(run.equity[-1] ** (1 / years) - 1, rel=1e-9)
        peak = np.maximum.accumulate(np.concatenate([[1.0], run.equity]))
        assert row.max_drawdown == pytest.approx(np.min(run.equity / peak[1:] - 1), rel=1e-12)
        for name in (
            "turnover", "avg_long", "avg_short", "cost_fees", "cost_slippage", "cost_impact",
            "cost_borrow", "n_rebalances",
        ):  # fmt: skip
            assert getattr(row, name) == getattr(run, name), name
    # Every cost was paid somewhere, and the book held shorts.
    for name in ("cost_fees", "cost_slippage", "cost_impact", "cost_borrow"):
        assert (results[name] > 0).all(), name
    assert (results["avg_short"] > 0).all()


def test_top_equity_and_holdings_are_the_best_combinations(
    one_worker: Path, kernel_runs: tuple[Panel, list[Run]]
) -> None:
    panel, runs = kernel_runs
    tables = _tables(one_worker)
    results, top = tables["results"], tables["top"]
    expected = results.sort_values("sharpe", ascending=False, kind="stable").head(TOP)
    assert top["rank"].tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(
        top.drop(columns="rank"), expected.reset_index(drop=True), check_exact=True
    )
    params = list(GRID)
    for rank, row in zip(top["rank"], top.itertuples(index=False), strict=True):
        i = next(
            j for j, r in enumerate(runs) if all(r.params[p] == getattr(row, p) for p in params)
        )
        run = runs[i]
        curve = tables["equity"][tables["equity"]["rank"] == rank]
        np.testing.assert_array_equal(curve["equity"].to_numpy(), run.equity)
        dates = panel.dates[run.first_fill :]
        assert curve["date"].to_numpy(dtype="datetime64[D]").tolist() == dates.tolist()
        held = tables["holdings"][tables["holdings"]["rank"] == rank].sort_values("symbol")
        assert run.holdings is not None
        order = np.argsort(run.holdings.symbols)
        assert held["symbol"].tolist() == run.holdings.symbols[order].tolist()
        np.testing.assert_array_equal(held["shares"].to_numpy(), run.holdings.shares[order])
        # value = shares x the last close; weight = value / the last equity.
        last_close = panel.last_close[-1, np.searchsorted(panel.symbols, held["symbol"])]
        np.testing.assert_allclose(held["value"], held["shares"] * last_close, rtol=1e-15)
        np.testing.assert_allclose(held["weight"], held["value"] / run.equity[-1], rtol=1e-15)
        assert (held["date"].astype(str) == str(panel.dates[-1])).all()


def test_one_worker_and_two_processes_give_identical_tables(
    one_worker: Path, market: Path, scheduler: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = run_cli(_args(market, out, "--scheduler", scheduler))
    assert result.code == 0, result.stderr
    manifest = read_manifest(str(out))
    assert manifest is not None
    # Two threads: at least three chunks each.
    assert manifest["summary"]["combination_chunks"] >= 6
    one, two = _tables(one_worker), _tables(out)
    for name in TABLES:
        pd.testing.assert_frame_equal(two[name], one[name], check_exact=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((node_host(0), 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def simulations() -> Iterator[list[Simulation]]:
    sims: list[Simulation] = []
    yield sims
    for sim in sims:
        sim.stop_all(grace=5)


def test_multi_node_job_gives_identical_tables(
    one_worker: Path, market: Path, tmp_path: Path, simulations: list[Simulation]
) -> None:
    out = tmp_path / "run"
    args = _args(market, out)[:-2]  # the run id is the Batch job's
    sim = Simulation(
        3, args, job_id="pbt", scheduler_port=_free_port(), dashboard_port=0, echo=False
    )
    simulations.append(sim)
    assert sim.run(child_delay=(0.2, 1.0), seed=1) == 0, "".join(sim.output[0])
    manifest = read_manifest(str(out))
    assert manifest is not None and manifest["cluster"]["workers"] == 3
    one, mnp = _tables(one_worker), _tables(out)
    for name in TABLES:
        pd.testing.assert_frame_equal(mnp[name], one[name], check_exact=True)


def test_chunks_give_every_thread_three_tasks() -> None:
    # 24 combinations on 2 threads: ceil(24 / 6) = 4 a chunk, 6 chunks.
    assert pjob.combinations_per_chunk(24, 125, 2) == 4
    # 100 on 5 threads: ceil(100 / 15) = 7 a chunk, 15 chunks (>= 3 per thread).
    assert pjob.combinations_per_chunk(100, 2520, 5) == 7
    # 1,000,000 combinations of 5,040 dates: 8 Mi cells / 5,040 = 1,664 a chunk at most.
    assert pjob.combinations_per_chunk(1_000_000, 5040, 2) == 1664


def test_strategies_are_the_kernels() -> None:
    assert set(STRATEGIES) == set(DEFAULTS)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["--grid", "quantile=0.5,1.5"], "--grid quantile has 1.5; a quantile must be in (0, 1]"),
        (["--grid", "lookback=10", "--grid", "skip=10"], "skip < lookback"),
        (["--grid", "window=5"], "'xs-momentum' has no parameter 'window'"),
        (["--grid", "rebalance=0:4:2"], "rebalance must be >= 1"),
        (["--grid", "lookback=1:2:0"], "the step must be > 0"),
    ],
)
def test_bad_grid_exits_2_before_any_output(
    market: Path, tmp_path: Path, grid: list[str], message: str
) -> None:
    out = tmp_path / "run"
    args = ["portfolio-backtest", "--input", str(market), "--output", str(out)]
    result = run_cli([*args, "--strategy", "xs-momentum", *grid])
    assert result.code == 2
    assert message in result.stderr
    assert not out.exists()
    assert result.stdout == ""


def test_manifest_records_the_options(one_worker: Path) -> None:
    manifest = read_manifest(str(one_worker))
    assert manifest is not None
    params = manifest["parameters"]
    assert params["strategy"] == "xs-momentum"
    assert params["impact_coefficient"] == 0.1
    assert json.loads(json.dumps(params["grid"])) == GRID_ARGS[1::2]
    assert manifest["summary"]["combinations"] == 24


def test_a_combination_does_not_depend_on_its_chunk() -> None:
    """The kernel's numbers for one combination are the same to the last bit whether it is
    simulated with all the others or in chunks of three: what makes 1 and N workers agree.

    150 generated symbols over 3 years, long-short with borrow (sums of long and short values
    cancel, so any change in the order of summation shows), rebalance periods that cut the days
    into different event segments in each chunk.
    """
    from bench.portfolio_sweep import generated_panel

    panel = generated_panel(150, 3, seed=5)
    combos = [
        {"lookback": lb, "skip": sk, "quantile": q, "rebalance": rb}
        for lb in (63, 126)
        for sk in (0, 21)
        for q in (0.1, 0.3)
        for rb in (5, 21, 42)
    ]
    rules = Rules(direction="long-short", borrow_bps=30.0, fees_bps=2.0)
    together = simulate(panel, "xs-momentum", combos, rules)
    for k in range(0, len(combos), 3):
        alone = simulate(panel, "xs-momentum", combos[k : k + 3], rules)
        for a, b in zip(alone, together[k : k + 3], strict=True):
            np.testing.assert_array_equal(a.equity, b.equity)
            assert (a.turnover, a.cost_borrow) == (b.turnover, b.cost_borrow)


def test_report_has_the_section_costs_and_holdings(one_worker: Path) -> None:
    page = (one_worker / "report.html").read_text()
    assert "Portfolio backtest: xs-momentum" in page
    assert "Costs of the top combinations" in page
    assert "<svg" in page  # the equity and Sharpe charts
    best = _tables(one_worker)["holdings"].query("rank == 1")
    assert f"Holdings of the best combination at the last close ({len(best)} names)" in page
    for symbol in best["symbol"]:
        assert f">{symbol}<" in page


def test_the_panel_is_on_every_worker_once(market: Path, scheduler: str, tmp_path: Path) -> None:
    """Graph 1 leaves one copy of the panel on each worker, before any simulation asks."""
    from distributed import Client

    from analytics.jobs.contract import JobContext, RunSettings
    from analytics.jobs.portfolio_backtest.options import Options

    settings = RunSettings(input_url=str(market), output_url=str(tmp_path / "run"))
    options = Options(strategy="xs-reversal")
    with Client(scheduler) as client:
        panel, files, _ = pjob.read(JobContext(client, settings, options))
        holders = client.who_has([panel])[panel.key]
        assert sorted(holders) == sorted(client.scheduler_info()["workers"])
        assert len(holders) == 2
        built = client.submit(pjob._shape, panel).result()
        assert built == (len(_panel(market).dates), len(_panel(market).symbols))
        assert len(files) == len(list((market / "prices").rglob("*.parquet")))
