"""No worker traceback on the screen for an expected error.

A task that raises the project's :class:`analytics.errors.FinbatchError` (bad input, a refused
output) fails the run with that error's message, printed once by the driver. Dask's worker
also logs it as ``Compute Failed`` with a traceback, on the terminal of a local run: the plugin
moves those records to DEBUG on the worker, keeps them in the worker's own log (what
``Client.get_worker_logs`` returns: an MNP job writes it to the run's ``_logs/``) and prints
them only with ``--log-level DEBUG``. Every other failure stays as loud as before.
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

#: The exceptions' names (as the worker's record writes them) that are expected failures.
EXPECTED = ("InputError(", "OutputError(")
#: distributed's worker log when a heartbeat cannot reach the scheduler.
HEARTBEAT_LOST = "Failed to communicate with scheduler during heartbeat"


class ExpectedErrors(logging.Filter):
    """Demote a worker's ``Compute Failed`` record of an expected error to DEBUG; ``kept``
    (the worker's log of its own records) still receives it."""

    def __init__(self, kept: logging.Handler | None = None) -> None:
        super().__init__()
        self.kept = kept

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(HEARTBEAT_LOST):
            # The scheduler goes first when a cluster closes (after a run or its failure): a
            # worker's heartbeat in flight then fails. A scheduler lost during a run shows as
            # the run's own error.
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        if record.levelno < logging.ERROR or not str(record.msg).startswith("Compute Failed"):
            return True
        if not any(name in str(record.args) for name in EXPECTED):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        debug = logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        if self.kept is not None and not debug:  # else the logger hands it to the handler
            self.kept.handle(record)
        return debug


class QuietExpectedErrors(WorkerPlugin):
    """Installs :class:`ExpectedErrors` on every worker (idempotent)."""

    name = "finbatch-quiet-expected-errors"

    def setup(self, worker: Any) -> None:
        target = logging.getLogger("distributed.worker")
        if not any(isinstance(f, ExpectedErrors) for f in target.filters):
            target.addFilter(ExpectedErrors(getattr(worker, "_deque_handler", None)))
