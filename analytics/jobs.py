"""What every job shares: its settings, its result, and the run that commits it."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol, cast

from distributed import Client

from analytics.checkpoint import Checkpoint, read_record, remove_record
from analytics.datasets import DataFile
from analytics.errors import InputError
from analytics.output import RunOutput, WrittenPart, summarize_parts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """The options common to every job, resolved once."""

    job: str
    input_url: str
    output_url: str
    run_id: str
    start: dt.date | None = None
    end: dt.date | None = None
    symbols: tuple[str, ...] | None = None
    overwrite: bool = False
    #: Reuse what an earlier attempt of the same run id finished (an AWS Batch retry, or
    #: ``--resume``); see :mod:`analytics.checkpoint`.
    resume: bool = False


@dataclass
class JobResult:
    parts: list[WrittenPart]
    inputs: dict[str, list[DataFile]]
    summary: dict[str, Any] = field(default_factory=dict)


class Job(Protocol):
    name: str
    help: str
    tables: tuple[str, ...]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, client: Client, settings: RunSettings, args: argparse.Namespace) -> JobResult: ...


class ResumableJob(Job, Protocol):
    """A job that records its finished pieces and skips them when resumed."""

    def run(
        self,
        client: Client,
        settings: RunSettings,
        args: argparse.Namespace,
        checkpoint: Checkpoint | None = None,
    ) -> JobResult: ...


def prepare_settings(job: Job, args: argparse.Namespace, settings: RunSettings) -> RunSettings:
    """The job's own checks and resolutions of its arguments, before any cluster starts or any
    output is touched (a job may define ``prepare(args, settings) -> RunSettings``: for example
    ``--date previous-session`` resolved with the exchange calendar). It may raise
    :class:`~analytics.errors.InputError`, or ``NothingToDo`` (exit 0)."""
    hook = getattr(job, "prepare", None)
    if hook is None:
        return settings
    prepared: RunSettings = hook(args, settings)
    return prepared


def code_version() -> str:
    try:
        return metadata.version("finbatch")
    except metadata.PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def execute(
    job: Job,
    client: Client,
    settings: RunSettings,
    args: argparse.Namespace,
    parameters: dict[str, Any],
    cluster_info: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run ``job`` and commit its outputs: clear our tables, write them, manifest last.

    A resumable job (``job.resumable``) records its finished pieces as it goes; a failed or
    terminated run keeps them and the record (no manifest: the run does not exist), so that
    the next attempt of the same run id in resume mode computes only the rest. Bad input
    (:class:`InputError`) leaves nothing: a retry would fail the same way.
    """
    out = RunOutput(settings.output_url)
    resumable = bool(getattr(job, "resumable", False))
    previous = read_record(settings.output_url) if settings.resume and resumable else None
    if previous is not None and (previous.get("job"), previous.get("run_id")) != (
        job.name,
        settings.run_id,
    ):
        log.info(
            "not resuming: %s records job %r run %r, not job %r run %r; starting from zero",
            settings.output_url,
            previous.get("job"),
            previous.get("run_id"),
            job.name,
            settings.run_id,
        )
        previous = None
    if settings.resume and not resumable:
        log.info("the %s job does not resume: starting from zero", job.name)
    out.prepare(
        settings.run_id, job.tables, overwrite=settings.overwrite, keep_tables=previous is not None
    )
    if previous is None:
        remove_record(settings.output_url)
    checkpoint = (
        Checkpoint(settings.output_url, job.name, settings.run_id, job.tables, parameters, previous)
        if resumable
        else None
    )
    started = _now()
    t0 = time.perf_counter()
    try:
        if checkpoint is not None:
            result = cast(ResumableJob, job).run(client, settings, args, checkpoint)
        else:
            result = job.run(client, settings, args)
    except BaseException as err:
        if checkpoint is None or isinstance(err, InputError):
            out.discard(job.tables)  # no partial output: the tables of a failed run go
            remove_record(settings.output_url)
        else:  # keep what finished for the next attempt; still no manifest
            checkpoint.close()
        raise
    manifest: dict[str, Any] = {
        "job": job.name,
        "run_id": settings.run_id,
        "parameters": parameters,
        "code_version": code_version(),
        "started_at": started,
        "finished_at": _now(),
        "duration_s": round(time.perf_counter() - t0, 3),
        "inputs": {
            name: {
                "files": [{"url": f.url, "bytes": f.size} for f in files],
                "bytes": sum(f.size for f in files),
            }
            for name, files in result.inputs.items()
        },
        "outputs": summarize_parts(result.parts),
        "summary": result.summary,
        "cluster": cluster_info() if cluster_info else {},
    }
    if checkpoint is not None:
        checkpoint.close()
    manifest["manifest_url"] = out.commit(manifest)
    if checkpoint is not None:
        checkpoint.finish()
    return manifest
