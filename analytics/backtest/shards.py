"""Spot fan-out of a sweep: deterministic shards of the combinations, and their merge.

A shard (``backtest --shard I/K``) is the whole sweep restricted to a contiguous slice of the
grid's combinations, over every selected symbol: it writes a complete backtest run (``results/``,
``summary/``, ``top/``, ``equity/``, manifest) into its own folder ``OUTPUT/_shards/
shard-I-of-K``. A shard is cut along the combinations only, because a combination's
equal-weighted portfolio needs every symbol's returns: a shard that holds all of them computes
its ``summary/`` rows exactly as a single run does, so no per-day partial sums have to be
persisted and re-added (which would also reorder the floating-point additions).

The merge (``backtest --merge-shards K``) copies the shards' ``results/`` and ``summary/`` parts
into ``OUTPUT`` and ranks the shards' ``top/`` candidates again with
:func:`analytics.backtest.portfolio.top_task`: the global best ``N`` are among the shards' best
``N``, and ties keep grid order because shard ``I``'s combinations all precede shard ``I+1``'s.
A rerun shard (a reclaimed Spot instance) replaces its own folder (same run id, deterministic
part names), so nothing is counted twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from dask.delayed import delayed
from distributed import Client

from analytics.arguments import positive_int
from analytics.backtest import portfolio
from analytics.backtest.strategies._base import Combos
from analytics.backtest.sweep import RESULTS
from analytics.datasets import DataFile
from analytics.errors import InputError
from analytics.jobs import RunSettings
from analytics.output import RunOutput, WrittenPart, _jsonable, part_name
from analytics.storage import join, open_fs

#: The environment variable AWS Batch sets in each child of an array job.
ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
SHARDS_FOLDER = "_shards"
#: Tables copied part by part; ``top/`` and ``equity/`` are ranked again.
COPIED = (RESULTS, portfolio.SUMMARY)
#: Options that must be the same in every shard and in the merge.
SHARED_OPTIONS = (
    "strategy",
    "grid",
    "direction",
    "fill",
    "fees_bps",
    "slippage_bps",
    "top",
    "input",
    "start",
    "end",
    "symbols",
    "as_of_month",
)


@dataclass(frozen=True)
class ShardSpec:
    """``--shard I/K``: shard ``index`` of ``count``; ``index`` None: from the array index."""

    index: int | None
    count: int


def shard_option(text: str) -> ShardSpec:
    """``I/K`` (0 <= I < K) or ``array/K`` (I from ``AWS_BATCH_JOB_ARRAY_INDEX``)."""
    index, sep, count = text.partition("/")
    try:
        k = int(count)
        i = None if index.strip() == "array" else int(index)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/K or array/K (e.g. 0/4)") from None
    if not sep or k < 1 or (i is not None and not 0 <= i < k):
        raise argparse.ArgumentTypeError(f"{text!r}: need K >= 1 and 0 <= I < K")
    return ShardSpec(i, k)


def resolve(spec: ShardSpec, env: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """The shard's (index, count), the index read from the array job's variable if needed."""
    if spec.index is not None:
        return spec.index, spec.count
    raw = env.get(ARRAY_INDEX)
    if raw is None or not raw.isdigit():
        raise InputError(
            f"--shard array/{spec.count}: ${ARRAY_INDEX} is {raw!r}; run it as a child of an "
            "array job, or give the index: --shard I/K"
        )
    index = int(raw)
    if index >= spec.count:
        raise InputError(f"${ARRAY_INDEX}={index} is not below the shard count {spec.count}")
    return index, spec.count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The backtest's ``--shard`` and ``--merge-shards`` options."""
    parser.add_argument(
        "--shard",
        type=shard_option,
        metavar="I/K",
        help="run only shard I of K of the combinations, into OUTPUT/_shards/shard-I-of-K "
        f"(array/K: I from ${ARRAY_INDEX}); see --merge-shards",
    )
    parser.add_argument(
        "--merge-shards",
        type=positive_int,
        metavar="K",
        help="combine the K committed shards in OUTPUT/_shards into OUTPUT's tables "
        "(give the shards' options)",
    )


def prepare(args: argparse.Namespace, settings: RunSettings, total: int) -> RunSettings:
    """Check the shard options against the sweep's ``total`` combinations; a shard's run goes
    to its own folder (``args.shard`` becomes ``I/K`` and ``args.output`` the folder, so the
    manifest and the report name them)."""
    shard = getattr(args, "shard", None)
    merging = getattr(args, "merge_shards", None)
    if shard is not None and merging is not None:
        raise InputError("give either --shard or --merge-shards, not both")
    if merging is not None:
        check_count(total, merging)
    if shard is None:
        return settings
    index, count = resolve(shard)
    check_count(total, count)
    url = shard_url(settings.output_url, index, count)
    args.shard, args.output = f"{index}/{count}", url
    return dataclasses.replace(settings, output_url=url)


def shard_slice(total: int, index: int, count: int) -> slice:
    """Shard ``index`` of ``count``: a contiguous slice of ``total`` combinations (balanced)."""
    return slice(index * total // count, (index + 1) * total // count)


def check_count(total: int, count: int) -> None:
    if count > total:
        raise InputError(
            f"{count} shards for {total} combinations: some would be empty; "
            f"use at most {total} shards"
        )


def shard_url(output_url: str, index: int, count: int) -> str:
    """The folder of shard ``index`` of ``count`` under the run's output folder."""
    return join(output_url, SHARDS_FOLDER, f"shard-{index:04d}-of-{count:04d}")


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as the manifest records them (to compare with a shard's parameters)."""
    loaded: dict[str, Any] = json.loads(json.dumps(_jsonable(values), sort_keys=True))
    return loaded


def _shard_manifest(output_url: str, index: int, count: int) -> dict[str, Any]:
    url = shard_url(output_url, index, count)
    manifest = RunOutput(url).read_manifest()
    if manifest is None:
        raise InputError(
            f"shard {index} of {count} has not committed (no manifest in {url}): rerun it, "
            "then the merge"
        )
    return manifest


def _check_same(manifests: Sequence[dict[str, Any]], own: Mapping[str, Any]) -> None:
    for i, manifest in enumerate(manifests):
        params = manifest.get("parameters", {})
        for name in SHARED_OPTIONS:
            if name in own and params.get(name) != own[name]:
                raise InputError(
                    f"shard {i} ran with {name}={params.get(name)!r} but the merge has "
                    f"{own[name]!r}: give the merge the shards' options"
                )


def _copy(src: str, dst: str, table: str, rows: int) -> WrittenPart:
    fs, src_path = open_fs(src)
    _, dst_path = open_fs(dst)
    fs.makedirs(dst_path.rsplit("/", 1)[0], exist_ok=True)
    fs.copy(src_path, dst_path)
    return WrittenPart(table, dst, rows, int(fs.size(dst_path)))


def _read(url: str) -> Any:
    fs, path = open_fs(url)
    with fs.open(path, "rb") as handle:
        return pq.read_table(handle)


def _candidates(
    output_url: str, index: int, manifest: dict[str, Any], top: int
) -> tuple[portfolio.Candidates, np.ndarray]:
    files = manifest["outputs"]
    frame = _read(files[portfolio.TOP]["files"][0]["url"]).to_pandas()
    equity = _read(files[portfolio.EQUITY]["files"][0]["url"]).to_pandas()
    equity = equity.sort_values(["rank", "date"], kind="stable")
    days = np.unique(equity["date"].to_numpy().astype("datetime64[D]").astype(np.int64))
    curves = equity["equity"].to_numpy(dtype=np.float64).reshape(len(frame), len(days))
    frame = frame.sort_values("rank", kind="stable").reset_index(drop=True)
    # Shard I's combinations precede shard I+1's, and a shard's ranks keep grid order on ties.
    order = index * top + frame["rank"].to_numpy() - 1
    chosen = frame.drop(columns="rank").assign(_order=order)
    return portfolio.Candidates(chosen, curves), days


def merge(
    client: Client, output_url: str, combos: Combos, count: int, own: Mapping[str, Any], top: int
) -> tuple[list[WrittenPart], list[DataFile], dict[str, Any], Any]:
    """Combine ``count`` committed shards into ``output_url``'s tables.

    Returns the written parts, the input files, the run summary and the top frame.

    Raises
    ------
    InputError
        When a shard has not committed, or ran with other options than the merge.
    """
    manifests = [_shard_manifest(output_url, i, count) for i in range(count)]
    _check_same(manifests, own)
    copies = []
    index = dict.fromkeys(COPIED, 0)
    for manifest in manifests:
        for table in COPIED:
            for f in manifest["outputs"].get(table, {}).get("files", []):
                dst = join(output_url, table, part_name(index[table]))
                index[table] += 1
                copies.append(delayed(_copy, pure=True)(f["url"], dst, table, f["rows"]))
    futures = client.compute(copies)
    copied: list[WrittenPart] = client.gather(futures)
    picked = [_candidates(output_url, i, m, top) for i, m in enumerate(manifests)]
    days = picked[0][1]
    for i, (_, d) in enumerate(picked):
        if not np.array_equal(d, days):
            raise InputError(f"shard {i} has another calendar than shard 0: rerun it")
    ranked, frame = portfolio.top_task(output_url, combos, days, [c for c, _ in picked], top)
    first = manifests[0]
    inputs = [
        DataFile(f["url"], int(f["bytes"])) for f in first["inputs"].get("prices", {})["files"]
    ]
    summary = dict(first["summary"])
    for key in ("combinations", "combination_chunks", "tasks"):
        summary[key] = sum(int(m["summary"][key]) for m in manifests)
    summary["shards"] = count
    return [*copied, *ranked], inputs, summary, frame
