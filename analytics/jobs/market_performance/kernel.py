"""Market-performance kernels: pure numpy/pandas work on one bucket of whole price series.

The Dask layer (:mod:`analytics.jobs.market_performance.job`) reads files, cuts each into
buckets by a stable hash of the symbol, and hands every bucket all the rows of its symbols.
Everything here is a plain function of arrays, testable without a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from analytics.constants import PERIOD_ALL, TAIL_QUANTILE, TRADING_DAYS_PER_YEAR
from analytics.data.buckets import Rows
from analytics.errors import InputError
from analytics.stats import metrics

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

METRIC_COLUMNS = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "beta",
    "alpha",
    "var_95",
    "cvar_95",
)
OUTPUT_COLUMNS = ("symbol", "period", "start", "end", "n_returns", *METRIC_COLUMNS)


@dataclass(frozen=True)
class Returns:
    """Daily returns of whole series, sorted by (symbol, date)."""

    names: npt.NDArray[np.object_]
    codes: npt.NDArray[np.int32]
    days: npt.NDArray[np.int32]
    values: FloatArray
    #: Symbols present with their price count, including those with no return.
    counts: pd.Series


def daily_returns(chunk: Rows) -> Returns:
    """``r_t = close_t / close_{t-1} - 1`` within each symbol, over its own consecutive rows."""
    same = chunk.codes[1:] == chunk.codes[:-1]
    close = chunk.column("close")
    values = close[1:] / close[:-1] - 1.0
    keep = np.flatnonzero(same) + 1
    counts = pd.Series(np.bincount(chunk.codes, minlength=len(chunk.names)), index=chunk.names)
    return Returns(
        chunk.names,
        chunk.codes[keep],
        chunk.days[keep],
        values[same],
        counts[counts > 0],
    )


def _month(days: npt.NDArray[np.int32]) -> IntArray:
    """The month (since 1970-01) of each day, converted once per distinct day of the range."""
    if not len(days):
        return np.zeros(0, dtype=np.int64)
    first = int(days.min())
    span = np.arange(first, int(days.max()) + 1, dtype=np.int64)
    months = span.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return np.asarray(months[days - first])


def _padded(
    values: FloatArray, starts: IntArray, lengths: IntArray, fill: float = np.nan
) -> FloatArray:
    """Segments of ``values`` as rows of a matrix, padded with ``fill`` to the longest."""
    width = int(lengths.max()) if len(lengths) else 0
    offsets = np.arange(width)
    index = starts[:, None] + offsets[None, :]
    valid = offsets[None, :] < lengths[:, None]
    if not len(values):
        return np.full(index.shape, fill)
    return np.where(valid, values[np.minimum(index, len(values) - 1)], fill)


def _grid(starts: IntArray, lengths: IntArray, size: int) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Row ``i`` of the padded matrix of segments: flat indexes and which cells are inside."""
    width = int(lengths.max()) if len(lengths) else 0
    offsets = np.arange(width)
    inside = offsets[None, :] < lengths[:, None]
    index = np.minimum(starts[:, None] + offsets[None, :], max(size - 1, 0))
    return index, inside


def _segment_metrics(returns: FloatArray, bench: FloatArray) -> dict[str, FloatArray]:
    summary = metrics.performance_summary(returns, bench, periods_per_year=TRADING_DAYS_PER_YEAR)
    return {name: summary[name] for name in METRIC_COLUMNS}


def _flat_metrics(
    values: FloatArray, bench: FloatArray, starts: IntArray, lengths: IntArray
) -> dict[str, FloatArray]:
    """:func:`metrics.performance_summary` of every segment ``values[s:s + n]`` of returns
    without NaN, computed on the flat arrays (segment sums by ``np.add.reduceat``) instead of a
    NaN-padded matrix: the same formulas, with fewer passes over the data. Only the drawdown
    (a running maximum) and the tails (a sort) use a padded matrix. ``bench`` is NaN where a
    return has no benchmark return to pair with.
    """
    ppy = TRADING_DAYS_PER_YEAR
    q = TAIL_QUANTILE
    n = lengths
    seg = np.repeat(np.arange(len(starts)), lengths)

    def total(x: FloatArray) -> FloatArray:
        return np.asarray(np.add.reduceat(x, starts), dtype=np.float64)

    enough = n >= metrics.MIN_RETURNS
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = total(values) / n
        dev = values - mean[seg]
        std = np.sqrt(total(dev * dev) / (n - 1))
        highest = np.maximum.reduceat(values, starts)
        lowest = np.minimum.reduceat(values, starts)
        std = np.where((highest == lowest) & enough, 0.0, std)

        final = np.multiply.reduceat(1.0 + values, starts)
        annual = final ** (ppy / n) - 1.0
        downside = np.minimum(values, 0.0)
        downside_risk = np.sqrt(total(downside * downside) / n) * np.sqrt(ppy)
        # The drawdown and the tails work on the segments as rows of a padded matrix.
        index, inside = _grid(starts, lengths, len(values))
        wealth = np.cumprod(np.where(inside, 1.0 + values[index], 1.0), axis=-1)
        peak = np.maximum(np.maximum.accumulate(wealth, axis=-1), 1.0)
        drawdown = np.min((wealth - peak) / peak, axis=-1, initial=0.0)
        calmar = np.where(drawdown < 0.0, annual / np.abs(drawdown), np.nan)

        both = ~np.isnan(bench)
        n_both = total(both.astype(np.float64))
        r_both = np.where(both, values, 0.0)
        b_both = np.where(both, bench, 0.0)
        b_res = np.where(both, bench - (total(b_both) / n_both)[seg], 0.0)
        variance = total(b_res * b_res) / n_both
        slope = (total(b_res * r_both) / n_both) / np.where(variance < 1.0e-30, np.nan, variance)
        excess = total(np.where(both, r_both - slope[seg] * b_both, 0.0)) / n_both
        paired = n_both >= metrics.MIN_RETURNS

        # The tails: each segment's returns in ascending order (numpy's linear quantile, and
        # the mean of the lowest int((n - 1) * q) + 1 for the CVaR); the padding sorts last.
        ordered = np.sort(np.where(inside, values[index], np.inf), axis=-1)
        rows = np.arange(len(starts))
        position = (n - 1) * q
        lower = np.floor(position).astype(np.int64)
        upper = np.minimum(lower + 1, n - 1)
        frac = position - lower
        a, b = ordered[rows, lower], ordered[rows, upper]
        var = np.where(frac >= 0.5, b - (b - a) * (1.0 - frac), a + (b - a) * frac)
        k = ((n - 1) * q).astype(np.int64) + 1
        first_k = np.arange(ordered.shape[1])[None, :] < k[:, None]
        cvar = np.where(first_k, ordered, 0.0).sum(axis=-1) / k

        out = {
            "total_return": final - 1.0,
            "annual_return": annual,
            "annual_volatility": std * np.sqrt(ppy),
            "sharpe": mean / std * np.sqrt(ppy),
            "sortino": mean * ppy / downside_risk,
            "max_drawdown": drawdown,
            "calmar": np.where(np.isinf(calmar), np.nan, calmar),
            "beta": np.where(paired, slope, np.nan),
            "alpha": np.where(paired, (1.0 + excess) ** ppy - 1.0, np.nan),
            "var_95": var,
            "cvar_95": cvar,
        }
    return {name: np.where(enough, out[name], np.nan) for name in METRIC_COLUMNS}


def _segments(keys: Sequence[npt.NDArray[np.int64]]) -> tuple[IntArray, IntArray]:
    """Starts and lengths of the runs where every key stays the same."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(change).astype(np.int64)
    lengths = np.diff(np.append(starts, n)).astype(np.int64)
    return starts, lengths


def benchmark_aligned(
    days: npt.NDArray[np.int32], bench_days: IntArray, bench: FloatArray
) -> FloatArray:
    """The benchmark return on each of ``days`` (NaN where it has none)."""
    if not len(bench_days) or not len(days):
        return np.full(len(days), np.nan)
    # A table over the days' range, NaN where the benchmark has no return: one lookup per row.
    first, last = int(days.min()), int(days.max())
    table = np.full(last - first + 1, np.nan)
    inside = (bench_days >= first) & (bench_days <= last)
    table[bench_days[inside] - first] = bench[inside]
    return np.asarray(table[days - first])


def period_metrics(
    rets: Returns, bench_days: IntArray, bench: FloatArray, symbols: Sequence[str] | None
) -> pd.DataFrame:
    """Metrics of every symbol for the whole range (``ALL``) and for each calendar month.

    A month's first return uses the previous trading day's close when the selection has it (the
    returns are computed over the whole series first). ``start`` and ``end`` are the dates of a
    period's first and last return. ``symbols`` restricts the output (None: every symbol).
    """
    codes = rets.codes.astype(np.int64)
    bench_row = benchmark_aligned(rets.days, bench_days, bench)
    months = _month(rets.days)
    # A NaN return (a NaN close) is an absent observation, which only the padded path skips.
    flat = not np.isnan(rets.values).any()
    frames = []
    for label, keys in ((PERIOD_ALL, [codes]), (None, [codes, months])):
        starts, lengths = _segments(keys)
        if not len(starts):
            continue
        values = (
            _flat_metrics(rets.values, bench_row, starts, lengths)
            if flat
            else _segment_metrics(
                _padded(rets.values, starts, lengths), _padded(bench_row, starts, lengths)
            )
        )
        last = starts + lengths - 1
        period = (
            np.full(len(starts), PERIOD_ALL, dtype=object)
            if label
            else months[starts].astype("datetime64[M]").astype(str)
        )
        frames.append(
            pd.DataFrame(
                {
                    "symbol": rets.names[codes[starts]],
                    "period": period,
                    "start": rets.days[starts].astype("datetime64[D]"),
                    "end": rets.days[last].astype("datetime64[D]"),
                    "n_returns": lengths,
                    **values,
                }
            )
        )
    # Symbols with a single price have no return at all: an ALL row of NaN metrics.
    with_return = np.zeros(len(rets.names), dtype=bool)
    with_return[codes] = True
    no_return = sorted(set(rets.counts.index) - set(rets.names[with_return]))
    if no_return:
        frames.append(
            pd.DataFrame({"symbol": no_return, "period": PERIOD_ALL, "n_returns": 0}).reindex(
                columns=list(OUTPUT_COLUMNS)
            )
        )
    if not frames:
        empty: pd.DataFrame = metrics_schema().empty_table().to_pandas()
        return empty
    out = pd.concat(frames, ignore_index=True)
    if symbols is not None:
        out = out[out["symbol"].isin(set(symbols))]
    out = out.astype({"symbol": str, "period": str, "n_returns": np.int64})
    out["start"] = pd.to_datetime(out["start"]).dt.date
    out["end"] = pd.to_datetime(out["end"]).dt.date
    all_first = np.where(out["period"] == PERIOD_ALL, 0, 1)
    out = out.assign(_all=all_first).sort_values(["symbol", "_all", "period"]).drop(columns="_all")
    return out.reset_index(drop=True)[list(OUTPUT_COLUMNS)]


def metrics_schema() -> pa.Schema:
    fields = [
        pa.field("symbol", pa.string()),
        pa.field("period", pa.string()),
        pa.field("start", pa.date32()),
        pa.field("end", pa.date32()),
        pa.field("n_returns", pa.int64()),
    ]
    fields += [pa.field(name, pa.float64()) for name in METRIC_COLUMNS]
    return pa.schema(fields)


@dataclass(frozen=True)
class BenchmarkPart:
    """What one bucket knows of the benchmark: the symbol's returns, or equal-weight sums."""

    symbol_days: IntArray | None
    symbol_returns: FloatArray | None
    ew_days: IntArray
    ew_sum: FloatArray
    ew_count: IntArray


def benchmark_part(rets: Returns, benchmark: str, selected: Sequence[str] | None) -> BenchmarkPart:
    """The benchmark symbol's returns if this bucket has them; equal-weight sums by day."""
    where = np.flatnonzero(rets.names == benchmark)
    sym_days = sym_rets = None
    if len(where):
        mask = rets.codes == where[0]
        sym_days = rets.days[mask].astype(np.int64)
        sym_rets = rets.values[mask]
    if selected is None:
        day_of, value_of = rets.days.astype(np.int64), rets.values
    else:  # the selection is tested once per name, not once per row
        chosen = np.isin(rets.names.astype(str), np.asarray(list(selected), dtype=str))
        in_ew = chosen[rets.codes]
        day_of, value_of = rets.days[in_ew].astype(np.int64), rets.values[in_ew]
    if not len(day_of):
        none = np.zeros(0, dtype=np.int64)
        return BenchmarkPart(sym_days, sym_rets, none, np.zeros(0), none)
    # Sums and counts by day: a bincount over the days' offsets, in row order like np.unique's.
    first = int(day_of.min())
    counts = np.bincount(day_of - first).astype(np.int64)
    sums = np.asarray(np.bincount(day_of - first, weights=value_of), dtype=np.float64)
    present = np.flatnonzero(counts)
    return BenchmarkPart(sym_days, sym_rets, present + first, sums[present], counts[present])


@dataclass(frozen=True)
class Benchmark:
    label: str
    days: IntArray
    returns: FloatArray


def combine_benchmark(parts: Sequence[BenchmarkPart], benchmark: str, explicit: bool) -> Benchmark:
    """The benchmark series: the symbol's returns, else the equal-weighted mean return.

    ``explicit`` (the user named the symbol) makes a missing symbol an error, not a fallback.
    """
    for part in parts:
        if part.symbol_days is not None and part.symbol_returns is not None:
            return Benchmark(benchmark, part.symbol_days, part.symbol_returns)
    if explicit:
        raise InputError(
            f"benchmark symbol {benchmark!r} has no prices in the selected range; "
            "pick another --benchmark or omit it for the equal-weighted mean of the symbols",
            dataset="prices",
            column="symbol",
        )
    if not parts:
        return Benchmark("equal-weighted", np.zeros(0, np.int64), np.zeros(0))
    days = np.concatenate([p.ew_days for p in parts])
    all_days, inverse = np.unique(days, return_inverse=True)
    sums = np.bincount(inverse, weights=np.concatenate([p.ew_sum for p in parts]))
    counts = np.bincount(inverse, weights=np.concatenate([p.ew_count for p in parts]))
    return Benchmark("equal-weighted", all_days, sums / counts)
