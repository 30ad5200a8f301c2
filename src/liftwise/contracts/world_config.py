"""Typed configuration of a synthetic world: sizes, seed, realism and the past campaign.

It lives with the contracts because every world's manifest records it (and readers check it
there); :mod:`liftwise.simulate` takes it as the generators' input."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ArmConfig(BaseModel):
    """One campaign arm: its randomisation ratio and its costs in the world's currency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    ratio: float = Field(gt=0, le=1)
    contact_cost: float = Field(ge=0)
    redemption_cost: float = Field(ge=0)
    description: str = ""


class WorldConfig(BaseModel):
    """Everything that determines a world; the same config gives byte-identical files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    world: Literal["fintech", "learning"]
    units: int = Field(gt=0, le=50_000_000, description="Customers or learners.")
    days: int = Field(gt=0, le=3650, description="Days of history before the decision date.")
    seed: int = Field(ge=0, lt=2**63)
    realism: Literal["v1", "v2"] = "v2"
    zipf_exponent: float = Field(default=1.1, gt=0.0, le=5.0)
    decision_date: dt.date = dt.date(2026, 6, 1)
    outcome_window_days: int = Field(default=30, gt=0, le=365)
    chunk_units: int = Field(default=50_000, gt=0, description="Units generated per chunk.")
    arms: tuple[ArmConfig, ...] | None = Field(
        default=None, description="Campaign arms, control first; None takes the world's default."
    )

    @field_validator("arms")
    @classmethod
    def _arms_sum_to_one(cls, arms: tuple[ArmConfig, ...] | None) -> tuple[ArmConfig, ...] | None:
        if arms is None:
            return None
        if len(arms) < 2:
            raise ValueError("a campaign needs a control and at least one treatment arm")
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        total = sum(a.ratio for a in arms)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"arm ratios must sum to 1, got {total:g}")
        return arms

    @model_validator(mode="after")
    def _control_is_free(self) -> WorldConfig:
        if self.arms is not None and (self.arms[0].contact_cost or self.arms[0].redemption_cost):
            raise ValueError(f"the control arm '{self.arms[0].name}' must cost nothing")
        return self

    @property
    def history_start(self) -> dt.datetime:
        return dt.datetime.combine(self.decision_date, dt.time()) - dt.timedelta(days=self.days)

    @property
    def decision_time(self) -> dt.datetime:
        return dt.datetime.combine(self.decision_date, dt.time())
