"""A local stand-in for an AWS Batch multi-node parallel job.

``python -m cluster.simulate --nodes N [--child-delay A:B] -- JOB [job options]`` starts N OS
processes running ``entrypoint.py JOB ...`` with exactly the variables Batch sets (the main node
first, each child after a random delay in [A, B] seconds), each node bound to its own loopback
address 127.0.0.(i+2). As on Batch, when the main node exits the children still running are
stopped, and the simulation exits with the main node's exit code.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence

from cluster import context as bv
from cluster.address import NODE_HOST
from cluster.runner import DASHBOARD_PORT_ENV, SCHEDULER_PORT_ENV


def node_host(index: int) -> str:
    return f"127.0.0.{index + 2}"


class Simulation:
    """N node processes of one simulated MNP job; their output is prefixed and kept."""

    def __init__(
        self,
        nodes: int,
        job_args: Sequence[str],
        *,
        job_id: str | None = None,
        attempt: int = 1,
        scheduler_port: int = 8786,
        dashboard_port: int = 8787,
        env: Mapping[str, str] | None = None,
        echo: bool = True,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"a multi-node job needs at least 1 node, got {nodes}")
        self.nodes = nodes
        self.job_args = list(job_args)
        self.job_id = job_id or f"sim-{uuid.uuid4().hex[:8]}"
        self.attempt = attempt
        self.ports = (scheduler_port, dashboard_port)
        self.base_env = dict(os.environ if env is None else env)
        self.echo = echo
        self.procs: dict[int, subprocess.Popen[str]] = {}
        self.output: dict[int, list[str]] = {i: [] for i in range(nodes)}
        self._changed = threading.Condition()

    def node_env(self, index: int) -> dict[str, str]:
        """The variables AWS Batch sets on node ``index`` (main node 0), plus its own address."""
        env = dict(self.base_env)
        for name in (bv.NUM_NODES, bv.NODE_INDEX, bv.MAIN_NODE_INDEX, bv.MAIN_ADDRESS):
            env.pop(name, None)
        env.update(
            {
                bv.NUM_NODES: str(self.nodes),
                bv.NODE_INDEX: str(index),
                bv.MAIN_NODE_INDEX: "0",
                bv.JOB_ID: f"{self.job_id}#{index}",
                bv.ATTEMPT: str(self.attempt),
                NODE_HOST: node_host(index),
                SCHEDULER_PORT_ENV: str(self.ports[0]),
                DASHBOARD_PORT_ENV: str(self.ports[1]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if index != 0:
            env[bv.MAIN_ADDRESS] = node_host(0)
        return env

    def start(self, index: int) -> subprocess.Popen[str]:
        spec = importlib.util.find_spec("entrypoint")  # the CLI module, not imported here
        assert spec is not None and spec.origin is not None, "finbatch is not installed"
        command = [sys.executable, spec.origin, *self.job_args]
        proc = subprocess.Popen(
            command,
            env=self.node_env(index),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.procs[index] = proc
        threading.Thread(target=self._pump, args=(index, proc), daemon=True).start()
        return proc

    def _pump(self, index: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if self.echo:
                sys.stdout.write(f"[node {index}] {line}")
                sys.stdout.flush()
            with self._changed:
                self.output[index].append(line)
                self._changed.notify_all()

    def wait_for_output(self, index: int, pattern: str, timeout: float) -> str:
        """Block until node ``index`` prints a line matching ``pattern``; returns the line."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                lines = self.output[index]
                for line in lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"node {index} printed no line matching {pattern!r}")
                self._changed.wait(remaining)

    def signal(self, index: int, sig: int) -> None:
        self.procs[index].send_signal(sig)

    def stop_all(self, grace: float = 10.0) -> None:
        """Stop the nodes still running, as Batch does once the main node has exited."""
        running = [p for p in self.procs.values() if p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def run(self, child_delay: tuple[float, float] = (0.0, 3.0), seed: int | None = None) -> int:
        """The whole job: main node, children after their delays; returns the main's code."""
        rng = random.Random(seed)
        main = self.start(0)
        timers = []
        for index in range(1, self.nodes):
            delay = rng.uniform(*child_delay)
            timer = threading.Timer(delay, self._start_child_unless_done, args=(index, main))
            timer.start()
            timers.append(timer)
        code = main.wait()
        for timer in timers:
            timer.cancel()
        self.stop_all()
        return code

    def _start_child_unless_done(self, index: int, main: subprocess.Popen[str]) -> None:
        if main.poll() is None:
            self.start(index)


def _delay(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SECONDS or MIN:MAX") from None
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX")
    return bounds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cluster.simulate",
        description="Run a finbatch job as a simulated AWS Batch multi-node parallel job: N "
        "processes on 127.0.0.2, 127.0.0.3, ... with the AWS_BATCH_* variables Batch sets.",
        usage="%(prog)s --nodes N [options] -- JOB [job options]",
    )
    parser.add_argument("--nodes", type=int, required=True, help="number of nodes (>= 1)")
    parser.add_argument(
        "--child-delay",
        type=_delay,
        default=(0.0, 3.0),
        metavar="MIN:MAX",
        help="each child starts after a random delay in [MIN, MAX] s (default 0:3)",
    )
    parser.add_argument("--job-id", help="AWS_BATCH_JOB_ID without #index (default: random)")
    parser.add_argument("--attempt", type=int, default=1, help="AWS_BATCH_JOB_ATTEMPT")
    parser.add_argument("--port", type=int, default=8786, help="scheduler port (default 8786)")
    parser.add_argument("--dashboard-port", type=int, default=8787)
    parser.add_argument("--seed", type=int, help="seed of the children's delays")
    parser.add_argument("job", nargs=argparse.REMAINDER, help="-- JOB [job options]")
    args = parser.parse_args(argv)
    job = args.job[1:] if args.job[:1] == ["--"] else args.job
    if not job:
        parser.error("give the job after --, e.g. -- market-performance --input ... --output ...")
    if args.nodes < 1:
        parser.error(f"--nodes must be at least 1, got {args.nodes}")
    sim = Simulation(
        args.nodes,
        job,
        job_id=args.job_id,
        attempt=args.attempt,
        scheduler_port=args.port,
        dashboard_port=args.dashboard_port,
    )
    code = sim.run(args.child_delay, args.seed)
    codes = ", ".join(f"node {i}: {p.returncode}" for i, p in sorted(sim.procs.items()))
    print(f"simulate: job {sim.job_id} finished; exit codes {codes}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
