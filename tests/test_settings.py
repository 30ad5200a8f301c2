from pathlib import Path

import pytest

from liftwise.errors import UserError
from liftwise.settings import Settings


def test_defaults_live_under_the_data_directory(tmp_path: Path, monkeypatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv("LIFTWISE_" + name.upper(), raising=False)
    settings = Settings.load(data_dir=tmp_path)
    assert settings.tracking == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert settings.registry == settings.tracking
    assert settings.exposures.startswith("sqlite:///") and str(tmp_path) in settings.exposures
    assert settings.feature_repo == tmp_path / "feature_repo"


def test_environment_then_overrides(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIFTWISE_ONLINE_STORE", "redis")
    monkeypatch.setenv("LIFTWISE_TRACKING_URI", "http://127.0.0.1:5000")
    settings = Settings.load(data_dir=tmp_path, tracking_uri=None)
    assert settings.online_store == "redis"
    assert settings.tracking == "http://127.0.0.1:5000"
    assert Settings.load(online_store="sqlite").online_store == "sqlite"


def test_a_bad_value_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("LIFTWISE_BUDGET_STORE", "memcached")
    with pytest.raises(UserError, match="LIFTWISE_BUDGET_STORE"):
        Settings.load()
