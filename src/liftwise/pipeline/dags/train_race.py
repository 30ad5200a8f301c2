"""train_race: race the learners on the feature store's point-in-time training frame of
the day's world, evaluate the winner with ground truth and register it as challenger."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from liftwise.pipeline import daily
from liftwise.pipeline.dag_support import config_from_context, default_params, task_logger


@dag(
    dag_id="train_race",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=default_params(),
    tags=["liftwise"],
    doc_md=__doc__,
)
def train_race() -> None:
    @task
    def train(**context) -> dict:
        return daily.train(config_from_context(context), task_logger())

    @task
    def evaluate(**context) -> dict:
        return daily.evaluate(config_from_context(context), task_logger())

    @task
    def register(**context) -> dict:
        return daily.register(config_from_context(context), task_logger())

    train() >> evaluate() >> register()


train_race()
