"""Read planning: Dask tasks by bytes, not by files.

A dataset written by streaming or by many small writers has thousands of small files; one task
per file makes the scheduler, not the reads, the cost (and floods it with tiny results). A job's
read step instead plans *read units* (:func:`plan_reads`), one task each:

* every file costs its size plus an *open cost* (:data:`OPEN_COST_BYTES`: its request, its
  footer, its fixed per-file work, as bytes that would be read in the same time);
* consecutive files in listing order go into one unit until the next one would take it over
  the target (a unit always holds at least one file);
* a file larger than the target, with more than one row group, is cut into runs of
  consecutive row groups of at most the target's bytes each (a row group never splits), one
  unit per run; its row groups' sizes come from its Parquet footer (:func:`row_group_bytes`),
  read on the driver for such files only;
* the target (:func:`target_bytes`) is the total cost over ``UNITS_PER_THREAD`` units per
  thread, kept between the open cost and :data:`MAX_UNIT_BYTES`;
* given ``max_units`` (the job's scheduler cap, :func:`analytics.jobs.tasks.units_within`), the
  target grows until the plan has at most that many units, or reaches :data:`MAX_UNIT_BYTES`
  (the memory bound wins: the plan then has more units than asked).

This is Spark's rule for file splits (``maxPartitionBytes``, ``openCostInBytes``). Planning is
pure; :func:`plan` reads the footers it needs and plans. The listing (each file's URL, size and
``version``) is unchanged by planning: the manifest and the resume fingerprint record the files,
not the units.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from analytics.data.datasets import (
    DataFile,
    Selection,
    empty_frame,
    list_files,
    read_file,
    to_pandas,
)
from analytics.data.storage import open_fs

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

#: What opening one local file costs, in bytes read in the same time (about 1 ms of footer
#: parsing, casts and checks on this project's reader: as long as reading 1 MiB).
LOCAL_OPEN_COST_BYTES: Final = 2**20
#: The same on S3 (a request's latency is worth several MiB of throughput; Spark's default).
OPEN_COST_BYTES: Final = 4 * 2**20
#: Largest unit: its decoded columns stay well within a worker's memory.
MAX_UNIT_BYTES: Final = 64 * 2**20
#: Units per thread at least (when the input is large enough): no thread waits long on the last.
UNITS_PER_THREAD: Final = 2
#: Footers read at once on the driver (each a request on S3).
FOOTER_THREADS: Final = 16


@dataclass(frozen=True)
class FileSlice:
    """One file of a read unit, whole or a run of its row groups (a slice)."""

    url: str
    #: The file's position in the dataset's listing (rows keep it, to name their file).
    index: int
    #: The row groups to read (consecutive); None: the whole file.
    row_groups: tuple[int, ...] | None = None
    #: The file's bytes, from the listing (a small remote file is fetched in one request).
    size: int | None = None


@dataclass(frozen=True)
class ReadUnit:
    """What one read task reads: several small files, one file, or part of a large one."""

    slices: tuple[FileSlice, ...]
    #: The unit's planned cost: its bytes plus one open cost per file.
    cost: int

    @property
    def indexes(self) -> tuple[int, ...]:
        return tuple(p.index for p in self.slices)

    @property
    def file_count(self) -> int:
        """The files this unit counts for in a progress of files read: its whole files, and a
        large file in the unit of its first run of row groups (the units of a listing add up to
        its number of files)."""
        return sum(1 for p in self.slices if not p.row_groups or p.row_groups[0] == 0)


def open_cost(url: str) -> int:
    """The open cost of a file at ``url`` (:data:`OPEN_COST_BYTES` on remote storage)."""
    remote = "://" in url and not url.startswith("file://")
    return OPEN_COST_BYTES if remote else LOCAL_OPEN_COST_BYTES


def target_bytes(files: Sequence[DataFile], threads: int) -> int:
    """The cost of one unit: ``UNITS_PER_THREAD`` units per thread, within the bounds."""
    total = sum(f.size + open_cost(f.url) for f in files)
    low = max((open_cost(f.url) for f in files), default=LOCAL_OPEN_COST_BYTES)
    share = math.ceil(total / (UNITS_PER_THREAD * max(1, threads)))
    return max(low, min(MAX_UNIT_BYTES, share))


def plan_reads(
    files: Sequence[DataFile],
    target: int,
    row_groups: Mapping[str, Sequence[int]] | None = None,
    max_units: int | None = None,
) -> list[ReadUnit]:
    """Read units of about ``target`` bytes of cost each, in listing order (module docstring).

    ``row_groups`` gives the compressed bytes of each row group of the files larger than
    ``target`` (:func:`row_group_bytes`); a large file it does not cover is read whole, alone.
    Every file of ``files`` is in exactly one unit, or its row groups each in exactly one.
    With ``max_units``, the target is raised (in proportion to the excess, at least by a byte)
    until there are at most ``max_units`` units or the target is :data:`MAX_UNIT_BYTES`.
    """
    if target <= 0:
        raise ValueError(f"target must be positive, got {target}")
    if max_units is not None and max_units <= 0:
        raise ValueError(f"max_units must be positive, got {max_units}")
    groups = row_groups or {}
    units = _plan(files, target, groups)
    while max_units is not None and len(units) > max_units and target < MAX_UNIT_BYTES:
        raised = math.ceil(target * len(units) / max_units)
        target = min(MAX_UNIT_BYTES, max(target + 1, raised))
        units = _plan(files, target, groups)
    return units


def _plan(
    files: Sequence[DataFile], target: int, groups: Mapping[str, Sequence[int]]
) -> list[ReadUnit]:
    units: list[ReadUnit] = []
    slices: list[FileSlice] = []
    cost = 0
    for index, f in enumerate(files):
        own = f.size + open_cost(f.url)
        sizes = groups.get(f.url, ())
        split = f.size > target and len(sizes) > 1
        if slices and (split or cost + own > target):
            units.append(ReadUnit(tuple(slices), cost))
            slices, cost = [], 0
        if split:
            units.extend(_split(f, index, sizes, target))
            continue
        slices.append(FileSlice(f.url, index, size=f.size))
        cost += own
    if slices:
        units.append(ReadUnit(tuple(slices), cost))
    return units


def _split(f: DataFile, index: int, sizes: Sequence[int], target: int) -> Iterator[ReadUnit]:
    """Runs of consecutive row groups of ``f`` of at most ``target`` bytes (or one group)."""
    opening = open_cost(f.url)
    run: list[int] = []
    size = 0
    for group, group_size in enumerate(sizes):
        if run and size + group_size > target:
            yield ReadUnit((FileSlice(f.url, index, tuple(run), f.size),), opening + size)
            run, size = [], 0
        run.append(group)
        size += group_size
    yield ReadUnit((FileSlice(f.url, index, tuple(run), f.size),), opening + size)


def _footer(url: str) -> list[int] | None:
    """Compressed bytes of each row group of the Parquet file at ``url`` (None if unreadable:
    the read task then reports what is wrong with the file)."""
    import pyarrow.parquet as pq

    try:
        fs, path = open_fs(url)
        with fs.open(path, "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
    except (OSError, ValueError, pa.ArrowException):
        return None
    return [
        sum(meta.row_group(g).column(c).total_compressed_size for c in range(meta.num_columns))
        for g in range(meta.num_row_groups)
    ]


def row_group_bytes(files: Sequence[DataFile]) -> dict[str, list[int]]:
    """Each file's row groups' compressed bytes, from its footer (read concurrently)."""
    urls = [f.url for f in files]
    if not urls:
        return {}
    with ThreadPoolExecutor(min(FOOTER_THREADS, len(urls))) as pool:
        found = dict(zip(urls, pool.map(_footer, urls), strict=True))
    return {url: sizes for url, sizes in found.items() if sizes is not None}


def plan(files: Sequence[DataFile], threads: int, max_units: int | None = None) -> list[ReadUnit]:
    """The read units of ``files`` for a cluster of ``threads`` (at most ``max_units`` where
    the memory bound allows): the target, the footers of the files larger than it, and
    :func:`plan_reads` (a raised target needs no other footer: fewer files are larger)."""
    target = target_bytes(files, threads)
    large = [f for f in files if f.size > target]
    return plan_reads(files, target, row_group_bytes(large), max_units)


# ---------------------------------------------------------------------------------------------
# Reading a unit (runs in a Dask task)


def files_read(tasks: Sequence[Any], units: Sequence[ReadUnit]) -> dict[str, int]:
    """Each read task's key -> the files of its unit: the weights of a job's reading phase."""
    return {task.key: unit.file_count for task, unit in zip(tasks, units, strict=True)}


def read_slices(
    unit: ReadUnit,
    name: str,
    columns: Sequence[str] | None,
    sel: Selection,
    *,
    categorical: bool = False,
    check_keys: bool = True,
) -> list[pa.Table]:
    """Each slice of ``unit`` read by :func:`~analytics.data.datasets.read_file`, in order."""
    return [
        read_file(
            p.url,
            name,
            columns,
            sel,
            categorical=categorical,
            check_keys=check_keys,
            row_groups=p.row_groups,
            size=p.size,
        )
        for p in unit.slices
    ]


def file_index(unit: ReadUnit, tables: Sequence[pa.Table]) -> npt.NDArray[np.int32]:
    """Each row's file (its index in the listing) for the concatenation of ``tables``."""
    counts = [t.num_rows for t in tables]
    return np.repeat(np.asarray(unit.indexes, dtype=np.int32), counts)


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """The slices' tables as one (they share the reader's canonical schema)."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables)


def read_unit(
    unit: ReadUnit,
    name: str,
    columns: Sequence[str] | None,
    sel: Selection,
    *,
    categorical: bool = False,
    check_keys: bool = True,
) -> pa.Table:
    """The selected rows of every slice of ``unit`` as one table."""
    return concat(
        read_slices(unit, name, columns, sel, categorical=categorical, check_keys=check_keys)
    )


def _read_frame(
    unit: ReadUnit, name: str, columns: Sequence[str] | None, sel: Selection
) -> pd.DataFrame:
    return to_pandas(read_unit(unit, name, columns, sel))


def read_dataset(
    input_url: str,
    name: str,
    sel: Selection,
    threads: int,
    columns: Sequence[str] | None = None,
) -> tuple[dd.DataFrame, list[DataFile]]:
    """The selected rows of a dataset as a Dask DataFrame, one partition per read unit planned
    for a cluster of ``threads``.

    Returns the frame and the files it reads (for the manifest).
    """
    import dask.dataframe as dd

    files = list_files(input_url, name, sel)
    meta = to_pandas(pa.Table.from_pandas(empty_frame(name, columns), preserve_index=False))
    reader = functools.partial(_read_frame, name=name, columns=columns, sel=sel)
    units = plan(files, threads)
    frame = dd.from_map(reader, units, meta=meta, label=f"read-{name}", enforce_metadata=False)
    return frame, files
