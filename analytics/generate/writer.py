"""Arrow tables in the canonical schemas, and the Parquet files of a generated market.

File names are a function of the dataset and its partition value only
(``prices/year=2024/part-0.parquet``), so running the generator again with the same arguments
overwrites the same files with the same bytes. Files from an earlier run with other arguments
would mix into the datasets, so they are refused before anything is written.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.data.schemas import DATASETS, PRICES, Dataset, arrow_schema
from analytics.data.storage import full_url, is_local, join, open_fs
from analytics.errors import OutputError
from analytics.generate.daily import Universe, YearPrices

#: Rows per Parquet row group: large enough for fast scans, small enough to prune by statistics.
ROW_GROUP_SIZE: Final = 128 * 1024
COMPRESSION: Final = "zstd"
FILE_NAME: Final = "part-0.parquet"


def to_table(dataset: Dataset, columns: Mapping[str, Any]) -> pa.Table:
    """An Arrow table with exactly ``arrow_schema(dataset)``.

    ``columns`` maps every column name to a numpy array, a list, an Arrow array or, for a
    nullable column, a ``(values, valid)`` pair of arrays. Numpy ``datetime64`` values and int64
    nanoseconds since the epoch become the schema's date or UTC timestamp type.
    """
    schema = arrow_schema(dataset)
    if set(columns) != set(schema.names):
        raise ValueError(
            f"dataset {dataset.name!r}: got columns {sorted(columns)}, needs {schema.names}"
        )
    arrays = []
    for fld in schema:
        values = columns[fld.name]
        if isinstance(values, tuple):  # (values, valid): a nullable column
            data, valid = values
            arrays.append(pa.array(data, mask=~np.asarray(valid, dtype=bool), type=fld.type))
        elif isinstance(values, pa.Array | pa.ChunkedArray):
            arrays.append(values if values.type == fld.type else values.cast(fld.type))
        elif isinstance(values, np.ndarray) and values.dtype.kind == "M":
            arrays.append(pa.array(values).cast(fld.type))
        else:
            arrays.append(pa.array(values, type=fld.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def dictionary_strings(codes: npt.NDArray[np.int64], labels: Iterable[str]) -> pa.Array:
    """Strings ``labels[codes]`` built in Arrow (no Python string per row)."""
    dictionary = pa.array(list(labels), type=pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary).cast(
        pa.string()
    )


def prices_table(universe: Universe, year: YearPrices) -> pa.Table:
    """The ``prices`` rows of one year, sorted by (symbol, date)."""
    present = np.ascontiguousarray(year.present.T)  # symbol-major: rows sort by symbol first
    sym, day = np.nonzero(present)

    def pick(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.ascontiguousarray(values.T)[present]

    return to_table(
        PRICES,
        {
            "symbol": dictionary_strings(sym, universe.symbols),
            "date": year.dates[day],
            "open": pick(year.open),
            "high": pick(year.high),
            "low": pick(year.low),
            "close": pick(year.close),
            "volume": pick(year.volume),
        },
    )


def relative_path(dataset: Dataset, partition_value: str) -> str:
    """Where a partition's file lives under the output root."""
    return posixpath.join(dataset.name, f"{dataset.partition_key}={partition_value}", FILE_NAME)


@dataclass
class MarketWriter:
    """Writes the partitions of one generated market and remembers what it wrote."""

    output_url: str
    fs: Any = field(init=False)
    root: str = field(init=False)
    files: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DATASETS, 0))

    def __post_init__(self) -> None:
        self.fs, self.root = open_fs(self.output_url)

    def check_no_foreign_files(self, expected: Iterable[str]) -> None:
        """Refuse an output that holds dataset files this run would not overwrite.

        Raises
        ------
        OutputError
            Naming up to five such files, when any of the dataset folders has one.
        """
        wanted = {join(self.root, rel) for rel in expected}
        foreign: list[str] = []
        for name in DATASETS:
            folder = join(self.root, name)
            if not self.fs.exists(folder):
                continue
            for path in sorted(self.fs.find(folder)):
                base = posixpath.basename(path)
                if path not in wanted and not base.startswith((".", "_")):
                    foreign.append(full_url(self.fs, path))
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise OutputError(
                f"output {self.output_url!r} already holds {len(foreign)} dataset file(s) that "
                f"this run would not overwrite ({shown}); they would mix into the generated "
                "market: write to an empty folder or remove them first"
            )

    def write(
        self,
        dataset: Dataset,
        partition_value: str,
        table: pa.Table,
        *,
        row_group_size: int = ROW_GROUP_SIZE,
    ) -> str:
        """Write ``table`` as the one file of a partition; return its URL."""
        rel = relative_path(dataset, partition_value)
        path = join(self.root, rel)
        if is_local(self.fs):
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        # Dictionary pages only where values repeat (strings, dates); random float64 values
        # compress far better (and faster) split into byte streams than tried as a dictionary.
        floats = [f.name for f in table.schema if f.type == pa.float64()]
        others = [f.name for f in table.schema if f.type != pa.float64()]
        with self.fs.open(path, "wb") as handle:
            pq.write_table(
                table,
                handle,
                row_group_size=row_group_size,
                compression=COMPRESSION,
                use_dictionary=others,
                use_byte_stream_split=floats,
            )
        url = join(self.output_url, rel)
        self.files.append(url)
        self.rows[dataset.name] += table.num_rows
        return url
