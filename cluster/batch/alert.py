"""The failure alert of a finbatch job, from AWS Batch's "Job State Change" event.

The stack's rule passes each FAILED job here (not the nodes of a multi-node job, not an array's
children, not a merge failed by its dependency: the rule's pattern leaves them out). The
template inlines this file as the alert function's code, so it uses the standard library only
(boto3 comes with the Lambda runtime) and stays under CloudFormation's 4,096 characters.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

MEANING = {
    1: "failure",
    2: "bad input or arguments",
    75: "storage or database kept failing",
    137: "killed: out of memory or SIGKILL",
    143: "stopped: timeout or cancel",
}


def _logs_link(region: str, group: str, stream: str) -> str:
    def part(text: str) -> str:  # the console's own escaping: '%' written as '$25'
        return quote(text, safe="").replace("%", "$25")

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{part(group)}/log-events/{part(stream)}"
    )


def alert(event: dict[str, Any], log_group: str) -> tuple[str, str]:
    """(subject, body) of the e-mail for one FAILED job's event.

    The exit code and log stream are the job's, else its last attempt's: a multi-node job's
    event has no container of its own (its main node's last attempt has them).
    """
    d, region = event["detail"], event.get("region", "")
    job_id, name = d.get("jobId", "?"), d.get("jobName", "?")
    attempts = d.get("attempts") or [{}]
    last = attempts[-1].get("container") or {}
    own = d.get("container") or {}
    code = own.get("exitCode", last.get("exitCode"))
    stream = own.get("logStreamName") or last.get("logStreamName")
    reason = d.get("statusReason") or attempts[-1].get("statusReason") or "none given"
    array = d.get("arrayProperties") or {}
    if "size" in array:
        failed = (array.get("statusSummary") or {}).get("FAILED", "?")
        code_line = f"Array job: {failed} of {array['size']} children failed"
    elif code is None:
        code_line = "Exit code: none (the container never ran or was stopped)"
    else:
        code_line = f"Exit code: {code} ({MEANING.get(code, 'failure')})"
    output = (d.get("parameters") or {}).get("output", "not given")
    console = f"https://{region}.console.aws.amazon.com/batch/home?region={region}"
    lines = [
        f"finbatch job {name} FAILED.",
        f"Queue: {str(d.get('jobQueue', '?')).rsplit('/', 1)[-1]}",
        f"{code_line}, after {len(d.get('attempts') or [])} attempt(s)",
        f"Status reason: {reason}",
        f"Run folder: {output}",
        f"Log stream: {stream} in {log_group}" if stream else f"Log group: {log_group}",
    ]
    if stream:
        lines.append(f"Logs: {_logs_link(region, log_group, stream)}")
    lines += [f"Console: {console}#jobs/detail/{job_id}", f"Job id: {job_id}"]
    return f"finbatch {name} FAILED"[:100], "\n".join(lines)


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Lambda entry point: publish the alert to ``TOPIC_ARN``."""
    import boto3

    subject, body = alert(event, os.environ["LOG_GROUP"])
    sns = boto3.client("sns")
    sns.publish(TopicArn=os.environ["TOPIC_ARN"], Subject=subject, Message=body)
    return {"subject": subject}
