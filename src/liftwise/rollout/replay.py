"""Live traffic from a world: decision requests to a running service, outcomes from truth.

A rollout is only as trustworthy as the evidence its gates saw; a world has the ground
truth to check that evidence against. :func:`replay` sends ``POST /v1/decisions`` for a
world's units, features as of the campaign's decision time (the frame ``liftwise train``
learns from), open loop: request *i* is due at *start + i / rate* whatever happened
before, and its latency counts from that due time, so queueing anywhere shows (as in
benchmarks/bench_serve.py). A few sender threads share the schedule, each on its own
keep-alive connection, and every request has a fresh request id.

Each answered decision's outcome comes back from the world's ground truth for the arm the
service chose, after ``outcome_delay_seconds``, in small ``POST /v1/outcomes`` batches:
revenue = the unit's realised value under that arm; cost = contact + redemption x
outcome when treated, else 0. The report also gives, per variant (the decision's
``variant``; ``none`` outside a rollout), the TRUE expected net profit per unit of the
decisions it made, exact from ground truth, so a test can check that the service's
interval for the uplift covers the true one.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import json
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from liftwise.errors import UserError
from liftwise.features import experiment_frame
from liftwise.params import Parameters
from liftwise.simulate import World, load_world
from liftwise.simulate.truth import expected_net_matrix

NO_ROLLOUT = "none"  # the variant of decisions made outside any rollout
FLUSH_SECONDS = 0.2  # outcomes due are posted at most this often
PROGRESS_SECONDS = 0.25
Progress = Callable[[int], None]


class ReplaySettings(Parameters):
    """How much traffic, how fast, and when outcomes come back."""

    rate: float = Field(200.0, gt=0, le=100_000, description="Requests per second.")
    units: int | None = Field(None, gt=0, description="Units to replay (default: all).")
    seed: int = Field(0, ge=0, description="Order of the units.")
    outcome_delay_seconds: float = Field(1.0, ge=0, le=3600)
    duration: float | None = Field(None, gt=0, description="Stop the traffic after this.")
    loop: bool = Field(False, description="Start over at the first unit when all are sent.")
    senders: int = Field(8, ge=1, le=256, description="Sender threads (connections).")
    outcome_batch: int = Field(50, ge=1, le=10_000, description="Outcomes per POST.")
    post_outcomes: bool = True
    timeout_seconds: float = Field(10.0, gt=0, le=600, description="Per HTTP request.")


# ------------------------------------------------------------------------- the report


class VariantReplay(BaseModel):
    """One variant's decisions as the replay saw them, valued from ground truth."""

    model_config = ConfigDict(frozen=True)

    variant: str
    decisions: int
    treated: int
    true_expected_net_profit_per_unit: float = Field(
        description="Mean over its decisions of expected value - contact - redemption x "
        "expected outcome (treated), exact from ground truth."
    )
    realised_net_profit_per_unit: float = Field(
        description="Mean of the revenue - cost fed back (the realised potential outcomes)."
    )


class ReplayReport(BaseModel):
    """What a replay sent, what came back, and the truth about the decisions."""

    model_config = ConfigDict(frozen=True)

    requests: int
    answered: int = Field(description="Decisions answered 200.")
    errors: dict[str, int] = Field(
        description="Failed requests by HTTP status, or 'connection' / 'timeout'."
    )
    latency_p50_ms: float
    latency_p99_ms: float
    seconds: float = Field(description="From the first due time to the last answer.")
    achieved_rate: float
    outcomes_posted: int
    outcomes_accepted: int
    outcome_errors: dict[str, int]
    variants: dict[str, VariantReplay]
    steps: dict[int, dict[str, VariantReplay]] = Field(
        description="The same per rollout step (decisions that name their step)."
    )

    def true_uplift(
        self, candidate: str = "candidate", baseline: str = "baseline", step: int | None = None
    ) -> float:
        """True expected net profit per unit of ``candidate``'s decisions minus
        ``baseline``'s (over the whole replay, or on one rollout step)."""
        variants = self.variants if step is None else self.steps.get(step, {})
        missing = [v for v in (candidate, baseline) if v not in variants]
        if missing:
            where = "this replay" if step is None else f"step {step} of this replay"
            raise UserError(f"no decisions of variant {missing[0]!r} in {where}")
        return (
            variants[candidate].true_expected_net_profit_per_unit
            - variants[baseline].true_expected_net_profit_per_unit
        )


# ------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class WorldTraffic:
    """A world's units as requests, and the truth to answer them with."""

    unit_ids: np.ndarray  # (n,) int64
    features_json: list[bytes]  # per unit, the request's features object (NaN -> null)
    arms: tuple[str, ...]
    control: str
    revenue: np.ndarray  # (n, arms) realised value
    cost: np.ndarray  # (n, arms) realised cost (0 for control)
    expected_net: np.ndarray  # (n, arms) expected net profit
    row_of: dict[int, int]

    @property
    def arm_index(self) -> dict[str, int]:
        return {arm: j for j, arm in enumerate(self.arms)}

    def body(self, request_id: str, row: int) -> bytes:
        """The decision request for the unit at ``row`` (features encoded once per unit)."""
        head = json.dumps({"request_id": request_id, "unit_id": int(self.unit_ids[row])})
        return b"".join((head[:-1].encode(), b', "features": ', self.features_json[row], b"}"))


def world_traffic(world: World) -> WorldTraffic:
    """Requests' features (as of the decision time) and truth per unit and arm."""
    frame = experiment_frame(world)
    names = list(frame.features)
    values = frame.data[names].to_numpy(dtype=np.float64)
    unit_ids = frame.data["unit_id"].to_numpy(dtype=np.int64)
    features = [
        json.dumps(
            {n: (None if math.isnan(v) else v) for n, v in zip(names, row, strict=True)}
        ).encode()
        for row in values.tolist()
    ]
    truth = world.read("ground_truth", columns=["unit_id", "arm", "outcome", "value",
                                                "expected_outcome", "expected_value"])  # fmt: skip
    arm_table = world.read("arms")
    arms = tuple(str(a) for a in arm_table["arm"])
    control = world.campaign.control

    def wide(column: str) -> np.ndarray:
        table = truth.pivot(index="unit_id", columns="arm", values=column)
        return table.reindex(index=unit_ids, columns=list(arms)).to_numpy(dtype=np.float64)

    costs = arm_table.set_index("arm").reindex(list(arms))
    treated = np.array([arm != control for arm in arms])
    contact = costs["contact_cost"].to_numpy(dtype=np.float64) * treated
    redemption = costs["redemption_cost"].to_numpy(dtype=np.float64) * treated
    expected = expected_net_matrix(truth, arm_table).reindex(index=unit_ids, columns=list(arms))
    return WorldTraffic(
        unit_ids=unit_ids,
        features_json=features,
        arms=arms,
        control=control,
        revenue=wide("value"),
        cost=contact + redemption * wide("outcome"),
        expected_net=expected.to_numpy(dtype=np.float64),
        row_of={int(u): i for i, u in enumerate(unit_ids.tolist())},
    )


# ------------------------------------------------------------------------- answers


class _DecisionAnswer(BaseModel):
    """The fields of a decision response the replay reads."""

    model_config = ConfigDict(extra="ignore")

    decision_id: str
    unit_id: int
    arm: str
    treated: bool
    variant: str | None = None  # in a rollout: holdout, baseline or candidate
    rollout_step: int | None = None


class _OutcomesAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    accepted: int = 0
    replayed: int = 0


@dataclass
class _Decided:
    row: int  # the unit's row in WorldTraffic
    arm: int
    treated: bool
    variant: str
    step: int | None


@dataclass
class _Tally:
    """Everything the threads record, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    decided: list[_Decided] = field(default_factory=list)
    posted: int = 0
    accepted: int = 0
    outcome_errors: Counter[str] = field(default_factory=Counter)
    last_answer: float = 0.0
    fatal: UserError | None = None  # stops every sender (a service of another world)


# ------------------------------------------------------------------------- outcomes


class _OutcomeFeeder:
    """Posts each decision's outcome once it is ``delay`` seconds old, in small batches."""

    def __init__(self, client: _Connection, tally: _Tally, settings: ReplaySettings) -> None:
        self.client = client
        self.tally = tally
        self.settings = settings
        self.pending: list[tuple[float, int, dict[str, Any]]] = []  # (due, seq, outcome)
        self.seq = itertools.count()
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="replay-outcomes", daemon=True)

    def add(self, decision_id: str, revenue: float, cost: float) -> None:
        outcome = {"decision_id": decision_id, "revenue": revenue, "cost": cost}
        due = time.monotonic() + self.settings.outcome_delay_seconds
        with self.cond:
            heapq.heappush(self.pending, (due, next(self.seq), outcome))
            self.cond.notify()

    def close(self) -> None:
        """No more outcomes will come; post the pending ones as they fall due, then stop."""
        with self.cond:
            self.closed = True
            self.cond.notify()
        self.thread.join()

    def _run(self) -> None:
        while (due := self._due()) is not None:
            size = self.settings.outcome_batch
            for first in range(0, len(due), size):
                self._post(due[first : first + size])
            time.sleep(FLUSH_SECONDS)  # batches, not one POST per decision

    def _due(self) -> list[dict[str, Any]] | None:
        """The outcomes due now (waiting for the first); None once closed and all posted."""
        with self.cond:
            while True:
                now = time.monotonic()
                due = []
                while self.pending and self.pending[0][0] <= now:
                    due.append(heapq.heappop(self.pending)[2])
                if due:
                    return due
                if self.closed and not self.pending:
                    return None
                wait = self.pending[0][0] - now if self.pending else None
                self.cond.wait(timeout=wait)

    def _post(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"outcomes": batch}).encode()
        answer = _send(self.client, "/v1/outcomes", body, retries=3)
        tally = self.tally
        with tally.lock:
            tally.posted += len(batch)
            if answer.status == 200:
                tally.accepted += _OutcomesAnswer.model_validate_json(answer.content).accepted
            else:
                tally.outcome_errors[answer.failure] += len(batch)


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer, or why none came (``status`` None)."""

    status: int | None
    content: bytes = b""
    missing: str = "connection"  # 'connection' or 'timeout' when status is None

    @property
    def failure(self) -> str:
        """The HTTP status, or 'connection' / 'timeout'."""
        return self.missing if self.status is None else str(self.status)


class _Connection:
    """One keep-alive HTTP/1.1 connection (the standard library's: a sixth of httpx's CPU
    per request, which matters when one process sends hundreds a second on a shared
    machine); reconnects after a failure."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UserError(f"expected http://HOST:PORT, got {url!r}", parameter="url")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request("POST", path, body=body, headers=JSON_HEADERS)
            response = self.conn.getresponse()
            return response.status, response.read()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


JSON_HEADERS = {"Content-Type": "application/json"}


def _send(client: _Connection, path: str, body: bytes, *, retries: int = 0) -> _Answer:
    """POST ``body``; retried ``retries`` times when no answer came or on a 503 (a store
    busy for a moment)."""
    answer = _Answer(None)
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(0.2 * attempt)
        try:
            status, content = client.post(path, body)
        except TimeoutError:
            answer = _Answer(None, missing="timeout")
            continue
        except (OSError, http.client.HTTPException):
            answer = _Answer(None, missing="connection")
            continue
        answer = _Answer(status, content)
        if status != 503:
            break
    return answer


# ------------------------------------------------------------------------- decisions


@dataclass
class _Schedule:
    """Request i: which unit, and when it is due (open loop)."""

    order: np.ndarray  # unit rows in sending order
    total: int
    rate: float
    start: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: Iterator[int] = field(default_factory=itertools.count)
    stop: threading.Event = field(default_factory=threading.Event)

    def take(self) -> int | None:
        """The next request's index; None when all are sent or the traffic was stopped."""
        if self.stop.is_set():
            return None
        with self.lock:
            i = next(self.counter)
        return i if i < self.total else None

    def due(self, i: int) -> float:
        return self.start + i / self.rate

    def row(self, i: int) -> int:
        return int(self.order[i % len(self.order)])


def _schedule(traffic: WorldTraffic, settings: ReplaySettings) -> _Schedule:
    n = len(traffic.unit_ids)
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(n)[: settings.units or n]
    if settings.units is not None and settings.units > n:
        raise UserError(f"the world has {n:,} units, fewer than {settings.units:,}",
                        parameter="units")  # fmt: skip
    if settings.loop and settings.duration is None:
        raise UserError("looping over the units needs a duration", parameter="loop")
    total = len(order)
    if settings.duration is not None:
        in_time = math.floor(settings.duration * settings.rate)
        total = in_time if settings.loop else min(total, in_time)
    return _Schedule(order=order, total=total, rate=settings.rate)


@dataclass(frozen=True)
class _Run:
    """What every sender thread shares."""

    url: str
    traffic: WorldTraffic
    schedule: _Schedule
    tag: str
    tally: _Tally
    feeder: _OutcomeFeeder | None
    settings: ReplaySettings


def _sender(run: _Run) -> None:
    """Send the scheduled requests this thread takes, each at its due time."""
    traffic, schedule, tally = run.traffic, run.schedule, run.tally
    client = _Connection(run.url, run.settings.timeout_seconds)
    try:
        while tally.fatal is None and (i := schedule.take()) is not None:
            row = schedule.row(i)
            due = schedule.due(i)
            pause = due - time.monotonic()
            if pause > 0 and schedule.stop.wait(pause):
                break  # stopped while waiting: this request is never sent
            answer = _send(client, "/v1/decisions", traffic.body(f"{run.tag}-{i}", row))
            done = time.monotonic()
            decided = _decided(run, row, answer) if answer.status == 200 else None
            with tally.lock:
                tally.latencies_ms.append((done - due) * 1000.0)
                tally.last_answer = max(tally.last_answer, done)
                if decided is not None:
                    tally.decided.append(decided)
                else:
                    tally.errors[answer.failure] += 1
    finally:
        client.close()


def _decided(run: _Run, row: int, answer: _Answer) -> _Decided | None:
    """The decision of a 200 answer, its outcome queued for the feeder."""
    traffic = run.traffic
    decision = _DecisionAnswer.model_validate_json(answer.content)
    arm = traffic.arm_index.get(decision.arm)
    if arm is None:
        with run.tally.lock:
            run.tally.fatal = UserError(
                f"the service chose arm {decision.arm!r}, which the world does not have "
                f"(arms: {', '.join(traffic.arms)}): is it serving a model of this world?",
                parameter="url",
            )
        return None
    if run.feeder is not None:
        run.feeder.add(
            decision.decision_id, float(traffic.revenue[row, arm]), float(traffic.cost[row, arm])
        )
    return _Decided(
        row, arm, decision.treated, decision.variant or NO_ROLLOUT, decision.rollout_step
    )


# ------------------------------------------------------------------------- the replay


def replay(
    world_dir: str | Path,
    url: str,
    *,
    rate: float = 200.0,
    units: int | None = None,
    seed: int = 0,
    outcome_delay_seconds: float = 1.0,
    duration: float | None = None,
    loop: bool = False,
    senders: int = 8,
    outcome_batch: int = 50,
    post_outcomes: bool = True,
    timeout_seconds: float = 10.0,
    progress: Progress | None = None,
    traffic: WorldTraffic | None = None,
    stop: threading.Event | None = None,
) -> ReplayReport:
    """Replay the world at ``world_dir`` against the service at ``url`` (the parameters
    are :class:`ReplaySettings`'); ``traffic``: a :func:`world_traffic` of that world
    already built (tests replaying one world many times); ``progress(n)``: n more
    requests done; ``stop``: set it to end the traffic early (the outcomes of what was
    decided are still posted)."""
    settings = ReplaySettings(
        rate=rate, units=units, seed=seed, outcome_delay_seconds=outcome_delay_seconds,
        duration=duration, loop=loop, senders=senders, outcome_batch=outcome_batch,
        post_outcomes=post_outcomes, timeout_seconds=timeout_seconds,
    )  # fmt: skip
    traffic = traffic if traffic is not None else world_traffic(load_world(world_dir))
    return run_replay(url, traffic, settings, progress=progress, stop=stop)


def planned_requests(traffic: WorldTraffic, settings: ReplaySettings) -> int:
    """How many requests a replay of ``traffic`` with ``settings`` sends."""
    return _schedule(traffic, settings).total


def run_replay(
    url: str,
    traffic: WorldTraffic,
    settings: ReplaySettings,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> ReplayReport:
    """:func:`replay` on a world's traffic already built."""
    schedule = _schedule(traffic, settings)
    if stop is not None:
        schedule.stop = stop
    tally = _Tally()
    outcomes_client = _Connection(url, settings.timeout_seconds)
    try:
        feeder = (
            _OutcomeFeeder(outcomes_client, tally, settings) if settings.post_outcomes else None
        )
        run = _Run(url, traffic, schedule, f"replay-{uuid.uuid4().hex[:12]}", tally, feeder,
                   settings)  # fmt: skip
        threads = [threading.Thread(target=_sender, args=(run,), name=f"replay-{k}", daemon=True)
                   for k in range(min(settings.senders, max(schedule.total, 1)))]  # fmt: skip
        if feeder is not None:
            feeder.thread.start()
        schedule.start = time.monotonic() + 0.05
        for thread in threads:
            thread.start()
        _wait(threads, tally, progress)
        if feeder is not None:
            feeder.close()
    finally:
        outcomes_client.close()
    if tally.fatal is not None:
        raise tally.fatal
    return _report(traffic, schedule, tally)


def _wait(threads: list[threading.Thread], tally: _Tally, progress: Progress | None) -> None:
    """Join the senders, reporting progress every PROGRESS_SECONDS (not per request: a
    progress bar's update costs the senders' time)."""
    reported = 0
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=PROGRESS_SECONDS)
            if progress is not None:
                done = len(tally.latencies_ms)
                progress(done - reported)
                reported = done
    if progress is not None:
        progress(len(tally.latencies_ms) - reported)


def _variants(traffic: WorldTraffic, decided: list[_Decided]) -> dict[str, VariantReplay]:
    by_variant: dict[str, list[_Decided]] = {}
    for one in decided:
        by_variant.setdefault(one.variant, []).append(one)
    variants = {}
    for variant, rows in sorted(by_variant.items()):
        units = np.array([d.row for d in rows])
        arms = np.array([d.arm for d in rows])
        realised = traffic.revenue[units, arms] - traffic.cost[units, arms]
        variants[variant] = VariantReplay(
            variant=variant,
            decisions=len(rows),
            treated=sum(d.treated for d in rows),
            true_expected_net_profit_per_unit=float(traffic.expected_net[units, arms].mean()),
            realised_net_profit_per_unit=float(realised.mean()),
        )
    return variants


def _report(traffic: WorldTraffic, schedule: _Schedule, tally: _Tally) -> ReplayReport:
    latencies = np.asarray(tally.latencies_ms)
    seconds = max(tally.last_answer - schedule.start, 1e-9) if schedule.total else 0.0
    steps = sorted({d.step for d in tally.decided if d.step is not None})
    return ReplayReport(
        requests=len(latencies),
        answered=len(tally.decided),
        errors=dict(sorted(tally.errors.items())),
        latency_p50_ms=float(np.percentile(latencies, 50)) if latencies.size else math.nan,
        latency_p99_ms=float(np.percentile(latencies, 99)) if latencies.size else math.nan,
        seconds=seconds,
        achieved_rate=len(latencies) / seconds if seconds else 0.0,
        outcomes_posted=tally.posted,
        outcomes_accepted=tally.accepted,
        outcome_errors=dict(sorted(tally.outcome_errors.items())),
        variants=_variants(traffic, tally.decided),
        steps={
            step: _variants(traffic, [d for d in tally.decided if d.step == step]) for step in steps
        },
    )
