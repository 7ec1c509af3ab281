"""S3 faults injected by a proxy in front of the moto server (tests/s3proxy.py).

The job's driver and its workers reach S3 only through the proxy (``AWS_ENDPOINT_URL``). A
transient fault (503 SlowDown, a connection reset, a slow answer) is retried with backoff and
the run's tables equal a clean run's; a fault that does not stop fails the run with a clear
message, exit code 75 (EX_TEMPFAIL: AWS Batch retries it; exit 2 for access denied: the input
must change) and no manifest.

The cluster's workers get ``AWS_MAX_ATTEMPTS=3`` so that a persistent fault fails in seconds;
the retry mode stays finbatch's default (analytics/storage.py: ``standard``, 10 attempts).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest
import s3fs
from distributed import LocalCluster

from analytics.data.storage import S3_MAX_ATTEMPTS, s3_options
from analytics.run.manifest import MANIFEST
from tests.conftest import read_manifest, run_cli
from tests.s3proxy import FaultProxy, Rule, fault_proxy

# Retries against a fault-injecting proxy wait out their back-off: outside the fast lane.
pytestmark = pytest.mark.slow

PRICE_KEY = "prices/year=2024/part-0.parquet"


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str, market: Path) -> str:
    """The market's prices uploaded straight to moto (not through the proxy)."""
    name = f"faults-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    for path in sorted((market / "prices").rglob("*.parquet")):
        key = path.relative_to(market).as_posix()
        client.upload_file(str(path), name, f"market/{key}")
    return name


@pytest.fixture(scope="module")
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with fault_proxy(s3_endpoint) as running:
        yield running


@pytest.fixture(scope="module")
def proxied(proxy: FaultProxy, s3_endpoint: str) -> Iterator[str]:
    """A one-worker cluster whose worker (and this driver) reach S3 through the proxy."""
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_MAX_ATTEMPTS")}
    os.environ.update(AWS_ENDPOINT_URL=proxy.url, AWS_MAX_ATTEMPTS="3")
    # s3fs caches filesystems (and their endpoint) per process: start afresh on the proxy.
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        with LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as cluster:
            yield cluster.scheduler_address
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        s3fs.S3FileSystem.clear_instance_cache()


def _run(bucket: str, output: str, scheduler: str) -> tuple[int, str]:
    result = run_cli(
        [
            "market-performance",
            "--input",
            f"s3://{bucket}/market",
            "--output",
            output,
            "--scheduler",
            scheduler,
        ]
    )
    return result.code, result.stderr


def _metrics(output: Path) -> pd.DataFrame:
    # run_id leads every table and differs between runs: the metrics are compared.
    frame = pd.read_parquet(output / "metrics").drop(columns="run_id")
    return frame.sort_values(["symbol", "period"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def clean(
    bucket: str, proxied: str, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> pd.DataFrame:
    proxy.set_rules()
    out = tmp_path_factory.mktemp("clean") / "run"
    code, err = _run(bucket, str(out), proxied)
    assert code == 0, err
    assert not proxy.requests("slowdown") and proxy.requests("forward")
    return _metrics(out)


@pytest.mark.parametrize(
    "rule",
    [
        Rule("slowdown", method="GET", path_contains=PRICE_KEY, times=2),
        Rule("reset", method="GET", path_contains=PRICE_KEY, times=2),
        Rule("slowdown", method="HEAD", path_contains=PRICE_KEY, times=2),
    ],
    ids=["503-get", "reset-get", "503-head"],
)
def test_transient_fault_is_retried_and_the_run_equals_a_clean_one(
    bucket: str,
    proxied: str,
    proxy: FaultProxy,
    clean: pd.DataFrame,
    tmp_path: Path,
    rule: Rule,
) -> None:
    proxy.set_rules(rule)
    out = tmp_path / "run"
    code, err = _run(bucket, str(out), proxied)
    assert code == 0, err
    assert rule.fired == rule.times  # the fault really happened ...
    retried = [s for s in proxy.requests(path_contains=PRICE_KEY) if s.method == rule.method]
    # ... and the request that met it was sent again and went through.
    assert retried[-1].action in ("forward", "delay") and len(retried) > rule.fired
    pd.testing.assert_frame_equal(_metrics(out), clean)
    manifest = read_manifest(str(out))
    assert manifest is not None and manifest["outputs"]["metrics"]["rows"] == len(clean)


def test_slow_answers_only_slow_the_run(
    bucket: str, proxied: str, proxy: FaultProxy, clean: pd.DataFrame, tmp_path: Path
) -> None:
    """Every read of one file answered 1 s late (well within botocore's 60 s read timeout)."""
    rule = Rule("delay", method="GET", path_contains=PRICE_KEY, delay_s=1.0)
    proxy.set_rules(rule)
    out = tmp_path / "run"
    code, err = _run(bucket, str(out), proxied)
    assert code == 0, err
    assert rule.fired >= 1 and rule.fired == len(
        proxy.requests(path_contains=PRICE_KEY, action="delay")
    )
    pd.testing.assert_frame_equal(_metrics(out), clean)


def test_transient_faults_while_the_outputs_are_written(
    bucket: str, proxied: str, proxy: FaultProxy, clean: pd.DataFrame
) -> None:
    """Throttled and reset uploads of the result parts and of the manifest are retried too."""
    output = f"s3://{bucket}/runs/{uuid.uuid4().hex[:8]}"
    proxy.set_rules(
        Rule("slowdown", method="PUT", path_contains="/metrics/", times=2),
        Rule("reset", method="PUT", path_contains=MANIFEST, times=1),
    )
    code, err = _run(bucket, output, proxied)
    assert code == 0, err
    assert [r.fired for r in proxy.rules] == [2, 1]
    manifest = read_manifest(output)
    assert manifest is not None
    fs = s3fs.S3FileSystem()
    frame = pd.concat(
        pd.read_parquet(fs.open(p, "rb"))
        for p in sorted(fs.glob(f"{output.removeprefix('s3://')}/metrics/*.parquet"))
    ).drop(columns="run_id")
    pd.testing.assert_frame_equal(
        frame.sort_values(["symbol", "period"]).reset_index(drop=True), clean
    )


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        (Rule("slowdown", path_contains=PRICE_KEY), "storage kept failing"),
        (Rule("reset", method="GET", path_contains=PRICE_KEY), "storage kept failing"),
        # A read (GET) that keeps failing inside pyarrow: s3fs retries the botocore call
        # (itself 3 attempts) 5 times, about 10 s here.
        (Rule("slowdown", method="GET", path_contains=PRICE_KEY), "reduce your request rate"),
    ],
    ids=["503-for-ever", "resets-for-ever", "503-get-for-ever"],
)
def test_persistent_fault_fails_clearly_with_no_manifest(
    bucket: str, proxied: str, proxy: FaultProxy, tmp_path: Path, rule: Rule, needle: str
) -> None:
    proxy.set_rules(rule)
    out = tmp_path / "run"
    code, err = _run(bucket, str(out), proxied)
    assert code == 75, err
    assert needle in err and PRICE_KEY in err and "dataset 'prices'" in err, err
    # AWS_MAX_ATTEMPTS=3: the request was tried more than once before giving up.
    assert rule.fired >= 3
    assert read_manifest(str(out)) is None
    assert not (out / MANIFEST).exists() and not list(out.glob("metrics/*.parquet"))


def test_outputs_that_storage_keeps_refusing_exit_75(
    bucket: str, proxied: str, proxy: FaultProxy
) -> None:
    """Every upload of a result part answered 503: past the retries, exit 75, no manifest."""
    output = f"s3://{bucket}/runs/{uuid.uuid4().hex[:8]}"
    rule = Rule("slowdown", method="PUT", path_contains="/metrics/")
    proxy.set_rules(rule)
    code, err = _run(bucket, output, proxied)
    assert code == 75, err
    assert "storage kept failing after its retries" in err, err
    assert rule.fired >= 3  # AWS_MAX_ATTEMPTS=3: tried again before giving up
    proxy.set_rules()
    assert read_manifest(output) is None


def test_access_denied_object_is_bad_input(
    bucket: str, proxied: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """An object the job's role may not read (403 AccessDenied, served by the proxy: moto's
    server does not enforce bucket policies) is not retried: exit 2, the file named."""
    proxy.set_rules(Rule("denied", path_contains=PRICE_KEY))
    out = tmp_path / "run"
    code, err = _run(bucket, str(out), proxied)
    assert code == 2, err
    assert "access denied" in err and PRICE_KEY in err and "dataset 'prices'" in err, err
    assert proxy.rules[0].fired == 1  # a 403 is final: no retry
    assert read_manifest(str(out)) is None and not list(out.glob("metrics/*.parquet"))


def test_retry_defaults_yield_to_the_aws_environment() -> None:
    def retries(env: dict[str, str]) -> object:
        return s3_options(env).get("config_kwargs", {}).get("retries")

    assert retries({}) == {"mode": "standard", "max_attempts": S3_MAX_ATTEMPTS}
    assert retries({"AWS_MAX_ATTEMPTS": "3"}) == {"mode": "standard"}
    assert retries({"AWS_RETRY_MODE": "adaptive"}) == {"max_attempts": S3_MAX_ATTEMPTS}
    assert retries({"AWS_RETRY_MODE": "legacy", "AWS_MAX_ATTEMPTS": "2"}) is None
