"""The rollout store: each rollout's current state, its append-only history, the workers'
counters and the controller lease, in one SQLite file or one PostgreSQL database.

Every ``liftwise serve`` worker of a campaign polls :meth:`RolloutStore.active` (every
0.5 s), so all of them agree on the step, and the state survives a restart of every
worker. Every change of state is a compare-and-set on ``version`` plus one history row in
the same transaction: two controllers (or a controller and ``liftwise rollout abort``)
acting on the same version cannot both win, and nothing changes without its history row.
The history is append-only (triggers refuse UPDATE and DELETE), and it answers "what was
in effect at time T, and why" (:meth:`RolloutStore.state_at`).

Connections: SQLite is :class:`liftwise.sqlite.SqliteDatabase` (WAL, one connection per
thread, ``BEGIN IMMEDIATE`` writes behind a thread lock and an ``flock``); PostgreSQL is
psycopg 3 with one autocommit connection per thread, a write being one explicit
transaction that locks the rollout's row (``SELECT ... FOR UPDATE``). Reads are one
indexed SELECT; the stored plan's JSON is parsed once per distinct text (cached).

Tables (plain columns, integer microsecond UTC times, JSON as text, so a later migration
is plain SQL): ``rollouts`` (one row per rollout name; starting a finished name again
replaces it), ``rollout_history``, ``rollout_counters`` (one row per rollout, step,
worker and variant: that worker's cumulative counts), ``rollout_leases``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, get_args

from liftwise.errors import UserError
from liftwise.postgres import ThreadConnections
from liftwise.rollout.measure import VariantCounters
from liftwise.rollout.plan import RolloutPlan
from liftwise.rollout.split import VARIANTS, Variant
from liftwise.sqlite import SqliteDatabase, sqlite_path

Status = Literal["running", "paused", "aborted", "completed", "promoted"]
STATUSES: tuple[Status, ...] = get_args(Status)
ACTIVE: tuple[Status, ...] = ("running", "paused", "completed")  # workers serve the split
FINAL: tuple[Status, ...] = ("aborted", "promoted")  # no transition leaves these
Kind = Literal["transition", "evaluation"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Action = Literal[
    "start", "advance", "hold", "pause", "resume", "abort", "rollback", "complete", "promote",
    "evaluate",
]  # fmt: skip
ACTIONS: tuple[Action, ...] = get_args(Action)
Verdict = Literal["pass", "fail", "hold"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
SCHEMA_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


@dataclass(frozen=True)
class RolloutState:
    """One rollout as it stands now (``share``: the candidate's share in effect, 0 when
    aborted)."""

    name: str
    campaign: str
    plan: RolloutPlan
    plan_digest: str
    status: Status
    step: int
    share: float
    step_started_us: int
    updated_us: int
    version: int
    reason: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One history row: a transition (what changed, why) or a gate evaluation (its verdict
    and evidence); ``status``, ``step`` and ``share`` are those in effect after it."""

    id: int
    rollout: str
    at_us: int
    kind: Kind
    action: Action
    status: Status
    step: int
    share: float
    verdict: Verdict | None
    reason: str | None
    evidence: str  # JSON text


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _ddl(prefix: str, history_id: str) -> list[str]:
    """CREATE statements for both dialects (``prefix``: ``schema.`` or empty)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {prefix}rollouts (
  name TEXT PRIMARY KEY,
  campaign TEXT NOT NULL,
  plan_json TEXT NOT NULL,
  plan_digest TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ({_in(STATUSES)})),
  step INTEGER NOT NULL,
  share DOUBLE PRECISION NOT NULL,
  created_us BIGINT NOT NULL,
  step_started_us BIGINT NOT NULL,
  updated_us BIGINT NOT NULL,
  version BIGINT NOT NULL,
  reason TEXT
)""",
        # at most one active rollout per campaign, even for creates racing on PostgreSQL
        f"CREATE UNIQUE INDEX IF NOT EXISTS rollouts_one_active ON {prefix}rollouts (campaign) "
        f"WHERE status IN ({_in(ACTIVE)})",
        f"""CREATE TABLE IF NOT EXISTS {prefix}rollout_history (
  id {history_id},
  rollout TEXT NOT NULL,
  at_us BIGINT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ({_in(KINDS)})),
  action TEXT NOT NULL CHECK (action IN ({_in(ACTIONS)})),
  status TEXT NOT NULL,
  step INTEGER NOT NULL,
  share DOUBLE PRECISION NOT NULL,
  verdict TEXT CHECK (verdict IS NULL OR verdict IN ({_in(VERDICTS)})),
  reason TEXT,
  evidence TEXT NOT NULL
)""",
        f"CREATE INDEX IF NOT EXISTS rollout_history_at ON {prefix}rollout_history "
        "(rollout, kind, at_us)",
        f"""CREATE TABLE IF NOT EXISTS {prefix}rollout_counters (
  rollout TEXT NOT NULL,
  step INTEGER NOT NULL,
  worker TEXT NOT NULL,
  variant TEXT NOT NULL CHECK (variant IN ({_in(VARIANTS)})),
  decisions BIGINT NOT NULL,
  errors BIGINT NOT NULL,
  timeouts BIGINT NOT NULL,
  treated BIGINT NOT NULL,
  latency TEXT NOT NULL,
  updated_us BIGINT NOT NULL,
  PRIMARY KEY (rollout, step, worker, variant)
)""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}rollout_leases (
  rollout TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_us BIGINT NOT NULL
)""",
    ]


_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS rollout_history_no_{op.lower()} BEFORE {op} ON "
    "rollout_history BEGIN SELECT RAISE(ABORT, 'the rollout history is append-only'); END"
    for op in ("UPDATE", "DELETE")
]


def _postgres_triggers(prefix: str) -> list[tuple[str, str]]:
    """(trigger name, CREATE TRIGGER) pairs; the function is created or replaced."""
    function = f"{prefix}rollout_history_append_only"
    return [
        (
            "rollout_history_append_only",
            f"CREATE TRIGGER rollout_history_append_only BEFORE UPDATE OR DELETE ON "
            f"{prefix}rollout_history FOR EACH ROW EXECUTE FUNCTION {function}()",
        ),
        (
            "rollout_history_no_truncate",
            f"CREATE TRIGGER rollout_history_no_truncate BEFORE TRUNCATE ON "
            f"{prefix}rollout_history FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ),
    ]


# --------------------------------------------------------------------------- connections


class _Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class _Executor(Protocol):
    def __call__(self, sql: str, params: Sequence[object] = ()) -> _Cursor: ...


class _Backend(Protocol):
    """What the store needs of a database: reads, one write transaction, the dialect."""

    prefix: str  # "schema." or ""
    for_update: str  # row lock inside a write transaction (SQLite locks the whole file)
    integrity_errors: tuple[type[Exception], ...]

    def read(self, sql: str, params: Sequence[object] = ()) -> list[Any]: ...

    def write(self) -> contextlib.AbstractContextManager[_Executor]: ...

    def close(self) -> None: ...


class _SqliteBackend:
    def __init__(self, db: SqliteDatabase) -> None:
        import sqlite3

        self.db = db
        self.prefix = ""
        self.for_update = ""
        self.integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
        with self.write() as execute:
            for statement in [*_ddl("", "INTEGER PRIMARY KEY AUTOINCREMENT"), *_SQLITE_TRIGGERS]:
                execute(statement)

    def read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return self.db.connection().execute(sql, tuple(params)).fetchall()

    @contextlib.contextmanager
    def write(self) -> Iterator[_Executor]:
        with self.db.transaction() as conn:

            def execute(sql: str, params: Sequence[object] = ()) -> _Cursor:
                return conn.execute(sql, tuple(params))

            yield execute

    def close(self) -> None:
        self.db.close()


class _PostgresBackend:
    """psycopg 3 through :class:`liftwise.postgres.ThreadConnections` (one autocommit
    connection per thread); a write is one explicit transaction."""

    def __init__(self, dsn: str, schema: str | None) -> None:
        import psycopg

        self.prefix = f"{schema}." if schema else ""
        self.for_update = " FOR UPDATE"
        self.integrity_errors: tuple[type[Exception], ...] = (psycopg.IntegrityError,)
        self._connections = ThreadConnections(dsn)
        try:
            self._create(schema)
        except psycopg.Error as err:
            self.close()
            raise UserError(
                f"cannot use the PostgreSQL rollout store: {str(err).strip()}",
                parameter="rollout_store",
            ) from None

    def _create(self, schema: str | None) -> None:
        with self.write() as execute:
            # one process at a time creates (concurrent CREATE ... IF NOT EXISTS races)
            execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"rollouts:{self.prefix}",))
            if schema:
                execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for statement in _ddl(self.prefix, "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"):
                execute(statement)
            execute(
                f"CREATE OR REPLACE FUNCTION {self.prefix}rollout_history_append_only() "
                "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'the rollout history is append-only'; END $$"
            )
            table = f"{self.prefix}rollout_history"
            for name, statement in _postgres_triggers(self.prefix):
                found = execute(
                    "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(?) AND tgname = ?",
                    (table, name),
                ).fetchone()
                if found is None:
                    execute(statement)

    def read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._connections.connection() as conn:
            return list(conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall())

    @contextlib.contextmanager
    def write(self) -> Iterator[_Executor]:
        with self._connections.connection() as conn, conn.transaction():
            yield lambda sql, params=(): conn.execute(
                sql.replace("?", "%s") if params else sql, tuple(params) or None
            )

    def close(self) -> None:
        self._connections.close()


def open_rollout_store(url: str, *, schema: str | None = None) -> RolloutStore:
    """The store at ``url``: ``sqlite:///PATH`` (created if missing) or a ``postgresql://``
    DSN (tables created if missing; ``schema``: a PostgreSQL schema to keep them in)."""
    if url.startswith(("postgresql://", "postgres://")):
        if schema is not None and not re.fullmatch(SCHEMA_PATTERN, schema):
            raise UserError(f"not a plain schema name: {schema!r}", parameter="schema")
        return RolloutStore(_PostgresBackend(url, schema))
    if schema is not None:
        raise UserError("a SQLite rollout store has no schemas", parameter="schema")
    return RolloutStore(_SqliteBackend(SqliteDatabase(sqlite_path(url, parameter="rollout_store"))))


# --------------------------------------------------------------------------- the store

_STATE_COLUMNS = (
    "name, campaign, plan_json, plan_digest, status, step, share, step_started_us, "
    "updated_us, version, reason"
)
_HISTORY_COLUMNS = (
    "id, rollout, at_us, kind, action, status, step, share, verdict, reason, evidence"
)
_COUNTER_FIELDS = ("decisions", "errors", "timeouts", "treated")


@functools.lru_cache(maxsize=64)
def _plan(plan_json: str) -> RolloutPlan:
    """Parsed once per distinct text: workers read the state twice a second."""
    return RolloutPlan.model_validate_json(plan_json)


def _state(row: Sequence[Any]) -> RolloutState:
    name, campaign, plan_json, digest, status, step, share, started, updated, version, reason = row
    return RolloutState(
        name=name,
        campaign=campaign,
        plan=_plan(plan_json),
        plan_digest=digest,
        status=status,
        step=int(step),
        share=float(share),
        step_started_us=int(started),
        updated_us=int(updated),
        version=int(version),
        reason=reason,
    )


def _entry(row: Sequence[Any]) -> HistoryEntry:
    id_, rollout, at_us, kind, action, status, step, share, verdict, reason, evidence = row
    return HistoryEntry(
        id=int(id_),
        rollout=rollout,
        at_us=int(at_us),
        kind=kind,
        action=action,
        status=status,
        step=int(step),
        share=float(share),
        verdict=verdict,
        reason=reason,
        evidence=evidence,
    )


def _check_json(text: str, parameter: str) -> str:
    try:
        json.loads(text)
    except ValueError:
        raise UserError(f"not JSON: {text[:60]!r}", parameter=parameter) from None
    return text


def _check_choice(value: str, choices: Sequence[str], parameter: str) -> None:
    if value not in choices:
        raise UserError(f"{value!r} is not one of {', '.join(choices)}", parameter=parameter)


class RolloutStore:
    """Rollout state, history, counters and leases (see the module docstring). Thread-safe:
    each thread uses its own connection."""

    def __init__(self, backend: _Backend) -> None:
        self._db = backend
        p = backend.prefix
        self._rollouts = f"{p}rollouts"
        self._history = f"{p}rollout_history"
        self._counters = f"{p}rollout_counters"
        self._leases = f"{p}rollout_leases"

    # ------------------------------------------------------------------ reads

    def get(self, name: str) -> RolloutState | None:
        rows = self._db.read(
            f"SELECT {_STATE_COLUMNS} FROM {self._rollouts} WHERE name = ?", (name,)
        )
        return _state(rows[0]) if rows else None

    def active(self, campaign: str) -> RolloutState | None:
        """The running, paused or completed rollout of ``campaign`` (at most one)."""
        rows = self._db.read(
            f"SELECT {_STATE_COLUMNS} FROM {self._rollouts} WHERE campaign = ? "
            f"AND status IN ({_in(ACTIVE)})",
            (campaign,),
        )
        return _state(rows[0]) if rows else None

    def history(
        self,
        name: str,
        *,
        since_us: int | None = None,
        until_us: int | None = None,
        kind: Kind | None = None,
    ) -> list[HistoryEntry]:
        """The rollout's history rows, oldest first, within [since_us, until_us]."""
        where: list[str] = ["rollout = ?"]
        params: list[object] = [name]
        for clause, value in (
            ("at_us >= ?", since_us),
            ("at_us <= ?", until_us),
            ("kind = ?", kind),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self._db.read(
            f"SELECT {_HISTORY_COLUMNS} FROM {self._history} WHERE {' AND '.join(where)} "
            "ORDER BY id",
            params,
        )
        return [_entry(r) for r in rows]

    def state_at(self, name: str, at_us: int) -> HistoryEntry | None:
        """The last transition at or before ``at_us``: what was in effect then (None before
        the rollout started)."""
        rows = self._db.read(
            f"SELECT {_HISTORY_COLUMNS} FROM {self._history} WHERE rollout = ? "
            "AND kind = 'transition' AND at_us <= ? ORDER BY id DESC LIMIT 1",
            (name, at_us),
        )
        return _entry(rows[0]) if rows else None

    def counters(self, name: str, step: int) -> dict[Variant, VariantCounters]:
        """The step's counters per variant, summed over workers (variants without any
        row are left out)."""
        rows = self._db.read(
            f"SELECT variant, {', '.join(_COUNTER_FIELDS)}, latency FROM {self._counters} "
            "WHERE rollout = ? AND step = ? ORDER BY variant, worker",
            (name, step),
        )
        total: dict[Variant, VariantCounters] = {}
        for variant, decisions, errors, timeouts, treated, latency in rows:
            counts = VariantCounters(
                int(decisions), int(errors), int(timeouts), int(treated), json.loads(latency)
            )
            total[variant] = total[variant].add(counts) if variant in total else counts
        return total

    def ping(self) -> None:
        self._db.read(f"SELECT 1 FROM {self._rollouts} LIMIT 1")

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ writes

    def _locked(self, execute: _Executor, name: str) -> RolloutState | None:
        row = execute(
            f"SELECT {_STATE_COLUMNS} FROM {self._rollouts} WHERE name = ?{self._db.for_update}",
            (name,),
        ).fetchone()
        return None if row is None else _state(row)

    def _existing(self, execute: _Executor, name: str) -> RolloutState:
        state = self._locked(execute, name)
        if state is None:
            raise UserError(f"no rollout named {name!r}", parameter="name")
        return state

    def _append(
        self,
        execute: _Executor,
        state: RolloutState,
        *,
        kind: Kind,
        action: Action,
        verdict: Verdict | None,
        reason: str | None,
        evidence_json: str,
        now_us: int,
    ) -> HistoryEntry:
        """One history row; its time is never before the rollout's previous row, so time
        order and row order agree even when a clock steps back."""
        last = execute(
            f"SELECT MAX(at_us) FROM {self._history} WHERE rollout = ?", (state.name,)
        ).fetchone()[0]
        at_us = max(int(now_us), int(last)) if last is not None else int(now_us)
        values = (state.name, at_us, kind, action, state.status, state.step, state.share)
        row = execute(
            f"INSERT INTO {self._history} (rollout, at_us, kind, action, status, step, share, "
            "verdict, reason, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (*values, verdict, reason, evidence_json),
        ).fetchone()
        return HistoryEntry(int(row[0]), *values, verdict, reason, evidence_json)

    def create(
        self, plan: RolloutPlan, now_us: int, *, by: str | None = None, note: str = ""
    ) -> RolloutState:
        """Start ``plan``: status running at step 0, and a 'start' history row holding the
        plan. A name is used once: the exposure log, the outcomes and the history identify
        a rollout by its name, so reusing a finished one would mix two runs' evidence."""
        try:
            with self._db.write() as execute:
                return self._create(execute, plan, now_us, by=by, note=note)
        except self._db.integrity_errors:  # a concurrent create won the race
            raise UserError(
                f"rollout {plan.name!r} or another rollout of campaign {plan.campaign!r} "
                "was started at the same time",
                parameter="plan",
            ) from None

    def _create(
        self, execute: _Executor, plan: RolloutPlan, now_us: int, *, by: str | None, note: str
    ) -> RolloutState:
        existing = self._locked(execute, plan.name)
        if existing is not None and existing.status not in FINAL:
            raise UserError(
                f"rollout {plan.name!r} exists and is {existing.status}: abort it first, "
                "or name the plan differently",
                parameter="plan",
            )
        if existing is not None:
            raise UserError(
                f"rollout name {plan.name!r} was used before ({existing.status}); a name "
                "identifies one run in the exposure log and the history: name the plan anew",
                parameter="plan",
            )
        other = execute(
            f"SELECT name, status FROM {self._rollouts} WHERE campaign = ? "
            f"AND status IN ({_in(ACTIVE)})",
            (plan.campaign,),
        ).fetchone()
        if other is not None:
            raise UserError(
                f"campaign {plan.campaign!r} already has rollout {other[0]!r} ({other[1]}): "
                "one rollout per campaign at a time",
                parameter="plan",
            )
        state = RolloutState(
            name=plan.name,
            campaign=plan.campaign,
            plan=plan,
            plan_digest=plan.digest(),
            status="running",
            step=0,
            share=plan.steps[0].share,
            step_started_us=now_us,
            updated_us=now_us,
            version=1,
            reason=None,
        )
        evidence = json.dumps(
            {
                "plan_digest": state.plan_digest,
                "plan": plan.model_dump(mode="json"),
                "by": by,
                "note": note,
            }
        )
        entry = self._append(
            execute,
            state,
            kind="transition",
            action="start",
            verdict=None,
            reason=f"started by {by}" if by else "started",
            evidence_json=evidence,
            now_us=now_us,
        )
        state = replace(state, step_started_us=entry.at_us, updated_us=entry.at_us)
        execute(
            f"INSERT INTO {self._rollouts} ({_STATE_COLUMNS}, created_us) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                state.name,
                state.campaign,
                plan.model_dump_json(),
                state.plan_digest,
                state.status,
                state.step,
                state.share,
                state.step_started_us,
                state.updated_us,
                state.version,
                state.reason,
                entry.at_us,
            ),
        )
        return state

    def transition(
        self,
        name: str,
        expected_version: int,
        *,
        status: Status,
        step: int,
        share: float,
        action: Action,
        reason: str | None = None,
        evidence_json: str = "{}",
        now_us: int,
    ) -> RolloutState | None:
        """Move the rollout to (status, step, share) if its version is still
        ``expected_version``, with one history row; None when another writer moved it first
        (read it again and decide again). Aborted and promoted rollouts never change."""
        _check_choice(status, STATUSES, "status")
        _check_choice(action, ACTIONS, "action")
        _check_json(evidence_json, "evidence_json")
        if not 0.0 <= share <= 1.0:
            raise UserError(f"share {share} is not in [0, 1]", parameter="share")
        with self._db.write() as execute:
            current = self._existing(execute, name)
            if current.version != expected_version:
                return None
            if current.status in FINAL:
                raise UserError(
                    f"rollout {name!r} is {current.status}: it is over", parameter="name"
                )
            if not 0 <= step < len(current.plan.steps):
                raise UserError(f"the plan has no step {step}", parameter="step")
            moved = replace(
                current,
                status=status,
                step=step,
                share=float(share),
                reason=reason,
                version=current.version + 1,
            )
            entry = self._append(
                execute,
                moved,
                kind="transition",
                action=action,
                verdict=None,
                reason=reason,
                evidence_json=evidence_json,
                now_us=now_us,
            )
            started = entry.at_us if step != current.step else current.step_started_us
            moved = replace(moved, step_started_us=started, updated_us=entry.at_us)
            execute(
                f"UPDATE {self._rollouts} SET status = ?, step = ?, share = ?, "
                "step_started_us = ?, updated_us = ?, version = ?, reason = ? "
                "WHERE name = ? AND version = ?",
                (
                    moved.status,
                    moved.step,
                    moved.share,
                    moved.step_started_us,
                    moved.updated_us,
                    moved.version,
                    moved.reason,
                    name,
                    expected_version,
                ),
            )
            return moved

    def record_evaluation(
        self,
        name: str,
        *,
        step: int,
        verdict: Verdict,
        reason: str | None,
        evidence_json: str,
        now_us: int,
    ) -> HistoryEntry:
        """Append a gate evaluation of ``step`` (status and share: the rollout's now)."""
        _check_choice(verdict, VERDICTS, "verdict")
        _check_json(evidence_json, "evidence_json")
        with self._db.write() as execute:
            current = replace(self._existing(execute, name), step=step)
            return self._append(
                execute,
                current,
                kind="evaluation",
                action="evaluate",
                verdict=verdict,
                reason=reason,
                evidence_json=evidence_json,
                now_us=now_us,
            )

    def flush_counters(
        self,
        name: str,
        step: int,
        worker: str,
        counters: Mapping[Variant, VariantCounters],
        now_us: int,
    ) -> None:
        """Write this worker's cumulative counts of the step (each call replaces the
        worker's previous row per variant; the sum over workers is :meth:`counters`)."""
        for variant in counters:
            _check_choice(variant, VARIANTS, "counters")
        sql = (
            f"INSERT INTO {self._counters} (rollout, step, worker, variant, "
            f"{', '.join(_COUNTER_FIELDS)}, latency, updated_us) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rollout, step, worker, variant) "
            "DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in (*_COUNTER_FIELDS, "latency", "updated_us"))
        )
        with self._db.write() as execute:
            for variant, counts in counters.items():
                execute(
                    sql,
                    (
                        name,
                        step,
                        worker,
                        variant,
                        counts.decisions,
                        counts.errors,
                        counts.timeouts,
                        counts.treated,
                        json.dumps(counts.latency),
                        now_us,
                    ),
                )

    def acquire_lease(self, name: str, holder: str, ttl_us: int, now_us: int) -> bool:
        """Take or renew the rollout's controller lease until ``now_us + ttl_us``: True when
        ``holder`` has it (it held it already, or it was absent or expired), False while
        another holder's lease runs. One atomic upsert, so at most one holder at a time.
        Times are the callers' clocks: keep ``ttl_us`` well above the clock skew between
        machines (and renew well within it)."""
        if ttl_us <= 0:
            raise UserError(f"the lease time {ttl_us} µs must be positive", parameter="ttl_us")
        with self._db.write() as execute:
            row = execute(
                f"INSERT INTO {self._leases} AS lease (rollout, holder, expires_us) "
                "VALUES (?, ?, ?) ON CONFLICT (rollout) DO UPDATE SET holder = excluded.holder, "
                "expires_us = excluded.expires_us "
                "WHERE lease.holder = excluded.holder OR lease.expires_us <= ? RETURNING holder",
                (name, holder, now_us + ttl_us, now_us),
            ).fetchone()
        return row is not None

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (a worker shutting down), so another takes it at once."""
        with self._db.write() as execute:
            execute(f"DELETE FROM {self._leases} WHERE rollout = ? AND holder = ?", (name, holder))
