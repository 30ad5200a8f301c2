"""Real-time decisions: the batch decision layer's value model and guardrails, then, in place
of the batch optimiser, the shared budget: each unit gets its best allowed profitable arm
that the budget, the pacing and the arm's capacity still admit.

One code path serves one unit and a batch (a single decision is a batch of one). A batch's
units reserve in order of their best score, so when money is short the better units get it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pydantic_core

from liftwise.decide.batch import Valuation, decision_columns, value_outcomes
from liftwise.decide.config import DecisionConfig
from liftwise.decide.guardrails import Reason, do_not_contact_ids, guardrail_reasons
from liftwise.errors import UserError
from liftwise.serve.budget import Grant, Offer, Pacing, to_ledger_units
from liftwise.serve.errors import ServeError, item_field
from liftwise.serve.exposures import ExposureLog, ExposureRecord
from liftwise.serve.features import FeatureResolver
from liftwise.serve.ledger import Committed, Ledger
from liftwise.serve.models import ServingModel
from liftwise.serve.schemas import DecisionRequest

EPOCH = dt.datetime(1970, 1, 1)
REASON_LABELS = {int(r): (r.label or None) for r in Reason}


def utc_now() -> dt.datetime:
    """Naive UTC, the convention of the decision layer."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def micros(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def new_decision_ids(now_us: int, n: int) -> list[str]:
    """``n`` UUIDv7s: 48-bit milliseconds, version 7, 74 random bits (variant 10), so ids
    sort by decision time; formatted directly (uuid.UUID costs 4 us apiece)."""
    millis = f"{(now_us // 1000) & ((1 << 48) - 1):012x}"
    head = f"{millis[:8]}-{millis[8:]}-7"
    raw = os.urandom(10 * n)
    out = []
    for i in range(n):
        rand = int.from_bytes(raw[10 * i : 10 * i + 10], "big")
        tail = f"{(rand >> 64) & 0xFFF:03x}{0b10 << 62 | (rand & ((1 << 62) - 1)):016x}"
        out.append(f"{head}{tail[:3]}-{tail[3:7]}-{tail[7:]}")
    return out


def _optional(value: float) -> float | None:
    return None if value != value else value  # NaN -> null


@dataclass
class _Batch:
    """The fresh units of one call, valued and guarded, waiting for the budget."""

    items: list[DecisionRequest]
    valuation: Valuation
    reasons: np.ndarray
    candidates: list[list[int]]  # per unit: allowed profitable treatment indices, best first
    offers: list[Offer]
    best: np.ndarray  # per unit: its best candidate's score (-inf without one)
    now: dt.datetime
    now_us: int


class DecisionEngine:
    """Decides for requests with the serving model; stores through the ledger."""

    def __init__(
        self,
        config: DecisionConfig,
        pacing: Pacing,
        ledger: Ledger,
        resolver: FeatureResolver,
        *,
        campaign: str,
        bid_price: float = 0.0,
        history: ExposureLog | None = None,
        source: str = "decision config",
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.config = config
        self.pacing = pacing
        self.ledger = ledger
        self.resolver = resolver
        self.campaign = campaign
        self.bid_price = bid_price
        self.history = history  # the exposure log, read for contact caps
        self.source = source
        self.clock = clock
        self.do_not_contact = do_not_contact_ids(config)

    def decide(
        self, items: Sequence[DecisionRequest], model: ServingModel, *, batch: bool
    ) -> list[Committed]:
        """One result per item, in order: new decisions, or the logged ones for retries."""
        first: dict[str, int] = {}
        for i, item in enumerate(items):
            j = first.setdefault(item.request_id, i)
            if j != i and items[j].unit_id != item.unit_id:
                raise ServeError(
                    409,
                    "request_id_reused",
                    f"used twice in this batch for different units ({items[j].unit_id}, "
                    f"{item.unit_id})",
                    item_field(batch, i, "request_id"),
                )
        logged = self.ledger.lookup(list(first))
        for rid, i in first.items():
            record = logged.get(rid)
            if record is not None and record.unit_id != items[i].unit_id:
                raise _reused(record, batch, i)
        fresh = [i for rid, i in first.items() if rid not in logged]
        results: dict[str, Committed] = {rid: Committed(r, True) for rid, r in logged.items()}
        if fresh:
            prepared = self._prepare([items[i] for i in fresh], fresh, model, batch)
            committed = self.ledger.commit(
                [items[i].request_id for i in fresh],
                prepared.offers,
                self.pacing.limits(prepared.now),
                prepared.now_us,
                lambda grants: self._records(prepared, grants, model),
                order=_best_first(prepared),
            )
            for c in committed:  # logged meanwhile by a concurrent request for another unit?
                i = first[c.record.request_id]
                if c.replayed and c.record.unit_id != items[i].unit_id:
                    raise _reused(c.record, batch, i)
                results[c.record.request_id] = c
        return [
            results[item.request_id]
            if first[item.request_id] == i
            else Committed(results[item.request_id].record, True)
            for i, item in enumerate(items)
        ]

    def _prepare(
        self,
        items: list[DecisionRequest],
        positions: list[int],
        model: ServingModel,
        batch: bool,
    ) -> _Batch:
        resolved = self.resolver.resolve(
            items, model.features, lambda i, name: item_field(batch, positions[i], name)
        )
        X = resolved.X
        interval = model.predict_interval(X) if model.predict_interval is not None else None
        valuation = value_outcomes(
            model.predict_outcomes(X),
            interval,
            value_per_outcome=model.value_per_outcome,
            contact=model.contact,
            redemption=model.redemption,
            soft=self.config.soft_guardrail,
        )
        now = self.clock()
        now_us = micros(now)
        unit_ids = np.fromiter((item.unit_id for item in items), dtype=np.int64, count=len(items))
        exposures = None
        cap = self.config.contact_cap
        if cap is not None and self.history is not None:
            since = now - dt.timedelta(days=cap.window_days)
            exposures = self.history.treated_since(unit_ids.tolist(), micros(since))
        try:
            reasons = guardrail_reasons(
                unit_ids,
                resolved.eligibility,
                model.treatments,
                self.config,
                exposures=exposures,
                now=now,
                effect_lower=valuation.effect_lower,
                profit_lower=valuation.profit_lower,
                source=self.source,
                do_not_contact=self.do_not_contact,
            )
        except UserError as err:
            raise ServeError(422, "invalid_features", err.one_line()) from None
        score = valuation.profit - self.bid_price * valuation.cost
        eligible = (reasons == Reason.TREATED) & (score > 0)
        arms = model.treatments
        keys = new_decision_ids(now_us, len(items))
        candidates: list[list[int]] = []
        offers: list[Offer] = []
        for key, order, allowed, amounts in zip(
            keys,
            np.argsort(-score, axis=1, kind="stable").tolist(),
            eligible.tolist(),
            to_ledger_units(valuation.cost).tolist(),
            strict=True,
        ):
            row = [j for j in order if allowed[j]]
            candidates.append(row)
            offers.append(Offer(key, tuple(arms[j] for j in row), tuple(amounts[j] for j in row)))
        best = np.where(eligible, score, -np.inf).max(axis=1, initial=-np.inf)
        return _Batch(items, valuation, reasons, candidates, offers, best, now, now_us)

    def _records(
        self, prepared: _Batch, grants: list[Grant], model: ServingModel
    ) -> list[ExposureRecord]:
        """Exposure rows once the budget has answered (runs inside the ledger's transaction:
        array work and object construction only)."""
        n = len(prepared.items)
        chosen = np.full(n, -1, dtype=np.int64)
        fallback = np.full(n, Reason.BUDGET, dtype=np.int8)  # score <= 0 at the bid price
        for i, grant in enumerate(grants):
            if grant.choice >= 0:
                chosen[i] = prepared.candidates[i][grant.choice]
            elif grant.reason != Reason.TREATED:
                fallback[i] = grant.reason
        # Python lists: indexing numpy arrays element by element costs more than the copy
        columns = {
            k: v.tolist()
            for k, v in decision_columns(
                chosen, prepared.valuation, prepared.reasons, fallback
            ).items()
        }
        arms = model.treatments
        records = []
        for i, (item, arm) in enumerate(zip(prepared.items, columns["arm"], strict=True)):
            treated = arm >= 0
            records.append(
                ExposureRecord(
                    request_id=item.request_id,
                    decision_id=prepared.offers[i].key,
                    campaign=self.campaign,
                    unit_id=item.unit_id,
                    arm=arms[arm] if treated else model.control,
                    effect_arm=arms[columns["best_arm"][i]],
                    treated=treated,
                    expected_profit=columns["expected_profit"][i],
                    expected_cost=columns["expected_cost"][i],
                    cost_units=grants[i].amount if treated else 0,
                    effect=_optional(columns["effect"][i]),
                    effect_low=_optional(columns["effect_low"][i]),
                    effect_high=_optional(columns["effect_high"][i]),
                    reason=REASON_LABELS[columns["reason"][i]],
                    model_name=model.key.name,
                    model_version=model.key.version,
                    decided_at_us=prepared.now_us,
                    context=pydantic_core.to_json(item.context).decode() if item.context else None,
                )
            )
        return records


def _reused(record: ExposureRecord, batch: bool, index: int) -> ServeError:
    return ServeError(
        409,
        "request_id_reused",
        f"already used for unit {record.unit_id} (decision {record.decision_id})",
        item_field(batch, index, "request_id"),
    )


def _best_first(prepared: _Batch) -> list[int]:
    """Reservation order: units by their best offered score, highest first."""
    return np.argsort(-prepared.best, kind="stable").tolist()


def decision_json(record: ExposureRecord, replayed: bool) -> dict[str, object]:
    """The API's view of a logged decision (see schemas.Decision)."""
    decided = EPOCH + dt.timedelta(microseconds=record.decided_at_us)
    return {
        "request_id": record.request_id,
        "decision_id": record.decision_id,
        "unit_id": record.unit_id,
        "arm": record.arm,
        "treated": record.treated,
        "expected_profit": record.expected_profit,
        "expected_cost": record.expected_cost,
        "effect_arm": record.effect_arm,
        "effect": record.effect,
        "effect_low": record.effect_low,
        "effect_high": record.effect_high,
        "reason": record.reason,
        "model": {"name": record.model_name, "version": record.model_version},
        "decided_at": decided.isoformat() + "Z",
        "replayed": replayed,
    }
