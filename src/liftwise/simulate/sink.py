"""Streaming table output for world generators: one Parquet file per contract, chunk by chunk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from liftwise.contracts import TableContract
from liftwise.io import ParquetStream


class TableSink:
    """Append chunks to ``<directory>/<table>.parquet``, cast to each table's contract."""

    def __init__(self, directory: Path, contracts: Mapping[str, TableContract]) -> None:
        self.directory = directory
        self.contracts = contracts
        self._streams: dict[str, ParquetStream] = {}

    def write(self, name: str, columns: Mapping[str, Any] | pd.DataFrame | pa.Table) -> None:
        """Append one chunk; columns may be NumPy arrays, a DataFrame or an Arrow table."""
        contract = self.contracts[name]
        schema = contract.arrow_schema()
        if isinstance(columns, pa.Table):
            table = columns
        elif isinstance(columns, pd.DataFrame):
            table = pa.Table.from_pandas(columns, preserve_index=False)
        else:
            table = pa.table(dict(columns))
        missing = [n for n in schema.names if n not in table.column_names]
        extra = [n for n in table.column_names if n not in schema.names]
        if missing or extra:  # a generator bug, not user input
            raise RuntimeError(f"{name}: columns missing {missing}, unexpected {extra}")
        if name not in self._streams:
            self._streams[name] = ParquetStream(self.directory / f"{name}.parquet", schema)
        self._streams[name].write(table)

    def close(self) -> dict[str, int]:
        """Finish every file and return the row count per table."""
        rows = {}
        for name, stream in self._streams.items():
            stream.close()
            rows[name] = stream.rows
        return rows

    def abort(self) -> None:
        for stream in self._streams.values():
            stream.abort()
