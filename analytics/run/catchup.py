"""``--catch-up N``: which of a job's last N periods (sessions, months) still need a run.

``--output`` is then an output root. Each period's run goes to its own folder named by the
period, ``ROOT/2024-03-04`` (a session) or ``ROOT/2024-02`` (a month), with the run id
``RUN-2024-03-04``. A period counts as done when any folder directly under the root holds a
committed run of the job for that period, whatever the folder's name: the scheduled runs'
``ROOT/<scheduled time>/`` folders count too. The missing periods run oldest first.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from analytics.data.storage import full_url, join, open_fs
from analytics.errors import OutputError
from analytics.jobs.contract import CatchUp, JobSpec, RunSettings
from analytics.run.folder import RunFolder
from analytics.run.manifest import MANIFEST

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Period:
    """One period's run: its label (the folder's name), settings and options."""

    label: str
    settings: RunSettings
    options: Any


@dataclass(frozen=True)
class Committed:
    """A committed run of a period: its folder and run id."""

    folder: str
    run_id: str


@dataclass
class Plan:
    """The periods of a catch-up: all of them (oldest first), those committed, those to run."""

    root: str
    labels: list[str]
    committed: dict[str, Committed] = field(default_factory=dict)
    missing: list[Period] = field(default_factory=list)


def committed_runs(root: str, job: str, period_of: Any) -> dict[str, Committed]:
    """The periods with a committed run of ``job`` in a folder directly under ``root`` (the
    latest-named folder when several hold the same period)."""
    fs, path = open_fs(root)
    try:
        found = sorted(fs.glob(join(path, "*", MANIFEST))) if fs.exists(path) else []
    except OSError as err:
        raise OutputError(f"cannot list the output root {root}: {err}") from err
    done: dict[str, Committed] = {}
    for manifest_path in found:
        folder = full_url(fs, manifest_path.rsplit("/", 1)[0])
        manifest = RunFolder(folder).read_manifest()
        if manifest is None or manifest.job != job:
            continue
        label = period_of(manifest.parameters)
        if label is not None:
            done[label] = Committed(folder, manifest.run_id)
    return done


def plan(spec: JobSpec, settings: RunSettings, options: Any, count: int) -> Plan:
    """The last ``count`` periods of ``spec`` and which of them have no committed run under
    ``settings.output_url``; each missing one with its own folder and run id."""
    catch_up: CatchUp | None = spec.catch_up
    if catch_up is None:  # the option exists only on jobs that declare catch-up
        raise TypeError(f"job {spec.name!r} declares no catch-up")
    root = settings.output_url.rstrip("/")
    labels = catch_up.periods(settings, options, count)
    done = committed_runs(root, spec.name, catch_up.period_of)
    result = Plan(root, labels, {k: v for k, v in done.items() if k in labels})
    for label in labels:
        if label in result.committed:
            continue
        own = dataclasses.replace(
            settings, output_url=join(root, label), run_id=f"{settings.run_id}-{label}"
        )
        period_settings, period_options = catch_up.select(own, options, label)
        result.missing.append(Period(label, period_settings, period_options))
    return result
