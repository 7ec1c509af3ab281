"""How a child node learns that the main node is ready: its scheduler's port, not storage.

The main node publishes the TLS bundle before its scheduler listens; a child probes the port
(cluster/probe.py) and reads the bundle once. The S3 tests route only the child's requests
through the fault proxy (tests/s3proxy.py), whose log counts them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from distributed import Client, Scheduler
from distributed.security import Security

from cluster.context import ClusterConfigError, detect
from cluster.mnp import MnpOptions, main_node
from cluster.probe import ReadinessProbes, wait_for_port
from cluster.simulate import Simulation, node_host
from cluster.tls import bundle_url, make_bundle, read
from tests.s3proxy import FaultProxy, fault_proxy

BUNDLE_KEY = "_cluster/tls-attempt-1.json"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def test_wait_for_port_open_and_closed() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert wait_for_port("127.0.0.1", listening.getsockname()[1], timeout=5)
    with socket.socket() as bound:  # bound but not listening: every connect is refused
        bound.bind(("127.0.0.1", 0))
        assert not wait_for_port("127.0.0.1", bound.getsockname()[1], timeout=0.3)


class _Records(logging.Handler):
    """The records of distributed's TCP layer, kept in a list. Attached to that logger itself:
    distributed's loggers do not propagate to the root, where pytest's caplog listens."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _tcp_records() -> Iterator[_Records]:
    tcp_log = logging.getLogger("distributed.comm.tcp")
    handler, level = _Records(), tcp_log.level
    tcp_log.addHandler(handler)
    tcp_log.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        tcp_log.removeHandler(handler)
        tcp_log.setLevel(level)


def test_an_open_port_without_a_bundle_is_a_clear_error(tmp_path: Path) -> None:
    # The main node runs with --insecure and this child without: the port opens, no bundle.
    url = bundle_url(str(tmp_path / "run"), 1)
    with pytest.raises(
        ClusterConfigError, match="does not exist: the main node runs with --insecure"
    ):
        read(url)


async def _record(seen: _Records, remote: str, *, other: bool = False) -> logging.LogRecord:
    """The listener's record of a failed handshake from ``remote`` (``other``: from anyone
    else). It is logged once the peer is gone, so the test waits for it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for record in list(seen.records):
            text = record.getMessage()
            if "TLS handshake failed" in text and (remote in text) != other:
                return record
        await asyncio.sleep(0.05)  # logging has no event to await
    raise AssertionError(f"no handshake record ({remote}, other={other})")


def test_a_probe_is_not_a_warning_a_stranger_is() -> None:
    """A child's probe (connect, close) goes to DEBUG on the main node; a client with a
    certificate the job's CA did not sign is still a warning."""

    async def run(seen: _Records) -> tuple[logging.LogRecord, logging.LogRecord]:
        security = make_bundle("probe").security()
        async with Scheduler(
            host="127.0.0.1", port=0, protocol="tls", security=security, dashboard_address=":0"
        ) as scheduler:
            port = int(scheduler.address.rsplit(":", 1)[1])
            loop = asyncio.get_running_loop()
            with socket.socket() as probe:  # the child's probe, from a known local port
                probe.bind(("127.0.0.1", 0))
                probe_port = probe.getsockname()[1]
                await loop.sock_connect(probe, ("127.0.0.1", port))
            probed = await _record(seen, f"127.0.0.1:{probe_port}'")
            with pytest.raises(OSError, match=r"Timed out|refused|handshake|certificate|closed"):
                await Client(
                    scheduler.address,
                    security=Security.temporary(),
                    asynchronous=True,
                    timeout="2s",
                )
            stranger = await _record(seen, f"127.0.0.1:{probe_port}'", other=True)
            return probed, stranger

    probes = ReadinessProbes()
    tcp_log = logging.getLogger("distributed.comm.tcp")
    tcp_log.addFilter(probes)
    try:
        with _tcp_records() as seen:
            probed, stranger = asyncio.run(run(seen))
    finally:
        tcp_log.removeFilter(probes)
    assert probed.levelno == logging.DEBUG
    assert stranger.levelno == logging.WARNING


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with fault_proxy(s3_endpoint) as running:
        yield running


def _child_sim(bucket: str, proxy: FaultProxy, *extra: str) -> Simulation:
    """A two-node job writing to S3; the nodes' processes reach S3 through the proxy."""
    port = _free_port(node_host(0))
    args = ["market-performance", "--input", f"s3://{bucket}/in", "--output", f"s3://{bucket}/run"]
    sim = Simulation(
        2, [*args, *extra], job_id="ready", scheduler_port=port, dashboard_port=0, echo=False
    )
    sim.base_env["AWS_ENDPOINT_URL"] = proxy.url
    return sim


@pytest.mark.slow
def test_a_waiting_child_makes_no_storage_requests(s3_bucket: str, proxy: FaultProxy) -> None:
    # The old child polled storage for the bundle every second: about 4 requests in 3 s here.
    sim = _child_sim(s3_bucket, proxy, "--death-timeout", "3")
    try:
        child = sim.start(1)  # the main node never starts
        assert child.wait(timeout=120) == 1
    finally:
        sim.stop_all(grace=5)
    text = "".join(sim.output[1])
    assert "did not answer within 3 s (--death-timeout)" in text, text
    assert proxy.requests(path_contains="_cluster") == []


@pytest.mark.slow
def test_a_child_started_first_reads_the_bundle_once(s3_bucket: str, proxy: FaultProxy) -> None:
    sim = _child_sim(s3_bucket, proxy)
    out = f"s3://{s3_bucket}/run"
    try:
        child = sim.start(1)
        sim.wait_for_output(1, r"waiting for the scheduler at tls://", timeout=120)
        # The main node, in this process (its S3 requests go straight to moto, not the proxy).
        ctx = detect(sim.node_env(0))
        opts = MnpOptions(output_url=out, scheduler_port=sim.ports[0], dashboard_port=0)
        with _tcp_records() as seen, main_node(ctx, node_host(0), opts) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
            assert sorted(str(w["name"]) for w in workers.values()) == ["0", "node-1"]
        assert child.wait(timeout=60) == 0
    finally:
        sim.stop_all(grace=5)
    # One read of the bundle: s3fs asks for its size (HEAD), then its bytes (GET).
    key = f"/{s3_bucket}/run/{BUNDLE_KEY}"
    asked = [(r.method, r.path.split("?")[0]) for r in proxy.requests(path_contains="_cluster")]
    assert asked == [("HEAD", key), ("GET", key)]
    # The child's one successful probe reached the scheduler's listener, logged at DEBUG.
    probes = [r for r in seen.records if "TLS handshake failed" in r.getMessage()]
    assert [r.levelno for r in probes] == [logging.DEBUG]
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="run/_cluster/")
    assert listed.get("KeyCount", 0) == 0  # the bundle is withdrawn with the job
