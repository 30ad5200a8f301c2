"""Tracking and the registry through a real MLflow tracking server (``mlflow server`` on a
free loopback port, artefacts proxied by the server), the option next to the embedded
SQLite default: the same race logs, registers, passes the gate and rolls back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from liftwise.evaluate.bundle import load_bundle
from liftwise.registry import ModelRegistry
from liftwise.registry.store import client
from liftwise.settings import Settings
from test_registry import Race, log, make_race  # tests/ is on sys.path (rootdir-less layout)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` with its own SQLite backend and artefact folder; its URL."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    argv = [
        str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with (root / "server.log").open("wb") as log_file:
        server = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(root / 'server.log').read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def race(tmp_path_factory: pytest.TempPathFactory) -> Race:
    return make_race(tmp_path_factory.mktemp("server_world"), units=2_000, seed=9)


def test_race_registry_and_gate_through_a_tracking_server(
    race: Race, tracking_server: str, tmp_path: Path
):
    settings = Settings(data_dir=tmp_path / "data", tracking_uri=tracking_server)
    assert settings.tracking == settings.registry == tracking_server
    run_ids = [log(race, settings, experiment="server-test") for _ in range(2)]

    tracking = client(settings)
    run = tracking.get_run(run_ids[0])
    assert "profit_at_k" in run.data.metrics and "profit_at_k_low" in run.data.metrics
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # stored by the server
    served = {a.path for a in tracking.list_artifacts(run_ids[0])}
    assert {"race", "bundle", "dataset", "card"} <= served
    # nothing but the audit log lands in the local data directory
    assert not (tmp_path / "data" / "mlflow.db").exists()

    registry = ModelRegistry(settings)
    refs = [registry.register(run_id, "server-model") for run_id in run_ids]
    assert [ref.version for ref in refs] == [1, 2]
    for ref in refs:
        registry.approve("server-model", ref.version, by="ana", note="card reviewed")
    registry.promote("server-model", 1, by="bob")
    registry.promote("server-model", 2, by="bob")
    champion = registry.champion("server-model")
    assert champion is not None and champion.version == 2
    # the champion's bundle comes back from the server and scores like the logged one
    bundle = load_bundle(champion.bundle_dir)
    assert bundle.features == race.bundle.features

    restored = registry.rollback("server-model", by="bob", note="drill")
    assert restored.version == 1
    assert tracking.get_model_version_by_alias("server-model", "champion").version == "1"
    assert [e.action for e in registry.history("server-model")] == [
        "register", "register", "approve", "approve", "promote", "promote", "rollback",
    ]  # fmt: skip
