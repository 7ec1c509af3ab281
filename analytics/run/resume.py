"""Resume: what a run has finished, recorded as it goes, so that a retry computes only the rest.

A resumable job writes each piece of its tables under a deterministic name, as its task ends.
The driver keeps ``_progress.json`` in the output folder: the job, the run id, its tables, a
fingerprint of what makes the results (the job, its result-changing parameters, the input files
with their versions: ETag, or size and mtime), each input file's version (to name what changed),
the plan's shape (bucket and chunk counts that otherwise depend on the cluster's size) and the
finished pieces ``{key: {table, url, rows, bytes, ...}}``. Small arrays a later step needs (the
benchmark series, a backtest task's daily sums) are files under ``_progress/``.

A new attempt of the same run id in resume mode (AWS Batch's ``AWS_BATCH_JOB_ATTEMPT`` > 1, or
``--resume``) with the same fingerprint keeps each recorded piece that still exists with its
recorded size, deletes every other file of the job's tables, and runs only the rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from distributed import Future

from analytics.data.datasets import DataFile
from analytics.data.storage import full_url, join, open_fs
from analytics.run.folder import WrittenPart, put
from analytics.run.manifest import jsonable as _jsonable
from analytics.run.ownership import BLOBS, PROGRESS

#: The record is written at most this often while tasks finish (and always at the end).
FLUSH_INTERVAL_S = 2.0
#: Options that do not change a run's results: they stay out of the fingerprint.
RUN_OPTIONS = frozenset({"run_id", "overwrite", "resume", "output", "today"})
log = logging.getLogger(__name__)


def fingerprint(
    job: str, parameters: Mapping[str, Any], inputs: Mapping[str, Sequence[DataFile]]
) -> str:
    """A digest of what determines the results: job, result-changing parameters, input files."""
    body = {
        "job": job,
        "parameters": {k: v for k, v in parameters.items() if k not in RUN_OPTIONS},
        "inputs": {
            name: sorted((f.url, f.size, f.version) for f in files)
            for name, files in inputs.items()
        },
    }
    text = json.dumps(_jsonable(body), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def versions(inputs: Mapping[str, Sequence[DataFile]]) -> dict[str, list[Any]]:
    """Each input file's size and version, as the record keeps them (to name what changed)."""
    return {f.url: [f.size, f.version] for files in inputs.values() for f in files}


def changes(recorded: Any, inputs: Mapping[str, Sequence[DataFile]]) -> str:
    """What differs between the recorded inputs and ``inputs``, in words."""
    if not isinstance(recorded, Mapping):
        return "the parameters or the input files changed"
    now = versions(inputs)
    changed = sorted(u for u in now if u in recorded and list(recorded[u]) != now[u])
    added = sorted(set(now) - set(recorded))
    removed = sorted(set(recorded) - set(now))
    said = [
        f"{label} {', '.join(urls[:3])}{f' and {len(urls) - 3} more' if len(urls) > 3 else ''}"
        for label, urls in (
            ("the input file(s) changed:", changed),
            ("new input file(s):", added),
            ("input file(s) gone:", removed),
        )
        if urls
    ]
    return "; ".join(said) or "the parameters changed"


def save_arrays(url: str, arrays: Mapping[str, Any]) -> int:
    """Write named arrays (numbers or strings, no objects) as one ``.npz``; returns its bytes.

    Runs on a worker or the driver. One PUT on S3; temp file and rename locally."""
    buffer = io.BytesIO()
    savez: Any = np.savez  # (its stub takes the arrays' names for its own keywords)
    savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    body = buffer.getvalue()
    put(url, body)
    return len(body)


def load_arrays(url: str) -> dict[str, npt.NDArray[Any]]:
    fs, path = open_fs(url)
    with fs.open(path, "rb") as handle:
        data = handle.read()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def read_record(output_url: str) -> dict[str, Any] | None:
    """The progress record in ``output_url``, or None (missing or unreadable: start afresh)."""
    fs, path = open_fs(output_url)
    try:
        with fs.open(join(path, PROGRESS), "rb") as handle:
            record: dict[str, Any] = json.load(handle)
    except (OSError, ValueError):
        return None
    return record


def remove_record(output_url: str) -> None:
    """Remove ``_progress.json`` and ``_progress/`` (best effort)."""
    fs, path = open_fs(output_url)
    for target, recursive in ((join(path, PROGRESS), False), (join(path, BLOBS), True)):
        try:
            if fs.exists(target):
                fs.rm(target, recursive=recursive)
        except OSError as err:
            log.warning("could not remove %s: %s", target, err)


class Checkpoint:
    """The driver's side of resume for one run: plan, finished pieces, blobs, the record.

    ``previous`` is the record found by :meth:`RunFolder.prepare` in resume mode (same job and
    run id), else None. Nothing is touched until :meth:`begin`.
    """

    def __init__(
        self,
        output_url: str,
        job: str,
        run_id: str,
        tables: Sequence[str],
        parameters: Mapping[str, Any],
        previous: dict[str, Any] | None,
    ) -> None:
        self.output_url = output_url.rstrip("/")
        self.fs, self.path = open_fs(self.output_url)
        self.job = job
        self.run_id = run_id
        self.tables = tuple(tables)
        self.parameters = dict(parameters)
        self.previous = previous
        self.resumed = False
        self.record: dict[str, Any] = {}
        self.reused = 0
        self._lock = threading.Lock()
        self._dirty = False
        self._last_flush = 0.0
        self._tracked: list[tuple[Future[Any], Callable[[Any], None]]] = []
        self._handled: set[Any] = set()
        self._closed = False

    # ---- the start of a run ----------------------------------------------------------------

    def begin(self, inputs: Mapping[str, Sequence[DataFile]], plan: Mapping[str, Any]) -> None:
        """Compare with the previous record; keep its verified pieces, or start from zero.

        Clears the job's tables either way, except for the pieces kept."""
        digest = fingerprint(self.job, self.parameters, inputs)
        prev = self.previous
        pieces: dict[str, dict[str, Any]] = {}
        blobs: dict[str, dict[str, Any]] = {}
        recorded_plan: dict[str, Any] = dict(plan)
        if prev is not None and prev.get("fingerprint") == digest:
            pieces = {k: v for k, v in prev.get("pieces", {}).items() if self._verify(v)}
            blobs = {k: v for k, v in prev.get("blobs", {}).items() if self._exists(v)}
            recorded_plan = {**plan, **prev.get("plan", {})}
            self.resumed = True
            self.reused = len(pieces)
            dropped = len(prev.get("pieces", {})) - len(pieces)
            log.info(
                "resuming run %s: %d finished piece(s) reused%s",
                self.run_id,
                len(pieces),
                f", {dropped} missing or changed piece(s) to redo" if dropped else "",
            )
        elif prev is not None:
            log.warning(
                "not resuming run %s: %s since the recorded attempt; starting from zero",
                self.run_id,
                changes(prev.get("inputs"), inputs),
            )
        self.record = {
            "job": self.job,
            "run_id": self.run_id,
            "tables": list(self.tables),
            "fingerprint": digest,
            "inputs": versions(inputs),
            "plan": recorded_plan,
            "pieces": pieces,
            "blobs": blobs,
            "updated_at": "",
        }
        self._clear_others()
        self.flush(force=True)

    def _verify(self, piece: Mapping[str, Any]) -> bool:
        if not self._exists(piece):
            return False
        blob = piece.get("blob")
        return blob is None or self._exists(blob)

    def _exists(self, item: Mapping[str, Any]) -> bool:
        try:
            _, path = open_fs(item["url"])
            return int(self.fs.size(path)) == int(item["bytes"])
        except (OSError, KeyError, TypeError, ValueError):
            return False

    def _clear_others(self) -> None:
        """Delete every file of the job's tables (and blob) that is not a kept piece: an
        unfinished part, or one finished but never recorded."""
        keep = set()
        for item in [*self.record["pieces"].values(), *self.record["blobs"].values()]:
            keep.add(open_fs(item["url"])[1])
            if isinstance(item.get("blob"), Mapping):
                keep.add(open_fs(item["blob"]["url"])[1])
        self.fs.invalidate_cache()
        for folder in [*self.tables, BLOBS]:
            root = join(self.path, folder)
            if not self.fs.exists(root):
                continue
            if not keep:
                self.fs.rm(root, recursive=True)
                continue
            for path in self.fs.find(root):
                if path.rstrip("/") not in keep:
                    self.fs.rm(path)
        self.fs.invalidate_cache()

    # ---- what the job asks -------------------------------------------------------------------

    @property
    def plan(self) -> dict[str, Any]:
        plan: dict[str, Any] = self.record["plan"]
        return plan

    def settle(self, name: str, value: Any) -> Any:
        """The plan's ``name``: the recorded value when resuming, else ``value`` (recorded)."""
        with self._lock:
            plan = self.record["plan"]
            if name not in plan:
                plan[name] = value
                self._dirty = True
            return plan[name]

    def piece(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found: dict[str, Any] | None = self.record["pieces"].get(key)
            return found

    def blob_url(self, name: str) -> str:
        return join(self.output_url, BLOBS, f"{name}.npz")

    def blob(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            found: dict[str, Any] | None = self.record["blobs"].get(name)
            return found

    def save_blob(self, name: str, arrays: Mapping[str, Any]) -> None:
        """Write a small blob from the driver and record it."""
        url = self.blob_url(name)
        size = save_arrays(url, arrays)
        with self._lock:
            self.record["blobs"][name] = {"url": url, "bytes": size}
            self._dirty = True

    def add_piece(self, key: str, part: WrittenPart, **extra: Any) -> None:
        with self._lock:
            entry = {"table": part.table, "url": part.url, "rows": part.rows, "bytes": part.size}
            self.record["pieces"][key] = {**entry, **extra}
            self._dirty = True
        self.flush()

    @staticmethod
    def as_part(piece: Mapping[str, Any]) -> WrittenPart:
        return WrittenPart(piece["table"], piece["url"], int(piece["rows"]), int(piece["bytes"]))

    # ---- recording while the graph runs ------------------------------------------------------

    def track(self, future: Future[Any], handler: Callable[[Any], None]) -> None:
        """Call ``handler(result)`` once ``future`` finishes (in Dask's callback thread), so
        the record knows of it; :meth:`close` handles the finished ones not yet handled."""
        with self._lock:
            self._tracked.append((future, handler))
        future.add_done_callback(lambda fut: self._handle(fut, handler))

    def _handle(self, future: Future[Any], handler: Callable[[Any], None]) -> None:
        with self._lock:
            if self._closed or future.key in self._handled or future.status != "finished":
                return
            self._handled.add(future.key)
        try:
            handler(future.result(timeout=10))
        except Exception as err:  # a lost result is only a piece to redo next time
            log.debug("could not record %s: %s", future.key, err)

    def flush(self, *, force: bool = False) -> None:
        """Write the record if it changed, at most every ``FLUSH_INTERVAL_S`` unless forced."""
        with self._lock:
            now = time.monotonic()
            if self._closed or not self.record:
                return
            if not force and (not self._dirty or now - self._last_flush < FLUSH_INTERVAL_S):
                return
            self.record["updated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            body = json.dumps(_jsonable(self.record), indent=1, sort_keys=True).encode()
            self._dirty = False
            self._last_flush = now
            done = len(self.record["pieces"])
            # Under the lock: a late callback never rewrites the record after close().
            try:
                put(join(self.output_url, PROGRESS), body)
            except OSError as err:
                log.warning("could not write the progress record: %s", err)
                return
        log.info("progress recorded: %d finished piece(s)", done)

    def close(self) -> None:
        """Record every tracked future that finished, then write the record (on success,
        failure or SIGTERM alike)."""
        with self._lock:
            tracked = list(self._tracked)
        for future, handler in tracked:
            if future.status == "finished":
                self._handle(future, handler)
        self.flush(force=True)
        with self._lock:
            self._closed = True

    def finish(self) -> None:
        """After the manifest: the run exists, so the record and its blobs go."""
        remove_record(self.output_url)

    @property
    def record_url(self) -> str:
        return full_url(self.fs, join(self.path, PROGRESS))
