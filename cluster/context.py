"""Which node this process is, as a pure function of the environment.

AWS Batch sets, on every node of a multi-node parallel (MNP) job, ``AWS_BATCH_JOB_NUM_NODES``,
``AWS_BATCH_JOB_NODE_INDEX``, ``AWS_BATCH_JOB_MAIN_NODE_INDEX``, ``AWS_BATCH_JOB_ID``
(``jobid#index``) and ``AWS_BATCH_JOB_ATTEMPT``; on child nodes only, also
``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from analytics.errors import FinbatchError

NUM_NODES = "AWS_BATCH_JOB_NUM_NODES"
NODE_INDEX = "AWS_BATCH_JOB_NODE_INDEX"
MAIN_NODE_INDEX = "AWS_BATCH_JOB_MAIN_NODE_INDEX"
MAIN_ADDRESS = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"
JOB_ID = "AWS_BATCH_JOB_ID"
ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"
MNP_VARIABLES = (NUM_NODES, NODE_INDEX, MAIN_NODE_INDEX)


class ClusterConfigError(FinbatchError):
    """The environment does not describe a node we can run as (exit code 1)."""


class Role(enum.Enum):
    LOCAL = "local"  # a LocalCluster on this machine
    EXTERNAL = "external"  # a client of an existing scheduler (--scheduler)
    MNP_MAIN = "mnp-main"  # scheduler + a worker + the job driver
    MNP_CHILD = "mnp-child"  # a worker joining the main node


@dataclass(frozen=True)
class NodeContext:
    role: Role
    #: The job id without ``#index`` (AWS Batch), else None.
    job_id: str | None = None
    attempt: int = 1
    num_nodes: int = 1
    node_index: int = 0
    main_node_index: int = 0
    #: The main node's private IPv4 (child nodes only).
    main_address: str | None = None
    #: The existing scheduler's address (EXTERNAL only).
    scheduler: str | None = None

    @property
    def is_mnp(self) -> bool:
        return self.role in (Role.MNP_MAIN, Role.MNP_CHILD)


def _integer(env: Mapping[str, str], name: str, minimum: int) -> int:
    text = env[name]
    try:
        value = int(text)
    except ValueError:
        raise ClusterConfigError(f"{name}={text!r} is not an integer") from None
    if value < minimum:
        raise ClusterConfigError(f"{name}={value} must be at least {minimum}")
    return value


def detect(env: Mapping[str, str], scheduler: str | None = None) -> NodeContext:
    """The role of this process, from the environment and the ``--scheduler`` option.

    Raises
    ------
    ClusterConfigError
        When the ``AWS_BATCH_*`` variables are incomplete or contradict each other; the message
        names the variables, what was found and what was expected.
    """
    raw_job_id = env.get(JOB_ID, "")
    job_id = raw_job_id.split("#", 1)[0] or None
    attempt = _integer(env, ATTEMPT, 1) if env.get(ATTEMPT) else 1
    present = [name for name in MNP_VARIABLES if env.get(name)]
    if not present:
        if env.get(MAIN_ADDRESS):
            raise ClusterConfigError(
                f"{MAIN_ADDRESS} is set but {', '.join(MNP_VARIABLES)} are not: a multi-node "
                "parallel job sets all of them"
            )
        if scheduler:
            return NodeContext(Role.EXTERNAL, job_id, attempt, scheduler=scheduler)
        return NodeContext(Role.LOCAL, job_id, attempt)

    missing = [name for name in MNP_VARIABLES if name not in present]
    if missing:
        raise ClusterConfigError(
            f"incomplete multi-node parallel environment: {', '.join(present)} set but "
            f"{', '.join(missing)} missing (AWS Batch sets all of {', '.join(MNP_VARIABLES)})"
        )
    if scheduler:
        raise ClusterConfigError(
            "--scheduler cannot be used inside a multi-node parallel job: the main node starts "
            "the job's own scheduler"
        )
    if not job_id:
        raise ClusterConfigError(f"{JOB_ID} is missing in a multi-node parallel job")
    num_nodes = _integer(env, NUM_NODES, 1)
    node_index = _integer(env, NODE_INDEX, 0)
    main_index = _integer(env, MAIN_NODE_INDEX, 0)
    for name, value in ((NODE_INDEX, node_index), (MAIN_NODE_INDEX, main_index)):
        if value >= num_nodes:
            raise ClusterConfigError(
                f"{name}={value} is out of range: expected 0..{num_nodes - 1} "
                f"for {NUM_NODES}={num_nodes}"
            )
    if "#" in raw_job_id and raw_job_id.rsplit("#", 1)[1] != str(node_index):
        raise ClusterConfigError(
            f"{JOB_ID}={raw_job_id!r} names node {raw_job_id.rsplit('#', 1)[1]} but "
            f"{NODE_INDEX}={node_index}"
        )
    if node_index == main_index:
        return NodeContext(Role.MNP_MAIN, job_id, attempt, num_nodes, node_index, main_index)
    address = env.get(MAIN_ADDRESS, "")
    if not address:
        raise ClusterConfigError(
            f"child node {node_index} has no {MAIN_ADDRESS}: AWS Batch sets it on child nodes "
            "once the main node is running"
        )
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise ClusterConfigError(f"{MAIN_ADDRESS}={address!r} is not an IPv4 address") from None
    return NodeContext(Role.MNP_CHILD, job_id, attempt, num_nodes, node_index, main_index, address)
