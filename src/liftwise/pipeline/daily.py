"""The daily pipeline as plain functions: generate -> validate -> build features and
materialise -> train race -> evaluate -> register.

Every step takes the same JSON-friendly :class:`PipelineConfig` and finds its inputs on
disk from it, so a step can run alone (an Airflow task, a retry, a rerun of one day) and
reruns replace their outputs atomically. ``liftwise pipeline run`` and the Airflow DAGs
(``liftwise/pipeline/dags``) call these same functions and hold no logic of their own.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from liftwise.errors import UserError
from liftwise.io import write_json
from liftwise.settings import Settings

Say = Callable[[str], None]
STEPS = ("generate", "validate", "features", "train", "evaluate", "register")
DEFAULT_LEARNERS = ("s_lgbm", "t_lgbm", "x_lgbm", "dr_lgbm", "uplift_forest")


def _quiet(_message: str) -> None:
    return None


class PipelineConfig(BaseModel):
    """One day's run: which world, how big, which learners, where state lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(Path("data"), description="Root of every embedded store.")
    world: Literal["fintech", "learning"] = "fintech"
    units: int = Field(20_000, ge=500, description="Units in the day's synthetic world.")
    days: int = Field(60, ge=28, description="Days of history before the campaign.")
    seed: int = Field(7, ge=0, description="Base seed; each run date derives its own.")
    run_date: dt.date = Field(
        default_factory=lambda: dt.datetime.now(dt.UTC).date(),
        description="The day this run stands for (Airflow: the logical date).",
    )
    learners: tuple[str, ...] = DEFAULT_LEARNERS
    n_boot: int = Field(100, ge=10, description="Bootstrap resamples for the race's CIs.")
    every_days: int = Field(7, ge=1, description="Days between feature snapshots.")
    model_name: str | None = Field(None, description="Registered model; default liftwise-<world>.")
    experiment: str = Field("liftwise-daily", description="MLflow experiment of the runs.")
    tracking_uri: str | None = None
    online_store: Literal["sqlite", "redis"] | None = None
    budget_share: float = Field(
        0.3, gt=0, le=1, description="Evaluation budget: this share of contacting every unit."
    )

    @field_validator("learners", mode="before")
    @classmethod
    def _split_learners(cls, value: Any) -> Any:
        return tuple(v.strip() for v in value.split(",")) if isinstance(value, str) else value

    @property
    def name(self) -> str:
        return self.model_name or f"liftwise-{self.world}"

    @property
    def settings(self) -> Settings:
        return Settings.load(
            data_dir=self.data_dir, tracking_uri=self.tracking_uri, online_store=self.online_store
        )

    @property
    def world_seed(self) -> int:
        """A seed per run date: reruns of a day are identical, days differ."""
        return int(
            np.random.SeedSequence([self.seed, self.run_date.toordinal()]).generate_state(1)[0]
        )

    @property
    def world_dir(self) -> Path:
        return self.data_dir / "worlds" / f"{self.world}-{self.run_date.isoformat()}"

    @property
    def run_dir(self) -> Path:
        """Local outputs of the day's race and evaluation (also logged to MLflow)."""
        return self.data_dir / "runs" / f"{self.world}-{self.run_date.isoformat()}"

    @classmethod
    def from_json(cls, payload: dict[str, Any] | str) -> PipelineConfig:
        """Parse a config from Airflow params / a JSON string; errors name the field."""
        try:
            data = json.loads(payload) if isinstance(payload, str) else dict(payload)
        except json.JSONDecodeError as error:
            raise UserError(f"not valid JSON: {error}", parameter="config") from None
        try:
            return cls.model_validate({k: v for k, v in data.items() if v is not None})
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise UserError(f"{first['msg']}", parameter=field) from None


def _world(config: PipelineConfig):
    from liftwise.simulate import load_world

    if not (config.world_dir / "manifest.json").is_file():
        raise UserError(
            "no world for this run date: run the generate step first", file=config.world_dir
        )
    return load_world(config.world_dir)


def _decision_time(world) -> dt.datetime:
    return world.campaign.decision_time


def _state(config: PipelineConfig) -> dict[str, Any]:
    path = config.run_dir / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _remember(config: PipelineConfig, **values: Any) -> dict[str, Any]:
    """Each step's outputs, kept beside the run so later steps (other processes) find them."""
    state = {**_state(config), **values}
    config.run_dir.mkdir(parents=True, exist_ok=True)
    write_json(config.run_dir / "state.json", state)
    return state


def generate(config: PipelineConfig, say: Say = _quiet) -> str:
    """Simulate the day's world (seeded by base seed and run date) into its own directory."""
    from liftwise.simulate import WorldConfig, simulate

    say(f"generating the {config.world} world for {config.run_date} ({config.units:,} units)")
    simulate(
        WorldConfig(
            world=config.world, units=config.units, days=config.days, seed=config.world_seed
        ),
        config.world_dir,
    )
    _remember(config, world_dir=str(config.world_dir))
    return str(config.world_dir)


def validate(config: PipelineConfig, say: Say = _quiet) -> dict[str, Any]:
    """Check the world against every contract; a violation stops the pipeline here."""
    from liftwise.contracts.validate import validate_world

    world = _world(config)
    say("validating the world against its contracts")
    report = validate_world(world.path)
    if not report.ok:
        first = report.violations[0]
        raise UserError(
            f"{report.total} contract violations, first: {first.one_line()}",
            file=config.world_dir,
        )
    return {"ok": True, "rows_checked": report.rows_checked}


def build_features(config: PipelineConfig, say: Say = _quiet) -> dict[str, Any]:
    """Feature snapshots from the raw tables -> the world's Feast repo (offline store)."""
    from liftwise.features.store import build_feature_repo

    world = _world(config)
    say("building the feature repo (snapshots -> offline store, feast apply)")
    repo = build_feature_repo(world, config.settings, every_days=config.every_days)
    _remember(config, feature_repo=str(repo.path), feature_versions=repo.versions())
    return {"feature_repo": str(repo.path), "versions": repo.versions()}


def materialise(config: PipelineConfig, say: Say = _quiet) -> dict[str, Any]:
    """Load the online store from the offline store up to the campaign's decision time."""
    from liftwise.features.store import FeatureRepo

    world = _world(config)
    repo = FeatureRepo.open(config.settings.feature_repo / world.name)
    end = _decision_time(world)
    say(f"materialising the online store of {repo.path} up to {end}")
    repo.materialize(end)
    return {"feature_repo": str(repo.path), "end": end.isoformat()}


def features(config: PipelineConfig, say: Say = _quiet) -> dict[str, Any]:
    """The pipeline's features step: build the repo, then materialise."""
    return {**build_features(config, say), **materialise(config, say)}


def _training_frame(config: PipelineConfig, world):
    """The past campaign's units with features from the store, as of the decision time."""
    from liftwise.features.offline import frame_from_features
    from liftwise.features.store import FeatureRepo

    repo = FeatureRepo.open(config.settings.feature_repo / world.name)
    units = world.read("outcomes", columns=["unit_id"])
    entities = pd.DataFrame(
        {
            "unit_id": units["unit_id"],
            "event_timestamp": pd.Timestamp(_decision_time(world), tz="UTC"),
        }
    )
    features = repo.training_frame(entities).set_index("unit_id")[list(repo.feature_names)]
    return frame_from_features(world, features), repo


def train(config: PipelineConfig, say: Say = _quiet) -> dict[str, Any]:
    """Race the learners on the store's point-in-time training frame; log the run to MLflow."""
    from liftwise.pipeline.quickstart import race
    from liftwise.registry import describe_dataset, log_race, world_segments

    world = _world(config)
    say("building the point-in-time training frame from the feature store")
    frame, repo = _training_frame(config, world)
    frame, result, bundle = race(
        world,
        config.run_dir / "race",
        config.learners,
        config.world_seed,
        say,
        frame=frame,
        n_boot=config.n_boot,
        title=f"liftwise {config.world} {config.run_date}: model race",
    )
    say("logging the race to MLflow")
    run_id = log_race(
        result,
        bundle,
        frame,
        settings=config.settings,
        experiment=config.experiment,
        dataset={**describe_dataset(world.path, frame), "run_date": config.run_date.isoformat()},
        feature_versions=repo.versions(),
        segments=world_segments(world, frame),
        params={"run_date": config.run_date.isoformat(), "pipeline_seed": config.seed},
    )
    row = result.winner_row
    summary = {
        "run_id": run_id,
        "winner": result.winner,
        "profit_at_k": float(row["profit_at_k"]),
        "profit_at_k_ci": [float(row["profit_at_k_low"]), float(row["profit_at_k_high"])],
    }
    _remember(config, **summary)
    return summary


def evaluate(config: PipelineConfig, say: Say = _quiet) -> dict[str, Any]:
    """Value the winner's budgeted decisions with the world's ground truth, next to every
    baseline, and log the figures to the race's run."""
    from liftwise.decide.batch import decide_batch
    from liftwise.decide.config import DecisionConfig
    from liftwise.evaluate.bundle import load_bundle
    from liftwise.pipeline.quickstart import value_policies

    state = _state(config)
    if "run_id" not in state:
        raise UserError(
            "no trained race for this run date: run the train step first", file=config.run_dir
        )
    world = _world(config)
    bundle = load_bundle(config.run_dir / "race" / "model")
    frame, _repo = _training_frame(config, world)
    features = frame.data.set_index("unit_id")
    arms = world.read("arms").set_index("arm")
    treated_cost = float(arms.loc[list(bundle.treatments), "contact_cost"].mean())
    budget = config.budget_share * treated_cost * len(features)
    say(f"deciding under a budget of {budget:,.0f} and valuing every policy with ground truth")
    decisions = decide_batch(
        bundle,
        frame.X(),
        features.index.to_numpy(),
        features,
        DecisionConfig(budget=budget),
        now=_decision_time(world),
    )
    policies = {
        row.name: row.incremental_profit
        for row in value_policies(world, decisions, budget, config.world_seed)
    }
    metrics = {
        "true_profit_liftwise": policies["liftwise"],
        "true_profit_random_same_budget": policies["random, same budget"],
        "true_profit_current_policy": policies["current policy"],
        "true_profit_oracle_same_budget": policies["oracle, same budget"],
        "evaluation_budget": budget,
        "treated": float(decisions.summary().treated),
    }
    write_json(config.run_dir / "evaluation.json", {"budget": budget, "policies": policies})
    _log_to_run(config.settings, state["run_id"], metrics, config.run_dir / "evaluation.json")
    _remember(config, evaluation=metrics)
    return metrics


def _log_to_run(settings: Settings, run_id: str, metrics: dict[str, float], artefact: Path) -> None:
    """Add the ground-truth evaluation to the race's MLflow run (which has ended)."""
    from liftwise.registry.store import client

    mlflow_client = client(settings)
    for key, value in metrics.items():
        mlflow_client.log_metric(run_id, key, value)
    mlflow_client.log_artifact(run_id, str(artefact), artifact_path="evaluation")


def register(config: PipelineConfig, say: Say = _quiet) -> dict[str, Any]:
    """Register the race winner as a new version with alias ``challenger`` (never champion:
    promotion waits for a human approval)."""
    from liftwise.registry import ModelRegistry

    state = _state(config)
    if "run_id" not in state:
        raise UserError(
            "no trained race for this run date: run the train step first", file=config.run_dir
        )
    say(f"registering the winner as a new version of {config.name}")
    ref = ModelRegistry(config.settings).register(state["run_id"], config.name)
    _remember(config, model=config.name, version=ref.version)
    return {"model": ref.name, "version": ref.version, "model_uri": ref.model_uri}


STEP_FUNCTIONS: dict[str, Callable[[PipelineConfig, Say], Any]] = {
    "generate": generate,
    "validate": validate,
    "features": features,
    "train": train,
    "evaluate": evaluate,
    "register": register,
}


def run_pipeline(
    config: PipelineConfig, *, steps: tuple[str, ...] = STEPS, say: Say = _quiet
) -> dict[str, Any]:
    """Run ``steps`` in order (default: all); returns each step's output by name."""
    unknown = [s for s in steps if s not in STEP_FUNCTIONS]
    if unknown:
        raise UserError(
            f"unknown step {unknown[0]!r} (steps: {', '.join(STEPS)})", parameter="steps"
        )
    outputs = {}
    for step in steps:
        outputs[step] = STEP_FUNCTIONS[step](config, say)
    write_json(
        config.run_dir / "pipeline.json",
        {"config": config.model_dump(mode="json"), "outputs": outputs},
    )
    return outputs
