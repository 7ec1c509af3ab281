"""The job contract: what a job declares, once, and what it receives when it runs.

A job is one package under ``analytics/jobs/`` whose ``__init__`` defines ``JOB``, a
:class:`JobSpec`. The command line, the Python API, the database sink, the report, resume and
``--nodes auto`` sizing all read that one declaration through the registry
(:mod:`analytics.jobs`). See ``docs/adding-a-job.md``.

A job package's ``__init__`` and its options are imported when the command line starts, before
anything is computed: they import only the standard library and :mod:`analytics.options`. The
heavy modules (Dask, pandas, the kernels) are imported by the job's ``run`` when it runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from analytics.options import instant, iso_date, option, symbol_list

if TYPE_CHECKING:
    from distributed import Client

    from analytics.data.datasets import DataFile
    from analytics.run.committed import CommittedRun
    from analytics.run.folder import Destination, WrittenPart
    from analytics.run.progress import Progress
    from analytics.run.resume import Checkpoint

OnBadRows = Literal["fail", "skip"]


@dataclass(frozen=True)
class RunSettings:
    """The options common to every job (``--input``, ``--output``, the selection, the run)."""

    input_url: str = option(
        None, flag="--input", metavar="URL", help="dataset root (folder or s3://)", required=True
    )
    output_url: str = option(
        None, flag="--output", metavar="URL", help="this run's output folder", required=True
    )
    start: dt.date | None = option(
        None, parse=iso_date, metavar="YYYY-MM-DD", help="first date (inclusive)"
    )
    end: dt.date | None = option(
        None, parse=iso_date, metavar="YYYY-MM-DD", help="last date (inclusive)"
    )
    symbols: tuple[str, ...] | None = option(
        None, parse=symbol_list, metavar="A,B,...", help="only these symbols"
    )
    on_bad_rows: OnBadRows = option(
        "fail",
        choices=("fail", "skip"),
        help="a row with a missing, NaN, infinite or out-of-range value or an unknown side: "
        "fail the run (default), or skip the row and list it in the manifest's summary",
    )
    today: str | None = option(
        None,
        parse=instant,
        metavar="DATE|MOMENT",
        help="the day relative dates (previous-session, --as-of-month previous) count from: "
        "a date, or a moment such as a schedule's 2024-03-01T11:00:00Z (taken at the exchange); "
        "default: now. A late start or a retry of a scheduled run resolves the same day",
    )
    run_id: str = option(
        "", help="run identifier (default: AWS_BATCH_JOB_ID, else a UTC timestamp)"
    )
    overwrite: bool = option(
        False,
        switch=True,
        help="replace another run's committed results in --output (a retry of the same run id "
        "always replaces its own)",
    )
    resume: bool = option(
        False,
        switch=True,
        help="reuse what an interrupted run of the same --run-id finished in --output "
        "(automatic on an AWS Batch retry, AWS_BATCH_JOB_ATTEMPT > 1)",
    )

    def __post_init__(self) -> None:
        from analytics.errors import InputError

        if self.start and self.end and self.start > self.end:
            raise InputError(f"--start {self.start} is after --end {self.end}")

    @property
    def job_selection(self) -> dict[str, Any]:
        """The selection, as the manifest records it."""
        return {"start": self.start, "end": self.end, "symbols": self.symbols}

    @property
    def destination(self) -> Destination:
        """Where the job's tasks write its parts (:func:`analytics.run.folder.write_part`)."""
        from analytics.run.folder import Destination

        return Destination(self.output_url, self.run_id)


@dataclass(frozen=True)
class Table:
    """An output table: its name (a folder of Parquet parts under ``--output``) and, when the
    database sink loads it, its natural key (the primary key is the run id and these columns).
    ``derived`` computes columns for the database only (a key spread over varying columns)."""

    name: str
    key: tuple[str, ...] = ()
    derived: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)

    @property
    def loaded(self) -> bool:
        return bool(self.key)


@dataclass(frozen=True)
class Sizing:
    """How ``--nodes auto`` sizes the job beyond its input bytes: ``units(options)`` is the
    number of independent simulations per symbol (a sweep's combinations), or None.

    ``in_process_bytes``: below this many input bytes, a LocalCluster runs the job on threads of
    the driver rather than on worker processes (None: the runner's default for every job).
    """

    units: Callable[[Any], int] | None = None
    in_process_bytes: int | None = None


@dataclass
class JobResult:
    """What a job's run hands back: its written parts, the input files it read, a summary."""

    parts: list[WrittenPart]
    inputs: dict[str, list[DataFile]]
    summary: dict[str, Any] = field(default_factory=dict)


def _progress() -> Progress:
    from analytics.run.progress import Progress, Silent

    return Progress("job", Silent())


@dataclass
class JobContext:
    """What a job's run receives: the cluster's client, the common settings, its own options,
    (for a resumable job) the checkpoint of its finished pieces, and where it reports its
    phases (reading, computing, writing) in its own units (files, symbols, combinations,
    orders, tables): ``ctx.progress.wait(futures, Phase(...), ...)`` for Dask work,
    ``ctx.progress.phase(...)`` for the driver's (:mod:`analytics.run.progress`). The job
    never knows whether that is a bar, log lines or nothing."""

    client: Client
    settings: RunSettings
    options: Any
    checkpoint: Checkpoint | None = None
    progress: Progress = field(default_factory=_progress)


Prepare = Callable[[RunSettings, Any], tuple[RunSettings, Any]]
Section = Callable[["CommittedRun"], str]


@dataclass(frozen=True)
class CatchUp:
    """How ``--catch-up N`` walks back over a job's periods (sessions, months).

    - ``periods(settings, options, n)``: the labels of the last ``n`` periods, oldest first,
      ending with the one the options name (relative dates resolved against ``--today``);
      each label is also the name of that period's run folder under the output root.
    - ``select(settings, options, label)``: the settings and options of one period's run.
    - ``period_of(parameters)``: the period a committed run's manifest parameters name, or None.

    The options dataclass has a ``catch_up: int | None`` field (``--catch-up``).
    """

    periods: Callable[[RunSettings, Any, int], list[str]]
    select: Callable[[RunSettings, Any, str], tuple[RunSettings, Any]]
    period_of: Callable[[Mapping[str, Any]], str | None]
    #: What a period is, for messages: "session", "month".
    unit: str = "session"


@dataclass(frozen=True)
class JobSpec:
    """Everything about a job, declared once.

    - ``options``: the frozen dataclass of the job's own options (fields made with
      :func:`analytics.options.option`); its ``__post_init__`` checks values across fields.
    - ``run``: computes and writes the tables; imports its heavy modules itself.
    - ``prepare``: checks and resolves the options before any cluster starts or any output is
      touched (a relative date, a grid); may raise ``InputError`` or ``NothingToDo``.
    - ``report``: the job's section of ``report.html``.
    - ``as_of_column``: ``(table, column)`` whose largest date is the run's as-of date when no
      option gives it (``as_of``, ``date``, ``end``).
    - ``resumable``: the job records finished pieces and skips them on a retry.
    - ``catch_up``: the job runs every missing period of the last N (``--catch-up N``).
    """

    name: str
    help: str
    options: type
    datasets: tuple[str, ...]
    tables: tuple[Table, ...]
    run: Callable[[JobContext], JobResult]
    prepare: Prepare | None = None
    report: Section | None = None
    as_of_column: tuple[str, str] | None = None
    resumable: bool = False
    sizing: Sizing = field(default_factory=Sizing)
    catch_up: CatchUp | None = None

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def check(self) -> None:
        """The declaration is well formed (the registry checks each job it adds)."""
        if not dataclasses.is_dataclass(self.options):
            raise TypeError(f"job {self.name!r}: options must be a dataclass")
        params = getattr(self.options, "__dataclass_params__", None)
        if params is None or not params.frozen:
            raise TypeError(f"job {self.name!r}: options must be a frozen dataclass")
        names = self.table_names
        if len(set(names)) != len(names):
            raise TypeError(f"job {self.name!r}: table names repeat: {names}")
        common = {f.name for f in dataclasses.fields(RunSettings)}
        clash = common & {f.name for f in dataclasses.fields(self.options)}
        if clash:
            raise TypeError(f"job {self.name!r}: options {sorted(clash)} are common options")


def lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported when first called: how a job's light ``__init__`` points at its
    heavy ``run`` and ``report`` (``run=lazy("analytics.jobs.risk.job", "run")``)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = name
    call.__qualname__ = f"{module}.{name}"
    return call


@dataclass(frozen=True)
class NoOptions:
    """A job without options of its own."""
