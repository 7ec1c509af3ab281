"""Shared fixtures: a moto S3 server over HTTP, one real multi-process Dask cluster, and a
small generated market.

Order matters: the S3 server and its environment come first, so the cluster's worker processes
inherit ``AWS_ENDPOINT_URL`` exactly as production workers inherit the real AWS environment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from distributed import LocalCluster

import entrypoint

MARKET_START = dt.date(2023, 10, 2)
MARKET_END = dt.date(2024, 3, 28)
MARKET_SYMBOLS = 24

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (a free port), published as ``AWS_ENDPOINT_URL``."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in [*_AWS_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(_AWS_ENV, AWS_ENDPOINT_URL=endpoint)
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the moto server."""
    name = f"finbatch-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def scheduler(s3_endpoint: str) -> Iterator[str]:
    """A real two-process LocalCluster shared by the tests (they pass ``--scheduler``)."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated market: daily prices and positions, and a few intraday symbols."""
    root = tmp_path_factory.mktemp("market")
    code = entrypoint.main(
        [
            "generate-data",
            "--output",
            str(root),
            "--start",
            MARKET_START.isoformat(),
            "--end",
            MARKET_END.isoformat(),
            "--n-symbols",
            str(MARKET_SYMBOLS),
            "--intraday-symbols",
            "2",
            "--intraday-days",
            "2",
            "--seed",
            "7",
        ]
    )
    assert code == 0
    return root


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(args: Sequence[str]) -> CliResult:
    """Run the CLI in this process, capturing what it prints."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = entrypoint.main(list(args))
        except SystemExit as exit_:  # argparse's own exit on bad arguments
            code = int(exit_.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


def read_manifest(output: str) -> dict[str, Any] | None:
    """The run's manifest, or None when the run was not committed."""
    from analytics.run.folder import RunFolder

    manifest = RunFolder(output).read_manifest()
    return None if manifest is None else manifest.to_json()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
