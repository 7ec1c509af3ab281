"""What the CloudFormation template promises, read from the resolved template.

cfn-lint checks that the template is valid CloudFormation; these tests check that it is the
deployment docs/aws.md describes: who may reach the nodes, what each role may do, where each
queue runs, when the schedules fire and what they submit, and what an alert says.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from cluster.batch.command import PARAMETER_NAMES, job_argv
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
            attrs.update(Ref="/aws/batch/finbatch", Arn=f"{arn}:*")
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
    on_demand = environments["OnDemandEnvironment"]["ComputeResources"]
    spot = environments["SpotEnvironment"]["ComputeResources"]
    # MNP: on-demand EC2 only, one instance type, a cluster placement group in one subnet.
    assert on_demand["Type"] == "EC2"
    assert on_demand["PlacementGroup"] == _fake_attributes()["PlacementGroup"]["Ref"]
    assert len(on_demand["InstanceTypes"]) == 1
    assert on_demand["Subnets"] == [REQUIRED["Subnets"].split(",")[0]]
    assert TEMPLATE["Resources"]["PlacementGroup"]["Properties"]["Strategy"] == "cluster"
    assert spot["Type"] == "SPOT"
    assert spot["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert len(spot["InstanceTypes"]) >= 4
    assert spot["Subnets"] == REQUIRED["Subnets"].split(",")
    for resources in (on_demand, spot):
        assert resources["MinvCpus"] == 0  # nothing runs, nothing is paid
        assert resources["MaxvCpus"] == "256"


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
    assert environment["risk"] == environment["analytics"] == [fake["OnDemandEnvironment"]["Ref"]]
    assert environment["backtest-spot"] == [fake["SpotEnvironment"]["Ref"]]
    prefixed = _of_type(_resolved(NamePrefix="dev-"), "AWS::Batch::JobQueue")
    assert {q["JobQueueName"] for q in prefixed.values()} == {
        "dev-risk",
        "dev-analytics",
        "dev-backtest-spot",
    }


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
    assert rest == {
        "cloudwatch:PutMetricData",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sns:Publish",
    }
    # The end-of-job summary goes to the stack's own alert topic, and nowhere else.
    publish = next(s for s in statements if _actions(s) == {"sns:Publish"})
    assert publish["Resource"] == _fake_attributes()["AlertTopic"]["Ref"]
    metrics = next(s for s in statements if _actions(s) == {"cloudwatch:PutMetricData"})
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "finbatch"}}
    assert not any("*" in a for s in statements for a in _actions(s))


def test_scheduler_role_submits_to_these_queues_and_definitions_only() -> None:
    statements = _statements(_resolved()["SchedulerRole"]["Properties"])
    assert [s["Action"] for s in statements] == ["batch:SubmitJob"]
    fake = _fake_attributes()
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
    }


def _submit_shape() -> Any:
    model = botocore.session.get_session().get_service_model("batch")
    return model.operation_model("SubmitJob").input_shape


@pytest.mark.parametrize(
    ("schedule", "job", "queue", "dates", "cron"),
    [
        (
            "DailyTca",
            "tca",
            "AnalyticsQueue",
            "--date previous-session",
            "cron(30 5 ? * MON-FRI *)",
        ),
        (
            "MonthlyBacktest",
            "backtest",
            "BacktestSpotQueue",
            "--as-of-month previous",
            "cron(0 6 1-7 * ? *)",
        ),
    ],
)
def test_schedules_submit_valid_jobs(
    schedule: str, job: str, queue: str, dates: str, cron: str
) -> None:
    props = _resolved()[schedule]["Properties"]
    assert props["ScheduleExpression"] == cron
    assert props["ScheduleExpressionTimezone"] == "America/New_York"
    assert props["State"] == "ENABLED"
    assert (
        _resolved(**{TEMPLATE["Resources"][schedule]["Properties"]["State"]["Ref"]: "DISABLED"})[
            schedule
        ]["Properties"]["State"]
        == "DISABLED"
    )
    target = props["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:batch:submitJob"
    # The universal target's input is the SubmitJob request (PascalCase, as the SDK names it).
    request = to_request(json.loads(target["Input"]), "batch", "SubmitJob")
    report = ParamValidator().validate(request, _submit_shape())
    assert not report.has_errors(), report.generate_report()
    fake = _fake_attributes()
    assert request["jobQueue"] == fake[queue]["Ref"]
    assert request["jobDefinition"] == fake["SingleNodeJobDefinition"]["Ref"]
    parameters = request["parameters"]
    assert parameters["job"] == job
    assert parameters["dates"] == dates
    assert parameters["input"] == "s3://acme-market-data/finbatch/data"
    # Each run writes under its own scheduled time: never into another run's folder.
    assert parameters["output"] == (
        f"s3://acme-results/finbatch/results/scheduled/{job}/<aws.scheduler.scheduled-time>"
    )
    # What `batch run` makes of them in the container: the job's own command line.
    assert job_argv(*(parameters[name] for name in PARAMETER_NAMES)) == [
        job,
        "--input",
        "s3://acme-market-data/finbatch/data",
        "--output",
        parameters["output"],
        *dates.split(),
        "--calendar",
        "XNYS",
    ]


def test_backtest_schedule_options_follow_the_calendar() -> None:
    props = _resolved(MonthlyBacktestOptions="--strategy momentum")["MonthlyBacktest"]
    parameters = json.loads(props["Properties"]["Target"]["Input"])["Parameters"]
    assert job_argv(*(parameters[name] for name in PARAMETER_NAMES))[-4:] == [
        "--calendar",
        "XNYS",
        "--strategy",
        "momentum",
    ]


def _rule(**given: str) -> dict[str, Any]:
    return dict(_resolved(**given)["JobStateRule"]["Properties"])


def test_alert_rule_pattern() -> None:
    pattern = _rule()["EventPattern"]
    assert pattern["source"] == ["aws.batch"]
    assert pattern["detail-type"] == ["Batch Job State Change"]
    assert pattern["detail"]["status"] == ["FAILED"]
    fake = _fake_attributes()
    assert sorted(pattern["detail"]["jobQueue"]) == sorted(
        fake[q]["Ref"] for q in ("RiskQueue", "AnalyticsQueue", "BacktestSpotQueue")
    )
    assert _rule(NotifyOnSuccess="true")["EventPattern"]["detail"]["status"] == [
        "FAILED",
        "SUCCEEDED",
    ]
    subscription = _resolved()["AlertTopic"]["Properties"]["Subscription"]
    assert subscription == [{"Protocol": "email", "Endpoint": REQUIRED["AlertEmail"]}]


def test_log_group_has_a_retention() -> None:
    assert _resolved()["LogGroup"]["Properties"]["RetentionInDays"] == "90"


def _render(transformer: dict[str, Any], event: dict[str, Any]) -> str:
    """An EventBridge input transformer on a text template of quoted lines: each <name> is the
    value at its JSON path (several matches: a JSON array), each line loses its quotes."""
    from jsonpath_ng import parse

    text = transformer["InputTemplate"]
    for name, path in transformer["InputPathsMap"].items():
        values = [match.value for match in parse(path).find(event)]
        value = values[0] if len(values) == 1 and "[*]" not in path else values
        text = text.replace(f"<{name}>", value if isinstance(value, str) else json.dumps(value))
    lines = [line.strip() for line in text.strip().splitlines()]
    assert all(line.startswith('"') and line.endswith('"') for line in lines), lines
    return "\n".join(line[1:-1] for line in lines)


def test_alert_message_is_readable() -> None:
    queue = _fake_attributes()["AnalyticsQueue"]["Ref"]
    # A single-node job whose first attempt lost its host (retried) and whose second exited 2.
    event = {
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "detail": {
            "jobName": "tca-daily",
            "jobId": "4c7599ae-0a82-49aa-ba5a-4727fcce14a8",
            "jobQueue": queue,
            "status": "FAILED",
            "statusReason": "Essential container in task exited",
            "attempts": [
                {
                    "container": {"exitCode": 137},
                    "statusReason": "Host EC2 (instance i-0a) terminated.",
                },
                {
                    "container": {"exitCode": 2},
                    "statusReason": "Essential container in task exited",
                },
            ],
            "container": {"exitCode": 2},
        },
    }
    target = _rule()["Targets"][0]
    assert target["Arn"] == _fake_attributes()["AlertTopic"]["Ref"]
    message = _render(target["InputTransformer"], event)
    lines = message.splitlines()
    assert lines[0] == "finbatch job tca-daily FAILED."
    assert lines[1] == f"Queue: {queue}"
    assert lines[2] == "Status reason: Essential container in task exited"
    assert lines[3].startswith("Exit code of the last attempt: 2 (all attempts in order: [137, 2];")
    assert "4c7599ae-0a82-49aa-ba5a-4727fcce14a8" in lines[4]
    assert "/aws/batch/finbatch" in lines[4]
