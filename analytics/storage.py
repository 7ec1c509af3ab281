"""Where data lives: a local folder or ``s3://bucket/prefix``, through fsspec.

The S3 endpoint and credentials come from the standard AWS environment (``AWS_ENDPOINT_URL``,
``AWS_PROFILE``, instance and task roles): there is no test-only branch here.
"""

from __future__ import annotations

import posixpath
from typing import Any

import fsspec
from fsspec.core import url_to_fs


def open_fs(url: str) -> tuple[Any, str]:
    """Return ``(filesystem, path)`` for ``url``; a plain path is a local folder."""
    fs, path = url_to_fs(url)
    return fs, path.rstrip("/")


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
