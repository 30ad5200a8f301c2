"""The registry's audit log: an append-only SQLite table of every registration, approval,
promotion and rollback, with who, when, what, and the champion before and after.

MLflow keeps only the current aliases; this log keeps their history, so "which version was
champion at time T" has an answer. One transaction per write (``BEGIN IMMEDIATE``, so two
writers queue instead of interleaving), WAL journal, and triggers that refuse UPDATE and
DELETE. Times are UTC with microseconds; a write never gets a time earlier than the last
row's, so time order and row order agree even if the wall clock steps back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from liftwise.errors import UserError
from liftwise.times import as_utc

Action = Literal["register", "approve", "promote", "rollback"]
ACTIONS: tuple[Action, ...] = ("register", "approve", "promote", "rollback")
CHAMPION_MOVES: tuple[Action, ...] = ("promote", "rollback")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT    NOT NULL,  -- ISO 8601, UTC, microseconds: sorts as it reads
    model        TEXT    NOT NULL,
    action       TEXT    NOT NULL CHECK (action IN ({", ".join(f"'{a}'" for a in ACTIONS)})),
    version      INTEGER NOT NULL,  -- the version acted on (the new champion for moves)
    from_version INTEGER,           -- champion before (promote, rollback)
    to_version   INTEGER,           -- champion after (promote, rollback)
    by           TEXT    NOT NULL,
    note         TEXT    NOT NULL DEFAULT '',
    run_id       TEXT,
    registry_uri TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_model ON audit_log (model, id);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    id: int
    at: dt.datetime  # timezone-aware, UTC
    model: str
    action: Action
    version: int
    from_version: int | None
    to_version: int | None
    by: str
    note: str
    run_id: str | None

    def describe(self) -> str:
        """One line for people: ``2025-01-02T03:04:05Z promote v2 (was v1) by ana: note``."""
        move = ""
        if self.action in CHAMPION_MOVES:
            was = f"v{self.from_version}" if self.from_version is not None else "none"
            move = f" (champion was {was})"
        note = f": {self.note}" if self.note else ""
        return f"{_iso(self.at)} {self.action} v{self.version}{move} by {self.by}{note}"


def _iso(when: dt.datetime) -> str:
    return as_utc(when).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditLog:
    """The append-only log in one SQLite file (created with its schema on first use)."""

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(self._connect()) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
        connection = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        connection.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        return connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction holding the database's write lock from the start, so what
        it reads (the current champion, approvals) is still true when it appends."""
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            yield Transaction(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        finally:
            connection.close()

    def append(self, **fields: object) -> AuditEntry:
        """Append one entry in its own transaction (see :meth:`Transaction.append`)."""
        with self.transaction() as tx:
            return tx.append(**fields)  # type: ignore[arg-type]

    def entries(self, model: str) -> list[AuditEntry]:
        """Every entry of ``model``, oldest first."""
        with contextlib.closing(self._connect()) as connection:
            return Transaction(connection).entries(model)

    def champion_at(self, model: str, when: dt.datetime) -> int | None:
        """The champion version right after the last promotion or rollback at or before
        ``when`` (naive = UTC); ``None`` if there was none yet."""
        with contextlib.closing(self._connect()) as connection:
            row = connection.execute(
                "SELECT to_version FROM audit_log WHERE model = ? AND action IN (?, ?) "
                "AND at <= ? ORDER BY id DESC LIMIT 1",
                (model, *CHAMPION_MOVES, _iso(when)),
            ).fetchone()
        return None if row is None else int(row[0])


class Transaction:
    """Reads and appends inside one open connection (a transaction, when writing)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def entries(self, model: str) -> list[AuditEntry]:
        rows = self.connection.execute(
            "SELECT id, at, model, action, version, from_version, to_version, by, note, run_id "
            "FROM audit_log WHERE model = ? ORDER BY id",
            (model,),
        ).fetchall()
        return [_entry(row) for row in rows]

    def approved(self, model: str, version: int) -> AuditEntry | None:
        """The latest approval of exactly this version, if any."""
        row = self.connection.execute(
            "SELECT id, at, model, action, version, from_version, to_version, by, note, run_id "
            "FROM audit_log WHERE model = ? AND action = 'approve' AND version = ? "
            "ORDER BY id DESC LIMIT 1",
            (model, version),
        ).fetchone()
        return None if row is None else _entry(row)

    def champion_stack(self, model: str) -> list[int]:
        """Champions in order of promotion, rolled-back ones popped: the last is the current
        champion by the log, the one before it what a rollback restores."""
        stack: list[int] = []
        for entry in self.entries(model):
            if entry.action == "promote":
                stack.append(entry.version)
            elif entry.action == "rollback" and stack:
                stack.pop()
        return stack

    def append(
        self,
        *,
        model: str,
        action: Action,
        version: int,
        by: str,
        note: str = "",
        from_version: int | None = None,
        to_version: int | None = None,
        run_id: str | None = None,
        registry_uri: str | None = None,
    ) -> AuditEntry:
        """Append one entry, timed now (never before the latest entry)."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        if not by.strip():
            raise UserError("say who does this (not empty)", parameter="by")
        last = self.connection.execute("SELECT MAX(at) FROM audit_log").fetchone()[0]
        now = _iso(dt.datetime.now(dt.UTC))
        at = max(now, last) if last else now
        cursor = self.connection.execute(
            "INSERT INTO audit_log (at, model, action, version, from_version, to_version, by, "
            "note, run_id, registry_uri) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                at,
                model,
                action,
                version,
                from_version,
                to_version,
                by.strip(),
                note,
                run_id,
                registry_uri,
            ),
        )
        return AuditEntry(
            id=int(cursor.lastrowid or 0),
            at=_parse(at),
            model=model,
            action=action,
            version=version,
            from_version=from_version,
            to_version=to_version,
            by=by.strip(),
            note=note,
            run_id=run_id,
        )


def _parse(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _entry(row: tuple) -> AuditEntry:
    id_, at, model, action, version, from_version, to_version, by, note, run_id = row
    return AuditEntry(
        id=int(id_),
        at=_parse(at),
        model=model,
        action=action,
        version=int(version),
        from_version=None if from_version is None else int(from_version),
        to_version=None if to_version is None else int(to_version),
        by=by,
        note=note,
        run_id=run_id,
    )
