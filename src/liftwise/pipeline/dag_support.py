"""What the Airflow DAGs share: their folder, their parameters, and turning a task's
context into a :class:`PipelineConfig`. No Airflow import here, so the package works
without Airflow installed; the DAG files themselves are thin shells."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from liftwise.pipeline.daily import DEFAULT_LEARNERS, PipelineConfig, Say
from liftwise.settings import Settings

DAGS_FOLDER = Path(__file__).with_name("dags")
DAG_IDS = ("daily_synthetic", "feature_materialise", "train_race")


def default_params() -> dict[str, Any]:
    """Run parameters with their defaults (a trigger's conf overrides any of them)."""
    return {
        "data_dir": str(Settings.load().data_dir.resolve()),
        "world": "fintech",
        "units": 20_000,
        "days": 60,
        "seed": 7,
        "learners": ",".join(DEFAULT_LEARNERS),
        "n_boot": 100,
        "model_name": None,
        "experiment": "liftwise-daily",
        "tracking_uri": None,
        "online_store": None,
        "run_date": None,
    }


def config_from_context(context: Mapping[str, Any]) -> PipelineConfig:
    """The run's config: params (defaults + trigger conf), run date = the logical date (or
    the time the run was due, for manual runs that have none)."""
    params = dict(context.get("params") or {})
    if not params.get("run_date"):
        when = context.get("logical_date") or context["dag_run"].run_after
        params["run_date"] = when.astimezone(dt.UTC).date().isoformat()
    return PipelineConfig.from_json(params)


def task_logger() -> Say:
    """Progress messages into the task's log."""
    return logging.getLogger("airflow.task").info
