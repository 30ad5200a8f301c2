"""One SQLite file shared by threads and worker processes: WAL, one connection per thread.

WAL lets readers (idempotency look-ups, contact caps) run beside the single writer;
``BEGIN IMMEDIATE`` takes the write lock up front so a read-then-write transaction (check the
budget, then spend it) can never interleave with another process's.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from liftwise.errors import UserError

BUSY_TIMEOUT_MS = 30_000


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///PATH`` URL (or a bare path)."""
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if not path or path.startswith(("sqlite:", "postgres")):
        raise UserError(f"not a SQLite URL: {url!r} (use sqlite:///PATH)", option="exposure-log")
    return Path(path)


class SqliteDatabase:
    """A SQLite file with a connection per thread (sqlite3 connections are not thread-safe)."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self.transaction() as conn:  # create the file and switch it to WAL once
            conn.execute("SELECT 1")

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
