"""Tables of typed columns: every page writes money, percentages, intervals and missing
values the same way (thousands separators, ``low .. high``, an empty cell for NaN)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

Kind = Literal["text", "integer", "number", "money", "percent", "flag"]
NUMERIC_KINDS = frozenset({"integer", "number", "money", "percent"})


@dataclass(frozen=True)
class Column:
    """A column's header and how its values are written; ``interval`` columns hold
    ``(low, high)`` pairs written ``low .. high`` in ``kind``."""

    label: str
    kind: Kind = "text"
    interval: bool = False

    @property
    def numeric(self) -> bool:
        """Right-aligned (digits line up) rather than left-aligned."""
        return self.kind in NUMERIC_KINDS


@dataclass(frozen=True)
class Table:
    """Rows of raw values (numbers stay numbers) under typed columns."""

    columns: Sequence[Column]
    rows: Sequence[Sequence[object]]
    block: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"a row has {len(row)} cells for {len(self.columns)} columns")

    @property
    def header(self) -> list[str]:
        return [column.label for column in self.columns]

    def cells(self) -> list[list[str]]:
        """Every value as the text shown (the same for HTML and Markdown)."""
        return [
            [format_cell(value, column) for value, column in zip(row, self.columns, strict=True)]
            for row in self.rows
        ]


def format_cell(value: object, column: Column) -> str:
    """One value as written in ``column``; missing (None, NaN) is an empty cell."""
    if not column.interval:
        return format_value(value, column.kind)
    if value is None:
        return ""
    if not isinstance(value, tuple) or len(value) != 2:
        raise TypeError(f"column {column.label!r} holds (low, high) pairs, got {value!r}")
    low, high = value
    low_text, high_text = format_value(low, column.kind), format_value(high, column.kind)
    return f"{low_text} .. {high_text}" if low_text and high_text else ""


def format_value(value: object, kind: Kind) -> str:
    """``value`` written as ``kind``: integers and money with thousands separators, money
    without decimals from 1,000 on (and for 0), cents below; percentages of a fraction,
    ``yes``/``no`` flags."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kind == "text":
        return str(value)
    if kind == "flag":
        return "yes" if value else "no"
    number = float(value)  # type: ignore[arg-type]  # numeric kinds hold numbers
    if math.isnan(number):  # a NumPy or pandas NaN
        return ""
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if kind == "integer":
        return f"{round(number):,}"
    if kind == "money":
        return f"{number:,.0f}" if abs(number) >= 1000 or number == 0 else f"{number:,.2f}"
    if kind == "percent":
        return f"{format_number(100 * number)}%"
    return format_number(number)


def format_number(number: float) -> str:
    """Four significant digits below 1,000, whole numbers with separators from 1,000 on."""
    return f"{number:,.0f}" if abs(number) >= 1000 else f"{number:,.4g}"
