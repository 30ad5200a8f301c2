"""`liftwise pipeline`: run the daily pipeline's steps, or show where the Airflow DAGs are."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from liftwise.cli.app import app, comma_list, console, stdout

pipeline_app = typer.Typer(
    help="The daily pipeline: generate -> validate -> features -> train -> evaluate -> register.",
    no_args_is_help=True,
)
app.add_typer(pipeline_app, name="pipeline")


@pipeline_app.command("run")
def run_command(
    data_dir: Annotated[Path, typer.Option(help="Root of every embedded store.")] = Path("data"),
    world: Annotated[str, typer.Option(help="World to generate: fintech or learning.")] = "fintech",
    units: Annotated[int, typer.Option(help="Units in the day's world.")] = 20_000,
    days: Annotated[int, typer.Option(help="Days of history before the campaign.")] = 60,
    seed: Annotated[int, typer.Option(help="Base seed; each run date derives its own.")] = 7,
    run_date: Annotated[
        str | None, typer.Option(help="The day this run stands for (YYYY-MM-DD); default today.")
    ] = None,
    learners: Annotated[
        str | None, typer.Option(help="Comma-separated learners for the race.")
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the race's CIs.")] = 100,
    model_name: Annotated[
        str | None, typer.Option(help="Registered model name; default liftwise-<world>.")
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment.")] = "liftwise-daily",
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI; default SQLite under --data-dir.")
    ] = None,
    online_store: Annotated[
        str | None, typer.Option(help="Feast online store: sqlite (default) or redis.")
    ] = None,
    steps: Annotated[
        list[str] | None,
        typer.Option(
            help="Steps to run, comma-separated or repeated (default all, in order).",
            callback=comma_list,
        ),
    ] = None,
) -> None:
    """Run the pipeline's steps in order; every step also runs alone (see --steps)."""
    from liftwise.io import check_output
    from liftwise.pipeline.daily import STEPS, PipelineConfig, run_pipeline

    check_output(data_dir, kind="directory", option="--data-dir")
    config = PipelineConfig.from_json(
        {
            "data_dir": str(data_dir),
            "world": world,
            "units": units,
            "days": days,
            "seed": seed,
            "run_date": run_date or dt.datetime.now(dt.UTC).date().isoformat(),
            "learners": learners,
            "n_boot": n_boot,
            "model_name": model_name,
            "experiment": experiment,
            "tracking_uri": tracking_uri,
            "online_store": online_store,
        }
    )
    chosen = tuple(steps) if steps else STEPS
    with console.status("pipeline") as status:
        outputs = run_pipeline(config, steps=chosen, say=status.update)
    for step, output in outputs.items():
        stdout.print(f"[bold]{step}[/]: {json.dumps(output, default=str)}")
    if "register" in outputs:
        reg = outputs["register"]
        stdout.print(
            f"registered {reg['model']} version {reg['version']} as challenger; promote it with "
            f"`liftwise model approve {reg['model']} {reg['version']} --by NAME --note TEXT` and "
            f"`liftwise model promote {reg['model']} {reg['version']}`"
        )


@pipeline_app.command("dags-folder")
def dags_folder_command() -> None:
    """Print the folder of the Airflow DAGs (set AIRFLOW__CORE__DAGS_FOLDER to it)."""
    from liftwise.pipeline.dag_support import DAGS_FOLDER

    stdout.print(str(DAGS_FOLDER))
