"""The experiment frame: one randomised experiment as every model and evaluator consumes it.

Whatever the source (a user's CSV, Hillstrom, a simulated world), downstream code sees the
same shape: ``unit_id``, ``arm``, float outcomes and float features, plus the arm order that
fixes treatment codes. Column checks reuse :class:`~liftwise.contracts.base.TableContract`
so this contract reads and fails like every other table's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from liftwise.contracts.base import ColumnSpec, TableContract, Violation, violations_from_frame
from liftwise.errors import UserError

EXPERIMENT_FRAME_VERSION = "1"
UNIT_ID = "unit_id"
ARM = "arm"
RESERVED_COLUMNS = (UNIT_ID, ARM)

# pandera rule names -> the words a user reads in the one-line error.
_RULE_WORDS = {
    "not_nullable": "missing value",
    "field_uniqueness": "duplicate unit id",
    "finite": "value is not finite",
    "column_in_dataframe": "missing column",
    "column_in_schema": "unexpected column",
}


@dataclass(frozen=True, eq=False)
class ExperimentFrame:
    """A loaded experiment: the table plus the arm, outcome and feature names that type it.

    ``arms`` is control first, then the other arms sorted, so treatment code ``k`` means the
    same arm however the source file was ordered. ``eq=False`` because DataFrames have no
    truth value; compare ``data`` with pandas' testing helpers.
    """

    data: pd.DataFrame
    control: str
    arms: tuple[str, ...]
    outcomes: tuple[str, ...]
    features: tuple[str, ...]
    source: str
    id_column: str | None = None  # the source's unit id column (None: rows were numbered)

    @property
    def treatments(self) -> tuple[str, ...]:
        """The non-control arms, in treatment-code order (code 1 first)."""
        return self.arms[1:]

    def treatment_codes(self) -> np.ndarray:
        """Integer arm per row: 0 for control, ``k`` for ``arms[k]``."""
        codes = pd.Categorical(self.data[ARM], categories=list(self.arms)).codes
        return np.asarray(codes, dtype=np.int64)

    def X(self) -> np.ndarray:
        """The design matrix (float64), columns in ``features`` order; named X by convention."""
        return self.data[list(self.features)].to_numpy(dtype=np.float64)

    def y(self, outcome: str) -> np.ndarray:
        """One outcome as a float64 vector; the name must be one of ``outcomes``."""
        if outcome not in self.outcomes:
            raise UserError(
                f"unknown outcome (known: {', '.join(self.outcomes)})",
                file=self.source,
                column=outcome,
            )
        return self.data[outcome].to_numpy(dtype=np.float64)

    def arm_summary(self) -> pd.DataFrame:
        """Rows per arm and the mean of each outcome per arm, indexed in ``arms`` order."""
        grouped = self.data.groupby(ARM, sort=False)
        summary = grouped[list(self.outcomes)].mean()
        summary.insert(0, "rows", grouped.size())
        return summary.reindex(list(self.arms))

    def contract(self) -> TableContract:
        """The column contract of this frame (its columns depend on the experiment)."""
        columns = (
            ColumnSpec(UNIT_ID, "int", "Unit id, unique per row.", unique=True),
            ColumnSpec(ARM, "str", "Assigned arm.", allowed=self.arms),
            *(ColumnSpec(name, "float", "Outcome.") for name in self.outcomes),
            *(ColumnSpec(name, "float", "Encoded feature.") for name in self.features),
        )
        return TableContract(
            name="experiment",
            version=EXPERIMENT_FRAME_VERSION,
            description="One randomised experiment: unit, arm, outcomes, encoded features.",
            columns=columns,
            key=(UNIT_ID,),
        )

    def validate(self) -> ExperimentFrame:
        """Check every invariant; raise a one-line UserError at the first broken one.

        Returns ``self`` so loaders can end with ``return frame.validate()``.
        """
        validate_experiment(self)
        return self


def validate_experiment(frame: ExperimentFrame) -> None:
    """Raise UserError naming column (and row) for the first broken experiment invariant."""
    _check_names(frame)
    violations = violations_from_frame(frame.data, frame.contract(), file=frame.source)
    if violations:
        raise _as_user_error(_first(violations, frame.contract().column_names), frame.source)
    present = set(frame.data[ARM].unique())
    if len(present) < 2:
        raise UserError(
            f"need at least 2 arms, found {len(present)} ({', '.join(sorted(present))})",
            file=frame.source,
            column=ARM,
        )


def _check_names(frame: ExperimentFrame) -> None:
    """Arm order and column names are metadata, so check them before looking at rows."""
    source = frame.source
    if not frame.arms or frame.arms[0] != frame.control:
        raise UserError(f"control '{frame.control}' must be the first arm", file=source)
    if len(set(frame.arms)) != len(frame.arms):
        raise UserError(f"arms repeat a label: {', '.join(frame.arms)}", file=source)
    if list(frame.arms[1:]) != sorted(frame.arms[1:]):
        raise UserError("treatment arms must be sorted after the control", file=source)
    if not frame.outcomes:
        raise UserError("an experiment needs at least one outcome", file=source)
    seen: set[str] = set(RESERVED_COLUMNS)
    for name in (*frame.outcomes, *frame.features):
        if name in seen:
            raise UserError(
                "name used twice (outcome, feature, unit_id and arm names must differ)",
                file=source,
                column=name,
            )
        seen.add(name)


def _first(violations: list[Violation], column_order: list[str]) -> Violation:
    """Schema-level problems first (no row), then the earliest row, then column order."""
    rank = {name: i for i, name in enumerate(column_order)}

    def key(v: Violation) -> tuple[int, int, int]:
        return (v.row is not None, v.row or 0, rank.get(v.column, len(rank)))

    return min(violations, key=key)


def _as_user_error(violation: Violation, source: str) -> UserError:
    """Translate a pandera rule name into words a user reads without knowing pandera."""
    rule, value = violation.rule, violation.value
    detail = f" (value: {value})" if value else ""
    if rule.startswith("isin("):
        words = "arm is not one of the frame's arms"
    elif rule.startswith("dtype("):
        words, detail = f"wrong dtype, expected {rule[len('dtype(') : -1]}", f" (found {value})"
    elif rule.startswith("column_in_"):
        words, detail = _RULE_WORDS.get(rule, rule), ""  # value repeats the column name
    else:
        words = _RULE_WORDS.get(rule, rule)
    return UserError(f"{words}{detail}", file=source, column=violation.column, row=violation.row)
