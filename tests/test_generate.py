"""The synthetic market generator: calendar, layout, schemas, determinism and realism."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analytics.data.schemas import DATASETS, arrow_schema
from analytics.errors import InputError, OutputError
from analytics.generate import GenerationSummary, generate_market, trading_days
from analytics.generate.intraday import session_open_ns

D = datetime.date
# The small market: two months across a year end, 20 symbols, 2 of them intraday for 3 sessions.
START, END, N_SYMBOLS = D(2023, 12, 1), D(2024, 1, 31), 20


def _quiet(_: str) -> None:
    pass


def _generate(out: Path, *, seed: int = 7) -> GenerationSummary:
    return generate_market(
        str(out), START, END, N_SYMBOLS, intraday_symbols=2, intraday_days=3, seed=seed, log=_quiet
    )


def _read(root: Path, name: str) -> pd.DataFrame:
    """One dataset as pandas, without the hive partition column."""
    frame: pd.DataFrame = pq.read_table(root / name, partitioning=None).to_pandas()
    return frame


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    out = tmp_path_factory.mktemp("small")
    return out, _generate(out)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    out = tmp_path_factory.mktemp("long")
    summary = generate_market(
        str(out), D(2021, 1, 1), D(2023, 12, 31), 50, intraday_symbols=0, seed=3, log=_quiet
    )
    return out, summary


# --- calendar ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("year", "sessions"), [(2022, 251), (2023, 250), (2024, 252)])
def test_sessions_per_year(year: int, sessions: int) -> None:
    assert len(trading_days(D(year, 1, 1), D(year, 12, 31))) == sessions


@pytest.mark.parametrize(
    ("day", "is_session"),
    [
        (D(2022, 6, 20), False),  # Juneteenth on a Sunday, observed Monday
        (D(2021, 12, 31), True),  # New Year's Day 2022 is a Saturday: no Friday observance
        (D(2024, 3, 29), False),  # Good Friday
        (D(2022, 1, 17), False),  # Martin Luther King Jr. Day
        (D(1997, 1, 20), True),  # ... not an NYSE holiday before 1998
        (D(2021, 6, 18), True),  # Juneteenth not a holiday before 2022
        (D(2026, 7, 3), False),  # Independence Day on a Saturday, observed Friday
        (D(2022, 12, 26), False),  # Christmas on a Sunday, observed Monday
        (D(2023, 1, 2), False),  # New Year's Day on a Sunday, observed Monday
        (D(2024, 5, 27), False),  # Memorial Day
        (D(2024, 11, 28), False),  # Thanksgiving
        (D(2024, 11, 29), True),  # the day after (an early close, still a session)
        (D(2012, 10, 29), False),  # Hurricane Sandy
        (D(2024, 1, 6), False),  # a Saturday
    ],
)
def test_known_sessions_and_holidays(day: D, is_session: bool) -> None:
    days = trading_days(D(day.year - 1, 12, 1), D(day.year, 12, 31))
    assert (np.datetime64(day, "D") in days) is is_session


def test_generated_sessions_are_xnys_sessions(tmp_path: Path) -> None:
    """The dates the generator writes are exactly exchange-calendars' XNYS sessions, across
    Thanksgiving, Christmas, New Year, and years apart (1970s election days, 2001, 2025)."""
    import exchange_calendars as xcals

    xnys = xcals.get_calendar("XNYS", start="1970-01-01", end="2026-12-31")
    for lo, hi in ((D(1972, 10, 1), D(1973, 2, 1)), (D(2001, 9, 1), D(2001, 9, 30))):
        want = xnys.sessions_in_range(lo.isoformat(), hi.isoformat()).to_numpy()
        assert np.array_equal(trading_days(lo, hi), want.astype("datetime64[D]"))
    start, end = D(2023, 11, 20), D(2025, 1, 10)
    generate_market(str(tmp_path), start, end, 2, intraday_symbols=0, seed=3, log=_quiet)
    dates = pd.read_parquet(tmp_path / "prices", columns=["date"])["date"]
    got = np.unique(pd.to_datetime(dates).to_numpy().astype("datetime64[D]"))
    want = xnys.sessions_in_range(start.isoformat(), end.isoformat()).to_numpy()
    assert np.array_equal(got, want.astype("datetime64[D]"))
    assert np.datetime64("2025-01-09") not in got  # President Carter's funeral


def test_trading_days_is_sorted_datetime64_and_empty_when_reversed() -> None:
    days = trading_days(D(2024, 1, 1), D(2024, 1, 31))
    assert days.dtype == np.dtype("datetime64[D]")
    assert np.all(np.diff(days) > np.timedelta64(0, "D"))
    assert days[0] == np.datetime64("2024-01-02")
    assert len(trading_days(D(2024, 2, 1), D(2024, 1, 1))) == 0


def test_session_open_follows_daylight_saving() -> None:
    # 09:30 New York is 14:30 UTC in winter (EST, -5) and 13:30 UTC in summer (EDT, -4).
    assert pd.Timestamp(session_open_ns(D(2024, 1, 2)), tz="UTC").hour == 14
    assert pd.Timestamp(session_open_ns(D(2024, 7, 1)), tz="UTC").hour == 13


# --- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": D(2024, 2, 1), "end": D(2024, 1, 1)}, "before start"),
        ({"start": D(2024, 1, 6), "end": D(2024, 1, 7)}, "no NYSE session"),
        ({"n_symbols": 0}, "n_symbols"),
        ({"intraday_symbols": 21}, "intraday_symbols"),
        ({"intraday_days": -1}, "intraday_days"),
        ({"seed": -5}, "seed"),
    ],
)
def test_bad_arguments_raise_input_error(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"start": START, "end": END, "n_symbols": N_SYMBOLS, **kwargs}
    with pytest.raises(InputError, match=message):
        generate_market(str(tmp_path), log=_quiet, **args)
    assert not any(tmp_path.iterdir())


def test_foreign_files_in_the_output_are_refused(tmp_path: Path) -> None:
    stale = tmp_path / "prices" / "year=2019" / "part-0.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    with pytest.raises(OutputError, match="year=2019"):
        _generate(tmp_path)
    assert not (tmp_path / "prices" / "year=2024").exists()


def test_writes_to_s3(s3_bucket: str) -> None:
    # s3_bucket (tests/conftest.py): a fresh bucket on the moto server of AWS_ENDPOINT_URL.
    import s3fs

    summary = generate_market(
        f"s3://{s3_bucket}/in", D(2024, 1, 1), D(2024, 1, 31), 5, intraday_days=2, log=_quiet
    )
    assert all(f.startswith(f"s3://{s3_bucket}/in/") for f in summary.files)
    fs = s3fs.S3FileSystem()
    assert sorted(fs.find(f"{s3_bucket}/in")) == sorted(f[len("s3://") :] for f in summary.files)
    with fs.open(f"{s3_bucket}/in/prices/year=2024/part-0.parquet", "rb") as handle:
        assert pq.read_table(handle).num_rows == summary.rows["prices"]


# --- layout, schemas, determinism -------------------------------------------------------------


def test_layout_and_exact_schemas(small: tuple[Path, GenerationSummary]) -> None:
    out, summary = small
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    dates = ["2024-01-29", "2024-01-30", "2024-01-31"]
    expected = sorted(
        [f"{ds}/year={y}/part-0.parquet" for ds in ("prices", "positions") for y in (2023, 2024)]
        + [f"{ds}/date={d}/part-0.parquet" for ds in ("bars", "orders", "fills") for d in dates]
    )
    assert on_disk == expected
    assert sorted(str(Path(f).relative_to(out)) for f in summary.files) == expected
    assert summary.intraday_dates == tuple(D.fromisoformat(d) for d in dates)
    for path in out.rglob("*.parquet"):
        dataset = DATASETS[path.parent.parent.name]
        schema = pq.read_schema(path)
        assert schema.equals(arrow_schema(dataset), check_metadata=False), path
    for name, rows in summary.rows.items():
        assert rows == len(_read(out, name)) > 0, name


def test_summary_describes_the_market(small: tuple[Path, GenerationSummary]) -> None:
    out, summary = small
    assert summary.n_sessions == len(trading_days(START, END)) == 41
    assert len(summary.symbols) == 20
    assert list(summary.symbols) == sorted(set(summary.symbols))
    assert all(re.fullmatch(r"[A-Z]{3,4}", s) for s in summary.symbols)
    assert "SPX" not in summary.symbols
    prices = _read(out, "prices")
    assert set(prices["symbol"]) == {*summary.symbols, "SPX"}
    assert len(summary.intraday_symbols) == 2
    # The intraday symbols are the most liquid ones by dollar volume.
    dollars = (prices["close"] * prices["volume"]).groupby(prices["symbol"]).mean()
    top = dollars.drop("SPX").sort_values(ascending=False).index[:4]
    assert set(summary.intraday_symbols) <= set(top)


def test_same_seed_same_bytes_other_seed_other_data(
    tmp_path: Path, small: tuple[Path, GenerationSummary]
) -> None:
    out, summary = small
    again = _generate(tmp_path / "again")
    assert again.symbols == summary.symbols
    for name in DATASETS:
        pd.testing.assert_frame_equal(_read(out, name), _read(tmp_path / "again", name))
    for first, second in zip(summary.files, again.files, strict=True):
        assert Path(first).read_bytes() == Path(second).read_bytes()
    other = _generate(tmp_path / "other", seed=8)
    assert other.symbols != summary.symbols
    closes = _read(tmp_path / "other", "prices")["close"].to_numpy()
    assert not np.array_equal(closes, _read(out, "prices")["close"].to_numpy())


def test_rerun_overwrites_in_place(small: tuple[Path, GenerationSummary]) -> None:
    out, summary = small
    before = {f: Path(f).read_bytes() for f in summary.files}
    _generate(out)
    assert {f: Path(f).read_bytes() for f in summary.files} == before


# --- daily prices and positions ---------------------------------------------------------------


def test_prices_on_sessions_only_sorted_and_with_benchmark(
    small: tuple[Path, GenerationSummary],
) -> None:
    out, _ = small
    prices = _read(out, "prices")
    sessions = set(pd.to_datetime(trading_days(START, END)).date)
    assert set(prices["date"]) == sessions
    assert set(prices.loc[prices["symbol"] == "SPX", "date"]) == sessions
    for year, part in prices.groupby(pd.to_datetime(prices["date"]).dt.year):
        keys = list(zip(part["symbol"], part["date"], strict=True))
        assert keys == sorted(keys), year
    assert not prices.duplicated(["symbol", "date"]).any()


def test_ohlc_consistent_and_positive(small: tuple[Path, GenerationSummary]) -> None:
    prices = _read(small[0], "prices")
    values = prices[["open", "high", "low", "close", "volume"]]
    assert np.isfinite(values.to_numpy()).all()
    assert (prices["low"] > 0).all()
    assert (prices["volume"] > 0).all()
    assert (prices["high"] >= prices[["open", "close"]].max(axis=1)).all()
    assert (prices["low"] <= prices[["open", "close"]].min(axis=1)).all()
    # Overnight gaps: the open is not the previous close.
    previous = prices.groupby("symbol")["close"].shift()
    assert (prices["open"] != previous)[previous.notna()].mean() > 0.99


def test_positions(small: tuple[Path, GenerationSummary]) -> None:
    out, summary = small
    positions = _read(out, "positions")
    prices = _read(out, "prices")
    assert set(positions["portfolio"]) == set(summary.portfolios)
    assert len(summary.portfolios) == 4
    assert "SPX" not in set(positions["symbol"])
    assert (positions["quantity"] == np.round(positions["quantity"])).all()
    assert (positions["quantity"] != 0).all()
    priced = positions.merge(prices, on=["symbol", "date"], how="left", validate="m:1")
    assert priced["close"].notna().all()  # only symbols with a price that day
    value = priced["quantity"] * priced["close"]
    long_only = priced["portfolio"] != "LONG_SHORT"
    assert (priced.loc[long_only, "quantity"] > 0).all()
    ls = priced[~long_only]
    assert (ls["quantity"] < 0).any()
    assert (value[~long_only].groupby(ls["date"]).sum() > 0).all()
    sizes = positions.groupby(["date", "portfolio"]).size()
    assert sizes.min() >= 15  # 20 symbols, minus the odd halt or late listing
    assert set(positions["date"]) == set(prices["date"])
    # Quantities are mostly stable from one session to the next.
    ordered = positions.sort_values(["portfolio", "symbol", "date"])
    changed = ordered.groupby(["portfolio", "symbol"])["quantity"].diff().fillna(0) != 0
    assert 0 < changed.mean() < 0.2


# --- intraday ---------------------------------------------------------------------------------


def test_bars_shape_times_and_quotes(small: tuple[Path, GenerationSummary]) -> None:
    out, summary = small
    bars = _read(out, "bars")
    assert set(bars["symbol"]) == set(summary.intraday_symbols)
    local = bars["ts"].dt.tz_convert("America/New_York")
    per_day = bars.groupby([bars["symbol"], local.dt.date]).size()
    assert (per_day == 390).all()
    minutes = local.dt.hour * 60 + local.dt.minute
    assert minutes.min() == 9 * 60 + 30
    assert minutes.max() == 15 * 60 + 59
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["bid"] < bars["ask"]).all()
    assert (bars["bid"] > 0).all()
    assert bars["vwap"].between(bars["low"], bars["high"]).all()
    spread_bps = (bars["ask"] - bars["bid"]) / bars["close"] * 1e4
    assert 0.1 < spread_bps.median() < 30
    opening = spread_bps[minutes < 9 * 60 + 35].mean()
    assert opening > spread_bps[minutes.between(12 * 60, 13 * 60)].mean()


def test_bars_agree_with_daily_prices(small: tuple[Path, GenerationSummary]) -> None:
    out, _ = small
    bars = _read(out, "bars")
    bars["date"] = bars["ts"].dt.tz_convert("America/New_York").dt.date
    daily = (
        bars.sort_values("ts")
        .groupby(["symbol", "date"])
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
    )
    prices = _read(out, "prices").set_index(["symbol", "date"]).loc[daily.index]
    pd.testing.assert_frame_equal(daily, prices[daily.columns], check_exact=False, rtol=1e-12)


def test_volume_is_u_shaped(small: tuple[Path, GenerationSummary]) -> None:
    bars = _read(small[0], "bars")
    local = bars["ts"].dt.tz_convert("America/New_York")
    minute = (local.dt.hour * 60 + local.dt.minute) - (9 * 60 + 30)
    edges = bars.loc[(minute < 30) | (minute >= 360), "volume"].mean()
    midday = bars.loc[minute.between(150, 239), "volume"].mean()
    assert edges > 1.5 * midday


def test_orders(small: tuple[Path, GenerationSummary]) -> None:
    out, summary = small
    orders = _read(out, "orders")
    assert orders["order_id"].is_unique
    assert set(orders["side"]) == {"BUY", "SELL"}
    assert set(orders["symbol"]) == set(summary.intraday_symbols)
    assert (orders["quantity"] > 0).all()
    assert (orders["quantity"] % 100 == 0).all()
    local_arrival = orders["arrival_ts"].dt.tz_convert("America/New_York")
    assert (local_arrival.dt.date == orders["date"]).all()
    session_close = pd.to_datetime(orders["date"].astype(str)).dt.tz_localize(
        "America/New_York"
    ) + pd.Timedelta(hours=16)
    duration = orders["end_ts"] - orders["arrival_ts"]
    assert (duration >= pd.Timedelta(minutes=5)).all()
    assert (orders["end_ts"] <= session_close).all()
    assert (local_arrival.dt.hour * 60 + local_arrival.dt.minute >= 570).all()
    for column in ("limit_price", "decision_price"):
        share_null = orders[column].isna().mean()
        assert 0.2 < share_null < 0.8, column
    for column, count in (("broker", 4), ("desk", 3), ("strategy", 4)):
        assert orders[column].nunique() == count, column


def test_fills_inside_their_order_and_bar(small: tuple[Path, GenerationSummary]) -> None:
    out, _ = small
    fills, orders, bars = (_read(out, name) for name in ("fills", "orders", "bars"))
    assert fills["fill_id"].is_unique
    assert (fills["quantity"] > 0).all()
    assert (fills["price"] > 0).all()
    assert (fills["fee"] >= 0).all()
    assert fills["venue"].nunique() == 5
    joined = fills.merge(orders, on="order_id", suffixes=("", "_order"), validate="m:1")
    assert len(joined) == len(fills)
    assert (joined["symbol"] == joined["symbol_order"]).all()
    assert (joined["side"] == joined["side_order"]).all()
    assert joined["ts"].between(joined["arrival_ts"], joined["end_ts"]).all()
    filled = joined.groupby("order_id")["quantity"].sum()
    wanted = orders.set_index("order_id")["quantity"]
    assert (filled <= wanted.loc[filled.index]).all()
    partly = (filled < wanted.loc[filled.index]).sum() + (len(wanted) - len(filled))
    assert 0.05 < partly / len(wanted) < 0.5
    joined["bar_ts"] = joined["ts"].dt.floor("min")
    in_bar = joined.merge(
        bars, left_on=["symbol", "bar_ts"], right_on=["symbol", "ts"], suffixes=("", "_bar")
    )
    assert len(in_bar) == len(fills)  # every fill falls in a bar of its symbol
    assert in_bar["price"].between(in_bar["low"], in_bar["high"]).all()
    # Buys pay above the bar's mid more often than sells do.
    mid = 0.5 * (in_bar["bid"] + in_bar["ask"])
    above = (in_bar["price"] > mid).groupby(in_bar["side"]).mean()
    assert above["BUY"] > above["SELL"]


# --- statistical realism ----------------------------------------------------------------------


def _daily_returns(root: Path) -> pd.DataFrame:
    prices = _read(root, "prices")
    wide = prices.pivot(index="date", columns="symbol", values="close")
    returns: pd.DataFrame = wide.apply(np.log).diff().iloc[1:]
    return returns


def test_returns_have_a_market_factor_and_fat_tails(
    long_run: tuple[Path, GenerationSummary],
) -> None:
    out, summary = long_run
    returns = _daily_returns(out)
    spx = returns.pop("SPX")
    assert returns.corrwith(spx).mean() > 0.3
    vols = returns.std() * np.sqrt(252)
    assert vols.between(0.1, 0.8).all()
    assert 0.12 < np.std(spx.to_numpy()) * np.sqrt(252) < 0.3
    standardized = (returns - returns.mean()) / returns.std()
    pooled = standardized.to_numpy(dtype=float).ravel()
    pooled = pooled[np.isfinite(pooled)]  # before a listing and around halts
    excess_kurtosis = np.mean(pooled**4) / np.mean(pooled**2) ** 2 - 3.0  # 0 for a normal
    assert excess_kurtosis > 1
    # Volatility clusters: squared market returns are autocorrelated.
    squared = spx**2
    assert squared.autocorr(lag=1) > 0.05
    assert summary.rows["bars"] == summary.rows["orders"] == summary.rows["fills"] == 0
    assert not (out / "bars").exists()


def test_listings_halts_and_volume(long_run: tuple[Path, GenerationSummary]) -> None:
    out, summary = long_run
    prices = _read(out, "prices")
    sessions = pd.to_datetime(trading_days(D(2021, 1, 1), D(2023, 12, 31))).date
    spans = prices.groupby("symbol")["date"].agg(["min", "max", "size"])
    assert (spans["min"] > sessions[0]).sum() >= 1  # an IPO inside the range
    position = {day: i for i, day in enumerate(sessions)}
    expected = spans["max"].map(position) - spans["min"].map(position) + 1
    missing = int((expected - spans["size"]).sum())
    assert 1 <= missing <= 0.003 * len(prices)  # rare single-day halts
    assert spans.loc["SPX", "size"] == len(sessions)
    prices = prices.sort_values(["symbol", "date"])
    move = np.log(prices["close"]).groupby(prices["symbol"]).diff().abs()
    log_volume = np.log(prices["volume"])
    relative = log_volume - log_volume.groupby(prices["symbol"]).transform("mean")
    assert relative.corr(move) > 0.1
    assert prices.groupby("symbol")["close"].first().between(5, 1000).drop("SPX").all()
    assert len(summary.symbols) == 50
    sizes = _read(out, "positions").groupby(["date", "portfolio"]).size()
    assert sizes.max() <= 60
    assert (sizes.groupby(level="portfolio").median() >= 20).all()
