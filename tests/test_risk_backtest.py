"""The risk job's new pieces below the cluster: the VaR backtest against a plain pandas loop
(positions as of the previous session, a halt, a rebalance, chunking), its summary, gross and net
exposure of a long/short book, an empty book, coverage and the stress window's returns."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from analytics.jobs.risk import backtest as bt
from analytics.jobs.risk import kernel as rk
from analytics.jobs.risk import options
from analytics.jobs.risk.job import coverage_rows, portfolio_risk
from analytics.jobs.risk.stress import stress_gaps, stress_returns
from analytics.stats import var as sv
from tests.conftest import run_cli
from tests.test_stats_var import _ewma_loop, _fhs_loop

LAM = 0.94
NORMAL = NormalDist()


def _closes(n_days: int = 70) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    dates = pd.bdate_range("2024-01-02", periods=n_days)
    paths = 100 * np.exp(np.cumsum(rng.normal(0, 0.015, size=(n_days, 3)), axis=0))
    closes = pd.DataFrame(paths, index=dates, columns=["AAA", "BBB", "CCC"])
    closes.iloc[min(40, n_days - 2), 1] = np.nan  # BBB halted one day
    closes.iloc[:25, 2] = np.nan  # CCC listed on day 25
    return closes


def _positions(closes: pd.DataFrame) -> pd.DataFrame:
    """P1 long/short, rebalanced on day 50 into CCC; snapshots only on some days (the latest on
    or before the previous session counts). P2 starts on day 55. A short history has P1 only."""
    d = closes.index
    rows = []
    for day in (t for t in (0, 30, 45) if t < len(d)):
        rows += [(d[day], "P1", "AAA", 100.0), (d[day], "P1", "BBB", -40.0)]
    if len(d) > 55:
        rows += [(d[50], "P1", "AAA", 50.0), (d[50], "P1", "CCC", 30.0)]
        rows += [(d[50], "P1", "BBB", 0.0), (d[55], "P2", "BBB", 10.0)]
    frame = pd.DataFrame(rows, columns=["date", "portfolio", "symbol", "quantity"])
    frame["date"] = frame["date"].dt.date
    return frame


def _independent(
    closes: pd.DataFrame, positions: pd.DataFrame, days: int, lookback: int
) -> pd.DataFrame:
    rets = (closes / closes.ffill().shift(1) - 1).iloc[1:].fillna(0.0)
    filled = closes.ffill()
    rows = []
    for j in range(len(closes) - days, len(closes)):
        d, prev = closes.index[j], closes.index[j - 1]
        window = rets.loc[:prev].iloc[-lookback:]
        if len(window) < 21:
            continue
        for name, book in positions.groupby("portfolio"):
            dates = pd.to_datetime(book["date"])
            if not (dates <= prev).any():
                continue
            snap = book[dates == dates[dates <= prev].max()]
            snap = snap[snap["quantity"] != 0]
            syms = snap["symbol"].tolist()
            w = snap["quantity"].to_numpy() * filled.loc[prev, syms].to_numpy()
            r = window[syms].to_numpy()
            pnl = float(rets.loc[d, syms].to_numpy() @ w)
            for c in (0.95, 0.99):
                z = NORMAL.inv_cdf(c)
                var = {
                    "historical": -np.quantile(r @ w, 1 - c),
                    "parametric": z * math.sqrt(w @ np.atleast_2d(np.cov(r, rowvar=False)) @ w),
                    "ewma": z * math.sqrt(w @ _ewma_loop(r, LAM) @ w),
                    "fhs": -np.quantile(_fhs_loop(r, LAM) @ w, 1 - c),
                }
                rows += [(name, m, c, d.date(), pnl, v, -pnl > v) for m, v in var.items()]
    return pd.DataFrame(rows, columns=list(bt.EXCEPTION_COLUMNS))


def _run(closes: pd.DataFrame, positions: pd.DataFrame, chunk_days: int) -> pd.DataFrame:
    returns = rk.scenario_returns(closes.to_numpy())
    chunks = bt.plan_chunks(
        positions, closes, returns, days=40, lookback=30, min_days=21, chunk_days=chunk_days
    )
    frames = [
        bt.backtest_chunk(c, lookback=30, methods=rk.METHODS, confidences=(0.95, 0.99), lam=LAM)
        for c in chunks
    ]
    return pd.concat(frames, ignore_index=True)


KEYS = ["portfolio", "method", "confidence", "date"]


@pytest.mark.parametrize("chunk_days", [1, 7, 50])
def test_backtest_equals_a_plain_loop_in_any_chunking(chunk_days: int) -> None:
    closes = _closes()
    positions = _positions(closes)
    got = _run(closes, positions, chunk_days).sort_values(KEYS).reset_index(drop=True)
    want = _independent(closes, positions, 40, 30).sort_values(KEYS).reset_index(drop=True)
    assert len(want) == (40 + 14) * 4 * 2  # P1 40 days; P2 from day 55 + 1 to 69: 14 days
    pd.testing.assert_frame_equal(got[KEYS], want[KEYS])
    np.testing.assert_allclose(got["pnl"], want["pnl"], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(got["var"], want["var"], rtol=1e-9)
    assert got["exception"].tolist() == want["exception"].tolist()
    assert got["exception"].any()


def test_backtest_skips_days_without_enough_history() -> None:
    closes = _closes(30)  # 29 returns: days with >= 21 returns before them are 22..29
    positions = _positions(closes)
    returns = rk.scenario_returns(closes.to_numpy())
    chunks = bt.plan_chunks(positions, closes, returns, days=250, lookback=500, min_days=21)
    assert [c.portfolio for c in chunks] == ["P1"]
    assert chunks[0].dates == tuple(t.date() for t in closes.index[22:])


def test_summary_is_the_stats_of_the_days_in_date_order() -> None:
    hits = [False, True, True, False, False, True]
    dates = [dt.date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9)]
    frame = pd.DataFrame(
        {
            "portfolio": "P",
            "method": "historical",
            "confidence": 0.95,
            "date": dates,
            "pnl": 0.0,
            "var": 1.0,
            "exception": hits,
        }
    ).iloc[::-1]  # out of order: the tests run over the dates in order
    row = bt.summarize(frame).iloc[0]
    assert (row["n_days"], row["exceptions"]) == (6, 3)
    assert row["exception_rate"] == 0.5
    assert row["expected"] == pytest.approx(6 * 0.05)
    assert row["kupiec_lr"] == sv.kupiec_pof(hits, 0.95).lr
    assert row["christoffersen_lr"] == sv.christoffersen_independence(hits).lr
    assert row["cc_p"] == sv.conditional_coverage(hits, 0.95).p
    # P(X <= 3) for X ~ Binomial(6, 0.05) is 0.99991...: red.
    assert row["traffic_light"] == "red"


# ---------------------------------------------------------------------------------------------
# Today's book: gross and net, an empty book, stressed rows, coverage
# ---------------------------------------------------------------------------------------------


def test_long_short_percentages_are_over_gross_and_component_es_sums() -> None:
    # Exposures 100 * 10 = 1000 long, -40 * 20 = -800 short: net 200, gross 1800.
    holdings = pd.DataFrame(
        {"symbol": ["A", "B"], "quantity": [100.0, -40.0], "close": [10.0, 20.0]}
    )
    rng = np.random.default_rng(5)
    scenarios = pd.DataFrame(rng.normal(0, 0.02, size=(120, 2)), columns=["A", "B"])
    stressed = pd.DataFrame(rng.normal(0, 0.05, size=(40, 2)), columns=["A", "B"])
    var_rows, contrib = portfolio_risk(
        "LS", dt.date(2024, 1, 2), holdings, scenarios, (0.99,), (1, 10),
        methods=rk.METHODS, lam=LAM, stressed=stressed,
    )  # fmt: skip
    methods = [r["method"] for r in var_rows if r["horizon_days"] == 1]
    assert methods == [*rk.METHODS, "stressed"]
    for row in var_rows:
        assert (row["gross"], row["net"]) == (1800.0, 200.0)
        assert row["var_pct"] == row["var"] / 1800.0
        assert row["es_pct"] == row["es"] / 1800.0
    stress = next(r for r in var_rows if r["method"] == "stressed" and r["horizon_days"] == 1)
    pnl = stressed.to_numpy() @ np.array([1000.0, -800.0])
    assert stress["var"] == pytest.approx(-np.quantile(pnl, 0.01), rel=1e-12)
    hist = {r["horizon_days"]: r for r in var_rows if r["method"] == "historical"}
    for h in (1, 10):
        parts = [r for r in contrib if r["horizon_days"] == h]
        assert sum(r["component_es_hist"] for r in parts) == pytest.approx(hist[h]["es"])
        assert sum(r["share_es"] for r in parts) == pytest.approx(1.0)


def test_an_empty_book_has_rows_and_no_risk() -> None:
    holdings = pd.DataFrame({"symbol": [], "quantity": [], "close": []})
    scenarios = pd.DataFrame(np.zeros((30, 1)), columns=["A"])
    var_rows, contrib = portfolio_risk(
        "ZERO", dt.date(2024, 1, 2), holdings, scenarios, (0.95, 0.99), (1,), methods=rk.METHODS
    )
    assert len(var_rows) == 2 * 4
    assert contrib == []
    for row in var_rows:
        assert (row["gross"], row["net"], row["var"], row["es"]) == (0.0, 0.0, 0.0, 0.0)
        assert math.isnan(row["var_pct"])


def test_coverage_counts_days_with_a_return() -> None:
    nan = np.nan
    # A: full; B: listed on day 2 (its first price has no return); C: a halt on day 3.
    closes = np.array(
        [[1.0, nan, 5.0], [1.1, nan, 5.1], [1.2, 2.0, 5.2], [1.3, 2.1, nan], [1.4, 2.2, 5.3]]
    )
    observed = pd.DataFrame(rk.has_return(closes), columns=["A", "B", "C"])
    rows = coverage_rows("P", ["A", "B", "C"], observed, 0.9)
    # Over the 4 scenario days: A 4/4, B 2/4 (days 3 and 4), C 3/4 (the halt has none).
    assert [(r["symbol"], r["coverage"], r["flagged"]) for r in rows] == [
        ("A", 1.0, False),
        ("B", 0.5, True),
        ("C", 0.75, True),
    ]


def test_stress_returns_start_from_the_previous_close() -> None:
    dates = pd.to_datetime(["2008-08-28", "2008-08-29", "2008-09-02", "2008-09-03"])
    closes = pd.DataFrame({"A": [9.0, 10.0, 11.0, 9.9]}, index=dates)
    got = stress_returns(closes, (dt.date(2008, 9, 1), dt.date(2009, 3, 31)))
    assert got is not None
    # 2008-09-02: 11 / 10 - 1 (from the previous close, 08-29); 09-03: 9.9 / 11 - 1.
    np.testing.assert_allclose(got["A"], [0.1, -0.1], rtol=1e-12)
    assert list(got.index) == list(dates[2:])
    # No close before the window: not covered.
    assert stress_returns(closes.iloc[2:], (dt.date(2008, 9, 1), dt.date(2009, 3, 31))) is None


def test_twenty_days_make_ewma_the_sample_model_and_leave_fhs_no_scenario() -> None:
    # S_20 is the sample covariance itself, so over exactly 20 days EWMA = parametric; FHS
    # keeps days 21..N, none here.
    returns = np.random.default_rng(2).normal(0, 0.01, size=(20, 3))
    w = np.array([1e6, -5e5, 2e5])
    risks = rk.model_risks(rk.METHODS, returns, w, (0.99,), lam=LAM)
    assert risks["ewma", 0.99].var == pytest.approx(risks["parametric", 0.99].var, rel=1e-12)
    assert math.isnan(risks["fhs", 0.99].var) and math.isnan(risks["fhs", 0.99].es)


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def test_options_parse_and_check_the_new_flags() -> None:
    from analytics.errors import InputError
    from analytics.options import build

    assert options.SEED_DAYS == sv.SEED_DAYS  # the light options module restates it
    assert options.method_list("fhs, historical") == ("historical", "fhs")  # output order
    assert options.stress_window("none") == ()
    assert options.stress_window("2020-02-19:2020-03-23") == (
        dt.date(2020, 2, 19),
        dt.date(2020, 3, 23),
    )
    with pytest.raises(ValueError, match="subset of historical,parametric,ewma,fhs"):
        options.method_list("montecarlo")
    with pytest.raises(ValueError, match="START is after END"):
        options.stress_window("2020-03-23:2020-02-19")
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        options.decay("1")
    made = build(options.Options, {"as_of": "2024-03-27", "lookback_days": "20"})
    assert (made.methods, made.ewma_lambda, made.backtest_days) == (rk.METHODS, 0.94, 250)
    assert made.stress_window is None  # the default window, when the data covers it
    with pytest.raises(InputError, match="needs at least 20"):
        build(options.Options, {"as_of": "2024-03-27", "lookback_days": "19"})
    # Historical and parametric alone keep today's 2-day minimum.
    build(options.Options, {"as_of": "2024-03-27", "lookback_days": "2", "methods": "historical"})
    with pytest.raises(InputError, match="after --as-of"):
        build(
            options.Options,
            {"as_of": "2008-12-31", "stress_window": "2008-09-01:2009-03-31"},
        )


# ---------------------------------------------------------------------------------------------
# The report's tables
# ---------------------------------------------------------------------------------------------


def test_stressed_against_current_and_top_tail_tables() -> None:
    from analytics.jobs.risk import report

    var = pd.DataFrame(
        {
            "portfolio": ["B", "B", "A", "A", "A"],
            "method": ["historical", "stressed", "historical", "stressed", "historical"],
            "confidence": [0.99] * 5,
            "horizon_days": [1, 1, 1, 1, 10],
            "var": [2.0, 5.0, 4.0, 6.0, 12.6],
            "es": [3.0, 7.0, 5.0, 9.0, 15.8],
        }
    )
    table = report.stressed_vs_current(var, order=["B", "A"])  # B first: the larger book
    assert table["portfolio"].tolist() == ["B", "A"]
    assert table["var_stressed"].tolist() == [5.0, 6.0]
    assert table["var_ratio"].tolist() == [2.5, 1.5]  # 5 / 2 and 6 / 4 (1-day rows only)
    assert report.stressed_vs_current(var[var["method"] != "stressed"], ["B", "A"]).empty
    contrib = pd.DataFrame(
        {
            "portfolio": ["A"] * 7 + ["B"],
            "symbol": [*"ABCDEFG", "Z"],
            "confidence": [0.99] * 6 + [0.95, 0.99],
            "horizon_days": [1] * 8,
            "component_es_hist": [1.0, 6.0, 3.0, 5.0, 2.0, 4.0, 9.0, 1.0],
        }
    )
    top = report.top_tail(contrib, ["B", "A"])
    # B's one holding, then A's five largest at 99% (G is at 95%, left out), largest first.
    assert list(zip(top["portfolio"], top["symbol"], strict=True)) == [
        ("B", "Z"),
        ("A", "B"),
        ("A", "D"),
        ("A", "F"),
        ("A", "C"),
        ("A", "E"),
    ]


@pytest.mark.parametrize("seed", range(4))
def test_the_normal_models_from_the_pnl_equal_the_covariance_matrices(seed: int) -> None:
    # w' S w is the variance of the P&L series under the same estimator: model_risks takes that
    # short cut; the matrices are the definition.
    rng = np.random.default_rng(seed)
    returns = 0.01 * rng.standard_t(4, size=(int(rng.integers(20, 400)), 7))
    w = rng.normal(0.0, 1e6, size=7)
    risks = rk.model_risks(("parametric", "ewma"), returns, w, (0.95, 0.99), lam=0.97)
    for c in (0.95, 0.99):
        sample = rk.parametric(w, np.cov(returns, rowvar=False), c)[0]
        ewma = rk.parametric(w, _ewma_loop(returns, 0.97), c)[0]
        assert risks["parametric", c].var == pytest.approx(sample.var, rel=1e-10)
        assert risks["parametric", c].es == pytest.approx(sample.es, rel=1e-10)
        assert risks["ewma", c].var == pytest.approx(ewma.var, rel=1e-10)
        assert risks["ewma", c].es == pytest.approx(ewma.es, rel=1e-10)


def test_stress_gaps_name_the_holdings_the_window_covers_thinly() -> None:
    # Sessions 2008-08-29 .. 2008-09-05 (5 returns in the window 09-01 .. 09-05 after the first
    # close): A trades every day; B lists on 09-03 (returns on 09-04 and 09-05 only: 2 of 5);
    # C has no price in the window at all.
    dates = pd.to_datetime(
        ["2008-08-29", "2008-09-01", "2008-09-02", "2008-09-03", "2008-09-04", "2008-09-05"]
    )
    closes = pd.DataFrame(
        {"A": [10.0, 10.1, 10.2, 10.1, 10.3, 10.4], "B": [np.nan] * 3 + [5.0, 5.1, 5.2]},
        index=dates,
    )
    window = (dt.date(2008, 9, 1), dt.date(2008, 9, 5))
    assert stress_gaps(closes, window, ["A", "B", "C"], 0.9) == ["B", "C"]
    assert stress_gaps(closes, window, ["A", "B", "C"], 0.4) == ["C"]  # B: 2/5 = 0.4, not below


def test_duplicate_positions_on_a_backtest_day_are_an_error(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    # The market copied, with one positions row of an earlier session written again in a second
    # file: the backtest would sum it twice into that day's exposure.
    data = tmp_path / "data"
    shutil.copytree(market, data)
    first = sorted((data / "positions").rglob("*.parquet"))[0]
    table = pq.read_table(first)
    dates = sorted(set(table.column("date").to_pylist()))
    row = table.filter(pc.equal(table.column("date"), dates[-5])).slice(0, 1)
    pq.write_table(row, first.parent / "zz-extra.parquet")
    as_of = dates[-1]
    done = run_cli(
        [
            "risk",
            "--input",
            str(data),
            "--output",
            str(tmp_path / "out"),
            "--scheduler",
            scheduler,
            "--as-of",
            str(as_of),
            "--backtest-days",
            "10",
            "--lookback-days",
            "60",
        ]
    )
    assert done.code == 2, done.stderr
    # The key, the dataset and the duplicated day are named.
    assert "'positions'" in done.stderr and "date, portfolio, symbol" in done.stderr
    assert str(dates[-5]) in done.stderr
