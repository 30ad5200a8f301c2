"""Load a user's own randomised experiment (CSV or Parquet) into an :class:`ExperimentFrame`.

Users bring tables in whatever shape their warehouse exported; this module maps their
column names onto the frame, encodes features to floats, and turns every problem into one
line naming the file, column and row. Row numbers are 0-based data rows everywhere: row 0
is the first line after a CSV header, or the first row of a Parquet file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa_arrow

from liftwise.contracts.base import require_columns
from liftwise.contracts.experiment import (
    ARM,
    EXPERIMENT_FRAME_VERSION,
    RESERVED_COLUMNS,
    UNIT_ID,
    ExperimentFrame,
)
from liftwise.errors import UserError
from liftwise.io import write_json, write_parquet

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_READ_ERRORS = (OSError, ValueError, pa_arrow.ArrowException)


def load_experiment(
    path: str | Path,
    *,
    treatment: str,
    control: str,
    outcomes: str | Sequence[str],
    unit_id: str | None = None,
    features: str | Sequence[str] | None = None,
    max_categories: int = 50,
) -> ExperimentFrame:
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) experiment table.

    ``treatment`` names the arm column (values become strings; integer-valued floats lose
    their ``.0``) and ``control`` its untreated label. ``unit_id`` names an integer, unique
    id column; without it units are numbered by row position. ``features`` defaults to every
    other column: numbers and booleans become float64, text columns with at most
    ``max_categories`` levels become one-hot columns ``name=level`` in sorted level order.
    Every problem raises a one-line :class:`UserError`; rows in it are 0-based data rows.
    """
    path = Path(path)
    source = str(path)
    outcomes = (outcomes,) if isinstance(outcomes, str) else tuple(outcomes)
    table = _read_table(path)
    if features is None:
        taken = {treatment, *outcomes, *([unit_id] if unit_id else [])}
        features = tuple(str(c) for c in table.columns if c not in taken)
    features = (features,) if isinstance(features, str) else tuple(features)
    _check_mapping(table, source, treatment, outcomes, unit_id, features)

    arm = _labels(table[treatment], source=source, column=treatment)
    arms = _arms(arm, control, source=source, column=treatment)
    columns: dict[str, pd.Series] = {
        UNIT_ID: _unit_ids(table, unit_id, source=source),
        ARM: arm,
    }
    columns.update({name: _numbers(table[name], source=source, column=name) for name in outcomes})
    encoded: list[str] = []
    for name in features:
        block = _encode_feature(table[name], source=source, column=name, limit=max_categories)
        columns.update(block)
        encoded.extend(block)
    frame = ExperimentFrame(
        data=pd.DataFrame(columns),
        control=control,
        arms=arms,
        outcomes=outcomes,
        features=tuple(encoded),
        source=source,
    )
    return frame.validate()


def save_experiment(frame: ExperimentFrame, path: str | Path) -> None:
    """Write ``frame`` as Parquet plus a ``<path>.json`` sidecar, both atomically.

    The sidecar carries what the table alone cannot: which column is control, arm order,
    which columns are outcomes vs features, the source and the format version.
    """
    frame.validate()
    contract = frame.contract()
    table = pa_arrow.Table.from_pandas(
        frame.data[contract.column_names], schema=contract.arrow_schema(), preserve_index=False
    )
    write_parquet(path, table)
    write_json(
        sidecar_path(path),
        {
            "version": EXPERIMENT_FRAME_VERSION,
            "control": frame.control,
            "arms": list(frame.arms),
            "outcomes": list(frame.outcomes),
            "features": list(frame.features),
            "source": frame.source,
            "rows": len(frame.data),
        },
    )


def read_experiment(path: str | Path) -> ExperimentFrame:
    """Read a frame written by :func:`save_experiment` and check it is still valid."""
    path = Path(path)
    sidecar = sidecar_path(path)
    _require_file(path)
    _require_file(sidecar)
    try:
        meta = json.loads(sidecar.read_text())
        data = pd.read_parquet(path)
    except _READ_ERRORS as err:
        raise UserError(f"cannot read experiment frame: {_one_line(err)}", file=path) from err
    if not isinstance(meta, dict) or meta.get("version") != EXPERIMENT_FRAME_VERSION:
        found = meta.get("version") if isinstance(meta, dict) else None
        raise UserError(
            f"experiment frame version {found!r}, expected {EXPERIMENT_FRAME_VERSION!r}",
            file=sidecar,
        )
    try:
        frame = ExperimentFrame(
            data=data,
            control=str(meta["control"]),
            arms=tuple(meta["arms"]),
            outcomes=tuple(meta["outcomes"]),
            features=tuple(meta["features"]),
            source=str(meta["source"]),
        )
    except KeyError as err:
        raise UserError(f"sidecar lacks the key {err.args[0]!r}", file=sidecar) from None
    # Problems are in the Parquet file being read, not in the original source.
    dataclasses.replace(frame, source=str(path)).validate()
    return frame


def sidecar_path(path: str | Path) -> Path:
    """Where the metadata of the frame stored at ``path`` lives (``<path>.json``)."""
    return Path(f"{path}.json")


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise UserError("no such file" if not path.exists() else "not a file", file=path)


def _read_table(path: Path) -> pd.DataFrame:
    """Read by suffix; any failure to parse becomes a one-line error naming the file."""
    name = path.name.lower()
    if not name.endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES):
        known = ", ".join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)
        raise UserError(f"unsupported file type (use one of {known})", file=path)
    _require_file(path)
    is_csv = name.endswith(_CSV_SUFFIXES)
    try:
        table = pd.read_csv(path, low_memory=False) if is_csv else pd.read_parquet(path)
    except _READ_ERRORS as err:
        kind = "CSV" if is_csv else "Parquet"
        raise UserError(f"cannot read as {kind}: {_one_line(err)}", file=path) from err
    if table.empty:
        raise UserError("no data rows", file=path)
    table.columns = [str(c) for c in table.columns]
    return table.reset_index(drop=True)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _check_mapping(
    table: pd.DataFrame,
    source: str,
    treatment: str,
    outcomes: tuple[str, ...],
    unit_id: str | None,
    features: tuple[str, ...],
) -> None:
    """Every named column exists, plays one role only, and does not clash with reserved names."""
    if not outcomes:
        raise UserError("need at least one outcome column", file=source, option="outcomes")
    roles = [("treatment", treatment), *(("outcome", name) for name in outcomes)]
    roles += [("unit id", unit_id)] if unit_id is not None else []
    roles += [("feature", name) for name in features]
    require_columns(list(table.columns), [name for _, name in roles], file=source)
    seen: dict[str, str] = {}
    for role, name in roles:
        if name in seen:
            raise UserError(
                f"column given twice (as {seen[name]} and as {role})", file=source, column=name
            )
        seen[name] = role
        if role in ("outcome", "feature") and name in RESERVED_COLUMNS:
            raise UserError(
                f"'{name}' is reserved in the experiment frame; map it as the unit id or "
                "treatment, or leave it out of the features",
                file=source,
                column=name,
            )


def _first_row(mask: pd.Series | np.ndarray) -> int | None:
    positions = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(positions[0]) if positions.size else None


def _require_complete(series: pd.Series, *, source: str, column: str) -> None:
    row = _first_row(series.isna())
    if row is not None:
        raise UserError("missing value", file=source, column=column, row=row)


def _numbers(series: pd.Series, *, source: str, column: str) -> pd.Series:
    """float64 copy of a numeric, boolean or numeric-text column; the first bad row fails."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = series.astype(np.float64)
    else:
        values = pd.to_numeric(series, errors="coerce").astype(np.float64)
    row = _first_row(~np.isfinite(values.to_numpy()))
    if row is None:
        return values
    if pd.isna(series.iloc[row]):
        raise UserError("missing value", file=source, column=column, row=row)
    raise UserError(
        f"not a finite number (value: {series.iloc[row]!r})", file=source, column=column, row=row
    )


def _labels(series: pd.Series, *, source: str, column: str) -> pd.Series:
    """Arm labels as strings; ``1.0`` reads as ``1`` so numeric arms match ``--control 1``."""
    _require_complete(series, source=source, column=column)
    if pd.api.types.is_float_dtype(series) and bool((series % 1 == 0).all()):
        series = series.astype(np.int64)
    return series.astype(str).astype(object)


def _arms(arm: pd.Series, control: str, *, source: str, column: str) -> tuple[str, ...]:
    """Control first, then the other labels sorted; needs the control and one treatment."""
    seen = sorted(arm.unique())
    if control not in seen:
        raise UserError(
            f"control label '{control}' not found (labels seen: {', '.join(seen)})",
            file=source,
            column=column,
        )
    if len(seen) < 2:
        raise UserError(
            f"only one arm present ('{control}'); need the control and at least one treatment",
            file=source,
            column=column,
        )
    return (control, *(label for label in seen if label != control))


def _unit_ids(table: pd.DataFrame, column: str | None, *, source: str) -> pd.Series:
    """int64 ids from the named column (integer-like, unique), or row positions."""
    if column is None:
        return pd.Series(np.arange(len(table), dtype=np.int64))
    series = table[column]
    if pd.api.types.is_integer_dtype(series):
        _require_complete(series, source=source, column=column)
        ids = series.astype(np.int64)
    else:
        values = _numbers(series, source=source, column=column)
        ids = values.astype(np.int64)
        row = _first_row(ids != values)
        if row is not None:
            raise UserError(
                f"unit id is not an integer (value: {series.iloc[row]!r})",
                file=source,
                column=column,
                row=row,
            )
    row = _first_row(ids.duplicated())
    if row is not None:
        first = _first_row(ids == ids.iloc[row])
        raise UserError(
            f"duplicate unit id {ids.iloc[row]} (first at row {first})",
            file=source,
            column=column,
            row=row,
        )
    return ids.reset_index(drop=True)


def _encode_feature(
    series: pd.Series, *, source: str, column: str, limit: int
) -> dict[str, pd.Series]:
    """One float64 column for numbers and booleans; sorted one-hot columns for text."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return {column: _numbers(series, source=source, column=column)}
    is_text = pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)
    if not (is_text or isinstance(series.dtype, pd.CategoricalDtype)):
        raise UserError(
            f"unsupported feature type {series.dtype} (use numbers, booleans or text)",
            file=source,
            column=column,
        )
    _require_complete(series, source=source, column=column)
    text = series.astype(str)
    levels = sorted(text.unique())
    if len(levels) > limit:
        raise UserError(
            f"{len(levels)} levels, more than max_categories={limit}; "
            "leave the column out of the features or raise the limit",
            file=source,
            column=column,
        )
    return {f"{column}={level}": (text == level).astype(np.float64) for level in levels}


def encode_like(table: pd.DataFrame, features: Sequence[str], *, source: str) -> pd.DataFrame:
    """Encode a raw table into the given encoded feature columns, as training did.

    ``name=level`` columns are one-hot indicators of the raw column ``name`` (a level unseen
    in training gives all zeros); other names are numeric columns. Missing raw columns,
    non-numeric values and gaps are one-line UserErrors naming the column and row.
    """
    encoded: dict[str, pd.Series] = {}
    for feature in features:
        if feature in table.columns:
            encoded[feature] = _numbers(table[feature], source=source, column=feature)
            continue
        column, sep, level = feature.partition("=")
        if not sep or column not in table.columns:
            raise UserError(
                f"missing column needed by the model's feature '{feature}'",
                file=source,
                column=column if sep else feature,
            )
        _require_complete(table[column], source=source, column=column)
        encoded[feature] = (table[column].astype(str) == level).astype(np.float64)
    return pd.DataFrame(encoded, index=table.index)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet table with the loader's checks (missing file, bad suffix)."""
    return _read_table(Path(path))
