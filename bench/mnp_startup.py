"""Start-up time and per-task overhead of a simulated AWS Batch multi-node parallel cluster.

Run: ``python bench/mnp_startup.py [--nodes 8] [--tasks 10000]``.

Measures, in one run on this machine:

- the time from the main node's start to all N nodes' workers joined (the main node runs in this
  process through ``cluster.mnp.main_node``, with mutual TLS, exactly as on Batch; the N-1
  children are separate processes started by ``cluster.simulate`` at once, each on its own
  127.0.0.x);
- the per-task overhead of that cluster for ``--tasks`` no-op tasks, beside a LocalCluster of the
  same size (N workers, each with as many threads as an MNP node's worker), over plain TCP as a
  LocalCluster runs.

All nodes share this machine's cores, so the figures are the cluster machinery's cost, not a
cluster's throughput.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import socket
import sys
import tempfile
import time
from collections.abc import Callable

from distributed import Client, LocalCluster, wait

from cluster.context import detect
from cluster.local import machine_cpus
from cluster.mnp import MnpOptions, main_node
from cluster.simulate import Simulation, node_host


def noop(i: int) -> int:
    return i


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((node_host(0), 0))
        return int(sock.getsockname()[1])


def task_overhead(client: Client, n: int) -> float:
    """Seconds per task for n independent no-op tasks (submit to all results in memory)."""
    start = time.perf_counter()
    futures = client.map(noop, range(n), pure=False)
    wait(futures)
    elapsed = time.perf_counter() - start
    client.cancel(futures)
    return elapsed / n


def run_mnp(nodes: int, tasks: int, work: str) -> tuple[float, float]:
    port = _free_port()
    sim = Simulation(
        nodes,
        ["market-performance", "--input", work, "--output", work],
        job_id="bench",
        scheduler_port=port,
        dashboard_port=0,
        echo=False,
    )
    env = sim.node_env(0)
    ctx = detect(env)
    opts = MnpOptions(output_url=work, scheduler_port=port, dashboard_port=0)
    start = time.perf_counter()
    for i in range(1, nodes):
        sim.start(i)  # the children poll for the main node's TLS bundle, then connect
    try:
        with main_node(ctx, node_host(0), opts) as client:
            joined = time.perf_counter() - start
            overhead = task_overhead(client, tasks)
    finally:
        sim.stop_all(grace=20)
    return joined, overhead


def run_local(nodes: int, tasks: int) -> tuple[float, float]:
    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=nodes,
            threads_per_worker=machine_cpus(),
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(nodes)
        ready = time.perf_counter() - start
        return ready, task_overhead(client, tasks)


def _machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {machine_cpus()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows: list[tuple[str, Callable[[], tuple[float, float]]]] = []
    with tempfile.TemporaryDirectory() as work:
        rows = [
            (
                f"simulated MNP, {args.nodes} nodes, TLS",
                lambda: run_mnp(args.nodes, args.tasks, work),
            ),
            (f"LocalCluster, {args.nodes} workers", lambda: run_local(args.nodes, args.tasks)),
        ]
        results = [(label, *fn()) for label, fn in rows]
    print(f"machine: {_machine()}")
    print(f"{'cluster':<34} {'ready (s)':>10} {'per task (ms)':>14}")
    for label, ready, per_task in results:
        print(f"{label:<34} {ready:>10.2f} {per_task * 1e3:>14.3f}")
    mnp, local = results
    print(
        f"ratio MNP / LocalCluster: start-up {mnp[1] / local[1]:.2f}x, "
        f"per task {mnp[2] / local[2]:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
