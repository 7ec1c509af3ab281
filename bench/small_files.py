"""Benchmark: the same rows as thousands of small files and as a few large ones, for every job.

In one run it writes, with ``finbatch generate-data`` and pyarrow:

* *prices*: ``--symbols`` symbols over ``--years`` years (default 2,000 x 10: 5 M rows) as the
  generator's 10 files (``prices/year=YYYY/part-0.parquet``) and as one file per symbol
  (``prices/SYMBOL.parquet``, 2,001 files with the benchmark); ``positions/`` is the same in both;
* *intraday*: 20 symbols x 5 days of bars, orders and fills as the generator's files (one per
  day and dataset, 15 files) and as one file per order for orders and fills and one per symbol
  and day for bars (about 5,100 files);

then runs each job on both layouts, alternating (few, many, few, many, ... ``--repeat`` rounds),
each as a whole process (``python -m finbatch JOB``: start, cluster, run, report, exit). It
prints per job the best wall time of each layout and their ratio (the goal: many <= 1.5 x few),
the job's own time (the manifest's ``duration_s``: cluster ready to committed), whether the two
layouts gave the same main table, whether any stderr held a ``CommClosedError``, a heartbeat
error or a traceback, and the load average at every run (the machine is shared: only ratios
measured in the same run mean anything).

Run it from the repository root with the project's virtualenv::

    python bench/small_files.py [--symbols 2000] [--years 10] [--repeat 2] [--jobs a,b]
                                [--data /tmp/finbatch-bench/smallfiles]

The data is written once under ``--data`` and reused; each run's output goes to a scratch
folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DEFAULT_DATA = Path("/tmp/finbatch-bench/smallfiles")
LAST_DAY = dt.date(2024, 12, 31)
INTRADAY_SYMBOLS = 20
INTRADAY_DAYS = 5
#: The goal: many small files within this factor of the same rows in a few files.
GOAL = 1.5
#: What must not appear on a run's stderr.
WORKER_ERRORS = ("CommClosedError", "heartbeat", "Traceback")

#: Per job: its data set ("daily" or "intraday"), its arguments and its main table.
# fmt: off
JOBS: dict[str, tuple[str, list[str], str]] = {
    "market-performance": ("daily", [], "metrics"),
    "risk": ("daily", ["--as-of", "2024-12-30", "--lookback-days", "250"], "var"),
    "backtest": (
        "daily",
        ["--strategy", "sma-cross", "--grid", "fast=5,10", "--grid", "slow=20,50"],
        "summary",
    ),
    "portfolio-backtest": (
        "daily",
        [
            "--strategy", "xs-momentum", "--grid", "lookback=60,120", "--grid", "skip=5",
            "--grid", "quantile=0.2", "--grid", "rebalance=21",
        ],
        "results",
    ),
    "tca": ("intraday", ["--start", "2024-12-23", "--end", "2024-12-31"], "orders"),
    "execution-report": ("intraday", ["--start", "2024-12-23", "--end", "2024-12-31"], "orders"),
}
# fmt: on


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.parquet"))


def _generate(root: Path, *args: str) -> None:
    if (root / "prices").is_dir():
        return
    started = time.perf_counter()
    command = [sys.executable, "-m", "finbatch", "generate-data", "--output", str(root), *args]
    subprocess.run(command, check=True, capture_output=True, text=True)
    print(f"generated {root} in {time.perf_counter() - started:.1f} s")


def _link_tree(src: Path, dst: Path) -> None:
    """``src`` as hard links under ``dst`` (the same bytes, no copy)."""
    shutil.copytree(src, dst, copy_function=os.link)


def _write_groups(table: pa.Table, column: str, folder: Path, name: Callable[[str], str]) -> None:
    """One file per value of ``column`` of ``table`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = table.column(column).cast(pa.string())
    table = table.take(pc.sort_indices(keys))
    keys = table.column(column).cast(pa.string()).to_numpy(zero_copy_only=False)
    starts = [0, *(i for i in range(1, len(keys)) if keys[i] != keys[i - 1]), len(keys)]
    for a, b in itertools.pairwise(starts):
        pq.write_table(table.slice(a, b - a), folder / name(str(keys[a])))


def _hive_free(path: Path) -> pa.Table:
    """One file's rows without the partition column pyarrow would add from its folder."""
    return pq.ParquetFile(path).read()


def daily(data: Path, symbols: int, years: int) -> dict[str, Path]:
    few, many = data / f"daily-{symbols}x{years}-few", data / f"daily-{symbols}x{years}-many"
    start = dt.date(LAST_DAY.year - years + 1, 1, 1)
    _generate(few, "--start", start.isoformat(), "--end", LAST_DAY.isoformat(), "--n-symbols",
              str(symbols), "--intraday-symbols", "0", "--seed", "11")  # fmt: skip
    if not (many / "prices").is_dir():
        scratch = many.with_name(many.name + ".tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        prices = pa.concat_tables([_hive_free(p) for p in _files(few / "prices")])
        _write_groups(prices, "symbol", scratch / "prices", lambda s: f"{s}.parquet")
        _link_tree(few / "positions", scratch / "positions")
        scratch.rename(many)
    return {"few": few, "many": many}


def intraday(data: Path) -> dict[str, Path]:
    few, many = data / "intraday-few", data / "intraday-many"
    _generate(few, "--start", "2024-06-03", "--end", LAST_DAY.isoformat(), "--n-symbols", "100",
              "--intraday-symbols", str(INTRADAY_SYMBOLS), "--intraday-days",
              str(INTRADAY_DAYS), "--seed", "3")  # fmt: skip
    if not (many / "orders").is_dir():
        scratch = many.with_name(many.name + ".tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        for name, column in (("orders", "order_id"), ("fills", "order_id"), ("bars", "symbol")):
            for path in _files(few / name):
                folder = scratch / path.relative_to(few).parent
                _write_groups(_hive_free(path), column, folder, lambda k: f"{k}.parquet")
        for name in ("prices", "positions"):
            _link_tree(few / name, scratch / name)
        scratch.rename(many)
    return {"few": few, "many": many}


@dataclass
class Run:
    wall_s: float
    job_s: float
    load: str
    errors: list[str]


@dataclass
class Compared:
    job: str
    files: dict[str, int]
    runs: dict[str, list[Run]] = field(default_factory=dict)
    same: bool | None = None

    def best(self, layout: str) -> Run:
        return min(self.runs[layout], key=lambda r: r.wall_s)


def _run(job: str, root: Path, out: Path, extra: Sequence[str]) -> Run:
    load = _load()
    command = [sys.executable, "-m", "finbatch", job, "--input", str(root), "--output", str(out),
               *extra, "--log-format", "text"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{job} on {root} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    manifest = json.loads((out / "_manifest.json").read_text())
    errors = [bad for bad in WORKER_ERRORS if bad in done.stderr]
    return Run(wall, float(manifest["duration_s"]), load, errors)


def _table(out: Path, table: str) -> pd.DataFrame:
    frame = pd.read_parquet(out / table).drop(columns="run_id")
    keys = [c for c in frame.columns if frame[c].dtype.kind not in "fc"]
    return frame.sort_values([*keys, *(c for c in frame.columns if c not in keys)]).reset_index(
        drop=True
    )


def _same(outs: dict[str, Path], table: str) -> bool:
    a, b = (_table(outs[k], table) for k in ("few", "many"))
    try:
        pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-12)
    except AssertionError:
        return False
    return True


def compare(job: str, layouts: dict[str, Path], repeat: int, scratch: Path) -> Compared:
    _, extra, table = JOBS[job]
    files = {k: len(_files(v)) for k, v in layouts.items()}
    result = Compared(job, files, {"few": [], "many": []})
    for round_ in range(repeat):
        order = ("few", "many") if round_ % 2 == 0 else ("many", "few")
        outs = {}
        for layout in order:
            out = scratch / f"{job}-{layout}-{round_}"
            result.runs[layout].append(_run(job, layouts[layout], out, extra))
            outs[layout] = out
            print(f"  {job} {layout}: {result.runs[layout][-1]}", flush=True)
        if result.same is None:
            result.same = _same(outs, table)
        for out in outs.values():
            shutil.rmtree(out, ignore_errors=True)
    return result


def report(results: list[Compared]) -> None:
    print()
    print(
        "| job | files (few / many) | few: wall (job) s | many: wall (job) s | ratio | same "
        "table | worker errors | load at the runs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        few, many = r.best("few"), r.best("many")
        ratio = many.wall_s / few.wall_s
        loads = ", ".join(run.load.split()[0] for k in ("few", "many") for run in r.runs[k])
        errors = sorted({e for k in r.runs for run in r.runs[k] for e in run.errors}) or ["none"]
        mark = "" if ratio <= GOAL else " (over)"
        print(
            f"| {r.job} | {r.files['few']:,} / {r.files['many']:,} | {few.wall_s:.1f} "
            f"({few.job_s:.1f}) | {many.wall_s:.1f} ({many.job_s:.1f}) | {ratio:.2f}x{mark} | "
            f"{'yes' if r.same else 'NO'} | {', '.join(errors)} | {loads} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=2000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    unknown = sorted(set(jobs) - set(JOBS))
    if unknown:
        parser.error(f"--jobs: unknown {unknown}; choose from {list(JOBS)}")
    print(
        f"small files bench: {platform.node()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, pyarrow {pa.__version__}; load {_load()}"
    )
    args.data.mkdir(parents=True, exist_ok=True)
    data = {"daily": daily(args.data, args.symbols, args.years)}
    if any(JOBS[j][0] == "intraday" for j in jobs):
        data["intraday"] = intraday(args.data)
    results = []
    with tempfile.TemporaryDirectory(prefix="small-files-", dir=args.data) as scratch:
        for job in jobs:
            results.append(compare(job, data[JOBS[job][0]], args.repeat, Path(scratch)))
    report(results)
    print(f"load after: {_load()}")
    return 0 if all(r.same for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
