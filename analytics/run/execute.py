"""Running a job into its run folder: prepare the folder, run, commit the manifest last."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from analytics.data.storage import join
from analytics.errors import InputError
from analytics.jobs.contract import JobContext, JobSpec, RunSettings
from analytics.options import values_of
from analytics.run.folder import RunFolder, outputs_of, put
from analytics.run.manifest import FileEntry, FileSet, Manifest
from analytics.run.ownership import PROGRESS
from analytics.run.progress import Progress
from analytics.run.resume import Checkpoint, read_record, remove_record
from analytics.secrecy import redact
from analytics.version import code_version

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def parameters(settings: RunSettings, options: Any) -> dict[str, Any]:
    """A run's parameters as the manifest records them: the common options by their command-line
    names, then the job's own."""
    common = {
        "input": settings.input_url,
        "output": settings.output_url,
        "start": settings.start,
        "end": settings.end,
        "symbols": settings.symbols,
        "on_bad_rows": settings.on_bad_rows,
        "today": settings.today,
        "run_id": settings.run_id,
        "overwrite": settings.overwrite,
    }
    return dict(sorted({**common, **values_of(options)}.items()))


def claim(url: str, job: str, run_id: str, tables: Sequence[str]) -> None:
    """Write the progress record of a run that starts from zero: its job, run id and tables,
    before any part, so that what a killed attempt leaves is known to be finbatch's."""
    body = {"job": job, "run_id": run_id, "tables": list(tables), "pieces": {}, "blobs": {}}
    put(join(url, PROGRESS), json.dumps(body, indent=1, sort_keys=True).encode())


def execute(
    spec: JobSpec,
    client: Client,
    settings: RunSettings,
    options: Any,
    cluster_info: Callable[[], dict[str, Any]] | None = None,
    recorded: Mapping[str, Any] | None = None,
    before_commit: Callable[[], None] | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Run the job and commit its outputs: clear its tables, write them, manifest last.
    ``before_commit`` may refuse the commit by raising (the output's lease was lost).

    A resumable job records its finished pieces as it goes; a failed or terminated run keeps
    them and the record (no manifest: the run does not exist), so that the next attempt of the
    same run id in resume mode computes only the rest. Bad input (:class:`InputError`) leaves
    nothing: a retry would fail the same way. ``recorded`` adds parameters to the manifest that
    do not change the results (the cluster's size, the database: already redacted).
    ``progress`` shows the job's phases, then ``committing`` (default: a bar on a terminal,
    lines otherwise).
    """
    if progress is None:
        from analytics.run.display import wait

        progress = Progress(spec.name, waiter=wait)
    folder = RunFolder(settings.output_url)
    tables = spec.table_names
    previous = read_record(settings.output_url) if settings.resume and spec.resumable else None
    if previous is not None and (previous.get("job"), previous.get("run_id")) != (
        spec.name,
        settings.run_id,
    ):
        log.warning(
            "not resuming: %s records job %r run %r, not job %r run %r; starting from zero",
            settings.output_url,
            previous.get("job"),
            previous.get("run_id"),
            spec.name,
            settings.run_id,
        )
        previous = None
    if settings.resume and not spec.resumable:
        log.info("the %s job does not resume: starting from zero", spec.name)
    folder.prepare(
        spec.name,
        settings.run_id,
        tables,
        overwrite=settings.overwrite,
        keep_tables=previous is not None,
    )
    if previous is None:
        remove_record(settings.output_url)
        claim(settings.output_url, spec.name, settings.run_id, tables)
    params = parameters(settings, options)
    checkpoint = (
        Checkpoint(settings.output_url, spec.name, settings.run_id, tables, params, previous)
        if spec.resumable
        else None
    )
    started = _now()
    t0 = time.perf_counter()
    try:
        result = spec.run(JobContext(client, settings, options, checkpoint, progress))
    except BaseException as err:
        progress.stop()
        if checkpoint is None or isinstance(err, InputError):
            folder.discard(tables)  # no partial output: the tables of a failed run go
            remove_record(settings.output_url)
        else:  # keep what finished for the next attempt; still no manifest
            checkpoint.close()
        raise
    manifest = Manifest(
        job=spec.name,
        run_id=settings.run_id,
        parameters={
            k: redact(v) if isinstance(v, str) else v
            for k, v in sorted({**params, **(recorded or {})}.items())
        },
        code_version=code_version(),
        started_at=started,
        finished_at=_now(),
        duration_s=round(time.perf_counter() - t0, 3),
        inputs={
            name: FileSet(tuple(FileEntry(f.url, f.size, version=f.version) for f in files))
            for name, files in result.inputs.items()
        },
        outputs=outputs_of(result.parts),
        summary=result.summary,
        cluster=cluster_info() if cluster_info else {},
    )
    # Committing: the progress record closed, the lease checked, the manifest written.
    with progress.phase("committing", 1, "manifest"):
        if checkpoint is not None:
            checkpoint.close()
        if before_commit is not None:
            before_commit()
        url = folder.commit(manifest)
    if checkpoint is not None:
        checkpoint.finish()
    return Manifest(**{**manifest.__dict__, "manifest_url": url})
