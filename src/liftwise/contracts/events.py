"""Versioned event contracts (pydantic): one record at a time, as services emit them.

Tables are checked with pandera (vectorised over millions of rows); events arrive one by
one through APIs and logs, where pydantic's typed models give field-level errors and
OpenAPI schemas for free.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from liftwise.errors import UserError

EVENT_SCHEMA_VERSION: Literal["1"] = "1"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    schema_version: Literal["1"] = EVENT_SCHEMA_VERSION
    occurred_at: dt.datetime = Field(description="When it happened (timezone-aware or UTC).")


class AssignmentEvent(_Event):
    """A unit was assigned to an arm of an experiment or campaign."""

    event: Literal["assignment"] = "assignment"
    experiment: str = Field(min_length=1)
    unit_id: int = Field(ge=0)
    arm: str = Field(min_length=1)


class ExposureEvent(_Event):
    """A decision was shown or sent to a unit; ``request_id`` makes retries idempotent."""

    event: Literal["exposure"] = "exposure"
    request_id: str = Field(min_length=1, max_length=200)
    decision_id: str = Field(min_length=1)
    campaign: str = Field(min_length=1)
    unit_id: int = Field(ge=0)
    arm: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    expected_profit: float
    cost: float = Field(ge=0)


class OutcomeEvent(_Event):
    """A measured outcome of a unit (conversion, spend, retention) after a decision."""

    event: Literal["outcome"] = "outcome"
    unit_id: int = Field(ge=0)
    metric: str = Field(min_length=1)
    value: float


EVENT_TYPES: dict[str, type[_Event]] = {
    "assignment": AssignmentEvent,
    "exposure": ExposureEvent,
    "outcome": OutcomeEvent,
}


def parse_event(payload: dict, *, source: str = "event") -> _Event:
    """Validate one event dict; a bad field is a UserError naming it."""
    kind = payload.get("event")
    if kind not in EVENT_TYPES:
        raise UserError(
            f"unknown event type {kind!r} (known: {', '.join(EVENT_TYPES)})",
            file=source,
            column="event",
        )
    try:
        return EVENT_TYPES[kind].model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "<event>"
        raise UserError(first["msg"], file=source, column=field) from None
