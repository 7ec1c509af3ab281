"""Start-up time and per-task overhead of a simulated AWS Batch multi-node parallel cluster.

Run: ``python bench/mnp_startup.py [--nodes 8] [--tasks 10000] [--repeat 3]``.

Measures, in one run on this machine:

- the time from the main node's start to all N nodes' workers joined (the main node runs in this
  process through ``cluster.mnp.main_node``, with mutual TLS, exactly as on Batch; the N-1
  children are separate processes started by ``cluster.simulate`` at once, each on its own
  127.0.0.x);
- the per-task overhead of that cluster for ``--tasks`` no-op tasks, beside a LocalCluster of the
  same size (N workers, each with as many threads as an MNP node's worker), over plain TCP as a
  LocalCluster runs.

Each pair of runs (MNP, LocalCluster) is measured back to back, in alternating order, with the
CPU seconds every process spent until all workers joined and the load average; the ratios are
per pair, then their median. All nodes share this machine's cores, so the figures are the
cluster machinery's cost, not a cluster's throughput.
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
from contextlib import suppress
from typing import NamedTuple

import psutil
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


class Startup(NamedTuple):
    ready_s: float  # start to all workers joined
    cpu_s: float  # CPU seconds of this process and every process it started, by then
    per_task_s: float


def _cpu_seconds() -> dict[int, float]:
    """CPU seconds (user + system) of this process and each of its descendants, by pid."""
    me = psutil.Process()
    seconds = {}
    for proc in [me, *me.children(recursive=True)]:
        with suppress(psutil.Error):  # a process that just exited
            times = proc.cpu_times()
            seconds[proc.pid] = times.user + times.system
    return seconds


def _cpu_since(before: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in _cpu_seconds().items())


def task_overhead(client: Client, n: int) -> float:
    """Seconds per task for n independent no-op tasks (submit to all results in memory)."""
    start = time.perf_counter()
    futures = client.map(noop, range(n), pure=False)
    wait(futures)
    elapsed = time.perf_counter() - start
    client.cancel(futures)
    return elapsed / n


def run_mnp(nodes: int, tasks: int, work: str) -> Startup:
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
    cpu = _cpu_seconds()
    start = time.perf_counter()
    for i in range(1, nodes):
        sim.start(i)  # the children wait for the main node's scheduler port, then connect
    try:
        with main_node(ctx, node_host(0), opts) as client:
            joined = time.perf_counter() - start
            used = _cpu_since(cpu)
            overhead = task_overhead(client, tasks)
    finally:
        sim.stop_all(grace=20)
    return Startup(joined, used, overhead)


def run_local(nodes: int, tasks: int) -> Startup:
    cpu = _cpu_seconds()
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
        used = _cpu_since(cpu)
        return Startup(ready, used, task_overhead(client, tasks))


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


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (5 min {five:.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="pairs of runs, in alternating order (default 3)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {_machine()}")
    print(
        f"{'pair':<5} {'cluster':<34} {'ready (s)':>10} {'CPU (s)':>8} {'per task (ms)':>14}  load"
    )
    ratios: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory() as work:
        runs: dict[str, Callable[[], Startup]] = {
            f"simulated MNP, {args.nodes} nodes, TLS": lambda: run_mnp(
                args.nodes, args.tasks, work
            ),
            f"LocalCluster, {args.nodes} workers": lambda: run_local(args.nodes, args.tasks),
        }
        labels = list(runs)
        for pair in range(1, args.repeat + 1):
            # The machine is shared: each pair is measured back to back, in alternating order.
            order = labels if pair % 2 else labels[::-1]
            result: dict[str, Startup] = {}
            for label in order:
                got = result[label] = runs[label]()
                print(
                    f"{pair:<5} {label:<34} {got.ready_s:>10.2f} {got.cpu_s:>8.2f} "
                    f"{got.per_task_s * 1e3:>14.3f}  {_load()}"
                )
            mnp, local = (result[x] for x in labels)
            ratios.append(
                (
                    mnp.ready_s / local.ready_s,
                    mnp.cpu_s / local.cpu_s,
                    mnp.per_task_s / local.per_task_s,
                )
            )
    for pair, (start, cpu, task) in enumerate(ratios, 1):
        print(
            f"pair {pair}: MNP / LocalCluster start-up {start:.2f}x (CPU {cpu:.2f}x), "
            f"per task {task:.2f}x"
        )
    median = [sorted(column)[len(ratios) // 2] for column in zip(*ratios, strict=True)]
    print(
        f"median of {len(ratios)} pairs: start-up {median[0]:.2f}x (CPU {median[1]:.2f}x), "
        f"per task {median[2]:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
