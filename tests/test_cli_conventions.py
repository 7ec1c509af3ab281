"""The command line behaves like its peers: --version, no abbreviations, "did you mean", the
AWS region message, options listed in --help, JSON log lines, and a bad-input run whose stderr
holds the clean message and no traceback."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.version import code_version
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


def finbatch(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m finbatch ARGS`` in a real process, its stderr a pipe (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "finbatch", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=dict(os.environ if env is None else env),
        timeout=300,
    )


def test_version() -> None:
    result = finbatch("--version")
    assert result.returncode == 0, result.stderr
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    package = code_version({}).split("+", 1)[0]
    # The commit of this checkout (.dirty while files differ from it).
    assert re.fullmatch(rf"finbatch {re.escape(package)}\+g{head[:12]}(\.dirty)?\n", result.stdout)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        # An abbreviation of --input is refused (it is unknown), even before --input is missing.
        (["market-performance", "--inp", "x", "--output", "y"], "unrecognized arguments: --inp"),
        (["batch", "status", "ID", "--reg", "eu-west-1"], "unrecognized arguments: --reg"),
        (
            ["batch", "submit", "risk", "--input", "s3://d", "--output", "s3://r/x", "--que", "q"],
            "unknown option --que",
        ),
    ],
)
def test_abbreviations_are_refused(argv: list[str], needle: str) -> None:
    result = run_cli(argv)
    assert result.code == 2
    assert needle in result.stderr


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["market-performance", "--inptu", "x", "--output", "y"],
            "unrecognized arguments: --inptu; did you mean --input?",
        ),
        (["market-perfromance", "--input", "x"], "did you mean market-performance?"),
        (["batch", "stauts", "ID"], "did you mean status?"),
        (["batch", "logs", "ID", "--nod", "1"], "did you mean --node?"),
        (
            ["batch", "submit", "risk", "--input", "s3://d", "--output", "s3://r/x", "--queu", "q"],
            "did you mean --queue?",
        ),
    ],
)
def test_did_you_mean(argv: list[str], needle: str) -> None:
    result = run_cli(argv)
    assert result.code == 2
    assert needle in result.stderr


def test_generate_data_takes_n_symbols_and_refuses_the_old_spelling(tmp_path: Path) -> None:
    base = ["generate-data", "--output", str(tmp_path / "m"), "--start", "2024-01-02"]
    base += ["--end", "2024-01-05", "--intraday-symbols", "0"]
    old = run_cli([*base, "--symbols", "3"])
    assert old.code == 2
    assert "generate-data takes a count: --n-symbols N" in old.stderr
    assert not (tmp_path / "m").exists()
    new = run_cli([*base, "--n-symbols", "3"])
    assert new.code == 0, new.stderr
    symbols = set(pq.read_table(tmp_path / "m" / "prices").column("symbol").to_pylist())
    assert len(symbols) == 4  # 3 and SPX


def _no_region_env(region: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    env["AWS_CONFIG_FILE"] = "/nonexistent/aws-config"
    env.pop("AWS_PROFILE", None)
    if region is not None:
        env["AWS_REGION"] = region
    return env


@pytest.mark.parametrize("region", [None, ""])
@pytest.mark.parametrize(
    "argv",
    [
        ["status", "ID"],
        ["logs", "ID"],
        ["list"],
        ["cancel", "ID"],
        [
            "submit",
            "market-performance",
            "--input",
            "s3://d",
            "--output",
            "s3://r/x",
            "--queue",
            "q",
        ],
    ],
)
def test_a_missing_or_empty_region_is_one_line(argv: list[str], region: str | None) -> None:
    result = finbatch("batch", *argv, env=_no_region_env(region))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "finbatch: error: no AWS region: pass --region REGION, or set AWS_REGION (it is "
        "missing or empty), or a region in the profile's ~/.aws/config"
    ]


def test_batch_subcommands_list_their_options_in_help() -> None:
    submit = run_cli(["batch", "submit", "--help"])
    assert submit.code == 0
    for option in ("--queue Q", "--nodes N|auto", "--spot-shards K", "--dry-run", "--region"):
        assert f"\n  {option}" in submit.stdout, option
    logs = run_cli(["batch", "logs", "--help"])
    assert "\n  --node I " in logs.stdout


def test_json_log_lines_parse(market: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    result = finbatch(
        "market-performance", "--input", str(market), "--output", out, "--run-id", "json-1"
    )  # stderr is a pipe: JSON lines by default
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records
    for record in records:
        assert {"time", "level", "job", "run_id", "node", "message"} <= set(record)
        assert record["job"] == "market-performance"
        assert record["node"] is None  # not a node of an AWS Batch job
    assert {r["run_id"] for r in records} - {None} == {"json-1"}
    text = finbatch("market-performance", "--input", str(market), "--output", out)
    assert text.returncode == 2  # the same folder holds json-1: refused before any log line
    forced = finbatch(
        "market-performance",
        "--input",
        str(market),
        "--output",
        str(tmp_path / "t"),
        "--log-format",
        "text",
    )
    assert forced.returncode == 0
    assert not any(line.startswith("{") for line in forced.stderr.splitlines())
    assert " INFO " in forced.stderr


@pytest.fixture
def busy_dashboard_port() -> Iterator[None]:
    """Port 8787 taken while the test runs (by this socket, or by whoever holds it already)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", 8787))
        probe.listen()
    except OSError:
        pass
    try:
        yield
    finally:
        probe.close()


def test_bad_input_prints_the_clean_message_only(
    market: Path, tmp_path: Path, busy_dashboard_port: None
) -> None:
    data = tmp_path / "market"
    shutil.copytree(market / "prices", data / "prices")
    path = sorted((data / "prices").rglob("*.parquet"))[0]
    table = pq.read_table(path, partitioning=None)
    close = table.column("close").to_numpy().copy()
    close[3] = np.nan
    index = table.column_names.index("close")
    pq.write_table(table.set_column(index, "close", pa.array(close)), path)
    out = tmp_path / "run"
    # Two worker processes: the bad value is found inside a task on a worker.
    result = finbatch(
        "market-performance",
        "--input",
        str(data),
        "--output",
        str(out),
        "--workers",
        "2",
        "--log-format",
        "text",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Compute Failed" not in result.stderr
    assert "Warning" not in result.stderr  # the busy dashboard port is a note, not a warning
    assert "the dashboard's port 8787 is taken: http://127.0.0.1:" in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("finbatch: error")]
    assert len(errors) == 1
    assert str(path) in errors[0] and "column 'close'" in errors[0]
    assert not (out / "_manifest.json").exists()


def test_a_log_line_clears_the_bar_which_comes_back_below(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from analytics.run import progress

    class Bar:
        stream = None
        line = "\rjob: reading [###          ] 1/10 files (10%)"

    progress._DRAWN["bar"] = Bar()  # type: ignore[assignment]
    try:
        with progress.bar_paused():
            print("a log line", flush=True)
    finally:
        progress._DRAWN.clear()
    assert capsys.readouterr().out == "\r\033[Ka log line\n" + Bar.line + "\033[K"
    with progress.bar_paused():  # no bar: nothing but the line
        print("another")
    assert capsys.readouterr().out == "another\n"
