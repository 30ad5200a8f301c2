"""The world manifest: a typed record every world writes and every stage reads by attribute.

Both worlds build the same :class:`Manifest` (its :class:`Campaign` says which table holds
the units, which columns are the outcome and its value, the arms with their costs, the
control, currency and decision time), write it with :meth:`Manifest.dump` and read it back
with :func:`read_manifest`, which validates it: a missing, broken or foreign manifest is a
one-line UserError naming the file and the field. Writing lives in :mod:`liftwise.simulate`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from liftwise.contracts.world_config import ArmConfig, WorldConfig
from liftwise.errors import UserError

MANIFEST = "manifest.json"
MANIFEST_VERSION = "1"
WORLDS = ("fintech", "learning")


class _Record(BaseModel):
    """A frozen manifest part; optional (world-specific) fields that are unset are not
    written, so each world's manifest holds only what that world knows."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class CurrentPolicyThresholds(_Record):
    """The fintech world's business-as-usual rule: spend above which a customer gets an offer."""

    top_monthly_spend_vnd: float
    mid_monthly_spend_vnd: float


class Campaign(_Record):
    """The world's past randomised campaign: what a unit is, what is measured, what it cost."""

    unit: str = Field(description="What a unit is (customer, learner).")
    unit_table: str = Field(description="The table with one row per unit.")
    unit_key: str = Field(description="The unit table's id column (= unit_id elsewhere).")
    outcome: str = Field(description="The binary outcome column of the outcomes table.")
    value: str = Field(description="The value column (margin, revenue) of the outcomes table.")
    currency: str
    decision_time: dt.datetime = Field(description="Naive, read as UTC like every timestamp.")
    window_days: int = Field(gt=0, description="Outcome window after the decision time.")
    control: str
    arms: tuple[ArmConfig, ...] = Field(min_length=2, description="Control first.")
    current_policy: CurrentPolicyThresholds | None = None

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)


class TableEntry(_Record):
    """One table file of the world: its rows, contract (``name/version``) and SHA-256."""

    file: str
    rows: int = Field(ge=0)
    contract: str = Field(alias="schema")
    sha256: str


class CampaignSummary(_Record):
    """Facts about the generated population (shares over all units), for docs and tests."""

    units: int
    unit_type_share: dict[str, float]
    assigned_share: dict[str, float]
    best_arm_share: dict[str, float]
    current_policy_share: dict[str, float]
    control_outcome_rate: float
    true_average_effect: dict[str, float]
    payments: int | None = None  # fintech
    payments_per_unit: float | None = None
    sessions: int | None = None  # learning
    sessions_per_learner: float | None = None
    churned_before_decision_share: float | None = None


class Manifest(_Record):
    """Everything a world records about itself (``manifest.json``)."""

    manifest_version: str = MANIFEST_VERSION
    liftwise_version: str
    world: Literal["fintech", "learning"]
    seed: int
    config: WorldConfig
    sizes: dict[str, int]
    tables: dict[str, TableEntry]
    campaign: Campaign
    summary: CampaignSummary

    def dump(self) -> dict[str, Any]:
        """The JSON payload of ``manifest.json`` (file names as written: ``schema``)."""
        return self.model_dump(mode="json", by_alias=True)


def read_manifest(path: str | Path) -> Manifest:
    """Parse and validate ``<path>/manifest.json``; a missing, broken or foreign manifest
    is a UserError naming the file and the field."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise UserError("no such directory", file=path)
    if not manifest_path.is_file():
        raise UserError("not a liftwise world: manifest.json is missing", file=path)
    try:
        payload = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(
            f"invalid JSON at line {err.lineno}: {err.msg}", file=manifest_path
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read: {err}", file=manifest_path) from None
    if not isinstance(payload, dict):
        raise UserError("not a JSON object", file=manifest_path)
    if payload.get("world", WORLDS[0]) not in WORLDS:
        raise UserError(f"unknown world {payload['world']!r}", file=manifest_path, column="world")
    try:
        return Manifest.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "<manifest>"
        message = "missing field" if first["type"] == "missing" else first["msg"]
        raise UserError(message, file=manifest_path, column=field) from None
