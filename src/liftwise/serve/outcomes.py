"""Outcomes of logged decisions, and the per-variant measurements a rollout reads.

An outcome (what a unit did after a decision: revenue, and the cost if it is known) is
stored once per decision in ``<exposure table>_outcomes``, in the exposure log's own
database, so joining the two is one SQL query. A client names the decision by its
``decision_id``, or by ``unit_id``: the unit's latest decision in the campaign at or
before the outcome's time. Recording is idempotent (the same values again are a replay)
and a batch is one transaction: one refused outcome refuses them all, as with decisions.

The rollout's gates read :meth:`OutcomeStore.profit_moments` (net profit per exposure
with an outcome, per variant, as count, sum and sum of squares: enough for a Welch test
and cheap to aggregate in SQL); the status page reads :meth:`OutcomeStore.variant_totals`.
"""

from __future__ import annotations

import abc
import bisect
import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from liftwise.contracts.exposure_log import OUTCOME_LOG, OUTCOME_TABLE_SUFFIX
from liftwise.errors import UserError
from liftwise.rollout.measure import ProfitMoments
from liftwise.rollout.split import VARIANTS, Variant
from liftwise.serve.budget import from_ledger_units
from liftwise.serve.config import TABLE_NAME
from liftwise.serve.engine import EPOCH
from liftwise.serve.exposures import (
    ExposureLog,
    PostgresExposureLog,
    SqliteExposureLog,
    column_sql,
    open_exposure_log,
)
from liftwise.times import utc_timestamps

OUTCOME_COLUMNS = tuple(OUTCOME_LOG.column_names)
IN_CHUNK = 500  # ids per IN (...) list on SQLite


@dataclass(frozen=True, slots=True)
class OutcomeInput:
    """One outcome to record: ``decision_id`` or ``unit_id`` names its decision."""

    decision_id: str | None
    unit_id: int | None
    revenue: float
    cost: float | None = None
    observed_at_us: int | None = None  # default: when it is recorded


@dataclass(frozen=True, slots=True)
class OutcomeResult:
    """An outcome as stored (``cost`` None: the decision's ``expected_cost`` counts)."""

    decision_id: str
    request_id: str
    unit_id: int
    campaign: str
    revenue: float
    cost: float | None
    expected_cost: float
    observed_at_us: int
    received_at_us: int
    replayed: bool

    @property
    def counted_cost(self) -> float:
        return self.expected_cost if self.cost is None else self.cost

    @property
    def net_profit(self) -> float:
        return self.revenue - self.counted_cost


class OutcomeRefusal(Exception):
    """An outcome that cannot be recorded: the HTTP status and code, the outcome's index
    and the field at fault (the route names it ``outcomes[3].decision_id``, the batch
    import the file's column and row)."""

    def __init__(self, status: int, code: str, index: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.index, self.field = status, code, index, field
        self.message = message


@dataclass(frozen=True, slots=True)
class _Exposure:
    """The columns of a logged decision an outcome needs."""

    decision_id: str
    request_id: str
    unit_id: int
    campaign: str
    expected_cost: float
    decided_at_us: int


@dataclass(frozen=True)
class VariantTotals:
    """One variant's decisions and outcomes over a rollout (or one of its steps)."""

    decisions: int = 0
    treated: int = 0
    spend: float = 0.0  # reserved budget, in currency
    expected_profit: float = 0.0
    outcomes: int = 0  # decisions with an outcome
    revenue: float = 0.0
    net_profit: float = 0.0  # revenue - cost over the decisions with an outcome


_EXPOSURE = "decision_id, request_id, unit_id, campaign, expected_cost, decided_at_us"


def _net(outcomes: str = "o", exposures: str = "e") -> str:
    return f"({outcomes}.revenue - COALESCE({outcomes}.cost, {exposures}.expected_cost))"


class OutcomeStore(abc.ABC):
    """Outcomes beside an exposure log (SQLite or PostgreSQL: the subclasses say how to
    open a transaction and how to pass a list of ids)."""

    placeholder = "?"

    def __init__(self, exposure_table: str) -> None:
        table = exposure_table + OUTCOME_TABLE_SUFFIX
        if not TABLE_NAME.match(table):
            raise UserError(
                f"{exposure_table!r} is too long for its outcomes table {table!r}",
                parameter="exposure_table",
            )
        self.table = table
        self.exposures = exposure_table
        columns = ",\n  ".join(column_sql(name, OUTCOME_LOG) for name in OUTCOME_COLUMNS)
        self._ddl = f"CREATE TABLE IF NOT EXISTS {table} (\n  {columns}\n)"
        marks = ", ".join([self.placeholder] * len(OUTCOME_COLUMNS))
        self._insert = f"INSERT INTO {table} ({', '.join(OUTCOME_COLUMNS)}) VALUES ({marks})"

    # ---- what a backend provides

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A write transaction, outcome writers serialized (read, check, then insert)."""
        ...

    @abc.abstractmethod
    def reader(self) -> contextlib.AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def select_in(
        self, conn: Any, sql: str, params: Sequence[Any], column: str, values: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (ending in a WHERE clause) AND ``column`` in ``values``."""
        ...

    @abc.abstractmethod
    def close(self) -> None: ...

    # ---- recording

    def record(
        self, outcomes: Sequence[OutcomeInput], campaign: str, now_us: int
    ) -> list[OutcomeResult]:
        """Record the outcomes in one transaction, joined to their decisions (unit ids in
        ``campaign``); one result per outcome, in order. Raises OutcomeRefusal (nothing
        recorded) for an outcome without its decision, one whose decision has other values
        recorded, or one observed before its decision."""
        with self.transaction() as conn:
            decisions = self._join(conn, outcomes, campaign, now_us)
            stored = self._stored(conn, [d.decision_id for d in decisions])
            results, new = _compare(outcomes, decisions, stored, now_us)
            if new:
                conn.executemany(self._insert, [_row(r) for r in new])
        return results

    def _join(
        self, conn: Any, outcomes: Sequence[OutcomeInput], campaign: str, now_us: int
    ) -> list[_Exposure]:
        """The decision of each outcome (by decision id, else by unit and time)."""
        by_id = {
            row[0]: _Exposure(*row)
            for row in self.select_in(
                conn,
                f"SELECT {_EXPOSURE} FROM {self.exposures} WHERE TRUE",
                (),
                "decision_id",
                list({o.decision_id for o in outcomes if o.decision_id is not None}),
            )
        }
        by_unit = self._unit_history(conn, outcomes, campaign, now_us)
        joined = []
        for index, item in enumerate(outcomes):
            observed = now_us if item.observed_at_us is None else item.observed_at_us
            if item.decision_id is not None:
                exposure = _by_decision(index, item, by_id)
            elif item.unit_id is not None:
                exposure = _latest(index, item.unit_id, observed, by_unit.get(item.unit_id, []))
            else:
                raise OutcomeRefusal(
                    422, "invalid_request", index, "decision_id", "give decision_id or unit_id"
                )
            if observed < exposure.decided_at_us:
                raise OutcomeRefusal(
                    422,
                    "invalid_request",
                    index,
                    "observed_at",
                    f"before its decision {exposure.decision_id} ({_iso(exposure.decided_at_us)})",
                )
            joined.append(exposure)
        return joined

    def _unit_history(
        self, conn: Any, outcomes: Sequence[OutcomeInput], campaign: str, now_us: int
    ) -> dict[int, list[_Exposure]]:
        """The campaign's decisions for the units named without a decision id, oldest first."""
        units = [o for o in outcomes if o.decision_id is None and o.unit_id is not None]
        if not units:
            return {}
        until = max(now_us if o.observed_at_us is None else o.observed_at_us for o in units)
        mark = self.placeholder
        rows = self.select_in(
            conn,
            f"SELECT {_EXPOSURE} FROM {self.exposures} "
            f"WHERE campaign = {mark} AND decided_at_us <= {mark}",
            (campaign, until),
            "unit_id",
            list({int(o.unit_id) for o in units if o.unit_id is not None}),
        )
        history: dict[int, list[_Exposure]] = {}
        for row in sorted(rows, key=lambda r: (r[5], r[1])):  # decision time, request id
            history.setdefault(row[2], []).append(_Exposure(*row))
        return history

    def _stored(self, conn: Any, decision_ids: Sequence[str]) -> dict[str, tuple[float, Any]]:
        """(revenue, cost) of the outcomes already recorded for these decisions."""
        rows = self.select_in(
            conn,
            f"SELECT decision_id, revenue, cost FROM {self.table} WHERE TRUE",
            (),
            "decision_id",
            list(dict.fromkeys(decision_ids)),
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    # ---- measurements

    def profit_moments(self, rollout: str, step: int) -> dict[Variant, ProfitMoments]:
        """Net profit (revenue - cost, the expected cost when none was reported) of the
        step's decisions that have an outcome, per variant: n, sum, sum of squares."""
        mark, net = self.placeholder, _net()
        sql = (
            f"SELECT e.variant, COUNT(*), SUM({net}), SUM({net} * {net}) "
            f"FROM {self.exposures} e JOIN {self.table} o ON o.decision_id = e.decision_id "
            f"WHERE e.rollout = {mark} AND e.rollout_step = {mark} GROUP BY e.variant"
        )
        with self.reader() as conn:
            rows = conn.execute(sql, (rollout, step)).fetchall()
        found = {
            row[0]: ProfitMoments(int(row[1]), float(row[2]), float(row[3]))
            for row in rows
            if row[0] in VARIANTS
        }
        return {variant: found.get(variant, ProfitMoments()) for variant in VARIANTS}

    def variant_totals(self, rollout: str, step: int | None = None) -> dict[Variant, VariantTotals]:
        """Decisions, treated units, spend and expected profit of the rollout's decisions
        (of one step, or all), and the outcomes recorded for them, per variant."""
        mark, net = self.placeholder, _net()
        sql = (
            "SELECT e.variant, COUNT(*), SUM(CASE WHEN e.treated THEN 1 ELSE 0 END), "
            "SUM(e.cost_units), SUM(e.expected_profit), COUNT(o.decision_id), "
            f"COALESCE(SUM(o.revenue), 0), COALESCE(SUM({net}), 0) "
            f"FROM {self.exposures} e LEFT JOIN {self.table} o ON o.decision_id = e.decision_id "
            f"WHERE e.rollout = {mark}"
            + ("" if step is None else f" AND e.rollout_step = {mark}")
            + " GROUP BY e.variant"
        )
        with self.reader() as conn:
            rows = conn.execute(sql, (rollout,) if step is None else (rollout, step)).fetchall()
        found = {
            row[0]: VariantTotals(
                decisions=int(row[1]),
                treated=int(row[2]),
                spend=from_ledger_units(int(row[3])),
                expected_profit=float(row[4]),
                outcomes=int(row[5]),
                revenue=float(row[6]),
                net_profit=float(row[7]),
            )
            for row in rows
            if row[0] in VARIANTS
        }
        return {variant: found.get(variant, VariantTotals()) for variant in VARIANTS}

    def read_all(self) -> list[OutcomeResult]:
        """Every outcome with its decision's expected cost (tests, exports)."""
        columns = ", ".join(f"o.{c}" for c in OUTCOME_COLUMNS[:6])
        sql = (
            f"SELECT {columns}, e.expected_cost, o.observed_at_us, o.received_at_us "
            f"FROM {self.table} o JOIN {self.exposures} e ON e.decision_id = o.decision_id "
            "ORDER BY o.received_at_us, o.decision_id"
        )
        with self.reader() as conn:
            rows = conn.execute(sql).fetchall()
        names = [f.name for f in fields(OutcomeResult)][:-1]  # all but replayed
        return [OutcomeResult(**dict(zip(names, row, strict=True)), replayed=False) for row in rows]


def _iso(micros: int) -> str:
    return (EPOCH + dt.timedelta(microseconds=micros)).isoformat() + "Z"


def _by_decision(index: int, item: OutcomeInput, by_id: dict[str, _Exposure]) -> _Exposure:
    exposure = by_id.get(str(item.decision_id))
    if exposure is None:
        raise OutcomeRefusal(
            404,
            "unknown_decision",
            index,
            "decision_id",
            f"no logged decision {item.decision_id}",
        )
    if item.unit_id is not None and item.unit_id != exposure.unit_id:
        raise OutcomeRefusal(
            422,
            "invalid_request",
            index,
            "unit_id",
            f"decision {exposure.decision_id} was for unit {exposure.unit_id}",
        )
    return exposure


def _latest(index: int, unit_id: int, observed_us: int, history: list[_Exposure]) -> _Exposure:
    """The unit's last decision at or before the outcome."""
    position = bisect.bisect_right([e.decided_at_us for e in history], observed_us)
    if position == 0:
        raise OutcomeRefusal(
            404,
            "unknown_decision",
            index,
            "unit_id",
            f"no logged decision for unit {unit_id} in this campaign at or before the outcome",
        )
    return history[position - 1]


def _compare(
    outcomes: Sequence[OutcomeInput],
    decisions: Sequence[_Exposure],
    stored: dict[str, tuple[float, Any]],
    now_us: int,
) -> tuple[list[OutcomeResult], list[OutcomeResult]]:
    """(a result per outcome, the new ones to insert): an outcome whose decision has
    one already (stored, or earlier in the batch) is a replay when the values agree."""
    seen = dict(stored)
    results, new = [], []
    for index, (item, exposure) in enumerate(zip(outcomes, decisions, strict=True)):
        values = (item.revenue, item.cost)
        previous = seen.get(exposure.decision_id)
        if previous is not None and previous != values:
            raise OutcomeRefusal(
                409,
                "outcome_conflict",
                index,
                "decision_id",
                f"decision {exposure.decision_id} already has an outcome (revenue "
                f"{previous[0]}, cost {previous[1]}) that differs from this one",
            )
        result = OutcomeResult(
            decision_id=exposure.decision_id,
            request_id=exposure.request_id,
            unit_id=exposure.unit_id,
            campaign=exposure.campaign,
            revenue=item.revenue,
            cost=item.cost,
            expected_cost=exposure.expected_cost,
            observed_at_us=now_us if item.observed_at_us is None else item.observed_at_us,
            received_at_us=now_us,
            replayed=previous is not None,
        )
        if previous is None:
            new.append(result)
            seen[exposure.decision_id] = values
        results.append(result)
    return results, new


def _row(result: OutcomeResult) -> tuple[Any, ...]:
    return (
        result.decision_id,
        result.request_id,
        result.unit_id,
        result.campaign,
        result.revenue,
        result.cost,
        result.observed_at_us,
        result.received_at_us,
    )


# --------------------------------------------------------------------------- SQLite


class SqliteOutcomeStore(OutcomeStore):
    """Outcomes in the SQLite file of the exposure log (and of the budget)."""

    def __init__(self, log: SqliteExposureLog) -> None:
        super().__init__(log.table)
        self.log = log
        with log.db.transaction() as conn:
            conn.execute(self._ddl)

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self.log.db.transaction()  # BEGIN IMMEDIATE: one writer at a time

    @contextlib.contextmanager
    def reader(self) -> Iterator[Any]:
        yield self.log.db.connection()

    def select_in(
        self, conn: Any, sql: str, params: Sequence[Any], column: str, values: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(values), IN_CHUNK):
            chunk = values[start : start + IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows += conn.execute(f"{sql} AND {column} IN ({marks})", (*params, *chunk)).fetchall()
        return rows

    def close(self) -> None:
        self.log.close()


# --------------------------------------------------------------------------- PostgreSQL


class PostgresOutcomeStore(OutcomeStore):
    """Outcomes in the PostgreSQL database of the exposure log (same schema)."""

    placeholder = "%s"

    def __init__(self, log: PostgresExposureLog) -> None:
        super().__init__(log.table)
        self.log = log
        import psycopg

        try:
            with self.transaction() as conn:
                conn.execute(self._ddl)
        except psycopg.Error as err:
            raise UserError(
                f"cannot use the PostgreSQL outcomes table: {str(err).strip()}",
                parameter="exposure_log",
            ) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.log.connection() as conn, conn.transaction():
            # outcome writers queue here: each reads what is recorded, then inserts
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
            with conn.cursor() as cursor:
                yield cursor

    @contextlib.contextmanager
    def reader(self) -> Iterator[Any]:
        with self.log.connection() as conn:
            yield conn

    def select_in(
        self, conn: Any, sql: str, params: Sequence[Any], column: str, values: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        if not values:
            return []
        return list(conn.execute(f"{sql} AND {column} = ANY(%s)", (*params, list(values))))

    def close(self) -> None:
        self.log.close()


def outcome_store(log: ExposureLog) -> OutcomeStore:
    """The outcome store beside an open exposure log (sharing its connections)."""
    if isinstance(log, SqliteExposureLog):
        return SqliteOutcomeStore(log)
    if isinstance(log, PostgresExposureLog):
        return PostgresOutcomeStore(log)
    raise TypeError(f"no outcome store for a {type(log).__name__}")


def open_outcomes(url: str, exposure_table: str = "exposures") -> OutcomeStore:
    """The exposure log a URL names and its outcomes (close() closes both)."""
    return outcome_store(open_exposure_log(url, exposure_table))


# --------------------------------------------------------------------------- files


def outcomes_from_table(table: pa.Table, source: str) -> list[OutcomeInput]:
    """A file's rows as outcomes: ``decision_id`` or ``unit_id`` (either column or both;
    in every row one of them), ``revenue``, optional ``cost`` and ``observed_at`` (ISO
    times or timestamps; missing: when recorded). A UserError names column and row."""
    names = set(table.column_names)
    if "revenue" not in names:
        raise UserError("no revenue column", file=source, column="revenue")
    if not names & {"decision_id", "unit_id"}:
        raise UserError("needs a decision_id or a unit_id column", file=source)
    frame = table.to_pandas()
    n = len(frame)
    revenue = _numbers(frame["revenue"], source, "revenue", required=True)
    cost = _numbers(frame["cost"], source, "cost") if "cost" in names else [None] * n
    decisions = _texts(frame["decision_id"]) if "decision_id" in names else [None] * n
    units = _unit_ids(frame["unit_id"], source) if "unit_id" in names else [None] * n
    observed = _micros(frame["observed_at"], source) if "observed_at" in names else [None] * n
    for row in range(n):
        if decisions[row] is None and units[row] is None:
            raise UserError(
                "give decision_id or unit_id", file=source, column="decision_id", row=row
            )
    return [
        OutcomeInput(decisions[r], units[r], float(revenue[r]), cost[r], observed[r])
        for r in range(n)
    ]


def _numbers(values: pd.Series, source: str, column: str, *, required: bool = False) -> list[Any]:
    """Finite numbers (None where missing, unless ``required``); costs are >= 0."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
    missing = values.isna().to_numpy()
    bad = (~missing & ~np.isfinite(numbers)) | (
        missing if required else np.zeros(len(values), bool)
    )
    if column == "cost":
        bad |= ~missing & (numbers < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = "a cost >= 0" if column == "cost" else "a finite number"
        raise UserError(f"not {what}: {values.iloc[row]!r}", file=source, column=column, row=row)
    return [
        None if m else float(x) for x, m in zip(numbers.tolist(), missing.tolist(), strict=True)
    ]


def _texts(values: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) or str(v) == "" else str(v) for v in values.tolist()]


def _unit_ids(values: pd.Series, source: str) -> list[int | None]:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    missing = values.isna().to_numpy()
    bad = ~missing & ~((numbers >= 0) & (numbers == np.floor(numbers)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"not a unit id: {values.iloc[row]!r}", file=source, column="unit_id", row=row
        )
    as_int = pd.to_numeric(values.where(~missing), errors="coerce").astype("Int64")
    return [None if m else int(v) for v, m in zip(as_int.tolist(), missing.tolist(), strict=True)]


def _micros(values: pd.Series, source: str) -> list[int | None]:
    """Times as µs since the epoch (None where missing); errors name the file's row."""
    present = ~values.isna().to_numpy()
    rows = np.flatnonzero(present)
    try:
        stamps = utc_timestamps(values[present], file=source, column="observed_at")
    except UserError as err:
        raise UserError(
            err.message, file=source, column="observed_at", row=int(rows[err.row or 0])
        ) from None
    out: list[int | None] = [None] * len(values)
    for row, ns in zip(rows.tolist(), stamps.astype("int64").tolist(), strict=True):
        out[row] = ns // 1000
    return out
