"""The parsers of ``finbatch JOB`` (built from the job registry) and their shared pieces."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from analytics.jobs.contract import JobSpec, RunSettings
from analytics.options import add_options
from finbatch.settings import LOG_LEVELS, ClusterSettings, DbSettings

EPILOG = "Exit codes: 0 success, 2 bad arguments or bad input, 1 any other failure."


class Parser(argparse.ArgumentParser):
    """argparse's parser whose errors never echo a secret or a 300-digit number."""

    def error(self, message: str) -> NoReturn:
        from analytics.errors import readable
        from analytics.secrecy import redact

        super().error(readable(redact(message)))


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser that refuses abbreviated options (a future option cannot change an old
    script's meaning)."""
    return Parser(prog=prog, description=description, epilog=EPILOG, allow_abbrev=False)


def log_level(target: argparse.ArgumentParser | Any) -> None:
    target.add_argument("--log-level", default="INFO", choices=LOG_LEVELS)


def job_parser(spec: JobSpec) -> argparse.ArgumentParser:
    """The parser of ``finbatch JOB``: the common options, then the job's own."""
    parser = new_parser(f"finbatch {spec.name}", spec.help)
    add_options(parser.add_argument_group("data and run"), RunSettings)
    log_level(parser)
    add_options(parser.add_argument_group(f"{spec.name} options"), spec.options)
    add_options(parser.add_argument_group("cluster"), ClusterSettings)
    add_options(
        parser.add_argument_group("database (results also loaded into PostgreSQL / RDS)"),
        DbSettings,
    )
    return parser
