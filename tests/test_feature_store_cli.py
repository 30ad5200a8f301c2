"""`liftwise features`: build, materialize, training-frame and online, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liftwise.cli import run
from liftwise.features.offline import unit_features
from liftwise.features.snapshots import decision_time
from liftwise.simulate import WorldConfig, load_world, simulate


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fs_cli") / "world"
    simulate(WorldConfig(world="learning", units=800, days=30, seed=9), out)
    return out


@pytest.mark.parametrize("command", ["build", "materialize", "training-frame", "online"])
def test_every_features_command_has_help(command: str, capsys: pytest.CaptureFixture[str]):
    assert run(["features", command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"Usage: liftwise features {command}" in out and "--help" in out


def test_build_materialize_training_frame_online(
    world_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    data = tmp_path / "data"
    assert (
        run(["features", "build", str(world_dir), "--data-dir", str(data), "--every-days", "5"])
        == 0
    )
    out = capsys.readouterr().out
    assert "learner_engagement" in out and "learner_profile" in out
    assert (data / "feature_repo" / "learning" / "feature_store.yaml").is_file()

    world = load_world(world_dir)
    when = decision_time(world)
    entities = pd.DataFrame(
        {"unit_id": [3, 1, 3], "event_timestamp": [when] * 3, "tag": list("abc")}
    )
    entities.to_parquet(tmp_path / "entities.parquet")
    argv = ["features", "training-frame", str(tmp_path / "entities.parquet"), "--out"]
    assert run([*argv, str(tmp_path / "frame.parquet"), "--data-dir", str(data)]) == 0
    frame = pd.read_parquet(tmp_path / "frame.parquet")
    assert list(frame["tag"]) == ["a", "b", "c"]
    offline = unit_features(world, when)
    np.testing.assert_allclose(frame[offline.columns].to_numpy(), offline.loc[[3, 1, 3]].to_numpy())

    assert run(["features", "materialize", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    features = "sessions,days_since_last_session"
    assert (
        run(["features", "online", "1", "424242", "--data-dir", str(data), "--features", features])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [row["unit_id"] for row in rows] == [1, 424242]
    assert rows[0]["sessions"] == offline.loc[1, "sessions"]
    assert rows[1]["sessions"] is None and rows[1]["days_since_last_session"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["features", "materialize", "--data-dir", "{tmp}"], "no feature repo here"),
        (["features", "build", "{tmp}", "--data-dir", "{tmp}/d"], "manifest"),
        (
            ["features", "build", "{world}", "--data-dir", "{tmp}", "--online-store", "memcached"],
            "option --online-store: choose sqlite or redis",
        ),
        (
            ["features", "build", "{world}", "--data-dir", "{tmp}", "--every-days", "0"],
            "option --every-days: must be at least 1 day",
        ),
        (
            ["features", "training-frame", "x.parquet", "--out", "f.txt", "--data-dir", "{tmp}"],
            "option --out",
        ),
        (
            ["features", "online", "1", "--data-dir", "{tmp}", "--world", "fintech"],
            "not a liftwise feature repo",
        ),
    ],
)
def test_errors_are_one_line(
    argv: list[str],
    message: str,
    world_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    filled = [a.replace("{tmp}", str(tmp_path)).replace("{world}", str(world_dir)) for a in argv]
    assert run(filled) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
