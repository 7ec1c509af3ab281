"""Benchmark of the portfolio-backtest job's xs-momentum sweep against vectorbt, in one run.

The issue's case: 500 symbols x 10 years of generated daily prices (every listed symbol trades
every session; some list inside the range) x 100 combinations of ``xs-momentum`` (lookback 5 x
skip 2 x quantile 2 x rebalance 5), long only, next-open fills, zero costs.

- The job: ``portfolio-backtest`` end to end (``finbatch.run``) on those prices written as a
  partitioned Parquet dataset, on a warm cluster of one worker process of one thread pinned
  with this process to one core: from the call to the committed run (listing, reading, the
  panel, the 100 simulations, every table and the report). Also timed:
  the kernel alone (``analytics.jobs.portfolio_backtest.simulate`` over the 100 combinations,
  the panel already built): what a job's tasks do once the panel is on the worker.
- vectorbt, warm (numba compiled by a first call, not timed), pinned to the same core:
  ``Portfolio.from_orders(size_type="targetpercent", cash_sharing=True, call_seq="auto")`` and
  ``value()`` per combination, given the kernel's target weights on the fill days (building them
  is not timed) and the opens as order prices. ``--vectorbt-combos`` times a sample (every k-th
  combination) and the rate is per backtest.

Each vectorbt value series is checked against the job's ``equity/`` (``--top`` 100 keeps every
combination's curve) to 1e-9. Figures are "backtests per second per core" (a backtest is one
combination over the whole universe). With ``--large``, the job also runs on 5,000 symbols x 20
years x the same 100 combinations on the whole machine (two worker processes here), in a child
process whose tree's peak memory (the sum of its processes' resident sets, sampled every 0.2 s)
is printed with the wall time. Run from the repository root with the ``bench`` extra::

    python bench/portfolio_sweep.py [--symbols 500] [--years 10] [--vectorbt-combos 100] [--large]
"""

# ruff: noqa: E402  (the BLAS thread count is set before numpy is first imported)
from __future__ import annotations

import os

# One BLAS thread: the kernel's matrix products must not use the other core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import contextlib
import datetime as dt
import io
import itertools
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq

from analytics.data.schemas import PRICES
from analytics.generate.calendar import trading_days
from analytics.generate.daily import (
    Universe,
    YearPrices,
    initial_state,
    make_universe,
    simulate_year,
)
from analytics.generate.writer import prices_table, relative_path
from analytics.jobs.portfolio_backtest.kernel import Panel, Rules, simulate
from analytics.jobs.portfolio_backtest.scores import SCORE_PARAMS, decide, first_eligible
from analytics.jobs.portfolio_backtest.selection import target_weights
from analytics.jobs.portfolio_backtest.simulate import rebalance_schedule

TOLERANCE = 1e-9
GRID = {
    "lookback": [126, 189, 252, 315, 378],
    "skip": [0, 21],
    "quantile": [0.1, 0.2],
    "rebalance": [5, 10, 21, 42, 63],
}


def _generated(
    symbols: int, years: int, seed: int
) -> tuple[Universe, npt.NDArray[np.datetime64], list[YearPrices]]:
    """Generated daily bars, halts removed: every listed symbol has a row every session."""
    rng = np.random.default_rng(seed)
    days = trading_days(dt.date(2025 - years, 1, 1), dt.date(2024, 12, 31))
    universe = make_universe(rng, symbols, len(days))
    state = initial_state(universe)
    year_of = days.astype("datetime64[Y]")
    parts = [simulate_year(rng, universe, state, days[year_of == y]) for y in np.unique(year_of)]
    listed = np.arange(len(days))[:, None] >= universe.listing[None, :]
    start = 0
    for part in parts:
        part.present = listed[start : start + len(part.dates)]
        start += len(part.dates)
    return universe, days, parts


def generated_panel(symbols: int, years: int, seed: int = 20) -> Panel:
    """The generated bars (halts removed) as the kernel's panel."""
    universe, days, parts = _generated(symbols, years, seed)
    listed = np.vstack([p.present for p in parts])
    stack = {
        f: np.where(listed, np.vstack([getattr(p, f) for p in parts]), np.nan)
        for f in ("open", "close", "volume")
    }
    return Panel(days, np.array(universe.symbols), stack["open"], stack["close"], stack["volume"])


def write_market(root: Path, symbols: int, years: int, seed: int = 20) -> None:
    """The same bars as :func:`generated_panel` as a ``prices`` dataset (one file a year)."""
    universe, _, parts = _generated(symbols, years, seed)
    for part in parts:
        table = prices_table(universe, part)
        path = root / relative_path(PRICES, str(part.dates[0].astype("datetime64[Y]")))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")


def combinations() -> list[dict[str, float]]:
    return [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]


def orders(panel: Panel, params: dict[str, float], rules: Rules) -> np.ndarray:
    """(T, S) target percents on fill days for symbols with a row, NaN elsewhere."""
    key = tuple(int(params[p]) for p in SCORE_PARAMS["xs-momentum"])
    start = first_eligible(panel, "xs-momentum", key, rules)
    decided, fills = rebalance_schedule(start, int(params["rebalance"]), panel.n_dates, rules.fill)
    decision = decide(panel, "xs-momentum", key, rules, decided)
    size = np.full(panel.close.shape, np.nan)
    for i, day in enumerate(fills):
        w = target_weights(
            decision.score[i], decision.sigma[i], np.array([params["quantile"]]), rules
        )
        size[day] = np.where(panel.has_row[day], w[0], np.nan)
    return size


def vectorbt_value(
    vbt: object, size: np.ndarray, price: np.ndarray, close: np.ndarray
) -> np.ndarray:
    pf = vbt.Portfolio.from_orders(  # type: ignore[attr-defined]
        close,
        size,
        size_type="targetpercent",
        price=price,
        init_cash=1.0,
        cash_sharing=True,
        group_by=np.zeros(size.shape[1], dtype=int),
        call_seq="auto",
        min_size=0.0,  # its default, 1e-8 shares, drops real trades of a portfolio worth 1.0
        freq="1D",
    )
    return np.asarray(pf.value().to_numpy(), dtype=float)


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


def grid_args() -> list[str]:
    return [f"{name}={','.join(str(v) for v in values)}" for name, values in GRID.items()]


def run_job(market: Path, out: Path, scheduler: str) -> None:
    """The job on the warm cluster at ``scheduler``."""
    import finbatch

    finbatch.run(
        "portfolio-backtest",
        input=str(market),
        output=str(out),
        scheduler=scheduler,
        strategy="xs-momentum",
        grid=grid_args(),
        top=len(combinations()),
        run_id="bench",
        overwrite=True,
    )


def job_equity(out: Path) -> dict[tuple[float, ...], np.ndarray]:
    """Each combination's equity curve from the job's ``equity/``, by its parameters."""
    import pandas as pd

    frame = pd.read_parquet(out / "equity").sort_values(["rank", "date"])
    return {
        tuple(float(v) for v in key): group["equity"].to_numpy()
        for key, group in frame.groupby(list(GRID), sort=False)
    }


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def large_case(root: Path, symbols: int, years: int) -> None:
    """The job over ``symbols`` x ``years`` x 100 combinations on the whole machine."""
    import subprocess

    market = root / "large"
    t0 = time.perf_counter()
    write_market(market, symbols, years, seed=21)
    print(f"large: wrote {symbols:,} symbols x {years} years in {time.perf_counter() - t0:.0f} s")
    args = [sys.executable, "-m", "finbatch", "portfolio-backtest", "--input", str(market)]
    args += ["--output", str(root / "large-run"), "--strategy", "xs-momentum", "--run-id", "l"]
    args += [a for g in grid_args() for a in ("--grid", g)]
    cores = os.sched_getaffinity(0)
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.2)  # sampling, not waiting on a condition
    wall = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"large case failed ({proc.returncode}):\n{err[-2000:]}")
    print(
        f"large: job on {len(cores)} cores, {symbols:,} symbols x {years} years x "
        f"{len(combinations())} combinations: {wall:.1f} s wall, peak memory "
        f"{peak / 2**30:.2f} GiB (the job's process tree)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument(
        "--vectorbt-combos", type=int, default=100, help="combinations vectorbt runs (a sample)"
    )
    parser.add_argument("--large", action="store_true", help="also 5,000 symbols x 20 years")
    parser.add_argument("--large-symbols", type=int, default=5000)
    parser.add_argument("--large-years", type=int, default=20)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import tempfile

    import pandas as pd
    import vectorbt as vbt
    from distributed import LocalCluster

    root = Path(tempfile.mkdtemp(prefix="portfolio-bench-"))
    try:
        return _measure(args, root, pd, vbt, LocalCluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _measure(args: argparse.Namespace, root: Path, pd: Any, vbt: Any, LocalCluster: Any) -> int:
    if args.large:
        large_case(root, args.large_symbols, args.large_years)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    t0 = time.perf_counter()
    panel = generated_panel(args.symbols, args.years)
    write_market(root / "market", args.symbols, args.years)
    print(
        f"panel: {panel.n_dates} sessions x {panel.n_symbols} symbols, built and written in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    combos = combinations()
    rules = Rules()  # long, next-open, equal weights, zero costs

    simulate(panel, "xs-momentum", combos[:2], rules)  # warm caches
    kernel: dict[str, float] = {}
    with measured(kernel):
        runs = simulate(panel, "xs-momentum", combos, rules)
    job: dict[str, float] = {}
    # One worker process of one thread, on this process's core (affinity and the BLAS thread
    # count are inherited), warmed by a first run (its imports), as backtest_sweep.py does.
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        run_job(root / "market", root / "warm", cluster.scheduler_address)
        with measured(job):
            run_job(root / "market", root / "run", cluster.scheduler_address)
    curves = job_equity(root / "run")

    step = max(1, len(combos) // max(1, args.vectorbt_combos))
    sample = list(range(0, len(combos), step))[: args.vectorbt_combos]
    close = pd.DataFrame(panel.close).ffill().bfill().to_numpy()
    sizes = {i: orders(panel, combos[i], rules) for i in sample}
    warm = slice(0, 300)
    vectorbt_value(vbt, sizes[sample[0]][warm], panel.open[warm], close[warm])  # compile
    values = {}
    reference: dict[str, float] = {}
    with measured(reference):
        for i in sample:
            values[i] = vectorbt_value(vbt, sizes[i], panel.open, close)
    worst = 0.0
    for i in sample:
        expected = values[i][runs[i].first_fill :]
        curve = curves[tuple(float(v) for v in combos[i].values())]
        worst = max(worst, float(np.max(np.abs(curve - expected))))
        worst = max(worst, float(np.max(np.abs(runs[i].equity - expected))))
    job_rate = len(combos) / job["seconds"]
    kernel_rate = len(combos) / kernel["seconds"]
    vbt_rate = len(sample) / reference["seconds"]
    print(f"grid: {' x '.join(f'{k} {v}' for k, v in GRID.items())} = {len(combos)} combinations")
    print(
        f"job:      {len(combos)} backtests in {job['seconds']:.2f} s end to end -> "
        f"{job_rate:.1f} backtests/s/core (warm 1-thread cluster; machine busy "
        f"{job['busy']:.2f} cores)"
    )
    print(
        f"kernel:   {len(combos)} backtests in {kernel['seconds']:.2f} s -> "
        f"{kernel_rate:.1f} backtests/s/core (machine busy {kernel['busy']:.2f} cores)"
    )
    print(
        f"vectorbt: {len(sample)} backtests in {reference['seconds']:.2f} s -> "
        f"{vbt_rate:.2f} backtests/s/core (machine busy {reference['busy']:.2f} cores)"
    )
    print(
        f"ratio: job / vectorbt = {job_rate / vbt_rate:.0f}x (target >= 20x); "
        f"kernel / vectorbt = {kernel_rate / vbt_rate:.0f}x"
    )
    print(
        f"same answers: max |equity - vectorbt value| over {len(sample)} combinations, job and "
        f"kernel = {worst:.2e} (tolerance {TOLERANCE:g})"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; numpy {np.__version__}, "
        f"vectorbt {metadata.version('vectorbt')}, python {sys.version.split()[0]}"
    )
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
