"""Exposure log version 2: the rollout columns round-trip on SQLite and PostgreSQL, and a
table made by version 1 (created here with version 1's own statements) gets them added on
open, keeps its rows, and can be opened again."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from liftwise.experiment.data import read_exposures
from liftwise.serve.exposures import ExposureRecord, PostgresExposureLog, SqliteExposureLog
from liftwise.serve.sqlite import SqliteDatabase

# version 1's CREATE TABLE, as liftwise wrote it before the rollout columns
V1_TABLE = """CREATE TABLE {table} (
  request_id TEXT NOT NULL PRIMARY KEY, decision_id TEXT NOT NULL UNIQUE,
  campaign TEXT NOT NULL, unit_id BIGINT NOT NULL, arm TEXT NOT NULL,
  effect_arm TEXT NOT NULL, treated BOOLEAN NOT NULL, expected_profit DOUBLE PRECISION NOT NULL,
  expected_cost DOUBLE PRECISION NOT NULL, cost_units BIGINT NOT NULL,
  effect DOUBLE PRECISION, effect_low DOUBLE PRECISION, effect_high DOUBLE PRECISION,
  reason TEXT, model_name TEXT NOT NULL, model_version TEXT NOT NULL,
  decided_at_us BIGINT NOT NULL, context TEXT
)"""
V1_ROW = ("old-req", "old-dec", "spring", 7, "control", "offer", False, 0.0, 0.0, 0,
          None, None, None, "budget", "m", "1", 1_780_000_000_000_000, None)  # fmt: skip


def record(unit: int, **rollout: Any) -> ExposureRecord:
    return ExposureRecord(
        request_id=f"req-{unit}", decision_id=f"dec-{unit}", campaign="spring", unit_id=unit,
        arm="offer", effect_arm="offer", treated=True, expected_profit=1.5, expected_cost=2.0,
        cost_units=2000, effect=0.02, effect_low=None, effect_high=None, reason=None,
        model_name="m", model_version="2", decided_at_us=1_780_000_000_000_000 + unit,
        context=None, **rollout,
    )  # fmt: skip


def test_a_record_defaults_to_no_rollout():
    plain = record(1)
    assert (plain.rollout, plain.rollout_step, plain.variant) == (None, None, None)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Callable[[], Any], Callable[[str], None]]]:
    """(open the log, run one SQL statement on its database) for each backend."""
    if request.param == "sqlite":
        path = tmp_path / "exposures.db"

        def execute_sqlite(sql: str) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute(sql, V1_ROW if "?" in sql else ())

        yield (lambda: SqliteExposureLog(SqliteDatabase(path), "exposures")), execute_sqlite
        return
    import psycopg

    dsn = request.getfixturevalue("postgres_dsn")
    table = f"exposures_v1_{uuid.uuid4().hex[:10]}"

    def execute_pg(sql: str) -> None:
        with psycopg.connect(dsn) as conn:
            conn.execute(sql.replace("exposures", table).replace("?", "%s"),
                         V1_ROW if "?" in sql else None)  # fmt: skip

    try:
        yield (lambda: PostgresExposureLog(dsn, table)), execute_pg
    finally:
        execute_pg("DROP TABLE IF EXISTS exposures")


def test_rollout_columns_round_trip(backend):
    open_log, _ = backend
    log = open_log()
    try:
        served = [record(1, rollout="r1", rollout_step=2, variant="candidate"), record(2)]
        assert log.append(served) == {"req-1", "req-2"}
        assert log.lookup(["req-1", "req-2"]) == {"req-1": served[0], "req-2": served[1]}
    finally:
        log.close()


def test_a_version_1_table_gets_the_rollout_columns(backend):
    open_log, execute = backend
    execute(V1_TABLE.format(table="exposures"))
    execute(f"INSERT INTO exposures VALUES ({', '.join('?' * len(V1_ROW))})")
    for _ in range(2):  # the upgrade is idempotent
        log = open_log()
        try:
            old = log.lookup(["old-req"])["old-req"]
            assert old.request_id == "old-req" and old.reason == "budget"
            assert (old.rollout, old.rollout_step, old.variant) == (None, None, None)
            new = record(3, rollout="r1", rollout_step=0, variant="holdout")
            log.append([new])
            assert log.lookup(["req-3"])["req-3"] == new
        finally:
            log.close()


def test_a_version_1_export_still_reads_as_the_log(tmp_path: Path):
    """Exports of the log made before version 2 lack the rollout columns."""
    import pandas as pd

    columns = [f.name for f in ExposureRecord.__dataclass_fields__.values()][:-3]
    frame = pd.DataFrame([dict(zip(columns, V1_ROW, strict=True))])
    frame.to_parquet(tmp_path / "v1.parquet")
    table = read_exposures(tmp_path / "v1.parquet")
    assert table.column("experiment").to_pylist() == ["spring"]
    assert "exposed_at" in table.column_names
