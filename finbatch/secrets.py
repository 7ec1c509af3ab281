"""Database credentials from AWS Secrets Manager (the only AWS call behind the database sink).

An RDS secret is a JSON object: the secrets RDS manages for a master user hold ``username`` and
``password``; the ones Secrets Manager creates for a database also hold ``host``, ``port``,
``dbname`` and ``engine``. The caller combines them with ``--db-url``
(:func:`analytics.delivery.sink.connection_params`).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from analytics.errors import FinbatchError

#: botocore's own retry mode: throttling and transient errors are retried with backoff.
_RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})


class SecretError(FinbatchError):
    """The database secret cannot be read or is not an RDS secret (exit code 1)."""


def parse_secret(name: str, text: str | None) -> dict[str, Any]:
    """The secret's JSON object; a plain-text or binary secret is an error naming the secret."""
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise SecretError(
            f"secret {name!r} is not a JSON object; expected an RDS secret "
            '({"username": ..., "password": ..., "host": ..., "port": ..., "dbname": ...})'
        )
    if not value.get("password"):
        raise SecretError(f"secret {name!r} has no 'password' key (not an RDS secret?)")
    return value


def read_secret(name: str, client: Any | None = None) -> dict[str, Any]:
    """Fetch ``name`` (a secret name or ARN) with ``secretsmanager:GetSecretValue``."""
    sm = client or boto3.client("secretsmanager", config=_RETRIES)
    try:
        response = sm.get_secret_value(SecretId=name)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        raise SecretError(
            f"cannot read the secret {name!r} from AWS Secrets Manager ({code}): {err}; "
            "check the name or ARN, the region, and that the job role may call "
            "secretsmanager:GetSecretValue on it"
        ) from err
    except BotoCoreError as err:
        raise SecretError(f"cannot reach AWS Secrets Manager for {name!r}: {err}") from err
    return parse_secret(name, response.get("SecretString"))
