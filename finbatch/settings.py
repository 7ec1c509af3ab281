"""The face's own options: where compute comes from and where results are loaded.

Like the jobs' options these are frozen dataclasses whose fields are command-line options
(:func:`analytics.options.option`), so the command line and :func:`finbatch.run` read one
declaration. Defaults are written here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics.options import defaults_of, option, positive_int

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
