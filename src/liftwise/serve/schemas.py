"""The HTTP contract: typed request and response bodies (they are the OpenAPI schema)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetPydanticSchema, WithJsonSchema, create_model
from pydantic_core import core_schema

MAX_KEYS = 1000  # features or context entries per unit


def _feature_value_schema(_source: Any, _handler: Any) -> core_schema.CoreSchema:
    """A finite number, true/false, a string (for eligibility rules) or null (missing),
    validated in pydantic-core (a Python validator per value costs 3x on a large batch)."""
    return core_schema.union_schema(
        [
            core_schema.float_schema(allow_inf_nan=False),
            core_schema.bool_schema(),
            core_schema.str_schema(),
            core_schema.none_schema(),
        ],
        custom_error_type="feature_value",
        custom_error_message="must be a finite number, true/false, a string or null",
    )


FeatureValue = Annotated[
    float | bool | str | None,
    GetPydanticSchema(_feature_value_schema),
    WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string"}, {"type": "null"}]}
    ),
]
FeatureName = Annotated[str, Field(min_length=1, max_length=200)]


class DecisionRequest(BaseModel):
    """One unit to decide for. ``request_id`` is the idempotency key: a retry with the same
    id gets the same decision back and is logged once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "request_id": "c0a8-0001",
                    "unit_id": 42,
                    "features": {"tenure_months": 14, "age_band": 3},
                    "context": {"channel": "app"},
                }
            ]
        },
    )

    request_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[!-~]+$",
        description="Idempotency key chosen by the client (printable ASCII, no spaces).",
    )
    unit_id: int = Field(ge=0, le=2**63 - 1, strict=True, description="The unit (customer) id.")
    features: dict[FeatureName, FeatureValue] | None = Field(
        None,
        max_length=MAX_KEYS,
        description="Inline features by name; they take precedence over the online store. "
        "Every model feature must be given here or be in the store; null = missing value.",
    )
    context: dict[FeatureName, FeatureValue] | None = Field(
        None,
        max_length=MAX_KEYS,
        description="Request context (channel, placement...): logged with the exposure and "
        "readable by eligibility rules.",
    )


class BatchDecisionRequest(BaseModel):
    """Many units in one call; each keeps its own idempotency key."""

    model_config = ConfigDict(extra="forbid")

    decisions: list[DecisionRequest] = Field(
        min_length=1, description="Units to decide for (at most the server's max batch)."
    )


def batch_request_model(max_batch: int) -> type[BatchDecisionRequest]:
    """The batch body with this server's maximum as ``maxItems``: validation stops at the
    first unit past it (a 413), and the OpenAPI document states it."""
    return create_model(
        "BatchDecisionRequest",
        __base__=BatchDecisionRequest,
        __doc__=BatchDecisionRequest.__doc__,
        decisions=(
            list[DecisionRequest],
            Field(min_length=1, max_length=max_batch, description="Units to decide for."),
        ),
    )


class ModelVersion(BaseModel):
    name: str
    version: str


class ServedModel(ModelVersion):
    """The version this worker serves and the race result saved in its bundle by
    ``liftwise train`` (null for a bundle without one)."""

    learner: str | None = None
    k: float | None = Field(None, description="Profit@K's K: the share of units ranked.")
    profit_at_k: float | None = Field(None, description="The race's Profit@K on validation.")
    profit_at_k_low: float | None = Field(None, description="Its bootstrap interval.")
    profit_at_k_high: float | None = None


class Decision(BaseModel):
    """The decision for one unit, as logged."""

    request_id: str
    decision_id: str = Field(description="Unique id of this decision (a UUIDv7).")
    unit_id: int
    arm: str = Field(description="The arm to give; the control arm means no treatment.")
    treated: bool
    expected_profit: float = Field(description="Expected incremental net profit (0 if untreated).")
    expected_cost: float = Field(description="Expected cost, reserved from the budget.")
    effect_arm: str = Field(description="The arm the effect describes (chosen, else best).")
    effect: float | None = Field(description="Predicted effect on the outcome against control.")
    effect_low: float | None = Field(
        description="95% interval of the effect, if the model has one."
    )
    effect_high: float | None
    reason: str | None = Field(
        description="Why untreated: do_not_contact, cap, ineligible, interval_below_threshold, "
        "negative_profit, capacity, budget or pacing; null when treated."
    )
    model: ModelVersion
    decided_at: dt.datetime
    replayed: bool = Field(description="True when this is a retry answered from the log.")


class BatchDecisionResponse(BaseModel):
    decisions: list[Decision]


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable code.")
    message: str = Field(description="One line naming the field at fault.")
    field: str | None = Field(description="JSON path of the field, e.g. decisions[3].unit_id.")
    request_id: str | None = None


def error_responses(meanings: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI ``responses``: each refusal status with the one error body."""
    return {code: {"model": ErrorBody, "description": text} for code, text in meanings.items()}


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    model: ModelVersion | None
    checks: dict[str, str]


class BudgetStatus(BaseModel):
    campaign: str
    budget: float
    spent: float
    allowed_now: float = Field(description="Spend the pacing allows by now.")
    remaining: float
    units: dict[str, int] = Field(description="Treated units per arm.")
    window_start: dt.datetime | None
    window_end: dt.datetime | None


MAX_OUTCOMES = 10_000  # outcomes per POST /v1/outcomes

MAX_MONEY = 1e15  # |revenue| and cost per outcome: sums of squares stay finite in SQL
Money = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MONEY, le=MAX_MONEY)]


class OutcomeRequest(BaseModel):
    """What one unit did after a decision: joined to it by ``decision_id``, or by
    ``unit_id`` to the unit's latest decision in this campaign at or before
    ``observed_at``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"decision_id": "01a231ee-7ad6-7ba0-856a-96a47564a46f", "revenue": 120.5},
                {"unit_id": 42, "revenue": 0.0, "cost": 2.5, "observed_at": "2026-12-02T09:00Z"},
            ]
        },
    )

    decision_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[!-~]+$",
        description="The decision's id (from its response).",
    )
    unit_id: int | None = Field(
        None, ge=0, le=2**63 - 1, strict=True, description="The unit, when the id is unknown."
    )
    revenue: Money = Field(description="Revenue from the unit (0 if it did nothing).")
    cost: Money | None = Field(
        None, ge=0, description="Cost actually incurred; default: the decision's expected cost."
    )
    observed_at: dt.datetime | None = Field(
        None, description="When it happened (ISO time, no zone = UTC); default: now."
    )


class OutcomeBatch(BaseModel):
    """Outcomes recorded in one transaction: a refused one refuses them all."""

    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeRequest] = Field(min_length=1, max_length=MAX_OUTCOMES)


class RecordedOutcome(BaseModel):
    """An outcome as stored, with the decision it was joined to."""

    decision_id: str
    request_id: str
    unit_id: int
    campaign: str
    revenue: float
    cost: float = Field(description="The cost counted: the one given, else the expected cost.")
    cost_given: bool = Field(description="False when the decision's expected cost stands in.")
    net_profit: float = Field(description="revenue - cost.")
    observed_at: dt.datetime
    replayed: bool = Field(description="True when this outcome was already recorded.")


class OutcomeResponse(BaseModel):
    accepted: int = Field(description="Outcomes recorded now.")
    replayed: int = Field(description="Outcomes already recorded with the same values.")
    outcomes: list[RecordedOutcome] = Field(description="One per outcome sent, in order.")
