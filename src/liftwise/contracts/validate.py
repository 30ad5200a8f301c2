"""Validate a world directory: manifest hashes, every table's contract, cross-table rules.

Large tables are read in record batches, so validation runs in bounded memory; row
numbers in violations are 0-based positions in the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from liftwise.contracts import world_contracts
from liftwise.contracts.base import TableContract, Violation, violations_from_frame
from liftwise.contracts.manifest import TableEntry, read_manifest
from liftwise.contracts.relations import WORLD_REFERENCES, Reference
from liftwise.errors import UserError
from liftwise.io import sha256_file

BATCH_ROWS = 1_000_000
KEPT_PER_RULE = 1_000  # violations kept per (file, column, rule); counts stay exact


@dataclass
class ValidationReport:
    """Every violation counted by (file, column, rule); the first ones kept with their rows."""

    violations: list[Violation] = field(default_factory=list)
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    rows_checked: dict[str, int] = field(default_factory=dict)

    def add(self, found: list[Violation]) -> None:
        for violation in found:
            key = (violation.file, violation.column, violation.rule)
            self.counts[key] += 1
            if self.counts[key] <= KEPT_PER_RULE:
                self.violations.append(violation)

    @property
    def ok(self) -> bool:
        return not self.counts

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def validate_world(
    path: str | Path, progress: Callable[[int], None] | None = None
) -> ValidationReport:
    """Check a generated world; ``progress`` receives the rows read as they are read."""
    path = Path(path)
    manifest = read_manifest(path)
    report = ValidationReport()
    advance = progress or (lambda _n: None)
    columns: dict[str, list[str]] = {}  # the columns each readable table has
    for name, contract in world_contracts(manifest.world).items():
        entry = manifest.tables.get(name)
        file = f"{name}.parquet" if entry is None else entry.file
        if entry is None or not (path / entry.file).is_file():
            report.add([Violation(file, "<table>", None, "table listed in contract is missing")])
            continue
        table_path = path / entry.file
        if entry.sha256 != sha256_file(table_path):
            report.add([Violation(file, "<file>", None, "content hash differs from manifest")])
        if entry.contract != f"{contract.name}/{contract.version}":
            rule = f"schema {entry.contract} is not {contract.name}/{contract.version}"
            report.add([Violation(file, "<file>", None, rule)])
        rows = _validate_table(table_path, contract, report, advance)
        if rows is not None:
            report.rows_checked[name], columns[name] = rows
    for reference in WORLD_REFERENCES.get(manifest.world, ()):
        if reference.table in columns and reference.parent in columns:
            report.add(_check_reference(path, manifest.tables, reference, columns))
    return report


def _batches(path: Path, columns: list[str] | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
    """(row offset, frame) per record batch of a Parquet file."""
    offset = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns):
        frame = batch.to_pandas()
        yield offset, frame
        offset += len(frame)


def _validate_table(
    path: Path, contract: TableContract, report: ValidationReport, advance: Callable[[int], None]
) -> tuple[int, list[str]] | None:
    """Column rules batch by batch; key uniqueness over the whole file. Returns the rows
    and the columns present, or ``None`` for a file that is not readable Parquet."""
    file = path.name
    try:
        metadata = pq.ParquetFile(path).schema_arrow
    except Exception as err:  # corrupt or not Parquet at all
        report.add([Violation(file, "<file>", None, f"unreadable Parquet: {err}")])
        return None
    missing = [c for c in contract.column_names if c not in metadata.names]
    if missing:
        report.add(
            [Violation(file, c, None, "column required by contract is missing") for c in missing]
        )
    keys: list[np.ndarray] = []
    rows = 0
    for offset, frame in _batches(path):
        report.add(
            violations_from_frame(frame, contract, file=file, row_offset=offset, check_key=False)
        )
        if contract.key and all(k in frame for k in contract.key):
            keys.append(_key_codes(frame, contract.key))
        rows += len(frame)
        advance(len(frame))
    if keys:
        report.add(_duplicate_keys(np.concatenate(keys), contract, file))
    return rows, list(metadata.names)


def _key_codes(frame: pd.DataFrame, key: tuple[str, ...]) -> np.ndarray:
    """Hash each row's key to uint64 (collisions only hide duplicates, never invent them)."""
    return pd.util.hash_pandas_object(frame[list(key)], index=False).to_numpy()


def _duplicate_keys(codes: np.ndarray, contract: TableContract, file: str) -> list[Violation]:
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    repeated = np.flatnonzero(sorted_codes[1:] == sorted_codes[:-1]) + 1
    column = ", ".join(contract.key)
    return [Violation(file, column, int(order[i]), "duplicate key") for i in repeated]


def _check_reference(
    path: Path,
    tables: Mapping[str, TableEntry],
    reference: Reference,
    columns: Mapping[str, list[str]],
) -> list[Violation]:
    """Rows of the child whose key values are absent from the parent; a reference whose
    columns are missing cannot be checked, which is itself a violation."""
    parent_file = path / tables[reference.parent].file
    child_file = path / tables[reference.table].file
    unchecked = [
        Violation(file.name, column, None, f"{reference.rule} cannot be checked: column missing")
        for file, table, wanted in (
            (child_file, reference.table, reference.columns),
            (parent_file, reference.parent, reference.parent_columns),
        )
        for column in wanted
        if column not in columns[table]
    ]
    if unchecked:
        return unchecked
    parent = pq.read_table(parent_file, columns=list(reference.parent_columns)).to_pandas()
    parent.columns = list(reference.columns)
    allowed = pd.MultiIndex.from_frame(parent.drop_duplicates())
    out: list[Violation] = []
    for offset, frame in _batches(child_file, columns=list(reference.columns)):
        present = pd.MultiIndex.from_frame(frame[list(reference.columns)]).isin(allowed)
        for row in np.flatnonzero(~present)[:KEPT_PER_RULE]:
            value = ", ".join(str(frame[c].iloc[row]) for c in reference.columns)
            out.append(
                Violation(
                    child_file.name,
                    ", ".join(reference.columns),
                    offset + int(row),
                    reference.rule,
                    value,
                )
            )
    return out


# ------------------------------------------------------------------ checks as a stage reads


def check_table_file(
    path: Path, contract: TableContract, columns: Sequence[str] | None = None
) -> pq.ParquetFile:
    """What a stage checks before it streams ``columns`` (default: the contract's) of a
    table, from the file's metadata alone: present, Parquet, not empty, the contract's
    columns and kinds, no nulls where the contract has none (row-group statistics).
    The first violation is a UserError naming the file and column."""
    parquet = _open_parquet(path)
    wanted = _wanted(contract, columns)
    _raise_first(
        path,
        [
            *_schema_violations(parquet, contract, wanted, path.name),
            *_null_counts(parquet, contract, wanted, path.name),
        ],
    )
    return parquet


def read_checked(
    path: Path, contract: TableContract, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read ``columns`` of a table checked as :func:`check_table_file` does, plus the row of
    the first null and key uniqueness when the key is read (as ``validate`` reports them)."""
    parquet = _open_parquet(path)
    wanted = _wanted(contract, columns)
    _raise_first(path, _schema_violations(parquet, contract, wanted, path.name))
    table = parquet.read(columns=None if columns is None else list(columns))
    found: list[Violation] = []
    for name in wanted:
        column = table.column(name)
        if column.null_count and not contract.column(name).nullable:
            row = int(pc.index(pc.is_null(column), True).as_py())
            found.append(Violation(path.name, name, row, "not_nullable"))
    if contract.key and all(k in table.column_names for k in contract.key):
        keys = table.select(list(contract.key)).to_pandas()
        found += _duplicate_keys(_key_codes(keys, contract.key), contract, path.name)[:1]
    _raise_first(path, found)
    return table.to_pandas()


def _open_parquet(path: Path) -> pq.ParquetFile:
    if not path.is_file():
        raise UserError("table file is missing (listed in the manifest)", file=path)
    try:
        return pq.ParquetFile(path)
    except Exception as err:  # corrupt or not Parquet at all
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"unreadable Parquet: {first}", file=path) from None


def _wanted(contract: TableContract, columns: Sequence[str] | None) -> list[str]:
    """The requested columns the contract declares (all of its columns by default)."""
    names = contract.column_names
    return names if columns is None else [c for c in columns if c in names]


def _schema_violations(
    parquet: pq.ParquetFile, contract: TableContract, wanted: Sequence[str], file: str
) -> list[Violation]:
    schema = parquet.schema_arrow
    out: list[Violation] = []
    for name in wanted:
        if name not in schema.names:
            out.append(Violation(file, name, None, "column required by contract is missing"))
            continue
        kind = contract.column(name).kind
        found = schema.field(name).type
        if _kind(found) != kind:
            out.append(Violation(file, name, None, f"expected {kind} values, found {found}"))
    if parquet.metadata.num_rows == 0:
        out.append(Violation(file, "<table>", None, "table has no rows"))
    return out


def _null_counts(
    parquet: pq.ParquetFile, contract: TableContract, wanted: Sequence[str], file: str
) -> list[Violation]:
    """Nulls in non-nullable columns, from the row groups' statistics (no data read)."""
    metadata = parquet.metadata
    position = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
    out: list[Violation] = []
    for name in wanted:
        if contract.column(name).nullable or name not in position:
            continue
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(position[name]).statistics
            if stats is not None and stats.has_null_count and stats.null_count:
                out.append(Violation(file, name, None, "not_nullable"))
                break
    return out


def _kind(arrow_type: pa.DataType) -> str | None:
    """The contract kind an Arrow type holds (dictionary-encoded columns by their values)."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    checks = (
        ("bool", pa.types.is_boolean),
        ("int", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("str", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
        ("timestamp", pa.types.is_timestamp),
        ("date", pa.types.is_date),
    )
    return next((kind for kind, test in checks if test(arrow_type)), None)


def _raise_first(path: Path, found: list[Violation]) -> None:
    """The first violation as a one-line UserError (file, column, row, rule)."""
    if not found:
        return
    first = found[0]
    more = f" (and {len(found) - 1} more; run liftwise validate)" if len(found) > 1 else ""
    column = None if first.column.startswith("<") else first.column
    raise UserError(f"{first.rule}{more}", file=path, column=column, row=first.row)
