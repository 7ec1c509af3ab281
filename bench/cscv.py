"""Benchmark of the CSCV kernel (:mod:`analytics.stats.cscv`) at a sweep's size.

Noise returns of ``--combinations`` columns over ``--days`` dates are made in chunks of
``--chunk`` columns, as a sweep's tasks hold them; it times (a) the per-block sums of every chunk
(the work spread over the tasks), (b) merging them, and (c) CSCV over all C(S, S/2) splits on one
process (the work of the end of the job), and prints peak memory. One run; the default is the
issue's size: 2,520 days x 10,000 combinations x 16 blocks (12,870 splits).

Run it with the project's virtualenv, from the repository root::

    python bench/cscv.py [--days 2520] [--combinations 10000] [--blocks 16] [--chunk 1000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.stats import sums as group
from analytics.stats.cscv import block_sums, cscv
from bench.market_performance import machine, print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--combinations", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=1000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    parts = []
    sums_s = 0.0
    for start in range(0, args.combinations, args.chunk):
        width = min(args.chunk, args.combinations - start)
        returns = rng.normal(0.0003, 0.01, size=(args.days, width))
        began = time.perf_counter()
        parts.append(block_sums(returns, args.blocks))
        sums_s += time.perf_counter() - began

    began = time.perf_counter()
    merged = group.concat(parts)
    merge_s = time.perf_counter() - began

    began = time.perf_counter()
    result = cscv(merged)
    cscv_s = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    print_table(
        [
            ("days x combinations", f"{args.days:,} x {args.combinations:,}"),
            ("blocks / splits", f"{args.blocks} / {result.n_splits:,}"),
            ("block sums, all chunks", f"{sums_s:.2f} s"),
            ("merge", f"{merge_s:.3f} s"),
            ("CSCV", f"{cscv_s:.2f} s"),
            ("peak memory (RSS)", f"{peak:.2f} GiB"),
            ("pbo (noise: about 0.5)", f"{result.pbo:.3f}"),
            *machine(),
        ],
        ("measure", "value"),
    )


if __name__ == "__main__":
    main()
