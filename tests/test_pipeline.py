"""The daily pipeline: config parsing, every step end to end on a small world, reruns."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from liftwise.cli import run
from liftwise.errors import UserError
from liftwise.io import sha256_file
from liftwise.pipeline.daily import STEPS, PipelineConfig, run_pipeline

SMALL = {
    "units": 2_000,
    "days": 35,
    "learners": "s_lgbm,t_lgbm",
    "n_boot": 20,
    "run_date": "2026-11-20",
}


def test_config_parses_airflow_params_and_names_bad_fields(tmp_path: Path) -> None:
    config = PipelineConfig.from_json({"data_dir": str(tmp_path), **SMALL, "model_name": None})
    assert config.learners == ("s_lgbm", "t_lgbm")
    assert config.name == "liftwise-fintech"
    assert config.world_dir == tmp_path / "worlds" / "fintech-2026-11-20"
    with pytest.raises(UserError, match="units"):
        PipelineConfig.from_json({"units": 10})
    with pytest.raises(UserError, match="world"):
        PipelineConfig.from_json('{"world": "casino"}')
    with pytest.raises(UserError, match="JSON"):
        PipelineConfig.from_json("{not json")


def test_each_run_date_has_its_own_reproducible_seed() -> None:
    day = PipelineConfig(run_date=dt.date(2026, 11, 20))
    assert day.world_seed == PipelineConfig(run_date=dt.date(2026, 11, 20)).world_seed
    assert day.world_seed != PipelineConfig(run_date=dt.date(2026, 11, 21)).world_seed
    assert day.world_seed != PipelineConfig(run_date=dt.date(2026, 11, 20), seed=8).world_seed


def test_a_step_without_its_inputs_says_which_step_to_run_first(tmp_path: Path) -> None:
    config = PipelineConfig.from_json({"data_dir": str(tmp_path), **SMALL})
    with pytest.raises(UserError, match="generate step first"):
        run_pipeline(config, steps=("validate", "features"))
    with pytest.raises(UserError, match="unknown step 'deploy'"):
        run_pipeline(config, steps=("deploy",))


def test_the_whole_pipeline_tracks_registers_and_reruns(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    config = PipelineConfig.from_json({"data_dir": str(tmp_path), **SMALL})
    outputs = run_pipeline(config)
    assert tuple(outputs) == STEPS
    manifest_hash = sha256_file(config.world_dir / "manifest.json")

    client = MlflowClient(tracking_uri=config.settings.tracking)
    run = client.get_run(outputs["train"]["run_id"])
    # the race, its CIs and the ground-truth evaluation all land on the same run
    assert "profit_at_k" in " ".join(run.data.metrics)
    assert run.data.metrics["true_profit_liftwise"] == pytest.approx(
        outputs["evaluate"]["true_profit_liftwise"]
    )
    # the learned policy beats a random one at the same budget, by the world's ground truth
    evaluation = outputs["evaluate"]
    assert evaluation["true_profit_liftwise"] > evaluation["true_profit_random_same_budget"]
    assert evaluation["true_profit_liftwise"] <= evaluation["true_profit_oracle_same_budget"]
    registered = outputs["register"]
    assert registered["version"] == 1
    version = client.get_model_version_by_alias(config.name, "challenger")
    assert int(version.version) == 1
    with pytest.raises(Exception, match="champion"):
        client.get_model_version_by_alias(config.name, "champion")  # only a human promotes

    # a rerun of the same day rebuilds the same world and registers the next version
    again = run_pipeline(config)
    assert sha256_file(config.world_dir / "manifest.json") == manifest_hash
    assert again["register"]["version"] == 2
    saved = json.loads((config.run_dir / "pipeline.json").read_text())
    assert saved["outputs"]["register"]["version"] == 2


def test_cli_runs_named_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        [
            "pipeline",
            "run",
            "--data-dir",
            str(tmp_path),
            "--units",
            "1000",
            "--days",
            "30",
            "--run-date",
            "2026-11-21",
            "--steps",
            "generate,validate",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "generate" in out and "validate" in out
    assert (tmp_path / "worlds" / "fintech-2026-11-21" / "manifest.json").is_file()
    assert run(["pipeline", "run", "--data-dir", str(tmp_path), "--units", "5"]) == 2
