"""The Python API: run a job and get its tables back as pandas frames.

>>> import finbatch
>>> r = finbatch.run("market-performance", input="demo/data", output="demo/runs/mp")
>>> r.table("metrics").head()

Options are the command line's, by their field names (``--as-of`` is ``as_of``); values may be
Python objects (``confidence=(0.95, 0.99)``) or the command line's text (``"0.95,0.99"``).
Errors raise :class:`finbatch.InputError` (bad arguments or input, the command line's exit 2)
or :class:`finbatch.FinbatchError` (anything else the user can act on).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analytics import jobs
from analytics.errors import FinbatchError, InputError
from analytics.jobs.contract import RunSettings
from analytics.options import build
from finbatch.settings import ClusterSettings, DbSettings

if TYPE_CHECKING:
    import pandas as pd

    from analytics.run.manifest import Manifest

log = logging.getLogger("finbatch")


@dataclass(frozen=True)
class Run:
    """A committed run: its manifest, its tables and its report."""

    manifest: Manifest
    output: str
    report_path: str | None = None

    @classmethod
    def open(cls, output: str) -> Run:
        """The run committed in ``output`` (a folder or ``s3://`` URL)."""
        from analytics.report.page import REPORT_FILE
        from analytics.run.committed import CommittedRun

        view = CommittedRun.load(output)
        return cls(view.manifest, view.output_url, f"{view.output_url}/{REPORT_FILE}")

    @property
    def tables(self) -> tuple[str, ...]:
        """The names of the run's tables."""
        return self.manifest.tables

    def table(self, name: str) -> pd.DataFrame:
        """The committed table ``name`` as a pandas frame."""
        from analytics.run.committed import CommittedRun

        if name not in self.manifest.outputs:
            raise FinbatchError(
                f"the run {self.manifest.run_id!r} has no table {name!r}; "
                f"its tables: {', '.join(self.tables)}"
            )
        frame: pd.DataFrame = CommittedRun(self.manifest, self.output).table(name).to_pandas()
        return frame


def _take(
    cls: type, values: dict[str, Any], renames: Mapping[str, str] | None = None
) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    renames = renames or {}
    taken = {}
    for key in list(values):
        field = renames.get(key, key)
        if field in names:
            taken[field] = values.pop(key)
    return taken


def run(
    job: str,
    *,
    input: str,
    output: str,
    scheduler: str | None = None,
    **options: Any,
) -> Run:
    """Run ``job`` over ``input`` into ``output`` and return the committed :class:`Run`.

    ``scheduler`` is a running Dask scheduler's address; without it a LocalCluster of this
    machine runs the job (``workers=`` and ``threads_per_worker=`` size it). The common options
    (``start``, ``end``, ``symbols``, ``run_id``, ``overwrite``, ...) and the job's own go in
    ``options``.
    """
    from finbatch import runner

    spec = jobs.get(job)
    values = dict(options)
    where = f"{job}: "
    common = {"input_url": input, "output_url": output}
    common.update(_take(RunSettings, values, {"input": "input_url", "output": "output_url"}))
    settings = build(RunSettings, common, where=where)
    cluster = build(
        ClusterSettings, {"scheduler": scheduler, **_take(ClusterSettings, values)}, where=where
    )
    db = build(DbSettings, _take(DbSettings, values), where=where)
    job_options = build(spec.options, values, where=where)
    if getattr(job_options, "catch_up", None) is not None:
        raise InputError(
            f"{job}: catch_up runs one run per missing period: use the command line's --catch-up"
        )
    outcome = runner.run(spec, settings, job_options, cluster, db, say=log.info)
    if outcome.manifest is None:
        raise FinbatchError(f"{job}: this process ran an MNP worker node, not the job")
    if outcome.failures:
        raise FinbatchError(
            f"{job}: the run {outcome.manifest.run_id!r} is committed in {outcome.output_url}, "
            "but " + "; ".join(outcome.failures)
        )
    return Run(outcome.manifest, outcome.output_url.rstrip("/"), outcome.report_url)
