"""What the container runs, run here: the image cannot be built on this machine (no Docker), so
these tests run its ENTRYPOINT (the installed console script) with the command the job
definitions give it, the way AWS Batch does, and check exit codes and results.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from cluster.batch.jobdef import JobDefinitionSpec, multinode_definition, single_node_definition
from cluster.simulate import Simulation, node_host
from tests.conftest import read_manifest, run_cli

ROOT = Path(__file__).resolve().parent.parent


def _dockerfile(instruction: str) -> list[str]:
    """The exec-form (JSON) arguments of the Dockerfile's last ``instruction``."""
    lines = [
        line
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith(instruction)
    ]
    words: list[str] = json.loads(lines[-1].split(" ", 1)[1])
    return words


def _entrypoint() -> list[str]:
    """The image's ENTRYPOINT, with the console script found where pip installed it."""
    entry = _dockerfile("ENTRYPOINT")
    script = Path(sys.executable).parent / entry[0]
    assert script.exists(), f"{script} missing: pip install -e . installs the console script"
    return [str(script), *entry[1:]]


def _substitute(command: list[str], defaults: dict[str, str], given: dict[str, str]) -> list[str]:
    """AWS Batch's parameter substitution: a whole ``Ref::name`` element becomes its value."""
    values = {**defaults, **given}
    return [values[w.removeprefix("Ref::")] if w.startswith("Ref::") else w for w in command]


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def tiny_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    result = run_cli(
        [
            "generate-data",
            "--output",
            str(root),
            "--start",
            "2024-01-02",
            "--end",
            "2024-03-28",
            "--n-symbols",
            "4",
            "--intraday-symbols",
            "0",
            "--seed",
            "11",
        ]
    )
    assert result.code == 0, result.stderr
    return root


def test_the_console_script_is_entrypoint_main() -> None:
    (script,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "finbatch"]
    assert script.value == "entrypoint:main"


def test_default_command_prints_help() -> None:
    # `docker run IMAGE` runs ENTRYPOINT + CMD.
    done = _run(_entrypoint() + _dockerfile("CMD"))
    assert done.returncode == 0, done.stderr
    for word in ("market-performance", "risk", "generate-data", "batch"):
        assert word in done.stdout
    bad = _run([*_entrypoint(), "no-such-job"])
    assert bad.returncode == 2
    assert "invalid choice" in bad.stderr


def _single_node_command(**given: str) -> list[str]:
    request = single_node_definition(JobDefinitionSpec())
    container: dict[str, Any] = request["containerProperties"]
    return _substitute(container["command"], request["parameters"], given)


def test_single_node_job_as_batch_runs_it(tiny_market: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    command = _single_node_command(
        job="market-performance",
        input=str(tiny_market),
        output=str(output),
        dates="--start 2024-01-02 --end 2024-02-29",
        options="--workers 1 --threads-per-worker 1",
    )
    # A single-node Batch job has AWS_BATCH_JOB_ID and _ATTEMPT, not the multi-node variables.
    done = _run(
        [*_entrypoint(), *command], {"AWS_BATCH_JOB_ID": "job-0123", "AWS_BATCH_JOB_ATTEMPT": "1"}
    )
    assert done.returncode == 0, done.stderr
    assert "market-performance: committed" in done.stdout
    manifest = read_manifest(str(output))
    assert manifest is not None
    assert manifest["run_id"] == "job-0123"  # the Batch job id, without a #node suffix
    assert manifest["outputs"]["metrics"]["rows"] > 0
    assert str(manifest["parameters"]["end"]) == "2024-02-29"


def test_bad_input_exits_2_and_commits_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    output = tmp_path / "run"
    command = _single_node_command(
        job="market-performance", input=str(empty), output=str(output), options="--workers 1"
    )
    done = _run([*_entrypoint(), *command])
    assert done.returncode == 2, done.stderr
    assert "finbatch: error:" in done.stderr
    assert read_manifest(str(output)) is None


def test_multinode_job_as_batch_runs_it(tiny_market: Path, tmp_path: Path) -> None:
    """The multi-node definition's command on 2 simulated nodes (cluster/simulate.py)."""
    request = multinode_definition(JobDefinitionSpec(nodes=2))
    group = request["nodeProperties"]["nodeRangeProperties"][0]["container"]
    output = tmp_path / "run"
    command = _substitute(
        group["command"],
        request["parameters"],
        {"input": str(tiny_market), "output": str(output), "options": "--wait-for-nodes 120"},
    )
    with socket.socket() as sock:  # a free port on the main node's loopback address
        sock.bind((node_host(0), 0))
        port = int(sock.getsockname()[1])
    sim = Simulation(
        request["nodeProperties"]["numNodes"],
        command,
        job_id="mnp-0456",
        scheduler_port=port,
        dashboard_port=0,
        echo=False,
    )
    try:
        code = sim.run(child_delay=(0.0, 1.0), seed=1)
    finally:
        sim.stop_all(grace=5)
    main_output = "".join(sim.output[0])
    assert code == 0, main_output
    assert sim.procs[1].returncode == 0, "".join(sim.output[1])
    assert re.search(r"2 of 2 node\(s\) joined", main_output), main_output
    manifest = read_manifest(str(output))
    assert manifest is not None
    assert manifest["run_id"] == "mnp-0456"
    assert manifest["cluster"]["workers"] == 2  # one per node
    assert manifest["outputs"]["metrics"]["rows"] > 0
