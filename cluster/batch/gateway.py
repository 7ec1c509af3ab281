"""The only code that calls AWS Batch: a thin wrapper over a boto3 client.

Requests are built elsewhere by pure functions (:mod:`cluster.batch.jobdef`); here they are
sent as they are. Throttling and transient errors are retried by botocore's ``standard`` retry
mode, not by hand-made loops; what still fails becomes a :class:`BatchError` naming the call.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from analytics.errors import FinbatchError

#: botocore's standard mode: exponential backoff with jitter on throttling and 5xx errors.
RETRIES = Config(retries={"mode": "standard", "max_attempts": 8})


class BatchError(FinbatchError):
    """AWS Batch refused or could not take a request (exit code 1)."""


class BatchGateway:
    """AWS Batch calls, one method per API operation the project uses."""

    def __init__(self, client: Any | None = None, *, region: str | None = None) -> None:
        # The region and credentials come from the standard AWS environment, as for S3.
        self.client = client or boto3.client("batch", region_name=region, config=RETRIES)

    def _call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**request)
        except (BotoCoreError, ClientError) as err:
            raise BatchError(f"AWS Batch {operation} failed: {err}") from err
        return response

    def register_job_definition(self, request: dict[str, Any]) -> dict[str, Any]:
        """Register a definition; the response has ``jobDefinitionArn`` and ``revision``."""
        return self._call("register_job_definition", request)

    def submit_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """Submit a job; the response has ``jobId`` and ``jobArn``."""
        return self._call("submit_job", request)
