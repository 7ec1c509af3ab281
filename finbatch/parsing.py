"""The parsers of ``finbatch JOB`` (built from the job registry) and their shared pieces."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

from analytics.jobs.contract import JobSpec, RunSettings
from analytics.options import add_options
from finbatch.settings import LOG_FORMATS, LOG_LEVELS, ClusterSettings, DbSettings

EPILOG = (
    "Exit codes: 0 success, 2 bad arguments or bad input, 75 storage or the database kept "
    "failing past their retries (a later attempt may succeed), 1 any other failure."
)


def suggestion(word: str, known: Iterable[str]) -> str:
    """``; did you mean X?`` for the closest of ``known`` to a mistyped ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


class Parser(argparse.ArgumentParser):
    """An argument parser that refuses abbreviated options (a future option cannot change what
    an old script means), and says "did you mean" for a mistyped option or command. Its
    subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def options(self) -> list[str]:
        """Every option this parser and its subcommands know."""
        flags = [flag for action in self._actions for flag in action.option_strings]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags += [f for a in sub._actions for f in a.option_strings if f not in flags]
        return flags

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """Refuse an unknown option first, even before a missing required one (``--inp URL``
        is an unknown option, not a missing ``--input``). A parser whose trailing arguments
        belong to another (a subcommand, a REMAINDER) leaves them to it."""
        words = list(sys.argv[1:] if args is None else args)
        delegates = any(
            isinstance(a, argparse._SubParsersAction) or a.nargs == argparse.REMAINDER
            for a in self._actions
        )
        if not delegates:
            known = set(self.options())
            unknown = [
                w
                for w in words[: words.index("--") if "--" in words else len(words)]
                if w.startswith("--") and w.split("=", 1)[0] not in known
            ]
            if unknown:
                self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return super().parse_args(words, namespace)

    def error(self, message: str) -> NoReturn:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            hints = [
                f"{word}{suggestion(word.split('=', 1)[0], self.options())}"
                for word in unknown.group(1).split()
                if word.startswith("-")
            ]
            message = "unrecognized arguments: " + ", ".join(hints or [unknown.group(1)])
        choice = re.match(
            r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message
        )
        if choice:
            known = re.findall(r"'([^']*)'", choice.group(3)) or choice.group(3).split(", ")
            message += suggestion(choice.group(2), known)
        from analytics.errors import readable
        from analytics.secrecy import redact

        self.print_usage(sys.stderr)  # never echoes a secret or a 300-digit number
        self.exit(2, f"{self.prog}: error: {readable(redact(message))}\n")


def new_parser(prog: str, description: str) -> Parser:
    """A :class:`Parser` with the exit codes as its epilog."""
    return Parser(prog=prog, description=description, epilog=EPILOG)


def log_level(target: argparse.ArgumentParser | Any) -> None:
    """``--log-level`` and ``--log-format``, which every command has."""
    target.add_argument("--log-level", default="INFO", choices=LOG_LEVELS)
    target.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="text, or JSON lines (time, level, job, run_id, node, message) for CloudWatch "
        "Logs Insights (default: text on a terminal, json otherwise)",
    )


def job_parser(spec: JobSpec) -> Parser:
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
