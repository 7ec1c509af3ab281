"""Benchmark of the risk job with its VaR backtest against the risk job as it was before it.

On a generated market (default 500 symbols, 2021-01-04 .. 2024-03-28: enough sessions for a
500-day lookback and a 250-day backtest), on one warm 2-worker LocalCluster, in this process
(``finbatch risk --scheduler ...``: list, read, compute, write every table and the manifest):

(a) today's risk: ``--methods historical,parametric --backtest-days 0 --stress-window none``
    (the two models and tables the job had before the backtest; coverage and component ES are
    kept, they cost a few milliseconds);
(b) the full job: every model (historical, parametric, EWMA, FHS) and ``--backtest-days 250``;

and then both again as whole processes, ``finbatch risk ... --workers 2`` each starting its own
LocalCluster (process start to exit, report included): what a user waits for.

It prints both wall times and their ratio (the target is (b) <= 3 x (a)), the CPU seconds the
driver and the workers spent (a figure other processes on a shared machine disturb less than
wall time), and how many cores the whole machine kept busy meanwhile. The page cache is warm:
the input is read once, and the job run once uncounted (its one-off imports), before (a).

Run it with the project's virtualenv, from the repository root::

    python bench/risk_backtest.py [--symbols 500] [--data DIR] [--keep]

The data is generated into ``--data`` (default ``/tmp/finbatch-bench/risk``) when that folder
has no ``prices/``, and reused otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import entrypoint
from bench.backtest_sweep import measured
from bench.market_performance import _finbatch, machine, print_table

DEFAULT_DATA = Path("/tmp/finbatch-bench/risk")
START, END, AS_OF = "2021-01-04", "2024-03-28", "2024-03-27"
WORKERS = 2
TODAY = ["--methods", "historical,parametric", "--backtest-days", "0", "--stress-window", "none"]
FULL = ["--backtest-days", "250"]


def _generate(data: Path, symbols: int) -> None:
    if (data / "prices").exists():
        return
    code = entrypoint.main(
        [
            *("generate-data", "--output", str(data), "--start", START, "--end", END),
            *("--n-symbols", str(symbols), "--intraday-symbols", "1", "--intraday-days", "1"),
        ]
    )
    if code != 0:
        sys.exit(f"generate-data failed (exit {code})")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _risk(data: Path, out: Path, client: Any, extra: list[str]) -> dict[str, float]:
    args = [
        "risk",
        "--input",
        str(data),
        "--output",
        str(out),
        "--scheduler",
        client.scheduler.address,
    ]
    timing: dict[str, float] = {}
    workers0 = sum(client.run(_cpu_seconds).values())
    driver0 = _cpu_seconds()
    with measured(timing):
        code = entrypoint.main([*args, "--as-of", AS_OF, *extra])
    timing["driver_cpu"] = _cpu_seconds() - driver0
    timing["workers_cpu"] = sum(client.run(_cpu_seconds).values()) - workers0
    if code != 0:
        sys.exit(f"risk {' '.join(extra)} failed (exit {code})")
    manifest = json.loads((out / "_manifest.json").read_text())
    timing["job_s"] = float(manifest.get("duration_s", float("nan")))
    return timing


def _process(data: Path, out: Path, extra: list[str]) -> float:
    cmd = [_finbatch(), "risk", "--input", str(data), "--output", str(out), "--as-of", AS_OF]
    start = time.perf_counter()
    result = subprocess.run(
        [*cmd, "--workers", str(WORKERS), *extra], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"finbatch risk {' '.join(extra)} failed:\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--keep", action="store_true", help="keep the two runs' outputs")
    args = parser.parse_args()
    _generate(args.data, args.symbols)
    for name in ("prices", "positions"):
        pq.read_table(args.data / name)  # warm the page cache

    from distributed import Client, LocalCluster

    scratch = Path(tempfile.mkdtemp(prefix="risk-bench-", dir=args.data.parent))
    with (
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(WORKERS, timeout=60)
        # A first run, not counted, pays the one-off imports (dask.dataframe, the kernels).
        _risk(args.data, scratch / "warm-up", client, TODAY)
        today = _risk(args.data, scratch / "today", client, TODAY)
        full = _risk(args.data, scratch / "full", client, FULL)
    process = [
        _process(args.data, scratch / f"p{i}", extra) for i, extra in enumerate((TODAY, FULL))
    ]
    tasks = len(pq.read_table(scratch / "full" / "var_exceptions", columns=["portfolio"])) // (
        4 * 2
    )
    print()
    print_table(machine(), ("machine", ""))
    print()
    rows = [
        (
            f"(a) today's risk: {' '.join(TODAY)}",
            f"{today['seconds']:.2f}",
            f"{today['job_s']:.2f}",
            f"{today['driver_cpu']:.2f}",
            f"{today['workers_cpu']:.2f}",
            f"{today['busy']:.1f}",
            "1.00x",
        ),
        (
            f"(b) risk {' '.join(FULL)} (4 methods)",
            f"{full['seconds']:.2f}",
            f"{full['job_s']:.2f}",
            f"{full['driver_cpu']:.2f}",
            f"{full['workers_cpu']:.2f}",
            f"{full['busy']:.1f}",
            f"{full['seconds'] / today['seconds']:.2f}x",
        ),
    ]
    header = (
        "run",
        "wall s",
        "manifest s",
        "driver cpu s",
        "workers cpu s",
        "busy cores",
        "vs (a)",
    )
    print_table(rows, header)
    print(
        f"whole processes (own LocalCluster, start to exit): (a) {process[0]:.2f} s, "
        f"(b) {process[1]:.2f} s: {process[1] / process[0]:.2f}x"
    )
    cpu = [t["driver_cpu"] + t["workers_cpu"] for t in (today, full)]
    print(
        f"CPU seconds (driver and scheduler + workers): (a) {cpu[0]:.2f}, (b) {cpu[1]:.2f}: "
        f"{cpu[1] / cpu[0]:.2f}x"
    )
    print(
        f"\n{args.symbols} symbols, as of {AS_OF}; backtest: {tasks:,} portfolio-days "
        f"(x 4 methods x 2 confidences); target (b) <= 3.00 x (a)"
    )
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
