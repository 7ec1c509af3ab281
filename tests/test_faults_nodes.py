"""Fault injection on the simulated AWS Batch multi-node job: nodes lost, killed or frozen.

Each test ends with the results of a clean run (same rows, compared exactly) or a clear failure
and no manifest. A child killed mid-job is :func:`tests.test_mnp.test_child_killed_mid_job`;
a child lost below ``--min-nodes`` is :func:`tests.test_mnp.test_below_min_nodes_fails_clearly`;
children that never join without ``--min-nodes`` is
:func:`tests.test_mnp.test_nodes_that_never_join_fail_clearly`.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cluster.simulate import Simulation
from tests.conftest import read_manifest, run_cli
from tests.test_resume import assert_same_tables, backtest_args, free_port, generate_sweep_market

# Real multi-node simulations with faults injected: minutes of wall time, so outside the fast lane.
pytestmark = pytest.mark.slow

#: 2,744 combinations: about half the work of the resume test's sweep (these runs are on two
#: nodes sharing the machine's cores), still several seconds of sweep tasks to interrupt.
GRID = ["--strategy", "sma-cross", "--grid", "fast=2:50:1", "--grid", "slow=10:250:4"]
#: A kill waits for this: at least one sweep task finished and recorded, so the job is mid-way.
MID_JOB = r"progress recorded: [1-9]\d* finished piece"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sweep_market(tmp_path_factory.mktemp("faults-market"))


@pytest.fixture(scope="module")
def reference(data: Path, scheduler: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults-clean") / "run"
    args = backtest_args(data, out, "--scheduler", scheduler, "--run-id", "ref", grid=GRID)
    result = run_cli(args)
    assert result.code == 0, result.stderr
    return out


@pytest.fixture
def sims() -> Iterator[list[Simulation]]:
    started: list[Simulation] = []
    yield started
    for sim in started:
        for proc in sim.procs.values():  # a frozen node must be thawed to be stopped
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGCONT)
        sim.stop_all(grace=5)


def _sim(
    sims: list[Simulation], nodes: int, data: Path, out: Path, *extra: str, **kw: object
) -> Simulation:
    sim = Simulation(
        nodes,
        backtest_args(data, out, *extra, grid=GRID),
        scheduler_port=free_port(),
        dashboard_port=0,
        echo=False,
        **kw,  # type: ignore[arg-type]
    )
    sims.append(sim)
    return sim


def _worker_processes(node_pid: int) -> list[psutil.Process]:
    """The node's Dask worker processes (spawned by its nanny)."""
    children = psutil.Process(node_pid).children(recursive=True)
    return [p for p in children if "spawn_main" in " ".join(p.cmdline())]


def _parts_are_whole(out: Path) -> None:
    """Part names 0..N-1, as the manifest lists them: nothing duplicated, nothing stray."""
    manifest = read_manifest(str(out))
    assert manifest is not None
    for table, entry in manifest["outputs"].items():
        names = sorted(p.name for p in (out / table).iterdir())
        assert names == [f"part-{i:05d}.parquet" for i in range(len(names))], table
        assert names == sorted(Path(f["url"]).name for f in entry["files"]), table
    assert len(manifest["outputs"]["results"]["files"]) == manifest["summary"]["tasks"]


def test_child_killed_before_joining_with_min_nodes(
    data: Path, reference: Path, tmp_path: Path, sims: list[Simulation]
) -> None:
    """With ``--min-nodes 2`` of 3, the job starts on the two that joined and completes."""
    out = tmp_path / "run"
    sim = _sim(sims, 3, data, out, "--min-nodes", "2", job_id="faults-join")
    main = sim.start(0)
    doomed = sim.start(2)
    os.killpg(doomed.pid, signal.SIGKILL)  # gone before it could even import Dask
    sim.start(1)
    assert main.wait(timeout=180) == 0, "".join(sim.output[0])
    assert "2 of 3 node(s) joined" in "".join(sim.output[0])
    assert_same_tables(out, reference, exact=False)
    _parts_are_whole(out)


def test_child_killed_while_outputs_are_written(
    data: Path, reference: Path, tmp_path: Path, sims: list[Simulation]
) -> None:
    out = tmp_path / "run"
    sim = _sim(sims, 2, data, out, job_id="faults-write")
    main = sim.start(0)
    sim.start(1)
    sim.wait_for_output(0, MID_JOB, timeout=120)  # parts of results/ are being written
    os.killpg(sim.procs[1].pid, signal.SIGKILL)
    assert main.wait(timeout=180) == 0, "".join(sim.output[0])
    assert "lost node node-1" in "".join(sim.output[0])
    assert_same_tables(out, reference, exact=False)
    _parts_are_whole(out)


def test_main_node_killed_then_attempt_2_resumes(
    data: Path, reference: Path, tmp_path: Path, sims: list[Simulation]
) -> None:
    out = tmp_path / "run"
    first = _sim(sims, 2, data, out, job_id="faults-main")
    main = first.start(0)
    first.start(1)
    first.wait_for_output(0, MID_JOB, timeout=120)
    os.killpg(main.pid, signal.SIGKILL)  # the host is lost: no clean-up runs at all
    main.wait(timeout=30)
    first.stop_all(grace=5)  # Batch stops the children once the main node is gone
    assert read_manifest(str(out)) is None
    record = json.loads((out / "_progress.json").read_text())
    recorded = len(record["pieces"])
    assert recorded >= 1 and record["run_id"] == "faults-main"

    second = _sim(sims, 2, data, out, job_id="faults-main", attempt=2)
    assert second.run(child_delay=(0.0, 1.0), seed=2) == 0, "".join(second.output[0])
    log = "".join(second.output[0])
    # Every recorded piece is reused (it was on disk with its size before it was recorded).
    assert f"resuming run faults-main: {recorded} finished piece(s) reused" in log
    assert f"backtest: resuming: {recorded} of " in log
    assert_same_tables(out, reference, exact=False)
    _parts_are_whole(out)


def test_frozen_worker_is_given_up_and_its_work_redone(
    data: Path, reference: Path, tmp_path: Path, sims: list[Simulation]
) -> None:
    out = tmp_path / "run"
    sim = _sim(sims, 2, data, out, job_id="faults-frozen")
    # The scheduler drops a worker silent for 5 s (default 5 minutes), in this test only.
    sim.base_env["DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL"] = "5s"
    main = sim.start(0)
    sim.start(1)
    sim.wait_for_output(0, MID_JOB, timeout=120)
    # The Dask worker process (not its nanny) freezes: alive, holding tasks, silent, as a
    # worker stuck in a system call or a GIL-holding extension would be.
    frozen = _worker_processes(sim.procs[1].pid)
    assert frozen
    for proc in frozen:
        proc.send_signal(signal.SIGSTOP)
    assert main.wait(timeout=180) == 0, "".join(sim.output[0])
    assert "lost node node-1" in "".join(sim.output[0])
    assert_same_tables(out, reference, exact=False)
    _parts_are_whole(out)
