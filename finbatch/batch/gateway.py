"""The only code that calls AWS Batch: a thin wrapper over a boto3 client.

Requests are built elsewhere by pure functions (:mod:`cluster.batch.jobdef`); here they are
sent as they are. Throttling and transient errors are retried by botocore's ``standard`` retry
mode, not by hand-made loops; what still fails becomes a :class:`BatchError` naming the call.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from analytics.errors import FinbatchError, InputError

#: botocore's standard mode: exponential backoff with jitter on throttling and 5xx errors.
RETRIES = Config(retries={"mode": "standard", "max_attempts": 8})


NO_REGION = (
    "no AWS region: pass --region REGION, or set AWS_REGION (it is missing or empty), "
    "or a region in the profile's ~/.aws/config"
)


class BatchError(FinbatchError):
    """AWS Batch refused or could not take a request (exit code 1)."""


class BatchGateway:
    """AWS Batch calls, one method per API operation the project uses.

    The CloudWatch Logs, CloudWatch and EC2 calls that operating a job needs (following a
    log, publishing metrics, the instance types of a compute environment) are here too, so
    this stays the only module that calls boto3.
    """

    def __init__(
        self,
        client: Any | None = None,
        *,
        region: str | None = None,
        profile: str | None = None,
    ) -> None:
        # The region, profile and credentials come from the standard AWS environment, as for S3.
        try:
            self.session = boto3.session.Session(profile_name=profile, region_name=region or None)
        except ProfileNotFound as err:
            raise InputError(f"{err}: check --profile or AWS_PROFILE") from None
        if client is None and not self.session.region_name:
            raise InputError(NO_REGION)
        self.client = client or self.session.client("batch", config=RETRIES)
        self._clients: dict[str, Any] = {}

    @property
    def region(self) -> str:
        return str(self.client.meta.region_name)

    def _service(self, name: str) -> Any:
        if name not in self._clients:
            make: Any = self.session.client  # boto3-stubs type it per literal service name
            self._clients[name] = make(name, region_name=self.region, config=RETRIES)
        return self._clients[name]

    def _call(self, operation: str, request: dict[str, Any], service: str = "") -> dict[str, Any]:
        client = self._service(service) if service else self.client
        try:
            response: dict[str, Any] = getattr(client, operation)(**request)
        except (BotoCoreError, ClientError) as err:
            raise BatchError(f"AWS {service or 'Batch'} {operation} failed: {err}") from err
        return response

    def describe_jobs(self, job_ids: list[str]) -> list[dict[str, Any]]:
        """The jobs' descriptions (unknown ids are left out)."""
        return list(self._call("describe_jobs", {"jobs": job_ids}).get("jobs", []))

    def list_jobs(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page of ListJobs for ``request`` (jobQueue, jobStatus or filters)."""
        found: list[dict[str, Any]] = []
        request = dict(request)
        while True:
            response = self._call("list_jobs", request)
            found.extend(response.get("jobSummaryList", []))
            token = response.get("nextToken")
            if not token:
                return found
            request["nextToken"] = token

    def terminate_job(self, job_id: str, reason: str) -> None:
        """Cancel a job that has not started, or stop a running one."""
        self._call("terminate_job", {"jobId": job_id, "reason": reason})

    def describe_job_queue(self, name: str) -> dict[str, Any] | None:
        queues = self._call("describe_job_queues", {"jobQueues": [name]}).get("jobQueues", [])
        return dict(queues[0]) if queues else None

    def job_queue_names(self) -> list[str]:
        queues = self._call("describe_job_queues", {}).get("jobQueues", [])
        return [str(q["jobQueueName"]) for q in queues]

    def describe_compute_environments(self, names: list[str]) -> list[dict[str, Any]]:
        response = self._call("describe_compute_environments", {"computeEnvironments": names})
        return list(response.get("computeEnvironments", []))

    def instance_types(self, names: list[str]) -> list[dict[str, Any]]:
        """EC2 instance types' vCPUs and memory (``VCpuInfo``, ``MemoryInfo``)."""
        response = self._call("describe_instance_types", {"InstanceTypes": names}, "ec2")
        return list(response.get("InstanceTypes", []))

    def log_events(
        self, group: str, stream: str, token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The next log events of a stream (from the start), and the token to continue."""
        request: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream,
            "startFromHead": True,
        }
        if token:
            request["nextToken"] = token
        try:
            response = self._service("logs").get_log_events(**request)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return [], token  # the node has not started (or logged) yet
            raise BatchError(f"AWS logs get_log_events failed: {err}") from err
        except BotoCoreError as err:
            raise BatchError(f"AWS logs get_log_events failed: {err}") from err
        return list(response.get("events", [])), response.get("nextForwardToken")

    def put_metric_data(self, request: dict[str, Any]) -> None:
        self._call("put_metric_data", request, "cloudwatch")

    def publish(self, topic_arn: str, subject: str, message: str) -> None:
        """An SNS message (the end-of-job summary)."""
        self._call(
            "publish", {"TopicArn": topic_arn, "Subject": subject, "Message": message}, "sns"
        )

    def register_job_definition(self, request: dict[str, Any]) -> dict[str, Any]:
        """Register a definition; the response has ``jobDefinitionArn`` and ``revision``."""
        return self._call("register_job_definition", request)

    def submit_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """Submit a job; the response has ``jobId`` and ``jobArn``."""
        return self._call("submit_job", request)
