"""``--nodes auto``: the node count of a multi-node job, from the size of its input.

The rule (documented in ``docs/aws.md``)::

    by_bytes     = ceil(bytes of the selected Parquet objects / bytes_per_node)
    by_backtests = ceil(symbols x combinations / backtests_per_node)      (backtests only)
    nodes        = min(max_nodes, max(min_nodes, by_bytes, by_backtests))

``min_nodes`` is the multi-node definition's minimum (2, or the job's ``--min-nodes`` if
larger). The selected objects are those :func:`analytics.data.datasets.list_files` keeps for the
job's datasets, ``--start``/``--end`` (hive pruning by year/date) and ``--symbols``; the
symbols of a backtest are ``--symbols`` or, without it, the distinct symbols of the largest
selected prices file (one column read). :func:`decide` is pure; :func:`measure` does the
listing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from analytics import jobs
from analytics.data.datasets import Selection, list_files
from analytics.data.storage import open_fs
from analytics.jobs.contract import JobSpec, RunSettings

#: The multi-node definition's smallest numNodes.
MIN_NODES = 2


@dataclass(frozen=True)
class SizingRule:
    """Work per node. Defaults: a c6i.4xlarge node (16 vCPUs, 28 GiB for the container)
    reads and reduces about 4 GiB of zstd Parquet (about 30 GiB in memory at worst) in a few
    minutes, and simulates about 10 million symbol x combination backtests of 10 years of days
    in a few minutes: 16 cores x 180 s at the measured 24,600 backtests/s/core of a whole
    backtest job (3,000 symbols x 2,516 days x 1,000 combinations in 122 CPU-s) is 71 million,
    at a portfolio-backtest's 4,500 symbol x combinations/s/core 13 million
    (docs/performance.md)."""

    bytes_per_node: int = 4 * 2**30
    backtests_per_node: int = 10_000_000


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


def _parsed(job: str, argv: Sequence[str]) -> tuple[JobSpec, Selection, Any, int]:
    """The job's spec, selection, options and ``--min-nodes`` from its command line (parsed
    as the container will; the required --input/--output may be absent here)."""
    import dataclasses

    from analytics.options import build
    from finbatch.parsing import job_parser

    spec = jobs.get(job)
    parser = job_parser(spec)
    for action in parser._actions:
        action.required = False
    values = vars(parser.parse_known_args(list(argv))[0])
    values.pop("log_level", None)
    common = {f.name for f in dataclasses.fields(RunSettings)}
    sel = Selection(values.get("start"), values.get("end"), values.get("symbols"))
    own = {f.name for f in dataclasses.fields(spec.options)}
    options = build(spec.options, {k: v for k, v in values.items() if k in own and k not in common})
    return spec, sel, options, int(values.get("min_nodes") or 0)


def _distinct_symbols(url: str) -> int:
    import pyarrow.parquet as pq

    fs, path = open_fs(url)
    with fs.open(path, "rb") as handle:
        column = pq.read_table(handle, columns=["symbol"]).column("symbol")
    return len(column.unique())


def units(job: str, argv: Sequence[str]) -> int:
    """The job's simulations per symbol (a sweep's combinations), 0 for other jobs."""
    spec, _, options, _ = _parsed(job, argv)
    return spec.sizing.units(options) if spec.sizing.units is not None else 0


def measure(job: str, input_url: str, argv: Sequence[str]) -> tuple[InputSize, int]:
    """List the job's selected input objects; also the job's ``--min-nodes`` (0 if none).

    Raises
    ------
    InputError
        When a dataset is missing, empty, or has no object in the selected range.
    """
    spec, sel, options, min_nodes = _parsed(job, argv)
    files = [f for name in spec.datasets for f in list_files(input_url, name, sel)]
    size = InputSize(len(files), sum(f.size for f in files))
    if spec.sizing.units is not None:
        largest = max(files, key=lambda f: f.size)
        symbols = len(sel.symbols) if sel.symbols else _distinct_symbols(largest.url)
        size = InputSize(size.files, size.bytes, symbols, spec.sizing.units(options))
    return size, min_nodes
