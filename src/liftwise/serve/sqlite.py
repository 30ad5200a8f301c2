"""Moved to :mod:`liftwise.sqlite` (stage 0) so the rollout store can share it; this
name stays for the code written against it during issue 12 (import from liftwise.sqlite)."""

from liftwise.sqlite import BUSY_TIMEOUT_MS, SqliteDatabase, sqlite_path

__all__ = ["BUSY_TIMEOUT_MS", "SqliteDatabase", "sqlite_path"]
