"""One typed configuration for where liftwise keeps its state, with serverless defaults.

Everything lives under one data directory (SQLite, DuckDB, files) unless a server is
switched on here: an MLflow tracking server, Redis for the online store and budgets,
PostgreSQL for the exposure log. Values come from keyword arguments, then ``LIFTWISE_*``
environment variables, then the defaults below, so configuration never needs code edits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from liftwise.errors import UserError
from liftwise.io import check_output

ENV_PREFIX = "LIFTWISE_"


class Settings(BaseModel):
    """Where each stage keeps its state; ``None`` means the embedded default under data_dir."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(Path("data"), description="Root of every embedded store.")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default sqlite:///<data_dir>/mlflow.db."
    )
    registry_uri: str | None = Field(
        None, description="MLflow registry URI; default: the tracking URI."
    )
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="Feast online store: SQLite file under data_dir, or Redis."
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis, when switched on.")
    exposure_log: str | None = Field(
        None,
        description="Exposure log: default sqlite:///<data_dir>/exposures.db, or a postgresql:// DSN.",
    )
    budget_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="Atomic budget reservations: SQLite under data_dir, or Redis."
    )
    rollout_store: str | None = Field(
        None,
        description="Rollout state and history: default sqlite:///<data_dir>/rollouts.db, "
        "or a postgresql:// DSN.",
    )

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from ``overrides`` (non-None values), then LIFTWISE_* variables."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            env = os.environ.get(ENV_PREFIX + name.upper())
            if env:
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            settings = cls(**values)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise UserError(
                f"invalid setting {field!r} ({ENV_PREFIX}{field.upper()}): {first['msg']}",
                parameter=field,
            ) from None
        # every embedded store lives under data_dir: a file there is one line, not a traceback
        check_output(settings.data_dir, kind="directory", option="--data-dir")
        return settings

    @property
    def tracking(self) -> str:
        return self.tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def registry(self) -> str:
        return self.registry_uri or self.tracking

    @property
    def exposures(self) -> str:
        return self.exposure_log or f"sqlite:///{(self.data_dir / 'exposures.db').resolve()}"

    @property
    def rollouts(self) -> str:
        return self.rollout_store or f"sqlite:///{(self.data_dir / 'rollouts.db').resolve()}"

    @property
    def feature_repo(self) -> Path:
        """Feast repo folders live here, one per world: <data_dir>/feature_repo/<world>."""
        return self.data_dir / "feature_repo"

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "mlartifacts"
