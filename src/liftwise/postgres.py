"""PostgreSQL connections shared by threads: one psycopg 3 autocommit connection per thread.

psycopg connections must not be used by two threads at once, and the decision service
and the rollout store read from many threads (request handlers, pollers); a pool would add
a hand-off to every read. A connection that fails with an OperationalError (the server
restarted, the network dropped) is closed and forgotten, so the thread's next call
reconnects. Writes are explicit ``conn.transaction()`` blocks.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


class ThreadConnections:
    """This thread's connection to ``dsn`` (psycopg is imported when first used: it is the
    serve extra)."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.psycopg = psycopg
        self.dsn = dsn
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """This thread's connection; dropped on a connection error so the next call reconnects."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self.psycopg.connect(self.dsn, autocommit=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        try:
            yield conn
        except self.psycopg.OperationalError:
            with contextlib.suppress(Exception):
                conn.close()
            self._local.conn = None
            raise

    def close(self) -> None:
        """Close every thread's connection (later calls open new ones)."""
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(Exception):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
