"""daily_synthetic: generate the day's world, validate it, build and materialise its
features, race the learners, evaluate with ground truth and register the winner as
challenger. Each task calls one function of liftwise.pipeline.daily."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from liftwise.pipeline import daily
from liftwise.pipeline.dag_support import config_from_context, default_params, task_logger


@dag(
    dag_id="daily_synthetic",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=default_params(),
    tags=["liftwise"],
    doc_md=__doc__,
)
def daily_synthetic() -> None:
    @task
    def generate(**context) -> str:
        return daily.generate(config_from_context(context), task_logger())

    @task
    def validate(**context) -> dict:
        return daily.validate(config_from_context(context), task_logger())

    @task
    def build_features(**context) -> dict:
        return daily.build_features(config_from_context(context), task_logger())

    @task
    def materialise(**context) -> dict:
        return daily.materialise(config_from_context(context), task_logger())

    @task
    def train_race(**context) -> dict:
        return daily.train(config_from_context(context), task_logger())

    @task
    def evaluate(**context) -> dict:
        return daily.evaluate(config_from_context(context), task_logger())

    @task
    def register(**context) -> dict:
        return daily.register(config_from_context(context), task_logger())

    (
        generate()
        >> validate()
        >> build_features()
        >> materialise()
        >> train_race()
        >> evaluate()
        >> register()
    )


daily_synthetic()
