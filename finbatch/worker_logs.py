"""Expected errors in tasks print their clean message only, once, with no worker traceback.

The runner registers :class:`QuietExpectedErrors` on the cluster; it installs the filter in
every worker's process (and this one, for a cluster of threads).
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

#: distributed's worker log when a heartbeat cannot reach the scheduler.
HEARTBEAT_LOST = "Failed to communicate with scheduler during heartbeat"


def _expected_names() -> tuple[str, ...]:
    from analytics.errors import FinbatchError

    found: list[type[BaseException]] = [FinbatchError]
    for cls in found:
        found += [sub for sub in cls.__subclasses__() if sub not in found]
    return tuple(f"{cls.__name__}(" for cls in found)


class ExpectedTaskErrors(logging.Filter):
    """A task that raised one of finbatch's own errors (bad input: the message names the file
    and the column) is not a crash: distributed's "Compute Failed" record with its traceback
    goes to ``finbatch.tasks`` at debug level (the node's log, ``_logs/`` on AWS Batch, keeps
    it with ``--log-level DEBUG``), and the command line prints the clean message once. So
    does a heartbeat that fails while the cluster closes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(HEARTBEAT_LOST):
            # The scheduler goes first when a cluster closes (after a run or its failure): a
            # worker's heartbeat in flight then fails. A lost scheduler during a run shows as
            # the run's own error (the nodes of a multi-node job: a node lost).
            logging.getLogger("finbatch.tasks").debug(message, exc_info=record.exc_info)
            return False
        if not message.startswith("Compute Failed") or not isinstance(record.args, tuple):
            return True
        if not any(str(arg).startswith(_expected_names()) for arg in record.args):
            return True
        logging.getLogger("finbatch.tasks").debug(message.rstrip(), *record.args)
        return False


def quiet_expected_errors() -> None:
    """Install :class:`ExpectedTaskErrors` in this process (once)."""
    worker = logging.getLogger("distributed.worker")
    if not any(isinstance(f, ExpectedTaskErrors) for f in worker.filters):
        worker.addFilter(ExpectedTaskErrors())


class QuietExpectedErrors(WorkerPlugin):
    """A Dask worker plugin: :func:`quiet_expected_errors` in every worker's process, those
    that join later included (the nodes of a multi-node job)."""

    name = "finbatch-quiet-expected-errors"

    def setup(self, worker: Any) -> None:
        quiet_expected_errors()
