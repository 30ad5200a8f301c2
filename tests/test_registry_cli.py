"""The registry from the terminal: `liftwise train --track --register`, then `liftwise model`
approve / promote / rollback / champion / list / history / card, through the in-process CLI."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from liftwise.cli import run
from liftwise.registry import ModelRegistry
from liftwise.registry.store import client
from liftwise.settings import Settings
from liftwise.simulate import WorldConfig, simulate


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("registry_cli") / "world"
    simulate(WorldConfig(world="fintech", units=2_500, days=30, seed=8), out)
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry_cli_data") / "data"


def train(world: Path, data_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--world", str(world), "--out", str(out), "--learners", "s_lgbm,t_lgbm",
        "--n-boot", "20", "--seed", "2", "--data-dir", str(data_dir), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def registered(world: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Train twice with tracking; register both winners as churn v1 and v2; the run ids."""
    out = tmp_path_factory.mktemp("registry_cli_runs")
    for index in (1, 2):
        argv = train(world, data_dir, out / f"race{index}", "--experiment", "cli-test",
                     "--register", "churn")  # fmt: skip
        assert run(argv) == 0
    return "churn"


def model(data_dir: Path, *argv: str) -> list[str]:
    return ["model", *argv, "--data-dir", str(data_dir)]


def test_train_tracks_and_registers_the_winner(registered, data_dir, capsys):
    settings = Settings(data_dir=data_dir)
    tracking = client(settings)
    experiment = tracking.get_experiment_by_name("cli-test")
    runs = tracking.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    assert all("profit_at_k_low" in r.data.metrics for r in runs)
    assert all(r.data.params["dataset.kind"] == "world" for r in runs)
    infos = ModelRegistry(settings).describe_versions("churn")
    assert [(i.version, i.aliases) for i in infos] == [(1, ()), (2, ("challenger",))]
    assert {i.run_id for i in infos} == {r.info.run_id for r in runs}
    assert run(model(data_dir, "list", "churn")) == 0
    listed = capsys.readouterr().out
    assert "challenger" in listed and "2 version(s)" in listed


def test_approval_gate_promotion_rollback_and_history(registered, data_dir, capsys):
    assert run(model(data_dir, "promote", "churn", "1")) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "not approved" in error and "liftwise model approve" in error
    for version in ("1", "2"):
        assert run(model(data_dir, "approve", "churn", version, "--by", "ana", "--note",
                         f"card v{version} reviewed")) == 0  # fmt: skip
    assert run(model(data_dir, "promote", "churn", "1", "--by", "bob")) == 0
    assert run(model(data_dir, "promote", "churn", "2", "--by", "bob")) == 0
    out = capsys.readouterr().out
    assert "champion (was v1): churn v2" in out
    middle = dt.datetime.now(dt.UTC).isoformat()
    assert run(model(data_dir, "rollback", "churn", "--by", "ops", "--note", "bad week")) == 0
    assert "champion restored: churn v1" in capsys.readouterr().out
    assert run(model(data_dir, "champion", "churn")) == 0
    out = capsys.readouterr().out
    assert "champion: churn v1" in out and "models:/churn/1" in out
    bundle = Path(re.search(r"bundle: (\S+)", out).group(1))
    assert (bundle / "model.joblib").is_file()
    assert run(model(data_dir, "champion", "churn", "--at", middle)) == 0
    assert f"churn at {middle}: v2" in capsys.readouterr().out
    assert run(model(data_dir, "champion", "churn", "--at", "2000-01-01")) == 0
    assert "no champion" in capsys.readouterr().out
    assert run(model(data_dir, "history", "churn")) == 0
    history = capsys.readouterr().out
    for word in ("register", "approve", "promote", "rollback", "ana", "bob", "ops", "bad week"):
        assert word in history
    assert run(model(data_dir, "rollback", "churn")) == 2
    assert "no previous champion" in capsys.readouterr().err


def test_card_prints_the_markdown_and_names_the_files(registered, data_dir, capsys):
    assert run(model(data_dir, "card", "churn", "2")) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# Model card: churn v2")
    assert "Profit@K" in captured.out and "segment=" in captured.out
    assert "model_card.html" in captured.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["promote", "nosuch", "1"], "unknown model 'nosuch'"),
        (["approve", "churn", "9", "--by", "ana", "--note", "x"], "has no version 9"),
        (["card", "churn", "0"], "versions start at 1"),
        (["champion", "churn", "--at", "yesterday"], "not an ISO time"),
        (["register", "deadbeef", "churn"], "no run deadbeef"),
        (["approve", "churn", "1", "--by", "ana"], "Missing option '--note'"),
    ],
)
def test_model_commands_fail_in_one_line(registered, data_dir, capsys, argv, message):
    assert run(model(data_dir, *argv)) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and error.count("\n") == 0


def test_train_refuses_register_without_tracking(world, data_dir, tmp_path, capsys):
    argv = train(world, data_dir, tmp_path / "o", "--no-track", "--register", "x")
    assert run(argv) == 2
    assert "--register" in capsys.readouterr().err


def test_every_model_command_has_help(capsys):
    for command in ("register", "approve", "promote", "rollback", "list", "history", "champion",
                    "card"):  # fmt: skip
        assert run(["model", command, "--help"]) == 0
        assert "--data-dir" in capsys.readouterr().out
