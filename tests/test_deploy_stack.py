"""The template's resources, created in moto (in-process) through the AWS APIs, then used.

moto's CloudFormation cannot deploy this template: it has no AWS::EC2::PlacementGroup,
AWS::SNS::TopicPolicy, AWS::Scheduler::Schedule or AWS::EC2::LaunchTemplate, it requires a
ServiceRole on AWS::Batch::ComputeEnvironment (the template relies on Batch's service-linked
role, which the test names for moto's API too) and it
registers every AWS::Batch::JobDefinition as type ``container`` (so a multinode one is lost).
So each resource is created here the way CloudFormation would: resolved from the template
(cluster/batch/template.py), in dependency order, through its own API call; the request
shapes are botocore's. Then jobs are submitted to the created queues, and the schedules'
SubmitJob inputs are sent as they are.

Skipped: AWS::EC2::PlacementGroup only (moto implements no CreatePlacementGroup either); its
properties are checked, and the compute environment is created with its name. moto accepts but
does not keep a queue's jobStateTimeLimitActions: tests/test_deploy_template.py checks them.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.events.models import EventPattern

from cluster.batch.template import (
    Context,
    conditions,
    load_template,
    parameter_values,
    present,
    resolve,
    to_request,
)
from finbatch.batch.gateway import BatchGateway
from tests.conftest import run_cli
from tests.test_deploy_alerts import ARRAY_CHILD, MERGE, MNP_NODE, MNP_PARENT
from tests.test_deploy_jobdef import REQUIRED
from tests.test_deploy_template import BACKTEST

REGION = "us-east-1"
STACK = "finbatch"
Creator = Callable[["MotoStack", str, dict[str, Any]], dict[str, Any]]


def _references(node: Any) -> set[str]:
    """Logical ids or parameters a template node refers to (Ref, GetAtt, ${...} in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found.update(v.split(".")[0] for v in re.findall(r"\$\{([^!}][^}]*)\}", text))
                found |= _references(value if isinstance(value, str) else value[1])
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


class MotoStack:
    """The template deployed resource by resource through boto3 clients (moto in-process)."""

    def __init__(self, template: dict[str, Any], given: dict[str, str]) -> None:
        self.template = template
        values = parameter_values(template, given)
        values.update(
            {
                "AWS::Region": REGION,
                "AWS::AccountId": boto3.client("sts").get_caller_identity()["Account"],
                "AWS::Partition": "aws",
                "AWS::StackName": STACK,
            }
        )
        self.values = values
        self.conditions = conditions(template, values)
        self.created: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.service_role: str | None = None

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def name(self, logical: str) -> str:
        return f"{STACK}-{logical}"

    def deploy(self) -> None:
        resources = present(self.template, self.conditions)
        pending = dict(resources)
        while pending:
            ready = [
                name
                for name, body in pending.items()
                if not (_references(body.get("Properties", {})) & set(pending))
            ]
            assert ready, f"circular references among {sorted(pending)}"
            for name in sorted(ready):
                body = pending.pop(name)
                ctx = Context(self.values, self.created, self.conditions)
                props = resolve(body.get("Properties", {}), ctx)
                self.created[name] = CREATORS[body["Type"]](self, name, props)
                self.order.append(name)


def _placement_group(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    # Skipped: moto has no CreatePlacementGroup. Its name is what the compute environment
    # refers to, and the on-demand environment is created with it.
    assert props == {"Strategy": "cluster"}
    return {"Ref": stack.name(logical)}


def _security_group(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    group = stack.client("ec2").create_security_group(
        GroupName=stack.name(logical), Description=props["GroupDescription"], VpcId=props["VpcId"]
    )["GroupId"]
    return {"Ref": group, "GroupId": group}


def _ingress(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    pair = {"GroupId": props["SourceSecurityGroupId"], "Description": props["Description"]}
    stack.client("ec2").authorize_security_group_ingress(
        GroupId=props["GroupId"],
        IpPermissions=[
            {
                "IpProtocol": props["IpProtocol"],
                "FromPort": int(props["FromPort"]),
                "ToPort": int(props["ToPort"]),
                "UserIdGroupPairs": [pair],
            }
        ],
    )
    return {"Ref": logical}


def _role(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    iam, name = stack.client("iam"), stack.name(logical)
    arn = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
        Description=props.get("Description", ""),
    )["Role"]["Arn"]
    for policy in props.get("ManagedPolicyArns", []):
        iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    for policy in props.get("Policies", []):
        iam.put_role_policy(
            RoleName=name,
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
    return {"Ref": name, "Arn": arn}


def _instance_profile(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    iam, name = stack.client("iam"), stack.name(logical)
    arn = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"]
    for role in props["Roles"]:
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
    return {"Ref": name, "Arn": arn}


def _log_group(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    logs, name = stack.client("logs"), props["LogGroupName"]
    logs.create_log_group(logGroupName=name, kmsKeyId=props["KmsKeyId"])
    logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    arn = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["arn"]
    return {"Ref": name, "Arn": arn}


def _service_linked_role(stack: MotoStack) -> str:
    """Batch's service-linked role: what a compute environment without ServiceRole uses. AWS
    creates it on first use; moto needs it named explicitly."""
    if stack.service_role is None:
        role = stack.client("iam").create_service_linked_role(AWSServiceName="batch.amazonaws.com")
        stack.service_role = str(role["Role"]["Arn"])
    return stack.service_role


def _batch(operation: str, name_member: str | None, arn_key: str) -> Creator:
    def create(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
        if name_member:  # a name CloudFormation generates when the template gives none
            props = {name_member: stack.name(logical), **props}
        if operation == "CreateComputeEnvironment":
            assert "ServiceRole" not in props  # the template relies on the service-linked role
            props = {**props, "ServiceRole": _service_linked_role(stack)}
        request = to_request(props, "batch", operation)
        method = re.sub(r"(?<!^)([A-Z])", r"_\1", operation).lower()
        arn = getattr(stack.client("batch"), method)(**request)[arn_key]
        return {"Ref": arn, "Arn": arn}

    return create


def _topic(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    sns = stack.client("sns")
    attributes = {"DisplayName": props["DisplayName"], "KmsMasterKeyId": props["KmsMasterKeyId"]}
    arn = sns.create_topic(Name=stack.name(logical), Attributes=attributes)["TopicArn"]
    for subscription in props["Subscription"]:
        sns.subscribe(
            TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
        )
    return {"Ref": arn, "TopicArn": arn}


def _topic_policy(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    for topic in props["Topics"]:
        stack.client("sns").set_topic_attributes(
            TopicArn=topic,
            AttributeName="Policy",
            AttributeValue=json.dumps(props["PolicyDocument"]),
        )
    return {"Ref": logical}


def _rule(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    events, name = stack.client("events"), stack.name(logical)
    arn = events.put_rule(
        Name=name,
        EventPattern=json.dumps(props["EventPattern"]),
        State=props["State"],
        Description=props["Description"],
    )["RuleArn"]
    request = to_request({"Rule": name, "Targets": props["Targets"]}, "events", "PutTargets")
    assert events.put_targets(**request)["FailedEntryCount"] == 0
    return {"Ref": name, "Arn": arn}


def _schedule(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    request = to_request(props, "scheduler", "CreateSchedule")
    arn = stack.client("scheduler").create_schedule(**request)["ScheduleArn"]
    return {"Ref": props["Name"], "Arn": arn}


def _key(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    kms = stack.client("kms")
    key = kms.create_key(Description=props["Description"], Policy=json.dumps(props["KeyPolicy"]))
    key_id = key["KeyMetadata"]["KeyId"]
    if props["EnableKeyRotation"]:
        kms.enable_key_rotation(KeyId=key_id)
    return {"Ref": key_id, "Arn": key["KeyMetadata"]["Arn"]}


def _launch_template(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    request = to_request(
        {"LaunchTemplateName": stack.name(logical), **props}, "ec2", "CreateLaunchTemplate"
    )
    made = stack.client("ec2").create_launch_template(**request)["LaunchTemplate"]
    return {
        "Ref": made["LaunchTemplateId"],
        "LatestVersionNumber": str(made["LatestVersionNumber"]),
    }


def _queue(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    sqs, name = stack.client("sqs"), stack.name(logical)
    attributes = {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in props.items()
    }
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return {"Ref": url, "Arn": arn["QueueArn"], "QueueName": name}


def _queue_policy(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    for url in props["Queues"]:
        stack.client("sqs").set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
        )
    return {"Ref": logical}


def _alarm(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    name = stack.name(logical)
    request = to_request({"AlarmName": name, **props}, "cloudwatch", "PutMetricAlarm")
    stack.client("cloudwatch").put_metric_alarm(**request)
    return {"Ref": name}


def _function(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    # CloudFormation zips inline code as index.py.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("index.py", props["Code"]["ZipFile"])
    code = {"ZipFile": archive.getvalue()}
    request = to_request({**props, "Code": {}}, "lambda", "CreateFunction")
    made = stack.client("lambda").create_function(**{**request, "Code": code})
    return {"Ref": made["FunctionName"], "Arn": made["FunctionArn"]}


def _permission(stack: MotoStack, logical: str, props: dict[str, Any]) -> dict[str, Any]:
    request = to_request({"StatementId": logical, **props}, "lambda", "AddPermission")
    stack.client("lambda").add_permission(**request)
    return {"Ref": logical}


#: The only resource type moto cannot create, through CloudFormation or its API.
SKIPPED = {"AWS::EC2::PlacementGroup"}
CREATORS: dict[str, Creator] = {
    "AWS::EC2::PlacementGroup": _placement_group,
    "AWS::EC2::SecurityGroup": _security_group,
    "AWS::EC2::SecurityGroupIngress": _ingress,
    "AWS::IAM::Role": _role,
    "AWS::IAM::InstanceProfile": _instance_profile,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::Batch::ComputeEnvironment": _batch(
        "CreateComputeEnvironment", "ComputeEnvironmentName", "computeEnvironmentArn"
    ),
    "AWS::Batch::JobQueue": _batch("CreateJobQueue", None, "jobQueueArn"),
    "AWS::Batch::JobDefinition": _batch("RegisterJobDefinition", None, "jobDefinitionArn"),
    "AWS::SNS::Topic": _topic,
    "AWS::SNS::TopicPolicy": _topic_policy,
    "AWS::Events::Rule": _rule,
    "AWS::Scheduler::Schedule": _schedule,
    "AWS::KMS::Key": _key,
    "AWS::EC2::LaunchTemplate": _launch_template,
    "AWS::SQS::Queue": _queue,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::Lambda::Function": _function,
    "AWS::Lambda::Permission": _permission,
}


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    """moto in this process; no endpoint override (that is for the S3 server fixture)."""
    config: Any = {
        "batch": {"use_docker": False},
        # The AWS managed policies the roles attach (moto loads them on request).
        "iam": {"load_aws_managed_policies": True},
    }
    with pytest.MonkeyPatch.context() as env, mock_aws(config=config):
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        yield


@pytest.fixture(scope="module")
def stack(aws: None) -> MotoStack:
    """The template deployed once for the module (the tests only read it and submit jobs)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    # Every optional part on (the summary topic, the secret, the backtest schedule): every
    # resource of the template is created.
    given = {
        **REQUIRED,
        "VpcId": vpc,
        "Subnets": ",".join(subnets),
        "NotifyOnSuccess": "true",
        "DbSecretName": "prod/finbatch-rds",
        "MonthlyBacktestOptions": BACKTEST,
    }
    deployed = MotoStack(load_template(), given)
    deployed.deploy()
    return deployed


def test_every_resource_of_the_template_is_created(stack: MotoStack) -> None:
    assert set(stack.created) == set(stack.template["Resources"])
    assert set(CREATORS) == {b["Type"] for b in stack.template["Resources"].values()}
    batch = stack.client("batch")
    queues = {q["jobQueueName"]: q for q in batch.describe_job_queues()["jobQueues"]}
    assert {n: q["priority"] for n, q in queues.items()} == {
        "risk": 100,
        "analytics": 50,
        "backtest-spot": 10,
    }
    environments = {
        e["computeEnvironmentArn"]: e
        for e in batch.describe_compute_environments()["computeEnvironments"]
    }
    on_demand = environments[stack.created["OnDemandEnvironment"]["Ref"]]["computeResources"]
    risk = environments[stack.created["RiskEnvironment"]["Ref"]]["computeResources"]
    spot = environments[stack.created["SpotEnvironment"]["Ref"]]["computeResources"]
    assert on_demand["type"] == risk["type"] == "EC2"
    assert on_demand["placementGroup"] == stack.created["PlacementGroup"]["Ref"]
    assert spot["type"] == "SPOT"
    assert spot["allocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    for name, arn in (("risk", risk), ("analytics", on_demand), ("backtest-spot", spot)):
        order = queues[name]["computeEnvironmentOrder"]
        env = [e for a, e in environments.items() if a == order[0]["computeEnvironment"]]
        assert env[0]["computeResources"] == arn, name
    definitions = {
        d["jobDefinitionName"]: d for d in batch.describe_job_definitions()["jobDefinitions"]
    }
    assert definitions["finbatch-mnp"]["type"] == "multinode"
    assert definitions["finbatch"]["type"] == "container"
    assert definitions["finbatch"]["parameters"]["input"] == "s3://acme-market-data/finbatch/data"


def test_security_group_admits_its_own_members_only(stack: MotoStack) -> None:
    group_id = stack.created["NodeSecurityGroup"]["GroupId"]
    group = stack.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    rules = group["IpPermissions"]
    assert {(r["FromPort"], r["ToPort"]) for r in rules} == {(8786, 8787), (32768, 65535)}
    for rule in rules:
        assert rule["IpRanges"] == [] and rule["Ipv6Ranges"] == []
        assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [group_id]


def test_submit_to_the_created_queues(stack: MotoStack) -> None:
    gateway = BatchGateway(stack.client("batch"))
    multinode = gateway.submit_job(
        {
            "jobName": "market-performance-2024",
            "jobQueue": stack.created["AnalyticsQueue"]["Ref"],
            "jobDefinition": stack.created["MultiNodeJobDefinition"]["Ref"],
            "parameters": {
                "job": "market-performance",
                "output": "s3://acme-results/finbatch/results/runs/mp-2024",
                "dates": "--start 2024-01-02 --end 2024-06-28",
            },
            "nodeOverrides": {"numNodes": 4},
        }
    )
    single = gateway.submit_job(
        {
            "jobName": "backtest-adhoc",
            "jobQueue": stack.created["BacktestSpotQueue"]["Ref"],
            "jobDefinition": stack.created["SingleNodeJobDefinition"]["Ref"],
            "parameters": {"job": "backtest", "output": "s3://acme-results/finbatch/results/b1"},
        }
    )
    jobs = stack.client("batch").describe_jobs(jobs=[multinode["jobId"], single["jobId"]])["jobs"]
    by_name = {job["jobName"]: job for job in jobs}
    assert by_name["market-performance-2024"]["jobQueue"] == stack.created["AnalyticsQueue"]["Ref"]
    assert by_name["backtest-adhoc"]["jobQueue"] == stack.created["BacktestSpotQueue"]["Ref"]
    # The submitted parameters override the definition's defaults, the others stay.
    parameters = by_name["market-performance-2024"]["parameters"]
    assert parameters["dates"] == "--start 2024-01-02 --end 2024-06-28"
    assert parameters["input"] == "s3://acme-market-data/finbatch/data"
    assert parameters["options"] == "none"


def test_the_schedules_inputs_submit_as_they_are(stack: MotoStack) -> None:
    scheduler = stack.client("scheduler")
    gateway = BatchGateway(stack.client("batch"))
    for logical in ("DailyTca", "MonthlyBacktest"):
        schedule = scheduler.get_schedule(Name=stack.created[logical]["Ref"])
        assert schedule["State"] == "ENABLED"
        assert schedule["ScheduleExpressionTimezone"] == "America/New_York"
        target = schedule["Target"]
        assert target["RoleArn"] == stack.created["SchedulerRole"]["Arn"]
        dead_letters = stack.created[f"{logical}DeadLetterQueue"]["Arn"]
        assert target["DeadLetterConfig"] == {"Arn": dead_letters}
        # What EventBridge Scheduler does at run time: fill in the context attributes.
        text = target["Input"].replace("<aws.scheduler.scheduled-time>", "2024-09-03T09:30:00Z")
        request = to_request(json.loads(text), "batch", "SubmitJob")
        job_id = gateway.submit_job(request)["jobId"]
        job = stack.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
        assert job["parameters"]["output"].endswith("/2024-09-03T09:30:00Z")
        assert job["parameters"]["dates"].endswith(" --today 2024-09-03T09:30:00Z")


def test_alert_rule_matches_failed_jobs_of_these_queues_only(stack: MotoStack) -> None:
    events = stack.client("events")
    rule = events.describe_rule(Name=stack.created["JobStateRule"]["Ref"])
    queue = stack.created["RiskQueue"]["Ref"]

    def matches(event: dict[str, Any], **detail: Any) -> bool:
        replayed = {**event, "detail": {**event["detail"], "jobQueue": queue, **detail}}
        # moto implements no TestEventPattern call; its rule matcher (what delivers events to
        # a rule's targets) is the independent judge.
        return bool(EventPattern.load(rule["EventPattern"]).matches_event(replayed))

    assert matches(MNP_PARENT)
    # Summaries have their own topic: a SUCCEEDED job never comes through, even with
    # NotifyOnSuccess=true (this stack).
    assert not matches(MNP_PARENT, status="SUCCEEDED")
    assert not matches(MNP_PARENT, jobQueue=queue.replace("risk", "someone-elses"))
    for event in (MNP_NODE, ARRAY_CHILD, MERGE):
        assert not matches(event), event["detail"]["jobId"]
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == stack.created["AlertFunction"]["Arn"]
    assert target["DeadLetterConfig"] == {"Arn": stack.created["AlertDeadLetterQueue"]["Arn"]}
    function = stack.client("lambda").get_function(
        FunctionName=stack.created["AlertFunction"]["Ref"]
    )
    variables = function["Configuration"]["Environment"]["Variables"]
    assert variables["TOPIC_ARN"] == stack.created["AlertTopic"]["Ref"]


def test_topics_are_encrypted_and_separate(stack: MotoStack) -> None:
    sns = stack.client("sns")
    key = stack.created["StackKey"]["Ref"]
    for topic in ("AlertTopic", "SummaryTopic"):
        arn = stack.created[topic]["Ref"]
        attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        assert attributes["KmsMasterKeyId"] == key, topic
        subscriptions = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [
            ("email", "ops@example.com")
        ]
    # The jobs send their summaries to the summary topic, never to the alert topic.
    definition = stack.client("batch").describe_job_definitions(jobDefinitionName="finbatch")
    environment = {
        e["name"]: e["value"]
        for e in definition["jobDefinitions"][0]["containerProperties"]["environment"]
    }
    assert environment["FINBATCH_SUMMARY_TOPIC"] == stack.created["SummaryTopic"]["Ref"]
    assert stack.client("kms").get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]
    group = stack.client("logs").describe_log_groups(logGroupNamePrefix="/aws/batch/")
    assert group["logGroups"][0]["kmsKeyId"] == stack.created["StackKey"]["Arn"]


def test_dead_letter_alarms(stack: MotoStack) -> None:
    alarms = stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    watched = {
        a["Dimensions"][0]["Value"]: a["AlarmActions"]
        for a in alarms
        if a["Namespace"] == "AWS/SQS"
    }
    queues = ("DailyTcaDeadLetterQueue", "MonthlyBacktestDeadLetterQueue", "AlertDeadLetterQueue")
    assert watched == {
        stack.created[q]["QueueName"]: [stack.created["AlertTopic"]["Ref"]] for q in queues
    }


def test_launch_template_blocks_the_metadata_service(stack: MotoStack) -> None:
    versions = stack.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=stack.created["LaunchTemplate"]["Ref"]
    )["LaunchTemplateVersions"]
    options = versions[0]["LaunchTemplateData"]["MetadataOptions"]
    assert (options["HttpTokens"], options["HttpPutResponseHopLimit"]) == ("required", 1)


def test_cli_registers_a_definition(aws: None) -> None:
    result = run_cli(["batch", "job-definition", "--nodes", "3", "--register", "--name", "adhoc"])
    assert result.code == 0, result.stderr
    arn = re.search(r"registered (\S+)", result.stderr)
    assert arn and arn.group(1).endswith(":job-definition/adhoc-mnp:1")
    definitions = boto3.client("batch").describe_job_definitions(jobDefinitionName="adhoc-mnp")
    assert definitions["jobDefinitions"][0]["type"] == "multinode"
