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
- **retryStrategy** (Batch allows 5 rules; an attempt matching none is retried, so the catch-all
  EXIT comes last): retried are a lost host (a reclaimed or failed instance: status reason
  ``Host EC2 (instance i-...) terminated.``), an image that could not be pulled (container reason
  ``CannotPullContainerError: ...``: ECR throttling, a network blip), a task whose network
  interface or secrets could not be set up (``ResourceInitializationError: ...``: every node of
  a multi-node job waits for its own ENI), and exit code 75 (EX_TEMPFAIL: storage or the database
  kept failing past their own retries). Anything else is the job's own verdict (exit 2 bad
  input, exit 1 failure) and a retry would fail the same way. Spot work gets
  :attr:`JobDefinitionSpec.spot_attempts` (resume makes a retried shard cheap), given at
  submission: :func:`retry_strategy` with ``spot=True``.
- **FINBATCH_MAIN_NODE_RESERVE_MIB**: the main node runs the Dask scheduler, the driver and a
  worker in one container; the worker's memory limit is the container's memory less this
  reserve, so the worker pauses and spills (and its nanny restarts it) before the container as a
  whole reaches its limit and the kernel kills the scheduler with it (exit 137, not retried).
- **ulimits nofile 65536**: the scheduler holds a connection per worker, nanny and client, and
  each worker reads many Parquet files at once; the container default (1024) runs out.
- **sharedMemorySize 2048 MiB**: Docker's default /dev/shm is 64 MiB; the nanny's worker
  process and Python's multiprocessing (queues, semaphores) use it, and a full /dev/shm kills a
  worker with a bus error. It is tmpfs: it costs memory only when used.
- **timeout**: covers the whole job (all nodes); on timeout Batch sends SIGTERM, and the main
  node abandons the job, records what finished (no manifest) and exits 1. A timed-out job is
  not retried. A submission may give its own (the schedules do: one per job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics.errors import InputError
from cluster.batch.command import COMMAND, NONE

MAIN_NODE = 0
#: Batch's own words for a lost instance (Spot reclaim, hardware failure, scale-in): status reason.
HOST_LOST = "Host EC2*"
#: The container's reason when its image could not be pulled.
PULL_FAILED = "CannotPullContainerError*"
#: The container's reason when its task could not be set up (network interface, secrets).
INIT_FAILED = "ResourceInitializationError*"
#: EX_TEMPFAIL (sysexits.h): the job's exit code for "transient, try again later".
TEMPFAIL_EXIT_CODE = 75
#: Batch's limit on evaluateOnExit rules.
MAX_RETRY_RULES = 5
LOG_STREAM_PREFIX = "finbatch"
TAGS = {"application": "finbatch"}
#: The variable finbatch.batch.publish reads (kept literal here: jobdef is pure and imports nothing
#: that talks to AWS).
SUMMARY_TOPIC_VARIABLE = "FINBATCH_SUMMARY_TOPIC"
#: MiB of the main node's container kept from its Dask worker for the scheduler and the driver.
MAIN_RESERVE_VARIABLE = "FINBATCH_MAIN_NODE_RESERVE_MIB"
#: The least memory (MiB) the main node's worker may be left with.
MIN_WORKER_MIB = 2048


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
    #: SNS topic the main node publishes its end-of-job summary line to (the stack's summary
    #: topic, never the failure alerts'); None: no summary message.
    summary_topic_arn: str | None = None
    #: Defaults of the ``input`` and ``output`` parameters shown to a console user.
    data_url: str = "s3://DATA-BUCKET/DATA-PREFIX"
    results_url: str = "s3://RESULTS-BUCKET/RESULTS-PREFIX"
    timeout_seconds: int = 6 * 3600
    attempts: int = 3
    #: Attempts of Spot work (the fan-out's shards, the scheduled backtest), set at submission.
    spot_attempts: int = 6
    #: Kept from the main node's worker for the scheduler and the driver. 6 GiB: the scheduler of
    #: a 16-node job holds about 1 GiB of task state, the driver the graph and the gathered
    #: results (a backtest summary, market-performance's benchmark series), with headroom.
    main_node_reserve_mib: int = 6144
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
            (
                not 1 <= self.spot_attempts <= 10,
                f"spot attempts={self.spot_attempts}: Batch allows 1 to 10",
            ),
            (
                self.memory_mib - self.main_node_reserve_mib < MIN_WORKER_MIB,
                f"memory={self.memory_mib} MiB less the main node's reserve "
                f"({self.main_node_reserve_mib} MiB) leaves its worker under {MIN_WORKER_MIB} MiB",
            ),
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
    environment = [{"name": MAIN_RESERVE_VARIABLE, "value": str(spec.main_node_reserve_mib)}]
    if spec.summary_topic_arn:
        environment.append({"name": SUMMARY_TOPIC_VARIABLE, "value": spec.summary_topic_arn})
    props["environment"] = environment
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


def retry_rules() -> list[dict[str, str]]:
    """The evaluateOnExit rules: transient infrastructure and exit 75 retried, the rest not."""
    return [
        {"onStatusReason": HOST_LOST, "action": "RETRY"},
        {"onReason": PULL_FAILED, "action": "RETRY"},
        {"onReason": INIT_FAILED, "action": "RETRY"},
        {"onExitCode": str(TEMPFAIL_EXIT_CODE), "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ]


def retry_strategy(spec: JobDefinitionSpec, *, spot: bool = False) -> dict[str, Any]:
    """The job definitions' retry strategy; ``spot``: the one Spot work is submitted with.

    A SubmitJob ``retryStrategy`` replaces the definition's whole, so the Spot one repeats the
    rules with more attempts.
    """
    return {
        "attempts": spec.spot_attempts if spot else spec.attempts,
        "evaluateOnExit": retry_rules(),
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
