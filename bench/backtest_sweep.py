"""Benchmark of the ``backtest`` job's sma-cross sweep against vectorbt, in one run.

Two sweeps over the same synthetic prices (geometric random walks with overnight gaps, every
symbol on every day): the issue's 100 symbols x 1,000 days x 100 combinations, and a larger one
(default 300 symbols x 2,520 days x 200 combinations). Both sides run the same rules:
``--fill close``, the same fee and slippage, entries while fast SMA > slow SMA and exits while
fast <= slow, vectorbt's year set to 252 days, all-in with 1.0 of starting cash, metrics
included (vectorbt computes total and annual return, annual volatility, Sharpe, Sortino, max
drawdown, trade count and win rate; finbatch its whole ``results/`` table, the portfolio
summary, the top combinations and their equity curves).

Figures, all "backtests per second per core" (a backtest is one symbol x one combination):

- vectorbt, warm (its numba functions compiled by a first call, whose time is printed
  separately), pinned to one core;
- finbatch, the job as a user runs it on a warm 2-worker LocalCluster (``finbatch backtest
  --scheduler ...``: list, read the Parquet, simulate, write every table and the manifest, then
  ``report.html``), per core = backtests / (wall seconds x 2 workers), from the command to its
  return and, also printed, from the command to the manifest written (before the report);
- finbatch's kernel alone (one process, one core, prices already in memory), for reference.

It checks that every (fast, slow, symbol) total return agrees to 1e-9 and prints the machine
and how busy its cores were (other processes) during each measurement: timings on a shared
machine are noisy. Run it from the repository root with vectorbt installed (the ``bench``
extra)::

    python bench/backtest_sweep.py [--large-symbols 300] [--large-days 2520] [--large-combos 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.data.buckets import Rows
from analytics.jobs.backtest.engine import Execution
from analytics.jobs.backtest.sweep import Sweep, run_sweep

FEE_BPS, SLIPPAGE_BPS = 10.0, 5.0
TOLERANCE = 1e-9
WORKERS = 2
#: The last job's own seconds (its manifest's duration_s: cluster ready to manifest written)
#: and its seconds from the command to the manifest written (before report.html).
LAST_JOB_SECONDS = [0.0]
LAST_TO_MANIFEST = [0.0]


@dataclass(frozen=True)
class Case:
    name: str
    symbols: int
    days: int
    fast: np.ndarray
    slow: np.ndarray

    @property
    def backtests(self) -> int:
        return self.symbols * len(self.fast)

    @property
    def grid(self) -> list[str]:
        """The same sweep as ``--grid`` options (a full grid: the product is the pairs)."""
        fast = ",".join(str(v) for v in np.unique(self.fast))
        slow = ",".join(str(v) for v in np.unique(self.slow))
        return ["--grid", f"fast={fast}", "--grid", f"slow={slow}"]


def _case(name: str, symbols: int, days: int, combos: int) -> Case:
    """A full grid of ``combos`` (fast, slow) pairs: 10 fast windows x ``combos / 10`` slow
    ones, every fast below every slow."""
    n_fast = min(10, combos)
    n_slow = max(1, combos // n_fast)
    fast_values = 5 + 5 * np.arange(n_fast)
    slow_values = fast_values[-1] + 10 + 10 * np.arange(n_slow)
    fast, slow = (m.ravel() for m in np.meshgrid(fast_values, slow_values, indexing="ij"))
    return Case(name, symbols, days, fast, slow)


def prices(case: Case, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dates, symbols, opens and closes (days x symbols) of geometric random walks."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-02", periods=case.days).to_numpy().astype("datetime64[D]")
    symbols = np.array([f"S{i:04d}" for i in range(case.symbols)])
    log = np.cumsum(rng.normal(0.0003, 0.018, (case.days, case.symbols)), axis=0)
    close = 50.0 * np.exp(log)
    gap = np.exp(rng.normal(0, 0.006, close.shape))
    open_ = np.vstack([close[:1], close[:-1]]) * gap
    return dates, symbols, open_, close


def write_prices(root: Path, dates: np.ndarray, symbols: np.ndarray, o: np.ndarray, c: np.ndarray):
    folder = root / "prices"
    folder.mkdir(parents=True)
    d, s = c.shape
    table = pa.table(
        {
            "symbol": pa.array(np.tile(symbols, d)),
            "date": pa.array(np.repeat(dates, s)),
            "open": o.reshape(-1),
            "high": np.maximum(o, c).reshape(-1),
            "low": np.minimum(o, c).reshape(-1),
            "close": c.reshape(-1),
            "volume": np.full(d * s, 1e6),
        }
    )
    pq.write_table(table, folder / "part-0.parquet", row_group_size=128 * 1024)


# ---------------------------------------------------------------------------------------------
# Measuring


def _busy_cores() -> tuple[float, float]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4], time.perf_counter()


@contextlib.contextmanager
def measured(out: dict[str, float]) -> Iterator[None]:
    """Wall seconds of the block, and the cores the whole machine kept busy meanwhile."""
    busy0, t0 = _busy_cores()
    yield
    busy1, t1 = _busy_cores()
    out["seconds"] = t1 - t0
    out["busy"] = (busy1 - busy0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def vectorbt_sweep(close: np.ndarray, symbols: np.ndarray, case: Case, chunk: int) -> pd.Series:
    """Total return of every (fast, slow, symbol), computing vectorbt's metrics as it goes.

    The symbols go ``chunk`` at a time (vectorbt holds days x columns arrays)."""
    import vectorbt as vbt

    out = []
    k = len(case.fast)
    for s0 in range(0, close.shape[1], chunk):
        part = pd.DataFrame(close[:, s0 : s0 + chunk], columns=symbols[s0 : s0 + chunk])
        part.index = pd.RangeIndex(len(part))
        fast = vbt.MA.run(part, window=list(case.fast), short_name="fast").ma.to_numpy()
        slow = vbt.MA.run(part, window=list(case.slow), short_name="slow").ma.to_numpy()
        n = part.shape[1]
        columns = pd.MultiIndex.from_arrays(
            [np.repeat(case.fast, n), np.repeat(case.slow, n), np.tile(part.columns, k)],
            names=["fast", "slow", "symbol"],
        )
        wide = pd.DataFrame(np.tile(part.to_numpy(), k), columns=columns)
        pf = vbt.Portfolio.from_signals(
            wide,
            pd.DataFrame(fast > slow, columns=columns),
            pd.DataFrame(fast <= slow, columns=columns),
            init_cash=1.0,
            fees=FEE_BPS / 1e4,
            slippage=SLIPPAGE_BPS / 1e4,
            freq="1D",
        )
        total = pf.total_return()
        pf.annualized_return()
        pf.annualized_volatility()
        pf.sharpe_ratio()
        pf.sortino_ratio()
        pf.max_drawdown()
        pf.trades.count()
        pf.trades.win_rate()
        out.append(total)
    return pd.concat(out)


def finbatch_job(data: Path, output: Path, case: Case, scheduler: str) -> tuple[float, pd.Series]:
    """Seconds of ``finbatch backtest`` on the running cluster; its total returns."""
    import entrypoint

    args = [
        "backtest",
        "--input",
        str(data),
        "--output",
        str(output),
        "--strategy",
        "sma-cross",
        *case.grid,
        "--fill",
        "close",
        "--fees-bps",
        str(FEE_BPS),
        "--slippage-bps",
        str(SLIPPAGE_BPS),
        "--scheduler",
        scheduler,
        "--run-id",
        "bench",
        "--overwrite",
        "--log-level",
        "WARNING",
    ]
    sink = io.StringIO()
    started = time.time()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        code = entrypoint.main(args)
    seconds = time.perf_counter() - t0
    LAST_TO_MANIFEST[0] = (output / "_manifest.json").stat().st_mtime - started
    if code != 0:
        sys.exit(f"finbatch backtest failed with exit code {code}:\n{sink.getvalue()}")
    manifest = json.loads((output / "_manifest.json").read_text())
    LAST_JOB_SECONDS[0] = float(manifest["duration_s"])
    results = pd.read_parquet(
        output / "results", columns=["fast", "slow", "symbol", "total_return"]
    )
    results["symbol"] = results["symbol"].astype(str)
    return seconds, results.set_index(["fast", "slow", "symbol"])["total_return"]


def finbatch_kernel(
    dates: np.ndarray, symbols: np.ndarray, o: np.ndarray, c: np.ndarray, case: Case
) -> None:
    """The same sweep in this process on one core: prices in memory, no Dask, no I/O."""
    d, s = c.shape
    days = dates.astype(np.int64)
    rows = Rows(
        symbols.astype(object),
        np.tile(np.arange(s, dtype=np.int32), d),
        np.repeat(days, s).astype(np.int32),
        np.zeros(d * s, dtype=np.int32),
        {"open": o.reshape(-1), "close": c.reshape(-1)},
    )
    sweep = Sweep("sma-cross", Execution("close", False, FEE_BPS / 1e4, SLIPPAGE_BPS / 1e4))
    run_sweep(rows, days, {"fast": case.fast, "slow": case.slow}, sweep)


def agreement(peer: pd.Series, ours: pd.Series) -> tuple[float, int]:
    joined = pd.concat([peer.rename("peer"), ours.rename("ours")], axis=1, join="outer")
    missing = int(joined.isna().any(axis=1).sum())
    return float((joined["peer"] - joined["ours"]).abs().max()), missing


def machine() -> list[tuple[str, str]]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("numpy", "dask", "vectorbt", "numba")
    )
    return [
        ("CPU", cpu),
        ("cores", f"{len(os.sched_getaffinity(0))} usable"),
        ("memory", f"{memory:.1f} GiB"),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_version()}; {versions}"),
        ("load average", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large-symbols", type=int, default=300)
    parser.add_argument("--large-days", type=int, default=2520)
    parser.add_argument("--large-combos", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (best is kept)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from distributed import Client, LocalCluster

    cases = [
        _case("issue: 100 symbols x 1,000 days x 100 combos", 100, 1000, 100),
        _case(
            f"large: {args.large_symbols} symbols x {args.large_days:,} days x "
            f"{args.large_combos // 10 * 10} combos",
            args.large_symbols,
            args.large_days,
            args.large_combos,
        ),
    ]
    print("machine:")
    for key, value in machine():
        print(f"  {key:13} {value}")
    print(f"fees {FEE_BPS} bps, slippage {SLIPPAGE_BPS} bps, --fill close, year = 252 days\n")

    import vectorbt as vbt

    vbt.settings.returns["year_freq"] = "252 days"
    tiny = _case("compile", 2, 60, 2)
    _, tiny_symbols, _, tiny_close = prices(tiny, 0)
    compile_time: dict[str, float] = {}
    with one_core(), measured(compile_time):
        vectorbt_sweep(tiny_close, tiny_symbols, tiny, 2)
    print(f"vectorbt first call (numba compilation, tiny input): {compile_time['seconds']:.1f} s\n")

    with (
        tempfile.TemporaryDirectory(prefix="finbatch-bench-") as scratch,
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(WORKERS, timeout=60)
        for i, case in enumerate(cases):
            dates, symbols, o, c = prices(case, seed=i + 1)
            data = Path(scratch) / f"data{i}"
            write_prices(data, dates, symbols, o, c)
            out = Path(scratch) / f"run{i}"
            finbatch_job(data, out, case, cluster.scheduler_address)  # warm-up
            job, kernel, peer = {}, {}, {}
            best_job = best_kernel = best_peer = (np.inf, 0.0)
            inside = to_manifest = 0.0
            for _ in range(args.rounds):
                with measured(job):
                    _, ours = finbatch_job(data, out, case, cluster.scheduler_address)
                if job["seconds"] < best_job[0]:
                    inside, to_manifest = LAST_JOB_SECONDS[0], LAST_TO_MANIFEST[0]
                best_job = min(best_job, (job["seconds"], job["busy"]))
                with one_core(), measured(kernel):
                    finbatch_kernel(dates, symbols, o, c, case)
                best_kernel = min(best_kernel, (kernel["seconds"], kernel["busy"]))
            with one_core(), measured(peer):
                theirs = vectorbt_sweep(c, symbols, case, chunk=max(1, 40_000 // len(case.fast)))
            best_peer = (peer["seconds"], peer["busy"])
            diff, missing = agreement(theirs, ours)
            n = case.backtests
            rate_job = n / (best_job[0] * WORKERS)
            rate_kernel = n / best_kernel[0]
            rate_peer = n / best_peer[0]
            print(f"{case.name} ({n:,} backtests)")
            print(
                f"  vectorbt (1 core, warm)          {best_peer[0]:8.2f} s  "
                f"{rate_peer:12,.0f} backtests/s/core   machine busy {best_peer[1]:.1f} cores"
            )
            print(
                f"  finbatch job ({WORKERS} workers, warm)     {best_job[0]:8.2f} s  "
                f"{rate_job:12,.0f} backtests/s/core   machine busy {best_job[1]:.1f} cores   "
                f"ratio {rate_job / rate_peer:5.1f}x\n"
                f"    to the manifest (before report.html) {to_manifest:.2f} s: "
                f"{n / (to_manifest * WORKERS):,.0f} backtests/s/core, ratio "
                f"{n / (to_manifest * WORKERS) / rate_peer:.1f}x; of which {inside:.2f} s in "
                "the job itself (cluster ready to manifest)"
            )
            print(
                f"  finbatch kernel (1 core)         {best_kernel[0]:8.2f} s  "
                f"{rate_kernel:12,.0f} backtests/s/core   machine busy {best_kernel[1]:.1f} "
                f"cores   ratio {rate_kernel / rate_peer:5.1f}x"
            )
            verdict = "OK" if diff <= TOLERANCE and missing == 0 else "MISMATCH"
            print(
                f"  total returns: {len(ours):,} compared, largest difference {diff:.2e} "
                f"(tolerance {TOLERANCE:g}), {missing} unmatched: {verdict}\n"
            )
            if verdict != "OK":
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
