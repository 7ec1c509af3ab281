"""``batch submit|status|list|cancel|logs`` against moto's AWS Batch, in-process.

moto runs the control plane only: ``mock_aws(config={"batch": {"use_docker": False}})`` marks
every submitted job SUCCEEDED at once and runs no container (this machine cannot run Batch's
containers), so these tests check the requests, the lookups and the exit codes; the jobs'
own work is tested by running the same command lines locally (test_batch_fanout.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from cluster.batch.jobdef import JobDefinitionSpec, retry_strategy
from finbatch.batch import submit
from finbatch.batch.gateway import BatchGateway
from finbatch.batch.metrics import NAMESPACE
from finbatch.batch.publish import publish_job_metrics
from tests.conftest import read_manifest, run_cli

REGION = "us-east-1"
SNAPSHOT = Path(__file__).parent / "snapshots" / "batch-submit-dry-run.json"
JOB = ["market-performance", "--start", "2023-10-02", "--end", "2024-03-28"]


class Aws:
    """Two queues (on-demand EC2 and Spot) and finbatch's two definitions, in moto."""

    def __init__(self) -> None:
        self.batch = boto3.client("batch", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="sg", Description="sg", VpcId=vpc)["GroupId"]
        role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        profile = iam.create_instance_profile(InstanceProfileName="node")["InstanceProfile"]
        self.queues: dict[str, str] = {}
        for kind, name in (("EC2", "ondemand"), ("SPOT", "spot")):
            resources: dict[str, Any] = {
                "type": kind,
                "minvCpus": 0,
                "maxvCpus": 64,
                "instanceTypes": ["c6i.4xlarge"],
                "subnets": [subnet],
                "securityGroupIds": [group],
                "instanceRole": profile["Arn"],
            }
            if kind == "SPOT":
                resources["bidPercentage"] = 100
                resources["spotIamFleetRole"] = role
            env = self.batch.create_compute_environment(
                computeEnvironmentName=f"ce-{name}",
                type="MANAGED",
                state="ENABLED",
                computeResources=resources,
                serviceRole=role,
            )["computeEnvironmentArn"]
            self.batch.create_job_queue(
                jobQueueName=name,
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env}],
            )
            self.queues[kind] = name
        container = {"image": "finbatch:latest", "command": ["batch", "run"], "vcpus": 16}
        container["memory"] = 28_000
        self.batch.register_job_definition(
            jobDefinitionName="finbatch", type="container", containerProperties=container
        )
        self.batch.register_job_definition(
            jobDefinitionName="finbatch-mnp",
            type="multinode",
            nodeProperties={
                "numNodes": 2,
                "mainNode": 0,
                "nodeRangeProperties": [
                    {"targetNodes": "0", "container": container},
                    {"targetNodes": "1:", "container": container},
                ],
            },
        )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # not the shared moto S3 server
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield Aws()


def _submit(market: Path | str, *extra: str) -> list[str]:
    return [
        "batch",
        "submit",
        *JOB,
        "--input",
        str(market),
        "--output",
        "s3://results/runs/r1",
        *extra,
    ]


def _ids(stdout: str) -> list[str]:
    return [line.split()[-1] for line in stdout.splitlines() if line.startswith("submitted ")]


def test_dry_run_request_snapshot(market: Path) -> None:
    result = run_cli(
        [
            *_submit("s3://data/market", "--queue", "ondemand", "--nodes", "4"),
            "--dry-run",
            "--stamp",
            "20240101T000000",
            "--node-price",
            "0.68",
        ]
    )
    assert result.code == 0, result.stderr
    request = json.loads(result.stdout)
    assert request == json.loads(SNAPSHOT.read_text())
    assert request["nodeOverrides"]["numNodes"] == 4


def test_spot_fanout_dry_run_is_an_array_and_a_merge(market: Path) -> None:
    argv = ["batch", "submit", "backtest", "--input", "s3://d", "--output", "s3://r/x"]
    argv += ["--strategy", "sma-cross", "--grid", "fast=2,5,7", "--grid", "slow=10"]
    result = run_cli([*argv, "--queue", "spot", "--spot-shards", "3", "--dry-run"])
    assert result.code == 0, result.stderr
    array, merge = json.loads(result.stdout)
    assert array["arrayProperties"] == {"size": 3}
    # Spot shards get more attempts, with the definition's rules (the override replaces them).
    assert array["retryStrategy"] == retry_strategy(JobDefinitionSpec(), spot=True)
    assert array["retryStrategy"]["attempts"] == 6
    assert "retryStrategy" not in merge
    assert array["parameters"]["options"].endswith("--shard array/3")
    assert merge["parameters"]["options"].endswith("--merge-shards 3")
    assert "arrayProperties" not in merge and merge["jobDefinition"] == "finbatch"
    empty = run_cli([*argv, "--queue", "spot", "--spot-shards", "5", "--dry-run"])
    assert empty.code == 2 and "5 shards for 3 combinations" in empty.stderr


def test_submit_status_list_cancel(aws: Aws, market: Path) -> None:
    result = run_cli(_submit(market, "--queue", "ondemand", "--nodes", "3", "--wait"))
    assert result.code == 0, result.stderr
    (job_id,) = _ids(result.stdout)
    assert f"#jobs/detail/{job_id}" in result.stdout  # the console link
    assert "SUCCEEDED" in result.stdout  # --wait's progress line; moto finishes at once
    job = aws.batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["jobDefinition"].split("/")[-1].startswith("finbatch-mnp")
    assert job["parameters"]["dates"] == "--start 2023-10-02 --end 2024-03-28"

    status = run_cli(["batch", "status", job_id])
    assert status.code == 0 and f"{job_id} " in status.stdout and "SUCCEEDED" in status.stdout
    listed = run_cli(["batch", "list", "--queue", "ondemand", "--status", "SUCCEEDED"])
    assert listed.code == 0 and job_id in listed.stdout
    assert run_cli(["batch", "list", "--status", "RUNNING"]).stdout.strip() == ""
    cancel = run_cli(["batch", "cancel", job_id])
    assert cancel.code == 0 and f"cancelled {job_id}" in cancel.stdout
    # moto's jobs have finished already: TerminateJob records its reason (the request went).
    stopped = aws.batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert stopped["statusReason"] == "cancelled with finbatch batch cancel"
    missing = run_cli(["batch", "status", "no-such-job"])
    assert missing.code == 2 and "no AWS Batch job 'no-such-job'" in missing.stderr


def test_idempotent_submission_runs_once(aws: Aws, market: Path) -> None:
    argv = _submit(market, "--queue", "ondemand", "--idempotency-key", "2024-06-28")
    first = run_cli(argv)
    second = run_cli(argv)
    assert first.code == second.code == 0, first.stderr + second.stderr
    (job_id,) = _ids(first.stdout)
    assert _ids(second.stdout) == [] and "already submitted" in second.stdout
    assert job_id in second.stdout
    other = run_cli(_submit(market, "--queue", "ondemand", "--idempotency-key", "2024-07-01"))
    assert _ids(other.stdout) and _ids(other.stdout) != [job_id]
    jobs = aws.batch.list_jobs(jobQueue="ondemand", jobStatus="SUCCEEDED")["jobSummaryList"]
    assert len(jobs) == 2


def test_array_job_with_dependent_merge(aws: Aws, market: Path) -> None:
    argv = ["batch", "submit", "backtest", "--input", str(market), "--output", "s3://r/x"]
    argv += ["--strategy", "sma-cross", "--grid", "fast=2,5", "--grid", "slow=10,20"]
    result = run_cli([*argv, "--queue", "spot", "--spot-shards", "4"])
    assert result.code == 0, result.stderr
    array_id, merge_id = _ids(result.stdout)
    array, merge = aws.batch.describe_jobs(jobs=[array_id, merge_id])["jobs"]
    assert array["arrayProperties"]["size"] == 4
    assert merge["dependsOn"] == [{"jobId": array_id}]
    children = aws.batch.list_jobs(arrayJobId=array_id)["jobSummaryList"]
    assert len(children) == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--queue", "spot", "--nodes", "2"], "multi-node jobs need EC2"),
        (["--queue", "ondemand", "--nodes", "5"], "exceed the compute environments' maxvCpus 64"),
        (["--queue", "ondemand", "--vcpus", "32"], "would stay RUNNABLE forever"),
        (["--queue", "ondemand", "--memory", "31000"], "would stay RUNNABLE forever"),
        (["--queue", "nope"], "job queue 'nope' not found"),
        (["--queue", "ondemand", "--symbols", ",".join(f"S{i:05d}" for i in range(1400))], "8,192"),
    ],
)
def test_checks_say_the_fix(aws: Aws, market: Path, extra: list[str], message: str) -> None:
    result = run_cli(_submit(market, *extra))
    assert result.code == 2 and message in result.stderr, result.stderr
    assert aws.batch.list_jobs(jobQueue="ondemand", jobStatus="SUCCEEDED")["jobSummaryList"] == []


def test_missing_input_is_refused_before_submitting(aws: Aws, tmp_path: Path) -> None:
    result = run_cli(_submit(tmp_path / "nothing", "--queue", "ondemand"))
    assert result.code == 2 and "no files found under" in result.stderr


def test_metrics_published(
    aws: Aws, market: Path, tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = [*JOB, "--input", str(market), "--output", str(out), "--scheduler", scheduler]
    assert run_cli(argv).code == 0
    manifest = read_manifest(str(out))
    assert manifest is not None
    env = {submit.QUEUE_VARIABLE: "ondemand", submit.PRICE_VARIABLE: "0.5"}
    env["AWS_BATCH_JOB_NUM_NODES"] = "2"
    gateway = BatchGateway(boto3.client("batch", region_name=REGION))
    m = publish_job_metrics(argv, {**env, "FINBATCH_METRICS": "cloudwatch"}, gateway)
    assert m is not None
    # Both nodes' workers ran in the one external cluster (host 127.0.0.1): one node lost.
    assert (m.workers, m.nodes, m.nodes_lost) == (2, 2, 1)
    assert m.bytes_read == manifest["inputs"]["prices"]["bytes"]
    rows = len(pd.read_parquet(market / "prices"))  # the run reads every prices file whole
    assert m.rows_read == rows
    cw = boto3.client("cloudwatch", region_name=REGION)
    names = {x["MetricName"] for x in cw.list_metrics(Namespace=NAMESPACE)["Metrics"]}
    assert names == {"Duration", "RowsRead", "BytesRead", "Tasks", "WorkersJoined", "NodesLost"}
    dims = cw.list_metrics(Namespace=NAMESPACE, MetricName="RowsRead")["Metrics"][0]["Dimensions"]
    assert {d["Name"]: d["Value"] for d in dims} == {
        "Job": "market-performance",
        "Queue": "ondemand",
    }
    line = capsys.readouterr().out.strip().splitlines()[-1]
    hours = manifest["duration_s"] * 2 / 3600
    assert f"{hours:.3f} node-hours, ~${hours * 0.5:,.2f} at $0.5/node-hour" in line

    publish_job_metrics(argv, env, gateway)  # the default: an EMF log line on stdout
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Job", "Queue"]]
    assert emf["RowsRead"] == rows and emf["Queue"] == "ondemand"


def test_logs_and_follow(aws: Aws, market: Path) -> None:
    result = run_cli(_submit(market, "--queue", "ondemand", "--nodes", "2"))
    (job_id,) = _ids(result.stdout)
    stream = aws.batch.describe_jobs(jobs=[job_id])["jobs"][0]["container"]["logStreamName"]
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    now = int(time.time() * 1000)  # CloudWatch Logs refuses events older than 14 days
    events = [{"timestamp": now + i, "message": f"line {i}"} for i in range(3)]
    logs.put_log_events(logGroupName="/aws/batch/job", logStreamName=stream, logEvents=events)
    shown = run_cli(["batch", "logs", job_id])
    assert shown.code == 0 and shown.stdout.splitlines() == ["line 0", "line 1", "line 2"]
    followed = run_cli(_submit(market, "--queue", "ondemand", "--follow", "--poll", "0"))
    assert followed.code == 0, followed.stderr  # its stream has no events yet: it drains at once
    assert "SUCCEEDED" in followed.stdout


def test_idempotency_hash_is_stable_and_keyed() -> None:
    params = submit.parameters(
        "risk", ["--input", "s3://a", "--output", "s3://b", "--start=2024-01-02"]
    )
    assert params["dates"] == "--start 2024-01-02" and params["options"] == "none"
    name = submit.job_name(params, "k", "stamp")
    assert name == submit.job_name(dict(params), "k", "other stamp")
    assert name != submit.job_name(params, "k2", "stamp")
    assert submit.job_name(params, None, "T1") == "finbatch-risk-T1"
