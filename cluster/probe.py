"""How a child node learns that the main node is ready: its scheduler's port opens.

The main node publishes the TLS bundle before its scheduler listens, so a child that finds the
port open reads the bundle once. The port is probed with a bare TCP connect, opened and closed:
a refused connect costs the main node nothing (no request to storage, no process woken), so the
probes can start at 50 ms and stay frequent (every 0.5 s at most) for as long as the child waits.
"""

from __future__ import annotations

import logging
import socket
import time

#: The first pause between probes, doubled after each until :data:`PROBE_CAP_S`.
PROBE_FIRST_S = 0.05
#: The longest pause between probes: how late, at most, a child notices the scheduler.
PROBE_CAP_S = 0.5


def wait_for_port(
    host: str, port: int, timeout: float, first: float = PROBE_FIRST_S, cap: float = PROBE_CAP_S
) -> bool:
    """Block until ``host:port`` accepts a TCP connection (True), at most ``timeout`` s (False).

    The pause between connects starts at ``first`` seconds and doubles up to ``cap``.
    """
    deadline = time.monotonic() + timeout
    pause = first
    while True:
        remaining = deadline - time.monotonic()
        try:
            # A dropped SYN (no route, a firewall) must not outlast the deadline.
            with socket.create_connection((host, port), timeout=max(0.05, min(1.0, remaining))):
                return True
        except OSError:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(pause, remaining))  # a closed port sends no event to wait on
        pause = min(cap, pause * 2)


class ReadinessProbes(logging.Filter):
    """On the main node: a child's probe is not a failed TLS handshake worth a warning.

    The probe closes its connection before sending a byte, which the scheduler's TLS listener
    logs as a warning ending in ``EOF occurred in violation of protocol``; those records go to
    DEBUG. A peer that does speak TLS and is refused (a wrong or missing certificate) fails
    differently and stays a warning.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Listener on %r: TLS handshake failed"):
            return True
        if "EOF occurred in violation of protocol" not in str(record.args):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
