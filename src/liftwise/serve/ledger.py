"""Budget reservations and exposure rows, kept consistent with each other.

Default (both in one SQLite file): the idempotency check, the reservation and the exposure
rows are one ``BEGIN IMMEDIATE`` transaction, so a decision is either logged with its spend
or neither happened, whatever crashes. With separate stores (Redis budget, or a PostgreSQL
log) the protocol is reserve (pending) -> log -> confirm; a request id logged meanwhile by
another worker releases this reservation and returns that worker's decision; a failed log
write releases it; and reservations orphaned by a killed worker are settled at startup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from liftwise.decide.guardrails import Reason
from liftwise.serve.budget import BudgetState, BudgetStore, Grant, Limits, Offer, SqliteBudget
from liftwise.serve.exposures import ExposureLog, ExposureRecord, SqliteExposureLog

log = logging.getLogger("liftwise.serve")

NOTHING_TO_RESERVE = Grant(-1, Reason.TREATED)

Finalize = Callable[[list[Grant]], list[ExposureRecord]]


@dataclass(frozen=True)
class Committed:
    """A decision as stored; ``replayed`` when the request id was already in the log."""

    record: ExposureRecord
    replayed: bool


class Ledger(Protocol):
    @property
    def log(self) -> ExposureLog:
        """The exposure log (the outcome store and contact caps read it)."""
        ...

    def lookup(self, request_ids: Sequence[str]) -> dict[str, ExposureRecord]: ...

    def commit(
        self,
        request_ids: list[str],
        offers: list[Offer],
        limits: Limits,
        now_us: int,
        finalize: Finalize,
        order: list[int] | None = None,
    ) -> list[Committed]:
        """Reserve for ``offers`` (aligned with ``request_ids``; unique ids) in ``order``,
        let ``finalize(grants)`` make the records, store them; one result per request id
        (a request id logged meanwhile by another request is answered from the log)."""
        ...

    def budget_state(self) -> BudgetState: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def _reserve_aligned(
    reserve: Callable[[list[Offer]], list[Grant]], offers: list[Offer], order: list[int]
) -> list[Grant]:
    """Reserve the offers that have arms, in ``order`` (best units first); align the grants
    with ``offers``."""
    asking = [i for i in order if offers[i].arms]
    grants = [NOTHING_TO_RESERVE] * len(offers)
    for i, grant in zip(asking, reserve([offers[i] for i in asking]), strict=True):
        grants[i] = grant
    return grants


class SqliteLedger:
    """Exposure log and budget in one SQLite file, written in one transaction."""

    def __init__(self, log_: SqliteExposureLog, budget: SqliteBudget) -> None:
        if log_.db is not budget.db:
            raise ValueError("a SqliteLedger needs the log and the budget in one database")
        self.log = log_
        self.budget = budget
        self.db = log_.db

    def lookup(self, request_ids: Sequence[str]) -> dict[str, ExposureRecord]:
        return self.log.lookup(request_ids)

    def commit(
        self,
        request_ids: list[str],
        offers: list[Offer],
        limits: Limits,
        now_us: int,
        finalize: Finalize,
        order: list[int] | None = None,
    ) -> list[Committed]:
        with self.db.transaction() as conn:
            taken = self.log.lookup_in(conn, request_ids)
            fresh = [i for i, rid in enumerate(request_ids) if rid not in taken]
            fresh_set = set(fresh)
            grants = _reserve_aligned(
                lambda asked: self.budget.reserve_in(conn, asked, limits, now_us, pending=False),
                [o if i in fresh_set else Offer(o.key, (), ()) for i, o in enumerate(offers)],
                order if order is not None else list(range(len(offers))),
            )
            records = finalize(grants)
            self.log.insert_in(conn, [records[i] for i in fresh])
        return [
            Committed(records[i], False) if i in fresh_set else Committed(taken[rid], True)
            for i, rid in enumerate(request_ids)
        ]

    def budget_state(self) -> BudgetState:
        return self.budget.state()

    def ping(self) -> None:
        self.log.ping()
        self.budget.ping()

    def close(self) -> None:
        self.db.close()


class SplitLedger:
    """Any exposure log with any budget store: reserve -> log -> confirm."""

    def __init__(self, log_: ExposureLog, budget: BudgetStore) -> None:
        self.log = log_
        self.budget = budget

    def lookup(self, request_ids: Sequence[str]) -> dict[str, ExposureRecord]:
        return self.log.lookup(request_ids)

    def commit(
        self,
        request_ids: list[str],
        offers: list[Offer],
        limits: Limits,
        now_us: int,
        finalize: Finalize,
        order: list[int] | None = None,
    ) -> list[Committed]:
        grants = _reserve_aligned(
            lambda asked: self.budget.reserve(asked, limits, now_us, pending=True),
            offers,
            order if order is not None else list(range(len(offers))),
        )
        reserved = [o.key for o, g in zip(offers, grants, strict=True) if g.choice >= 0]
        try:
            records = finalize(grants)
            written = self.log.append(records)
        except BaseException:
            self._settle(reserved)
            raise
        lost = [i for i, r in enumerate(records) if r.request_id not in written]
        lost_keys = {offers[i].key for i in lost}
        try:  # the decisions are logged: a failure here leaves pending reservations that
            # the next startup's reconcile settles, never a lost acknowledgement
            self.budget.confirm([k for k in reserved if k not in lost_keys])
            self.budget.release([k for k in reserved if k in lost_keys])
        except Exception as err:
            log.warning(
                "budget confirm failed; reconcile will settle it",
                extra={"event": "budget_confirm_failed", "error": repr(err)},
            )
        winners = self.log.lookup([records[i].request_id for i in lost]) if lost else {}
        lost_set = set(lost)
        return [
            Committed(winners[r.request_id], True) if i in lost_set else Committed(r, False)
            for i, r in enumerate(records)
        ]

    def _settle(self, keys: list[str]) -> None:
        """After a failed log write: release the reservations whose decisions are not in the
        log. The write may have committed before its acknowledgement was lost, so ask the log
        first; if it cannot answer, leave them pending (counted as spent) for reconcile."""
        if not keys:
            return
        try:
            logged = self.log.logged_decisions(keys)
            self.budget.confirm([k for k in keys if k in logged])
            self.budget.release([k for k in keys if k not in logged])
        except Exception as err:
            log.warning(
                "budget reservations left pending after a failed log write",
                extra={"event": "budget_settle_failed", "error": repr(err), "pending": len(keys)},
            )

    def reconcile(self, grace_us: int, now_us: int) -> int:
        """Settle reservations older than the grace period (their worker died)."""
        return self.budget.reconcile(self.log.logged_decisions, now_us - grace_us)

    def budget_state(self) -> BudgetState:
        return self.budget.state()

    def ping(self) -> None:
        self.log.ping()
        self.budget.ping()

    def close(self) -> None:
        self.log.close()
        self.budget.close()
