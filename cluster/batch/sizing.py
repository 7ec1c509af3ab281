"""``--nodes auto``: the node count of a multi-node job, from the size of its input.

The rule (documented in the README's Operate section)::

    by_bytes     = ceil(bytes of the selected Parquet objects / bytes_per_node)
    by_backtests = ceil(symbols x combinations / backtests_per_node)      (backtests only)
    nodes        = min(max_nodes, max(min_nodes, by_bytes, by_backtests))

``min_nodes`` is the multi-node definition's minimum (2, or the job's ``--min-nodes`` if
larger). The selected objects are those :func:`analytics.datasets.list_files` keeps for the
job's datasets, ``--start``/``--end`` (hive pruning by year/date) and ``--symbols``; the
symbols of a backtest are ``--symbols`` or, without it, the distinct symbols of the largest
selected prices file (one column read). :func:`decide` is pure; :func:`measure` does the
listing.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.parquet as pq

from analytics.arguments import iso_date, symbol_list
from analytics.datasets import Selection, list_files
from analytics.storage import open_fs

#: The datasets each job reads (sized together).
JOB_DATASETS = {
    "market-performance": ("prices",),
    "risk": ("prices", "positions"),
    "backtest": ("prices",),
    "tca": ("orders", "fills", "bars"),
    "execution-report": ("orders", "fills", "bars"),
}
#: The multi-node definition's smallest numNodes.
MIN_NODES = 2


@dataclass(frozen=True)
class SizingRule:
    """Work per node. Defaults: a c6i.4xlarge node (16 vCPUs, 28 GiB for the container)
    reads and reduces about 4 GiB of zstd Parquet (about 30 GiB in memory at worst) in a few
    minutes, and simulates about 20,000 symbol x combination backtests of a few years of days
    in a few minutes."""

    bytes_per_node: int = 4 * 2**30
    backtests_per_node: int = 20_000


@dataclass(frozen=True)
class InputSize:
    """What ``--nodes auto`` measured: the selected objects, and the backtests if any."""

    files: int
    bytes: int
    symbols: int = 0
    combinations: int = 0

    @property
    def backtests(self) -> int:
        return self.symbols * self.combinations


@dataclass(frozen=True)
class Decision:
    nodes: int
    reason: str


def decide(size: InputSize, rule: SizingRule, min_nodes: int, max_nodes: int) -> Decision:
    """The node count for ``size`` by the rule above, and a sentence saying why."""
    floor = max(MIN_NODES, min_nodes)
    by_bytes = math.ceil(size.bytes / rule.bytes_per_node)
    by_backtests = math.ceil(size.backtests / rule.backtests_per_node)
    wanted = max(floor, by_bytes, by_backtests)
    nodes = max(floor, min(max_nodes, wanted))
    why = [
        f"{size.files:,} objects, {size.bytes:,} bytes -> {by_bytes} at "
        f"{rule.bytes_per_node:,} bytes per node"
    ]
    if size.combinations:
        why.append(
            f"{size.symbols:,} symbols x {size.combinations:,} combinations = "
            f"{size.backtests:,} backtests -> {by_backtests} at {rule.backtests_per_node:,} "
            "per node"
        )
    if wanted > max_nodes:
        why.append(f"capped at --max-nodes {max_nodes}")
    elif wanted == floor and floor > max(by_bytes, by_backtests):
        why.append(f"raised to the minimum {floor}")
    return Decision(nodes, f"--nodes auto: {nodes} nodes ({'; '.join(why)})")


def _selection(argv: Sequence[str]) -> tuple[Selection, argparse.Namespace]:
    """The selection options of a job command line (the others are left to the job)."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--start", type=iso_date)
    p.add_argument("--end", type=iso_date)
    p.add_argument("--symbols", type=symbol_list)
    p.add_argument("--min-nodes", type=int, default=0)
    p.add_argument("--strategy")
    p.add_argument("--grid", action="append")
    known, _ = p.parse_known_args(list(argv))
    return Selection(known.start, known.end, known.symbols), known


def _distinct_symbols(url: str) -> int:
    fs, path = open_fs(url)
    with fs.open(path, "rb") as handle:
        column = pq.read_table(handle, columns=["symbol"]).column("symbol")
    return len(column.unique())


def combinations(strategy: str | None, grid: Sequence[str] | None) -> int:
    """The backtest's number of combinations (0 without a strategy)."""
    if not strategy:
        return 0
    from analytics.backtest.grid import build_combinations, combination_count, grid_option
    from analytics.backtest.strategies import registry

    specs = [grid_option(text) for text in grid or []]
    return combination_count(build_combinations(registry()[strategy], specs))


def backtest_combinations(argv: Sequence[str]) -> int:
    """The combinations of the backtest command line ``argv`` (its --strategy and --grid)."""
    _, known = _selection(argv)
    return combinations(known.strategy, known.grid)


def measure(job: str, input_url: str, argv: Sequence[str]) -> tuple[InputSize, int]:
    """List the job's selected input objects; also the job's ``--min-nodes`` (0 if none).

    Raises
    ------
    InputError
        When a dataset is missing, empty, or has no object in the selected range.
    """
    sel, known = _selection(argv)
    files = [
        f for name in JOB_DATASETS.get(job, ("prices",)) for f in list_files(input_url, name, sel)
    ]
    size = InputSize(len(files), sum(f.size for f in files))
    if job == "backtest":
        largest = max(files, key=lambda f: f.size)
        symbols = len(sel.symbols) if sel.symbols else _distinct_symbols(largest.url)
        size = InputSize(size.files, size.bytes, symbols, combinations(known.strategy, known.grid))
    return size, known.min_nodes
