"""Secrets never printed (issue 19, defect 6): one redaction for messages, logs and manifests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analytics.secrecy import redact

SECRET = "hunter2-s3cret"
FINBATCH = (sys.executable, "-m", "finbatch")
DB_ARG = f"--db-url postgresql://u:{SECRET}@h/db"
#: Nothing listens on port 1: the load fails after the commit.
DB_URL = f"postgresql://alice:{SECRET}@127.0.0.1:1/db"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"postgresql://alice:{SECRET}@db.example:5432/prod", "postgresql://alice:***@db.example"),
        (f"host=h user=alice password={SECRET} dbname=x", "password=*** dbname=x"),
        (f"finbatch tca '--db-url postgresql://a:{SECRET}@h/d'", "--db-url ***"),
        (f"--db-url=host=h password={SECRET}", "--db-url=***"),
        (f'{{"aws_secret_access_key": "{SECRET}"}}', '"aws_secret_access_key": "***"'),
        (f"FINBATCH_DB_URL=postgresql://u:{SECRET}@h/d", "FINBATCH_DB_URL=***"),
    ],
)
def test_redact_hides_the_secret(text: str, kept: str) -> None:
    out = redact(text)
    assert SECRET not in out
    assert kept in out


def test_redact_leaves_plain_text_alone() -> None:
    text = "--db-url is not a PostgreSQL URL; s3://bucket/key and http://host:9000 stay"
    assert redact(text) == text


def _streams(proc: subprocess.CompletedProcess[str], folder: Path | None = None) -> str:
    files = (
        ""
        if folder is None
        else "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    )
    return proc.stdout + proc.stderr + files


def test_batch_run_with_a_wrong_parameter_count_prints_no_secret() -> None:
    proc = subprocess.run(
        [*FINBATCH, "batch", "run", "tca", "in", "out", "none", DB_ARG, "extra"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "expected 5 parameters" in proc.stderr and "got 6" in proc.stderr
    assert SECRET not in _streams(proc)


def test_a_failing_database_load_prints_and_records_no_secret(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    """The run commits, the load fails (nothing listens on port 1): exit 75; the password is in
    no output stream, no log line (DEBUG) and no file of the run folder."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            *FINBATCH,
            "market-performance",
            "--input",
            str(market),
            "--output",
            str(out),
            *("--scheduler", scheduler, "--log-level", "DEBUG", "--db-url", DB_URL),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 75, proc.stderr  # a database outage: tried again later
    assert "database load" in proc.stderr
    assert (out / "_manifest.json").exists()
    assert (
        "alice:***@" in (out / "_manifest.json").read_text()
        or "password=***" in (out / "_manifest.json").read_text()
    )
    assert SECRET not in _streams(proc, out)
