"""The rollout store on SQLite and on PostgreSQL: state, compare-and-set transitions, the
append-only history, counters summed over workers, the controller lease, restarts and
concurrent writers."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from liftwise.errors import UserError
from liftwise.rollout.measure import LATENCY_BOUNDS_MS, VariantCounters
from liftwise.rollout.plan import RolloutPlan, parse_plan
from liftwise.rollout.store import (
    Action,
    RolloutState,
    RolloutStore,
    Status,
    open_rollout_store,
)

T0 = 1_700_000_000_000_000  # µs


def make_plan(name: str = "fintech-v4", campaign: str = "spring") -> RolloutPlan:
    return parse_plan(
        {
            "name": name,
            "campaign": campaign,
            "candidate": {"model_name": "liftwise-fintech", "version": 4},
            "baseline": {"champion": "liftwise-fintech"},
            "holdout": 0.05,
            "steps": [
                {"name": "canary", "share": 0.01},
                {"name": "ramp", "share": 0.1},
                {"name": "full", "share": 1.0},
            ],
        }
    )


def counts(decisions: int, errors: int = 0, slow: int = 0) -> VariantCounters:
    """``decisions`` fast answers (1 ms), ``errors`` 5xx, ``slow`` of them at 100 ms."""
    out = VariantCounters()
    for i in range(decisions + errors):
        out.record(100.0 if i < slow else 1.0, error=i >= decisions, treated=i % 2 == 0)
    return out


def move(
    store: RolloutStore,
    name: str,
    version: int,
    status: Status,
    step: int,
    share: float,
    action: Action,
    now_us: int,
    **extra: str,
) -> RolloutState | None:
    """One transition (reason, evidence_json in ``extra``)."""
    return store.transition(
        name, version, status=status, step=step, share=share, action=action, now_us=now_us,
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


class Backend:
    """How to open (and reopen) one store, and to reach its history table directly."""

    def __init__(self, url: str, schema: str | None) -> None:
        self.url = url
        self.schema = schema

    def open(self) -> RolloutStore:
        return open_rollout_store(self.url, schema=self.schema)

    def raw_history(self, statement: str) -> None:
        """Run ``statement`` on the history table behind the store's back ({table} in it)."""
        if self.url.startswith("sqlite:///"):
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            try:
                conn.execute(statement.format(table="rollout_history"))
                conn.commit()
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement.format(table=f"{self.schema}.rollout_history"))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend(f"sqlite:///{tmp_path / 'rollouts.db'}", None)
        return
    import psycopg

    dsn = request.getfixturevalue("postgres_dsn")
    schema = f"rollout_test_{uuid.uuid4().hex[:12]}"
    yield Backend(dsn, schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def store(backend: Backend) -> Iterator[RolloutStore]:
    opened = backend.open()
    yield opened
    opened.close()


def test_create_get_active(store: RolloutStore):
    plan = make_plan()
    assert store.get(plan.name) is None and store.active("spring") is None
    state = store.create(plan, T0)
    assert (state.status, state.step, state.share, state.version) == ("running", 0, 0.01, 1)
    assert state.plan == plan and state.plan_digest == plan.digest()
    assert store.get(plan.name) == state
    assert store.active("spring") == state
    assert store.active("autumn") is None
    [start] = store.history(plan.name)
    assert (start.kind, start.action, start.status, start.share) == (
        "transition",
        "start",
        "running",
        0.01,
    )
    assert json.loads(start.evidence)["plan_digest"] == plan.digest()


def test_second_active_rollout_of_a_campaign_is_refused(store: RolloutStore):
    store.create(make_plan("first"), T0)
    with pytest.raises(UserError, match="already has rollout 'first'") as err:
        store.create(make_plan("second"), T0 + 1)
    assert err.value.parameter == "plan" and "\n" not in str(err.value)
    with pytest.raises(UserError, match="exists and is running"):
        store.create(make_plan("first"), T0 + 2)
    assert store.create(make_plan("elsewhere", campaign="autumn"), T0 + 3).campaign == "autumn"


def test_a_finished_name_is_never_reused(store: RolloutStore):
    plan = make_plan()
    state = store.create(plan, T0)
    store.flush_counters(plan.name, 0, "w1", {"candidate": counts(10)}, T0 + 1)
    aborted = move(
        store, plan.name, state.version, "aborted", 0, 0.0, "abort", T0 + 2, reason="by hand"
    )
    assert aborted is not None and store.active("spring") is None
    with pytest.raises(UserError, match="was used before") as err:
        store.create(plan, T0 + 3)
    assert err.value.parameter == "plan" and "\n" not in str(err.value)
    assert store.counters(plan.name, 0)["candidate"].decisions == 10
    assert [e.action for e in store.history(plan.name)] == ["start", "abort"]


def test_compare_and_set_one_writer_wins(store: RolloutStore):
    state = store.create(make_plan(), T0)
    first = move(
        store,
        state.name,
        state.version,
        "running",
        1,
        0.1,
        "advance",
        T0 + 10,
        reason="gates passed",
        evidence_json='{"gates": []}',
    )
    second = move(
        store, state.name, state.version, "aborted", 0, 0.0, "rollback", T0 + 11, reason="late"
    )
    assert first is not None and second is None
    assert (first.step, first.share, first.version, first.step_started_us) == (1, 0.1, 2, T0 + 10)
    assert store.get(state.name) == first
    assert [e.action for e in store.history(state.name)] == ["start", "advance"]


def test_aborted_rollouts_never_change_and_bad_values_are_refused(store: RolloutStore):
    state = store.create(make_plan(), T0)
    with pytest.raises(UserError, match="no step 7"):
        move(store, state.name, 1, "running", 7, 0.5, "advance", T0)
    with pytest.raises(UserError, match="not one of"):
        move(store, state.name, 1, "gone", 0, 0.0, "abort", T0)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="no rollout named"):
        move(store, "nope", 1, "paused", 0, 0.0, "pause", T0)
    aborted = move(store, state.name, 1, "aborted", 0, 0.0, "abort", T0 + 1)
    assert aborted is not None
    with pytest.raises(UserError, match="is aborted"):
        move(store, state.name, 2, "running", 0, 0.01, "resume", T0 + 2)


def test_history_order_filters_and_state_at(store: RolloutStore):
    name = store.create(make_plan(), T0).name
    store.record_evaluation(
        name,
        step=0,
        verdict="hold",
        reason="too few decisions",
        evidence_json='{"n": 3}',
        now_us=T0 + 5,
    )
    advanced = move(store, name, 1, "running", 1, 0.1, "advance", T0 + 10)
    assert advanced is not None
    # a clock that steps back: the row is timed at the latest time so far, never before it
    paused = move(store, name, 2, "paused", 1, 0.1, "pause", T0 + 7)
    assert paused is not None and paused.updated_us == T0 + 10
    entries = store.history(name)
    assert [e.action for e in entries] == ["start", "evaluate", "advance", "pause"]
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert [e.at_us for e in entries] == [T0, T0 + 5, T0 + 10, T0 + 10]
    [evaluation] = store.history(name, kind="evaluation")
    assert (evaluation.verdict, evaluation.share, json.loads(evaluation.evidence)) == (
        "hold",
        0.01,
        {"n": 3},
    )
    assert [e.action for e in store.history(name, since_us=T0 + 5, until_us=T0 + 9)] == ["evaluate"]
    assert store.state_at(name, T0 - 1) is None
    at_start = store.state_at(name, T0 + 9)
    assert at_start is not None and (at_start.action, at_start.share) == ("start", 0.01)
    latest = store.state_at(name, T0 + 10)
    assert latest is not None and (latest.action, latest.status) == ("pause", "paused")


def test_history_is_append_only(backend: Backend, store: RolloutStore):
    name = store.create(make_plan(), T0).name
    before = store.history(name)
    with pytest.raises(Exception, match="append-only"):
        backend.raw_history("UPDATE {table} SET reason = 'rewritten'")
    with pytest.raises(Exception, match="append-only"):
        backend.raw_history("DELETE FROM {table}")
    assert store.history(name) == before


def test_counters_sum_over_workers_and_overwrite(store: RolloutStore):
    name = store.create(make_plan(), T0).name
    store.flush_counters(name, 0, "w1", {"candidate": counts(5), "baseline": counts(50)}, T0 + 1)
    store.flush_counters(name, 0, "w2", {"candidate": counts(3, errors=1, slow=2)}, T0 + 1)
    # w1's next flush is cumulative: it replaces its previous row instead of adding to it
    store.flush_counters(name, 0, "w1", {"candidate": counts(8, slow=1)}, T0 + 2)
    store.flush_counters(name, 1, "w1", {"candidate": counts(100)}, T0 + 3)
    total = store.counters(name, 0)
    assert set(total) == {"candidate", "baseline"}
    candidate = total["candidate"]
    assert (candidate.decisions, candidate.errors, candidate.requests) == (11, 1, 12)
    assert candidate.treated == counts(8).treated + counts(3, errors=1).treated
    assert len(candidate.latency) == len(LATENCY_BOUNDS_MS) + 1
    assert candidate.slower_than(50.0) == 3 and sum(candidate.latency) == 12
    assert total["baseline"] == counts(50)
    assert store.counters(name, 1)["candidate"].decisions == 100
    assert store.counters(name, 2) == {}


def test_lease_exclusive_until_expiry(store: RolloutStore):
    name = store.create(make_plan(), T0).name
    ttl = 10_000_000
    assert store.acquire_lease(name, "a", ttl, T0)
    assert not store.acquire_lease(name, "b", ttl, T0 + 5_000_000)
    assert store.acquire_lease(name, "a", ttl, T0 + 6_000_000)  # renewed to T0 + 16 s
    assert not store.acquire_lease(name, "b", ttl, T0 + 15_000_000)
    assert store.acquire_lease(name, "b", ttl, T0 + 16_000_000)  # a's lease ran out
    assert not store.acquire_lease(name, "a", ttl, T0 + 17_000_000)
    store.release_lease(name, "a")  # not a's to give up: b keeps it
    assert not store.acquire_lease(name, "a", ttl, T0 + 18_000_000)
    store.release_lease(name, "b")
    assert store.acquire_lease(name, "a", ttl, T0 + 19_000_000)
    assert store.acquire_lease("other", "b", ttl, T0)  # leases are per rollout


def test_state_survives_reopening(backend: Backend):
    first = backend.open()
    state = first.create(make_plan(), T0)
    moved = move(first, state.name, 1, "running", 1, 0.1, "advance", T0 + 1)
    first.flush_counters(state.name, 1, "w1", {"candidate": counts(7)}, T0 + 2)
    first.close()
    again = backend.open()
    try:
        assert again.active("spring") == moved
        assert [e.action for e in again.history(state.name)] == ["start", "advance"]
        assert again.counters(state.name, 1)["candidate"].decisions == 7
        again.ping()
    finally:
        again.close()


def _race(store: RolloutStore, name: str, rounds: int, wins: list[int]) -> None:
    """Advance between steps 0 and 1 by compare-and-set, ``rounds`` attempts."""
    for _ in range(rounds):
        state = store.get(name)
        assert state is not None
        step = 1 - state.step
        plan_share = state.plan.steps[step].share
        moved = move(
            store, name, state.version, "running", step, plan_share, "advance", T0 + state.version
        )
        if moved is not None:
            wins.append(moved.version)


def test_concurrent_writers_never_lose_or_duplicate_a_transition(backend: Backend):
    """Two stores (as two worker processes would hold) race from two threads each."""
    stores = [backend.open(), backend.open()]
    try:
        name = stores[0].create(make_plan(), T0).name
        wins: list[int] = []
        work: list[Callable[[], None]] = [
            lambda s=s: _race(s, name, 25, wins) for s in stores for _ in range(2)
        ]
        threads = [threading.Thread(target=w) for w in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = stores[1].get(name)
        assert final is not None
        # every won version is distinct, consecutive, and has exactly one history row
        assert sorted(wins) == list(range(2, final.version + 1))
        history = stores[0].history(name)
        assert len(history) == final.version
        assert [e.step for e in history[1:]] == [(i + 1) % 2 for i in range(len(history) - 1)]
        assert final.step == history[-1].step
    finally:
        for opened in stores:
            opened.close()


def test_bad_urls_and_schemas(tmp_path: Path):
    with pytest.raises(UserError, match="not a SQLite URL") as err:
        open_rollout_store("mysql://somewhere/db")
    assert err.value.parameter == "rollout_store"
    with pytest.raises(UserError, match="no schemas"):
        open_rollout_store(f"sqlite:///{tmp_path / 'r.db'}", schema="x")
    with pytest.raises(UserError, match="plain schema name"):
        open_rollout_store("postgresql://postgres@127.0.0.1:5432/test", schema="x; DROP")


def test_concurrent_starts_of_one_campaign_leave_one_active(backend: Backend):
    """Two stores start different rollouts of one campaign at once: one wins, the other
    gets a one-line refusal (on PostgreSQL the partial unique index backs the check)."""
    stores = [backend.open(), backend.open()]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def start(store: RolloutStore, name: str) -> None:
        barrier.wait()
        try:
            outcomes.append(store.create(make_plan(name), T0).name)
        except UserError as err:
            outcomes.append(f"refused: {err}")

    try:
        threads = [threading.Thread(target=start, args=(s, f"r{i}")) for i, s in enumerate(stores)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        refused = [o for o in outcomes if o.startswith("refused")]
        assert len(outcomes) == 2 and len(refused) == 1 and "\n" not in refused[0]
        active = stores[0].active("spring")
        assert active is not None and active.name in outcomes
    finally:
        for opened in stores:
            opened.close()
