"""One SQLite file shared by threads and worker processes: WAL, one connection per thread.

The decision service's exposure log and budget ledger and the rollout store live in such
files (liftwise.serve, liftwise.rollout), so the class sits at stage 0.

WAL lets readers (idempotency look-ups, contact caps) run beside the single writer;
``BEGIN IMMEDIATE`` takes the write lock up front so a read-then-write transaction (check the
budget, then spend it) can never interleave with another process's.

Writers queue on a thread lock and an ``flock`` on a sidecar ``.lock`` file before
``BEGIN IMMEDIATE``: the kernel wakes the next writer the moment the lock is free, where
SQLite's own busy handler would poll with sleeps of 1, 2, 5, 10... ms (a tail latency of
tens of ms under load). The kernel drops the flock of a killed process, and the busy
timeout stays as the fallback for writers that do not take it.

Checkpoints (copying the WAL into the database file, with an fsync) run in a background
thread every second instead of inside whichever commit crosses SQLite's 1,000-page mark:
on the request path they were the 5-15 ms outliers. A commit itself does not fsync under
``synchronous=NORMAL``: it is in the WAL, which survives a killed process; FULL also
survives a power cut, at an fsync per commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from liftwise.errors import UserError

BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_SECONDS = 1.0
WAL_SIZE_LIMIT = 64 << 20  # bytes the WAL file is truncated to when it restarts


def sqlite_path(url: str, *, parameter: str = "exposure_log") -> Path:
    """The file of a ``sqlite:///PATH`` URL (or a bare path); ``parameter`` is the setting
    the URL came from, named in the error."""
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if not path or "://" in path or path.startswith(("sqlite:", "postgres")):
        raise UserError(f"not a SQLite URL: {url!r} (use sqlite:///PATH)", parameter=parameter)
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
        self._write_lock = threading.Lock()  # this process's writers
        self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)  # all
        with self.transaction() as conn:  # create the file and switch it to WAL once
            conn.execute("SELECT 1")
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        try:
            while not self._stop.wait(CHECKPOINT_SECONDS):
                with contextlib.suppress(sqlite3.Error):  # busy: the next round catches up
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the background thread checkpoints
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        return conn

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        conn = self.connection()
        with self._write_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer.is_alive() and self._checkpointer is not threading.current_thread():
            self._checkpointer.join(timeout=5)
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
        self._local = threading.local()
