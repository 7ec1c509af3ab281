"""The ``finbatch batch`` command group.

Each subcommand is one ``_add_*`` function that adds its parser and sets its handler
(``handler(args, run_job) -> exit code``); :data:`COMMANDS` lists them. More subcommands
(submit, status, logs, cancel, list) slot in by writing one such function and adding it there.
Handlers build requests with pure functions and reach AWS only through
:class:`~finbatch.batch.gateway.BatchGateway`.

- ``batch job-definition``: print (or ``--register``) a RegisterJobDefinition request.
- ``batch run JOB INPUT OUTPUT DATES OPTIONS``: the job definitions' container command; it runs
  the job these five parameters stand for (:mod:`cluster.batch.command`), then the main node
  publishes the job's metrics and its one-line summary (:mod:`finbatch.batch.publish`).
- ``batch submit|status|logs|cancel|list``: operating jobs (:mod:`finbatch.batch.operate`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from analytics.errors import EXIT_BAD_INPUT, EXIT_OK, FinbatchError
from analytics.options import positive_int
from cluster.batch.command import PARAMETER_NAMES, job_argv
from cluster.batch.jobdef import JobDefinitionSpec, multinode_definition, single_node_definition
from finbatch.batch.operate import add_operate_parsers

#: Runs a job command line in this process and returns its exit code (entrypoint.main).
RunJob = Callable[[Sequence[str]], int]
Handler = Callable[[argparse.Namespace, RunJob], int]
_DEFAULTS = JobDefinitionSpec()


def _add_job_definition(commands: Any) -> None:
    p = commands.add_parser(
        "job-definition",
        help="print the RegisterJobDefinition JSON of finbatch's job definition",
        description="Print the AWS Batch RegisterJobDefinition request (JSON, for "
        "`aws batch register-job-definition --cli-input-json file://...`) of finbatch's "
        "multi-node definition, or of the single-node one; the CloudFormation template holds "
        "the same definitions.",
    )
    p.add_argument(
        "--nodes",
        type=positive_int,
        default=_DEFAULTS.nodes,
        metavar="N",
        help=f"nodes of a multi-node job: numNodes (default {_DEFAULTS.nodes})",
    )
    p.add_argument(
        "--vcpus",
        type=positive_int,
        default=_DEFAULTS.vcpus,
        metavar="V",
        help=f"vCPUs of each node's container (default {_DEFAULTS.vcpus})",
    )
    p.add_argument(
        "--memory",
        type=positive_int,
        default=_DEFAULTS.memory_mib,
        metavar="MiB",
        help=f"memory of each node's container in MiB (default {_DEFAULTS.memory_mib})",
    )
    p.add_argument(
        "--image", default=_DEFAULTS.image, metavar="URI", help="the finbatch image (ECR URI)"
    )
    p.add_argument(
        "--single-node",
        action="store_true",
        help="the single-node definition (type container) instead of the multi-node one",
    )
    p.add_argument(
        "--name",
        default=_DEFAULTS.name,
        help=f"definition name; the multi-node one adds -mnp (default {_DEFAULTS.name})",
    )
    p.add_argument("--job-role-arn", metavar="ARN", help="the job's IAM role (S3 access)")
    p.add_argument("--execution-role-arn", metavar="ARN", help="the ECS execution role")
    p.add_argument("--log-group", metavar="NAME", help="CloudWatch log group (awslogs driver)")
    p.add_argument(
        "--summary-topic-arn",
        metavar="ARN",
        help="SNS topic for the end-of-job summary line (the stack's summary topic)",
    )
    p.add_argument(
        "--data-url",
        default=_DEFAULTS.data_url,
        metavar="URL",
        help="default of the input parameter",
    )
    p.add_argument(
        "--results-url",
        default=_DEFAULTS.results_url,
        metavar="URL",
        help="results root; the output parameter defaults to URL/runs/CHANGE-ME",
    )
    p.add_argument(
        "--timeout",
        type=positive_int,
        default=_DEFAULTS.timeout_seconds,
        metavar="SECONDS",
        help=f"attemptDurationSeconds (default {_DEFAULTS.timeout_seconds})",
    )
    p.add_argument(
        "--main-node-reserve",
        type=positive_int,
        default=_DEFAULTS.main_node_reserve_mib,
        metavar="MiB",
        help="memory of the main node kept from its Dask worker for the scheduler and the "
        f"driver (default {_DEFAULTS.main_node_reserve_mib})",
    )
    p.add_argument(
        "--register",
        action="store_true",
        help="also register it with AWS Batch (uses the standard AWS credentials and region)",
    )
    p.set_defaults(batch_handler=_job_definition)


def spec_from_args(args: argparse.Namespace) -> JobDefinitionSpec:
    return JobDefinitionSpec(
        image=args.image,
        nodes=args.nodes,
        vcpus=args.vcpus,
        memory_mib=args.memory,
        name=args.name,
        job_role_arn=args.job_role_arn,
        execution_role_arn=args.execution_role_arn,
        log_group=args.log_group,
        summary_topic_arn=args.summary_topic_arn,
        data_url=args.data_url,
        results_url=args.results_url,
        timeout_seconds=args.timeout,
        main_node_reserve_mib=args.main_node_reserve,
    )


def _job_definition(args: argparse.Namespace, run_job: RunJob) -> int:
    spec = spec_from_args(args)
    build = single_node_definition if args.single_node else multinode_definition
    request = build(spec)
    print(json.dumps(request, indent=2), flush=True)
    if args.register:
        from finbatch.batch.gateway import BatchGateway

        response = BatchGateway().register_job_definition(request)
        print(f"registered {response['jobDefinitionArn']}", file=sys.stderr, flush=True)
    return EXIT_OK


def _add_run(commands: Any) -> None:
    p = commands.add_parser(
        "run",
        help="run a job from the job definition's parameters (the container command)",
        description="The command of finbatch's job definitions: runs `JOB --input INPUT "
        "--output OUTPUT DATES OPTIONS`, where DATES and OPTIONS are split like a shell would "
        "and `none` stands for no options.",
    )
    p.add_argument(
        "parameters",
        nargs=argparse.REMAINDER,
        metavar=" ".join(name.upper() for name in PARAMETER_NAMES),
        help="the job definition's five parameters, in this order",
    )
    p.set_defaults(batch_handler=_run)


def _run(args: argparse.Namespace, run_job: RunJob) -> int:
    import shlex

    from analytics.secrecy import redact

    values = list(args.parameters)
    if len(values) != len(PARAMETER_NAMES):
        print(
            f"finbatch batch run: error: expected {len(PARAMETER_NAMES)} parameters "
            f"({' '.join(PARAMETER_NAMES)}), got {len(values)}: "
            f"{redact(' '.join(shlex.quote(v) for v in values))}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_BAD_INPUT
    argv = job_argv(*values)
    code = run_job(argv)
    if code == EXIT_OK:
        from finbatch.batch.publish import publish_job_metrics

        publish_job_metrics(argv)
    return code


#: The subcommands, in the order `finbatch batch --help` lists them.
COMMANDS: tuple[Callable[[Any], None], ...] = (_add_job_definition, _add_run, add_operate_parsers)


def batch_parser() -> argparse.ArgumentParser:
    """The parser of ``finbatch batch``."""
    from finbatch.parsing import new_parser

    batch = new_parser(
        "finbatch batch",
        "AWS Batch tools: job definitions, their container command, and submitting and "
        "operating jobs (see docs/aws.md).",
    )
    commands = batch.add_subparsers(dest="batch_command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(commands)
    return batch


def run_batch(args: argparse.Namespace, run_job: RunJob) -> int:
    """Run the parsed ``batch`` subcommand; returns its exit code."""
    handler: Handler = args.batch_handler
    try:
        return handler(args, run_job)
    except FinbatchError as err:
        from analytics.secrecy import redact

        print(f"finbatch: error: {redact(err)}", file=sys.stderr, flush=True)
        return err.exit_code
