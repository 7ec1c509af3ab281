"""The command line's contract (help, exit codes, run id) and the output commit protocol."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import entrypoint
from finbatch.runner import default_run_id
from tests.conftest import read_manifest, run_cli


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["generate-data", "--help"], ["market-performance", "--help"], ["risk", "--help"]],
)
def test_help_at_every_level(argv: list[str]) -> None:
    result = run_cli(argv)
    assert result.code == 0
    assert "usage: finbatch" in result.stdout


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "required: JOB"),
        (["no-such-job"], "invalid choice"),
        (
            ["market-performance", "--input", "x", "--output", "y", "--start", "2024-13-01"],
            "is not a date",
        ),
        (
            ["market-performance", "--input", "x", "--output", "y", "--workers", "0"],
            "must be at least 1",
        ),
        (["market-performance", "--output", "y"], "--input"),
        (
            [
                "risk",
                "--input",
                "x",
                "--output",
                "y",
                "--as-of",
                "2024-01-02",
                "--confidence",
                "1.5",
            ],
            "confidence",
        ),
        (
            [
                "generate-data",
                "--output",
                "y",
                "--start",
                "2024-01-02",
                "--end",
                "2024-01-05",
                "--n-symbols",
                "x",
            ],
            "is not an integer",
        ),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], needle: str) -> None:
    result = run_cli(argv)
    assert result.code == 2
    assert needle in result.stderr


def test_start_after_end_is_bad_input(tmp_path: Path) -> None:
    result = run_cli(
        [
            "market-performance",
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "o"),
            "--start",
            "2024-02-01",
            "--end",
            "2024-01-01",
        ]
    )
    assert result.code == 2
    assert "--start 2024-02-01 is after --end 2024-01-01" in result.stderr


def test_run_id_default_strips_the_node_index() -> None:
    assert default_run_id({"AWS_BATCH_JOB_ID": "5a4f-11#3"}) == "5a4f-11"
    assert default_run_id({"AWS_BATCH_JOB_ID": "5a4f-11"}) == "5a4f-11"
    stamp = default_run_id({})
    assert len(stamp) == 16 and stamp.endswith("Z") and stamp[8] == "T"


def test_console_script_and_entrypoint_are_the_same_main() -> None:
    """The installed ``finbatch`` script (what the container runs) answers like entrypoint.py."""
    script = Path(sys.executable).parent / "finbatch"
    assert script.exists(), "pip install -e . must install the finbatch console script"
    by_script = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    by_module = subprocess.run(
        [sys.executable, "entrypoint.py", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(entrypoint.__file__).parent,
    )
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout == by_module.stdout


def _mp(market: Path, out: Path, scheduler: str, *extra: str) -> int:
    return run_cli(
        [
            "market-performance",
            "--input",
            str(market),
            "--output",
            str(out),
            "--scheduler",
            scheduler,
            *extra,
        ]
    ).code


MP = ("market-performance", "--input")


def test_rerun_of_the_same_run_id_replaces(market: Path, tmp_path: Path, scheduler: str) -> None:
    out = tmp_path / "run"
    assert _mp(market, out, scheduler, "--run-id", "r1") == 0
    first = read_manifest(str(out))
    # A part that no manifest lists is not finbatch's to delete: the rerun refuses, keeps it
    # and names it; once it is gone, the rerun replaces the run.
    stray = out / "metrics" / "part-09999.parquet"
    stray.write_bytes((out / "metrics" / "part-00000.parquet").read_bytes())
    refused = run_cli(
        [
            *MP,
            str(market),
            "--output",
            str(out),
            "--scheduler",
            scheduler,
            "--run-id",
            "r1",
            "--overwrite",
        ]
    )
    assert refused.code == 2, refused.stderr
    assert "metrics/part-09999.parquet" in refused.stderr
    assert stray.exists() and read_manifest(str(out)) == first
    stray.unlink()
    assert _mp(market, out, scheduler, "--run-id", "r1") == 0
    second = read_manifest(str(out))
    assert first is not None and second is not None
    files = sorted(p.name for p in (out / "metrics").iterdir())
    assert files == sorted(Path(f["url"]).name for f in second["outputs"]["metrics"]["files"])
    assert second["outputs"]["metrics"]["rows"] == first["outputs"]["metrics"]["rows"]


def test_another_run_is_not_overwritten_without_consent(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    out = tmp_path / "run"
    assert _mp(market, out, scheduler, "--run-id", "a") == 0
    refused = run_cli(
        [
            "market-performance",
            "--input",
            str(market),
            "--output",
            str(out),
            "--scheduler",
            scheduler,
            "--run-id",
            "b",
        ]
    )
    assert refused.code == 2
    assert "already holds the committed run 'a'" in refused.stderr
    assert json.loads((out / "_manifest.json").read_text())["run_id"] == "a"
    assert _mp(market, out, scheduler, "--run-id", "b", "--overwrite") == 0
    assert json.loads((out / "_manifest.json").read_text())["run_id"] == "b"


def test_failed_run_leaves_no_manifest_and_no_tables(
    market: Path, tmp_path: Path, scheduler: str
) -> None:
    out = tmp_path / "run"
    assert _mp(market, out, scheduler, "--run-id", "x") == 0
    # The same run id retried with bad input: the old commit is withdrawn, nothing half-written.
    assert _mp(market, out, scheduler, "--run-id", "x", "--benchmark", "NOPE") == 2
    assert read_manifest(str(out)) is None
    assert not (out / "metrics").exists()
