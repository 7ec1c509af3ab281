"""``--catch-up N``: every one of the last N sessions (months) without a committed run under the
output root, oldest first, each into ``ROOT/<period>`` (analytics/run/catchup.py).

The market of tests/conftest.py has intraday data (orders, fills, bars) for its last two
sessions only, 2024-03-27 and 2024-03-28, and prices from 2023-10-02 to 2024-03-28.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from analytics import sessions
from analytics.errors import InputError
from tests.conftest import read_manifest, run_cli

# Several whole runs per test: outside the fast lane.
pytestmark = pytest.mark.slow

D = dt.date.fromisoformat


def test_last_sessions_and_months_on_the_exchange_calendar() -> None:
    # Tuesday 2024-03-05: the sessions before it are Mon 03-04, Fri 03-01, Thu 02-29.
    assert sessions.last_sessions("previous-session", 3, "XNYS", D("2024-03-05")) == [
        D("2024-02-29"),
        D("2024-03-01"),
        D("2024-03-04"),
    ]
    # Tuesday 2024-01-16, after Martin Luther King Day (Monday 01-15, no session).
    assert sessions.last_sessions("previous-session", 2, "XNYS", D("2024-01-16")) == [
        D("2024-01-11"),
        D("2024-01-12"),
    ]
    # On a Saturday (no session): the last session strictly before it, Friday 03-08.
    assert sessions.last_sessions("previous-session", 1, "XNYS", D("2024-03-09")) == [
        D("2024-03-08")
    ]
    # An explicit date that is no session (Good Friday 2024-03-29) ends with Thursday's.
    assert sessions.last_sessions("2024-03-29", 2, "XNYS") == [D("2024-03-27"), D("2024-03-28")]
    # Months: on any day of March 2024, previous is February; three back cross the year.
    assert sessions.last_months("previous", 3, "XNYS", D("2024-03-09")) == [
        "2023-12",
        "2024-01",
        "2024-02",
    ]
    assert sessions.last_months("2024-01", 2, "XNYS") == ["2023-12", "2024-01"]
    third = sessions.exchange_calendar("XNYS").sessions[2].date()  # the calendar's 3rd session
    with pytest.raises(InputError, match=r"calendar starts on .*, 3 session"):
        sessions.last_sessions(third.isoformat(), 10, "XNYS")


def _tca(market: Path, out: Path, scheduler: str, *extra: str) -> list[str]:
    return ["tca", "--input", str(market), "--output", str(out), "--scheduler", scheduler, *extra]


def _orders(folder: Path) -> pd.DataFrame:
    frame = pd.read_parquet(folder / "orders").drop(columns="run_id")  # each run has its own
    return frame.sort_values("order_id").reset_index(drop=True)


def test_tca_catch_up_runs_the_missing_sessions_oldest_first(
    market: Path, scheduler: str, tmp_path: Path
) -> None:
    root = tmp_path / "scheduled" / "tca"
    # The schedule's firing of Monday 2024-04-01 (after Good Friday) processed 2024-03-28 into
    # its own folder, named by the scheduled time.
    fired = "2024-04-01T09:30:00Z"
    today = ["--date", "previous-session", "--today", fired]
    sched = run_cli(_tca(market, root / fired, scheduler, *today, "--run-id", "sched"))
    assert sched.code == 0, sched.stderr

    # The last 3 sessions before 2024-04-01: 03-26 (no intraday data), 03-27, 03-28 (done).
    caught = run_cli(_tca(market, root, scheduler, *today, "--catch-up", "3", "--run-id", "cu"))
    assert caught.code == 2, caught.stderr  # 03-26 is bad input: no orders that day
    out = caught.stdout
    assert f"2024-03-28 already committed in {root / fired} (run sched)" in out
    assert "catching up 2 of the last 3 session(s) (2024-03-26 to 2024-03-28)" in out
    assert "2024-03-26, 2024-03-27" in out
    assert "catch-up of 2024-03-26 to 2024-03-28: 1 committed, 1 already committed, 1 failed" in out
    assert "2024-03-26: dataset 'orders'" in caught.stderr and "(exit 2)" in caught.stderr
    assert read_manifest(str(root / "2024-03-26")) is None
    manifest = read_manifest(str(root / "2024-03-27"))
    assert manifest is not None and manifest["run_id"] == "cu-2024-03-27"
    assert manifest["parameters"]["start"] == manifest["parameters"]["end"] == "2024-03-27"
    assert manifest["parameters"]["catch_up"] is None

    direct = tmp_path / "direct"
    alone = run_cli(_tca(market, direct, scheduler, "--date", "2024-03-27"))
    assert alone.code == 0, alone.stderr
    pd.testing.assert_frame_equal(_orders(root / "2024-03-27"), _orders(direct))

    # The last 2 are now committed: nothing to do, exit 0, nothing written.
    again = run_cli(_tca(market, root, scheduler, *today, "--catch-up", "2"))
    assert again.code == 0, again.stderr
    assert (
        "nothing to do: the last 2 session(s) (2024-03-27 to 2024-03-28) all have a committed "
        f"run under {root}" in again.stdout
    )
    assert sorted(p.name for p in root.iterdir()) == ["2024-03-27", fired]  # 03-26: nothing


def test_catch_up_needs_a_date_and_whole_months(market: Path, tmp_path: Path) -> None:
    argv = ["tca", "--input", str(market), "--output", str(tmp_path / "r"), "--catch-up", "2"]
    missing = run_cli(argv)
    assert missing.code == 2 and "--catch-up 2 needs --date" in missing.stderr
    bt = ["backtest", "--input", str(market), "--output", str(tmp_path / "b")]
    bt += ["--strategy", "sma-cross", "--grid", "fast=2", "--grid", "slow=6", "--catch-up", "2"]
    no_month = run_cli(bt)
    assert no_month.code == 2 and "--catch-up 2 needs --as-of-month" in no_month.stderr
    shard = run_cli([*bt, "--as-of-month", "2024-03", "--shard", "0/1"])
    assert shard.code == 2 and "not with --shard or --merge-shards" in shard.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "b").exists()


def test_backtest_catch_up_of_months(market: Path, scheduler: str, tmp_path: Path) -> None:
    root = tmp_path / "monthly"
    options = ["--strategy", "sma-cross", "--grid", "fast=2:5:3", "--grid", "slow=10"]
    argv = ["backtest", "--input", str(market), "--output", str(root), "--scheduler", scheduler]
    argv += [*options, "--as-of-month", "previous", "--today", "2024-04-03T10:00:00Z"]
    caught = run_cli([*argv, "--catch-up", "2", "--run-id", "m"])
    assert caught.code == 0, caught.stderr
    # Oldest first: February's run commits before March's.
    out = caught.stdout
    assert out.index(f"committed {root / '2024-02'}") < out.index(f"committed {root / '2024-03'}")
    for month, last in (("2024-02", "2024-02-29"), ("2024-03", "2024-03-28")):
        manifest = read_manifest(str(root / month))
        assert manifest is not None and manifest["run_id"] == f"m-{month}"
        equity = pd.read_parquet(root / month / "equity")
        assert str(equity["date"].max())[:10] == last  # the month's last session in the data
    direct = tmp_path / "direct"
    alone = [*argv[:4], str(direct), *argv[5:-2], "--as-of-month", "2024-02"]
    assert run_cli(alone).code == 0
    caught_up = pd.read_parquet(root / "2024-02" / "summary")
    assert set(caught_up.pop("run_id")) == {"m-2024-02"}
    pd.testing.assert_frame_equal(
        caught_up, pd.read_parquet(direct / "summary").drop(columns="run_id")
    )
    again = run_cli([*argv, "--catch-up", "2"])
    assert again.code == 0 and "nothing to do: the last 2 month(s)" in again.stdout
