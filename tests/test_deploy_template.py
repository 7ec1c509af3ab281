"""What the CloudFormation template promises, read from the resolved template.

cfn-lint checks that the template is valid CloudFormation; these tests check that it is the
deployment docs/aws.md describes: who may reach the nodes, what each role may do, where each
queue runs, when the schedules fire and what they submit, and what an alert says.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from cluster.batch.command import PARAMETER_NAMES, job_argv
from cluster.batch.jobdef import JobDefinitionSpec, retry_strategy
from cluster.batch.template import (
    Context,
    conditions,
    load_template,
    parameter_values,
    resolve,
    to_request,
)
from tests.test_deploy_jobdef import PSEUDO, REQUIRED

TEMPLATE = load_template()
ACCOUNT = PSEUDO["AWS::AccountId"]
QUEUE_ARN = f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/"
JOBDEF_ARN = f"arn:aws:batch:us-east-1:{ACCOUNT}:job-definition/"


def _fake_attributes() -> dict[str, dict[str, Any]]:
    """Plausible physical ids and attributes for every resource, so that all of them resolve."""
    out: dict[str, dict[str, Any]] = {}
    for name, body in TEMPLATE["Resources"].items():
        kind = body["Type"]
        arn = f"arn:aws:{kind.split('::')[1].lower()}:us-east-1:{ACCOUNT}:{name}"
        attrs: dict[str, Any] = {"Ref": arn, "Arn": arn}
        if kind == "AWS::Batch::JobQueue":
            attrs["Ref"] = f"{QUEUE_ARN}{name}"
        elif kind == "AWS::Batch::JobDefinition":
            attrs["Ref"] = f"{JOBDEF_ARN}{name}:1"
        elif kind == "AWS::EC2::SecurityGroup":
            attrs.update(Ref="sg-0123", GroupId="sg-0123")
        elif kind == "AWS::Logs::LogGroup":
            attrs.update(Ref=f"/aws/batch/{name}", Arn=f"{arn}:*")
        elif kind == "AWS::SQS::Queue":
            url = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{name}"
            attrs.update(Ref=url, QueueName=name)
        elif kind == "AWS::EC2::LaunchTemplate":
            attrs.update(Ref="lt-0123456789abcdef0", LatestVersionNumber="1")
        elif kind == "AWS::KMS::Key":
            attrs.update(Ref="1234abcd-12ab-34cd-56ef-1234567890ab")
        out[name] = attrs
    return out


def _resolved(**given: str) -> dict[str, Any]:
    values = {**parameter_values(TEMPLATE, {**REQUIRED, **given}), **PSEUDO}
    ctx = Context(values, _fake_attributes(), conditions(TEMPLATE, values))
    return {
        name: {**body, "Properties": resolve(body.get("Properties", {}), ctx)}
        for name, body in TEMPLATE["Resources"].items()
    }


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {n: b["Properties"] for n, b in resources.items() if b["Type"] == kind}


def test_parameters_the_issue_names() -> None:
    declared = TEMPLATE["Parameters"]
    for name in (
        "VpcId",
        "Subnets",
        "ImageUri",
        "DataBucket",
        "DataPrefix",
        "ResultsBucket",
        "ResultsPrefix",
        "AlertEmail",
        "MaxVcpus",
        "NodeVcpus",
        "NodeMemoryMiB",
        "DailyTcaSchedule",
        "MonthlyBacktestSchedule",
        "NotifyOnSuccess",
    ):
        assert name in declared, name
    assert declared["VpcId"]["Type"] == "AWS::EC2::VPC::Id"
    assert declared["Subnets"]["Type"] == "List<AWS::EC2::Subnet::Id>"


def test_dask_ports_are_open_to_the_nodes_only() -> None:
    resources = _resolved()
    ingress = _of_type(resources, "AWS::EC2::SecurityGroupIngress")
    group = resources["NodeSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group  # every rule is one of the resources below
    ports = set()
    for rule in ingress.values():
        assert rule["GroupId"] == rule["SourceSecurityGroupId"] == "sg-0123", rule
        assert not {"CidrIp", "CidrIpv6", "SourcePrefixListId"} & set(rule), rule
        ports.add((rule["FromPort"], rule["ToPort"]))
    assert (8786, 8787) in ports
    assert "0.0.0.0/0" not in json.dumps(TEMPLATE) and "::/0" not in json.dumps(TEMPLATE)


def test_compute_environments() -> None:
    environments = _of_type(_resolved(), "AWS::Batch::ComputeEnvironment")
    assert set(environments) == {"OnDemandEnvironment", "RiskEnvironment", "SpotEnvironment"}
    on_demand = environments["OnDemandEnvironment"]["ComputeResources"]
    risk = environments["RiskEnvironment"]["ComputeResources"]
    spot = environments["SpotEnvironment"]["ComputeResources"]
    # MNP (analytics and risk): on-demand EC2 only, one instance type, a cluster placement
    # group in one subnet.
    for mnp in (on_demand, risk):
        assert mnp["Type"] == "EC2"
        assert mnp["PlacementGroup"] == _fake_attributes()["PlacementGroup"]["Ref"]
        assert len(mnp["InstanceTypes"]) == 1
        assert mnp["Subnets"] == [REQUIRED["Subnets"].split(",")[0]]
    assert TEMPLATE["Resources"]["PlacementGroup"]["Properties"]["Strategy"] == "cluster"
    assert spot["Type"] == "SPOT"
    assert spot["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert len(spot["InstanceTypes"]) >= 4
    assert spot["Subnets"] == REQUIRED["Subnets"].split(",")
    for resources in (on_demand, risk, spot):
        assert resources["MinvCpus"] == 0  # nothing runs, nothing is paid
        # Every instance is launched from the template that blocks the metadata service.
        assert resources["LaunchTemplate"] == {
            "LaunchTemplateId": "lt-0123456789abcdef0",
            "Version": "1",
        }
    assert on_demand["MaxvCpus"] == spot["MaxvCpus"] == "256"
    assert risk["MaxvCpus"] == "64"
    assert (
        _of_type(_resolved(RiskMaxVcpus="128"), "AWS::Batch::ComputeEnvironment")[
            "RiskEnvironment"
        ]["ComputeResources"]["MaxvCpus"]
        == "128"
    )


def test_containers_cannot_reach_the_instance_metadata_service() -> None:
    data = _resolved()["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    # IMDSv2 only (a token is needed), and its PUT answer dies after one hop: a container
    # behind Docker's bridge is two hops away.
    assert data["MetadataOptions"] == {
        "HttpEndpoint": "enabled",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
    }
    user_data = base64.b64decode(data["UserData"]).decode()
    # MIME multi-part: the only user data AWS Batch merges into its own.
    assert user_data.startswith("MIME-Version: 1.0\nContent-Type: multipart/mixed;")
    boundary = re.search(r'boundary="([^"]+)"', user_data)
    assert boundary and user_data.rstrip().endswith(f"--{boundary.group(1)}--")
    script = user_data.split("#!/bin/bash", 1)[1]
    # Multi-node jobs (awsvpc tasks): the ECS agent blocks the service.
    assert "echo ECS_AWSVPC_BLOCK_IMDS=true >> /etc/ecs/ecs.config" in script
    # Single-node jobs share the host's network as the image's user: its packets are dropped.
    rule = re.search(r"iptables --insert OUTPUT (.*) --jump DROP", script)
    assert rule, script
    assert "--destination 169.254.169.254/32" in rule.group(1)
    uid = re.search(r"--uid-owner (\d+)", rule.group(1))
    dockerfile = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text()
    user = re.findall(r"^USER (\d+)", dockerfile, re.MULTILINE)
    assert uid and user == [uid.group(1)], (uid, user)


def test_topics_and_log_groups_are_encrypted_with_the_stacks_key() -> None:
    resources = _resolved(NotifyOnSuccess="true")
    key = _fake_attributes()["StackKey"]
    topics = _of_type(resources, "AWS::SNS::Topic")
    assert set(topics) == {"AlertTopic", "SummaryTopic"}
    assert all(t["KmsMasterKeyId"] == key["Ref"] for t in topics.values())
    groups = _of_type(resources, "AWS::Logs::LogGroup")
    assert set(groups) == {"LogGroup", "AlertFunctionLogGroup"}
    assert all(g["KmsKeyId"] == key["Arn"] for g in groups.values())
    props = resources["StackKey"]["Properties"]
    assert props["EnableKeyRotation"] is True
    services = {s["Sid"]: s["Principal"].get("Service") for s in props["KeyPolicy"]["Statement"]}
    # CloudWatch Logs encrypts (its regional principal); alarms publish to the encrypted topic.
    assert services["LogsEncryptThisAccountsLogGroups"] == "logs.us-east-1.amazonaws.com"
    assert services["AlarmsPublishToTheEncryptedTopic"] == "cloudwatch.amazonaws.com"
    # The queues use SQS's own encryption (the scheduler needs no key permission).
    queues = _of_type(resources, "AWS::SQS::Queue")
    assert len(queues) == 3 and all(q["SqsManagedSseEnabled"] is True for q in queues.values())


def test_queues_and_their_priorities() -> None:
    queues = _of_type(_resolved(), "AWS::Batch::JobQueue")
    by_name = {q["JobQueueName"]: q for q in queues.values()}
    assert set(by_name) == {"risk", "analytics", "backtest-spot"}
    priority = {name: q["Priority"] for name, q in by_name.items()}
    assert priority["risk"] > priority["analytics"] > priority["backtest-spot"]
    environment = {
        n: [c["ComputeEnvironment"] for c in q["ComputeEnvironmentOrder"]]
        for n, q in by_name.items()
    }
    fake = _fake_attributes()
    # Risk has an environment of its own: it never waits behind a running analytics job.
    assert environment["risk"] == [fake["RiskEnvironment"]["Ref"]]
    assert environment["analytics"] == [fake["OnDemandEnvironment"]["Ref"]]
    assert environment["backtest-spot"] == [fake["SpotEnvironment"]["Ref"]]
    prefixed = _of_type(_resolved(NamePrefix="dev-"), "AWS::Batch::JobQueue")
    assert {q["JobQueueName"] for q in prefixed.values()} == {
        "dev-risk",
        "dev-analytics",
        "dev-backtest-spot",
    }


#: What Batch can cancel in RUNNABLE (job_stuck_in_runnable_time_limit_actions in its guide).
CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
MISCONFIGURATION = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
)


def test_every_queue_cancels_work_stuck_in_runnable() -> None:
    given = {
        "RunnableCapacityTimeoutSeconds": "1800",
        "SpotRunnableCapacityTimeoutSeconds": "7200",
        "RunnableMisconfigurationTimeoutSeconds": "900",
    }
    queues = _of_type(_resolved(**given), "AWS::Batch::JobQueue")
    assert len(queues) == 3
    for name, queue in queues.items():
        actions = {a["Reason"]: a for a in queue["JobStateTimeLimitActions"]}
        assert set(actions) == {CAPACITY, *MISCONFIGURATION}, name
        assert all(a["Action"] == "CANCEL" and a["State"] == "RUNNABLE" for a in actions.values())
        capacity = "7200" if name == "BacktestSpotQueue" else "1800"
        assert actions[CAPACITY]["MaxTimeSeconds"] == capacity, name
        assert all(actions[m]["MaxTimeSeconds"] == "900" for m in MISCONFIGURATION), name
    # Batch takes 600 s to 86,400 s: the parameters cannot go outside.
    for parameter in given:
        declared = TEMPLATE["Parameters"][parameter]
        assert (declared["MinValue"], declared["MaxValue"]) == (600, 86400), parameter


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def test_job_role_reads_the_data_prefix_and_writes_the_results_prefix_only() -> None:
    statements = _statements(_resolved()["JobRole"]["Properties"])
    assert all(s["Effect"] == "Allow" for s in statements)
    objects = {s["Resource"]: _actions(s) for s in statements if str(s["Resource"]).endswith("/*")}
    assert objects == {
        "arn:aws:s3:::acme-market-data/finbatch/data/*": {"s3:GetObject"},
        "arn:aws:s3:::acme-results/finbatch/results/*": {
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        },
    }
    listing = {
        s["Resource"]: s["Condition"]["StringLike"]["s3:prefix"]
        for s in statements
        if _actions(s) == {"s3:ListBucket"}
    }
    assert listing == {
        "arn:aws:s3:::acme-market-data": ["finbatch/data", "finbatch/data/*"],
        "arn:aws:s3:::acme-results": ["finbatch/results", "finbatch/results/*"],
    }
    rest = set().union(*(_actions(s) for s in statements)) - {
        a for s in statements for a in _actions(s) if a.startswith("s3:")
    }
    # By default no summary topic and no database secret: no SNS, KMS or Secrets Manager.
    assert rest == {"cloudwatch:PutMetricData", "logs:CreateLogStream", "logs:PutLogEvents"}
    metrics = next(s for s in statements if _actions(s) == {"cloudwatch:PutMetricData"})
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "finbatch"}}
    assert not any("*" in a for s in statements for a in _actions(s))


def test_job_role_publishes_summaries_to_the_summary_topic_only() -> None:
    fake = _fake_attributes()
    statements = _statements(_resolved(NotifyOnSuccess="true")["JobRole"]["Properties"])
    publish = [s for s in statements if "sns:Publish" in _actions(s)]
    # The summary topic, never the alert topic (failures only).
    assert [s["Resource"] for s in publish] == [fake["SummaryTopic"]["Ref"]]
    kms = [s for s in statements if any(a.startswith("kms:") for a in _actions(s))]
    assert [(_actions(s), s["Resource"]) for s in kms] == [
        ({"kms:GenerateDataKey", "kms:Decrypt"}, fake["StackKey"]["Arn"])
    ]


def test_job_role_reads_the_named_database_secret_only() -> None:
    statements = _statements(_resolved(DbSecretName="prod/finbatch-rds")["JobRole"]["Properties"])
    secrets = [s for s in statements if any("secretsmanager" in a for a in _actions(s))]
    assert [_actions(s) for s in secrets] == [{"secretsmanager:GetSecretValue"}]
    # Secrets Manager's ARN is the name, a hyphen and six random characters.
    assert secrets[0]["Resource"] == (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/finbatch-rds-??????"
    )


def test_scheduler_role_submits_to_these_queues_and_definitions_only() -> None:
    statements = _statements(_resolved()["SchedulerRole"]["Properties"])
    assert [s["Action"] for s in statements] == ["batch:SubmitJob", "sqs:SendMessage"]
    fake = _fake_attributes()
    assert sorted(statements[1]["Resource"]) == sorted(
        fake[q]["Arn"] for q in ("DailyTcaDeadLetterQueue", "MonthlyBacktestDeadLetterQueue")
    )
    assert sorted(statements[0]["Resource"]) == sorted(
        fake[name]["Ref"]
        for name in (
            "RiskQueue",
            "AnalyticsQueue",
            "BacktestSpotQueue",
            "MultiNodeJobDefinition",
            "SingleNodeJobDefinition",
        )
    )


def test_roles_are_assumed_by_the_right_services() -> None:
    principals = {
        name: body["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
        for name, body in TEMPLATE["Resources"].items()
        if body["Type"] == "AWS::IAM::Role"
    }
    assert principals == {
        "InstanceRole": "ec2.amazonaws.com",
        "ExecutionRole": "ecs-tasks.amazonaws.com",
        "JobRole": "ecs-tasks.amazonaws.com",
        "SchedulerRole": "scheduler.amazonaws.com",
        "AlertFunctionRole": "lambda.amazonaws.com",
    }


def _submit_shape() -> Any:
    model = botocore.session.get_session().get_service_model("batch")
    return model.operation_model("SubmitJob").input_shape


#: A backtest the schedule can run (README's example; the job's own tests run such grids).
BACKTEST = "--strategy sma-cross --grid fast=5:50:5 --grid slow=20:200:20"
TODAY = "--today <aws.scheduler.scheduled-time>"


def _schedule_request(schedule: str, **given: str) -> dict[str, Any]:
    target = _resolved(**given)[schedule]["Properties"]["Target"]
    request = to_request(json.loads(target["Input"]), "batch", "SubmitJob")
    report = ParamValidator().validate(request, _submit_shape())
    assert not report.has_errors(), report.generate_report()
    return request


@pytest.mark.parametrize(
    ("schedule", "job", "queue", "dates", "cron", "timeout"),
    [
        (
            "DailyTca",
            "tca",
            "AnalyticsQueue",
            f"--date previous-session {TODAY}",
            "cron(30 5 ? * MON-FRI *)",
            ("DailyTcaTimeoutSeconds", 7200),
        ),
        (
            "MonthlyBacktest",
            "backtest",
            "BacktestSpotQueue",
            f"--as-of-month previous {TODAY}",
            "cron(0 6 1-7 * ? *)",
            ("MonthlyBacktestTimeoutSeconds", 21600),
        ),
    ],
)
def test_schedules_submit_valid_jobs(
    schedule: str, job: str, queue: str, dates: str, cron: str, timeout: tuple[str, int]
) -> None:
    props = _resolved(MonthlyBacktestOptions=BACKTEST)[schedule]["Properties"]
    assert props["ScheduleExpression"] == cron
    assert props["ScheduleExpressionTimezone"] == "America/New_York"
    target = props["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:batch:submitJob"
    # A submission the scheduler could not make lands in the schedule's own dead-letter queue.
    fake = _fake_attributes()
    assert target["DeadLetterConfig"] == {"Arn": fake[f"{schedule}DeadLetterQueue"]["Arn"]}
    # The universal target's input is the SubmitJob request (PascalCase, as the SDK names it).
    request = _schedule_request(schedule, MonthlyBacktestOptions=BACKTEST)
    assert request["jobQueue"] == fake[queue]["Ref"]
    assert request["jobDefinition"] == fake["SingleNodeJobDefinition"]["Ref"]
    # Per-job timeouts, from the schedule's own parameter.
    parameter, default = timeout
    assert request["timeout"] == {"attemptDurationSeconds": default}
    longer = _schedule_request(schedule, MonthlyBacktestOptions=BACKTEST, **{parameter: "999"})
    assert longer["timeout"] == {"attemptDurationSeconds": 999}
    parameters = request["parameters"]
    assert parameters["job"] == job
    # The relative dates resolve against the schedule's time, not the container's start.
    assert parameters["dates"] == dates
    assert parameters["input"] == "s3://acme-market-data/finbatch/data"
    # Each run writes under its own scheduled time: never into another run's folder.
    assert parameters["output"] == (
        f"s3://acme-results/finbatch/results/scheduled/{job}/<aws.scheduler.scheduled-time>"
    )
    # What `batch run` makes of them in the container (the scheduler has filled in its time).
    filled = {
        name: parameters[name].replace("<aws.scheduler.scheduled-time>", "2024-09-03T09:30:00Z")
        for name in PARAMETER_NAMES
    }
    argv = job_argv(*(filled[name] for name in PARAMETER_NAMES))
    assert argv[:5] == [job, "--input", filled["input"], "--output", filled["output"]]
    assert argv[5:] == [
        *dates.replace("<aws.scheduler.scheduled-time>", "2024-09-03T09:30:00Z").split(),
        "--calendar",
        "XNYS",
        *(BACKTEST.split() if job == "backtest" else []),
    ]


def test_tca_schedule_switch() -> None:
    assert _resolved()["DailyTca"]["Properties"]["State"] == "ENABLED"
    disabled = _resolved(DailyTcaSchedule="DISABLED")["DailyTca"]["Properties"]
    assert disabled["State"] == "DISABLED"


@pytest.mark.parametrize(
    ("options", "switch", "state"),
    [
        # Empty options would fail every firing (--strategy is required): created DISABLED.
        ("", "ENABLED", "DISABLED"),
        (BACKTEST, "ENABLED", "ENABLED"),
        (BACKTEST, "DISABLED", "DISABLED"),
        ("", "DISABLED", "DISABLED"),
    ],
)
def test_backtest_schedule_runs_only_with_options(options: str, switch: str, state: str) -> None:
    props = _resolved(MonthlyBacktestOptions=options, MonthlyBacktestSchedule=switch)
    assert props["MonthlyBacktest"]["Properties"]["State"] == state
    # The default is empty: a stack deployed without options never fails monthly.
    assert TEMPLATE["Parameters"]["MonthlyBacktestOptions"]["Default"] == ""


def test_backtest_options_parameter_accepts_options_only() -> None:
    declared = TEMPLATE["Parameters"]["MonthlyBacktestOptions"]
    pattern = re.compile(declared["AllowedPattern"])
    # CloudFormation matches AllowedPattern against the whole value.
    assert pattern.fullmatch("")
    assert pattern.fullmatch(BACKTEST)
    assert not pattern.fullmatch(" ")  # blank-but-not-empty would run with no strategy
    assert not pattern.fullmatch("sma-cross")
    # The documented example is the one the tests use.
    assert BACKTEST in " ".join(declared["Description"].split())


def test_backtest_options_follow_the_calendar() -> None:
    parameters = _schedule_request("MonthlyBacktest", MonthlyBacktestOptions=BACKTEST)["parameters"]
    assert job_argv(*(parameters[name] for name in PARAMETER_NAMES))[-8:] == [
        "--calendar",
        "XNYS",
        *BACKTEST.split(),
    ]


def test_backtest_schedule_on_spot_gets_more_attempts() -> None:
    request = _schedule_request("MonthlyBacktest", MonthlyBacktestOptions=BACKTEST)
    # The Spot strategy of the spec: the definition's rules, more attempts.
    assert request["retryStrategy"] == retry_strategy(JobDefinitionSpec(), spot=True)
    assert request["retryStrategy"]["attempts"] > JobDefinitionSpec().attempts
    # The on-demand TCA keeps the definition's strategy.
    assert "retryStrategy" not in _schedule_request("DailyTca")


@pytest.mark.parametrize("schedule", ["DailyTca", "MonthlyBacktest"])
def test_each_schedule_dead_letter_queue_alarms_to_the_alert_topic(schedule: str) -> None:
    resources = _resolved()
    fake = _fake_attributes()
    alarm = resources[f"{schedule}DeadLetterAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": fake[f"{schedule}DeadLetterQueue"]["QueueName"]}
    ]
    # One message is enough: alarm above 0.
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [fake["AlertTopic"]["Ref"]]


def test_log_group_has_a_retention() -> None:
    assert _resolved()["LogGroup"]["Properties"]["RetentionInDays"] == "90"
