"""The market-performance kernels, end to end without a cluster: split files into buckets,
merge each bucket, daily returns, benchmark, period metrics; checked against a plain pandas +
empyrical implementation written here, and across 1, 3 and 7 buckets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import empyrical
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analytics.constants import PERIOD_ALL
from analytics.data import buckets
from analytics.errors import InputError
from analytics.jobs.market_performance import kernel as pk

CLOSE = ("close",)
URLS = (
    "s3://market/prices/year=2024/part-0.parquet",
    "s3://market/prices/year=2024/part-1.parquet",
)
DAYS = [d.date() for d in pd.bdate_range("2024-01-15", "2024-03-15")]
SPLIT_DAY = dt.date(2024, 2, 10)  # file 0 holds the dates before it, file 1 the rest
BUCKETS = (1, 3, 7)


def _walk(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.cumprod(np.exp(0.02 * rng.standard_t(4, size=n)))


def price_frame(with_spx: bool = True) -> pd.DataFrame:
    """Hand-shaped series: every kind of gap the kernels must handle."""
    rows: list[tuple[str, dt.date, float]] = []

    def add(symbol: str, days: Sequence[dt.date], seed: int) -> None:
        rows.extend(zip([symbol] * len(days), days, _walk(seed, len(days)), strict=True))

    add("AAA", DAYS, 1)  # every day
    # No close on the last trading day of January: February's first return spans Jan 30 -> Feb 1.
    add("BBB", [d for d in DAYS if d != dt.date(2024, 1, 31)], 2)
    add("CCC", [dt.date(2024, 2, 20)], 3)  # a single price: no return at all
    add("DDD", [d for d in DAYS if d >= dt.date(2024, 2, 14)], 4)  # listed mid-range
    # Three prices across a month end: one return in February and one in March.
    add("EEE", [dt.date(2024, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 1)], 5)
    if with_spx:
        # The benchmark misses a day: on Feb 22 nobody has a benchmark return to pair with.
        add("SPX", [d for d in DAYS if d != dt.date(2024, 2, 22)], 6)
    return pd.DataFrame(rows, columns=["symbol", "date", "close"])


def _table(frame: pd.DataFrame, symbol_type: str) -> pa.Table:
    date = pa.array(frame["date"].tolist(), pa.date32())
    close = pa.array(frame["close"].to_numpy(), pa.float64())
    symbol = pa.array(frame["symbol"].tolist(), pa.string())
    if symbol_type == "dictionary":
        symbol = symbol.dictionary_encode()
    return pa.table({"symbol": symbol, "date": date, "close": close})


def files_of(frame: pd.DataFrame) -> list[pa.Table]:
    """Two "files": a dictionary column in two chunks whose dictionaries differ, then strings."""
    early = frame[frame["date"] < SPLIT_DAY].sample(frac=1.0, random_state=0)  # unsorted rows
    late = frame[frame["date"] >= SPLIT_DAY]
    half = len(early) // 2
    file0 = pa.concat_tables(
        [_table(early.iloc[:half], "dictionary"), _table(early.iloc[half:], "dictionary")]
    )
    assert file0.column("symbol").num_chunks == 2
    return [file0, _table(late, "string")]


def bucket_returns(files: Sequence[pa.Table], n_buckets: int) -> list[pk.Returns]:
    split = [buckets.split(table, i, n_buckets, CLOSE) for i, table in enumerate(files)]
    assert all(len(pieces) == n_buckets for pieces in split)
    return [
        pk.daily_returns(buckets.merge([pieces[b] for pieces in split], URLS))
        for b in range(n_buckets)
    ]


def run_kernels(
    files: Sequence[pa.Table],
    n_buckets: int,
    benchmark: str = "SPX",
    explicit: bool = False,
    symbols: Sequence[str] | None = None,
) -> tuple[pk.Benchmark, pd.DataFrame]:
    buckets = bucket_returns(files, n_buckets)
    parts = [pk.benchmark_part(r, benchmark, symbols) for r in buckets]
    bench = pk.combine_benchmark(parts, benchmark, explicit)
    frames = [pk.period_metrics(r, bench.days, bench.returns, symbols) for r in buckets]
    out = pd.concat([f for f in frames if len(f)], ignore_index=True)
    return bench, _sorted(out)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    order = frame.assign(_all=(frame["period"] != PERIOD_ALL).astype(int))
    order = order.sort_values(["symbol", "_all", "period"]).drop(columns="_all")
    return order.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# The independent implementation: pandas groupby + empyrical
# ---------------------------------------------------------------------------------------------


def reference_returns(prices: pd.DataFrame) -> pd.DataFrame:
    df = prices.sort_values(["symbol", "date"]).reset_index(drop=True)
    previous = df.groupby("symbol")["close"].shift(1)
    df["r"] = df["close"] / previous - 1.0
    return df.dropna(subset=["r"]).reset_index(drop=True)


def reference_benchmark(rets: pd.DataFrame, symbol: str | None) -> pd.Series:
    if symbol is not None:
        return rets[rets["symbol"] == symbol].set_index("date")["r"]
    return rets.groupby("date")["r"].mean()


def _reference_row(symbol: str, period: str, group: pd.DataFrame) -> dict[str, object]:
    r = group["r"].to_numpy()
    b = group["b"].to_numpy()
    row: dict[str, object] = {
        "symbol": symbol,
        "period": period,
        "start": group["date"].min(),
        "end": group["date"].max(),
        "n_returns": len(r),
    }
    if len(r) < 2:
        return row | dict.fromkeys(pk.METRIC_COLUMNS, np.nan)
    with np.errstate(all="ignore"):
        return row | {
            "total_return": empyrical.cum_returns_final(r),
            "annual_return": empyrical.annual_return(r),
            "annual_volatility": empyrical.annual_volatility(r),
            "sharpe": empyrical.sharpe_ratio(r),
            "sortino": empyrical.sortino_ratio(r),
            "max_drawdown": empyrical.max_drawdown(r),
            "calmar": empyrical.calmar_ratio(r),
            "beta": empyrical.beta(r, b),
            "alpha": empyrical.alpha(r, b),
            "var_95": empyrical.value_at_risk(r, 0.05),
            "cvar_95": empyrical.conditional_value_at_risk(r, 0.05),
        }


def reference_metrics(prices: pd.DataFrame, bench_symbol: str | None) -> pd.DataFrame:
    rets = reference_returns(prices)
    bench = reference_benchmark(rets, bench_symbol)
    rets["b"] = rets["date"].map(bench)
    rets["month"] = [f"{d.year:04d}-{d.month:02d}" for d in rets["date"]]
    rows = []
    for symbol, group in rets.groupby("symbol"):
        rows.append(_reference_row(str(symbol), PERIOD_ALL, group))
        for month, part in group.groupby("month"):
            rows.append(_reference_row(str(symbol), str(month), part))
    for symbol in sorted(set(prices["symbol"]) - set(rets["symbol"])):
        rows.append(
            {"symbol": symbol, "period": PERIOD_ALL, "start": None, "end": None, "n_returns": 0}
            | dict.fromkeys(pk.METRIC_COLUMNS, np.nan)
        )
    return _sorted(pd.DataFrame(rows))


def assert_same_metrics(got: pd.DataFrame, expected: pd.DataFrame, rtol: float) -> None:
    assert list(got.columns) == list(pk.OUTPUT_COLUMNS)
    keys = ["symbol", "period", "n_returns"]
    assert got[keys].to_dict("records") == expected[keys].to_dict("records")
    for column in ("start", "end"):
        got_dates = [None if pd.isna(d) else d for d in got[column]]
        expected_dates = [None if pd.isna(d) else d for d in expected[column]]
        assert got_dates == expected_dates, column
    for column in pk.METRIC_COLUMNS:
        np.testing.assert_allclose(
            got[column].to_numpy(dtype=float),
            expected[column].to_numpy(dtype=float),
            rtol=rtol,
            atol=1e-9 if rtol > 1e-12 else 1e-15,
            err_msg=column,
        )


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_buckets", BUCKETS)
def test_metrics_match_pandas_and_empyrical_with_spx(n_buckets: int) -> None:
    prices = price_frame()
    bench, got = run_kernels(files_of(prices), n_buckets)
    assert bench.label == "SPX"
    assert_same_metrics(got, reference_metrics(prices, "SPX"), rtol=1e-9)


@pytest.mark.parametrize("n_buckets", BUCKETS)
def test_metrics_match_pandas_and_empyrical_with_equal_weights(n_buckets: int) -> None:
    prices = price_frame(with_spx=False)
    bench, got = run_kernels(files_of(prices), n_buckets)
    assert bench.label == "equal-weighted"
    assert_same_metrics(got, reference_metrics(prices, None), rtol=1e-9)


def test_results_do_not_depend_on_the_number_of_buckets() -> None:
    files = files_of(price_frame())
    names = sorted(set(price_frame()["symbol"]))
    assert len(set(buckets.symbol_bucket(names, 7).tolist())) > 2  # the symbols really are spread
    _, one = run_kernels(files, 1)
    for n in BUCKETS[1:]:
        _, many = run_kernels(files, n)
        assert_same_metrics(many, one, rtol=1e-12)


def test_rows_of_the_hand_shaped_series() -> None:
    prices = price_frame()
    _, got = run_kernels(files_of(prices), 3)
    periods = got.groupby("symbol")["period"].apply(list).to_dict()
    assert periods == {
        "AAA": ["ALL", "2024-01", "2024-02", "2024-03"],
        "BBB": ["ALL", "2024-01", "2024-02", "2024-03"],
        "CCC": ["ALL"],
        "DDD": ["ALL", "2024-02", "2024-03"],
        "EEE": ["ALL", "2024-02", "2024-03"],
        "SPX": ["ALL", "2024-01", "2024-02", "2024-03"],
    }
    ccc = got[got["symbol"] == "CCC"].iloc[0]
    assert ccc["n_returns"] == 0
    assert pd.isna(ccc["start"])
    assert pd.isna(ccc["end"])
    assert ccc[list(pk.METRIC_COLUMNS)].isna().all()
    # EEE: two returns in all, one per month; one return is too few for any metric.
    eee = got[got["symbol"] == "EEE"].set_index("period")
    assert eee["n_returns"].to_dict() == {"ALL": 2, "2024-02": 1, "2024-03": 1}
    assert eee.loc[["2024-02", "2024-03"], list(pk.METRIC_COLUMNS)].isna().all().all()
    assert eee.loc["ALL", list(pk.METRIC_COLUMNS)].notna().all()
    # DDD is listed on Feb 14: its first return is Feb 15's.
    ddd = got[(got["symbol"] == "DDD") & (got["period"] == PERIOD_ALL)].iloc[0]
    assert ddd["start"] == dt.date(2024, 2, 15)
    assert ddd["end"] == dt.date(2024, 3, 15)


def test_a_months_first_return_uses_the_previous_trading_days_close() -> None:
    prices = price_frame()
    _, got = run_kernels(files_of(prices), 3)
    close = prices.set_index(["symbol", "date"])["close"]
    feb = got[got["period"] == "2024-02"].set_index("symbol")
    # AAA: Feb compounds from the Jan 31 close to the Feb 29 close.
    aaa = close["AAA", dt.date(2024, 2, 29)] / close["AAA", dt.date(2024, 1, 31)] - 1
    assert feb.loc["AAA", "total_return"] == pytest.approx(aaa, rel=1e-12)
    # BBB has no Jan 31 close: Feb's first return (Feb 1) is from the Jan 30 close.
    bbb = close["BBB", dt.date(2024, 2, 29)] / close["BBB", dt.date(2024, 1, 30)] - 1
    assert feb.loc["BBB", "total_return"] == pytest.approx(bbb, rel=1e-12)
    assert feb.loc["BBB", "start"] == dt.date(2024, 2, 1)
    # 21 weekdays in February 2024, for both (the gap is in January).
    assert feb.loc["AAA", "n_returns"] == 21
    assert feb.loc["BBB", "n_returns"] == 21
    jan = got[got["period"] == "2024-01"].set_index("symbol")
    # Jan 16 .. Jan 31 is 12 weekdays of returns; BBB lacks Jan 31.
    assert jan.loc["AAA", "n_returns"] == 12
    assert jan.loc["BBB", "n_returns"] == 11


def test_spx_is_its_own_benchmark() -> None:
    _, got = run_kernels(files_of(price_frame()), 3)
    spx = got[got["symbol"] == "SPX"]
    np.testing.assert_allclose(spx["beta"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(spx["alpha"], 0.0, atol=1e-12)


@pytest.mark.parametrize("n_buckets", BUCKETS)
def test_equal_weighted_benchmark_is_the_mean_return_per_date(n_buckets: int) -> None:
    prices = price_frame(with_spx=False)
    bench, _ = run_kernels(files_of(prices), n_buckets)
    expected = reference_benchmark(reference_returns(prices), None)
    expected_days = np.array(expected.index.tolist(), dtype="datetime64[D]").astype(np.int64)
    np.testing.assert_array_equal(bench.days, expected_days)
    np.testing.assert_allclose(bench.returns, expected.to_numpy(), rtol=1e-12)


def test_spx_benchmark_is_the_spx_returns() -> None:
    prices = price_frame()
    bench, _ = run_kernels(files_of(prices), 7)
    expected = reference_benchmark(reference_returns(prices), "SPX")
    expected_days = np.array(expected.index.tolist(), dtype="datetime64[D]").astype(np.int64)
    assert bench.label == "SPX"
    np.testing.assert_array_equal(bench.days, expected_days)
    np.testing.assert_allclose(bench.returns, expected.to_numpy(), rtol=1e-15)


def test_selected_symbols_restrict_rows_and_the_equal_weighted_mean() -> None:
    prices = price_frame(with_spx=False)
    selected = ["AAA", "DDD"]
    bench, got = run_kernels(files_of(prices), 3, symbols=selected)
    assert sorted(set(got["symbol"])) == selected
    chosen = prices[prices["symbol"].isin(selected)]
    assert_same_metrics(got, reference_metrics(chosen, None), rtol=1e-9)
    expected = reference_benchmark(reference_returns(chosen), None)
    np.testing.assert_allclose(bench.returns, expected.to_numpy(), rtol=1e-12)


def test_explicit_benchmark_without_prices_is_an_error() -> None:
    buckets = bucket_returns(files_of(price_frame(with_spx=False)), 3)
    parts = [pk.benchmark_part(r, "SPX", None) for r in buckets]
    with pytest.raises(InputError, match="'SPX' has no prices"):
        pk.combine_benchmark(parts, "SPX", explicit=True)
    assert pk.combine_benchmark(parts, "SPX", explicit=False).label == "equal-weighted"


@pytest.mark.parametrize("n_buckets", [1, 3])
def test_duplicate_symbol_date_across_files_names_both_files(n_buckets: int) -> None:
    prices = price_frame()
    files = files_of(prices)
    repeated = prices[(prices["symbol"] == "BBB") & (prices["date"] == dt.date(2024, 2, 9))]
    assert len(repeated) == 1  # in file 0; now file 1 has it too
    files[1] = pa.concat_tables([files[1], _table(repeated, "string")])
    with pytest.raises(InputError) as raised:
        bucket_returns(files, n_buckets)
    message = str(raised.value)
    assert URLS[0] in message
    assert URLS[1] in message
    assert "BBB on 2024-02-09" in message


def test_split_table_keeps_every_row_once() -> None:
    prices = price_frame()
    table = files_of(prices)[0]
    chunks = buckets.split(table, 0, 7, CLOSE)
    assert sum(len(c.codes) for c in chunks) == table.num_rows
    for chunk in chunks:
        # Each symbol lives in exactly one bucket.
        names = set(chunk.names[chunk.codes])
        for other in chunks:
            if other is not chunk:
                assert names.isdisjoint(set(other.names[other.codes]))
    got = sorted(
        (str(c.names[code]), int(day), float(close))
        for c in chunks
        for code, day, close in zip(c.codes, c.days, c.column("close"), strict=True)
    )
    early = prices[prices["date"] < SPLIT_DAY]
    days = np.array(early["date"].tolist(), dtype="datetime64[D]").astype(np.int64)
    expected = sorted(zip(early["symbol"], days.tolist(), early["close"], strict=True))
    assert got == expected


def test_daily_returns_of_one_merged_bucket() -> None:
    # Hand case: X closes 100, 110, 99 (gap before the third day), Y a single close.
    table = pa.table(
        {
            "symbol": pa.array(["Y", "X", "X", "X"]).dictionary_encode(),
            "date": pa.array(
                [
                    dt.date(2024, 1, 2),
                    dt.date(2024, 1, 5),
                    dt.date(2024, 1, 2),
                    dt.date(2024, 1, 3),
                ],
                pa.date32(),
            ),
            "close": [50.0, 99.0, 100.0, 110.0],
        }
    )
    rets = pk.daily_returns(buckets.merge(buckets.split(table, 0, 1, CLOSE), URLS[:1]))
    assert rets.names.tolist() == ["X", "Y"]
    # 110/100 - 1 = 0.1 on Jan 3; 99/110 - 1 = -0.1 on Jan 5 (spans the missing Jan 4).
    np.testing.assert_allclose(rets.values, [0.1, -0.1], rtol=1e-15)
    assert rets.days.astype("datetime64[D]").tolist() == [dt.date(2024, 1, 3), dt.date(2024, 1, 5)]
    assert rets.codes.tolist() == [0, 0]
    assert rets.counts.to_dict() == {"X": 3, "Y": 1}


def _segments_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Returns in segments of every awkward length (1, 2, 3, 21, 300), constant runs, ties, a
    total loss (-1) and a benchmark missing on some days."""
    rng = np.random.default_rng(seed)
    lengths = np.array([1, 2, 3, 21, 300, 2, 21, 5, 1, 40], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    values = rng.standard_t(3, size=int(lengths.sum())) * 0.02
    values[starts[5] : starts[5] + 2] = 0.01  # a constant segment: std exactly 0
    values[starts[6] : starts[6] + 10] = -0.005  # ties in the tail
    values[starts[7] + 2] = -1.0  # a total loss: wealth 0
    bench = rng.normal(0.0, 0.01, size=len(values))
    bench[rng.random(len(values)) < 0.2] = np.nan
    bench[starts[9] : starts[9] + 39] = np.nan  # one paired return only: no beta
    return values, bench, starts, lengths


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_metrics_equal_the_padded_performance_summary(seed: int) -> None:
    # The independent implementation: analytics.stats.metrics.performance_summary on the
    # NaN-padded matrix (itself checked metric by metric in tests/test_metrics.py).
    values, bench, starts, lengths = _segments_case(seed)
    flat = pk._flat_metrics(values, bench, starts, lengths)
    padded = pk._segment_metrics(
        pk._padded(values, starts, lengths), pk._padded(bench, starts, lengths)
    )
    for name in pk.METRIC_COLUMNS:
        np.testing.assert_allclose(flat[name], padded[name], rtol=1e-12, atol=1e-15, err_msg=name)
    # Spot checks by hand: a single return has no metric; the constant segment (0.01, 0.01)
    # has a std of 0, so its Sharpe is +inf; the segment with one paired return has no beta.
    assert np.isnan(flat["sharpe"][0]) and np.isnan(flat["total_return"][8])
    assert flat["annual_volatility"][5] == 0.0 and flat["sharpe"][5] == np.inf
    assert np.isnan(flat["beta"][9]) and np.isfinite(flat["total_return"][9])
    # 1.01 * 1.01 - 1 = 0.0201
    assert flat["total_return"][5] == pytest.approx(0.0201, rel=1e-14)
    # The total loss takes the wealth to 0: a drawdown of exactly -100 %.
    assert flat["max_drawdown"][7] == -1.0


def test_a_nan_return_takes_the_padded_path_and_is_skipped() -> None:
    # A NaN close makes two NaN returns; the metrics skip them, like the series without them.
    table = pa.table(
        {
            "symbol": ["X"] * 6,
            "date": pa.array(DAYS[:6], pa.date32()),
            "close": [100.0, 101.0, np.nan, 103.0, 102.0, 104.0],
        }
    )
    rets = pk.daily_returns(buckets.merge(buckets.split(table, 0, 1, CLOSE), URLS[:1]))
    assert int(np.isnan(rets.values).sum()) == 2
    out = pk.period_metrics(rets, np.zeros(0, np.int64), np.zeros(0), None)
    row = out[out["period"] == PERIOD_ALL].iloc[0]
    # The valid returns: 101/100 - 1, 102/103 - 1, 104/102 - 1; their product of (1 + r) is
    # 101/100 * 102/103 * 104/102 = 101 * 104 / (100 * 103).
    assert row["total_return"] == pytest.approx(101 * 104 / (100 * 103) - 1, rel=1e-12)
    assert row["n_returns"] == 5


def test_benchmark_aligned_and_months_by_hand() -> None:
    # Benchmark returns on days 9 (before the rows' range), 10, 12 and 20 (after it); the rows
    # are on days 12, 10, 11, 12: day 11 has no benchmark return.
    days = np.array([12, 10, 11, 12], dtype=np.int32)
    bench_days = np.array([9, 10, 12, 20], dtype=np.int64)
    bench = np.array([0.9, 0.1, 0.2, 2.0])
    got = pk.benchmark_aligned(days, bench_days, bench)
    np.testing.assert_array_equal(got, [0.2, 0.1, np.nan, 0.2])
    assert np.isnan(pk.benchmark_aligned(days, bench_days[:0], bench[:0])).all()
    # Day 0 is 1970-01-01 (month 0); day 31 is 1970-02-01 (month 1); day 19,782 is
    # 2024-02-29 ((2024 - 1970) * 12 + 1 = 649).
    months = pk._month(np.array([31, 0, 19_782, 30], dtype=np.int32))
    assert months.tolist() == [1, 0, 649, 0]
