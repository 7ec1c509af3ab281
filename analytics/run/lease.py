"""One writer at a time: a lease on the output folder, taken before a run writes anything.

Locally the lease is ``_lease.json`` held under an exclusive ``flock``: the kernel releases it
when its process dies, however it dies. On S3 it is ``_lease.json`` created with a conditional
PUT (``If-None-Match: *``): of two runs, exactly one creates it. It names the run id, the host
and process, and an expiry; a thread renews it (a PUT conditional on its own ETag) while the run
lasts, and it is deleted at the end. A lease whose holder stopped renewing it (a killed run) is
taken over once it has expired, with a PUT conditional on the expired lease's ETag, so that of
two runs taking it over only one wins. A later attempt of the same AWS Batch job (same job id,
higher attempt) takes over at once: AWS Batch starts an attempt only after the last one ended.

Taking the lease is also the write probe of the output location: a missing bucket, a read-only
folder or bad credentials fail here, before any cluster starts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from analytics.data.storage import credential_problem, is_local, join, open_fs
from analytics.errors import OutputError
from analytics.run.ownership import LEASE

log = logging.getLogger(__name__)

#: A lease not renewed for this long is free to take (a killed run's).
TTL_S = 120.0
#: The holder renews it this often.
RENEW_S = 30.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def holder(run_id: str, env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Who holds a lease: the run, the host and process, the Batch job and attempt."""
    attempt = env.get("AWS_BATCH_JOB_ATTEMPT", "")
    return {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "batch_job": env.get("AWS_BATCH_JOB_ID", "").split("#", 1)[0],
        "attempt": int(attempt) if attempt.isdigit() else 1,
    }


def describe(info: Mapping[str, Any]) -> str:
    """A lease's holder in words."""
    return (
        f"run {info.get('run_id')!r} on host {info.get('host')!r} (pid {info.get('pid')}), "
        f"lease valid until {info.get('expires_at', 'its process ends')}"
    )


def _body(info: Mapping[str, Any], ttl: float) -> bytes:
    expires = (_now() + dt.timedelta(seconds=ttl)).isoformat(timespec="seconds")
    return json.dumps({**info, "expires_at": expires}, sort_keys=True).encode()


def _taken(url: str, info: Mapping[str, Any]) -> OutputError:
    return OutputError(
        f"{url} is being written by another run: {describe(info)}; wait for it to finish, "
        "or choose another --output"
    )


def _expired(info: Mapping[str, Any]) -> bool:
    try:
        return dt.datetime.fromisoformat(str(info["expires_at"])) <= _now()
    except (KeyError, ValueError, TypeError):
        return True  # unreadable: no live holder wrote it


def _succeeds(info: Mapping[str, Any], mine: Mapping[str, Any]) -> bool:
    """A later attempt of the same AWS Batch job (the earlier one has ended)."""
    return bool(mine["batch_job"]) and (
        info.get("batch_job") == mine["batch_job"] and int(info.get("attempt", 0)) < mine["attempt"]
    )


def _probe_error(url: str, err: BaseException) -> OutputError:
    kind = type(err).__name__
    text = str(err)
    if isinstance(err, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        cause = "access denied (check the credentials and the role's permissions)"
    elif credential_problem(err) is not None:
        cause = str(credential_problem(err))
    elif isinstance(err, FileNotFoundError) and not is_local(open_fs(url)[0]):
        cause = "the bucket does not exist"
    else:
        cause = f"{kind}: {text}"
    return OutputError(f"cannot write to the output location {url}: {cause}")


class _LocalLease:
    def __init__(self, url: str, info: Mapping[str, Any]) -> None:
        import fcntl

        _, folder = open_fs(url)
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise OutputError(f"--output {url} is a file, not a folder")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise _probe_error(url, err) from err
        self.path = os.path.join(folder, LEASE)
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise _probe_error(url, err) from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                found = os.read(fd, 65536)
                os.close(fd)
                try:
                    other = json.loads(found or b"{}")
                except ValueError:
                    other = {}
                raise _taken(url, other) from None
            # The holder before us may have unlinked the file it locked: lock the current one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({**info, "expires_at": "its process ends"}).encode())
        self.fd = fd

    def check(self) -> None:
        """The kernel holds a flock until the process ends: it cannot be lost."""

    def release(self) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)


class _S3Lease:
    def __init__(self, url: str, info: Mapping[str, Any], ttl: float) -> None:
        self.url = join(url, LEASE)
        self.fs, path = open_fs(self.url)
        self.bucket, self.key = path.split("/", 1)
        self.info = dict(info)
        self.ttl = ttl
        self.lost = False
        self._stop = threading.Event()
        try:
            self.etag = self._put(IfNoneMatch="*")
        except FileExistsError:
            self.etag = self._take_over(url)
        except OSError as err:
            raise _probe_error(url, err) from err
        self._thread = threading.Thread(target=self._renew, name="finbatch-lease", daemon=True)
        self._thread.start()

    def _put(self, **condition: str) -> str:
        out = self.fs.call_s3(
            "put_object",
            Bucket=self.bucket,
            Key=self.key,
            Body=_body(self.info, self.ttl),
            ContentType="application/json",
            **condition,
        )
        return str(out["ETag"])

    def _take_over(self, url: str) -> str:
        try:
            # The ETag first: if the lease changes after it, the conditional PUT fails.
            etag = str(self.fs.call_s3("head_object", Bucket=self.bucket, Key=self.key)["ETag"])
            other = json.loads(self.fs.cat_file(f"{self.bucket}/{self.key}") or b"{}")
        except FileNotFoundError:  # released meanwhile: try once more from the start
            return self._put(IfNoneMatch="*")
        except (OSError, ValueError) as err:
            raise _probe_error(url, err) from err
        if not (_expired(other) or _succeeds(other, self.info)):
            raise _taken(url, other)
        log.warning("taking over the lease of %s: %s", url, describe(other))
        try:
            return self._put(IfMatch=etag)
        except OSError:  # another run took it over first
            raise _taken(url, other) from None

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S if self.ttl > RENEW_S else self.ttl / 3):
            try:
                self.etag = self._put(IfMatch=self.etag)
            except OSError as err:
                self.lost = True
                log.error(
                    "the lease on %s was lost (%s): another run may write there", self.url, err
                )
                return

    def check(self) -> None:
        """Renew the lease now; :class:`OutputError` when another run took it over (this run
        was stopped longer than its expiry): its results must not be committed."""
        if not self.lost:
            try:
                self.etag = self._put(IfMatch=self.etag)
                return
            except OSError:
                self.lost = True
        raise OutputError(
            f"the lease on {self.url} was taken over by another run while this one ran: "
            "not committing (its tables may be mixed); run it again"
        )

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.lost:
            return
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key)
        except OSError as err:
            log.warning("could not release the lease %s: %s", self.url, err)


@contextmanager
def lease(url: str, run_id: str, *, ttl: float = TTL_S) -> Iterator[_LocalLease | _S3Lease]:
    """Hold the output folder's lease while the block runs; :class:`OutputError` (exit 2) names
    the holder when another run has it."""
    fs, _ = open_fs(url)
    info = holder(run_id)
    held: _LocalLease | _S3Lease = (
        _LocalLease(url, info) if is_local(fs) else _S3Lease(url, info, ttl)
    )
    try:
        yield held
    finally:
        held.release()
