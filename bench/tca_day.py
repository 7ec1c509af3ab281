"""Benchmark of ``tca`` and ``execution-report`` on one large day.

The day: 100,000 parent orders and 1,000,000 fills over 2,000 symbols' 1-minute bars (390 a
symbol: 780,000 bars), written in the input layout (``orders|fills|bars/date=YYYY-MM-DD/``) by a
fast vectorized generator below (the project's generator is for realistic small data), and the
symbols' daily prices of the 21 sessions before (``prices/year=YYYY/``: ADV and sigma of tca's
pre-trade model). In one run it measures:

(a) the floor: a raw pyarrow read of the day's three files, from the start of a fresh Python
    process to the tables in memory (the named peer: no job can read its input faster);
(b) ``finbatch tca --date D`` as a whole process (start to exit) and from cluster ready to
    manifest written (the manifest's ``duration_s``);
(c) the same for ``finbatch execution-report --date D``;
(d) (b) and (c) again with the code of ``--baseline`` (a git revision, default ``main``;
    exported with ``git archive`` to a temporary folder, no worktree): today's time beside this
    tree's, and their ratio. ``--baseline none`` skips it.

Each figure is the median of ``--repeat`` runs (default 3); baseline and current runs
alternate, so that a change in the machine's load hits both. It prints the times, the input
rows per second (orders + fills + bars), the ratio to (a), and the machine. The page cache is
warm for every measurement.

Run it with the project's virtualenv, from the repository root::

    python bench/tca_day.py [--orders 100000] [--fills 1000000] [--symbols 2000]
                            [--data DIR] [--workers N] [--repeat 3] [--baseline REV] [--keep]

The data goes to ``--data`` (default ``/tmp/finbatch-bench/tca``) and is reused when present.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.data.schemas import BARS, FILLS, ORDERS, PRICES
from analytics.generate.writer import MarketWriter, to_table
from bench.market_performance import _finbatch, machine, print_table

DEFAULT_DATA = Path("/tmp/finbatch-bench/tca")
ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2024, 3, 28)
#: The 21 XNYS sessions before DAY: the pre-trade model's window.
PRIOR_SESSIONS = (
    [dt.date(2024, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 1)]
    + [dt.date(2024, 3, d) for d in (4, 5, 6, 7, 8, 11, 12, 13, 14, 15, 18, 19, 20, 21, 22)]
    + [dt.date(2024, 3, d) for d in (25, 26, 27)]
)
OPEN_NS = 1_711_632_600_000_000_000  # 2024-03-28 13:30 UTC, 09:30 in New York
MINUTE = 60_000_000_000
MINUTES = 390

FLOOR_CHILD = """
import json, sys, time
import pyarrow.parquet as pq
rows = sum(pq.read_table(path).num_rows for path in sys.argv[1:])
print(json.dumps({"done": time.time(), "rows": rows}))
"""


def _strings(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded ``numbers``, built in Arrow (no Python string per row)."""
    digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def _labels(rng: np.random.Generator, names: tuple[str, ...], n: int) -> pa.Array:
    codes = rng.integers(0, len(names), n).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names)).cast(pa.string())


def generate(
    root: Path, n_orders: int, n_fills: int, n_symbols: int, seed: int = 1
) -> dict[str, int]:
    """Write the day's bars, orders and fills; consistent with the schemas and each other
    (fills inside their order's window and inside their bar's [low, high])."""
    rng = np.random.default_rng(seed)
    symbols = np.array([f"S{i:04d}" for i in range(n_symbols)])
    # Bars: a random walk of the mid per symbol, quotes 2 bps either side.
    base = np.exp(rng.uniform(np.log(10.0), np.log(500.0), n_symbols))
    steps = rng.normal(0.0, 0.02 / np.sqrt(MINUTES), (n_symbols, MINUTES))
    mid = base[:, None] * np.exp(np.cumsum(steps, axis=1))
    open_ = np.concatenate([base[:, None], mid[:, :-1]], axis=1)
    high = np.maximum(open_, mid) * (1 + rng.uniform(2e-4, 1e-3, mid.shape))
    low = np.minimum(open_, mid) * (1 - rng.uniform(2e-4, 1e-3, mid.shape))
    volume = np.round(rng.lognormal(np.log(2000.0), 0.5, mid.shape))
    writer = MarketWriter(str(root))
    bar_ts = OPEN_NS + np.arange(MINUTES, dtype=np.int64) * MINUTE
    writer.write(
        BARS,
        DAY.isoformat(),
        to_table(
            BARS,
            {
                "symbol": np.repeat(symbols, MINUTES),
                "ts": np.tile(bar_ts, n_symbols),
                "open": open_.ravel(),
                "high": high.ravel(),
                "low": low.ravel(),
                "close": mid.ravel(),
                "volume": volume.ravel(),
                "bid": (mid * (1 - 2e-4)).ravel(),
                "ask": (mid * (1 + 2e-4)).ravel(),
                "vwap": ((open_ + mid) / 2).ravel(),
            },
        ),
    )

    # Orders: uniform symbols, 5 minutes to 2 hours from arrival; 5% never fill.
    sym = np.sort(rng.integers(0, n_symbols, n_orders))
    arrival = OPEN_NS + rng.integers(0, 380 * MINUTE, n_orders)
    end = np.minimum(
        arrival + rng.integers(5 * MINUTE, 120 * MINUTE, n_orders), OPEN_NS + MINUTES * MINUTE
    )
    buy = rng.random(n_orders) < 0.5
    sign = np.where(buy, 1.0, -1.0)
    filled_orders = np.flatnonzero(rng.random(n_orders) >= 0.05)
    per_order = np.zeros(n_orders, dtype=np.int64)
    per_order[filled_orders] = rng.multinomial(
        n_fills, np.full(len(filled_orders), 1 / len(filled_orders))
    )
    parent = np.repeat(np.arange(n_orders), per_order)
    when = arrival[parent] + (
        rng.random(len(parent)) * (end[parent] - 1_000 - arrival[parent])
    ).astype(np.int64)
    order = np.lexsort((when, parent))
    parent, when = parent[order], when[order]
    row = sym[parent] * MINUTES + (when - OPEN_NS) // MINUTE
    price = mid.ravel()[row] * (1 + sign[parent] * rng.uniform(0.0, 3e-4, len(parent)))
    price = np.clip(price, low.ravel()[row], high.ravel()[row])
    fill_qty = 100.0 * rng.integers(1, 11, len(parent))
    filled = np.bincount(parent, fill_qty, minlength=n_orders)
    # 70% complete, 25% partial (up to half as much again), unfilled orders 100 to 10,000.
    factor = np.where(rng.random(n_orders) < 0.7, 1.0, rng.uniform(1.05, 1.5, n_orders))
    quantity = np.where(
        filled > 0, np.ceil(filled * factor / 100) * 100, 100.0 * rng.integers(1, 101, n_orders)
    )
    arrival_mid = mid.ravel()[sym * MINUTES + (arrival - OPEN_NS) // MINUTE]
    order_ids = _strings(f"O{DAY:%Y%m%d}-", np.arange(n_orders), 6)
    writer.write(
        ORDERS,
        DAY.isoformat(),
        to_table(
            ORDERS,
            {
                "order_id": order_ids,
                "date": np.full(n_orders, np.datetime64(DAY, "D")),
                "symbol": symbols[sym],
                "side": np.where(buy, "BUY", "SELL"),
                "quantity": quantity,
                "arrival_ts": arrival,
                "end_ts": end,
                "limit_price": (
                    np.round(arrival_mid * (1 + sign * 1e-3), 2),
                    rng.random(n_orders) < 0.45,
                ),
                "broker": _labels(rng, ("BRKA", "BRKB", "BRKC", "BRKD"), n_orders),
                "desk": _labels(rng, ("CASH", "PROGRAM", "QUANT"), n_orders),
                "strategy": _labels(rng, ("VWAP", "TWAP", "POV", "IS"), n_orders),
                "decision_price": (
                    arrival_mid * (1 + rng.normal(0, 5e-4, n_orders)),
                    rng.random(n_orders) < 0.5,
                ),
            },
        ),
    )
    writer.write(
        FILLS,
        DAY.isoformat(),
        to_table(
            FILLS,
            {
                "fill_id": _strings(f"F{DAY:%Y%m%d}-", np.arange(len(parent)), 7),
                "order_id": order_ids.take(pa.array(parent)),
                "ts": when,
                "symbol": symbols[sym[parent]],
                "side": np.where(buy[parent], "BUY", "SELL"),
                "quantity": fill_qty,
                "price": price,
                "venue": _labels(rng, ("NYSE", "NASDAQ", "ARCA", "BATS", "IEX"), len(parent)),
                "fee": np.round(price * fill_qty * 1e-4, 2),
            },
        ),
    )
    return dict(writer.rows)


def generate_prices(root: Path, n_symbols: int, seed: int = 2) -> int:
    """The symbols' daily rows of :data:`PRIOR_SESSIONS` (a random walk, 2% a day)."""
    rng = np.random.default_rng(seed)
    symbols = np.array([f"S{i:04d}" for i in range(n_symbols)])
    k = len(PRIOR_SESSIONS)
    base = np.exp(rng.uniform(np.log(10.0), np.log(500.0), n_symbols))
    close = base[:, None] * np.exp(np.cumsum(rng.normal(0.0, 0.02, (n_symbols, k)), axis=1))
    table = to_table(
        PRICES,
        {
            "symbol": np.repeat(symbols, k),
            "date": np.tile(np.array(PRIOR_SESSIONS, dtype="datetime64[D]"), n_symbols),
            "open": close.ravel(),
            "high": close.ravel(),
            "low": close.ravel(),
            "close": close.ravel(),
            "volume": np.round(rng.lognormal(np.log(2000.0 * 390), 0.3, n_symbols * k)),
        },
    )
    MarketWriter(str(root)).write(PRICES, str(DAY.year), table)
    return int(table.num_rows)


def export_revision(revision: str, into: Path) -> Path:
    """The files of ``revision`` (``git archive``) under ``into``; the repository is untouched."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _files(data: Path) -> list[Path]:
    return sorted(
        p for name in ("orders", "fills", "bars") for p in (data / name).rglob("*.parquet")
    )


def floor_fresh(files: list[Path]) -> float:
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-c", FLOOR_CHILD, *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout)["done"]) - start


def run_job(
    job: str, data: Path, output: Path, workers: int | None, code: Path | None = None
) -> tuple[float, dict[str, Any]]:
    """One run of ``job``; with ``code``, the command line of the tree at ``code``."""
    env = None
    launcher = [_finbatch()]
    if code is not None:
        env = {**os.environ, "PYTHONPATH": str(code)}
        launcher = [sys.executable, "-c", "import sys, entrypoint; sys.exit(entrypoint.main())"]
    cmd = [
        *launcher,
        job,
        "--input",
        str(data),
        "--output",
        str(output),
        "--date",
        DAY.isoformat(),
        "--log-level",
        "WARNING",
    ]
    if workers:
        cmd += ["--workers", str(workers)]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=code)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{job} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return seconds, json.loads((output / "_manifest.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=2_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset root (reused)")
    parser.add_argument("--workers", type=int, help="LocalCluster workers (default: one per CPU)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each figure (median)")
    parser.add_argument("--keep", action="store_true", help="keep the jobs' output")
    parser.add_argument(
        "--baseline", default="main", help="git revision to time beside this tree ('none': skip)"
    )
    args = parser.parse_args(argv)

    data = args.data.resolve()
    if not (data / "orders").is_dir():
        t0 = time.perf_counter()
        rows = generate(data, args.orders, args.fills, args.symbols)
        print(f"data: generated {data} in {time.perf_counter() - t0:.1f} s: {rows}")
    else:
        print(f"data: reusing {data}")
    if not (data / "prices").is_dir():
        print(f"data: wrote {generate_prices(data, args.symbols):,} prices rows")
    files = _files(data)
    size = sum(p.stat().st_size for p in files)
    counts = {
        name: sum(pq.ParquetFile(p).metadata.num_rows for p in files if f"/{name}/" in str(p))
        for name in ("orders", "fills", "bars")
    }
    total_rows = sum(counts.values())
    print(
        f"data: {len(files)} files, {size / 2**20:,.1f} MiB, "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    )

    scratch = Path(tempfile.mkdtemp(prefix="tca-run-", dir=data.parent))
    try:
        floor_fresh(files)  # warms the page cache
        floor = statistics.median(floor_fresh(files) for _ in range(args.repeat))
        figures: list[tuple[str, float]] = [
            ("(a) raw pyarrow read of the day, fresh process", floor)
        ]
        baseline = None
        if args.baseline != "none":
            baseline = export_revision(args.baseline, scratch / "baseline-code")
        manifests = {}
        ratios: list[tuple[str, str, str, str]] = []
        for job in ("tca", "execution-report"):
            runs, before = [], []
            for i in range(args.repeat):  # alternate: a change of load hits both
                runs.append(run_job(job, data, scratch / f"{job}-{i}", args.workers))
                if baseline is not None:
                    out = scratch / f"{job}-baseline-{i}"
                    before.append(run_job(job, data, out, args.workers, baseline))
            manifests[job] = runs[-1][1]
            letter = "b" if job == "tca" else "c"
            whole = statistics.median(seconds for seconds, _ in runs)
            ready = statistics.median(float(m["duration_s"]) for _, m in runs)
            figures.append((f"({letter}) {job}: process start to exit", whole))
            figures.append((f"    {job}: cluster ready to manifest", ready))
            if before:
                old_whole = statistics.median(seconds for seconds, _ in before)
                old_ready = statistics.median(float(m["duration_s"]) for _, m in before)
                figures.append((f"(d) {job} at {args.baseline}: process start to exit", old_whole))
                figures.append(
                    (f"    {job} at {args.baseline}: cluster ready to manifest", old_ready)
                )
                ratios.append(
                    (job, f"{whole / old_whole:.2f}x", f"{ready / old_ready:.2f}x", "1.30x")
                )
        cluster = manifests["tca"]["cluster"]
        summary = manifests["tca"]["summary"]
        print(
            f"\ntca day {DAY}: {counts['orders']:,} orders, {counts['fills']:,} fills, "
            f"{counts['bars']:,} bars "
            f"of {summary['symbols']:,} symbols; cluster {cluster.get('workers')} workers / "
            f"{cluster.get('threads')} threads, {summary['partitions']} partitions\n"
        )
        print_table(
            [
                (label, f"{s:.2f}", f"{total_rows / s:,.0f}", f"{s / floor:.1f}x")
                for label, s in figures
            ],
            ("figure", "seconds", "input rows/s", "vs (a)"),
        )
        if ratios:
            print()
            print_table(ratios, ("this tree / baseline", "process", "cluster ready", "target"))
        print()
        print_table(machine(), ("machine", ""))
    finally:
        if args.keep:
            print(f"\nkept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
