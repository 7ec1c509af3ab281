"""One entry for every place a job runs: the job gets a client and never knows which cluster.

``detect`` says which node this is; ``open_client`` gives the driver a client (a LocalCluster, an
existing scheduler, or an MNP main node's cluster); ``run_worker_node`` runs an MNP child.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from distributed import Client

from analytics.errors import InputError
from cluster.address import node_address
from cluster.context import NodeContext, Role
from cluster.local import ClusterSpec, connect
from cluster.mnp import (
    BELOW_MIN_GRACE_S,
    DASHBOARD_PORT,
    SCHEDULER_PORT,
    MnpOptions,
    main_node,
    run_child,
)

SCHEDULER_PORT_ENV = "CLUSTER_SCHEDULER_PORT"
DASHBOARD_PORT_ENV = "CLUSTER_DASHBOARD_PORT"
BELOW_MIN_GRACE_ENV = "CLUSTER_BELOW_MIN_GRACE_S"
#: Set by the job definitions (cluster/batch/jobdef.py): MiB kept from the main node's worker.
MAIN_RESERVE_ENV = "FINBATCH_MAIN_NODE_RESERVE_MIB"


@dataclass(frozen=True)
class ClusterOptions:
    local: ClusterSpec = field(default_factory=ClusterSpec)
    mnp: MnpOptions = field(default_factory=lambda: MnpOptions(output_url="."))


def mnp_options(
    env: Mapping[str, str],
    output_url: str,
    *,
    wait_for_nodes: float,
    min_nodes: int | None,
    death_timeout: float,
    insecure: bool,
) -> MnpOptions:
    """The MNP options from the command line, with the environment's overrides (the simulator
    runs several jobs on one machine, so it moves the ports; tests shorten the grace period)."""
    grace = env.get(BELOW_MIN_GRACE_ENV)
    reserve = env.get(MAIN_RESERVE_ENV, "").strip()
    if reserve and not reserve.isdigit():
        raise InputError(f"{MAIN_RESERVE_ENV}={reserve!r}: expected a whole number of MiB")
    return MnpOptions(
        output_url=output_url,
        wait_for_nodes=wait_for_nodes,
        min_nodes=min_nodes,
        death_timeout=death_timeout,
        insecure=insecure,
        scheduler_port=int(env.get(SCHEDULER_PORT_ENV) or SCHEDULER_PORT),
        dashboard_port=int(env.get(DASHBOARD_PORT_ENV) or DASHBOARD_PORT),
        below_min_grace=float(grace) if grace else BELOW_MIN_GRACE_S,
        main_reserve_mib=int(reserve) if reserve else None,
    )


def quiet(client: Client) -> None:
    """Expected errors (bad input) leave no worker traceback on the screen."""
    from cluster.quiet import QuietExpectedErrors

    client.register_plugin(QuietExpectedErrors())


@contextmanager
def open_client(
    ctx: NodeContext, options: ClusterOptions, env: Mapping[str, str]
) -> Iterator[Client]:
    """A client for the job's driver, whatever the cluster."""
    if ctx.role is Role.MNP_MAIN:
        with main_node(ctx, node_address(env), options.mnp) as client:
            quiet(client)
            yield client
        return
    if ctx.role is Role.MNP_CHILD:
        raise RuntimeError("a child node runs a worker, not a driver: use run_worker_node")
    spec = options.local
    if ctx.role is Role.EXTERNAL:
        spec = ClusterSpec(scheduler=ctx.scheduler)
    with connect(spec) as client:
        quiet(client)
        yield client


def run_worker_node(ctx: NodeContext, options: ClusterOptions, env: Mapping[str, str]) -> int:
    return run_child(ctx, node_address(env), options.mnp)
