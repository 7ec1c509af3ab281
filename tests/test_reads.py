"""Read planning by bytes (analytics/data/reads.py): the plan by hand, a large file cut by row
groups read back row for row, row groups pruned by their symbol statistics, and on S3 (the moto
server behind a counting proxy) one paginated listing per dataset and one request per small
file."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from analytics.data import buckets, reads
from analytics.data.datasets import DataFile, Selection, list_files, read_file
from analytics.errors import InputError
from tests.s3proxy import FaultProxy, fault_proxy

KiB = 2**10
MiB = 2**20


def _names(units: list[reads.ReadUnit]) -> list[list[str]]:
    return [[s.url.rsplit("/", 1)[-1] for s in u.slices] for u in units]


# ---------------------------------------------------------------------------------------------
# The plan, by hand


def test_small_files_are_grouped_up_to_the_target() -> None:
    # Local files cost their size + 1 MiB (1024 KiB); target 4096 KiB.
    # a..d: 1124 KiB each: a+b+c = 3372 fits, + d = 4496 does not -> [a, b, c], then [d];
    # e: 3 MiB + 1 MiB = 4096: d + e = 5220 > 4096 -> [d] closes; e alone fills a unit;
    # f: 1034 -> [f].
    sizes = {"a": 100, "b": 100, "c": 100, "d": 100, "e": 3072, "f": 10}
    files = [DataFile(f"/data/prices/{n}.parquet", s * KiB) for n, s in sizes.items()]
    units = reads.plan_reads(files, 4 * MiB)
    assert _names(units) == [
        ["a.parquet", "b.parquet", "c.parquet"],
        ["d.parquet"],
        ["e.parquet"],
        ["f.parquet"],
    ]
    assert [u.cost // KiB for u in units] == [3372, 1124, 4096, 1034]
    assert [u.indexes for u in units] == [(0, 1, 2), (3,), (4,), (5,)]
    assert all(s.row_groups is None for u in units for s in u.slices)


def test_a_remote_file_costs_more_to_open() -> None:
    # On S3 a file costs its size + 4 MiB: three 4 MiB files cost 8 MiB each, two per 16 MiB.
    files = [DataFile(f"s3://b/prices/{i}.parquet", 4 * MiB) for i in range(3)]
    assert [u.indexes for u in reads.plan_reads(files, 16 * MiB)] == [(0, 1), (2,)]


def test_a_large_file_is_cut_by_row_groups() -> None:
    # big: 10 row groups of 1 MiB (10 MiB > the 4 MiB target): runs of at most 4 MiB of row
    # groups -> [0..3], [4..7], [8, 9], each costing its groups + 1 MiB to open. The small file
    # before it closes its unit first; the one after starts a new one.
    files = [
        DataFile("/d/prices/a.parquet", 100 * KiB),
        DataFile("/d/prices/big.parquet", 10 * MiB),
        DataFile("/d/prices/z.parquet", 100 * KiB),
    ]
    units = reads.plan_reads(files, 4 * MiB, {"/d/prices/big.parquet": [MiB] * 10})
    assert _names(units) == [["a.parquet"], *[["big.parquet"]] * 3, ["z.parquet"]]
    assert [u.slices[0].row_groups for u in units] == [
        None,
        (0, 1, 2, 3),
        (4, 5, 6, 7),
        (8, 9),
        None,
    ]
    assert [u.cost // MiB for u in units[1:4]] == [5, 5, 3]
    # A progress of files read counts big once, with its first run: 3 files in all.
    assert [u.file_count for u in units] == [1, 1, 0, 0, 1]
    # Without its footer's sizes (unreadable), a large file is read whole, alone.
    whole = reads.plan_reads(files, 4 * MiB)
    assert [u.indexes for u in whole] == [(0,), (1,), (2,)]
    with pytest.raises(ValueError, match="target must be positive"):
        reads.plan_reads(files, 0)


def test_target_bytes_by_threads_within_bounds() -> None:
    ten = [DataFile(f"/d/p/{i}.parquet", 3 * MiB) for i in range(10)]
    # 10 files x (3 + 1) MiB = 40 MiB over 2 units per thread.
    assert reads.target_bytes(ten, 2) == 10 * MiB
    assert reads.target_bytes(ten, 1) == 20 * MiB
    # 40 MiB / 200 units is below the open cost: the open cost is the floor.
    assert reads.target_bytes(ten, 100) == reads.LOCAL_OPEN_COST_BYTES
    huge = [DataFile(f"/d/p/{i}.parquet", 100 * MiB) for i in range(100)]
    assert reads.target_bytes(huge, 2) == reads.MAX_UNIT_BYTES


def test_max_units_raises_the_target_up_to_the_memory_bound() -> None:
    # 40 files of 3 MiB (4 MiB each with the local open cost) at a 4 MiB target: 40 units.
    forty = [DataFile(f"/d/p/{i}.parquet", 3 * MiB) for i in range(40)]
    assert len(reads.plan_reads(forty, 4 * MiB)) == 40
    # At most 10: the target becomes 4 MiB x 40 / 10 = 16 MiB, 4 files a unit, 10 units.
    bounded = reads.plan_reads(forty, 4 * MiB, max_units=10)
    assert [u.indexes for u in bounded] == [tuple(range(i, i + 4)) for i in range(0, 40, 4)]
    # At most 1: 4 MiB x 40 = 160 MiB is over the 64 MiB bound, so the target is 64 MiB,
    # 16 files a unit: 16, 16, 8 -- 3 units, more than asked.
    assert [len(u.slices) for u in reads.plan_reads(forty, 4 * MiB, max_units=1)] == [16, 16, 8]
    # A large file's row groups: 10 of 1 MiB at a 1 MiB target are 10 units; at most 4 raise
    # the target to 1 MiB x 10 / 4 = 2.5 MiB: runs of 2, 5 units; then to 2.5 MiB x 5 / 4 =
    # 3.125 MiB: runs of 3 (3, 3, 3, 1), 4 units.
    big = [DataFile("/d/p/big.parquet", 10 * MiB)]
    groups = {"/d/p/big.parquet": [MiB] * 10}
    assert len(reads.plan_reads(big, MiB, groups)) == 10
    cut = reads.plan_reads(big, MiB, groups, max_units=4)
    assert [u.slices[0].row_groups for u in cut] == [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9,)]
    with pytest.raises(ValueError, match="max_units must be positive"):
        reads.plan_reads(forty, 4 * MiB, max_units=0)


# ---------------------------------------------------------------------------------------------
# Real files: a large file read back by units, every row exactly once

DAYS = pd.bdate_range("2024-01-02", periods=2000).date
SYMBOLS = [f"S{i:03d}" for i in range(20)]


def _prices(n_days: int, symbols: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        [(s, d) for d in DAYS[:n_days] for s in symbols], columns=["symbol", "date"]
    )
    for column in ("open", "high", "low", "close", "volume"):
        frame[column] = rng.uniform(1.0, 100.0, len(frame))
    return frame


def _write(frame: pd.DataFrame, path: Path, rows_per_group: int) -> DataFile:
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=rows_per_group
    )
    return DataFile(str(path), path.stat().st_size)


def _key(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[["symbol", "date", "close"]].astype({"symbol": str})
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.sort_values(["symbol", "date"]).reset_index(drop=True)


@pytest.fixture
def large_file(tmp_path: Path) -> tuple[pd.DataFrame, list[DataFile]]:
    """A large file (40,000 rows in 20 row groups, by date) between two small ones."""
    folder = tmp_path / "prices"
    folder.mkdir()
    big = _prices(2000, SYMBOLS, 1)  # 2000 days x 20 symbols, sorted by date
    small_a = _prices(10, ["A"], 2)
    small_z = _prices(10, ["Z"], 3)
    files = [
        _write(small_a, folder / "a.parquet", 1000),
        _write(big, folder / "big.parquet", 2000),
        _write(small_z, folder / "z.parquet", 1000),
    ]
    return pd.concat([small_a, big, small_z], ignore_index=True), files


def test_a_large_file_split_by_row_groups_reads_every_row_once(
    large_file: tuple[pd.DataFrame, list[DataFile]],
) -> None:
    rows, files = large_file
    sizes = reads.row_group_bytes(files)
    assert len(sizes[files[1].url]) == 20
    # A target of 3 row groups' bytes cuts big.parquet into 7 runs (6 of 3 groups, 1 of 2).
    target = 3 * max(sizes[files[1].url])
    units = reads.plan_reads(files, target, sizes)
    runs = [u.slices[0].row_groups for u in units if u.slices[0].url == files[1].url]
    assert [g for run in runs for g in (run or ())] == list(range(20))
    assert len(runs) == 7 and all(run and len(run) <= 3 for run in runs)
    tables = [reads.read_unit(u, "prices", ["symbol", "date", "close"], Selection()) for u in units]
    got = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    assert len(got) == len(rows) == 40_020
    pd.testing.assert_frame_equal(_key(got), _key(rows))
    # The rows' files (for messages naming a duplicate's two files) follow the slices.
    pieces = [buckets.read_and_split(u, Selection(), 1, ["close"])[0] for u in units]
    index = np.concatenate([p.files for p in pieces])
    assert np.bincount(index).tolist() == [10, 40_000, 10]


def test_row_group_slices_and_a_date_range_intersect(
    large_file: tuple[pd.DataFrame, list[DataFile]],
) -> None:
    rows, files = large_file
    start, end = DAYS[150], DAYS[1234]  # row group 1 (days 100..199) to 12 (days 1200..1299)
    sel = Selection(start, end)
    units = reads.plan(files, threads=64)  # 64 threads: the 1 MiB floor, big (> 1 MiB) is cut
    assert sum(u.slices[0].row_groups is not None for u in units) >= 2
    got = pd.concat(
        [reads.read_unit(u, "prices", None, sel).to_pandas() for u in units], ignore_index=True
    )
    wanted = rows[(rows["date"] >= start) & (rows["date"] <= end)]
    assert len(got) == len(wanted) == (1234 - 150 + 1) * 20
    pd.testing.assert_frame_equal(_key(got), _key(wanted))


def test_a_duplicate_across_slices_names_its_file(tmp_path: Path) -> None:
    """Two row groups of one file hold the same (symbol, date): read by two units, the merge
    still finds it and names the file."""
    frame = _prices(4, ["A"], 5)
    frame.loc[3, "date"] = frame.loc[0, "date"]
    f = _write(frame, tmp_path / "dup.parquet", 2)
    units = reads.plan_reads([f], 1, {f.url: [1, 1]})
    assert [u.slices[0].row_groups for u in units] == [(0,), (1,)]
    pieces = [buckets.read_and_split(u, Selection(), 1, ["close"])[0] for u in units]
    with pytest.raises(InputError, match=r"1 duplicate \(symbol, date\).*dup.parquet"):
        buckets.merge(pieces, [f.url])


def test_row_groups_without_the_selected_symbols_are_not_read(tmp_path: Path) -> None:
    # 20 symbols x 100 days sorted by symbol, 200 rows per group: group g holds S(2g) and
    # S(2g+1), so S003 is in group 1 and S010 in group 5.
    frame = _prices(100, SYMBOLS, 4).sort_values(["symbol", "date"], ignore_index=True)
    f = _write(frame, tmp_path / "by-symbol.parquet", 200)
    from analytics.data.datasets import _row_groups

    meta = pq.ParquetFile(f.url).metadata
    assert _row_groups(meta, "date", None, None, ("S003", "S010")) == [1, 5]
    assert _row_groups(meta, "date", None, None, ("S999",)) == []
    assert _row_groups(meta, "date", None, None, None) is None
    got = read_file(f.url, "prices", ["symbol", "date", "close"], Selection(symbols=("S010",)))
    assert got.num_rows == 100
    assert set(got.column("symbol").to_pylist()) == {"S010"}
    none = read_file(f.url, "prices", ["symbol", "date", "close"], Selection(symbols=("ZZZ",)))
    assert none.num_rows == 0 and none.column_names == ["symbol", "date", "close"]


# ---------------------------------------------------------------------------------------------
# S3: requests counted by a proxy in front of the moto server


@pytest.fixture(scope="module")
def counted(s3_endpoint: str) -> Iterator[FaultProxy]:
    """This process reaches S3 through a proxy that logs every request."""
    with fault_proxy(s3_endpoint) as proxy:
        saved = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = proxy.url
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield proxy
        finally:
            os.environ["AWS_ENDPOINT_URL"] = saved or s3_endpoint
            s3fs.S3FileSystem.clear_instance_cache()


def _is_listing(path: str) -> bool:
    return "list-type=2" in path


def test_s3_listing_is_one_paginated_request_series(s3_endpoint: str, counted: FaultProxy) -> None:
    """1,050 objects in 21 year= folders: two pages of one ListObjectsV2 listing of the
    dataset's prefix, no request per folder, no HEAD; a sibling prefix is not listed."""
    bucket = f"list-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)  # straight to moto: not counted
    client.create_bucket(Bucket=bucket)
    keys = [f"in/prices/year={2000 + y}/part-{i:02d}.parquet" for y in range(21) for i in range(50)]
    for key in [*keys, "in/prices_old/part-0.parquet", "in/prices/_SUCCESS"]:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    counted.set_rules()  # clears the log
    files = list_files(f"s3://{bucket}/in", "prices", Selection())
    assert [f.url for f in files] == sorted(f"s3://{bucket}/{k}" for k in keys)
    assert all(f.version.startswith("etag:") and f.size == 1 for f in files)
    seen = counted.requests()
    # 1,050 keys + _SUCCESS at 1,000 keys a page: 2 pages, the second with the first's token.
    assert [s.method for s in seen] == ["GET", "GET"], seen
    assert all(_is_listing(s.path) and "prefix=in/prices/" in s.path for s in seen), seen
    assert not any("delimiter=/" in s.path for s in seen), seen
    assert "continuation-token=" in seen[1].path
    # Pruned by year: the same single listing, fewer files.
    counted.set_rules()
    sel = Selection(dt.date(2019, 1, 1), dt.date(2020, 12, 31))
    assert len(list_files(f"s3://{bucket}/in", "prices", sel)) == 100
    assert len(counted.requests()) == 2


def test_s3_missing_dataset_is_one_listing_and_a_clear_error(
    s3_endpoint: str, counted: FaultProxy
) -> None:
    bucket = f"none-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    counted.set_rules()
    with pytest.raises(InputError, match=r"no files found under s3://.*/in/prices"):
        list_files(f"s3://{bucket}/in", "prices", Selection())
    # The empty listing, then s3fs's one check of the prefix as an object.
    assert 1 <= len(counted.requests()) <= 3
    assert sum(_is_listing(s.path) for s in counted.requests()) <= 2


def test_s3_small_files_are_read_in_one_request_each(
    s3_endpoint: str, counted: FaultProxy, tmp_path: Path
) -> None:
    bucket = f"read-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=bucket)
    frames = {s: _prices(30, [s], i) for i, s in enumerate(SYMBOLS[:6])}
    for s, frame in frames.items():
        _write(frame, tmp_path / f"{s}.parquet", 1000)
        client.upload_file(str(tmp_path / f"{s}.parquet"), bucket, f"in/prices/{s}.parquet")
    files = list_files(f"s3://{bucket}/in", "prices", Selection())
    # Six files of a few KiB cost about 4 MiB each (to open): one unit of the largest target.
    units = reads.plan_reads(files, reads.MAX_UNIT_BYTES)
    assert len(units) == 1
    counted.set_rules()
    table = reads.read_unit(units[0], "prices", ["symbol", "date", "close"], Selection())
    seen = counted.requests()
    assert [s.method for s in seen] == ["GET"] * 6, seen
    assert sorted(s.path.rsplit("/", 1)[-1] for s in seen) == sorted(f"{s}.parquet" for s in frames)
    got = table.to_pandas()
    pd.testing.assert_frame_equal(_key(got), _key(pd.concat(frames.values())))
