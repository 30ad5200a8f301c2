"""The Airflow 3 DAGs, run by Airflow's own test runner (`airflow dags test`) on its
embedded SQLite metadata database, three rounds in a row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from liftwise.pipeline.dag_support import DAG_IDS, DAGS_FOLDER

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
RUN_DATE = "2026-11-20"
CONF = {"units": 2_000, "days": 35, "learners": "s_lgbm", "n_boot": 20}


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A private AIRFLOW_HOME with a migrated metadata database and liftwise's DAGs."""
    home = tmp_path_factory.mktemp("airflow_home")
    data = tmp_path_factory.mktemp("pipeline_data")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "LIFTWISE_DATA_DIR": str(data),
    }
    migrate = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return env


def test_the_dag_folder_parses_into_the_three_dags(airflow_env: dict[str, str]) -> None:
    script = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag({str(DAGS_FOLDER)!r}); "
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()}, "
        "'dags': {d: sorted(t.task_id for t in bag.dags[d].tasks) for d in bag.dags}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=airflow_env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert set(parsed["dags"]) == set(DAG_IDS)
    assert parsed["dags"]["daily_synthetic"] == sorted(
        [
            "generate",
            "validate",
            "build_features",
            "materialise",
            "train_race",
            "evaluate",
            "register",
        ]
    )


def test_every_dag_runs_green_three_times_in_a_row(airflow_env: dict[str, str]) -> None:
    from mlflow import MlflowClient

    from liftwise.settings import Settings

    for round_ in range(3):
        for dag_id in DAG_IDS:
            done = subprocess.run(
                [AIRFLOW, "dags", "test", dag_id, RUN_DATE, "--conf", json.dumps(CONF)],
                env=airflow_env,
                capture_output=True,
                text=True,
                timeout=1200,
            )
            output = (done.stdout + done.stderr)[-4000:]
            assert done.returncode == 0, f"round {round_ + 1}, {dag_id}:\n{output}"
    # each round registered two challengers (daily_synthetic and train_race); none promoted
    settings = Settings.load(data_dir=Path(airflow_env["LIFTWISE_DATA_DIR"]))
    client = MlflowClient(tracking_uri=settings.tracking, registry_uri=settings.registry)
    versions = client.search_model_versions("name = 'liftwise-fintech'")
    assert len(versions) == 6
    assert int(client.get_model_version_by_alias("liftwise-fintech", "challenger").version) == 6
