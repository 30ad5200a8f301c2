"""feature_materialise: rebuild the feature repo of the day's world and materialise its
online store up to the decision time (the world must exist: daily_synthetic makes it)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from liftwise.pipeline import daily
from liftwise.pipeline.dag_support import config_from_context, default_params, task_logger


@dag(
    dag_id="feature_materialise",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=default_params(),
    tags=["liftwise"],
    doc_md=__doc__,
)
def feature_materialise() -> None:
    @task
    def build_features(**context) -> dict:
        return daily.build_features(config_from_context(context), task_logger())

    @task
    def materialise(**context) -> dict:
        return daily.materialise(config_from_context(context), task_logger())

    build_features() >> materialise()


feature_materialise()
