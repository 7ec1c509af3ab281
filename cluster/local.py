"""The cluster a job runs on: a LocalCluster of this machine, or an existing scheduler."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from distributed import Client, LocalCluster

log = logging.getLogger(__name__)


def machine_cpus() -> int:
    """CPUs this process may use (respects affinity and container limits where visible)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ClusterSpec:
    """How to get a cluster: ``scheduler`` wins; otherwise a LocalCluster of this size."""

    workers: int | None = None
    threads_per_worker: int | None = None
    scheduler: str | None = None
    dashboard_address: str = "127.0.0.1:8787"
    #: Worker processes (the default), or threads of this process: a small input is done
    #: before worker processes would have started (they import the whole stack, ~1 s each).
    processes: bool = True

    def local_size(self) -> tuple[int, int]:
        """Workers and threads per worker; by default the whole machine, one thread each."""
        cpus = machine_cpus()
        threads = self.threads_per_worker or 1
        workers = self.workers or max(1, cpus // threads)
        return workers, threads


@contextmanager
def connect(spec: ClusterSpec) -> Iterator[Client]:
    """A client on the cluster ``spec`` names; a LocalCluster is closed on exit."""
    if spec.scheduler:
        with Client(spec.scheduler, timeout="60s") as client:
            yield client
        return
    workers, threads = spec.local_size()
    # Worker processes listen on loopback TCP; an in-process worker (one thread per CPU) talks
    # to the scheduler over the in-process transport, which takes no host.
    where: dict[str, Any] = {"host": "127.0.0.1"} if spec.processes else {"protocol": "inproc"}
    if not spec.processes:
        workers, threads = 1, workers * threads
    dashboard, busy = free_dashboard(spec.dashboard_address)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            processes=spec.processes,
            dashboard_address=dashboard,
            **where,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        if busy:
            log.info("the dashboard's port %s is taken: %s", busy, client.dashboard_link)
        yield client


def free_dashboard(address: str) -> tuple[str, str | None]:
    """``address``, or the same host with port 0 (a free one) when its port is taken; and the
    taken port. Checked before the cluster starts, so distributed does not warn about it."""
    import socket

    host, _, port = address.rpartition(":")
    if not port or port == "0":
        return address, None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host or "0.0.0.0", int(port)))
        except OSError:
            return f"{host}:0", port
    return address, None


def describe(client: Client) -> dict[str, Any]:
    """The cluster's size, for the manifest and the log."""
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    return {
        "scheduler": info.get("address"),
        "workers": len(workers),
        "threads": sum(w.get("nthreads", 0) for w in workers.values()),
        "hosts": sorted({w.get("host") for w in workers.values() if w.get("host")}),
    }
