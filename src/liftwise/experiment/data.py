"""Exposures and outcomes in, one clean table of analysed units out.

Exposures (``unit_id``, ``arm``, optional ``exposed_at`` and ``experiment``) come from a
Parquet or CSV file, or from any source registered in :data:`EXPOSURE_READERS`: the
decision service's exposure log in SQLite (``sqlite:///path.db?table=exposures``) or
PostgreSQL (``postgresql://host/db?table=exposures``). A table with every column of the
log's contract (:data:`~liftwise.contracts.exposure_log.EXPOSURE_LOG`; the columns added
after version 1 may be missing) is read as the log:
its ``campaign`` is the ``experiment`` and its ``decided_at_us`` the ``exposed_at``; an
exported event's ``occurred_at`` and ``campaign`` are read the same way.

The join keeps memory and time linear in the rows: unit ids become dense integer codes
(directly when they are small non-negative integers, else by hashing), every per-unit
fact (arm, first exposure time) lives in an array indexed by that code, and each outcome
row looks its unit up once. Units exposed to more than one arm are excluded and
reported; repeated exposures to one arm count once, at the first exposure.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from liftwise.contracts.exposure_log import (
    ADDED_COLUMNS,
    EXPOSURE_LOG,
    LOG_EXPERIMENT,
    LOG_TIME_US,
)
from liftwise.errors import UserError
from liftwise.experiment.config import AnalysisConfig
from liftwise.times import utc_timestamps

UNIT_ID, ARM, EXPOSED_AT, EXPERIMENT = "unit_id", "arm", "exposed_at", "experiment"
# exported exposure events (liftwise.contracts.events.ExposureEvent) name these differently
EVENT_NAMES = {EXPOSED_AT: "occurred_at", EXPERIMENT: "campaign"}
MISSING_LEVEL, OTHER_LEVEL, NO_OUTCOME_LEVEL = "(missing)", "(other)", "(no outcome row)"
_NOT_EXPOSED, _MULTI_ARM = -1, -2
_CSV, _PARQUET = (".csv", ".csv.gz"), (".parquet", ".pq")

TableReader = Callable[[str], pa.Table]


def read_table(
    path: str | Path, columns: list[str] | None = None, *, require: bool = False
) -> pa.Table:
    """A Parquet or CSV file as an Arrow table: only ``columns`` that exist, if given (all
    of them with ``require``); any failure is a one-line UserError naming the file."""
    path = Path(path)
    name = path.name.lower()
    if not name.endswith(_CSV + _PARQUET):
        raise UserError(f"unsupported file type (use {', '.join(_CSV + _PARQUET)})", file=path)
    if not path.is_file():
        raise UserError("no such file" if not path.exists() else "not a file", file=path)
    parquet = name.endswith(_PARQUET)
    try:
        present = pq.read_schema(path).names if parquet else pacsv.open_csv(path).schema.names
        wanted = None if columns is None else [c for c in dict.fromkeys(columns) if c in present]
        if parquet:
            table = pq.read_table(path, columns=wanted)
        else:
            table = pacsv.read_csv(
                path, convert_options=pacsv.ConvertOptions(include_columns=wanted)
            )
    except (pa.ArrowException, OSError, ValueError) as err:
        kind = "Parquet" if parquet else "CSV"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read as {kind}: {first}", file=path) from None
    if table.num_rows == 0:
        raise UserError("no data rows", file=path)
    if require and columns is not None:
        _require(table, columns, str(path), found=present)
    return table


def read_sqlite(url: str) -> pa.Table:
    """``sqlite:///PATH[?table=name]`` (default table ``exposures``) as Arrow. PATH is what
    follows the three slashes, as in the rest of liftwise (and SQLAlchemy): relative in
    ``sqlite:///exposures.db``, absolute in ``sqlite:////data/exposures.db``."""
    parsed = urlparse(url)
    path = Path(url.split("?", 1)[0].removeprefix("sqlite:///"))
    table = parse_qs(parsed.query).get("table", ["exposures"])[0]
    if not table.replace("_", "").isalnum():
        raise UserError(f"not a table name: {table!r}", file=url)
    if not path.is_file():
        raise UserError("no such database file", file=path)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            frame = pd.read_sql_query(f'SELECT * FROM "{table}"', connection)
    except (sqlite3.Error, pd.errors.DatabaseError) as err:
        raise UserError(f"cannot read table {table!r}: {err}", file=path) from None
    return pa.Table.from_pandas(frame, preserve_index=False)


def read_postgres(url: str) -> pa.Table:
    """``postgresql://user@host:port/db?table=schema.name`` (default table ``exposures``)
    as Arrow, read in one transaction; the other query parameters go to the connection."""
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    table = query.pop("table", ["exposures"])[0]
    if not all(part.replace("_", "").isalnum() for part in table.split(".")):
        raise UserError(f"not a table name: {table!r}", file=url)
    options = "&".join(f"{key}={value[0]}" for key, value in query.items())
    dsn = parsed._replace(query=options).geturl()
    quoted = ".".join(f'"{part}"' for part in table.split("."))
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=10) as connection:
            cursor = connection.execute(f"SELECT * FROM {quoted}")
            names = [column.name for column in cursor.description or []]
            frame = pd.DataFrame(cursor.fetchall(), columns=names)
    except ImportError:
        raise UserError("reading PostgreSQL needs psycopg (the serve extra)", file=url) from None
    except psycopg.Error as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = parsed._replace(netloc=parsed.hostname or "", query="").geturl()  # no password
        raise UserError(f"cannot read table {table!r}: {first}", file=where) from None
    return pa.Table.from_pandas(frame, preserve_index=False)


# Where exposures can come from besides files: URL scheme -> reader (a function from the
# URL to an Arrow table). The decision service's exposure log is SQLite or PostgreSQL.
EXPOSURE_READERS: dict[str, TableReader] = {
    "sqlite": read_sqlite,
    "postgresql": read_postgres,
    "postgres": read_postgres,
}


def read_exposures(source: str | Path) -> pa.Table:
    """Exposures from a file or a registered URL scheme; the decision service's log (by its
    contract) and exported events are read with their names for the exposure columns."""
    text = str(source)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme not in EXPOSURE_READERS:
            known = ", ".join(sorted(EXPOSURE_READERS))
            raise UserError(
                f"unknown exposure source '{scheme}://' (known: {known}, or a file)", file=text
            )
        table = EXPOSURE_READERS[scheme](text)
    else:
        table = read_table(text)
    if set(EXPOSURE_LOG.column_names) - set(ADDED_COLUMNS) <= set(table.column_names):
        return _log_as_exposures(table, text)
    names = table.column_names
    for canonical, alias in EVENT_NAMES.items():
        if canonical not in names and alias in names:
            names = [canonical if n == alias else n for n in names]
    return table.rename_columns(names)


def _log_as_exposures(table: pa.Table, source: str) -> pa.Table:
    """The decision service's log (its contract's columns) as exposures: the log's
    experiment column is ``experiment``, its microsecond decision time ``exposed_at``."""
    used = (UNIT_ID, ARM, LOG_EXPERIMENT, LOG_TIME_US)
    schema = EXPOSURE_LOG.arrow_schema()
    for name in used:
        try:
            column = pc.cast(table.column(name), schema.field(name).type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            kind = EXPOSURE_LOG.column(name).kind
            raise UserError(f"expected {kind} values", file=source, column=name) from None
        table = table.set_column(table.column_names.index(name), name, column)
    if EXPERIMENT not in table.column_names:
        table = table.rename_columns(
            [EXPERIMENT if n == LOG_EXPERIMENT else n for n in table.column_names]
        )
    stamps = pc.cast(table.column(LOG_TIME_US), pa.timestamp("us", "UTC"))
    return table.append_column(EXPOSED_AT, stamps)


@dataclass(frozen=True)
class UnitAccounting:
    """Where every exposure and outcome row went."""

    exposure_rows: int
    exposed_units: int
    repeat_exposure_rows: int
    multi_arm_units: int
    multi_arm_examples: list[str]
    analysed_units: int
    outcome_rows: int
    outcome_rows_not_exposed: int
    outcome_rows_multi_arm: int
    units_without_outcome_row: int
    missing_outcomes: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class UnitData:
    """The analysed units, aligned to the outcome table's rows.

    ``row_code`` is arm * looks + look bin for rows of analysed units, negative otherwise;
    ``n_exposed`` / ``n_with_row`` count analysed units per (arm, look bin).
    """

    arms: list[str]
    looks: int
    look_times: list[str]
    row_code: np.ndarray
    n_exposed: np.ndarray
    n_with_row: np.ndarray
    columns: dict[str, np.ndarray]
    binary: set[str]
    segments: dict[str, tuple[np.ndarray, list[str]]]
    accounting: UnitAccounting
    sources: dict[str, str] = field(default_factory=dict)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _require(
    table: pa.Table, columns: list[str], source: str, *, found: list[str] | None = None
) -> None:
    """Every one of ``columns`` is in the table, or a UserError names the first missing one
    and the columns ``found`` (default: the table's)."""
    for name in columns:
        if name not in table.column_names:
            listed = ", ".join(table.column_names if found is None else found)
            raise UserError(f"missing column (found: {listed})", file=source, column=name)


def _no_nulls(column: pa.ChunkedArray, source: str, name: str) -> None:
    if column.null_count:
        row = _first(column.is_null().to_numpy(zero_copy_only=False))
        raise UserError("missing value", file=source, column=name, row=row)


def unit_id_values(column: pa.ChunkedArray, source: str, name: str = UNIT_ID) -> np.ndarray:
    """Unit ids as int64 (integers, integral floats) or as an object array of strings."""
    _no_nulls(column, source, name)
    if pa.types.is_integer(column.type):
        return column.to_numpy().astype(np.int64, copy=False)
    if pa.types.is_floating(column.type):
        values = column.to_numpy()
        bad = ~np.isfinite(values) | (values != np.floor(values))
        if bad.any():
            row = _first(bad)
            raise UserError(
                f"unit id {values[row].item()!r} is not an integer",
                file=source,
                column=name,
                row=row,
            )
        return values.astype(np.int64)
    return np.asarray(column.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)


def _labels(
    column: pa.ChunkedArray, source: str, name: str, *, nulls: str | None
) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes (int32) and their labels as text; nulls become ``nulls``' level,
    or a UserError when ``nulls`` is None."""
    if nulls is None:
        _no_nulls(column, source, name)
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(array.type):
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = pc.cast(array, pa.string())
        array = pc.dictionary_encode(array)
    labels = [str(v) for v in array.dictionary.to_pylist()]
    codes = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
    if nulls is not None and (codes < 0).any():
        labels.append(nulls)
        codes = np.where(codes < 0, len(labels) - 1, codes).astype(np.int32)
    return codes, labels


def _timestamps(column: pa.ChunkedArray, source: str) -> np.ndarray:
    """Exposure times as int64 microseconds since the epoch (UTC)."""
    _no_nulls(column, source, EXPOSED_AT)
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        tz = column.type.tz if pa.types.is_timestamp(column.type) else None
        micro = pc.cast(column, pa.timestamp("us", tz), safe=False)
        return pc.cast(micro, pa.int64()).to_numpy()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        parsed = utc_timestamps(column.to_pandas(), file=source, column=EXPOSED_AT)
        return parsed.dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    raise UserError(f"expected timestamps, found {column.type}", file=source, column=EXPOSED_AT)


def numeric_column(table: pa.Table, name: str, source: str, *, binary: bool = False) -> np.ndarray:
    """One outcome column as finite float64 (0/1 when ``binary``); the first bad row fails."""
    column = table.column(name)
    _no_nulls(column, source, name)
    if (
        pa.types.is_boolean(column.type)
        or pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
    ):
        values = column.to_numpy().astype(np.float64, copy=False)
    else:
        text = column.to_pandas()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = _first(bad)
        raise UserError(
            f"not a finite number: {column[row].as_py()!r}", file=source, column=name, row=row
        )
    if binary:
        off = (values != 0) & (values != 1)
        if off.any():
            row = _first(off)
            raise UserError(
                f"a binary metric must be 0 or 1, found {values[row].item()!r}",
                file=source,
                column=name,
                row=row,
            )
    return values


def _unit_codes(
    exposed: np.ndarray, outcome: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, Callable[[int], str]]:
    """Dense integer codes for both tables' unit ids in one space (size returned)."""
    integer = exposed.dtype.kind == "i" and outcome.dtype.kind == "i"
    if integer and exposed.size and outcome.size:
        low = min(int(exposed.min()), int(outcome.min()))
        high = max(int(exposed.max()), int(outcome.max()))
        if low >= 0 and high < max(4 * (exposed.size + outcome.size), 1 << 20):
            return exposed.astype(np.intp), outcome.astype(np.intp), high + 1, str
    if not integer:  # text ids (or text in one table): compare as text, like assignment does
        exposed = exposed.astype(str).astype(object) if exposed.dtype.kind != "O" else exposed
        outcome = outcome.astype(str).astype(object) if outcome.dtype.kind != "O" else outcome
    codes, uniques = pd.factorize(np.concatenate([exposed, outcome]))
    return codes[: exposed.size], codes[exposed.size :], len(uniques), lambda c: str(uniques[c])


def _ordered_arms(
    observed: list[str], config: AnalysisConfig, source: str, arm_codes: np.ndarray
) -> list[str]:
    """Report order of the arms (control first) after checking them against the config.
    Labels without a row (a dictionary column's unused entries) are not arms."""
    present = np.bincount(arm_codes, minlength=len(observed)) > 0
    seen = [label for label, used in zip(observed, present, strict=True) if used]
    if config.arms is not None:
        for index, label in enumerate(observed):
            if present[index] and label not in config.arms:
                row = _first(arm_codes == index)
                known = ", ".join(config.arms)
                raise UserError(
                    f"arm '{label}' is not a configured arm ({known})",
                    file=source,
                    column=ARM,
                    row=row,
                )
        names = list(config.arms)
    else:
        names = sorted(seen)
    if config.control not in seen:
        raise UserError(
            f"no exposures in the control arm '{config.control}'", file=source, column=ARM
        )
    return [config.control, *(n for n in names if n != config.control)]


def _filter_experiment(table: pa.Table, config: AnalysisConfig, source: str) -> pa.Table:
    if EXPERIMENT not in table.column_names:
        return table
    names = pc.unique(table.column(EXPERIMENT)).to_pylist()
    if config.experiment is None:
        if len(names) > 1:
            shown = ", ".join(sorted(map(str, names))[:5])
            raise UserError(
                f"exposures of several experiments ({shown}); choose one",
                file=source,
                option="experiment",
            )
        return table
    kept = table.filter(pc.equal(table.column(EXPERIMENT).cast(pa.string()), config.experiment))
    if kept.num_rows == 0:
        raise UserError(
            f"no exposures of experiment '{config.experiment}'", file=source, column=EXPERIMENT
        )
    return kept


def _limit_levels(
    codes: np.ndarray, labels: list[str], weight: np.ndarray, limit: int
) -> tuple[np.ndarray, list[str]]:
    """Keep the ``limit - 1`` largest levels and merge the rest into "(other)"."""
    if len(labels) <= limit:
        return codes, labels
    sizes = np.bincount(codes, weights=weight, minlength=len(labels))
    keep = np.sort(np.argsort(-sizes, kind="stable")[: limit - 1])
    mapping = np.full(len(labels), limit - 1, dtype=np.int32)
    mapping[keep] = np.arange(limit - 1, dtype=np.int32)
    return mapping[codes], [labels[i] for i in keep] + [OTHER_LEVEL]


def prepare_units(
    exposures: pa.Table,
    outcomes: pa.Table,
    config: AnalysisConfig,
    *,
    exposures_source: str = "exposures",
    outcomes_source: str = "outcomes",
) -> UnitData:
    """Join exposures with outcomes for ``config``: check every column, drop multi-arm
    units, bin the first exposure times into looks, convert the outcome columns."""
    _require(exposures, [UNIT_ID, ARM], exposures_source)
    exposures = _filter_experiment(exposures, config, exposures_source)
    needed = config.outcome_columns()
    _require(outcomes, [UNIT_ID, *needed], outcomes_source)
    if exposures.num_rows == 0:
        raise UserError("no exposure rows", file=exposures_source)

    exposure_ids = unit_id_values(exposures.column(UNIT_ID), exposures_source)
    outcome_ids = unit_id_values(outcomes.column(UNIT_ID), outcomes_source)
    raw_arm, observed = _labels(exposures.column(ARM), exposures_source, ARM, nulls=None)
    arms = _ordered_arms(observed, config, exposures_source, raw_arm)
    position = {name: i for i, name in enumerate(arms)}
    remap = np.array([position.get(label, -1) for label in observed], dtype=np.int32)
    arm_code = remap[raw_arm]
    times = (
        _timestamps(exposures.column(EXPOSED_AT), exposures_source)
        if EXPOSED_AT in exposures.column_names
        else None
    )

    exposure_code, outcome_code, size, id_text = _unit_codes(exposure_ids, outcome_ids)
    per_unit = np.bincount(exposure_code, minlength=size)
    unit_arm = np.full(size, _NOT_EXPOSED, dtype=np.int64)
    unit_arm[exposure_code] = arm_code
    unit_time = np.zeros(size, dtype=np.int64)
    if times is not None:
        unit_time[exposure_code] = times
    repeated = per_unit > 1
    multi = np.zeros(size, dtype=bool)
    if repeated.any():
        rows = np.flatnonzero(repeated[exposure_code])
        codes_r = exposure_code[rows]
        low = np.full(size, np.iinfo(np.int64).max)
        high = np.full(size, -1, dtype=np.int64)
        np.minimum.at(low, codes_r, arm_code[rows])
        np.maximum.at(high, codes_r, arm_code[rows])
        multi = repeated & (low != high)
        unit_arm[multi] = _MULTI_ARM
        if times is not None:
            first_time = np.full(size, np.iinfo(np.int64).max)
            np.minimum.at(first_time, codes_r, times[rows])
            unit_time[repeated] = first_time[repeated]
    analysed = unit_arm >= 0

    looks, look_times, unit_bin = 1, [], np.zeros(size, dtype=np.int64)
    if times is not None and analysed.any():
        start, end = int(unit_time[analysed].min()), int(unit_time[analysed].max())
        if end > start:
            looks = config.looks
            unit_bin = np.minimum((unit_time - start) * looks // (end - start), looks - 1)
            unit_bin[~analysed] = 0
        look_times = [
            str(np.datetime64(start + (end - start) * (j + 1) // looks, "us")) for j in range(looks)
        ]
    unit_code = np.where(analysed, unit_arm * looks + unit_bin, unit_arm)
    n_cells = len(arms) * looks
    n_exposed = np.bincount(unit_code[analysed], minlength=n_cells).reshape(len(arms), looks)

    outcome_count = np.bincount(outcome_code, minlength=size)
    if (outcome_count > 1).any():
        row = _first(pd.Series(outcome_code).duplicated().to_numpy())
        raise UserError(
            f"unit {id_text(int(outcome_code[row]))} has two outcome rows",
            file=outcomes_source,
            column=UNIT_ID,
            row=row,
        )
    row_code = unit_code[outcome_code]
    tally = np.bincount(row_code + 2, minlength=n_cells + 2)
    n_with_row = tally[2:].reshape(len(arms), looks)
    without_row = analysed & (outcome_count == 0)
    if config.missing_outcomes == "error" and without_row.any():
        unit = id_text(_first(without_row))
        raise UserError(
            f"exposed unit {unit} has no outcome row (missing_outcomes: error)",
            file=outcomes_source,
            column=UNIT_ID,
        )

    binary_columns = {m.value_column for m in config.metrics if m.type == "binary"}
    if config.profit is not None and config.profit.conversion:
        binary_columns.add(config.profit.conversion)
    numeric = [c for c in needed if c not in config.segments]
    columns = {
        name: numeric_column(outcomes, name, outcomes_source, binary=name in binary_columns)
        for name in numeric
    }
    in_analysis = (row_code >= 0).astype(np.float64)
    segments = {}
    for name in config.segments:
        codes, labels = _labels(outcomes.column(name), outcomes_source, name, nulls=MISSING_LEVEL)
        segments[name] = _limit_levels(codes, labels, in_analysis, config.max_segment_levels)

    examples = [id_text(int(c)) for c in np.flatnonzero(multi)[:5]]
    accounting = UnitAccounting(
        exposure_rows=int(exposure_code.size),
        exposed_units=int((per_unit > 0).sum()),
        repeat_exposure_rows=int(exposure_code.size - (per_unit > 0).sum()),
        multi_arm_units=int(multi.sum()),
        multi_arm_examples=examples,
        analysed_units=int(analysed.sum()),
        outcome_rows=int(outcome_code.size),
        outcome_rows_not_exposed=int(tally[1]),
        outcome_rows_multi_arm=int(tally[0]),
        units_without_outcome_row=int(without_row.sum()),
        missing_outcomes=config.missing_outcomes,
    )
    return UnitData(
        arms=arms,
        looks=looks,
        look_times=look_times,
        row_code=row_code,
        n_exposed=n_exposed,
        n_with_row=n_with_row,
        columns=columns,
        binary=binary_columns,
        segments=segments,
        accounting=accounting,
        sources={"exposures": exposures_source, "outcomes": outcomes_source},
    )
