"""The code version a run records in its manifest: the package version and the commit.

The image is built from a clean checkout and holds no ``.git``, so the commit comes in as a
build argument (``docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD)``) that the
Dockerfile keeps in :data:`COMMIT_ENV`. From a source tree, ``git`` is asked (with ``.dirty``
when files differ from the commit, so a version never claims a commit it does not match).
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

#: The environment variable the image sets from its ``GIT_COMMIT`` build argument.
COMMIT_ENV = "FINBATCH_GIT_COMMIT"
#: Hex digits of the commit shown (git's own short form grows with the repository).
SHORT = 12


def package_version() -> str:
    try:
        return metadata.version("finbatch")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], check=False, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str | None:
    """The checkout's commit (``abc123...``, with ``.dirty`` when files differ), or None."""
    head = _git("rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return None
    commit = head.stdout.strip()[:SHORT]
    status = _git("status", "--porcelain", "--untracked-files=no")
    dirty = status is not None and bool(status.stdout.strip())
    return f"{commit}.dirty" if dirty else commit


@functools.cache
def _source_commit() -> str | None:
    return git_commit()


def code_version(env: Mapping[str, str] = os.environ) -> str:
    """``VERSION+gCOMMIT`` (a PEP 440 local version), or the package version alone when the
    commit is unknown (an installed wheel outside a checkout and without the build argument)."""
    commit = env.get(COMMIT_ENV, "").strip()[:SHORT] or _source_commit()
    version = package_version()
    return f"{version}+g{commit}" if commit else version
