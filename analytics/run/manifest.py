"""``_manifest.json``: the record of a committed run, as a typed object.

A run exists only once its manifest does; it is written last (see :mod:`analytics.run.folder`).
The JSON keys are the dataclass fields; :meth:`Manifest.from_json` reads what any version of
finbatch wrote (unknown keys are kept in ``extra``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class FileEntry:
    """One file: an input read, or a part written (with its rows)."""

    url: str
    bytes: int
    rows: int | None = None
    #: An input file's version (ETag, or size and mtime): see ``DataFile.version``.
    version: str = ""


@dataclass(frozen=True)
class FileSet:
    """The files of one input dataset or one output table."""

    files: tuple[FileEntry, ...] = ()

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.rows or 0 for f in self.files)


@dataclass(frozen=True)
class Manifest:
    job: str
    run_id: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    code_version: str = ""
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    inputs: Mapping[str, FileSet] = field(default_factory=dict)
    outputs: Mapping[str, FileSet] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)
    cluster: Mapping[str, Any] = field(default_factory=dict)
    #: Where it was committed (filled in by the commit).
    manifest_url: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self.outputs)

    def rows(self, table: str) -> int:
        return self.outputs[table].rows if table in self.outputs else 0

    def to_json(self) -> dict[str, Any]:
        """The JSON document (``inputs`` and ``outputs`` with their totals, as always)."""
        body: dict[str, Any] = {
            "job": self.job,
            "run_id": self.run_id,
            "parameters": dict(self.parameters),
            "code_version": self.code_version,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "inputs": {
                name: {
                    "files": [
                        {
                            "url": f.url,
                            "bytes": f.bytes,
                            **({"version": f.version} if f.version else {}),
                        }
                        for f in s.files
                    ],
                    "bytes": s.bytes,
                }
                for name, s in self.inputs.items()
            },
            "outputs": {
                name: {
                    "rows": s.rows,
                    "files": [{"url": f.url, "rows": f.rows, "bytes": f.bytes} for f in s.files],
                }
                for name, s in self.outputs.items()
            },
            "summary": dict(self.summary),
            "cluster": dict(self.cluster),
            **dict(self.extra),
        }
        if self.manifest_url:
            body["manifest_url"] = self.manifest_url
        out: dict[str, Any] = jsonable(body)
        return out

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Manifest:
        known = {f.name for f in dataclasses.fields(cls)}

        def files(entry: Mapping[str, Any]) -> FileSet:
            return FileSet(
                tuple(
                    FileEntry(
                        str(f["url"]),
                        int(f.get("bytes") or 0),
                        _int(f.get("rows")),
                        str(f.get("version") or ""),
                    )
                    for f in entry.get("files", [])
                )
            )

        return cls(
            job=str(body.get("job", "")),
            run_id=str(body.get("run_id", "")),
            parameters=dict(body.get("parameters") or {}),
            code_version=str(body.get("code_version") or ""),
            started_at=str(body.get("started_at") or ""),
            finished_at=str(body.get("finished_at") or ""),
            duration_s=float(body.get("duration_s") or 0.0),
            inputs={k: files(v) for k, v in (body.get("inputs") or {}).items()},
            outputs={k: files(v) for k, v in (body.get("outputs") or {}).items()},
            summary=dict(body.get("summary") or {}),
            cluster=dict(body.get("cluster") or {}),
            manifest_url=str(body.get("manifest_url") or ""),
            extra={k: v for k, v in body.items() if k not in known},
        )

    @classmethod
    def loads(cls, data: bytes) -> Manifest:
        return cls.from_json(json.loads(data))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def file_set(entries: Sequence[tuple[str, int]]) -> FileSet:
    return FileSet(tuple(FileEntry(url, size) for url, size in entries))


def jsonable(value: Any) -> Any:
    """``value`` with dates as ISO text, tuples as lists, non-finite floats as null and numpy
    scalars as Python numbers: what JSON can hold."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)) or type(value).__name__ == "Timestamp":
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return value
