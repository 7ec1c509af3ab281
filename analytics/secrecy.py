"""One redaction for every message, log line and manifest field: secrets never printed.

What is hidden: the password of a URL (``scheme://user:PASSWORD@host``), a conninfo's
``password=...``, the value after ``--db-url`` (a URL or a conninfo, whole: a malformed one
cannot be parsed to find its password), and AWS secret keys and session tokens.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

_PATTERNS = (
    # the value of --db-url / FINBATCH_DB_URL, whatever it holds (quoted or not)
    (
        re.compile(r"(--db-url[= ]|FINBATCH_DB_URL=)('[^']*'|\"[^\"]*\"|\S*(?:://|=)\S*)"),
        rf"\1{MASK}",
    ),
    # scheme://user:password@host
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"]*:)[^@\s'\"]*@"), rf"\1{MASK}@"),
    # conninfo password=..., and secrets named in key=value or JSON
    (
        re.compile(
            r"((?:password|passwd|secret_access_key|aws_secret_access_key|session_token|"
            r"aws_session_token)['\"]?\s*[=:]\s*['\"]?)[^\s'\",}]+",
            re.IGNORECASE,
        ),
        rf"\1{MASK}",
    ),
)


def redact(text: Any) -> str:
    """``text`` (anything printable) with every secret replaced by ``***``."""
    out = str(text)
    for pattern, replacement in _PATTERNS:
        out = pattern.sub(replacement, out)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's final message (tracebacks included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
