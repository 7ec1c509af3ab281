"""The job registry: the only list of finbatch's jobs.

Every package under ``analytics/jobs/`` that defines ``JOB`` (a
:class:`~analytics.jobs.contract.JobSpec`) is a job; so is every module named in the
``FINBATCH_JOBS`` environment variable (comma-separated module names, each defining ``JOB``),
and every spec passed to :func:`register`. Adding a job is adding one package.

Finding the jobs imports only their light ``__init__`` modules (see the contract).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading

from analytics.errors import InputError
from analytics.jobs.contract import JobSpec

#: Extra job modules to load, for jobs that live outside this package (plug-ins, tests).
JOBS_VARIABLE = "FINBATCH_JOBS"

_lock = threading.Lock()
_registry: dict[str, JobSpec] = {}
_state = {"loaded": False}


def register(spec: JobSpec) -> JobSpec:
    """Add a job (checked); a name taken by another spec is an error."""
    spec.check()
    with _lock:
        found = _registry.get(spec.name)
        if found is not None and found is not spec:
            raise ValueError(f"a job named {spec.name!r} is already registered")
        _registry[spec.name] = spec
    return spec


def _load_module(name: str) -> None:
    module = importlib.import_module(name)
    spec = getattr(module, "JOB", None)
    if not isinstance(spec, JobSpec):
        raise TypeError(f"job module {name!r} defines no JOB = JobSpec(...)")
    register(spec)


def _load() -> None:
    if _state["loaded"]:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.ispkg:
            _load_module(f"{__name__}.{info.name}")
    for name in os.environ.get(JOBS_VARIABLE, "").split(","):
        if name.strip():
            _load_module(name.strip())
    _state["loaded"] = True


def jobs() -> dict[str, JobSpec]:
    """Every registered job by name, in name order."""
    _load()
    with _lock:
        return dict(sorted(_registry.items()))


def get(name: str) -> JobSpec:
    """The job called ``name``; :class:`InputError` naming the jobs there are."""
    found = jobs().get(name)
    if found is None:
        raise InputError(f"no job named {name!r}; the jobs are: {', '.join(jobs())}")
    return found
