"""The jobs end to end through the CLI, on real multi-process Dask clusters, local and S3."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from analytics.jobs.market_performance.kernel import OUTPUT_COLUMNS
from tests.conftest import MARKET_END, read_manifest, run_cli

AS_OF = "2024-03-27"


def _metrics(output: str) -> pd.DataFrame:
    frame = (
        pd.read_parquet(f"{output}/metrics").drop(columns="run_id")
        if not output.startswith("s3://")
        else _read_s3(output, "metrics")
    )
    return frame.sort_values(["symbol", "period"]).reset_index(drop=True)


def _read_s3(output: str, table: str) -> pd.DataFrame:
    fs = s3fs.S3FileSystem()
    frame = pq.read_table(f"{output.removeprefix('s3://')}/{table}", filesystem=fs).to_pandas()
    return frame.drop(columns="run_id")


def _reshard_monthly(src: Path, dst: Path) -> None:
    """The same prices as a flat folder of one file per month (many more partitions)."""
    table = pq.read_table(src / "prices")
    frame = table.to_pandas().drop(columns=[c for c in ("year",) if c in table.column_names])
    months = pd.to_datetime(frame["date"]).dt.to_period("M")
    (dst / "prices").mkdir(parents=True)
    for i, (_, part) in enumerate(frame.groupby(months)):
        pq.write_table(
            pa.Table.from_pandas(part.sample(frac=1.0, random_state=i), preserve_index=False),
            dst / "prices" / f"chunk-{i:03d}.parquet",
        )
    shutil.copytree(src / "positions", dst / "positions")


@pytest.fixture(scope="module")
def one_worker_run(market: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp("mp1") / "run")
    result = run_cli(
        [
            "market-performance",
            "--input",
            str(market),
            "--output",
            out,
            "--workers",
            "1",
            "--run-id",
            "one",
        ]
    )
    assert result.code == 0, result.stderr
    return out


def test_market_performance_output_contract(one_worker_run: str, market: Path) -> None:
    metrics = _metrics(one_worker_run)
    written = pd.read_parquet(f"{one_worker_run}/metrics")
    assert list(written.columns) == ["run_id", *OUTPUT_COLUMNS]
    assert set(written["run_id"]) == {"one"}
    prices = pd.read_parquet(market / "prices")
    symbols = sorted(prices["symbol"].astype(str).unique())
    assert sorted(metrics["symbol"].unique()) == symbols  # SPX included: it was selected
    all_rows = metrics[metrics["period"] == "ALL"].set_index("symbol")
    # n_returns of ALL = the symbol's number of prices - 1.
    counts = prices.groupby(prices["symbol"].astype(str)).size() - 1
    assert (all_rows["n_returns"] == counts.reindex(all_rows.index)).all()
    # ALL's returns are the union of the months' returns.
    monthly = metrics[metrics["period"] != "ALL"].groupby("symbol")["n_returns"].sum()
    assert (monthly.reindex(all_rows.index) == all_rows["n_returns"]).all()
    # SPX is the default benchmark: its own beta is 1 and alpha 0.
    assert all_rows.loc["SPX", "beta"] == pytest.approx(1.0, abs=1e-12)
    assert all_rows.loc["SPX", "alpha"] == pytest.approx(0.0, abs=1e-12)
    manifest = read_manifest(one_worker_run)
    assert manifest is not None
    assert manifest["summary"]["benchmark"] == "SPX"
    assert manifest["outputs"]["metrics"]["rows"] == len(metrics)
    assert manifest["run_id"] == "one"
    assert {f["url"] for f in manifest["inputs"]["prices"]["files"]} == {
        str(p) for p in (market / "prices").rglob("*.parquet")
    }


def test_two_workers_many_partitions_same_numbers(
    one_worker_run: str, market: Path, tmp_path: Path, scheduler: str
) -> None:
    resharded = tmp_path / "flat"
    _reshard_monthly(market, resharded)
    out = str(tmp_path / "run")
    result = run_cli(
        [
            "market-performance",
            "--input",
            str(resharded),
            "--output",
            out,
            "--scheduler",
            scheduler,
            "--run-id",
            "two",
        ]
    )
    assert result.code == 0, result.stderr
    pd.testing.assert_frame_equal(_metrics(out), _metrics(one_worker_run), rtol=1e-12, atol=0)


def test_symbol_filter_and_date_range(
    one_worker_run: str, market: Path, tmp_path: Path, scheduler: str
) -> None:
    full = _metrics(one_worker_run)
    first = sorted(s for s in full["symbol"].unique() if s != "SPX")[0]
    pick = [first, "SPX"]
    out = str(tmp_path / "run")
    result = run_cli(
        [
            "market-performance",
            "--input",
            str(market),
            "--output",
            out,
            "--scheduler",
            scheduler,
            "--symbols",
            ",".join(pick),
            "--start",
            "2023-11-01",
            "--end",
            "2024-01-31",
        ]
    )
    assert result.code == 0, result.stderr
    sub = _metrics(out)
    assert sorted(sub["symbol"].unique()) == sorted(pick)
    assert sorted(sub.loc[sub["period"] != "ALL", "period"].unique()) == [
        "2023-11",
        "2023-12",
        "2024-01",
    ]
    # December and January are whole months in both runs: their metrics agree exactly.
    key = ["symbol", "period"]
    both = sub[sub["period"].isin(["2023-12", "2024-01"])].merge(full, on=key, suffixes=("", "_f"))
    assert len(both) == 2 * len(pick)
    np.testing.assert_allclose(both["sharpe"], both["sharpe_f"], rtol=1e-12)
    # November's first return has no previous close in the selection: one return fewer.
    nov = sub[sub["period"] == "2023-11"].merge(full, on=key, suffixes=("", "_f"))
    assert (nov["n_returns"] == nov["n_returns_f"] - 1).all()


def test_progress_and_dashboard_are_printed(market: Path, tmp_path: Path) -> None:
    result = run_cli(
        [
            "market-performance",
            "--input",
            str(market),
            "--output",
            str(tmp_path / "o"),
            "--workers",
            "1",
            "--run-id",
            "p",
        ]
    )
    assert result.code == 0, result.stderr
    assert "dashboard http://127.0.0.1:" in result.stdout
    # The non-terminal progress lines: each phase's end.
    assert "market-performance: reading 2/2 files done in " in result.stdout
    assert "market-performance: committing 1/1 manifest done in " in result.stdout


def _independent_risk(
    market: Path, as_of: str, lookback: int
) -> dict[tuple[str, str, float, int], tuple[float, float]]:
    """VaR / ES by a plain pandas + numpy computation from the raw files."""
    prices = pd.read_parquet(market / "prices")
    prices["symbol"] = prices["symbol"].astype(str)
    positions = pd.read_parquet(market / "positions")
    positions["symbol"] = positions["symbol"].astype(str)
    day = pd.Timestamp(as_of)
    positions = positions[pd.to_datetime(positions["date"]) == day]
    closes = prices.pivot(index="date", columns="symbol", values="close")
    closes.index = pd.to_datetime(closes.index)
    closes = closes.sort_index().loc[:day]
    rets = (closes / closes.ffill().shift(1) - 1).iloc[1:].fillna(0.0).iloc[-lookback:]
    out = {}
    z = NormalDist()
    for name, group in positions.groupby("portfolio"):
        q = group.groupby("symbol")["quantity"].sum()
        q = q[q != 0]
        w = q * closes.loc[day, q.index]
        pnl = rets[q.index].to_numpy() @ w.to_numpy()
        cov = np.cov(rets[q.index].to_numpy(), rowvar=False)
        sigma = math.sqrt(w.to_numpy() @ cov @ w.to_numpy())
        for c in (0.95, 0.99):
            var = -np.percentile(pnl, (1 - c) * 100)
            es = -pnl[pnl <= -var].mean()
            out[(str(name), "historical", c, 1)] = (var, es)
            zc = z.inv_cdf(c)
            out[(str(name), "parametric", c, 1)] = (zc * sigma, sigma * z.pdf(zc) / (1 - c))
    return out


def test_risk_matches_an_independent_computation(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    out = str(tmp_path / "risk")
    result = run_cli(
        [
            "risk",
            "--input",
            str(market),
            "--output",
            out,
            "--scheduler",
            scheduler,
            "--as-of",
            AS_OF,
            "--lookback-days",
            "60",
        ]
    )
    assert result.code == 0, result.stderr
    var = pd.read_parquet(f"{out}/var")
    assert list(var.columns) == [
        "run_id",
        "portfolio",
        "as_of",
        "method",
        "confidence",
        "horizon_days",
        "gross",
        "net",
        "var",
        "es",
        "var_pct",
        "es_pct",
    ]
    # The market starts in 2023: no default stress window, four methods.
    assert sorted(var["method"].unique()) == ["ewma", "fhs", "historical", "parametric"]
    expected = _independent_risk(market, AS_OF, 60)
    assert len(var) == len(expected) * 2 * 2  # two horizons, 1 and 10; ewma and fhs too
    for row in var[var["method"].isin(["historical", "parametric"])].itertuples():
        ref_var, ref_es = expected[(row.portfolio, row.method, row.confidence, 1)]
        scale = math.sqrt(row.horizon_days)
        assert row.var == pytest.approx(ref_var * scale, rel=1e-9)
        assert row.es == pytest.approx(ref_es * scale, rel=1e-9)
        assert row.var_pct == pytest.approx(row.var / row.gross, rel=1e-12)
    # The long/short book (130/30): gross well above net, and var_pct over the gross.
    exposure = _exposures(market, AS_OF)["LONG_SHORT"]
    ls = var[var["portfolio"] == "LONG_SHORT"]
    assert (exposure < 0).any() and (exposure > 0).any()
    np.testing.assert_allclose(ls["gross"], exposure.abs().sum(), rtol=1e-12)
    np.testing.assert_allclose(ls["net"], exposure.sum(), rtol=1e-12)
    assert (ls["gross"] > 1.2 * ls["net"]).all()
    np.testing.assert_allclose(ls["var_pct"], ls["var"] / ls["gross"], rtol=1e-12)
    np.testing.assert_allclose(ls["es_pct"], ls["es"] / ls["gross"], rtol=1e-12)
    contributions = pd.read_parquet(f"{out}/contributions")
    keys = ["portfolio", "confidence", "horizon_days"]
    sums = contributions.groupby(keys)[["component_var", "component_es_hist"]].sum()
    by_method = var.set_index([*keys, "method"])
    np.testing.assert_allclose(
        sums["component_var"], by_method.xs("parametric", level="method")["var"].loc[sums.index]
    )
    np.testing.assert_allclose(
        sums["component_es_hist"],
        by_method.xs("historical", level="method")["es"].loc[sums.index],
        rtol=1e-9,
    )
    # The backtest: every session with 21 returns before it, up to AS_OF (the market has fewer
    # than 250), one row per portfolio, method, confidence and day.
    prices = pd.read_parquet(market / "prices")
    sessions = sorted(d for d in pd.to_datetime(prices["date"]).dt.date.unique() if str(d) <= AS_OF)
    exceptions = pd.read_parquet(f"{out}/var_exceptions")
    assert sorted(exceptions["date"].unique()) == sessions[22:]
    backtest = pd.read_parquet(f"{out}/var_backtest")
    assert len(backtest) == 4 * 4 * 2
    assert (backtest["n_days"] == len(sessions) - 22).all()
    counts = exceptions.groupby(["portfolio", "method", "confidence"])["exception"].sum()
    np.testing.assert_array_equal(
        backtest.set_index(["portfolio", "method", "confidence"])["exceptions"].loc[counts.index],
        counts,
    )
    coverage = pd.read_parquet(f"{out}/coverage")
    assert len(coverage) == contributions.groupby(["portfolio", "symbol"]).ngroups
    summary = read_manifest(out)["summary"]  # type: ignore[index]
    flagged = coverage[coverage["flagged"]]
    assert summary["coverage_flagged"] == [
        f"{p}:{s}" for p, s in zip(flagged.portfolio, flagged.symbol, strict=True)
    ]
    assert summary["stress_window"] is None


def _exposures(market: Path, as_of: str) -> dict[str, pd.Series]:
    """Each portfolio's exposures (quantity x close) on ``as_of``, from the raw files."""
    positions = pd.read_parquet(market / "positions")
    positions = positions[pd.to_datetime(positions["date"]) == pd.Timestamp(as_of)]
    prices = pd.read_parquet(market / "prices")
    close = prices[pd.to_datetime(prices["date"]) == pd.Timestamp(as_of)]
    close = close.set_index(close["symbol"].astype(str))["close"]
    out = {}
    for name, group in positions.groupby("portfolio"):
        q = group.groupby(group["symbol"].astype(str))["quantity"].sum()
        q = q[q != 0]
        out[str(name)] = q * close.loc[q.index]
    return out


def test_risk_keeps_a_portfolio_of_zeros(market: Path, tmp_path: Path, scheduler: str) -> None:
    """VALUE's positions on the as-of date all have quantity 0: it keeps its var rows (no risk,
    no percentages) and has no contributions or coverage rows."""
    data = tmp_path / "in"
    shutil.copytree(market / "prices", data / "prices")
    positions = pd.read_parquet(market / "positions").drop(columns=["year"])
    day = pd.to_datetime(positions["date"]) == pd.Timestamp(AS_OF)
    positions.loc[day & (positions["portfolio"].astype(str) == "VALUE"), "quantity"] = 0.0
    (data / "positions").mkdir()
    positions.to_parquet(data / "positions" / "p.parquet", index=False)
    out = str(tmp_path / "risk")
    result = run_cli(
        [
            "risk",
            *("--input", str(data), "--output", out, "--scheduler", scheduler),
            *("--as-of", AS_OF, "--lookback-days", "60", "--backtest-days", "5"),
        ]
    )
    assert result.code == 0, result.stderr
    var = pd.read_parquet(f"{out}/var")
    value = var[var["portfolio"] == "VALUE"]
    assert len(value) == 4 * 2 * 2  # methods x confidences x horizons
    assert (value[["gross", "net", "var", "es"]] == 0.0).all().all()
    assert value["var_pct"].isna().all()
    assert "VALUE" not in set(pd.read_parquet(f"{out}/contributions")["portfolio"])
    assert "VALUE" not in set(pd.read_parquet(f"{out}/coverage")["portfolio"])
    # Its book of the days before is not zero: the backtest still has it.
    exceptions = pd.read_parquet(f"{out}/var_exceptions")
    assert exceptions[exceptions["portfolio"] == "VALUE"]["date"].nunique() == 5


def test_s3_end_to_end_equals_local(
    s3_bucket: str, scheduler: str, one_worker_run: str, market: Path, tmp_path: Path
) -> None:
    root = f"s3://{s3_bucket}/market"
    gen = run_cli(
        [
            "generate-data",
            "--output",
            root,
            "--start",
            "2023-10-02",
            "--end",
            MARKET_END.isoformat(),
            "--n-symbols",
            "24",
            "--intraday-symbols",
            "2",
            "--intraday-days",
            "2",
            "--seed",
            "7",
        ]
    )
    assert gen.code == 0, gen.stderr
    out = f"s3://{s3_bucket}/runs/mp"
    mp = run_cli(
        [
            "market-performance",
            "--input",
            root,
            "--output",
            out,
            "--scheduler",
            scheduler,
            "--run-id",
            "s3",
        ]
    )
    assert mp.code == 0, mp.stderr
    pd.testing.assert_frame_equal(_metrics(out), _metrics(one_worker_run), rtol=1e-12, atol=0)
    manifest = read_manifest(out)
    assert manifest is not None and manifest["run_id"] == "s3"
    assert f"committed {out}/_manifest.json" in mp.stdout
    assert all(
        f["url"].startswith(f"{out}/metrics/") for f in manifest["outputs"]["metrics"]["files"]
    )

    risk_s3 = f"s3://{s3_bucket}/runs/risk"
    risk_local = str(tmp_path / "risk")
    for inp, outp in ((root, risk_s3), (str(market), risk_local)):
        r = run_cli(
            [
                "risk",
                "--input",
                inp,
                "--output",
                outp,
                "--scheduler",
                scheduler,
                "--as-of",
                AS_OF,
                "--lookback-days",
                "60",
            ]
        )
        assert r.code == 0, r.stderr
    pd.testing.assert_frame_equal(
        _read_s3(risk_s3, "var"),
        pd.read_parquet(f"{risk_local}/var").drop(columns="run_id"),
        rtol=1e-12,
        atol=0,
    )


def test_risk_stressed_var_on_the_default_window(
    tmp_path: Path, scheduler: str, market: Path
) -> None:
    """A market from mid-2008 covers the default stress window: method ``stressed`` is the
    historical VaR of today's exposures over the window's returns; a window the data does not
    cover, asked for, is bad input."""
    data = tmp_path / "crisis"
    gen = run_cli(
        [
            "generate-data",
            *("--output", str(data), "--start", "2008-06-02", "--end", "2009-06-30"),
            *("--n-symbols", "12", "--intraday-symbols", "1", "--intraday-days", "1"),
        ]
    )
    assert gen.code == 0, gen.stderr
    out = str(tmp_path / "risk")
    common = ["--input", str(data), "--scheduler", scheduler, "--as-of", "2009-06-29"]
    result = run_cli(
        ["risk", *common, "--output", out, "--lookback-days", "60", "--backtest-days", "0"]
    )
    assert result.code == 0, result.stderr
    var = pd.read_parquet(f"{out}/var")
    stressed = var[(var["method"] == "stressed") & (var["horizon_days"] == 1)]
    assert len(stressed) == 4 * 2  # portfolios x confidences
    # Independently: the closes of every symbol, returns over gaps, the window's sessions.
    prices = pd.read_parquet(data / "prices")
    closes = prices.pivot(index="date", columns="symbol", values="close")
    closes.index = pd.to_datetime(closes.index)
    closes.columns = closes.columns.astype(str)
    rets = (closes / closes.ffill().shift(1) - 1).iloc[1:].fillna(0.0)
    window = rets.loc["2008-09-01":"2009-03-31"]
    for name, w in _exposures(data, "2009-06-29").items():
        pnl = window[w.index].to_numpy() @ w.to_numpy()
        for row in stressed[stressed["portfolio"] == name].itertuples():
            assert row.var == pytest.approx(-np.quantile(pnl, 1 - row.confidence), rel=1e-9)
    summary = read_manifest(out)["summary"]  # type: ignore[index]
    assert summary["stress_window"] == ["2008-09-01", "2009-03-31"]
    assert summary["stress_scenarios"] == len(window)
    uncovered = run_cli(
        [
            "risk",
            *common,
            *("--output", str(tmp_path / "r2"), "--stress-window", "2001-01-02:2001-06-29"),
        ]
    )
    assert uncovered.code == 2
    assert "--stress-window 2001-01-02:2001-06-29" in uncovered.stderr
