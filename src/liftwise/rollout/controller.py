"""The rollout controller: one look at a step (measure, gate, record, act), and the manual
transitions behind ``liftwise rollout start|pause|resume|abort|promote``.

:func:`step_once` is what the decision service's lease holder runs every
``plan.evaluate_seconds`` (liftwise.serve.rollouts). It is pure except for the store:

1. read the rollout's state; only a *running* rollout is gated and may move. A *paused*
   one is measured and its evaluation recorded (the history shows what the gates say while
   it waits), but it never advances; only a failing gate still rolls it back, since a
   pause must not switch off the safety net. Completed, aborted and promoted rollouts are
   left alone.
2. measure the step (the caller's ``measure``: counters summed over workers, net profit
   from outcomes), evaluate its gates (liftwise.rollout.gates) and append the evaluation,
   with its evidence, to the history;
3. apply the next action (advance, complete, rollback, pause or abort on the maximum
   wait) as a compare-and-set on the state's version. A lost compare-and-set means another
   controller or a person acted first: nothing is changed and nothing is raised.

The maximum wait counts from the step's start or from the last ``resume`` (the state's
``updated_us``, which only transitions move), so a rollout paused on its maximum wait and
resumed gets a whole wait again instead of pausing at the next look; ``min_seconds``
always counts from the step's start.

Every transition's history row carries :class:`TransitionEvidence` (JSON): who acted
(``controller`` or a person), why, the state before, and the evaluation or registry change
behind it, so "what served unit X at time T, and why" has an answer
(liftwise.rollout.explain).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from liftwise.errors import UserError
from liftwise.rollout.gates import Action, Evaluation, StepMeasurements, evaluate_step, next_action
from liftwise.rollout.plan import RolloutPlan
from liftwise.rollout.store import Action as HistoryAction
from liftwise.rollout.store import RolloutState, RolloutStore, Status

if TYPE_CHECKING:
    from liftwise.registry.models import ModelRegistry

CONTROLLER = "controller"  # who the automatic transitions are by
Measure = Callable[[RolloutState], StepMeasurements]
RegistryFactory = Callable[[], "ModelRegistry"]
MANUAL_RETRIES = 5  # re-reads when a controller moves the state under a manual command


def now_us() -> int:
    """Microseconds since the epoch, UTC: the clock of the store's rows."""
    return time.time_ns() // 1000


def seconds_between(start_us: int, end_us: int) -> float:
    return max(0.0, (end_us - start_us) / 1e6)


# --------------------------------------------------------------------------- evidence


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StateBefore(_Frozen):
    """Where the rollout stood when the transition was decided."""

    status: Status
    step: int
    step_name: str
    share: float
    version: int


class ChampionChange(_Frozen):
    """A promotion through the registry's approval gate."""

    model_name: str
    version: int
    champion_before: int | None
    model_uri: str
    registry_uri: str


class TransitionEvidence(_Frozen):
    """The evidence JSON of every transition row this module writes."""

    by: str  # "controller" or the person who ran the command
    why: str
    before: StateBefore
    evaluation: Evaluation | None = None  # the controller's transitions
    champion: ChampionChange | None = None  # promote of a registered candidate
    serve_model_dir: str | None = None  # promote of a model-directory candidate


def _before(state: RolloutState) -> StateBefore:
    return StateBefore(
        status=state.status,
        step=state.step,
        step_name=state.plan.steps[state.step].name,
        share=state.share,
        version=state.version,
    )


def require_state(store: RolloutStore, name: str) -> RolloutState:
    state = store.get(name)
    if state is None:
        raise UserError(f"no rollout named {name!r}", parameter="name")
    return state


# --------------------------------------------------------------------------- the controller


def step_once(store: RolloutStore, name: str, measure: Measure, now_us: int) -> Evaluation | None:
    """Evaluate the rollout's current step once and act on it (see the module docstring);
    the evaluation, or None when the rollout's status is not evaluated."""
    state = require_state(store, name)
    if state.status not in ("running", "paused"):
        return None
    measurements = dataclasses.replace(
        measure(state), seconds_on_step=seconds_between(state.step_started_us, now_us)
    )
    evaluation = evaluate_step(state.plan, state.step, state.share, measurements)
    store.record_evaluation(
        name,
        step=state.step,
        verdict=evaluation.verdict,
        reason=evaluation.reason,
        evidence_json=evaluation.model_dump_json(),
        now_us=now_us,
    )
    waited = seconds_between(max(state.step_started_us, state.updated_us), now_us)
    action = next_action(state.plan, state.step, evaluation, waited)
    if action.kind == "hold" or (state.status == "paused" and action.kind != "rollback"):
        return evaluation
    _apply(store, state, action, evaluation, now_us)
    return evaluation


def _apply(
    store: RolloutStore,
    state: RolloutState,
    action: Action,
    evaluation: Evaluation,
    now_us: int,
) -> RolloutState | None:
    """The action as one compare-and-set transition (None: another writer won)."""
    evidence = TransitionEvidence(
        by=CONTROLLER, why=action.reason, before=_before(state), evaluation=evaluation
    )
    return store.transition(
        state.name,
        state.version,
        status=action.status,
        step=action.to_step,
        share=action.to_share,
        action=action.kind,
        reason=action.reason,
        evidence_json=evidence.model_dump_json(),
        now_us=now_us,
    )


# --------------------------------------------------------------------------- manual moves


@dataclasses.dataclass(frozen=True)
class Move:
    """A person's transition: from which statuses, to what, and how the history says it."""

    verb: str  # "paused": "only a running rollout can be paused"
    allowed: tuple[Status, ...]
    status: Status
    action: HistoryAction
    says: str  # the reason, before "by WHO"
    to_zero: bool = False  # share 0: everyone non-holdout gets the baseline


MOVES: dict[str, Move] = {
    # pause: the share stays, the gates keep being measured and recorded, nothing advances
    "pause": Move("paused", ("running",), "paused", "pause", "paused"),
    # resume: running again at the same step and share; the step's maximum wait restarts
    "resume": Move("resumed", ("paused",), "running", "resume", "resumed"),
    # abort: every non-holdout unit gets the baseline, for good
    "abort": Move(
        "aborted", ("running", "paused", "completed"), "aborted", "abort", "manual abort",
        to_zero=True,
    ),
}  # fmt: skip


def move(
    store: RolloutStore, name: str, kind: str, *, by: str, now_us: int, note: str = ""
) -> RolloutState:
    """Make the person's move ``kind`` (a key of :data:`MOVES`), recording who and why;
    re-read and retry when the controller moved the state between the read and the write
    (a person's command should not fail on that race)."""
    spec = MOVES[kind]
    reason = f"{spec.says} by {by}" + (f": {note.strip()}" if note.strip() else "")
    for _ in range(MANUAL_RETRIES):
        state = require_state(store, name)
        if state.status not in spec.allowed:
            raise UserError(
                f"rollout {name!r} is {state.status}: only a {' or '.join(spec.allowed)} "
                f"rollout can be {spec.verb}"
            )
        evidence = TransitionEvidence(by=by, why=reason, before=_before(state))
        moved = store.transition(
            name,
            state.version,
            status=spec.status,
            step=state.step,
            share=0.0 if spec.to_zero else state.share,
            action=spec.action,
            reason=reason,
            evidence_json=evidence.model_dump_json(),
            now_us=now_us,
        )
        if moved is not None:
            return moved
    raise UserError(f"rollout {name!r} keeps changing under this command: try again")


def pause(store: RolloutStore, name: str, *, by: str, now_us: int, note: str = "") -> RolloutState:
    return move(store, name, "pause", by=by, now_us=now_us, note=note)


def resume(store: RolloutStore, name: str, *, by: str, now_us: int, note: str = "") -> RolloutState:
    return move(store, name, "resume", by=by, now_us=now_us, note=note)


def abort(store: RolloutStore, name: str, *, by: str, now_us: int, note: str = "") -> RolloutState:
    return move(store, name, "abort", by=by, now_us=now_us, note=note)


@dataclasses.dataclass(frozen=True)
class Promotion:
    """A promoted rollout: the registry's new champion, or the directory to serve."""

    state: RolloutState
    champion: ChampionChange | None
    serve_model_dir: Path | None


def promote(
    store: RolloutStore,
    name: str,
    *,
    by: str,
    now_us: int,
    registry: RegistryFactory,
) -> Promotion:
    """End a completed rollout by making its candidate what is served.

    A registered candidate becomes its model's ``champion`` through
    :meth:`ModelRegistry.promote`, which refuses an unapproved version (its one line is
    passed on; nothing here gets around it). A model-directory candidate cannot become a
    registry champion: the rollout is only marked promoted, and the directory is what
    ``liftwise serve --model`` should serve from now on (workers go back to their own
    ``--model`` / ``--model-name`` once the rollout is over)."""
    state = require_state(store, name)
    if state.status != "completed":
        raise UserError(
            f"rollout {name!r} is {state.status}: only a completed rollout (its last step "
            "passed) can be promoted"
        )
    candidate = state.plan.candidate
    champion = None
    if candidate.model_dir is None:
        champion = _promote_in_registry(name, state.plan, registry(), by=by)
        why = f"promoted by {by}: {champion.model_name} v{champion.version} is champion"
    else:
        why = f"promoted by {by}: serve the model directory {candidate.model_dir}"
    evidence = TransitionEvidence(
        by=by,
        why=why,
        before=_before(state),
        champion=champion,
        serve_model_dir=None if candidate.model_dir is None else str(candidate.model_dir),
    )
    moved = store.transition(
        name, state.version, status="promoted", step=state.step, share=state.share,
        action="promote", reason=why, evidence_json=evidence.model_dump_json(), now_us=now_us,
    )  # fmt: skip
    if moved is None:
        now = require_state(store, name)
        done = f" ({champion.model_name} v{champion.version} is champion now)" if champion else ""
        raise UserError(f"rollout {name!r} became {now.status} while it was being promoted{done}")
    return Promotion(moved, champion, candidate.model_dir)


def _promote_in_registry(
    name: str, plan: RolloutPlan, registry: ModelRegistry, *, by: str
) -> ChampionChange:
    model_name, version = plan.candidate.model_name, plan.candidate.version
    assert model_name is not None and version is not None  # the plan's validator
    before = registry.champion_at(model_name, dt.datetime.now(dt.UTC))
    try:
        ref = registry.promote(model_name, version, by=by)
    except UserError as err:
        raise UserError(f"rollout {name!r} cannot be promoted: {err.message}") from None
    return ChampionChange(
        model_name=model_name,
        version=version,
        champion_before=before,
        model_uri=ref.model_uri,
        registry_uri=registry.settings.registry,
    )


# --------------------------------------------------------------------------- start


def start(
    store: RolloutStore,
    plan: RolloutPlan,
    *,
    now_us: int,
    registry: RegistryFactory,
    source: str | None = None,
    by: str | None = None,
    note: str = "",
) -> RolloutState:
    """Check that the plan's candidate and baseline exist, then write the plan and its
    state (running, step 0), recording who started it and why. ``source``: the plan file,
    named in errors."""
    check_sources(plan, registry, source=source)
    return store.create(plan, now_us, by=by, note=note)


def check_sources(plan: RolloutPlan, registry: RegistryFactory, *, source: str | None) -> None:
    """One line naming the plan key whose model or table is missing: a model directory
    without model.joblib, an unregistered version, a champion that does not exist, a
    decision table that is not a file. The registry is opened only when the plan names it."""
    candidate, baseline = plan.candidate, plan.baseline
    registry = functools.cache(registry)  # opened at most once, and only if named
    if candidate.model_dir is not None:
        _require_model_dir(candidate.model_dir, "candidate.model_dir", source)
    else:
        _require_version(plan, registry(), source)
    if baseline.model_dir is not None:
        _require_model_dir(baseline.model_dir, "baseline.model_dir", source)
    elif baseline.decision_table is not None and not baseline.decision_table.is_file():
        raise UserError(
            f"no decision table at {baseline.decision_table}",
            file=source,
            column="baseline.decision_table",
        )
    elif baseline.champion is not None and registry().champion(baseline.champion) is None:
        raise UserError(
            f"model {baseline.champion!r} has no champion (or is not registered): promote "
            "a version first, or give the baseline as model_dir or decision_table",
            file=source,
            column="baseline.champion",
        )


def _require_model_dir(path: Path, key: str, source: str | None) -> None:
    if not (path / "model.joblib").is_file():
        raise UserError(
            f"no model in {path} (no model.joblib; `liftwise train --out DIR` writes DIR/model)",
            file=source,
            column=key,
        )


def _require_version(plan: RolloutPlan, registry: ModelRegistry, source: str | None) -> None:
    model_name, version = plan.candidate.model_name, plan.candidate.version
    assert model_name is not None and version is not None
    try:
        known = [info.version for info in registry.describe_versions(model_name)]
    except UserError as err:
        raise UserError(err.message, file=source, column="candidate.model_name") from None
    if version not in known:
        listed = ", ".join(str(v) for v in known) or "none"
        raise UserError(
            f"model {model_name!r} has no version {version} (versions: {listed})",
            file=source,
            column="candidate.version",
        )
