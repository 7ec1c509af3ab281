"""The project's exceptions and the exit codes they map to."""

from __future__ import annotations

import re

#: A number longer than this many digits is named by its length in a message.
MAX_DIGITS = 24
_LONG_NUMBER = re.compile(rf"\d(?:,?\d){{{MAX_DIGITS},}}")


def readable(message: str) -> str:
    """``message`` with every very long number replaced by its length: a 300-digit value
    someone typed reads ``<a 301-digit number>``."""
    return _LONG_NUMBER.sub(
        lambda m: f"<a {sum(c.isdigit() for c in m.group())}-digit number>", message
    )


EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
#: EX_TEMPFAIL (sysexits.h): storage or the database kept failing past their own retries; the
#: job definitions retry this code (the input may be fine, a later attempt may succeed).
EXIT_TEMPFAIL = 75


class FinbatchError(Exception):
    """A failure the user can act on; the message says what was found and the fix."""

    exit_code = EXIT_FAILURE


class InputError(FinbatchError):
    """Bad arguments or bad input data (exit code 2).

    The message names the dataset, the file and the column where they are known. Raised inside
    Dask tasks too: it must stay picklable, so it keeps a single string argument.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        dataset: str | None = None,
        file: str | None = None,
        column: str | None = None,
    ) -> None:
        where = ", ".join(
            f"{label} {value!r}"
            for label, value in (("dataset", dataset), ("file", file), ("column", column))
            if value
        )
        super().__init__(f"{where}: {message}" if where else message)


class OutputError(FinbatchError):
    """The output folder cannot be written as asked (exit code 2: the arguments must change)."""

    exit_code = EXIT_BAD_INPUT


class TemporaryFailure(FinbatchError):
    """A service kept failing past its own retries (exit code 75, EX_TEMPFAIL): the input may
    be fine and a later attempt may succeed, so AWS Batch retries the job."""

    exit_code = EXIT_TEMPFAIL


class StorageError(TemporaryFailure):
    """Storage (S3) kept failing after its retries: throttling, resets, timeouts (exit code 75)."""


class AlreadyCommitted(FinbatchError):
    """The run's work is committed already (a resubmitted shard, a caught-up session): the
    command exits 0 with ``finbatch: nothing to do: <message>``."""

    exit_code = EXIT_OK
