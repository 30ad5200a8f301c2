"""POST /v1/outcomes: what units did after their decisions, recorded beside the log.

Its own router, included by :func:`liftwise.serve.app.create_app`; it reaches the worker's
:class:`~liftwise.serve.app.Service` through ``app.state`` (no import of the app module,
which includes this one). Refusals are ServeErrors, answered by the app's handlers in
the service's one JSON error shape.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from liftwise.serve.engine import EPOCH, micros, utc_now
from liftwise.serve.errors import ServeError
from liftwise.serve.outcomes import OutcomeInput, OutcomeRefusal, OutcomeResult
from liftwise.serve.schemas import (
    OutcomeBatch,
    OutcomeRequest,
    OutcomeResponse,
    RecordedOutcome,
    error_responses,
)
from liftwise.times import naive_utc

if TYPE_CHECKING:
    from liftwise.serve.app import Service

OUTCOME_ERRORS = error_responses(
    {
        400: "Invalid JSON.",
        404: "No logged decision for an outcome (its decision_id, or its unit_id).",
        409: "The decision already has an outcome with other values.",
        413: "More outcomes than one request may carry.",
        422: "A missing, mistyped, non-finite or out-of-range field (named in the message).",
        503: "A store is unreachable: retry.",
    }
)


def _input(index: int, item: OutcomeRequest) -> OutcomeInput:
    observed = None
    if item.observed_at is not None:
        try:
            observed = micros(naive_utc(item.observed_at))
        except (OverflowError, ValueError):  # a zone offset past year 1 or 9999
            raise ServeError(
                422, "invalid_request", "out of range", f"outcomes[{index}].observed_at"
            ) from None
    return OutcomeInput(item.decision_id, item.unit_id, item.revenue, item.cost, observed)


def _recorded(result: OutcomeResult) -> RecordedOutcome:
    return RecordedOutcome(
        decision_id=result.decision_id,
        request_id=result.request_id,
        unit_id=result.unit_id,
        campaign=result.campaign,
        revenue=result.revenue,
        cost=result.counted_cost,
        cost_given=result.cost is not None,
        net_profit=result.net_profit,
        observed_at=EPOCH + dt.timedelta(microseconds=result.observed_at_us),
        replayed=result.replayed,
    )


def outcome_routes() -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/outcomes",
        response_model=OutcomeResponse,
        responses=OUTCOME_ERRORS,
        tags=["outcomes"],
        summary="Record what units did after their decisions",
    )
    async def record_outcomes(batch: OutcomeBatch, request: Request) -> OutcomeResponse:
        """Join each outcome to its decision (by ``decision_id``, or the unit's latest
        decision in this campaign at or before ``observed_at``) and record them in one
        transaction. The same outcome again is ``replayed``; other values for a decision
        that has one are a 409, and one refused outcome refuses the batch."""
        service: Service = request.app.state.service
        items = [_input(i, item) for i, item in enumerate(batch.outcomes)]
        try:
            results = await service.run(
                service.outcomes.record, items, service.config.campaign, micros(utc_now())
            )
        except OutcomeRefusal as refused:
            raise ServeError(
                refused.status,
                refused.code,
                refused.message,
                f"outcomes[{refused.index}].{refused.field}",
            ) from None
        replayed = sum(r.replayed for r in results)
        return OutcomeResponse(
            accepted=len(results) - replayed,
            replayed=replayed,
            outcomes=[_recorded(r) for r in results],
        )

    return router
