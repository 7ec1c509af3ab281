"""Who owns what in an output folder: a run deletes only what a finbatch run wrote there.

A file is finbatch's when the folder's committed manifest lists it (a table's parts), when it
sits under a table that the folder's progress record claims (a run writes its record, naming
its tables, before it writes any part), or when it is one of the run folder's own files
(``_manifest.json``, ``_progress.json``, ``report.html``, ...). Everything else is the user's:
a folder that holds it is refused, and even ``--overwrite`` leaves it in place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analytics.data.storage import is_local, join, open_fs
from analytics.errors import OutputError
from analytics.run.manifest import MANIFEST, Manifest

PROGRESS = "_progress.json"
BLOBS = "_progress"
LEASE = "_lease.json"
#: The run folder's own entries besides its tables; the reports are finbatch's only in a
#: folder that holds a finbatch manifest or progress record.
SYSTEM = frozenset({MANIFEST, PROGRESS, BLOBS, LEASE, "_logs", "_shards", "_cluster"})
REPORTS = frozenset({"report.html", "report.txt"})
#: At most this many foreign entries are named in a message.
SHOWN = 5


def read_progress(fs: Any, path: str) -> dict[str, Any] | None:
    """The progress record at ``path`` (a folder), or None when missing or unreadable."""
    try:
        with fs.open(join(path, PROGRESS), "rb") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _relative(root: str, path: str) -> str:
    return path[len(root) :].lstrip("/")


@dataclass
class Survey:
    """What an output folder holds, sorted into finbatch's files and the user's."""

    url: str
    manifest: Manifest | None = None
    record: Mapping[str, Any] | None = None
    #: Table name -> its files (relative paths) that finbatch wrote.
    owned: dict[str, list[str]] = field(default_factory=dict)
    #: Relative paths of the files finbatch did not write (folders: their files).
    foreign: list[str] = field(default_factory=list)
    #: The run folder's own top-level entries present (manifest, reports, record, ...).
    system: list[str] = field(default_factory=list)

    @property
    def record_job(self) -> str | None:
        job = self.record.get("job") if self.record else None
        return str(job) if job else None

    @property
    def finbatch(self) -> bool:
        return self.manifest is not None or self.record is not None

    def foreign_in(self, tables: Iterable[str]) -> list[str]:
        """The user's files inside (or named as) one of ``tables``."""
        names = set(tables)
        return [f for f in self.foreign if f.split("/", 1)[0] in names]

    def describe_foreign(self) -> str:
        shown = ", ".join(self.foreign[:SHOWN])
        more = len(self.foreign) - SHOWN
        return shown + (f" and {more} more" if more > 0 else "")


def _record_tables(record: Mapping[str, Any] | None) -> set[str]:
    if not record:
        return set()
    tables = {str(t) for t in record.get("tables", []) if isinstance(t, str)}
    for piece in (record.get("pieces") or {}).values():
        if isinstance(piece, Mapping) and isinstance(piece.get("table"), str):
            tables.add(piece["table"])
    return tables


def survey(
    url: str, manifest: Manifest | None, job: str = "", tables: Sequence[str] = ()
) -> Survey:
    """Sort what ``url`` holds into finbatch's files and the user's (no change to anything).

    A progress record of ``job`` claims ``tables`` too (those are its tables, whatever the
    version of finbatch that wrote the record)."""
    fs, root = open_fs(url)
    found = Survey(url.rstrip("/"), manifest)
    fs.invalidate_cache()
    if not fs.exists(root):
        return found
    if not fs.isdir(root):
        raise OutputError(f"--output {url} is a file, not a folder")
    found.record = read_progress(fs, root)
    listed = {
        _relative(root, open_fs(f.url)[1])
        for files in (manifest.outputs.values() if manifest else ())
        for f in files.files
    }
    claimed = _record_tables(found.record)
    if job and found.record_job == job:
        claimed |= set(tables)
    manifest_tables = set(manifest.outputs) if manifest else set()
    for entry in sorted(fs.ls(root, detail=False)):
        name = _relative(root, entry.rstrip("/"))
        if not name:
            continue
        if name in SYSTEM or (found.finbatch and name in REPORTS):
            found.system.append(name)
            continue
        files = sorted(_relative(root, p) for p in fs.find(entry)) if fs.isdir(entry) else [name]
        if name in claimed:
            found.owned[name] = files
            continue
        if name in manifest_tables:
            found.owned[name] = [f for f in files if f in listed]
            found.foreign += [f for f in files if f not in listed]
            continue
        found.foreign += files or [name + "/"]
    return found


def check(found: Survey, job: str, run_id: str, tables: Sequence[str], *, overwrite: bool) -> None:
    """Refuse a folder this run may not write into (:class:`OutputError`, exit 2)."""
    previous = found.manifest
    if previous is not None and (previous.job, previous.run_id) != (job, run_id) and not overwrite:
        raise OutputError(
            f"{found.url} already holds the committed run {previous.run_id!r} "
            f"(job {previous.job!r}); choose another --output, "
            f"rerun with --run-id {previous.run_id} (same job), or pass --overwrite to "
            "replace it"
        )
    other = found.record_job
    if previous is None and other is not None and other != job and not overwrite:
        raise OutputError(
            f"{found.url} holds an unfinished run {found.record.get('run_id')!r} of the job "  # type: ignore[union-attr]
            f"{other!r}; choose another --output, or pass --overwrite to replace it"
        )
    mixed = found.foreign_in(tables)
    if mixed:
        raise OutputError(
            f"{found.url} holds files that no finbatch run wrote, "
            f"{len(mixed)} where this run's tables go: {found.describe_foreign()}; choose "
            "another --output, or move them away (--overwrite keeps them, so it cannot help)"
        )
    if found.foreign and not overwrite:
        raise OutputError(
            f"{found.url} holds files that no finbatch run wrote: {found.describe_foreign()}; "
            "choose an empty or new --output, or pass --overwrite to replace finbatch's files "
            "there (the others are kept)"
        )


def clear(found: Survey, tables: Sequence[str], *, keep_tables: bool) -> None:
    """Delete finbatch's files of a checked folder: the old manifest first (an interrupted
    clean-up never leaves a run that looks complete), the reports, and every owned table's
    files except this run's tables when ``keep_tables`` (a resume decides about those)."""
    fs, root = open_fs(found.url)
    if MANIFEST in found.system:
        fs.rm(join(root, MANIFEST))
    for name in REPORTS & set(found.system):
        fs.rm(join(root, name))
    for table, files in found.owned.items():
        if keep_tables and table in tables:
            continue
        folder = join(root, table)
        if fs.isdir(folder) and len(files) == len(fs.find(folder)):
            fs.rm(folder, recursive=True)
            continue
        for relative in files:
            target = join(root, relative)
            if fs.exists(target):
                fs.rm(target)
    fs.invalidate_cache()


def _location(url: str) -> tuple[str, str]:
    """(protocol, normalised path) of a folder URL, to compare folders."""
    import os.path

    fs, path = open_fs(url)
    if is_local(fs):
        return "file", os.path.realpath(os.path.abspath(path))
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol, "/" + path.strip("/")


def check_apart(output_url: str, input_url: str, datasets: Iterable[str]) -> None:
    """Refuse an ``--output`` equal to, inside or above an input dataset, before anything is
    touched: the run would delete or overwrite its own input, or later runs would read results
    as data."""
    out_proto, out = _location(output_url)
    for name in datasets:
        proto, data = _location(join(input_url, name))
        if proto != out_proto:
            continue
        if out == data or out.startswith(data + "/") or data.startswith(out.rstrip("/") + "/"):
            where = "is" if out == data else "is inside" if out.startswith(data) else "holds"
            raise OutputError(
                f"--output {output_url} {where} the input dataset {name!r} "
                f"({join(input_url, name)}); choose an --output apart from --input's datasets"
            )
