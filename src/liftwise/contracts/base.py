"""Table contracts: one versioned declaration per table, rendered to Arrow and pandera.

A contract is declared once (:class:`TableContract`) and yields both the Arrow schema that
writers cast to and the pandera schema that readers validate against, so the two can
never drift apart. Violations come back as :class:`Violation` rows naming file, column,
row and rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow

ColumnKind = Literal["int", "float", "bool", "str", "timestamp", "date"]

_ARROW_TYPES: dict[str, pa_arrow.DataType] = {
    "int": pa_arrow.int64(),
    "float": pa_arrow.float64(),
    "bool": pa_arrow.bool_(),
    "str": pa_arrow.string(),
    "timestamp": pa_arrow.timestamp("us"),
    "date": pa_arrow.date32(),
}

_PANDAS_DTYPES: dict[str, str | None] = {
    "int": "int64",
    "float": "float64",
    "bool": "bool",
    "str": "str",
    "timestamp": "datetime64[ns]",
    "date": None,  # object of datetime.date after Arrow conversion; checked by kind below
}


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its kind, allowed values or range, and a line saying what it means."""

    name: str
    kind: ColumnKind
    description: str
    allowed: tuple[str, ...] | None = None
    ge: float | None = None
    le: float | None = None
    nullable: bool = False
    unique: bool = False

    def checks(self) -> list[pa.Check]:
        out: list[pa.Check] = []
        if self.allowed is not None:
            out.append(pa.Check.isin(list(self.allowed)))
        if self.ge is not None:
            out.append(pa.Check.ge(self.ge))
        if self.le is not None:
            out.append(pa.Check.le(self.le))
        if self.kind == "float":
            out.append(pa.Check(lambda s: ~s.isin([float("inf"), float("-inf")]), name="finite"))
        return out


@dataclass(frozen=True)
class TableContract:
    """A versioned table schema; ``key`` columns identify a row uniquely when given."""

    name: str
    version: str
    description: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = ()
    frame_checks: tuple[Callable[[pd.DataFrame], pd.Series], ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def arrow_schema(self) -> pa_arrow.Schema:
        fields = [
            pa_arrow.field(c.name, _ARROW_TYPES[c.kind], nullable=c.nullable) for c in self.columns
        ]
        return pa_arrow.schema(
            fields, metadata={"liftwise.contract": f"{self.name}/{self.version}"}
        )

    def pandera_schema(self, *, check_key: bool = True) -> pa.DataFrameSchema:
        columns = {
            c.name: pa.Column(
                _PANDAS_DTYPES[c.kind],
                checks=c.checks(),
                nullable=c.nullable,
                unique=c.unique and check_key,
                description=c.description,
            )
            for c in self.columns
        }
        unique = list(self.key) if (check_key and len(self.key) > 1) else None
        return pa.DataFrameSchema(
            columns,
            strict=True,
            ordered=False,
            unique=unique,
            name=f"{self.name}/{self.version}",
            checks=[pa.Check(check, name=check.__name__.strip("_")) for check in self.frame_checks],
        )


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule: where (file, column, row) and what (rule, offending value)."""

    file: str
    column: str
    row: int | None
    rule: str
    value: str = ""

    def one_line(self) -> str:
        row = "-" if self.row is None else str(self.row)
        value = f" (value: {self.value})" if self.value else ""
        return f"{self.file}: column '{self.column}', row {row}: {self.rule}{value}"


def violations_from_frame(
    frame: pd.DataFrame,
    contract: TableContract,
    *,
    file: str,
    row_offset: int = 0,
    check_key: bool = True,
) -> list[Violation]:
    """Validate ``frame`` lazily against ``contract`` and list every failure case.

    ``row_offset`` turns chunk-local positions into file row numbers (0-based data rows).
    """
    frame = frame.reset_index(drop=True)
    schema = contract.pandera_schema(check_key=check_key)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        return _violations_from_failure_cases(err.failure_cases, file=file, row_offset=row_offset)
    return []


def _violations_from_failure_cases(
    cases: pd.DataFrame, *, file: str, row_offset: int
) -> list[Violation]:
    out: list[Violation] = []
    for case in cases.itertuples(index=False):
        value = "" if case.failure_case is None else str(case.failure_case)
        column = case.column if isinstance(case.column, str) else "<table>"
        if case.schema_context == "DataFrameSchema":
            # table-level failures name the offending column in failure_case
            column = value if str(case.check).startswith("column_in_") else "<table>"
        index = case.index
        row = None if index is None or pd.isna(index) else int(index) + row_offset
        rule = str(case.check)
        out.append(Violation(file=file, column=column, row=row, rule=rule, value=value[:80]))
    return out


def require_columns(frame_columns: Sequence[str], needed: Sequence[str], *, file: str) -> None:
    """Raise a one-line UserError naming the first missing column."""
    from liftwise.errors import UserError

    present = set(frame_columns)
    for name in needed:
        if name not in present:
            raise UserError(
                f"missing column (found: {', '.join(map(str, frame_columns))})",
                file=file,
                column=name,
            )
