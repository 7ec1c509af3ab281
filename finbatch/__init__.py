"""finbatch: batch market analytics (performance, risk, backtests, TCA) as Dask jobs.

The face of the project: the command line (:mod:`finbatch.cli`), the Python API
(:func:`run`, :class:`Run`) and the AWS Batch tools (:mod:`finbatch.batch`). Importing it is
cheap; the heavy libraries load when a job runs.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from analytics.errors import FinbatchError, InputError

if TYPE_CHECKING:
    from finbatch.api import Run, run

try:
    __version__ = metadata.version("finbatch")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["FinbatchError", "InputError", "Run", "__version__", "run"]


def __getattr__(name: str) -> Any:
    if name in ("run", "Run"):
        from finbatch import api

        return getattr(api, name)
    raise AttributeError(f"module 'finbatch' has no attribute {name!r}")
