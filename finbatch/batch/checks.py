"""Checks before submitting: what AWS Batch would otherwise accept and then never run.

Each check is a pure function over what :class:`~finbatch.batch.gateway.BatchGateway` fetched
(the queue, its compute environments, their instance types) and raises
:class:`~analytics.errors.InputError` with the numbers it found and the fix. A job that fits no
instance type of its compute environment stays RUNNABLE forever, and Batch says nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analytics.errors import InputError
from finbatch.batch.submit import OVERRIDES_LIMIT, overrides_size

#: Share of an instance's memory Batch can give containers (the ECS agent and the OS keep the
#: rest): a c6i.4xlarge's 32,768 MiB offer about 30,900.
USABLE_MEMORY = 0.94
#: Compute-environment types that cannot run multi-node parallel jobs.
NO_MULTINODE = ("SPOT", "FARGATE", "FARGATE_SPOT")


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int


@dataclass(frozen=True)
class Environment:
    """A compute environment of the queue: its name, type, maximum vCPUs, instance types."""

    name: str
    kind: str
    max_vcpus: int
    instance_types: tuple[str, ...]


def environment(ce: Mapping[str, Any]) -> Environment:
    """An :class:`Environment` from a DescribeComputeEnvironments entry."""
    res = ce.get("computeResources", {})
    return Environment(
        str(ce.get("computeEnvironmentName")),
        str(res.get("type", ce.get("type", "EC2"))),
        int(res.get("maxvCpus", 0)),
        tuple(res.get("instanceTypes", ())),
    )


def instance_type(entry: Mapping[str, Any]) -> InstanceType:
    """An :class:`InstanceType` from a DescribeInstanceTypes entry."""
    return InstanceType(
        str(entry["InstanceType"]),
        int(entry["VCpuInfo"]["DefaultVCpus"]),
        int(entry["MemoryInfo"]["SizeInMiB"]),
    )


def check_queue(queue: str, found: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The queue's description, when it exists and is enabled."""
    if found is None:
        raise InputError(f"job queue {queue!r} not found: check --queue, the region and profile")
    if found.get("state") != "ENABLED":
        raise InputError(f"job queue {queue!r} is {found.get('state')}: enable it or use another")
    return found


def check_multinode(queue: str, envs: Sequence[Environment]) -> None:
    """Multi-node jobs run on EC2 (on-demand) compute environments only."""
    for env in envs:
        if env.kind in NO_MULTINODE:
            raise InputError(
                f"queue {queue!r} uses the {env.kind} compute environment {env.name!r}: "
                "multi-node jobs need EC2 (on-demand) environments; submit to an on-demand "
                "queue, or fan a backtest out on Spot with --spot-shards K"
            )


def check_fits(
    vcpus: int, memory_mib: int, envs: Sequence[Environment], types: Sequence[InstanceType]
) -> None:
    """Some instance type of the queue's environments holds one container."""
    if not types:
        return  # families or "optimal": Batch picks the type; nothing exact to check
    usable = [(t, int(t.memory_mib * USABLE_MEMORY)) for t in types]
    if any(t.vcpus >= vcpus and memory_mib <= m for t, m in usable):
        return
    offered = ", ".join(f"{t.name} ({t.vcpus} vCPUs, ~{m:,} MiB)" for t, m in usable)
    raise InputError(
        f"a node needs {vcpus} vCPUs and {memory_mib:,} MiB but the compute environments "
        f"{', '.join(e.name for e in envs)} offer {offered}: the job would stay RUNNABLE "
        "forever; lower the definition's vCPUs/memory or add a larger instance type"
    )


def check_capacity(nodes: int, vcpus: int, envs: Sequence[Environment]) -> None:
    """numNodes x vCPUs fits the environments' maximum vCPUs."""
    total = sum(e.max_vcpus for e in envs)
    if nodes * vcpus > total:
        fit = total // vcpus if vcpus else 0
        raise InputError(
            f"{nodes} nodes x {vcpus} vCPUs = {nodes * vcpus} vCPUs exceed the compute "
            f"environments' maxvCpus {total}: use at most --nodes {fit} (or --max-nodes {fit}), "
            "or raise maxvCpus"
        )


def check_overrides(request: Mapping[str, Any]) -> None:
    """The overrides and parameters stay under Batch's 8,192-character limit."""
    size = overrides_size(request)
    if size >= OVERRIDES_LIMIT:
        raise InputError(
            f"the container overrides and parameters of {request.get('jobName')} are "
            f"{size:,} characters, over AWS Batch's {OVERRIDES_LIMIT:,}: pass fewer --symbols "
            "(or a shorter list), or shorter options"
        )
