"""Load a user's own randomised experiment (CSV or Parquet) into an :class:`ExperimentFrame`.

Users bring tables in whatever shape their warehouse exported; this module maps their
column names onto the frame, encodes features to floats, and turns every problem into one
line naming the file, column and row. Row numbers are 0-based data rows everywhere: row 0
is the first line after a CSV header, or the first row of a Parquet file.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
from pydantic import Field

from liftwise.contracts.base import require_columns
from liftwise.contracts.experiment import (
    ARM,
    EXPERIMENT_FRAME_VERSION,
    RESERVED_COLUMNS,
    UNIT_ID,
    ExperimentFrame,
)
from liftwise.contracts.ids import integer_ids, require_unique_ids
from liftwise.errors import UserError
from liftwise.io import write_json, write_parquet
from liftwise.params import Parameters

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_READ_ERRORS = (OSError, ValueError, pa_arrow.ArrowException)
DEFAULT_MAX_UNSEEN_SHARE = 0.01  # scoring refuses more rows than this with unseen levels

Note = Callable[[str], None]  # where a loader says what it did on the user's behalf


class EncodingLimits(Parameters):
    """Limits of feature encoding: levels per text feature (training), and the share of
    rows in any column whose level training never saw (scoring; above it, refuse)."""

    max_categories: int = Field(default=50, ge=1)
    max_unseen_share: float = Field(default=DEFAULT_MAX_UNSEEN_SHARE, ge=0, le=1)


def load_experiment(
    path: str | Path,
    *,
    treatment: str,
    control: str,
    outcomes: str | Sequence[str],
    unit_id: str | None = None,
    features: str | Sequence[str] | None = None,
    max_categories: int = 50,
    note: Note | None = None,
) -> ExperimentFrame:
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) experiment table.

    ``treatment`` names the arm column (values become strings; integer-valued floats lose
    their ``.0``) and ``control`` its untreated label. ``unit_id`` names an integer, unique
    id column; without it a column named ``unit_id`` is the id, another id-like column
    (``id``, ``customer_id``) is refused unless ``features`` are chosen, and otherwise units
    are numbered by row position.
    ``features`` defaults to every other column except outcomes (also those a frame's
    ``<path>.json`` sidecar lists) and index-like columns (``Unnamed: 0``; dropped with a
    ``note``): numbers and booleans become float64, text columns with at most
    ``max_categories`` levels become one-hot columns ``name=level`` in sorted level order.
    Every problem raises a one-line :class:`UserError`; rows in it are 0-based data rows.
    """
    path = Path(path)
    source = str(path)
    EncodingLimits(max_categories=max_categories)
    outcomes = (outcomes,) if isinstance(outcomes, str) else tuple(outcomes)
    table = _read_table(path)
    known_outcomes, recorded_id = _sidecar_roles(path)
    if unit_id is None and features is not None and UNIT_ID not in table.columns:
        id_column = None  # the features are chosen: an id-like column left out is harmless
    else:
        id_column = resolve_unit_id(table.columns, unit_id, source=source, number_rows=True)
    not_features = {treatment, *outcomes, *known_outcomes, *([id_column] if id_column else [])}
    if features is None:
        features = _default_features(table.columns, not_features, note or _silent)
    features = (features,) if isinstance(features, str) else tuple(features)
    _check_mapping(table, source, treatment, outcomes, id_column, features)
    for name in features:
        if name in known_outcomes:
            raise UserError(
                f"is an outcome (per {sidecar_path(path).name}), never a feature",
                file=source,
                column=name,
            )

    arm = _labels(table[treatment], source=source, column=treatment)
    arms = _arms(arm, control, source=source, column=treatment)
    columns: dict[str, pd.Series] = {
        UNIT_ID: _unit_ids(table, id_column, source=source),
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
        id_column=recorded_id or id_column,
    )
    return frame.validate()


def _silent(_message: str) -> None:
    """The default ``note``: say nothing."""


def _default_features(columns: Sequence[str], taken: set[str], note: Note) -> tuple[str, ...]:
    """Every column that is not treatment, outcome or id, minus index-like columns (noted)."""
    index_like = [name for name in columns if name not in taken and is_index_like(name)]
    for name in index_like:
        note(f"column '{name}' looks like a written-out row index: left out of the features")
    return tuple(name for name in columns if name not in taken and name not in index_like)


def _sidecar_roles(path: Path) -> tuple[tuple[str, ...], str | None]:
    """The outcomes and source id column a saved frame's sidecar records (none without one),
    so training on an ingested table never takes its other outcomes as features."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return (), None
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the sidecar: {_one_line(err)}", file=sidecar) from None
    if not isinstance(meta, dict):
        raise UserError("sidecar is not a JSON object", file=sidecar)
    recorded = meta.get("unit_id_column")
    return tuple(str(name) for name in meta.get("outcomes", ())), recorded and str(recorded)


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
            "unit_id_column": frame.id_column,
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
            id_column=meta.get("unit_id_column"),
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
        raise UserError("need at least one outcome column", file=source, parameter="outcomes")
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
    ids = integer_ids(table[column], file=source, column=column)
    return pd.Series(require_unique_ids(ids, file=source, column=column))


def is_id_like(name: str) -> bool:
    """Names that usually hold an identifier: ``id``, ``unit_id``, ``customer_id``,
    ``customerID``, ``uid``, ``uuid``."""
    lower = name.strip().lower()
    return lower in ("id", "uid", "uuid") or lower.endswith("_id") or name.endswith(("ID", "Id"))


def is_index_like(name: str) -> bool:
    """A row index written out with the table (``Unnamed: 0`` from pandas, ``index``)."""
    return re.fullmatch(r"Unnamed: \d+|index|level_\d+", name.strip()) is not None


def resolve_unit_id(
    columns: Sequence[str],
    given: str | None,
    *,
    recorded: str | None = None,
    source: str,
    number_rows: bool = False,
) -> str | None:
    """The id column of a table: ``given``, else the one recorded at training or ingest,
    else a column named ``unit_id``. A table with another id-like column but no choice is
    refused (numbering its rows would name the wrong units); a table with no id column
    gets row numbers (``None``) only when ``number_rows`` is set."""
    if given is not None:
        require_columns(list(columns), [given], file=source)
        return given
    if recorded is not None and recorded in columns:
        return recorded
    if UNIT_ID in columns:
        return UNIT_ID
    candidates = [name for name in columns if is_id_like(name)]
    if candidates:
        raise UserError(
            "looks like a unit id column: name the id column explicitly (or drop this one)",
            file=source,
            column=candidates[0],
            parameter="unit_id",
        )
    if number_rows:
        return None
    if recorded is not None:
        raise UserError(
            "the model's unit id column is missing: name the id column explicitly",
            file=source,
            column=recorded,
            parameter="unit_id",
        )
    raise UserError(
        "the table has no unit id column: name one as the unit id, or opt in to row numbers",
        file=source,
        parameter="number_rows",
    )


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


def encode_like(
    table: pd.DataFrame,
    features: Sequence[str],
    *,
    source: str,
    max_unseen_share: float = DEFAULT_MAX_UNSEEN_SHARE,
    note: Note | None = None,
) -> pd.DataFrame:
    """Encode a raw table into the given encoded feature columns, as training did.

    ``name=level`` columns are one-hot indicators of the raw column ``name``; a level unseen
    in training encodes as all zeros, so ``note`` hears each such column with its unseen
    levels and counts, and a column where more than ``max_unseen_share`` of the rows have
    one is refused (``Hanoi`` scored against a model trained on ``hanoi`` changes decisions
    silently). Other names are numeric columns. Missing raw columns, non-numeric values
    and gaps are one-line UserErrors naming the column and row.
    """
    EncodingLimits(max_unseen_share=max_unseen_share)
    encoded: dict[str, pd.Series] = {}
    levels: dict[str, set[str]] = {}
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
        levels.setdefault(column, set()).add(level)
    for column, known in levels.items():
        _check_unseen(table[column].astype(str), known, source, column, max_unseen_share, note)
    return pd.DataFrame(encoded, index=table.index)


def _check_unseen(
    text: pd.Series,
    known: set[str],
    source: str,
    column: str,
    max_share: float,
    note: Note | None,
) -> None:
    """Report the levels of ``text`` that training never saw; refuse above ``max_share``."""
    unseen = text[~text.isin(known)]
    if unseen.empty:
        return
    counts = unseen.value_counts()
    shown = ", ".join(f"{level!r} ({count:,})" for level, count in counts.head(5).items())
    more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
    share = len(unseen) / len(text)
    words = f"{len(unseen):,} rows ({share:.1%}) have levels unseen in training: {shown}{more}"
    if share > max_share:
        raise UserError(
            f"{words}; more than the {max_share:.1%} allowed (fix the levels or raise the limit)",
            file=source,
            column=column,
            row=int(np.flatnonzero(~text.isin(known).to_numpy())[0]),
            parameter="max_unseen_share",
        )
    if note is not None:
        note(f"{source}: column '{column}': {words} (encoded as no level)")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet table with the loader's checks (missing file, bad suffix)."""
    return _read_table(Path(path))
