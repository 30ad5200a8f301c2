"""Shared fixtures: small generated worlds, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from liftwise.simulate import World, WorldConfig, load_world, simulate

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own LIFTWISE_DATA_DIR, so none writes into the checkout's data/
    (MLflow's database there would be shared by concurrent runs)."""
    monkeypatch.setenv("LIFTWISE_DATA_DIR", str(tmp_path_factory.mktemp("liftwise_data")))


@pytest.fixture(scope="session")
def fintech_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A 30K-customer, 60-day fintech world (v2 seasonality)."""
    out = tmp_path_factory.mktemp("fintech") / "world"
    simulate(WorldConfig(world="fintech", units=30_000, days=60, seed=11, chunk_units=10_000), out)
    return load_world(out)


@pytest.fixture(scope="session")
def fintech_world_v1(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A flat (v1) world with a steeper Zipf law; 63 days = 9 whole weeks."""
    out = tmp_path_factory.mktemp("fintech_v1") / "world"
    simulate(
        WorldConfig(
            world="fintech", units=10_000, days=63, seed=12, realism="v1", zipf_exponent=1.5
        ),
        out,
    )
    return load_world(out)
