"""``--nodes auto`` on generated data in the moto S3 server: more data, more nodes; capped."""

from __future__ import annotations

import json
import math
import uuid

import boto3
import pandas as pd
import pytest

import entrypoint
from finbatch.batch.sizing import InputSize, SizingRule, decide
from tests.conftest import run_cli

SYMBOLS = 30


@pytest.fixture(scope="module")
def s3_market(s3_endpoint: str) -> str:
    bucket = f"finbatch-sizing-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/market"
    dates = ["--start", "2021-01-04", "--end", "2024-06-28"]
    sizes = ["--n-symbols", str(SYMBOLS), "--intraday-symbols", "0", "--seed", "3"]
    code = entrypoint.main(["generate-data", "--output", url, *dates, *sizes])
    assert code == 0
    return url


def _auto(url: str, *extra: str) -> tuple[int, str]:
    """numNodes of the dry-run request, and the printed decision."""
    argv = ["batch", "submit", "market-performance", "--input", url, "--output", "s3://r/x"]
    result = run_cli([*argv, "--queue", "q", "--nodes", "auto", "--dry-run", *extra])
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)["nodeOverrides"]["numNodes"], result.stderr


def test_more_data_more_nodes_capped(s3_market: str) -> None:
    # A year file of 30 symbols is some tens of KB: 10 KB per node makes the count follow it.
    per_node = ["--bytes-per-node", "10000", "--max-nodes", "64"]
    one_year, why_one = _auto(s3_market, "--start", "2024-01-02", *per_node)
    all_years, why_all = _auto(s3_market, *per_node)
    assert "1 objects" in why_one and "4 objects" in why_all  # hive pruning by year
    assert 2 <= one_year < all_years
    capped, why = _auto(s3_market, "--bytes-per-node", "10000", "--max-nodes", "3")
    assert capped == 3 and "capped at --max-nodes 3" in why
    floor, why = _auto(s3_market, "--start", "2024-01-02")  # 4 GiB per node: the minimum
    assert floor == 2 and "raised to the minimum 2" in why


def test_backtests_per_node_rule(s3_market: str) -> None:
    argv = ["batch", "submit", "backtest", "--input", s3_market, "--output", "s3://r/x"]
    argv += ["--strategy", "sma-cross", "--grid", "fast=2:20:1", "--grid", "slow=30,40"]
    argv += ["--queue", "q", "--nodes", "auto", "--dry-run"]
    result = run_cli(argv)
    assert result.code == 0, result.stderr
    # The generated market has its symbols (and an index) in every year's file.
    symbols = pd.read_parquet(f"{s3_market}/prices/year=2024")["symbol"].nunique()
    # 19 x 2 = 38 combinations (every fast < slow) x the symbols: under 10,000,000 per node, so
    # the minimum 2; at 100 per node, ceil(symbols x 38 / 100).
    assert f"{symbols} symbols x 38 combinations = {symbols * 38:,} backtests" in result.stderr
    assert json.loads(result.stdout)["nodeOverrides"]["numNodes"] == 2
    result = run_cli([*argv, "--backtests-per-node", "100"])
    expected = math.ceil(symbols * 38 / 100)
    assert json.loads(result.stdout)["nodeOverrides"]["numNodes"] == expected


def test_decide_by_hand() -> None:
    rule = SizingRule(bytes_per_node=100, backtests_per_node=10)
    # ceil(250 / 100) = 3 by bytes; ceil(4 x 9 / 10) = 4 by backtests: the larger wins.
    assert decide(InputSize(5, 250, 4, 9), rule, 0, 16).nodes == 4
    assert decide(InputSize(5, 250), rule, 0, 16).nodes == 3
    assert decide(InputSize(5, 250), rule, 5, 16).nodes == 5  # the job's --min-nodes
    assert decide(InputSize(5, 25_000), rule, 0, 16).nodes == 16
