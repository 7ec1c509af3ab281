"""The face's own options: where compute comes from and where results are loaded.

Like the jobs' options these are frozen dataclasses whose fields are command-line options
(:func:`analytics.options.option`), so the command line and :func:`finbatch.run` read one
declaration. Defaults are written here, once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from analytics.errors import InputError
from analytics.options import defaults_of, option, positive_int

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: --workers and --threads-per-worker stop at the machine's CPUs times this, unless --force:
#: more only thrashes the machine.
CPU_FACTOR = 4
SCHEDULER_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
_ADDRESS = re.compile(
    r"^([a-z][a-z0-9+.-]*)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+|[^\s:/]+/[^\s]*)(:\d{1,5})?/?$"
)


def check_address(where: str, value: str, schemes: Sequence[str]) -> None:
    """Refuse a malformed address (``SCHEME://HOST[:PORT]``) with a message naming ``where``."""
    match = _ADDRESS.match(value.strip())
    port = match.group(3) if match else None
    if match is None or match.group(1) not in schemes or (port and int(port[1:]) > 65535):
        raise InputError(
            f"{where} {value[:80]!r} is not an address like {schemes[0]}://HOST:PORT "
            f"(schemes: {', '.join(schemes)})"
        )


#: ``--log-format``: text for people, JSON lines for CloudWatch Logs Insights.
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class ClusterSettings:
    workers: int | None = option(
        None, parse=positive_int, metavar="N", help="LocalCluster workers (default: one per CPU)"
    )
    threads_per_worker: int | None = option(
        None, parse=positive_int, metavar="N", help="threads per worker (default 1)"
    )
    scheduler: str | None = option(
        None, metavar="ADDRESS", help="use this running Dask scheduler (tcp:// or tls://)"
    )
    wait_for_nodes: int = option(
        600,
        parse=positive_int,
        metavar="SECONDS",
        help="AWS Batch MNP main node: how long to wait for the nodes to join (default 600)",
    )
    min_nodes: int | None = option(
        None,
        parse=positive_int,
        metavar="K",
        help="MNP main node: start once K nodes joined, and fail below K (default: all nodes)",
    )
    death_timeout: int = option(
        900,
        parse=positive_int,
        metavar="SECONDS",
        help="MNP child node: how long to look for the main node's scheduler (default 900)",
    )
    insecure: bool = option(
        False,
        switch=True,
        help="MNP: plain TCP between the nodes instead of mutual TLS (not recommended)",
    )
    force: bool = option(
        False,
        switch=True,
        help=f"allow --workers or --threads-per-worker above the machine's CPUs x {CPU_FACTOR}",
    )

    def __post_init__(self) -> None:
        cap = CPU_FACTOR * (os.cpu_count() or 1)
        for flag, value in (
            ("--workers", self.workers),
            ("--threads-per-worker", self.threads_per_worker),
        ):
            if value is not None and value > cap and not self.force:
                raise InputError(
                    f"{flag} {value} is more than this machine's {os.cpu_count()} CPUs x "
                    f"{CPU_FACTOR} = {cap}; give at most {cap}, or add --force"
                )
        if self.scheduler is not None:
            check_address("--scheduler", self.scheduler, SCHEDULER_SCHEMES)


@dataclass(frozen=True)
class DbSettings:
    db_url: str | None = option(
        None,
        metavar="URL",
        help="also load the results into PostgreSQL: postgresql://USER@HOST:PORT/DB?sslmode="
        "require (default: $FINBATCH_DB_URL; the password may come from PGPASSWORD or "
        "--db-secret)",
    )
    db_schema: str = option(
        "finbatch",
        metavar="NAME",
        help="schema of the result tables, created if missing (default finbatch)",
    )
    db_secret: str | None = option(
        None,
        metavar="NAME",
        help="AWS Secrets Manager secret (name or ARN) holding the RDS credentials",
    )


def recorded_defaults() -> dict[str, Any]:
    """The defaults of the options the manifest records beside the job's (cluster, database):
    the report folds those a run left at them."""
    return {**defaults_of(ClusterSettings), **defaults_of(DbSettings)}
