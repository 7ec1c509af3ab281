"""AWS Batch multi-node parallel: the main node (scheduler, a worker, the driver) and the children.

The main node binds the scheduler to its own private address (8786, dashboard 8787), runs a
worker with all its CPUs, waits (bounded) for the children's workers, hands a client to the job,
then writes every node's Dask logs to ``_logs/`` and shuts the cluster down, which makes every
child exit 0. A child waits for the main node's scheduler port to open (cluster/probe.py), reads
the TLS bundle the main node published before it listened, and runs one worker under a nanny
(a crashed worker process is restarted), all within its death timeout.
"""

from __future__ import annotations

import _thread
import asyncio
import dataclasses
import logging
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import dask
from distributed import Client, LocalCluster, Nanny
from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.security import Security
from distributed.system import MEMORY_LIMIT

from analytics.data.storage import is_local, join, open_fs
from analytics.errors import FinbatchError
from cluster import tls
from cluster.context import NodeContext
from cluster.local import machine_cpus
from cluster.probe import ReadinessProbes, wait_for_port

log = logging.getLogger(__name__)

SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
#: Packages that must have one version on every node: the job's stack and the packages Dask's
#: own version check compares (distributed.versions), checked in one round trip.
CHECKED_PACKAGES = (
    *("finbatch", "dask", "distributed", "pandas", "numpy", "pyarrow", "s3fs"),
    *("msgpack", "cloudpickle", "tornado", "toolz", "lz4"),
)
#: How long the node count may stay below --min-nodes (a nanny restart is a short dip).
BELOW_MIN_GRACE_S = 30.0


@dataclass(frozen=True)
class MnpOptions:
    output_url: str
    wait_for_nodes: float = 600.0
    min_nodes: int | None = None
    death_timeout: float = 900.0
    insecure: bool = False
    scheduler_port: int = SCHEDULER_PORT
    dashboard_port: int = DASHBOARD_PORT
    #: The scheduler closes itself after this long with nothing to do (a stuck driver).
    idle_timeout: str = "30 minutes"
    #: Tasks that no worker can run fail after this long instead of waiting forever.
    no_workers_timeout: str = "10 minutes"
    #: How long the node count may stay below --min-nodes before the job fails.
    below_min_grace: float = BELOW_MIN_GRACE_S
    #: MiB of the main node's memory kept from its worker for the scheduler and the driver
    #: (FINBATCH_MAIN_NODE_RESERVE_MIB, set by the job definitions); None: no reserve.
    main_reserve_mib: int | None = None


def main_worker_memory(total_bytes: int, reserve_mib: int | None) -> int | str:
    """The memory limit of the main node's worker: the container's memory less the reserve.

    Dask pauses, spills and finally restarts a worker near its limit; without a reserve the
    worker's limit is the whole container, and the kernel kills the container (scheduler and
    driver with it) first. A reserve that would leave the worker under a quarter of the memory
    is capped there. ``"auto"`` (Dask's default: all of it) without a reserve.
    """
    if reserve_mib is None:
        return "auto"
    limit = total_bytes - reserve_mib * 2**20
    if limit < total_bytes // 4:
        log.warning(
            "the main node's reserve (%d MiB) leaves its worker under a quarter of the %d MiB "
            "available: the worker keeps a quarter",
            reserve_mib,
            total_bytes // 2**20,
        )
        return total_bytes // 4
    return limit


class NodeLost(FinbatchError):
    """Too few nodes remain for the job (exit code 1)."""


class NodeWatch(SchedulerPlugin):
    """Logs each node that joins or is lost; fails the job when fewer than ``min_nodes`` stay."""

    name = "finbatch-node-watch"

    def __init__(self, min_nodes: int, grace: float = BELOW_MIN_GRACE_S) -> None:
        self.min_nodes = min_nodes
        self.grace = grace
        self.names: dict[str, str] = {}
        self.failure: str | None = None
        self.lost: list[str] = []
        #: Set when the job is over: workers leaving then are not lost.
        self.closing = False

    def add_worker(self, scheduler: Any, worker: str) -> None:
        state = scheduler.workers.get(worker)
        # Children name their worker node-<index>; the main node's own worker is LocalCluster's 0.
        name = str(state.name) if state is not None else "?"
        label = name if name.startswith("node-") else "node-0 (main)"
        self.names[worker] = label
        log.info("node %s joined (worker %s)", self.names[worker], worker)

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        name = self.names.pop(worker, worker)
        self.lost.append(name)
        remaining = len(scheduler.workers)
        if self.closing or scheduler.status.name in ("closing", "closed"):
            return
        log.warning(
            "lost node %s (worker %s); %d node(s) remain; Dask recomputes its lost work",
            name,
            worker,
            remaining,
        )
        if remaining < self.min_nodes:
            scheduler.loop.call_later(self.grace, self._check, scheduler)

    def _check(self, scheduler: Any) -> None:
        remaining = len(scheduler.workers)
        if remaining < self.min_nodes and self.failure is None and not self.closing:
            self.failure = (
                f"only {remaining} node(s) remain after losing {', '.join(self.lost)}; "
                f"the job needs at least {self.min_nodes} (--min-nodes)"
            )
            log.error(self.failure)
            # The driver is blocked in the job (this runs on the scheduler's thread): interrupt
            # it; main_node turns the interruption into NodeLost with the message above.
            _thread.interrupt_main()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in CHECKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    versions["python"] = sys.version.split()[0]
    return versions


def check_versions(client: Client, mine: dict[str, str] | None = None) -> None:
    """Every worker must run the same packages as the driver (``mine``, by default this
    process's versions); a clear error otherwise."""
    mine = package_versions() if mine is None else mine
    theirs: dict[str, dict[str, str]] = client.run(package_versions)
    problems = [
        f"{worker}: {name} {versions.get(name)} (main node has {expected})"
        for worker, versions in sorted(theirs.items())
        for name, expected in mine.items()
        if versions.get(name) != expected
    ]
    if problems:
        raise FinbatchError(
            "nodes run different package versions; use one container image on every node: "
            + "; ".join(problems)
        )


def wait_for_nodes(client: Client, needed: int, expected: int, timeout: float) -> int:
    """Block until ``needed`` workers joined, at most ``timeout`` seconds; returns the count."""
    try:
        client.wait_for_workers(n_workers=needed, timeout=timeout)
    except TimeoutError:
        joined = len(client.scheduler_info(n_workers=-1)["workers"])
        raise FinbatchError(
            f"only {joined} of {expected} node(s) joined within {timeout:.0f} s "
            f"(needed {needed}; see --wait-for-nodes and --min-nodes)"
        ) from None
    joined = len(client.scheduler_info(n_workers=-1)["workers"])
    log.info("%d of %d node(s) joined", joined, expected)
    return joined


def _clear_logs(output_url: str) -> None:
    """An earlier attempt's logs go: ``_logs/`` holds this run's nodes only."""
    fs, path = open_fs(join(output_url, "_logs"))
    with suppress(FileNotFoundError):
        fs.rm(path, recursive=True)


def write_logs(client: Client, output_url: str) -> None:
    """Every node's Dask logs into ``_logs/`` (the Batch console shows one node at a time)."""
    folder = join(output_url, "_logs")
    fs, path = open_fs(folder)
    if is_local(fs):
        fs.makedirs(path, exist_ok=True)

    def put(name: str, lines: list[tuple[str, str]]) -> None:
        with fs.open(join(path, name), "wb") as handle:
            handle.write("".join(f"{level} {msg}\n" for level, msg in lines).encode())

    put("scheduler.log", client.get_scheduler_logs(n=100_000))
    for nanny, label in ((False, "worker"), (True, "nanny")):
        for address, lines in client.get_worker_logs(n=100_000, nanny=nanny).items():
            safe = address.split("://")[-1].replace(":", "-")
            put(f"{label}-{safe}.log", lines)


@contextmanager
def main_node(ctx: NodeContext, host: str, opts: MnpOptions) -> Iterator[Client]:
    """The main node's cluster: yields a client once enough nodes joined; cleans up after."""
    job_id = ctx.job_id or "local"
    security: Security | None = None
    bundle_at = tls.bundle_url(opts.output_url, ctx.attempt)
    if opts.insecure:
        log.warning(
            "--insecure: Dask traffic between the nodes is plain TCP, unauthenticated; anyone "
            "who reaches port %d can run code on this job's nodes",
            opts.scheduler_port,
        )
    else:
        # First, before the scheduler listens: a child reads the bundle once it finds the
        # scheduler's port open, so an open port means the bundle is there.
        bundle = tls.make_bundle(job_id)
        security = bundle.security()
        tls.publish(bundle, bundle_at)
    try:
        with _main_cluster(host, opts, security) as (cluster, watch):
            if not opts.insecure:
                log.info("TLS bundle for the child nodes published at %s", bundle_at)
            _clear_logs(opts.output_url)
            with _main_client(ctx, host, opts, cluster, watch, security) as client:
                yield client
    finally:
        if not opts.insecure:
            with suppress(Exception):
                tls.withdraw(bundle_at)


@contextmanager
def _main_cluster(
    host: str, opts: MnpOptions, security: Security | None
) -> Iterator[tuple[LocalCluster, NodeWatch]]:
    """The scheduler, with the node watch installed before it listens, and the main's worker."""
    watch = NodeWatch(opts.min_nodes or 1, opts.below_min_grace)
    config = {
        "distributed.scheduler.idle-timeout": opts.idle_timeout,
        "distributed.scheduler.no-workers-timeout": opts.no_workers_timeout,
    }
    # Installed before the scheduler listens: a child may probe its port from the first moment.
    probes = ReadinessProbes()
    tcp_log = logging.getLogger("distributed.comm.tcp")
    tcp_log.addFilter(probes)
    try:
        with dask.config.set(config):
            cluster = LocalCluster(
                n_workers=1,
                threads_per_worker=machine_cpus(),
                memory_limit=main_worker_memory(MEMORY_LIMIT, opts.main_reserve_mib),
                processes=True,
                host=host,
                scheduler_port=opts.scheduler_port,
                dashboard_address=f"{host}:{opts.dashboard_port}",
                protocol="tcp://" if opts.insecure else "tls://",
                security=security,
                silence_logs=logging.ERROR,
                # No child can join (or leave) before the watch sees it.
                scheduler_kwargs={"plugins": [watch]},
            )
        try:
            yield cluster, watch
        finally:
            with suppress(Exception):
                cluster.close(timeout=10)
    finally:
        tcp_log.removeFilter(probes)


@contextmanager
def _main_client(
    ctx: NodeContext,
    host: str,
    opts: MnpOptions,
    cluster: LocalCluster,
    watch: NodeWatch,
    security: Security | None,
) -> Iterator[Client]:
    # Start once --min-nodes (default: all) joined; fail only below an explicit --min-nodes:
    # by default a lost child's work is recomputed on the nodes that remain.
    start_with = min(opts.min_nodes or ctx.num_nodes, ctx.num_nodes)
    client = Client(cluster, security=security)
    try:
        wait_for_nodes(client, start_with, ctx.num_nodes, opts.wait_for_nodes)
        check_versions(client)
        yield client
    except BaseException as err:  # KeyboardInterrupt too: NodeWatch interrupts the driver
        if watch.failure:
            raise NodeLost(watch.failure) from err
        raise
    finally:
        watch.closing = True
        try:
            write_logs(client, opts.output_url)
        except Exception as err:  # the scheduler may be gone: the logs are best effort
            log.warning("could not collect the nodes' logs: %s", err)
        nannies = _close_children(client, host)
        with suppress(Exception):
            client.shutdown()
        with suppress(Exception):
            client.close(timeout=5)
        with suppress(Exception):
            cluster.close(timeout=10)
        _wait_closed(nannies, security, timeout=20.0)


def _close_children(client: Client, host: str) -> list[str]:
    """Retire the children's workers and close their nannies; returns the nannies' addresses.

    Each child then exits 0 on its own, before Batch stops it when this main node exits.
    """
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        children = {a: w.get("nanny") for a, w in workers.items() if w.get("host") != host}
        if children:
            client.retire_workers(workers=list(children), close_workers=True, remove=True)
        return [n for n in children.values() if n]
    except Exception as err:
        log.warning("could not retire the children's workers: %s", err)
        return []


def _wait_closed(addresses: list[str], security: Security | None, timeout: float) -> None:
    """Wait until each nanny stops listening (its process is exiting), bounded by ``timeout``.

    The probe completes a proper handshake (with the job's certificate under TLS), so the
    nannies do not log failed handshakes.
    """
    context = security.get_connection_args("client")["ssl_context"] if security else None
    deadline = time.monotonic() + timeout
    for address in addresses:
        host, _, port = address.split("://", 1)[-1].rpartition(":")
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, int(port)), timeout=1) as sock:
                    if context is not None:
                        context.wrap_socket(sock).close()
            except OSError:
                break  # refused: it is gone
            time.sleep(0.5)  # polling a socket: there is no event to wait on


async def _child(ctx: NodeContext, host: str, opts: MnpOptions, security: Security | None) -> int:
    protocol = "tcp" if opts.insecure else "tls"
    address = f"{protocol}://{ctx.main_address}:{opts.scheduler_port}"
    nanny = Nanny(
        address,
        host=host,
        nthreads=machine_cpus(),
        memory_limit="auto",
        name=f"node-{ctx.node_index}",
        security=security,
        death_timeout=opts.death_timeout,
        dashboard_address=f"{host}:0",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await nanny
    except Exception as err:
        print(
            f"finbatch: error: node {ctx.node_index}: the scheduler at {address} did not answer "
            f"within {opts.death_timeout:.0f} s (--death-timeout): {err}",
            file=sys.stderr,
            flush=True,
        )
        with suppress(Exception):
            await nanny.close()
        return 1
    log.info("node %d: worker joined %s", ctx.node_index, address)
    finished = asyncio.ensure_future(nanny.finished())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([finished, stopped], return_when=asyncio.FIRST_COMPLETED)
    if stopped.done():
        log.warning("node %d: SIGTERM, stopping the worker", ctx.node_index)
        await nanny.close(reason="sigterm")
        return 143
    return 0


def run_child(ctx: NodeContext, host: str, opts: MnpOptions) -> int:
    """Run a child node's worker until the scheduler shuts it down; returns the exit code.

    The child waits for the main node's scheduler port to open (one death timeout in all),
    then, under TLS, reads the bundle the main node published before its scheduler listened.
    """
    assert ctx.main_address is not None  # detect() gives every child the main's address
    started = time.monotonic()
    protocol = "tcp" if opts.insecure else "tls"
    address = f"{protocol}://{ctx.main_address}:{opts.scheduler_port}"
    log.info("node %d: waiting for the scheduler at %s", ctx.node_index, address)
    if not wait_for_port(ctx.main_address, opts.scheduler_port, opts.death_timeout):
        print(
            f"finbatch: error: node {ctx.node_index}: the scheduler at {address} did not answer "
            f"within {opts.death_timeout:.0f} s (--death-timeout): the main node did not start, "
            "or this node cannot reach it",
            file=sys.stderr,
            flush=True,
        )
        return 1
    security = None
    if not opts.insecure:
        url = tls.bundle_url(opts.output_url, ctx.attempt)
        security = tls.read(url).security()
    remaining = max(1.0, opts.death_timeout - (time.monotonic() - started))
    opts = dataclasses.replace(opts, death_timeout=remaining)
    return asyncio.run(_child(ctx, host, opts, security))
