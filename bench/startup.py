"""Start-up costs of the command line, whole process, against ``python -c pass`` in one run.

Prints, each the median of ``--repeat`` runs (wall time from process start to exit):

- ``python -c pass``: the interpreter alone (the floor);
- ``finbatch --help`` (target <= 0.5 s);
- an argument or input error reported with exit 2 before any cluster starts: a bad
  ``--symbols``, a missing ``--input``, ``--start`` after ``--end`` (target <= 1 s each);
- market-performance on 5 symbols x 1 year, generated first (target <= 3 s), with its report.

Run from the repository root: ``python bench/startup.py``. The machine's load is printed too:
timings on a shared machine are only comparable within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

TARGETS = {"help": 0.5, "error": 1.0, "job": 3.0}


def timed(argv: Sequence[str], expect: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if done.returncode != expect:
            raise SystemExit(f"{argv}: exit {done.returncode}, expected {expect}: {done.stderr}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    finbatch = [sys.executable, "-m", "finbatch"]
    work = tempfile.mkdtemp(prefix="finbatch-startup-")
    data = os.path.join(work, "data")
    try:
        generate = [*finbatch, "generate-data", "--output", data, "--start", "2024-01-02"]
        generate += ["--end", "2024-12-31", "--n-symbols", "5", "--intraday-symbols", "0"]
        subprocess.run(generate, check=True, capture_output=True)
        job = [*finbatch, "market-performance", "--input", data]
        rows = [
            ("python -c pass", [sys.executable, "-c", "pass"], 0, None),
            ("finbatch --help", [*finbatch, "--help"], 0, "help"),
            (
                "bad --symbols (exit 2)",
                [*job, "--output", os.path.join(work, "e1"), "--symbols", ","],
                2,
                "error",
            ),
            (
                "missing --input (exit 2)",
                [
                    *finbatch,
                    "market-performance",
                    "--input",
                    os.path.join(work, "nothing"),
                    "--output",
                    os.path.join(work, "e2"),
                ],
                2,
                "error",
            ),
            (
                "--start after --end (exit 2)",
                [
                    *job,
                    "--output",
                    os.path.join(work, "e3"),
                    "--start",
                    "2024-06-01",
                    "--end",
                    "2024-01-01",
                ],
                2,
                "error",
            ),
        ]
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.2f}; python {platform.python_version()}"
        )
        floor = None
        for label, argv, expect, target in rows:
            seconds = timed(argv, expect, opts.repeat)
            floor = seconds if floor is None else floor
            goal = f"target <= {TARGETS[target]:.1f} s" if target else ""
            print(f"{label:<32} {seconds:6.3f} s  ({seconds / floor:5.1f}x python)  {goal}")
        runs = []
        for i in range(opts.repeat):
            out = os.path.join(work, f"run{i}")
            runs.append(timed([*job, "--output", out], 0, 1))
        seconds = statistics.median(runs)
        print(
            f"{'market-performance 5 x 1 y':<32} {seconds:6.3f} s  "
            f"({seconds / (floor or 1):5.1f}x python)  target <= {TARGETS['job']:.1f} s"
        )
        print(f"load after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
