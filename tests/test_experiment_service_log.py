"""The decision service's exposure log read as an experiment's exposures, from SQLite and
from the real PostgreSQL: the same records give the same analysis as a Parquet file."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liftwise.experiment.analyze import analyze_files
from liftwise.experiment.config import parse_config
from liftwise.serve.exposures import ExposureRecord, PostgresExposureLog, SqliteExposureLog
from liftwise.serve.sqlite import SqliteDatabase

ARMS = ("control", "offer")
START_US = 1_780_000_000_000_000  # 2026-05-28, microseconds since the epoch


def record(unit: int, arm: str) -> ExposureRecord:
    """One logged decision, as the service writes it."""
    return ExposureRecord(
        request_id=f"req-{unit}", decision_id=str(uuid.uuid4()), campaign="spring",
        unit_id=unit, arm=arm, effect_arm="offer", treated=arm == "offer",
        expected_profit=1.0, expected_cost=2.0 if arm == "offer" else 0.0, cost_units=0,
        effect=0.02, effect_low=0.0, effect_high=0.04, reason=None, model_name="m",
        model_version="1", decided_at_us=START_US + unit * 60_000_000, context=None,
    )  # fmt: skip


def records(n: int = 4_000, seed: int = 3) -> list[ExposureRecord]:
    """A campaign whose arm was drawn at random per unit (an exploration campaign)."""
    arms = np.random.default_rng(seed).choice(np.array(ARMS), n)
    return [record(unit, str(arm)) for unit, arm in enumerate(arms)]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logged = records()
    rng = np.random.default_rng(4)
    offer = np.array([r.arm == "offer" for r in logged])
    frame = pd.DataFrame(
        {
            "unit_id": [r.unit_id for r in logged],
            "converted": (rng.random(len(logged)) < 0.1 + 0.05 * offer).astype(int),
            "revenue": rng.gamma(2.0, 10.0, len(logged)) + 5.0 * offer,
        }
    )
    path = tmp_path_factory.mktemp("service_log") / "outcomes.parquet"
    frame.to_parquet(path)
    return path


CONFIG = parse_config(
    {
        "experiment": "spring",
        "control": "control",
        "arms": {"control": 0.5, "offer": 0.5},
        "metrics": [
            {"name": "converted", "column": "converted", "type": "binary"},
            {"name": "revenue", "column": "revenue", "type": "continuous"},
        ],
    },
    source="test",
)


def reference(outcomes: Path, tmp_path: Path):
    """The same records as a Parquet exposure file with the canonical column names."""
    frame = pd.DataFrame(
        {
            "unit_id": [r.unit_id for r in records()],
            "arm": [r.arm for r in records()],
            "experiment": "spring",
            "exposed_at": pd.to_datetime([r.decided_at_us for r in records()], unit="us", utc=True),
        }
    )
    frame.to_parquet(tmp_path / "exposures.parquet")
    return analyze_files(tmp_path / "exposures.parquet", outcomes, CONFIG)


def same_analysis(got, expected) -> None:
    assert got.units.analysed_units == expected.units.analysed_units == 4_000
    assert len(got.comparisons) == 2
    for a, b in zip(got.comparisons, expected.comparisons, strict=True):
        assert (a.metric, a.treatment, a.n_treatment) == (b.metric, b.treatment, b.n_treatment)
        np.testing.assert_allclose(a.absolute.estimate, b.absolute.estimate, rtol=1e-12)
        np.testing.assert_allclose(a.sequential.ci_low, b.sequential.ci_low, rtol=1e-12)
    np.testing.assert_array_equal(got.paths[0].n_total, expected.paths[0].n_total)


def test_the_sqlite_exposure_log_is_an_exposure_source(outcomes: Path, tmp_path: Path):
    log = SqliteExposureLog(SqliteDatabase(tmp_path / "exposures.db"), "exposures")
    try:
        assert len(log.append(records())) == 4_000
    finally:
        log.close()
    got = analyze_files(f"sqlite:///{tmp_path / 'exposures.db'}?table=exposures", outcomes, CONFIG)
    same_analysis(got, reference(outcomes, tmp_path))


def test_the_postgres_exposure_log_is_an_exposure_source(
    outcomes: Path, tmp_path: Path, postgres_dsn: str
):
    import psycopg

    table = f"exposures_{uuid.uuid4().hex[:10]}"
    log = PostgresExposureLog(postgres_dsn, table)
    try:
        assert len(log.append(records())) == 4_000
        got = analyze_files(f"{postgres_dsn}?table={table}", outcomes, CONFIG)
    finally:
        log.close()
        with psycopg.connect(postgres_dsn) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {table}")
    same_analysis(got, reference(outcomes, tmp_path))
