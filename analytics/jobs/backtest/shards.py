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
:func:`analytics.jobs.backtest.portfolio.top_task`: the global best ``N`` are among the shards' best
``N``, and ties keep grid order because shard ``I``'s combinations all precede shard ``I+1``'s.
A rerun shard (a reclaimed Spot instance) replaces its own folder (same run id, deterministic
part names), so nothing is counted twice.

Resubmitting a fan-out (a new array job: new run ids) reruns only what is missing: a shard whose
folder holds a committed run of the same shard with the same options and the same input file
versions (ETag on S3, size and mtime locally) exits 0 at once (:class:`AlreadyCommitted`); one
whose inputs changed since replaces its folder; one committed with other options is refused. The
merge refuses shards that read other input file versions than the current ones, naming them.

The sweep's validation needs every combination's daily returns at once, which no shard holds:
a shard's ``dsr`` and ``validation/`` are over its own combinations only. The merge therefore
writes ``dsr`` as NaN in ``summary/`` and ``top/`` (``psr`` does not depend on the other trials
and is kept), keeps one ``buy-and-hold`` baseline row (shard 0's; every shard computes the same
one), and writes no ``validation/``. ``--walk-forward`` and ``--keep-returns`` are refused with
``--shard`` and ``--merge-shards``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from dask.delayed import delayed
from distributed import Client

from analytics.data.datasets import DataFile, Selection, list_files
from analytics.data.storage import open_fs
from analytics.errors import AlreadyCommitted, InputError
from analytics.jobs.backtest import portfolio
from analytics.jobs.backtest.options import Options
from analytics.jobs.backtest.strategies._base import Combos
from analytics.jobs.backtest.sweep import RESULTS
from analytics.jobs.contract import RunSettings
from analytics.run.folder import (
    RUN_ID,
    Destination,
    RunFolder,
    WrittenPart,
    shard_index,
    shard_url,
    write_part,
)
from analytics.run.manifest import Manifest
from analytics.run.manifest import jsonable as _jsonable

log = logging.getLogger(__name__)

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


def prepare(settings: RunSettings, options: Options, total: int) -> tuple[RunSettings, Options]:
    """Check the shard options against the sweep's ``total`` combinations; a shard's run goes
    to its own folder (``shard`` becomes ``I/K`` and the output the shard's folder, so the
    manifest and the report name them)."""
    if options.shard is not None and options.merge_shards is not None:
        raise InputError("give either --shard or --merge-shards, not both")
    for name, flag in (("walk_forward", "--walk-forward"), ("keep_returns", "--keep-returns")):
        if getattr(options, name) and (options.shard is not None or options.merge_shards):
            raise InputError(
                f"{flag} needs every combination's daily returns in one run: it cannot be "
                "combined with --shard or --merge-shards; run the sweep unsharded"
            )
    if options.merge_shards is not None:
        check_count(total, options.merge_shards)
    if options.shard is None:
        return settings, options
    index, count = shard_index(options.shard)
    check_count(total, count)
    url = shard_url(settings.output_url, index, count)
    return (
        dataclasses.replace(settings, output_url=url),
        dataclasses.replace(options, shard=f"{index}/{count}"),
    )


def current_inputs(settings: RunSettings, options: Options) -> dict[str, str]:
    """The prices files a run of these settings reads, by URL, with their versions (the
    listing's pruning is by partition, so ``--as-of-month``'s month end stands for the last
    trading day the job finds in it)."""
    import calendar
    import datetime as dt

    end = settings.end
    if options.as_of_month is not None:
        month = dt.datetime.strptime(options.as_of_month, "%Y-%m").date()
        end = month.replace(day=calendar.monthrange(month.year, month.month)[1])
    sel = Selection(settings.start, end, settings.symbols)
    return {f.url: f.version for f in list_files(settings.input_url, "prices", sel)}


def _recorded_inputs(manifest: Manifest) -> dict[str, str]:
    prices = manifest.inputs.get("prices")
    return {f.url: f.version for f in (prices.files if prices else ())}


def _changed(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The files added, removed or rewritten between two listings, in name order."""
    return sorted(u for u in {*recorded, *current} if recorded.get(u) != current.get(u))


def check_committed(settings: RunSettings, options: Options) -> RunSettings:
    """A shard's run, before anything runs: exit 0 when its folder already holds this shard
    committed with the same options and input versions; replace a committed shard whose inputs
    changed since. Returns the settings to run with.

    Raises
    ------
    AlreadyCommitted
        The shard is committed with the same options and inputs (exit 0: nothing to redo).
    """
    from analytics.run.execute import parameters

    folder = RunFolder(settings.output_url)
    found = folder.read_manifest()
    if found is None or found.job != "backtest" or found.parameters.get("shard") != options.shard:
        return settings
    own = jsonable(parameters(settings, options))
    differ = [n for n in SHARED_OPTIONS if found.parameters.get(n) != own.get(n)]
    if differ:
        return settings  # the folder's own check refuses it, naming the run (or --overwrite)
    changed = _changed(_recorded_inputs(found), current_inputs(settings, options))
    if not changed:
        raise AlreadyCommitted(
            f"shard {options.shard} is already committed in {folder.url} (run "
            f"{found.run_id}) with the same options and input files"
        )
    log.info(
        "shard %s in %s (run %s) read other input versions (%d changed, e.g. %s): replacing it",
        options.shard,
        folder.url,
        found.run_id,
        len(changed),
        changed[0],
    )
    return dataclasses.replace(settings, overwrite=True)


def shard_slice(total: int, index: int, count: int) -> slice:
    """Shard ``index`` of ``count``: a contiguous slice of ``total`` combinations (balanced)."""
    return slice(index * total // count, (index + 1) * total // count)


def check_count(total: int, count: int) -> None:
    if count > total:
        raise InputError(
            f"{count} shards for {total} combinations: some would be empty; "
            f"use at most {total} shards"
        )


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as the manifest records them (to compare with a shard's parameters)."""
    loaded: dict[str, Any] = json.loads(json.dumps(_jsonable(values), sort_keys=True))
    return loaded


def _shard_manifest(output_url: str, index: int, count: int) -> Manifest:
    url = shard_url(output_url, index, count)
    found = RunFolder(url).read_manifest()
    if found is None:
        raise InputError(
            f"shard {index} of {count} has not committed (no manifest in {url}): rerun it, "
            "then the merge"
        )
    return found


def _check_inputs(manifests: Sequence[Manifest], current: Mapping[str, str]) -> None:
    stale = [(i, _changed(_recorded_inputs(m), current)) for i, m in enumerate(manifests)]
    stale = [(i, changed) for i, changed in stale if changed]
    if stale:
        listed = "; ".join(f"shard {i}: {len(c)} file(s), e.g. {c[0]}" for i, c in stale)
        raise InputError(
            f"{len(stale)} shard(s) read other input file versions than the current ones "
            f"({listed}): resubmit the fan-out (only those shards run again), then the merge"
        )


def _check_same(manifests: Sequence[dict[str, Any]], own: Mapping[str, Any]) -> None:
    for i, manifest in enumerate(manifests):
        params = manifest.get("parameters", {})
        for name in SHARED_OPTIONS:
            if name in own and params.get(name) != own[name]:
                raise InputError(
                    f"shard {i} ran with {name}={params.get(name)!r} but the merge has "
                    f"{own[name]!r}: give the merge the shards' options"
                )


def _copy(src: str, target: Destination, table: str, index: int) -> WrittenPart:
    """A shard's part as a part of the merged run (its rows now carry the merge's run id)."""
    return write_part(target, table, index, _read(src))


def _rewrite_summary(src: str, target: Destination, index: int, keep_baseline: bool) -> WrittenPart:
    """A shard's ``summary/`` part with ``dsr`` as NaN (a shard deflates over its own trials
    only), without its baseline row unless ``keep_baseline`` (a Dask task)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _read(src)
    if not keep_baseline:
        table = table.filter(pc.not_equal(table.column("strategy"), portfolio.BASELINE))
    at = table.schema.get_field_index("dsr")
    table = table.set_column(at, "dsr", pa.array(np.full(table.num_rows, np.nan)))
    return write_part(target, portfolio.SUMMARY, index, table)


def _read(url: str) -> Any:
    fs, path = open_fs(url)
    with fs.open(path, "rb") as handle:
        return pq.read_table(handle)


def _own(table: Any) -> Any:
    """A shard's table as a frame of its own columns (without the shard's run id)."""
    names = [name for name in table.column_names if name != RUN_ID]
    return table.select(names).to_pandas()


def _candidates(
    output_url: str, index: int, manifest: dict[str, Any], top: int
) -> tuple[portfolio.Candidates, np.ndarray]:
    files = manifest["outputs"]
    frame = _own(_read(files[portfolio.TOP]["files"][0]["url"]))
    equity = _own(_read(files[portfolio.EQUITY]["files"][0]["url"]))
    equity = equity.sort_values(["rank", "date"], kind="stable")
    days = np.unique(equity["date"].to_numpy().astype("datetime64[D]").astype(np.int64))
    curves = equity["equity"].to_numpy(dtype=np.float64).reshape(len(frame), len(days))
    frame = frame.sort_values("rank", kind="stable").reset_index(drop=True)
    # Shard I's combinations precede shard I+1's, and a shard's ranks keep grid order on ties.
    order = index * top + frame["rank"].to_numpy() - 1
    chosen = frame.drop(columns="rank").assign(_order=order, dsr=np.nan)
    return portfolio.Candidates(chosen, curves), days


def merge(
    client: Client,
    target: Destination,
    combos: Combos,
    count: int,
    own: Mapping[str, Any],
    top: int,
    current: Mapping[str, str],
) -> tuple[list[WrittenPart], list[DataFile], dict[str, Any], Any]:
    """Combine ``count`` committed shards into ``target``'s tables; ``current`` is the
    input files' versions now (:func:`current_inputs`).

    Returns the written parts, the input files, the run summary and the top frame.

    Raises
    ------
    InputError
        When a shard has not committed, ran with other options than the merge, or read other
        input file versions than ``current``.
    """
    output_url = target.url
    found = [_shard_manifest(output_url, i, count) for i in range(count)]
    _check_inputs(found, current)
    manifests = [m.to_json() for m in found]
    _check_same(manifests, own)
    copies = []
    index = dict.fromkeys(COPIED, 0)
    for shard, manifest in enumerate(manifests):
        for table in COPIED:
            for f in manifest["outputs"].get(table, {}).get("files", []):
                if table == portfolio.SUMMARY:
                    copies.append(
                        delayed(_rewrite_summary, pure=True)(
                            f["url"], target, index[table], shard == 0
                        )
                    )
                else:
                    copies.append(delayed(_copy, pure=True)(f["url"], target, table, index[table]))
                index[table] += 1
    futures = client.compute(copies)
    copied: list[WrittenPart] = client.gather(futures)
    picked = [_candidates(output_url, i, m, top) for i, m in enumerate(manifests)]
    days = picked[0][1]
    for i, (_, d) in enumerate(picked):
        if not np.array_equal(d, days):
            raise InputError(f"shard {i} has another calendar than shard 0: rerun it")
    ranked, frame = portfolio.top_task(target, combos, days, [c for c, _ in picked], top)
    first = manifests[0]
    inputs = [DataFile(f.url, f.bytes, version=f.version) for f in found[0].inputs["prices"].files]
    summary = dict(first["summary"])
    for key in ("combinations", "combination_chunks", "tasks"):
        summary[key] = sum(int(m["summary"][key]) for m in manifests)
    summary["shards"] = count
    return [*copied, *ranked], inputs, summary, frame
