"""Where data lives: a local folder or ``s3://bucket/prefix``, through fsspec.

The S3 endpoint and credentials come from the standard AWS environment (``AWS_ENDPOINT_URL``,
``AWS_PROFILE``, instance and task roles): there is no test-only branch here.

Retries: every S3 request is retried by botocore in its ``standard`` mode (exponential backoff
with jitter, up to 20 s between attempts) for up to :data:`S3_MAX_ATTEMPTS` attempts: throttling
(``503 SlowDown``), 5xx answers, connection resets and timeouts. botocore's own default is the
``legacy`` mode with 5 attempts, too few for a large job that S3 throttles for a minute. The
standard AWS environment variables ``AWS_RETRY_MODE`` and ``AWS_MAX_ATTEMPTS`` override these
defaults, each on its own (a ``retry_mode``/``max_attempts`` in an AWS config-file profile does
not: the explicit defaults win over the file). s3fs adds its own few retries of a failed read
on top.
"""

from __future__ import annotations

import errno
import functools
import os
import posixpath
from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec.core import url_to_fs

#: Attempts per S3 request (the first and its retries) unless AWS_MAX_ATTEMPTS says otherwise.
S3_MAX_ATTEMPTS = 10
S3_RETRY_MODE = "standard"


def s3_options(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The s3fs options finbatch sets: retry defaults for what the AWS environment leaves unset
    (a value set here would override the environment's: botocore reads those itself)."""
    retries: dict[str, Any] = {}
    if not env.get("AWS_RETRY_MODE"):
        retries["mode"] = S3_RETRY_MODE
    if not env.get("AWS_MAX_ATTEMPTS"):
        retries["max_attempts"] = S3_MAX_ATTEMPTS
    return {"config_kwargs": {"retries": retries}} if retries else {}


def open_fs(url: str) -> tuple[Any, str]:
    """Return ``(filesystem, path)`` for ``url``; a plain path is a local folder."""
    options = s3_options() if url.startswith(("s3://", "s3a://")) else {}
    fs, path = url_to_fs(url, **options)
    return fs, path.rstrip("/")


@functools.cache
def transport_errors() -> tuple[type[BaseException], ...]:
    """What the S3 client raises when requests keep failing below the HTTP level (connection
    resets, endpoint unreachable) once its retries are spent; s3fs turns HTTP errors into
    OSError. A function, used as ``except transport_errors():``, so that the S3 client's
    libraries are imported only once an exception is being handled."""
    errors: list[type[BaseException]] = []
    try:
        from botocore.exceptions import BotoCoreError

        errors.append(BotoCoreError)
    except ImportError:  # no S3 support installed: local folders only
        pass
    try:
        from aiohttp import ClientError

        errors.append(ClientError)
    except ImportError:
        pass
    return tuple(errors)


#: The errno values s3fs gives the HTTP answers that mean "try later": 503 SlowDown and
#: ServiceUnavailable (EBUSY), 500 InternalError (EREMOTEIO), plus timeouts and resets.
_TRANSIENT_ERRNOS = frozenset(
    {errno.EBUSY, getattr(errno, "EREMOTEIO", 121), errno.ETIMEDOUT, errno.ECONNRESET}
)


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from) is storage that kept failing past its
    retries (throttling, 5xx, resets, timeouts), not a missing file, a denied access or bad
    data: such a run may succeed if tried again later."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (*transport_errors(), TimeoutError)):
            return True
        if isinstance(current, OSError) and current.errno in _TRANSIENT_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False


#: What botocore and S3 say when the credentials, not the storage, are the problem.
CREDENTIAL_ERRORS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "UnrecognizedClientException",
)


def credential_problem(err: BaseException) -> str | None:
    """The credential error ``err`` stands for, if it is one (named in words), else None."""
    text = f"{type(err).__name__}: {err}"
    found = next((name for name in CREDENTIAL_ERRORS if name in text), None)
    if found is None:
        return None
    return (
        f"the AWS credentials were not found or were refused ({text}); check AWS_PROFILE, "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the role the job runs with"
    )


def join(url: str, *parts: str) -> str:
    """Join URL parts with ``/`` whatever the filesystem (S3 keys and local paths alike)."""
    return posixpath.join(url.rstrip("/"), *parts)


def full_url(fs: Any, path: str) -> str:
    """The URL of ``path`` on ``fs`` (adds ``s3://`` back for S3 paths)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return path
    return f"{protocol}://{path}"


def is_local(fs: Any) -> bool:
    return isinstance(fs, fsspec.implementations.local.LocalFileSystem)
