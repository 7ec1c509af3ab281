"""The Polars peer of ``bench/market_performance.py``: the job's ``metrics/`` table as one lazy
Polars query over the Parquet files.

An independent implementation of the job's contract: returns by ``shift`` over each symbol's
whole series (so a month's first return uses the previous trading day's close), periods ``ALL``
and ``strftime(date, '%Y-%m')``, metrics in empyrical's conventions (sample standard deviation,
252 periods a year, NaN for fewer than two returns), beta and alpha against the benchmark
symbol's returns on the days both have one, ``var_95`` the linear-interpolated 5 % quantile and
``cvar_95`` the mean of the lowest ``floor((n - 1) * 0.05) + 1`` returns.

It imports nothing but Polars, so the measured process pays only Polars' own start-up. Run as a
script it collects the result with Polars' default thread pool (all cores), prints one JSON line
(``done`` is the wall-clock time the result is in memory) and then writes the result to Parquet
for the correctness check::

    python bench/market_performance_polars.py 'DATA/prices/*/*.parquet' RESULT.parquet
"""

from __future__ import annotations

import json
import sys
import time

import polars as pl

TRADING_DAYS = 252
TAIL = 0.05
BENCHMARK = "SPX"
#: The job's metric columns, in its order (analytics/jobs/market_performance/kernel.py).
METRICS = (
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
NAN = float("nan")


def _period_stats() -> list[pl.Expr]:
    """What each (symbol, period) group reduces to; rows within a group are in date order."""
    r, b = pl.col("r"), pl.col("b")
    n = pl.len()
    wealth = (1.0 + r).cum_prod()
    n_b = b.count()  # returns paired with a benchmark return
    r_paired = pl.when(b.is_not_null()).then(r)
    var_b = b.var(ddof=0)
    slope = pl.when(var_b >= 1e-30).then(pl.cov(r_paired, b, ddof=0) / var_b).otherwise(NAN)
    k = ((n - 1).cast(pl.Float64) * TAIL).floor().cast(pl.Int64) + 1
    return [
        pl.col("date").min().alias("start"),
        pl.col("date").max().alias("end"),
        n.cast(pl.Int64).alias("n_returns"),
        (1.0 + r).product().alias("growth"),
        r.mean().alias("mean"),
        # Identical returns have a standard deviation of exactly 0 (empyrical's rule).
        pl.when(r.max() == r.min()).then(0.0).otherwise(r.std(ddof=1)).alias("std"),
        (pl.min_horizontal(r, 0.0) ** 2).mean().sqrt().alias("downside"),
        pl.min_horizontal(
            (wealth / pl.max_horizontal(wealth.cum_max(), 1.0)).min() - 1.0, 0.0
        ).alias("max_drawdown"),
        n_b.alias("n_paired"),
        slope.alias("slope"),
        (r_paired.mean() - slope * b.mean()).alias("excess"),
        r.quantile(TAIL, interpolation="linear").alias("var_95"),
        r.bottom_k(k).mean().alias("cvar_95"),
    ]


def metrics_query(prices_glob: str, benchmark: str = BENCHMARK) -> pl.LazyFrame:
    """The job's ``metrics/`` table (every symbol, ``ALL`` and each calendar month)."""
    ppy = float(TRADING_DAYS)
    prices = (
        pl.scan_parquet(prices_glob, hive_partitioning=False)
        .select("symbol", "date", "close")
        .with_columns(pl.col("symbol").cast(pl.String))
    )
    returns = (
        prices.sort("symbol", "date")
        .with_columns(r=pl.col("close") / pl.col("close").shift(1).over("symbol") - 1.0)
        .drop_nulls("r")
        .select("symbol", "date", "r")
    )
    bench = returns.filter(pl.col("symbol") == benchmark).select("date", b=pl.col("r"))
    paired = returns.join(bench, on="date", how="left", maintain_order="left")
    stats = pl.concat(
        [
            paired.group_by("symbol").agg(_period_stats()).with_columns(period=pl.lit("ALL")),
            paired.group_by("symbol", pl.col("date").dt.strftime("%Y-%m").alias("period")).agg(
                _period_stats()
            ),
        ],
        how="diagonal",
    )
    annual = pl.col("growth") ** (ppy / pl.col("n_returns")) - 1.0
    calmar = annual / -pl.col("max_drawdown")
    paired_ok = pl.col("n_paired") >= 2
    metrics = stats.select(
        "symbol",
        "period",
        "start",
        "end",
        "n_returns",
        total_return=pl.col("growth") - 1.0,
        annual_return=annual,
        annual_volatility=pl.col("std") * ppy**0.5,
        sharpe=pl.col("mean") / pl.col("std") * ppy**0.5,
        sortino=pl.col("mean") * ppy / (pl.col("downside") * ppy**0.5),
        max_drawdown=pl.col("max_drawdown"),
        calmar=pl.when((pl.col("max_drawdown") < 0) & calmar.is_finite())
        .then(calmar)
        .otherwise(NAN),
        beta=pl.when(paired_ok).then(pl.col("slope")).otherwise(NAN),
        alpha=pl.when(paired_ok).then((1.0 + pl.col("excess")) ** ppy - 1.0).otherwise(NAN),
        var_95=pl.col("var_95"),
        cvar_95=pl.col("cvar_95"),
    ).with_columns(
        pl.when(pl.col("n_returns") >= 2).then(pl.col(m)).otherwise(NAN).alias(m) for m in METRICS
    )
    # A symbol with a single price has no return: an ALL row of NaN metrics.
    lone = (
        prices.group_by("symbol")
        .agg(n=pl.len())
        .filter(pl.col("n") == 1)
        .select(
            "symbol",
            period=pl.lit("ALL"),
            start=pl.lit(None, pl.Date),
            end=pl.lit(None, pl.Date),
            n_returns=pl.lit(0, pl.Int64),
            **{m: pl.lit(NAN) for m in METRICS},
        )
    )
    return pl.concat([metrics, lone], how="vertical_relaxed")


def main(argv: list[str]) -> int:
    t0 = time.perf_counter()
    frame = metrics_query(argv[0]).collect()
    done = time.time()
    info = {
        "done": done,
        "query_s": time.perf_counter() - t0,
        "rows": frame.height,
        "threads": pl.thread_pool_size(),
    }
    print(json.dumps(info))
    frame.write_parquet(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
