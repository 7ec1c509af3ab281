"""AWS Batch multi-node parallel jobs, simulated with real processes on 127.0.0.x.

Each node is an OS process given exactly the AWS_BATCH_* variables Batch sets; only Batch's
control plane (starting and stopping the containers) is played by ``cluster.simulate``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client
from distributed.security import Security

from cluster.simulate import Simulation, node_host
from cluster.tls import TlsBundle
from tests.conftest import read_manifest, run_cli

# Real multi-node simulations (one process per node): outside the fast lane.
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((node_host(0), 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def big_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough data (600 symbols x 6 years) that a node can be lost while the job runs."""
    root = tmp_path_factory.mktemp("big")
    result = run_cli(
        [
            "generate-data",
            "--output",
            str(root),
            "--start",
            "2018-01-02",
            "--end",
            "2023-12-29",
            "--n-symbols",
            "600",
            "--intraday-symbols",
            "0",
            "--seed",
            "3",
        ]
    )
    assert result.code == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def local_metrics(big_market: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("local") / "run"
    result = run_cli(
        [
            "market-performance",
            "--input",
            str(big_market),
            "--output",
            str(out),
            "--workers",
            "2",
            "--run-id",
            "local",
        ]
    )
    assert result.code == 0, result.stderr
    return _metrics(out)


def _metrics(out: Path) -> pd.DataFrame:
    """The metrics' own columns (the local run and the multi-node job have their own run ids)."""
    frame = pd.read_parquet(out / "metrics").drop(columns="run_id")
    return frame.sort_values(["symbol", "period"]).reset_index(drop=True)


def _sim(nodes: int, data: Path, out: Path, *extra: str, job_id: str = "job-1") -> Simulation:
    args = ["market-performance", "--input", str(data), "--output", str(out), *extra]
    port = _free_port()
    return Simulation(nodes, args, job_id=job_id, scheduler_port=port, dashboard_port=0, echo=False)


@pytest.fixture
def cleanup() -> Iterator[list[Simulation]]:
    sims: list[Simulation] = []
    yield sims
    for sim in sims:
        sim.stop_all(grace=5)


def test_three_nodes_same_results_as_a_local_cluster(
    big_market: Path, local_metrics: pd.DataFrame, tmp_path: Path, cleanup: list[Simulation]
) -> None:
    out = tmp_path / "run"
    sim = _sim(3, big_market, out)
    cleanup.append(sim)
    assert sim.run(child_delay=(0.5, 2.0), seed=1) == 0, "".join(sim.output[0])
    assert [p.returncode for _, p in sorted(sim.procs.items())] == [0, 0, 0]
    pd.testing.assert_frame_equal(_metrics(out), local_metrics, rtol=1e-12, atol=0)
    manifest = read_manifest(str(out))
    assert manifest is not None
    assert manifest["run_id"] == "job-1"  # AWS_BATCH_JOB_ID without its #0
    assert manifest["cluster"]["workers"] == 3
    assert sorted(manifest["cluster"]["hosts"]) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    logs = sorted(p.name for p in (out / "_logs").iterdir())
    assert "scheduler.log" in logs
    for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        assert any(name.startswith(f"worker-{host}-") for name in logs), logs
    # The TLS bundle is withdrawn once the job is over.
    assert not list((out / "_cluster").glob("*.json"))
    # Every node spoke TLS.
    assert "(mnp-main)" in "".join(sim.output[0])
    assert "worker joined tls://127.0.0.2:" in "".join(sim.output[1])


def test_child_killed_mid_job(
    big_market: Path, local_metrics: pd.DataFrame, tmp_path: Path, cleanup: list[Simulation]
) -> None:
    out = tmp_path / "run"
    sim = _sim(3, big_market, out)
    cleanup.append(sim)
    main = sim.start(0)
    sim.start(1)
    sim.start(2)
    sim.wait_for_output(0, r"market-performance: computing \d+/(?:\d+|\?) symbols", timeout=120)
    os.killpg(sim.procs[2].pid, signal.SIGKILL)  # the node and its worker process vanish
    assert main.wait(timeout=180) == 0, "".join(sim.output[0])
    log = "".join(sim.output[0])
    assert "lost node node-2" in log
    pd.testing.assert_frame_equal(_metrics(out), local_metrics, rtol=1e-12, atol=0)


def test_children_starting_late(
    big_market: Path, tmp_path: Path, cleanup: list[Simulation]
) -> None:
    out = tmp_path / "run"
    sim = _sim(2, big_market, out, "--symbols", "SPX")
    cleanup.append(sim)
    started = time.monotonic()
    assert sim.run(child_delay=(10.0, 10.0)) == 0, "".join(sim.output[0])
    assert time.monotonic() - started >= 10.0
    assert "2 of 2 node(s) joined" in "".join(sim.output[0])


def test_min_nodes_starts_without_the_late_child(
    big_market: Path, tmp_path: Path, cleanup: list[Simulation]
) -> None:
    out = tmp_path / "run"
    sim = _sim(2, big_market, out, "--symbols", "SPX", "--min-nodes", "1")
    cleanup.append(sim)
    main = sim.start(0)  # the child never comes
    assert main.wait(timeout=120) == 0, "".join(sim.output[0])
    assert "1 of 2 node(s) joined" in "".join(sim.output[0])


def test_nodes_that_never_join_fail_clearly(
    big_market: Path, tmp_path: Path, cleanup: list[Simulation]
) -> None:
    out = tmp_path / "run"
    sim = _sim(3, big_market, out, "--wait-for-nodes", "3")
    cleanup.append(sim)
    main = sim.start(0)
    assert main.wait(timeout=120) == 1
    assert "only 1 of 3 node(s) joined within 3 s" in "".join(sim.output[0])
    assert read_manifest(str(out)) is None


@pytest.mark.parametrize("insecure", [False, True])
def test_child_without_a_scheduler_gives_up(tmp_path: Path, insecure: bool) -> None:
    sim = _sim(
        2, tmp_path, tmp_path / "out", "--death-timeout", "4", *(["--insecure"] if insecure else [])
    )
    child = sim.start(1)  # the main node never starts
    assert child.wait(timeout=60) == 1
    text = "".join(sim.output[1])
    assert "finbatch: error:" in text
    # TLS or not, a child waits for the scheduler's port (the bundle is published before it).
    assert "did not answer within 4 s (--death-timeout)" in text


def test_sigterm_on_the_main_node(
    big_market: Path, tmp_path: Path, cleanup: list[Simulation]
) -> None:
    out = tmp_path / "run"
    sim = _sim(2, big_market, out)
    cleanup.append(sim)
    main = sim.start(0)
    sim.start(1)
    sim.wait_for_output(0, r"market-performance: computing \d+/(?:\d+|\?) symbols", timeout=120)
    sim.signal(0, signal.SIGTERM)
    sent = time.monotonic()
    code = main.wait(timeout=30)
    assert time.monotonic() - sent < 25
    assert code == 1
    assert "terminated by SIGTERM" in "".join(sim.output[0])
    assert read_manifest(str(out)) is None


def test_client_without_the_job_credentials_is_refused(
    market: Path, tmp_path: Path, cleanup: list[Simulation]
) -> None:
    # A real input: a missing one is refused before the scheduler starts.
    sim = _sim(2, market, tmp_path / "out", "--wait-for-nodes", "60")
    cleanup.append(sim)
    sim.start(0)  # waits for its child: the scheduler is up meanwhile
    bundle = tmp_path / "out" / "_cluster" / "tls-attempt-1.json"
    sim.wait_for_output(0, r"TLS bundle for the child nodes published", timeout=60)
    assert bundle.exists()
    address = f"{node_host(0)}:{sim.ports[0]}"
    # A stranger with its own certificate: the scheduler's TLS handshake refuses it.
    with pytest.raises(OSError, match=r"Timed out|refused|handshake|certificate|closed"):
        Client(f"tls://{address}", security=Security.temporary(), timeout="3s")
    # Plain TCP is refused too.
    with pytest.raises(OSError, match=r"Timed out|refused|closed"):
        Client(f"tcp://{address}", timeout="3s")
    # The job's own credentials are accepted (the same check, with the right certificate).
    job_security = TlsBundle(**json.loads(bundle.read_text())).security()
    with Client(f"tls://{address}", security=job_security, timeout="10s") as client:
        assert len(client.scheduler_info()["workers"]) == 1


def test_simulator_command_line(tmp_path: Path, big_market: Path) -> None:
    port = str(_free_port())
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cluster.simulate",
            "--nodes",
            "2",
            "--child-delay",
            "0:1",
            "--port",
            port,
            "--dashboard-port",
            "0",
            "--",
            "market-performance",
            "--input",
            str(big_market),
            "--output",
            str(out),
            "--symbols",
            "SPX",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "exit codes node 0: 0, node 1: 0" in done.stderr
    assert "[node 0] market-performance: committed" in done.stdout


def test_version_mismatch_is_a_clear_error(scheduler: str) -> None:
    from analytics.errors import FinbatchError
    from cluster.mnp import check_versions, package_versions

    with Client(scheduler) as client:
        check_versions(client)  # the same installation everywhere: no error
        driver = {**package_versions(), "pandas": "0.0.1"}
        with pytest.raises(FinbatchError, match=r"pandas .* \(main node has 0\.0\.1\)") as err:
            check_versions(client, driver)
    assert "use one container image on every node" in str(err.value)


def test_below_min_nodes_fails_clearly(
    big_market: Path, tmp_path: Path, cleanup: list[Simulation]
) -> None:
    out = tmp_path / "run"
    sim = _sim(2, big_market, out, "--min-nodes", "2")
    sim.base_env["CLUSTER_BELOW_MIN_GRACE_S"] = "0"  # fail at once, not after the 30 s grace
    cleanup.append(sim)
    main = sim.start(0)
    sim.start(1)
    sim.wait_for_output(0, r"2 of 2 node\(s\) joined", timeout=120)
    os.killpg(sim.procs[1].pid, signal.SIGKILL)
    assert main.wait(timeout=120) == 1
    log = "".join(sim.output[0])
    assert "only 1 node(s) remain after losing node-1; the job needs at least 2" in log
    assert read_manifest(str(out)) is None


def test_sigterm_on_a_child_stops_its_worker(
    market: Path, tmp_path: Path, cleanup: list[Simulation]
) -> None:
    sim = _sim(3, market, tmp_path / "out", "--wait-for-nodes", "120")
    cleanup.append(sim)
    main = sim.start(0)  # waits for 3 nodes: the cluster is up meanwhile
    child = sim.start(1)
    sim.wait_for_output(1, r"worker joined", timeout=60)
    sim.signal(1, signal.SIGTERM)
    assert child.wait(timeout=30) == 143
    assert "SIGTERM, stopping the worker" in "".join(sim.output[1])
    sim.wait_for_output(0, r"lost node node-1", timeout=60)
    sim.signal(0, signal.SIGTERM)
    assert main.wait(timeout=30) == 1
