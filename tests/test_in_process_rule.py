"""Which runs use threads of the driver instead of worker processes: the runner's default
threshold, a job's own (market-performance: 256 MiB), and --workers forcing processes."""

from __future__ import annotations

import pytest

from analytics.jobs import get
from finbatch.runner import cluster_options
from finbatch.settings import ClusterSettings

MiB = 2**20


def _processes(job: str, input_bytes: int, cluster: ClusterSettings | None = None) -> bool:
    spec = get(job)
    opts = cluster_options(
        cluster or ClusterSettings(), "/tmp/out", {}, input_bytes, spec.sizing.in_process_bytes
    )
    return opts.local.processes


def test_the_default_threshold_is_32_mib() -> None:
    assert get("backtest").sizing.in_process_bytes is None
    assert _processes("backtest", 32 * MiB - 1) is False
    assert _processes("backtest", 32 * MiB) is True
    assert _processes("backtest", 137 * MiB) is True


@pytest.mark.parametrize(
    ("input_mib", "processes"),
    [(1, False), (137, False), (255, False), (256, True), (686, True)],
)
def test_market_performance_runs_on_threads_below_256_mib(input_mib: int, processes: bool) -> None:
    # 137 MiB: the bench's 2,000 symbols x 10 years; 686 MiB: 5,000 x 20 years.
    assert _processes("market-performance", input_mib * MiB) is processes


def test_workers_or_threads_given_always_mean_worker_processes() -> None:
    assert _processes("market-performance", MiB, ClusterSettings(workers=2)) is True
    assert _processes("market-performance", MiB, ClusterSettings(threads_per_worker=1)) is True


def test_an_unknown_input_size_means_worker_processes() -> None:
    spec = get("market-performance")
    opts = cluster_options(ClusterSettings(), "/tmp/out", {}, None, spec.sizing.in_process_bytes)
    assert opts.local.processes is True
