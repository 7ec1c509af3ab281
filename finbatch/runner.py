"""From resolved settings to a committed, delivered run: the path the command line and
:func:`finbatch.run` share.

1. the job's ``prepare`` checks and resolves its options, and every input dataset is listed,
   before any cluster starts (a bad argument or a missing input fails in well under a second);
2. the cluster comes from :mod:`cluster.runner` (a LocalCluster, an existing scheduler, or the
   nodes of an AWS Batch multi-node parallel job);
3. :func:`analytics.run.execute.execute` runs the job and commits its manifest;
4. ``report.html`` is written and, when asked, the tables are loaded into PostgreSQL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analytics.errors import EXIT_FAILURE, EXIT_OK, EXIT_TEMPFAIL, FinbatchError, InputError
from analytics.jobs.contract import JobSpec, RunSettings
from analytics.secrecy import redact
from finbatch import logs
from finbatch.settings import ClusterSettings, DbSettings

if TYPE_CHECKING:
    from distributed import Client

    from analytics.delivery.database import DbTarget
    from analytics.run.manifest import Manifest
    from cluster.runner import ClusterOptions

log = logging.getLogger("finbatch")


class Terminated(BaseException):
    """SIGTERM (an AWS Batch timeout or cancel): unwind promptly, exit non-zero."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def default_run_id(env: Mapping[str, str] = os.environ) -> str:
    """``AWS_BATCH_JOB_ID`` without its ``#node`` suffix, else a UTC timestamp."""
    job_id = env.get("AWS_BATCH_JOB_ID", "").split("#", 1)[0]
    return job_id or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Outcome:
    """A finished run: its manifest, the report's URL, what failed after the commit."""

    manifest: Manifest | None = None
    output_url: str = ""
    report_url: str | None = None
    failures: list[str] = field(default_factory=list)
    #: An MNP child node's exit code (it runs a worker, not the job).
    worker_exit: int | None = None
    #: What failed after the commit may succeed if tried again (storage or the database kept
    #: failing past their retries).
    temporary: bool = False
    #: A catch-up's exit code when one of its periods failed (its manifest is None).
    failure_code: int | None = None

    @property
    def exit_code(self) -> int:
        """0 delivered; 75 a delivery that may succeed later (Batch retries it); else 1."""
        if self.worker_exit is not None:
            return self.worker_exit
        if self.failure_code is not None:
            return self.failure_code
        if not self.failures:
            return EXIT_OK
        return EXIT_TEMPFAIL if self.temporary else EXIT_FAILURE


#: Below this many input bytes (and without --workers/--threads-per-worker) the LocalCluster
#: runs its worker as threads of this process: starting worker processes would cost more
#: than the whole job (docs/performance.md). A job may set its own (``Sizing``).
SMALL_INPUT_BYTES = 32 * 2**20


def check_inputs(spec: JobSpec, settings: RunSettings) -> int:
    """List every dataset the job reads (with hive pruning), so a missing or empty input is an
    error before any cluster starts; the job lists them again when it runs. Returns their
    bytes."""
    from analytics.data.datasets import Selection, list_files

    sel = Selection(settings.start, settings.end, settings.symbols)
    return sum(f.size for name in spec.datasets for f in list_files(settings.input_url, name, sel))


def check_environment(env: Mapping[str, str]) -> None:
    """The environment's settings that would otherwise fail late or with a traceback."""
    from finbatch.settings import check_address

    endpoint = env.get("AWS_ENDPOINT_URL")
    if endpoint:
        check_address("AWS_ENDPOINT_URL", endpoint, ("http", "https"))


def check_locations(settings: RunSettings) -> None:
    """--input and --output are local folders or s3:// URLs."""
    for flag, url in (("--input", settings.input_url), ("--output", settings.output_url)):
        scheme, sep, _ = url.partition("://")
        if sep and scheme not in ("s3", "s3a", "file"):
            raise InputError(
                f"{flag} {redact(url)[:80]!r}: {scheme}:// is not a place finbatch reads or "
                "writes; give a local folder or s3://BUCKET/PREFIX"
            )


def cluster_options(
    cluster: ClusterSettings,
    output_url: str,
    env: Mapping[str, str],
    input_bytes: int | None = None,
    in_process_below: int | None = None,
) -> ClusterOptions:
    """The cluster to run on; a LocalCluster uses threads of this process for an input under
    ``in_process_below`` bytes (default :data:`SMALL_INPUT_BYTES`)."""
    from cluster.local import ClusterSpec
    from cluster.runner import ClusterOptions, mnp_options

    mnp = mnp_options(
        env,
        output_url,
        wait_for_nodes=float(cluster.wait_for_nodes),
        min_nodes=cluster.min_nodes,
        death_timeout=float(cluster.death_timeout),
        insecure=cluster.insecure,
    )
    below = SMALL_INPUT_BYTES if in_process_below is None else in_process_below
    small = input_bytes is not None and input_bytes < below
    sized = cluster.workers is not None or cluster.threads_per_worker is not None
    local = ClusterSpec(cluster.workers, cluster.threads_per_worker, processes=sized or not small)
    return ClusterOptions(local, mnp)


def db_target(db: DbSettings, env: Mapping[str, str] = os.environ) -> DbTarget | None:
    """The database to load, from ``--db-url`` / ``$FINBATCH_DB_URL`` and ``--db-secret``."""
    url = db.db_url or env.get("FINBATCH_DB_URL") or None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]{0,62}", db.db_schema or ""):
        raise InputError(
            f"--db-schema {db.db_schema[:70]!r} is not a schema name: letters, digits and _, "
            "starting with a letter or _, at most 63 characters"
        )
    if not url and not db.db_secret:
        return None
    from analytics.delivery.database import DbTarget
    from analytics.delivery.sink import SinkError, connection_params

    secret = None
    if db.db_secret:
        from finbatch.secrets import read_secret

        secret = read_secret(db.db_secret)
    try:
        params = connection_params(url, secret)
    except SinkError as err:
        raise InputError(redact(err)) from err
    port = params.get("port", "5432")
    if not all(p.isdigit() and 0 < int(p) < 65536 for p in port.split(",")):
        raise InputError(f"--db-url: the port {port[:20]!r} is not a number from 1 to 65535")
    return DbTarget(params, db.db_schema)


def run(
    spec: JobSpec,
    settings: RunSettings,
    options: Any,
    cluster: ClusterSettings | None = None,
    db: DbSettings | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    say: Callable[[str], None] = print,
) -> Outcome:
    """Run ``spec`` end to end; raises :class:`FinbatchError` for what the user can act on."""
    from cluster.context import Role, detect

    cluster = cluster or ClusterSettings()
    db = db or DbSettings()
    check_environment(env)
    ctx = detect(env, cluster.scheduler)
    if ctx.role is Role.MNP_CHILD:
        from cluster.runner import run_worker_node

        log.info("node %d of %d: worker for job %s", ctx.node_index, ctx.num_nodes, ctx.job_id)
        code = run_worker_node(ctx, cluster_options(cluster, settings.output_url, env), env)
        return Outcome(worker_exit=code)
    if not settings.run_id:
        settings = dataclasses.replace(settings, run_id=default_run_id(env))
    logs.set_context(job=spec.name, run_id=settings.run_id)
    if ctx.attempt > 1:  # a Batch retry (same job id, so same run id) resumes
        settings = dataclasses.replace(settings, resume=True)
    count = getattr(options, "catch_up", None)
    if count is not None:
        return _catch_up(spec, settings, options, count, cluster, db, ctx, env, say)
    if spec.prepare is not None:
        settings, options = spec.prepare(settings, options)
    from analytics.run.folder import RunFolder
    from analytics.run.lease import lease
    from analytics.run.ownership import check_apart

    check_locations(settings)
    check_apart(settings.output_url, settings.input_url, spec.datasets)
    input_bytes = check_inputs(spec, settings)
    target = db_target(db, env)  # a bad URL or an unreadable secret fails before the job
    if ctx.attempt > 1:
        done = _committed_by(spec, settings)
        if done is not None:  # attempt 1 committed, then its delivery failed (exit 75)
            say(f"{spec.name}: run {settings.run_id} is committed already: delivering it again")
            return _deliver(spec, done, settings.output_url, target, say)
    copts = cluster_options(
        cluster, settings.output_url, env, input_bytes, spec.sizing.in_process_bytes
    )
    # One writer at a time; taking the lease is also the output's write probe. The folder's
    # contents are checked before the cluster starts, and again when it is prepared.
    with lease(settings.output_url, settings.run_id) as held:
        RunFolder(settings.output_url).check(
            spec.name, settings.run_id, spec.table_names, overwrite=settings.overwrite
        )
        recorded = _recorded(cluster, db)
        manifest = _execute(spec, settings, options, copts, ctx, say, recorded, held.check)
        return _deliver(spec, manifest, settings.output_url, target, say)


@contextlib.contextmanager
def _client(ctx: Any, copts: ClusterOptions) -> Iterator[Client]:
    """The cluster's client, with SIGTERM turned into :class:`Terminated` meanwhile."""
    from cluster.runner import open_client

    in_main = _main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        with open_client(ctx, copts, os.environ) as client:
            yield client
    finally:
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _execute(
    spec: JobSpec,
    settings: RunSettings,
    options: Any,
    copts: ClusterOptions,
    ctx: Any,
    say: Callable[[str], None],
    recorded: Mapping[str, Any],
    before_commit: Callable[[], None] | None = None,
) -> Manifest:
    _prepare_report(spec)
    with _client(ctx, copts) as client:
        return _execute_on(client, spec, settings, options, ctx, say, recorded, before_commit)


def _execute_on(
    client: Client,
    spec: JobSpec,
    settings: RunSettings,
    options: Any,
    ctx: Any,
    say: Callable[[str], None],
    recorded: Mapping[str, Any],
    before_commit: Callable[[], None] | None = None,
) -> Manifest:
    from analytics.run.execute import execute
    from cluster.local import describe

    logs.set_context(run_id=settings.run_id)  # a catch-up's periods have their own
    t0 = time.perf_counter()
    info = describe(client)
    say(
        f"{spec.name}: run {settings.run_id} ({ctx.role.value}) on {info['workers']} "
        f"workers / {info['threads']} threads; dashboard {client.dashboard_link}"
    )
    manifest = execute(
        spec, client, settings, options, lambda: describe(client), recorded, before_commit
    )
    rows = ", ".join(f"{t} {s.rows:,} rows" for t, s in manifest.outputs.items())
    say(
        f"{spec.name}: committed {manifest.manifest_url} ({rows}) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return manifest


def _committed_by(spec: JobSpec, settings: RunSettings) -> Manifest | None:
    """The manifest in ``--output`` when it is this very run's (same job, same run id)."""
    from analytics.run.folder import RunFolder

    folder = RunFolder(settings.output_url)
    manifest = folder.read_manifest()
    if manifest is None or (manifest.job, manifest.run_id) != (spec.name, settings.run_id):
        return None
    return dataclasses.replace(manifest, manifest_url=folder.manifest_url)


def _recorded(cluster: ClusterSettings, db: DbSettings) -> dict[str, Any]:
    """What the manifest records of how the run was made (no password: URLs are redacted)."""
    from analytics.options import values_of

    values = {**values_of(cluster), **values_of(db)}
    if values.get("db_url"):
        from analytics.delivery.sink import redact

        values["db_url"] = redact(values["db_url"])
    return values


def _prepare_report(spec: JobSpec) -> None:
    """Import the report's modules (matplotlib's take about half a second) in a thread while
    the cluster starts and the job runs, so that writing the report does not wait for them."""
    import importlib
    import threading

    def load() -> None:
        for name in (
            "analytics.report.plots",
            "matplotlib.figure",
            "matplotlib.backends.backend_svg",
        ):
            try:
                importlib.import_module(name)
            except ImportError:  # the report says so itself when it is written
                return

    if spec.report is not None:
        threading.Thread(target=load, name="finbatch-report-import", daemon=True).start()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _deliver(
    spec: JobSpec,
    manifest: Manifest,
    output_url: str,
    target: DbTarget | None,
    say: Callable[[str], None],
) -> Outcome:
    """After the commit: write report.html, then load the database. The run stays committed
    whatever fails here; the failures are returned (the command line exits 1)."""
    from analytics.report.page import write_report
    from analytics.run.committed import CommittedRun
    from finbatch.settings import recorded_defaults

    view = CommittedRun(manifest, output_url.rstrip("/"))
    outcome = Outcome(manifest, output_url)
    try:
        outcome.report_url = write_report(view, recorded_defaults())
        say(f"{spec.name}: report {outcome.report_url}")
    except Exception as err:
        from analytics.data.storage import is_transient

        log.exception("report failed")
        outcome.failures.append(f"the report was not written: {err}")
        outcome.temporary |= is_transient(err)
    if target is not None:
        from analytics.delivery.database import load_database

        try:
            loaded = load_database(view, target)
        except FinbatchError as err:
            outcome.failures.append(str(err))
            outcome.temporary |= err.exit_code == EXIT_TEMPFAIL
        except Exception as err:
            log.exception("database load failed")
            outcome.failures.append(f"the database load failed: {type(err).__name__}: {err}")
        else:
            if loaded is not None:
                rows = ", ".join(f"{target.schema}.{t} {n:,} rows" for t, n in loaded.rows.items())
                say(f"{spec.name}: loaded {rows} in {loaded.seconds:.1f} s")
    return outcome


# --------------------------------------------------------------------------------------------
# --catch-up N (analytics/run/catchup.py): every missing period of the last N, oldest first,
# on one cluster.


def _catch_up(
    spec: JobSpec,
    settings: RunSettings,
    options: Any,
    count: int,
    cluster: ClusterSettings,
    db: DbSettings,
    ctx: Any,
    env: Mapping[str, str],
    say: Callable[[str], None],
) -> Outcome:
    """Run every period of the last ``count`` without a committed run under ``--output``.

    Each period runs and delivers as a run of its own; one that fails does not stop the others.
    The outcome's exit code: 0 when every period is committed and delivered, else 75 if a
    failure may pass on a retry (Batch's next attempt then runs only what is still missing),
    else the first failure's code.
    """
    from analytics.errors import AlreadyCommitted
    from analytics.run.catchup import plan
    from analytics.run.lease import lease
    from analytics.run.ownership import check_apart

    found = plan(spec, settings, options, count)
    unit = spec.catch_up.unit if spec.catch_up else "period"
    span = f"{found.labels[0]} to {found.labels[-1]}"
    redeliver = {  # attempt 1 committed them, then a delivery failed (exit 75)
        label: c
        for label, c in found.committed.items()
        if ctx.attempt > 1 and c.run_id == f"{settings.run_id}-{label}"
    }
    for label, c in found.committed.items():
        if label not in redeliver:
            say(f"{spec.name}: {label} already committed in {c.folder} (run {c.run_id})")
    if not found.missing and not redeliver:
        raise AlreadyCommitted(
            f"the last {count} {unit}(s) ({span}) all have a committed run under {found.root}"
        )
    say(
        f"{spec.name}: catching up {len(found.missing)} of the last {count} {unit}(s) ({span}) "
        f"under {found.root}: {', '.join(p.label for p in found.missing) or 'none'}"
    )
    prepared = []
    for period in found.missing:  # options are checked for all before anything runs
        p_settings, p_options = period.settings, period.options
        if spec.prepare is not None:
            p_settings, p_options = spec.prepare(p_settings, p_options)
        prepared.append((period.label, p_settings, p_options))
    target = db_target(db, env)
    outcome = Outcome(output_url=found.root)
    codes: list[int] = []

    def failed(label: str, err: BaseException) -> None:
        from analytics.data.storage import is_transient

        if isinstance(err, FinbatchError):
            code = err.exit_code
        else:
            log.error("%s %s failed", spec.name, label, exc_info=err)
            code = EXIT_TEMPFAIL if is_transient(err) else EXIT_FAILURE
        codes.append(code)
        outcome.failures.append(f"{label}: {err} (exit {code})")

    def delivered(label: str, result: Outcome) -> None:
        if result.failures:
            codes.append(result.exit_code)
            outcome.failures.extend(f"{label}: {f}" for f in result.failures)

    for label, c in sorted(redeliver.items()):
        say(f"{spec.name}: {label}: run {c.run_id} is committed already: delivering it again")
        done = _committed_by(
            spec, dataclasses.replace(settings, output_url=c.folder, run_id=c.run_id)
        )
        if done is not None:
            delivered(label, _deliver(spec, done, c.folder, target, say))
    runnable = []
    for label, p_settings, p_options in prepared:
        try:
            runnable.append((label, p_settings, p_options, check_inputs(spec, p_settings)))
        except FinbatchError as err:  # e.g. a session whose data has not landed
            failed(label, err)
    committed = 0
    if runnable:
        input_bytes = max(n for *_, n in runnable)
        copts = cluster_options(cluster, found.root, env, input_bytes, spec.sizing.in_process_bytes)
        with _client(ctx, copts) as client:
            for label, p_settings, p_options, _ in runnable:
                try:
                    check_apart(p_settings.output_url, p_settings.input_url, spec.datasets)
                    with lease(p_settings.output_url, p_settings.run_id) as held:
                        manifest = _execute_on(
                            client,
                            spec,
                            p_settings,
                            p_options,
                            ctx,
                            say,
                            _recorded(cluster, db),
                            held.check,
                        )
                except Exception as err:
                    failed(label, err)
                    continue
                committed += 1
                delivered(label, _deliver(spec, manifest, p_settings.output_url, target, say))
    say(
        f"{spec.name}: catch-up of {span}: {committed} committed, "
        f"{len(found.committed) - len(redeliver)} already committed, "
        f"{len(found.missing) - committed} failed"
    )
    if codes:
        outcome.failure_code = EXIT_TEMPFAIL if EXIT_TEMPFAIL in codes else codes[0]
    return outcome


def report_failures(outcome: Outcome) -> None:
    for failure in outcome.failures:
        print(f"finbatch: error: {redact(failure)}", file=sys.stderr, flush=True)
    if outcome.failures and outcome.manifest is not None:
        print(
            f"finbatch: the run {outcome.manifest.run_id} stays committed in {outcome.output_url}",
            file=sys.stderr,
            flush=True,
        )
