"""Benchmark of the backtest's sweep validation (issue 14): what walk-forward and CSCV cost.

One synthetic market (geometric random walks, every symbol on every business day; default the
issue's 300 symbols x 10 years) and one momentum sweep of 1,000 combinations (lookback 1..250 x
rebalance 1, 2, 5, 10), run as a user runs it on one warm 2-worker LocalCluster
(``finbatch backtest --scheduler ...``), timed by each run's manifest (``duration_s``: cluster
ready to manifest written; each run twice, in the order A B C C B A, the best kept):

- ``validated``: with ``--walk-forward 36:12`` and the default CSCV (16 blocks, 12,870 splits),
  psr, dsr, the benchmark columns and the baseline: everything of issue 14;
- ``default``: the same without ``--walk-forward`` (CSCV, psr and dsr are always computed);
- ``reference`` (with ``--reference DIR``, a checkout of the job from before issue 14, for
  example ``git archive <commit> | tar -x -C DIR``): the same sweep without any of it, run with
  that checkout first on ``PYTHONPATH``.

The target is validated / reference <= 1.2. Run from the repository root::

    python bench/sweep_validation.py [--symbols 300] [--years 10] [--reference DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from distributed import LocalCluster

GRID = ["--grid", "lookback=1:250:1", "--grid", "rebalance=1,2,5,10"]  # 1,000 combinations
WORKERS = 2


def market(root: Path, symbols: int, years: int, seed: int = 5) -> Path:
    """Random-walk closes, one file per year, every symbol on every business day."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2010-01-01", periods=252 * years)
    close = 100.0 * np.exp(np.cumsum(0.012 * rng.standard_normal((len(days), symbols)), axis=0))
    names = np.array([f"S{i:04d}" for i in range(symbols)])
    (root / "prices").mkdir(parents=True)
    for year in sorted(set(days.year)):
        rows = np.flatnonzero(days.year == year)
        c = close[rows].T.reshape(-1)
        frame = pd.DataFrame(
            {
                "symbol": np.repeat(names, len(rows)),
                "date": np.tile(days[rows].date, symbols),
                "open": c,
                "high": c,
                "low": c,
                "close": c,
                "volume": 1e6,
            }
        )
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False),
            root / "prices" / f"{year}.parquet",
        )
    return root


def run(data: Path, out: Path, address: str, extra: list[str], path: str) -> float:
    """One job through the CLI in a fresh process; its manifest's seconds."""
    env = {**os.environ, "PYTHONPATH": path}
    argv = [sys.executable, "-m", "finbatch", "backtest", "--input", str(data)]
    argv += ["--output", str(out), "--strategy", "momentum", *GRID, "--fill", "close"]
    argv += ["--fees-bps", "5", "--slippage-bps", "10", "--scheduler", address, "--run-id", "b"]
    done = subprocess.run([*argv, *extra], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv + extra)} failed:\n{done.stderr[-3000:]}")
    manifest = json.loads((out / "_manifest.json").read_text())
    return float(manifest["duration_s"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=300)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--reference", type=Path, default=None)
    args = parser.parse_args(argv)
    here = str(Path(__file__).resolve().parents[1])
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
    ):
        root = Path(tmp)
        t0 = time.perf_counter()
        data = market(root / "market", args.symbols, args.years)
        print(
            f"market: {args.symbols} symbols x {252 * args.years} days, 1,000 combinations "
            f"({time.perf_counter() - t0:.1f} s to generate); {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        address = cluster.scheduler_address
        wf = ["--walk-forward", "36:12"]
        # Each run twice, in the order A B C C B A: on a warm cluster a later run can be slower
        # (or faster) than an earlier one for reasons of its own; the best of two is kept.
        runs = {"validated": (wf, here), "default": ([], here)}
        if args.reference is not None:
            runs = {"reference": ([], str(args.reference)), **runs}
        seconds: dict[str, float] = {}
        for i, name in enumerate([*runs, *reversed(runs)]):
            extra, path = runs[name]
            took = run(data, root / f"{name}-{i}", address, extra, path)
            seconds[name] = min(took, seconds.get(name, took))
        for name, value in seconds.items():
            print(f"{name:>10}: {value:7.1f} s", flush=True)
        base = seconds.get("reference", seconds["default"])
        label = "reference" if "reference" in seconds else "default"
        print(
            f"validated / {label}: {seconds['validated'] / base:.2f} (target <= 1.2); "
            f"load after {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
