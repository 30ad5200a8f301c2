"""The exposure log: every decision, once, keyed by the client's request id.

The request id is the primary key, so a retried request finds its decision instead of
making a new one, in any worker. SQLite (WAL) by default; PostgreSQL when the log URL is a
``postgresql://`` DSN. Rows are written before the response leaves, so an acknowledged
decision is on disk (SQLite: in the WAL, which survives a killed process; PostgreSQL:
committed).
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import pandas as pd

from liftwise.contracts.base import TableContract
from liftwise.contracts.exposure_log import ADDED_COLUMNS, EXPOSURE_LOG
from liftwise.errors import UserError
from liftwise.postgres import ThreadConnections
from liftwise.sqlite import SqliteDatabase, sqlite_path

IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's parameter limit


@dataclass(frozen=True, slots=True)
class ExposureRecord:
    """One logged decision; also what a retried request gets back."""

    request_id: str
    decision_id: str
    campaign: str
    unit_id: int
    arm: str
    effect_arm: str  # the arm the effect describes: the chosen one, else the most profitable
    treated: bool
    expected_profit: float
    expected_cost: float
    cost_units: int  # the budget reservation in ledger units (0 when untreated)
    effect: float | None
    effect_low: float | None
    effect_high: float | None
    reason: str | None
    model_name: str
    model_version: str
    decided_at_us: int  # microseconds since the epoch, UTC
    context: str | None  # the request's context as JSON
    rollout: str | None = None  # the rollout that served the unit (version 2 on)
    rollout_step: int | None = None  # its step index at the decision
    variant: str | None = None  # holdout, baseline or candidate


COLUMNS = tuple(EXPOSURE_LOG.column_names)
if tuple(f.name for f in fields(ExposureRecord)) != COLUMNS:  # checked once, at import
    raise ImportError("ExposureRecord's fields differ from the exposure_log contract")
# a record's values in COLUMNS order (dataclasses.astuple deep-copies every field: 20x slower)
_values = operator.attrgetter(*COLUMNS)
_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE PRECISION", "bool": "BOOLEAN", "str": "TEXT"}


def column_sql(name: str, contract: TableContract = EXPOSURE_LOG) -> str:
    """One column's definition (SQLite and PostgreSQL alike) from its contract."""
    c = contract.column(name)
    return (
        f"{c.name} {_SQL_TYPES[c.kind]}"
        + ("" if c.nullable else " NOT NULL")
        + (" PRIMARY KEY" if c.name in contract.key else " UNIQUE" if c.unique else "")
    )


def _ddl(table: str) -> list[str]:
    """CREATE statements (SQLite and PostgreSQL alike) from the exposure_log contract."""
    columns = ",\n  ".join(column_sql(name) for name in COLUMNS)
    return [f"CREATE TABLE IF NOT EXISTS {table} (\n  {columns}\n)"]


def _indexes(table: str) -> list[str]:
    """The unit index (contact caps, joins by unit) and a partial index on the rollout
    columns (the rollout measurements; rows outside rollouts cost it nothing). Created
    after the columns are added to an older table."""
    prefix = table.replace(".", "_")  # an index lives in its table's schema
    return [
        f"CREATE INDEX IF NOT EXISTS {prefix}_unit ON {table} (unit_id, decided_at_us)",
        f"CREATE INDEX IF NOT EXISTS {prefix}_rollout ON {table} (rollout, rollout_step) "
        "WHERE rollout IS NOT NULL",
    ]


def _upgrade(table: str, present: Sequence[str]) -> list[str]:
    """ALTER TABLE statements adding the contract's columns a table made by an older
    version lacks (only the nullable ADDED_COLUMNS can be missing: existing rows get null)."""
    missing = [name for name in COLUMNS if name not in set(present)]
    if set(missing) - set(ADDED_COLUMNS):
        raise UserError(
            f"table {table} is not an exposure log: no column {missing[0]}",
            parameter="exposure_table",
        )
    return [f"ALTER TABLE {table} ADD COLUMN {column_sql(name)}" for name in missing]


def _record(row: Sequence[Any]) -> ExposureRecord:
    values = list(row)
    values[COLUMNS.index("treated")] = bool(values[COLUMNS.index("treated")])
    return ExposureRecord(*values)


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ExposureLog(Protocol):
    """Append-once storage of decisions, keyed by request id."""

    def lookup(self, request_ids: Sequence[str]) -> dict[str, ExposureRecord]: ...

    def append(self, records: Sequence[ExposureRecord]) -> set[str]:
        """Write the records whose request id is new; return those request ids."""
        ...

    def logged_decisions(self, decision_ids: Sequence[str]) -> set[str]: ...

    def treated_since(self, unit_ids: Sequence[int], since_us: int) -> pd.DataFrame: ...

    def read_all(self) -> list[ExposureRecord]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...

    def unit_decisions(self, unit_id: int, since_us: int, until_us: int) -> list[ExposureRecord]:
        """One unit's decisions within [since_us, until_us], oldest first."""
        ...


def _history_frame(rows: list[tuple[int, int]]) -> pd.DataFrame:
    """(unit_id, occurred_at) as the contact-cap guardrail reads them."""
    frame = pd.DataFrame(rows, columns=["unit_id", "occurred_at_us"])
    occurred = pd.to_datetime(frame["occurred_at_us"].astype("int64"), unit="us")
    return pd.DataFrame({"unit_id": frame["unit_id"].astype("int64"), "occurred_at": occurred})


# --------------------------------------------------------------------------- SQLite


class SqliteExposureLog:
    """The log as a table in a SQLite file (the budget ledger may share the file)."""

    def __init__(self, db: SqliteDatabase, table: str = "exposures") -> None:
        if "." in table:
            raise UserError("SQLite tables cannot be schema-qualified", parameter="exposure_table")
        self.db = db
        self.table = table
        self._insert = (
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        with db.transaction() as conn:
            for statement in _ddl(table):
                conn.execute(statement)
            present = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            for statement in _upgrade(table, present) + _indexes(table):
                conn.execute(statement)

    def lookup_in(
        self, conn: sqlite3.Connection, request_ids: Sequence[str]
    ) -> dict[str, ExposureRecord]:
        found: dict[str, ExposureRecord] = {}
        for chunk in _chunks(list(dict.fromkeys(request_ids))):
            rows = conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {self.table} WHERE request_id IN "
                f"({', '.join('?' * len(chunk))})",
                tuple(chunk),
            )
            for row in rows:
                found[row[0]] = _record(row)
        return found

    def lookup(self, request_ids: Sequence[str]) -> dict[str, ExposureRecord]:
        return self.lookup_in(self.db.connection(), request_ids)

    def insert_in(self, conn: sqlite3.Connection, records: Sequence[ExposureRecord]) -> None:
        """Insert inside the caller's write transaction (request ids known to be new)."""
        conn.executemany(self._insert, [_values(r) for r in records])

    def append(self, records: Sequence[ExposureRecord]) -> set[str]:
        if not records:
            return set()
        with self.db.transaction() as conn:
            taken = self.lookup_in(conn, [r.request_id for r in records])
            new = [r for r in records if r.request_id not in taken]
            self.insert_in(conn, new)
        return {r.request_id for r in new}

    def logged_decisions(self, decision_ids: Sequence[str]) -> set[str]:
        conn = self.db.connection()
        found: set[str] = set()
        for chunk in _chunks(list(decision_ids)):
            rows = conn.execute(
                f"SELECT decision_id FROM {self.table} WHERE decision_id IN "
                f"({', '.join('?' * len(chunk))})",
                tuple(chunk),
            )
            found.update(r[0] for r in rows)
        return found

    def treated_since(self, unit_ids: Sequence[int], since_us: int) -> pd.DataFrame:
        conn = self.db.connection()
        rows: list[tuple[int, int]] = []
        for chunk in _chunks(list(dict.fromkeys(int(u) for u in unit_ids))):
            rows += conn.execute(
                f"SELECT unit_id, decided_at_us FROM {self.table} WHERE treated AND "
                f"decided_at_us >= ? AND unit_id IN ({', '.join('?' * len(chunk))})",
                (since_us, *chunk),
            ).fetchall()
        return _history_frame(rows)

    def read_all(self) -> list[ExposureRecord]:
        rows = self.db.connection().execute(
            f"SELECT {', '.join(COLUMNS)} FROM {self.table} ORDER BY decided_at_us, request_id"
        )
        return [_record(r) for r in rows]

    def ping(self) -> None:
        self.db.connection().execute(f"SELECT 1 FROM {self.table} LIMIT 1").fetchall()

    def close(self) -> None:
        self.db.close()

    def unit_decisions(self, unit_id: int, since_us: int, until_us: int) -> list[ExposureRecord]:
        rows = self.db.connection().execute(
            f"SELECT {', '.join(COLUMNS)} FROM {self.table} WHERE unit_id = ? AND "
            "decided_at_us BETWEEN ? AND ? ORDER BY decided_at_us, request_id",
            (int(unit_id), since_us, until_us),
        )
        return [_record(r) for r in rows]


# --------------------------------------------------------------------------- PostgreSQL

_PG_ARRAYS = {c.name: f"{_SQL_TYPES[c.kind].lower()}[]" for c in EXPOSURE_LOG.columns}


class PostgresExposureLog:
    """The log in PostgreSQL; one connection per thread, a batch is one INSERT ... unnest."""

    def __init__(self, dsn: str, table: str = "exposures") -> None:
        import psycopg

        self.psycopg = psycopg
        self.dsn = dsn
        self.table = table
        self._connections = ThreadConnections(dsn)
        self.connection = self._connections.connection  # the outcome store shares it
        unnest = ", ".join(f"%s::{_PG_ARRAYS[c]}" for c in COLUMNS)
        self._insert = (
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) SELECT * FROM unnest({unnest}) "
            "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
        )
        try:
            with self.connection() as conn, conn.transaction():
                # one worker at a time creates the table (concurrent CREATE IF NOT EXISTS races)
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
                for statement in _ddl(table):
                    conn.execute(statement)
                cursor = conn.execute(f"SELECT * FROM {table} LIMIT 0")
                present = [column.name for column in cursor.description or []]
                for statement in _upgrade(table, present) + _indexes(table):
                    conn.execute(statement)
        except psycopg.Error as err:
            raise UserError(
                f"cannot use the PostgreSQL exposure log: {str(err).strip()}",
                parameter="exposure_log",
            ) from None

    def lookup(self, request_ids: Sequence[str]) -> dict[str, ExposureRecord]:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {self.table} WHERE request_id = ANY(%s)",
                (list(dict.fromkeys(request_ids)),),
            ).fetchall()
        return {row[0]: _record(row) for row in rows}

    def append(self, records: Sequence[ExposureRecord]) -> set[str]:
        if not records:
            return set()
        columns = list(zip(*map(_values, records), strict=True))
        with self.connection() as conn, conn.transaction():
            rows = conn.execute(self._insert, [list(c) for c in columns]).fetchall()
        return {r[0] for r in rows}

    def logged_decisions(self, decision_ids: Sequence[str]) -> set[str]:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT decision_id FROM {self.table} WHERE decision_id = ANY(%s)",
                (list(decision_ids),),
            ).fetchall()
        return {r[0] for r in rows}

    def treated_since(self, unit_ids: Sequence[int], since_us: int) -> pd.DataFrame:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT unit_id, decided_at_us FROM {self.table} WHERE treated AND "
                "decided_at_us >= %s AND unit_id = ANY(%s)",
                (since_us, [int(u) for u in unit_ids]),
            ).fetchall()
        return _history_frame(rows)

    def read_all(self) -> list[ExposureRecord]:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {self.table} ORDER BY decided_at_us, request_id"
            ).fetchall()
        return [_record(r) for r in rows]

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute(f"SELECT 1 FROM {self.table} LIMIT 1").fetchall()

    def close(self) -> None:
        self._connections.close()

    def unit_decisions(self, unit_id: int, since_us: int, until_us: int) -> list[ExposureRecord]:
        with self.connection() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {self.table} WHERE unit_id = %s AND "
                "decided_at_us BETWEEN %s AND %s ORDER BY decided_at_us, request_id",
                (int(unit_id), since_us, until_us),
            ).fetchall()
        return [_record(r) for r in rows]


def open_exposure_log(
    url: str, table: str = "exposures", *, synchronous: str = "NORMAL"
) -> SqliteExposureLog | PostgresExposureLog:
    """The log a URL names: ``postgresql://`` DSN, else ``sqlite:///PATH``."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresExposureLog(url, table)
    return SqliteExposureLog(SqliteDatabase(sqlite_path(url), synchronous=synchronous), table)
