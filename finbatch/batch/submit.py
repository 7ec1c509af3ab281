"""SubmitJob requests, built by pure functions from a job command line.

A job command line (``backtest --input s3://... --output s3://... --start ... --strategy ...``)
becomes the five parameters of finbatch's job definitions (:mod:`cluster.batch.command`):
``--input`` and ``--output`` their own, ``--start``/``--end`` the ``dates``, the rest the
``options``. Three shapes:

- :func:`multinode_request`: the ``-mnp`` definition, ``nodeOverrides.numNodes`` resizing it (the
  definition's ``1:`` range is open-ended, so any count of 2 or more fits it);
- :func:`single_node_request`: the single-node definition (any queue, Spot too);
- :func:`spot_fanout_requests`: an array job of K shards (``--shard array/K``) and a merge job
  (``--merge-shards K``) that depends on it; the merge's ``dependsOn`` is filled in once the
  array job has an id.

Idempotency: with a key, the job name is a hash of (job, parameters, key), so the same
submission is found again by name (ListJobs ``JOB_NAME`` filter) instead of being run twice.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analytics.errors import InputError
from cluster.batch.command import NONE, PARAMETER_NAMES
from cluster.batch.jobdef import TAGS, JobDefinitionSpec, retry_strategy

#: Environment of the main node: what the job metrics are tagged with and priced at.
QUEUE_VARIABLE = "FINBATCH_QUEUE"
PRICE_VARIABLE = "FINBATCH_NODE_HOURLY_PRICE"
#: The tag holding the idempotency hash (also the end of the job name).
IDEMPOTENCY_TAG = "finbatch:idempotency"
#: Batch's limit on a job's container overrides, in characters of the request JSON.
OVERRIDES_LIMIT = 8192
_DATES = ("--start", "--end")
#: Batch job names: up to 128 letters, digits, hyphens and underscores.
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(frozen=True)
class Target:
    """Where and how a job is submitted: the queue, the definitions, the metrics settings."""

    queue: str
    definition: str = "finbatch"
    #: USD per node-hour for the cost estimate of the end-of-job summary (None: not estimated).
    node_price: float | None = None
    idempotency_key: str | None = None

    @property
    def multinode_definition(self) -> str:
        return f"{self.definition}-mnp"


def _option_value(argv: Sequence[str], i: int) -> tuple[str, str, int]:
    """(option, value, words used) of ``argv[i]`` in the forms ``--opt v`` and ``--opt=v``."""
    word = argv[i]
    if "=" in word:
        name, value = word.split("=", 1)
        return name, value, 1
    if i + 1 >= len(argv):
        raise InputError(f"{word} needs a value")
    return word, argv[i + 1], 2


def parameters(job: str, argv: Sequence[str]) -> dict[str, str]:
    """The job definition's five parameters for ``job`` run with the options ``argv``.

    Raises
    ------
    InputError
        When ``--input`` or ``--output`` is missing.
    """
    found: dict[str, str] = {}
    dates: list[str] = []
    options: list[str] = []
    i = 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name in ("--input", "--output", *_DATES):
            name, value, used = _option_value(argv, i)
            if name in _DATES:
                dates += [name, value]
            else:
                found[name[2:]] = value
            i += used
        else:
            options.append(argv[i])
            i += 1
    for name in ("input", "output"):
        if not found.get(name):
            raise InputError(f"the job needs --{name} URL")
    values = {
        "job": job,
        "input": found["input"],
        "output": found["output"],
        "dates": shlex.join(dates) or NONE,
        "options": shlex.join(options) or NONE,
    }
    return {name: values[name] for name in PARAMETER_NAMES}


def with_options(params: Mapping[str, str], *extra: str) -> dict[str, str]:
    """``params`` with ``extra`` options appended to its ``options``."""
    before = [] if params["options"] == NONE else shlex.split(params["options"])
    return {**params, "options": shlex.join([*before, *extra])}


def idempotency_hash(params: Mapping[str, str], key: str) -> str:
    """A short stable hash of the job's parameters and the user's key (not of the node count,
    which ``--nodes auto`` may change between two submissions of the same work)."""
    body = json.dumps({"parameters": dict(params), "key": key}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def job_name(params: Mapping[str, str], key: str | None, stamp: str) -> str:
    """``finbatch-JOB-HASH`` with a key (found again by name), else ``finbatch-JOB-STAMP``."""
    suffix = idempotency_hash(params, key) if key else stamp
    name = f"finbatch-{params['job']}-{suffix}"
    return "".join(c if c in _NAME_CHARS else "-" for c in name)[:128]


def _environment(target: Target) -> list[dict[str, str]]:
    env = [{"name": QUEUE_VARIABLE, "value": target.queue}]
    if target.node_price is not None:
        env.append({"name": PRICE_VARIABLE, "value": repr(target.node_price)})
    return env


def _common(name: str, params: Mapping[str, str], target: Target) -> dict[str, Any]:
    tags = dict(TAGS)
    if target.idempotency_key:
        tags[IDEMPOTENCY_TAG] = idempotency_hash(params, target.idempotency_key)
    return {
        "jobName": name,
        "jobQueue": target.queue,
        "parameters": dict(params),
        "propagateTags": True,
        "tags": tags,
    }


def multinode_request(
    name: str, params: Mapping[str, str], target: Target, nodes: int
) -> dict[str, Any]:
    """A SubmitJob request of the multi-node definition resized to ``nodes`` (>= 2)."""
    if nodes < 2:
        raise InputError(f"--nodes {nodes}: a multi-node job needs at least 2 (or drop --nodes)")
    return {
        **_common(name, params, target),
        "jobDefinition": target.multinode_definition,
        "nodeOverrides": {
            "numNodes": nodes,
            "nodePropertyOverrides": [
                # Every node gets the settings; only the main node publishes metrics.
                {"targetNodes": "0:", "containerOverrides": {"environment": _environment(target)}}
            ],
        },
    }


def single_node_request(name: str, params: Mapping[str, str], target: Target) -> dict[str, Any]:
    """A SubmitJob request of the single-node definition."""
    return {
        **_common(name, params, target),
        "jobDefinition": target.definition,
        "containerOverrides": {"environment": _environment(target)},
    }


def spot_fanout_requests(
    name: str, params: Mapping[str, str], target: Target, shards: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The array job of ``shards`` children and its merge job (``dependsOn`` left empty).

    Raises
    ------
    InputError
        When ``shards`` is outside Batch's array sizes (2 to 10,000) or the job is no backtest.
    """
    if params["job"] != "backtest":
        raise InputError(f"--spot-shards fans out backtests only, not {params['job']}")
    if not 2 <= shards <= 10_000:
        raise InputError(f"--spot-shards {shards}: AWS Batch array jobs have 2 to 10,000 children")
    array = single_node_request(
        f"{name}-shards", with_options(params, "--shard", f"array/{shards}"), target
    )
    array["arrayProperties"] = {"size": shards}
    # More attempts than the definition's: a reclaimed shard resumes from its progress record.
    array["retryStrategy"] = retry_strategy(JobDefinitionSpec(), spot=True)
    merge = single_node_request(
        f"{name}-merge", with_options(params, "--merge-shards", str(shards)), target
    )
    merge["dependsOn"] = []
    return array, merge


def depends_on(merge: Mapping[str, Any], array_job_id: str) -> dict[str, Any]:
    """The merge request waiting for every child of the array job (an N_TO_N-free dependency)."""
    return {**merge, "dependsOn": [{"jobId": array_job_id}]}


def overrides_size(request: Mapping[str, Any]) -> int:
    """Characters of the request's container overrides, as Batch counts its 8,192 limit."""
    parts = [request.get("containerOverrides"), request.get("nodeOverrides")]
    parts.append(request.get("parameters"))  # substituted into the command
    return sum(len(json.dumps(p, separators=(",", ":"))) for p in parts if p)
