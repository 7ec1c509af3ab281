"""Progress in the job's own units: phases in order with their totals, rate and ETA; a bar on a
terminal that log lines do not break; plain, parseable lines elsewhere."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import entrypoint
from analytics.run.progress import LINE, Bar, Lines, Progress, describe, rate_and_eta
from finbatch import logs
from tests.conftest import read_manifest


class Tty(io.StringIO):
    """A terminal that records what is written to it."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def screen(text: str) -> list[str]:
    """The lines a terminal shows for ``text``: ``\\r`` returns to the line's start, ``ESC[K``
    clears to its end, ``\\n`` moves to the next line."""
    lines: list[str] = []
    cur: list[str] = []
    col = 0
    i = 0
    while i < len(text):
        if text.startswith("\033[K", i):
            del cur[col:]
            i += 3
            continue
        ch = text[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(cur))
            cur, col = [], 0
        else:
            if col < len(cur):
                cur[col] = ch
            else:
                cur.append(ch)
            col += 1
        i += 1
    if cur:
        lines.append("".join(cur))
    return lines


def phases_of(lines: list[str], job: str) -> list[tuple[str, int, str]]:
    """(phase, total, unit) of each phase's final line, in order."""
    found = []
    for line in lines:
        m = LINE.match(line)
        if m and m["job"] == job and " done in " in m["rest"]:
            assert m["done"] == m["total"], line
            found.append((m["phase"], int(m["total"]), m["unit"]))
    return found


# --------------------------------------------------------------------------------------------
# The model and its two sinks, on a clock the test moves.


def test_rate_and_eta() -> None:
    # 2 of 5 files in 4 s: 0.5 files/s; the 3 left take 3 / 0.5 = 6 s.
    assert rate_and_eta(2, 5, 4.0) == (0.5, 6.0)
    assert rate_and_eta(0, 5, 4.0) == (0.0, None)  # no rate yet
    assert rate_and_eta(3, None, 2.0) == (1.5, None)  # no total: no ETA


def test_a_line_says_phase_count_unit_rate_and_eta() -> None:
    clock = Clock()
    out = io.StringIO()
    progress = Progress("backtest", Lines(out, interval=10.0), clock)
    progress.start("computing", 120, "combinations")
    clock.now = 4.0
    progress.update(40)  # within 10 s of the start line: no line
    clock.now = 12.0
    progress.update(96)  # 96 / 12 s = 8.0 combinations/s; 24 left / 8 = 3.0 s
    clock.now = 14.5
    progress.end()
    assert out.getvalue().splitlines() == [
        "backtest: computing 0/120 combinations (0%)",
        "backtest: computing 96/120 combinations (80%) 8.0 combinations/s ETA 3.0 s",
        "backtest: computing 120/120 combinations done in 14 s",
    ]
    for line in out.getvalue().splitlines():
        m = LINE.match(line)
        assert m and m["phase"] == "computing" and m["unit"] == "combinations"


def test_lines_come_at_most_every_interval_and_at_each_phase_start_and_end() -> None:
    clock = Clock()
    out = io.StringIO()
    progress = Progress("risk", Lines(out, interval=10.0), clock)
    progress.start("reading", 30, "files")
    for t in range(1, 31):  # a file a second for 30 s
        clock.now = float(t)
        progress.update(t)
    progress.start("writing", 6, "tables")  # ends reading
    progress.end()
    lines = out.getvalue().splitlines()
    # Start (t=0), then t=10, 20 and 30 (each 10 s after the last line), then the end line.
    done = [m["done"] for m in map(LINE.match, lines[:5]) if m]
    assert done == ["0", "10", "20", "30", "30"]
    assert lines[4].endswith("done in 30 s")
    assert lines[5:] == ["risk: writing 0/6 tables (0%)", "risk: writing 6/6 tables done in 0.0 s"]


def test_a_log_line_does_not_land_inside_the_bar() -> None:
    tty = Tty()
    clock = Clock()
    progress = Progress("market-performance", Bar(tty, interval=0.0), clock)
    logger = logging.getLogger("tests.progress.bar")
    logger.propagate = False
    handler = logs._Handler(tty)  # finbatch's own handler: it clears the bar first
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        progress.start("reading", 4, "files")
        clock.now = 1.0
        progress.update(1)
        logger.warning("a log line")
        clock.now = 2.0
        progress.update(2)
        progress.end()
    finally:
        logger.removeHandler(handler)
    shown = screen(tty.getvalue())
    assert shown[0] == "WARNING a log line"
    assert shown[1].startswith("market-performance: reading 4/4 files done in")
    assert len(shown) == 2
    # The same writes through a plain handler: the log line is glued to the bar's line.
    plain = Tty()
    progress = Progress("market-performance", Bar(plain, interval=0.0), clock)
    progress.start("reading", 4, "files")
    print("WARNING a log line", file=plain)
    assert screen(plain.getvalue())[0].endswith("(0%)WARNING a log line")


# --------------------------------------------------------------------------------------------
# Real jobs on the shared two-process cluster.


@contextlib.contextmanager
def terminal(level: int = logging.INFO) -> Iterator[Tty]:
    """stdout and stderr on one fake terminal, with finbatch's log handler writing to it."""
    tty = Tty()
    handler = logs._Handler(tty)
    handler.setFormatter(logging.Formatter(logs.TEXT_FORMAT))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    handler.addFilter(logs._quiet_dask)
    try:
        with contextlib.redirect_stdout(tty), contextlib.redirect_stderr(tty):
            yield tty
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _symbols(market: Path, n: int) -> list[str]:
    names = pd.read_parquet(market / "prices", columns=["symbol"])["symbol"].astype(str)
    return sorted(set(names) - {"SPX"})[:n]


def test_market_performance_on_a_terminal(market: Path, tmp_path: Path, scheduler: str) -> None:
    symbols = _symbols(market, 5)
    files = len(list((market / "prices").rglob("*.parquet")))
    out = tmp_path / "mp"
    with terminal() as tty:
        code = entrypoint.main(
            [
                "market-performance",
                "--input",
                str(market),
                "--output",
                str(out),
                "--symbols",
                ",".join(symbols),
                "--scheduler",
                scheduler,
            ]
        )
    assert code == 0, tty.getvalue()
    shown = screen(tty.getvalue())
    assert phases_of(shown, "market-performance") == [
        ("reading", files, "files"),
        ("computing", 5, "symbols"),
        ("committing", 1, "manifest"),
    ]
    # The resume record's INFO lines come while a bar is drawn: each is a line of its own.
    logged = [line for line in shown if " INFO " in line]
    assert any("progress recorded" in line for line in logged)
    for line in shown:
        assert not (" INFO " in line and "market-performance: " in line.split(" INFO ")[0])
        assert line.count("market-performance: ") <= 1 or "committed" in line, line


def test_backtest_counts_its_combinations(market: Path, tmp_path: Path, scheduler: str) -> None:
    out = tmp_path / "bt"
    # fast in {2, 3, 4} x slow in {10, 20, 30, 40}: 12 combinations, every fast < slow.
    grid = ["--grid", "fast=2:4:1", "--grid", "slow=10,20,30,40"]
    with terminal() as tty:
        code = entrypoint.main(
            [
                *("backtest", "--input", str(market), "--output", str(out)),
                *("--strategy", "sma-cross", *grid, "--scheduler", scheduler),
            ]
        )
    assert code == 0, tty.getvalue()
    files = len(list((market / "prices").rglob("*.parquet")))
    # Writing: top and equity (2), validation (1), the baseline's summary part (1).
    assert phases_of(screen(tty.getvalue()), "backtest") == [
        ("reading", files, "files"),
        ("computing", 12, "combinations"),
        ("writing", 4, "parts"),
        ("committing", 1, "manifest"),
    ]


def test_tca_off_a_terminal_is_parseable_lines(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    out = tmp_path / "tca"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = entrypoint.main(
            ["tca", "--input", str(market), "--output", str(out), "--scheduler", scheduler]
        )
    assert code == 0
    text = stdout.getvalue()
    assert "\r" not in text and "\033" not in text
    progress = [m for m in map(LINE.match, text.splitlines()) if m and m["job"] == "tca"]
    phases = [m["phase"] for m in progress]
    # Each phase: its start line, then its end line (the run is shorter than a line's interval).
    assert phases == [p for p in ("reading", "computing", "writing", "committing") for _ in "se"]
    ends = {m["phase"]: m for m in progress if " done in " in m["rest"]}
    # Every order of every file (the run selects no dates).
    orders = sum(pq.read_metadata(f).num_rows for f in (market / "orders").rglob("*.parquet"))
    manifest = read_manifest(str(out))
    assert manifest is not None and manifest["summary"]["orders"] == orders
    assert (ends["computing"]["done"], ends["computing"]["unit"]) == (str(orders), "orders")
    files = sum(len(f) for f in manifest["inputs"].values() for f in [f["files"]])
    assert int(ends["reading"]["total"]) == files
    parts = sum(len(t["files"]) for t in manifest["outputs"].values())
    assert int(ends["writing"]["total"]) == parts


def test_a_failed_job_leaves_no_bar_behind(market: Path, tmp_path: Path, scheduler: str) -> None:
    data = tmp_path / "market"
    shutil.copytree(market / "prices", data / "prices")
    path = sorted((data / "prices").rglob("*.parquet"))[0]
    table = pq.read_table(path, partitioning=None)
    close = table.column("close").to_numpy().copy()
    close[3] = np.nan  # found by a reading task, on a worker, while the bar is drawn
    pq.write_table(
        table.set_column(table.column_names.index("close"), "close", pa.array(close)), path
    )
    with terminal() as tty:
        code = entrypoint.main(
            [
                "market-performance",
                "--input",
                str(data),
                "--output",
                str(tmp_path / "bad"),
                "--scheduler",
                scheduler,
            ]
        )
    assert code == 2
    shown = screen(tty.getvalue())
    errors = [line for line in shown if "finbatch: error" in line]
    assert len(errors) == 1 and errors[0] == shown[-1]
    assert errors[0].startswith("finbatch: error: ") and "column 'close'" in errors[0]
    assert "committing" not in tty.getvalue()


def test_describe_without_a_total() -> None:
    from analytics.run.progress import State

    state = State("j", "computing", "orders", None, done=30, started=0.0)
    # 30 orders in 10 s: 3.0 orders/s; no total, so no percentage and no ETA.
    assert describe(state, 10.0) == "j: computing 30/? orders 3.0 orders/s"
    assert LINE.match(describe(state, 10.0))


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.42, "0.4 s"), (12.4, "12 s"), (185, "3 min 05 s")]
)
def test_format_seconds(seconds: float, text: str) -> None:
    from analytics.run.progress import format_seconds

    assert format_seconds(seconds) == text


# --------------------------------------------------------------------------------------------
# An expected error in a task: no worker traceback on the screen, but in the worker's own log
# (which an MNP job writes to the run's _logs/), at DEBUG.


def _expected_failure(tag: str) -> None:
    from analytics.errors import InputError

    raise InputError(f"bad value {tag}")


def _unexpected_failure(tag: str) -> None:
    raise RuntimeError(f"broken {tag}")


def test_an_expected_error_is_kept_in_the_worker_log_at_debug(scheduler: str) -> None:
    import uuid

    from distributed import Client, wait

    from cluster.quiet import QuietExpectedErrors

    tag = uuid.uuid4().hex
    with Client(scheduler) as client:
        client.register_plugin(QuietExpectedErrors())
        futures = [
            client.submit(_expected_failure, tag, pure=False),
            client.submit(_unexpected_failure, tag, pure=False),
        ]
        wait(futures)
        assert [f.status for f in futures] == ["error", "error"]
        entries = [e for lines in client.get_worker_logs().values() for e in lines]
    mine = [(level, msg) for level, msg in entries if tag in msg and "Compute Failed" in msg]
    expected = [level for level, msg in mine if "InputError(" in msg]
    unexpected = [level for level, msg in mine if "RuntimeError(" in msg]
    assert expected == ["DEBUG"]
    assert unexpected == ["ERROR"]
    assert any("Traceback" in msg for _, msg in mine if "InputError(" in msg)
