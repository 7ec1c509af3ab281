"""The failure alerts: which Batch events the rule lets through, and what the e-mail says.

Events are replayed against the template's own rule pattern with moto's EventBridge matcher
(what moto uses to deliver events to a rule's targets: an independent judge of the pattern),
then formatted by the alert function (cluster/batch/alert.py, inlined in the template), whose
handler publishes through moto's SNS to an SQS subscriber.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.events.models import EventPattern

from cluster.batch import alert
from cluster.batch.template import TEMPLATE_PATH, load_template
from tests.test_deploy_template import QUEUE_ARN, _fake_attributes, _resolved

REGION = "us-east-1"
ANALYTICS = f"{QUEUE_ARN}AnalyticsQueue"
LOG_GROUP = "/aws/batch/finbatch"
OUTPUT = "s3://acme-results/finbatch/results/runs/mp-2024h1"


def _event(**detail: Any) -> dict[str, Any]:
    """A Batch Job State Change event as EventBridge delivers it."""
    return {
        "version": "0",
        "id": "c8f9c4b5-76e5-d76a-f980-7011e206042b",
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": "123456789012",
        "time": "2024-09-03T10:40:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "jobName": "market-performance-2024h1",
            "jobId": "4c7599ae-0a82-49aa-ba5a-4727fcce14a8",
            "jobQueue": ANALYTICS,
            "status": "FAILED",
            "statusReason": "Essential container in task exited",
            "parameters": {"job": "market-performance", "output": OUTPUT},
            **detail,
        },
    }


#: A multi-node job: the parent's event has no container; its attempts have the main node's.
MNP_PARENT = _event(
    nodeProperties={"numNodes": 4, "mainNode": 0},
    attempts=[
        {
            "container": {
                "exitCode": 137,
                "logStreamName": "finbatch/default/0a1b2c",
                "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/x/0a1b2c",
            },
            "statusReason": "Host EC2 (instance i-0a1b2c3d4e5f67890) terminated.",
        },
        {
            "container": {"exitCode": 1, "logStreamName": "finbatch/default/9f8e7d"},
            "statusReason": "Essential container in task exited",
        },
    ],
)
#: One node of that job: it reports its own change too.
MNP_NODE = _event(
    jobId="4c7599ae-0a82-49aa-ba5a-4727fcce14a8#2",
    nodeDetails={"nodeIndex": 2, "isMainNode": False},
    container={"exitCode": 143, "logStreamName": "finbatch/default/5d6e7f"},
)
#: The Spot fan-out: the array job, one of its children, and the merge that depends on it.
ARRAY_PARENT = _event(
    jobName="backtest-sweep-shards",
    jobId="7e1d2c3b-aaaa-4bbb-8ccc-0123456789ab",
    arrayProperties={"size": 4, "statusSummary": {"SUCCEEDED": 3, "FAILED": 1}},
    statusReason="Array Child Job failed",
    parameters={"job": "backtest", "output": "s3://acme-results/finbatch/results/runs/sweep"},
)
ARRAY_CHILD = _event(
    jobName="backtest-sweep-shards",
    jobId="7e1d2c3b-aaaa-4bbb-8ccc-0123456789ab:2",
    arrayProperties={"index": 2},
    container={"exitCode": 1, "logStreamName": "finbatch/default/aa11bb"},
    attempts=[{"container": {"exitCode": 1}}],
)
MERGE = _event(
    jobName="backtest-sweep-merge",
    jobId="0f0e0d0c-1111-4222-8333-444455556666",
    statusReason="Dependent Job failed",
    dependsOn=[{"jobId": "7e1d2c3b-aaaa-4bbb-8ccc-0123456789ab"}],
)
SUCCEEDED = _event(status="SUCCEEDED", statusReason="Essential container in task exited")
#: A single-node job whose first attempt lost its host (retried) and whose second exited 2.
SINGLE = _event(
    jobName="tca-daily",
    container={"exitCode": 2, "logStreamName": "finbatch/default/42ab"},
    attempts=[
        {"container": {"exitCode": 137}, "statusReason": "Host EC2 (instance i-0a) terminated."},
        {"container": {"exitCode": 2}, "statusReason": "Essential container in task exited"},
    ],
    parameters={"job": "tca", "output": "s3://acme-results/finbatch/results/scheduled/tca/x"},
)
#: Cancelled by the queue's time-limit action: it never ran, no attempt.
STUCK = _event(statusReason="Job cancelled: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY")
NO_REASON = _event()
del NO_REASON["detail"]["statusReason"]


def _pattern(**given: str) -> EventPattern:
    rule = _resolved(**given)["JobStateRule"]["Properties"]
    return EventPattern.load(json.dumps(rule["EventPattern"]))


@pytest.mark.parametrize(
    ("event", "alerts"),
    [
        (MNP_PARENT, True),
        (MNP_NODE, False),  # the parent's event alerts for the job
        (ARRAY_PARENT, True),
        (ARRAY_CHILD, False),  # the array's event alerts once for all its children
        (MERGE, False),  # failed only because the array did: the array's alert says it
        (SUCCEEDED, False),
        (SINGLE, True),
        (STUCK, True),
        (NO_REASON, True),  # a FAILED job without a reason still alerts
    ],
    ids=[
        "mnp-parent",
        "mnp-node",
        "array-parent",
        "array-child",
        "merge-of-failed-array",
        "succeeded",
        "single",
        "stuck-cancelled",
        "no-reason",
    ],
)
def test_rule_lets_through_one_event_per_failed_job(event: dict[str, Any], alerts: bool) -> None:
    assert _pattern().matches_event(event) is alerts
    # Summaries never come through this rule, whatever NotifyOnSuccess says.
    assert _pattern(NotifyOnSuccess="true").matches_event(event) is alerts


def test_rule_watches_this_stacks_queues_only() -> None:
    other = _event(jobQueue=ANALYTICS.replace("AnalyticsQueue", "someone-elses"))
    assert not _pattern().matches_event(other)
    for queue in ("RiskQueue", "AnalyticsQueue", "BacktestSpotQueue"):
        assert _pattern().matches_event(_event(jobQueue=f"{QUEUE_ARN}{queue}")), queue


def test_rule_invokes_the_alert_function() -> None:
    resources = _resolved()
    fake = _fake_attributes()
    (target,) = resources["JobStateRule"]["Properties"]["Targets"]
    assert target["Arn"] == fake["AlertFunction"]["Arn"]
    assert target["DeadLetterConfig"] == {"Arn": fake["AlertDeadLetterQueue"]["Arn"]}
    permission = resources["AlertFunctionPermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == fake["JobStateRule"]["Arn"]
    function = resources["AlertFunction"]["Properties"]
    assert function["Environment"]["Variables"] == {
        "TOPIC_ARN": fake["AlertTopic"]["Ref"],
        "LOG_GROUP": fake["LogGroup"]["Ref"],
    }
    assert function["Handler"] == "index.handler"


def test_the_template_inlines_this_module_verbatim() -> None:
    code = load_template()["Resources"]["AlertFunction"]["Properties"]["Code"]["ZipFile"]
    source = Path(alert.__file__)
    assert code == source.read_text(encoding="utf-8"), (
        f"{TEMPLATE_PATH.name}: AlertFunction's ZipFile must be {source} verbatim"
    )
    # CloudFormation's limit on inline code.
    assert len(code) <= 4096


# --------------------------------------------------------------------------------------------
# The message


def test_single_node_message() -> None:
    subject, body = alert.alert(SINGLE, LOG_GROUP)
    assert subject == "finbatch tca-daily FAILED"
    job = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
    assert body.splitlines() == [
        "finbatch job tca-daily FAILED.",
        "Queue: AnalyticsQueue",
        "Exit code: 2 (bad input or arguments), after 2 attempt(s)",
        "Status reason: Essential container in task exited",
        "Run folder: s3://acme-results/finbatch/results/scheduled/tca/x",
        f"Log stream: finbatch/default/42ab in {LOG_GROUP}",
        # The console's escaping of the names: '/' is %2F, written $252F.
        "Logs: https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#logsV2:log-groups/log-group/$252Faws$252Fbatch$252Ffinbatch"
        "/log-events/finbatch$252Fdefault$252F42ab",
        f"Console: https://us-east-1.console.aws.amazon.com/batch/home?region=us-east-1"
        f"#jobs/detail/{job}",
        f"Job id: {job}",
    ]


def test_multinode_message_reads_the_last_attempt() -> None:
    _, body = alert.alert(MNP_PARENT, LOG_GROUP)
    lines = body.splitlines()
    # The parent's event has no container: exit code and log stream of the last attempt (the
    # first attempt lost its host and exited 137; that is not what failed the job).
    assert lines[2] == "Exit code: 1 (failure), after 2 attempt(s)"
    assert lines[4] == f"Run folder: {OUTPUT}"
    assert lines[5] == f"Log stream: finbatch/default/9f8e7d in {LOG_GROUP}"


def test_array_message_counts_the_failed_children() -> None:
    _, body = alert.alert(ARRAY_PARENT, LOG_GROUP)
    lines = body.splitlines()
    assert lines[0] == "finbatch job backtest-sweep-shards FAILED."
    assert lines[2] == "Array job: 1 of 4 children failed, after 0 attempt(s)"
    assert lines[4] == "Run folder: s3://acme-results/finbatch/results/runs/sweep"
    assert lines[5] == f"Log group: {LOG_GROUP}"  # no stream of its own: the children's


def test_stuck_job_message_says_it_never_ran() -> None:
    _, body = alert.alert(STUCK, LOG_GROUP)
    lines = body.splitlines()
    assert lines[2] == (
        "Exit code: none (the container never ran or was stopped), after 0 attempt(s)"
    )
    assert lines[3] == "Status reason: Job cancelled: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (75, "storage or database kept failing"),
        (137, "killed: out of memory or SIGKILL"),
        (9, "failure"),
    ],
)
def test_exit_codes_are_explained(code: int, meaning: str) -> None:
    event = _event(container={"exitCode": code}, attempts=[{"container": {"exitCode": code}}])
    assert alert.alert(event, LOG_GROUP)[1].splitlines()[2] == (
        f"Exit code: {code} ({meaning}), after 1 attempt(s)"
    )


@pytest.fixture
def sns_to_sqs() -> Iterator[tuple[str, str]]:
    """An SNS topic with an SQS subscriber (raw delivery), in moto."""
    with pytest.MonkeyPatch.context() as env, mock_aws():
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="finbatch-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        env.setenv("TOPIC_ARN", topic)
        env.setenv("LOG_GROUP", LOG_GROUP)
        yield topic, queue


def test_handler_publishes_the_message(sns_to_sqs: tuple[str, str]) -> None:
    _, queue = sns_to_sqs
    subject = "finbatch market-performance-2024h1 FAILED"
    assert alert.handler(MNP_PARENT, None) == {"subject": subject}
    messages = boto3.client("sqs").receive_message(QueueUrl=queue, WaitTimeSeconds=0)["Messages"]
    envelope = json.loads(messages[0]["Body"])
    assert envelope["Subject"] == subject
    assert envelope["Message"] == alert.alert(MNP_PARENT, LOG_GROUP)[1]
