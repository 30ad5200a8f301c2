"""The serving configuration: which model, which decision rules, where budget and exposures live.

One frozen pydantic model, so the CLI can validate it once and hand it to every uvicorn
worker as a JSON file named by ``LIFTWISE_SERVE_CONFIG`` (workers import the app by factory
string and cannot receive Python objects).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from liftwise.errors import UserError
from liftwise.settings import Settings
from liftwise.times import naive_utc

CONFIG_ENV = "LIFTWISE_SERVE_CONFIG"
# a table name, optionally schema-qualified; checked because it is interpolated into SQL
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


class ServeConfig(BaseModel):
    """Everything a worker needs to build the app; ``None`` falls back to ``Settings``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: Path | None = Field(None, description="Serve this ModelBundle directory.")
    model_name: str | None = Field(
        None, description="Serve the registry model's 'champion' version, following swaps."
    )
    decision_config: Path | None = Field(None, description="Decision YAML (guardrails, costs).")
    budget: float | None = Field(None, ge=0, description="Campaign budget; overrides the YAML.")
    campaign: str = Field(
        "default",
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Budget ledger name; every worker serving this campaign shares it.",
    )
    campaign_start: dt.datetime | None = Field(None, description="Pacing window start (UTC).")
    campaign_end: dt.datetime | None = Field(None, description="Pacing window end (UTC).")
    pacing: Literal["linear", "none"] = Field(
        "linear", description="How allowed spend grows over the window; none = all at once."
    )
    bid_price: float = Field(
        0.0,
        ge=0,
        description="Profit required per unit of cost (the budget's shadow price): an arm "
        "ranks by profit - bid_price * cost and is offered only if that is positive.",
    )
    data_dir: Path | None = None
    tracking_uri: str | None = Field(None, description="MLflow tracking/registry URI.")
    exposure_log: str | None = Field(
        None, description="sqlite:///PATH or postgresql:// DSN (default: Settings.exposures)."
    )
    exposure_table: str = Field("exposures", description="Table (PostgreSQL: schema.table ok).")
    budget_store: Literal["sqlite", "redis"] | None = None
    redis_url: str | None = None
    feature_repo: Path | None = Field(None, description="Feast repo for online features.")
    max_batch: int = Field(1000, ge=1, le=100_000, description="Most units per batch request.")
    poll_seconds: float = Field(
        10.0, gt=0, description="How often the registry's champion alias is checked."
    )
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL",
        description="NORMAL survives a killed process; FULL also a power cut (fsync per commit).",
    )
    reservation_grace_seconds: float = Field(
        60.0,
        gt=0,
        description="Split stores only: a reservation older than this with no exposure row "
        "(its worker died in between) is released at startup.",
    )
    log_requests: bool = Field(True, description="One JSON log line per request.")
    inline: bool | None = Field(
        None,
        description="Decide on the event loop (True) or in the thread pool (False); default: "
        "on the loop when the log and the budget are both SQLite, whose transactions take "
        "microseconds, in the pool when a store is a network round trip away.",
    )

    @model_validator(mode="after")
    def _check(self) -> ServeConfig:
        if (self.model_dir is None) == (self.model_name is None):
            raise ValueError(
                "give exactly one of --model (model_dir) and --model-name (model_name)"
            )
        if (self.campaign_start is None) != (self.campaign_end is None):
            raise ValueError("give both --campaign-start and --campaign-end, or neither")
        start, end = self.campaign_start, self.campaign_end
        if start is not None and end is not None and naive_utc(end) <= naive_utc(start):
            raise ValueError("--campaign-end must be after --campaign-start")
        if not TABLE_NAME.match(self.exposure_table):
            raise ValueError(f"exposure_table {self.exposure_table!r} is not a table name")
        return self

    def settings(self) -> Settings:
        """The shared Settings with this config's overrides (data dir, stores, Redis)."""
        return Settings.load(
            data_dir=self.data_dir,
            tracking_uri=self.tracking_uri,
            exposure_log=self.exposure_log,
            budget_store=self.budget_store,
            redis_url=self.redis_url,
        )

    def window(self) -> tuple[dt.datetime, dt.datetime] | None:
        """The pacing window in naive UTC, or None when spend is not paced."""
        if self.campaign_start is None or self.campaign_end is None or self.pacing == "none":
            return None
        return naive_utc(self.campaign_start), naive_utc(self.campaign_end)


def build_config(**values: object) -> ServeConfig:
    """A ServeConfig from CLI-style keyword values (None = default); a bad value is a
    UserError naming the option."""
    try:
        return ServeConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UserError(message, parameter=field or None) from None


def write_config(config: ServeConfig, path: Path) -> Path:
    """Write the config for workers (atomically) and return the path."""
    from liftwise.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(config.model_dump_json(indent=2))
    return path


def config_from_env() -> ServeConfig:
    """The config a worker was started with: the JSON file named by LIFTWISE_SERVE_CONFIG."""
    where = os.environ.get(CONFIG_ENV)
    if not where:
        raise UserError(f"set {CONFIG_ENV} to a serve config JSON file (liftwise serve does)")
    path = Path(where)
    if not path.is_file():
        raise UserError("no such file", file=path, option=CONFIG_ENV)
    try:
        return ServeConfig.model_validate_json(path.read_text())
    except ValidationError as err:
        first = err.errors()[0]
        raise UserError(first["msg"], file=path, column=".".join(map(str, first["loc"]))) from None
