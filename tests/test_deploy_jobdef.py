"""The job definitions: one spec (cluster/batch/jobdef.py), the CLI's JSON, the template's.

Checked against botocore's service model of RegisterJobDefinition (the shape the Batch API
validates), against a snapshot, and against the CloudFormation template resolved with the same
values: the three must agree.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from analytics import jobs
from analytics.errors import InputError
from cluster.batch.command import COMMAND, PARAMETER_NAMES, job_argv
from cluster.batch.jobdef import (
    MAX_RETRY_RULES,
    JobDefinitionSpec,
    multinode_definition,
    retry_strategy,
    single_node_definition,
)
from cluster.batch.template import (
    Context,
    conditions,
    load_template,
    parameter_values,
    resolve,
    to_request,
)
from finbatch.batch.cli import batch_parser
from finbatch.parsing import job_parser
from tests.conftest import run_cli

SNAPSHOTS = Path(__file__).parent / "snapshots"
#: FINBATCH_UPDATE_SNAPSHOTS=1 rewrites the snapshot files (review the diff before committing).
UPDATE = os.environ.get("FINBATCH_UPDATE_SNAPSHOTS") == "1"
REQUIRED = {
    "VpcId": "vpc-0123456789abcdef0",
    "Subnets": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/finbatch:0.1.0",
    "DataBucket": "acme-market-data",
    "DataPrefix": "finbatch/data",
    "ResultsBucket": "acme-results",
    "ResultsPrefix": "finbatch/results",
    "AlertEmail": "ops@example.com",
}
PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "finbatch",
}
ROLE = "arn:aws:iam::123456789012:role/finbatch-JobRole-ABC"
EXEC_ROLE = "arn:aws:iam::123456789012:role/finbatch-ExecutionRole-DEF"
TOPIC = "arn:aws:sns:us-east-1:123456789012:finbatch-alerts"
LOG_GROUP = "/aws/batch/finbatch"


def _validate(operation: str, request: dict[str, Any]) -> str:
    """botocore's own request validation (what boto3 does before sending): '' when valid."""
    model = botocore.session.get_session().get_service_model("batch")
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    return str(report.generate_report()) if report.has_errors() else ""


def _ranges(ranges: list[str], nodes: int) -> list[int]:
    """Node indexes covered by Batch's targetNodes ranges ("i", "i:j", "i:", ":j")."""
    covered = []
    for text in ranges:
        low, sep, high = text.partition(":")
        start = int(low or 0)
        stop = (int(high) if high else nodes - 1) if sep else start
        covered.extend(range(start, stop + 1))
    return covered


# --------------------------------------------------------------------------------------------
# The definitions themselves


@pytest.mark.parametrize("nodes", [2, 3, 16])
def test_multinode_definition(nodes: int) -> None:
    request = multinode_definition(JobDefinitionSpec(nodes=nodes, image="img:1"))
    assert request["type"] == "multinode"
    props = request["nodeProperties"]
    assert props["numNodes"] == nodes
    assert props["mainNode"] == 0
    groups = props["nodeRangeProperties"]
    assert [g["targetNodes"] for g in groups] == ["0", "1:"]
    # Every node 0..N-1 is in exactly one range: the ranges neither overlap nor leave a gap.
    assert sorted(_ranges([g["targetNodes"] for g in groups], nodes)) == list(range(nodes))
    # The same container on every node (each finds its role from AWS_BATCH_*).
    assert groups[0]["container"] == groups[1]["container"]
    container = groups[0]["container"]
    assert container["image"] == "img:1"
    assert {"name": "nofile", "softLimit": 65536, "hardLimit": 65536} in container["ulimits"]
    assert container["linuxParameters"]["sharedMemorySize"] == 2048
    assert request["timeout"]["attemptDurationSeconds"] == 6 * 3600
    assert request["platformCapabilities"] == ["EC2"]


def _batch_decides(rules: list[dict[str, str]], attempt: dict[str, Any]) -> str:
    """What Batch does with a failed attempt: the first rule whose every condition matches
    (a pattern ending in ``*`` matches a prefix, else the whole text; an absent field is
    empty) gives the action; an attempt that matches no rule is retried."""

    def matches(pattern: str, value: object) -> bool:
        text = "" if value is None else str(value)
        return text.startswith(pattern[:-1]) if pattern.endswith("*") else text == pattern

    fields = {"onStatusReason": "statusReason", "onReason": "reason", "onExitCode": "exitCode"}
    for rule in rules:
        conditions = {k: v for k, v in rule.items() if k != "action"}
        if all(matches(v, attempt.get(fields[k])) for k, v in conditions.items()):
            return rule["action"]
    return "RETRY"


#: Failed attempts as Batch reports them (status reason, the container's reason, exit code).
ATTEMPTS = {
    "spot reclaimed": (
        {"statusReason": "Host EC2 (instance i-0a1b2c3d4e5f67890) terminated."},
        "RETRY",
    ),
    "image pull throttled": (
        {
            "statusReason": "Task failed to start",
            "reason": "CannotPullContainerError: pull rate limit exceeded",
        },
        "RETRY",
    ),
    "network interface not ready": (
        {
            "statusReason": "Task failed to start",
            "reason": "ResourceInitializationError: failed to configure ENI: timed out",
        },
        "RETRY",
    ),
    "storage kept failing (exit 75)": (
        {"statusReason": "Essential container in task exited", "reason": "", "exitCode": 75},
        "RETRY",
    ),
    "bad input (exit 2)": (
        {"statusReason": "Essential container in task exited", "reason": "", "exitCode": 2},
        "EXIT",
    ),
    "failure (exit 1)": (
        {"statusReason": "Essential container in task exited", "reason": "", "exitCode": 1},
        "EXIT",
    ),
    "out of memory (exit 137)": (
        {
            "statusReason": "Essential container in task exited",
            "reason": "OutOfMemoryError: Container killed due to memory usage",
            "exitCode": 137,
        },
        "EXIT",
    ),
    # 7 and 750 start with the digits of 75: the rule is the whole code, not a prefix.
    "exit 7": ({"statusReason": "Essential container in task exited", "exitCode": 7}, "EXIT"),
    "exit 750": ({"statusReason": "Essential container in task exited", "exitCode": 750}, "EXIT"),
}


@pytest.mark.parametrize("build", [multinode_definition, single_node_definition])
@pytest.mark.parametrize("case", sorted(ATTEMPTS))
def test_retry_transient_failures_and_exit_75_only(build: Any, case: str) -> None:
    strategy = build(JobDefinitionSpec())["retryStrategy"]
    attempt, expected = ATTEMPTS[case]
    assert _batch_decides(strategy["evaluateOnExit"], attempt) == expected


@pytest.mark.parametrize("build", [multinode_definition, single_node_definition])
def test_retry_rules_fit_batch_limits(build: Any) -> None:
    strategy = build(JobDefinitionSpec())["retryStrategy"]
    rules = strategy["evaluateOnExit"]
    assert strategy["attempts"] == 3
    assert len(rules) <= MAX_RETRY_RULES == 5
    # An attempt that matches no rule is retried: the catch-all EXIT comes last.
    assert rules[-1] == {"onReason": "*", "action": "EXIT"}
    assert [r["action"] for r in rules[:-1]] == ["RETRY"] * (len(rules) - 1)
    # Batch's pattern syntax: letters, digits, periods, colons, spaces, one trailing asterisk.
    for rule in rules:
        for key, pattern in rule.items():
            if key != "action":
                assert re.fullmatch(r"[A-Za-z0-9.: ]*\*?", pattern), pattern
    # Spot work: the same rules, more attempts (a SubmitJob retryStrategy replaces the whole).
    spot = retry_strategy(JobDefinitionSpec(), spot=True)
    assert spot == {"attempts": 6, "evaluateOnExit": rules}


def test_main_node_reserve_is_in_every_container() -> None:
    spec = JobDefinitionSpec(memory_mib=28_000, main_node_reserve_mib=6144)
    multinode = multinode_definition(spec)["nodeProperties"]["nodeRangeProperties"]
    single = single_node_definition(spec)["containerProperties"]
    for container in (multinode[0]["container"], multinode[1]["container"], single):
        environment = {e["name"]: e["value"] for e in container["environment"]}
        # No summary topic given: no summary variable (the alert topic never gets one).
        assert environment == {"FINBATCH_MAIN_NODE_RESERVE_MIB": "6144"}
    # 28,000 - 6,144 = 21,856 MiB for the main node's worker.
    with pytest.raises(InputError, match="leaves its worker under 2048 MiB"):
        multinode_definition(JobDefinitionSpec(memory_mib=8000, main_node_reserve_mib=6144))


@pytest.mark.parametrize("build", [multinode_definition, single_node_definition])
def test_every_parameter_is_in_the_command_and_back(build: Any) -> None:
    request = build(JobDefinitionSpec())
    container = (
        request["nodeProperties"]["nodeRangeProperties"][0]["container"]
        if request["type"] == "multinode"
        else request["containerProperties"]
    )
    referenced = [word.removeprefix("Ref::") for word in container["command"] if "Ref::" in word]
    assert referenced == list(request["parameters"]) == list(PARAMETER_NAMES)
    assert container["command"] == list(COMMAND)
    # Batch substitutes whole elements only: a placeholder inside a longer word would stay.
    assert all(re.fullmatch(r"Ref::\w+", w) for w in container["command"] if "Ref::" in w)


def test_requests_match_the_batch_api_shape() -> None:
    spec = JobDefinitionSpec(job_role_arn=ROLE, execution_role_arn=EXEC_ROLE, log_group=LOG_GROUP)
    assert _validate("RegisterJobDefinition", multinode_definition(spec)) == ""
    assert _validate("RegisterJobDefinition", single_node_definition(spec)) == ""
    # The validator is not vacuous: a wrong type and an unknown member are reported.
    broken = multinode_definition(spec)
    broken["nodeProperties"]["numNodes"] = "4"
    broken["retryStrategy"]["evaluateOnExit"][0]["onExitStatus"] = "1"
    report = _validate("RegisterJobDefinition", broken)
    assert "numNodes" in report and "onExitStatus" in report


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (JobDefinitionSpec(nodes=1), "at least 2 nodes"),
        (JobDefinitionSpec(memory_mib=2048), "must exceed the shared memory"),
        (JobDefinitionSpec(timeout_seconds=30), "Batch's minimum is 60"),
        (JobDefinitionSpec(image=" "), "image URI is empty"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(spec: JobDefinitionSpec, message: str) -> None:
    with pytest.raises(InputError, match=message):
        multinode_definition(spec)


def test_one_node_is_fine_for_the_single_node_definition() -> None:
    assert single_node_definition(JobDefinitionSpec(nodes=1))["type"] == "container"


@pytest.mark.parametrize(
    ("name", "build"),
    [("multinode", multinode_definition), ("single-node", single_node_definition)],
)
def test_snapshot(name: str, build: Any) -> None:
    spec = JobDefinitionSpec(
        image=REQUIRED["ImageUri"],
        nodes=4,
        job_role_arn=ROLE,
        execution_role_arn=EXEC_ROLE,
        log_group=LOG_GROUP,
        data_url="s3://acme-market-data/finbatch/data",
        results_url="s3://acme-results/finbatch/results",
    )
    text = json.dumps(build(spec), indent=2) + "\n"
    path = SNAPSHOTS / f"batch-job-definition-{name}.json"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} changed: FINBATCH_UPDATE_SNAPSHOTS=1 to accept"


# --------------------------------------------------------------------------------------------
# The CLI prints the same requests


def test_cli_prints_the_multinode_definition() -> None:
    args = ["--nodes", "4", "--vcpus", "8", "--memory", "15000", "--image", "repo/finbatch:2"]
    result = run_cli(["batch", "job-definition", *args])
    assert result.code == 0, result.stderr
    expected = multinode_definition(
        JobDefinitionSpec(image="repo/finbatch:2", nodes=4, vcpus=8, memory_mib=15000)
    )
    assert json.loads(result.stdout) == expected


def test_cli_prints_the_single_node_definition() -> None:
    result = run_cli(["batch", "job-definition", "--single-node", "--name", "fb"])
    assert result.code == 0, result.stderr
    request = json.loads(result.stdout)
    assert request == single_node_definition(JobDefinitionSpec(name="fb"))
    assert request["jobDefinitionName"] == "fb"


def test_cli_bad_arguments_exit_2() -> None:
    result = run_cli(["batch", "job-definition", "--nodes", "1"])
    assert result.code == 2
    assert "at least 2 nodes" in result.stderr
    assert result.stdout == ""
    assert run_cli(["batch", "job-definition", "--vcpus", "0"]).code == 2


# --------------------------------------------------------------------------------------------
# The template holds the same definitions


def _template_definitions(given: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The template's two job definitions, resolved with these parameters, as API requests."""
    template = load_template()
    values = {**parameter_values(template, {**REQUIRED, **given}), **PSEUDO}
    created = {
        "JobRole": {"Ref": "finbatch-JobRole-ABC", "Arn": ROLE},
        "ExecutionRole": {"Ref": "finbatch-ExecutionRole-DEF", "Arn": EXEC_ROLE},
        "LogGroup": {"Ref": LOG_GROUP},
        "SummaryTopic": {"Ref": TOPIC},
    }
    ctx = Context(values, created, conditions(template, values))
    resources = template["Resources"]
    return {
        name: to_request(
            resolve(resources[name]["Properties"], ctx), "batch", "RegisterJobDefinition"
        )
        for name in ("MultiNodeJobDefinition", "SingleNodeJobDefinition")
    }


@pytest.mark.parametrize(
    ("given", "cli"),
    [
        # No summaries by default: no summary topic in the definitions.
        ({}, []),
        (
            {
                "Nodes": "6",
                "NodeVcpus": "32",
                "NodeMemoryMiB": "120000",
                "MainNodeReserveMiB": "16384",
                "JobTimeoutSeconds": "7200",
                "NamePrefix": "dev-",
                "NotifyOnSuccess": "true",
            },
            [
                *("--nodes", "6", "--vcpus", "32", "--memory", "120000"),
                *("--timeout", "7200", "--name", "dev-finbatch"),
                *("--main-node-reserve", "16384", "--summary-topic-arn", TOPIC),
            ],
        ),
    ],
)
def test_template_definitions_equal_the_cli(given: dict[str, str], cli: list[str]) -> None:
    template = _template_definitions(given)
    common = [
        "--image",
        REQUIRED["ImageUri"],
        "--job-role-arn",
        ROLE,
        "--execution-role-arn",
        EXEC_ROLE,
        "--log-group",
        LOG_GROUP,
        "--data-url",
        "s3://acme-market-data/finbatch/data",
        "--results-url",
        "s3://acme-results/finbatch/results",
    ]
    for name, extra in (
        ("MultiNodeJobDefinition", []),
        ("SingleNodeJobDefinition", ["--single-node"]),
    ):
        result = run_cli(["batch", "job-definition", *common, *cli, *extra])
        assert result.code == 0, result.stderr
        assert template[name] == json.loads(result.stdout), name
        assert _validate("RegisterJobDefinition", template[name]) == ""


# --------------------------------------------------------------------------------------------
# `batch run`: the parameters back into the job's command line


def _substitute(command: list[str], defaults: dict[str, str], given: dict[str, str]) -> list[str]:
    """What Batch does: each whole ``Ref::name`` element becomes the parameter's value."""
    values = {**defaults, **given}
    return [values[w.removeprefix("Ref::")] if w.startswith("Ref::") else w for w in command]


def test_batch_substitution_gives_the_job_command_line() -> None:
    request = single_node_definition(JobDefinitionSpec())
    command = _substitute(
        request["containerProperties"]["command"],
        request["parameters"],
        {
            "job": "risk",
            "input": "s3://d/p",
            "output": "s3://r/p/risk/2024-06-28",
            "dates": "--as-of 2024-06-28",
            "options": "--confidence 0.99 --horizon-days=1,10",
        },
    )
    assert command[0] == "batch"
    args = batch_parser().parse_args(command[1:])
    assert args.batch_command == "run"
    argv = job_argv(*args.parameters)
    assert argv == [
        "risk",
        "--input",
        "s3://d/p",
        "--output",
        "s3://r/p/risk/2024-06-28",
        "--as-of",
        "2024-06-28",
        "--confidence",
        "0.99",
        "--horizon-days=1,10",
    ]
    job_args = job_parser(jobs.get(argv[0])).parse_args(argv[1:])
    assert str(job_args.as_of) == "2024-06-28"


def test_none_stands_for_no_options() -> None:
    defaults = single_node_definition(JobDefinitionSpec())["parameters"]
    assert (defaults["dates"], defaults["options"]) == ("none", "none")
    assert job_argv("market-performance", "s3://d", "s3://r", "none", " NONE ") == [
        "market-performance",
        "--input",
        "s3://d",
        "--output",
        "s3://r",
    ]
    assert job_argv("tca", "s3://d", "s3://r", "", "'--symbols' 'A,B'")[-2:] == ["--symbols", "A,B"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("tca", "s3://d", "s3://r", "--date '2024", "none"), "cannot be split"),
        (("tca", "s3://d", "s3://r", "none", "--output=s3://x"), "give it in the 'output'"),
        (("tca", "s3://d", "none", "none", "none"), "parameter 'output' is empty"),
    ],
)
def test_bad_parameters_are_input_errors(values: tuple[str, ...], message: str) -> None:
    with pytest.raises(InputError, match=message):
        job_argv(*values)


def test_batch_run_cli_errors_exit_2() -> None:
    result = run_cli(["batch", "run", "tca", "s3://d", "s3://r"])
    assert result.code == 2
    assert "expected 5 parameters" in result.stderr
    result = run_cli(["batch", "run", "tca", "s3://d", "s3://r", "none", "--output x"])
    assert result.code == 2
    assert "give it in the 'output' parameter" in result.stderr


# --------------------------------------------------------------------------------------------
# The main node's worker: the runtime reads the reserve the definitions set


def test_the_main_node_reads_the_definitions_reserve() -> None:
    from cluster.mnp import main_worker_memory
    from cluster.runner import MAIN_RESERVE_ENV, mnp_options

    request = multinode_definition(JobDefinitionSpec(memory_mib=28_000))
    main = request["nodeProperties"]["nodeRangeProperties"][0]["container"]
    env = {e["name"]: e["value"] for e in main["environment"]}
    assert MAIN_RESERVE_ENV in env
    options = mnp_options(
        env, "s3://r/x", wait_for_nodes=60, min_nodes=None, death_timeout=60, insecure=False
    )
    assert options.main_reserve_mib == 6144
    # A 28,000 MiB container: the worker may use 28,000 - 6,144 = 21,856 MiB.
    container = 28_000 * 2**20
    assert main_worker_memory(container, options.main_reserve_mib) == 21_856 * 2**20
    # No reserve (a local run, the simulator): Dask's default, the whole memory.
    assert main_worker_memory(container, None) == "auto"
    # A reserve that would starve the worker: it keeps a quarter (7,000 MiB).
    assert main_worker_memory(container, 25_000) == 7_000 * 2**20
    with pytest.raises(InputError, match="expected a whole number of MiB"):
        mnp_options(
            {MAIN_RESERVE_ENV: "6 GiB"},
            "s3://r/x",
            wait_for_nodes=60,
            min_nodes=None,
            death_timeout=60,
            insecure=False,
        )
