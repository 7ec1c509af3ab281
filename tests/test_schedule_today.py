"""``--today``: a scheduled run resolves its relative dates against the schedule's own time.

The wall clock is moved (``analytics.sessions.wall_clock``, the one place the current time is
read) to a later session than the schedule's; with ``--today`` the run processes the same
session or month as it would have on time, without it the answer follows the wall clock.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from analytics import sessions
from tests.conftest import read_manifest, run_cli


def _wall_clock(monkeypatch: pytest.MonkeyPatch, moment: str) -> None:
    when = dt.datetime.fromisoformat(moment)
    monkeypatch.setattr(sessions, "wall_clock", lambda: when)


def test_monthly_backtest_started_late_processes_the_scheduled_month(
    market: Path, scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The schedule fired on 2024-03-01 (a Friday, the first session of March) at 11:00 UTC; the
    # job waited for Spot capacity and starts on 2024-03-05, the third session of March.
    _wall_clock(monkeypatch, "2024-03-05T14:00:00+00:00")
    job = ["backtest", "--input", str(market), "--scheduler", scheduler, "--strategy", "sma-cross"]
    job += ["--grid", "fast=5,10", "--grid", "slow=20,30", "--as-of-month", "previous"]
    late = run_cli([*job, "--output", str(tmp_path / "late"), "--today", "2024-03-01T11:00:00Z"])
    assert late.code == 0, late.stderr
    manifest = read_manifest(str(tmp_path / "late"))
    assert manifest is not None
    # previous month of the first session of March: February; its last session is 2024-02-29.
    assert manifest["parameters"]["as_of_month"] == "2024-02"
    assert manifest["summary"]["end"] == "2024-02-29"
    # Without --today the wall clock decides: the 3rd session is not a month's first, so the
    # month would be skipped: that is the silent skip --today prevents.
    skipped = run_cli([*job, "--output", str(tmp_path / "skipped")])
    assert skipped.code == 0 and "nothing to do" in skipped.stdout
    assert read_manifest(str(tmp_path / "skipped")) is None


def test_daily_tca_delayed_past_midnight_analyses_the_scheduled_session(
    market: Path, scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scheduled 2024-03-28 05:30 New York (09:30 UTC): previous session 2024-03-27. The run
    # starts on Monday 2024-04-01 (2024-03-29 is Good Friday, an NYSE holiday), whose previous
    # session would be 2024-03-28.
    _wall_clock(monkeypatch, "2024-04-01T13:00:00+00:00")
    job = ["tca", "--input", str(market), "--scheduler", scheduler, "--date", "previous-session"]
    on_time = run_cli([*job, "--output", str(tmp_path / "a"), "--today", "2024-03-28T09:30:00Z"])
    assert on_time.code == 0, on_time.stderr
    assert read_manifest(str(tmp_path / "a"))["summary"]["dates"] == ["2024-03-27"]
    by_wall_clock = run_cli([*job, "--output", str(tmp_path / "b")])
    assert by_wall_clock.code == 0, by_wall_clock.stderr
    assert read_manifest(str(tmp_path / "b"))["summary"]["dates"] == ["2024-03-28"]


def test_today_is_checked_before_anything_runs(market: Path, tmp_path: Path) -> None:
    bad = run_cli(
        [
            "tca",
            "--input",
            str(market),
            "--output",
            str(tmp_path / "x"),
            "--today",
            "2024-03-28T09:30",
        ]
    )
    assert bad.code == 2 and "has no time zone" in bad.stderr
    assert not (tmp_path / "x").exists()
