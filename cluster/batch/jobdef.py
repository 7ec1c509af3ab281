"""finbatch's AWS Batch job definitions, built by pure functions from one small spec.

:func:`multinode_definition` and :func:`single_node_definition` return the RegisterJobDefinition
requests (the API's camelCase shape, the JSON ``aws batch register-job-definition
--cli-input-json`` takes). The CloudFormation template (``cluster/templates/finbatch.yaml``)
holds the same two definitions; ``tests/test_deploy_jobdef.py`` resolves the template's with the
same values and proves they are equal, so this module stays the one source of truth.

Why each setting is what it is:

- **multinode**: node 0 is the main node (Dask scheduler, a worker, the driver); the ranges are
  ``0`` and ``1:`` so ``--node-overrides numNodes=N`` can resize a job (Batch needs an
  open-ended range for that), and every node runs the same container and command: each finds
  its role from the ``AWS_BATCH_*`` variables.
- **retryStrategy**: a lost host (a reclaimed or failed instance: ``Host EC2 (instance i-...)
  terminated.``) is retried; anything else is the job's own verdict (exit 2 bad input, exit 1
  failure) and retrying would fail the same way. An attempt matching no rule is retried, so the
  catch-all EXIT comes last.
- **ulimits nofile 65536**: the scheduler holds a connection per worker, nanny and client, and
  each worker reads many Parquet files at once; the container default (1024) runs out.
- **sharedMemorySize 2048 MiB**: Docker's default /dev/shm is 64 MiB; the nanny's worker
  process and Python's multiprocessing (queues, semaphores) use it, and a full /dev/shm kills a
  worker with a bus error. It is tmpfs: it costs memory only when used.
- **timeout**: covers the whole job (all nodes); on timeout Batch sends SIGTERM, and the main
  node abandons the job, records what finished (no manifest) and exits 1. A timed-out job is
  not retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics.errors import InputError
from cluster.batch.command import COMMAND, NONE

MAIN_NODE = 0
#: Batch's own words for a lost instance (Spot reclaim, hardware failure, scale-in).
HOST_LOST = "Host EC2*"
LOG_STREAM_PREFIX = "finbatch"
TAGS = {"application": "finbatch"}
#: The variable finbatch.batch.publish reads (kept literal here: jobdef is pure and imports nothing
#: that talks to AWS).
SUMMARY_TOPIC_VARIABLE = "FINBATCH_SUMMARY_TOPIC"


@dataclass(frozen=True)
class JobDefinitionSpec:
    """What varies between deployments; everything else is fixed by the module above.

    The defaults fit a c6i.4xlarge (16 vCPUs, 32 GiB, of which about 30,900 MiB are offered to
    containers) and match the template's parameter defaults.
    """

    image: str = "finbatch:latest"
    #: Default node count of the multi-node definition (``numNodes``).
    nodes: int = 2
    #: vCPUs and memory (MiB) of each container: one node, or the single-node job.
    vcpus: int = 16
    memory_mib: int = 28_000
    #: The single-node definition's name; the multi-node one adds ``-mnp``.
    name: str = "finbatch"
    job_role_arn: str | None = None
    execution_role_arn: str | None = None
    #: CloudWatch log group (awslogs driver); None: Batch's default group.
    log_group: str | None = None
    #: SNS topic the main node publishes its end-of-job summary line to (the alert topic).
    summary_topic_arn: str | None = None
    #: Defaults of the ``input`` and ``output`` parameters shown to a console user.
    data_url: str = "s3://DATA-BUCKET/DATA-PREFIX"
    results_url: str = "s3://RESULTS-BUCKET/RESULTS-PREFIX"
    timeout_seconds: int = 6 * 3600
    attempts: int = 3
    shared_memory_mib: int = 2048
    open_files: int = 65536

    def check(self, *, multinode: bool) -> None:
        """Raise :class:`InputError` naming the first setting Batch would refuse."""
        problems = [
            (
                multinode and self.nodes < 2,
                f"nodes={self.nodes}: a multi-node job needs at least 2 nodes (use the "
                "single-node definition for one)",
            ),
            (self.vcpus < 1, f"vcpus={self.vcpus} must be at least 1"),
            (
                self.memory_mib <= self.shared_memory_mib,
                f"memory={self.memory_mib} MiB must exceed the shared memory "
                f"({self.shared_memory_mib} MiB)",
            ),
            (self.timeout_seconds < 60, f"timeout={self.timeout_seconds} s: Batch's minimum is 60"),
            (not 1 <= self.attempts <= 10, f"attempts={self.attempts}: Batch allows 1 to 10"),
            (not self.image.strip(), "the image URI is empty"),
        ]
        for failed, message in problems:
            if failed:
                raise InputError(message)


def parameters(spec: JobDefinitionSpec) -> dict[str, str]:
    """The ``Ref::`` placeholders' defaults: what a console user sees and edits."""
    return {
        "job": "market-performance",
        "input": spec.data_url,
        # A run's folder must be new (or the same run id's): the user names it.
        "output": f"{spec.results_url.rstrip('/')}/runs/CHANGE-ME",
        "dates": NONE,
        "options": NONE,
    }


def container(spec: JobDefinitionSpec) -> dict[str, Any]:
    """The container every node runs (and the single-node job too)."""
    props: dict[str, Any] = {
        "image": spec.image,
        "command": list(COMMAND),
        "resourceRequirements": [
            {"type": "VCPU", "value": str(spec.vcpus)},
            {"type": "MEMORY", "value": str(spec.memory_mib)},
        ],
        "ulimits": [{"name": "nofile", "softLimit": spec.open_files, "hardLimit": spec.open_files}],
        "linuxParameters": {"sharedMemorySize": spec.shared_memory_mib},
    }
    if spec.summary_topic_arn:
        props["environment"] = [{"name": SUMMARY_TOPIC_VARIABLE, "value": spec.summary_topic_arn}]
    if spec.job_role_arn:
        props["jobRoleArn"] = spec.job_role_arn
    if spec.execution_role_arn:
        props["executionRoleArn"] = spec.execution_role_arn
    if spec.log_group:
        props["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": spec.log_group,
                "awslogs-stream-prefix": LOG_STREAM_PREFIX,
            },
        }
    return props


def retry_strategy(spec: JobDefinitionSpec) -> dict[str, Any]:
    """Retry on host loss only; the catch-all EXIT last (an unmatched attempt is retried)."""
    return {
        "attempts": spec.attempts,
        "evaluateOnExit": [
            {"onStatusReason": HOST_LOST, "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }


def _common(spec: JobDefinitionSpec) -> dict[str, Any]:
    return {
        "parameters": parameters(spec),
        "retryStrategy": retry_strategy(spec),
        "timeout": {"attemptDurationSeconds": spec.timeout_seconds},
        "platformCapabilities": ["EC2"],
        "propagateTags": True,
        "tags": dict(TAGS),
    }


def multinode_definition(spec: JobDefinitionSpec) -> dict[str, Any]:
    """The RegisterJobDefinition request of the multi-node parallel definition."""
    spec.check(multinode=True)
    return {
        "jobDefinitionName": f"{spec.name}-mnp",
        "type": "multinode",
        "nodeProperties": {
            "numNodes": spec.nodes,
            "mainNode": MAIN_NODE,
            "nodeRangeProperties": [
                {"targetNodes": "0", "container": container(spec)},
                {"targetNodes": "1:", "container": container(spec)},
            ],
        },
        **_common(spec),
    }


def single_node_definition(spec: JobDefinitionSpec) -> dict[str, Any]:
    """The RegisterJobDefinition request of the single-node definition (any queue, Spot too)."""
    spec.check(multinode=False)
    return {
        "jobDefinitionName": spec.name,
        "type": "container",
        "containerProperties": container(spec),
        **_common(spec),
    }
