"""What served a unit at a given time, and why: from the rollout's append-only history.

The transition in effect at time T (:meth:`RolloutStore.state_at`) gives the status and
the candidate's share then (a rollout's name is used once, so its plan is the stored
one); the unit's variant at that share is
:func:`liftwise.rollout.split.variants`, the same salted hash the workers place units
with. The last gate evaluation before T says what the gates saw. The decision service's
exposure log holds what was actually decided (liftwise rollout history --unit).
"""

from __future__ import annotations

from dataclasses import dataclass

from liftwise.errors import UserError
from liftwise.rollout.plan import RolloutPlan
from liftwise.rollout.split import CANDIDATE, HOLDOUT, Variant, variants
from liftwise.rollout.store import HistoryEntry, Kind, RolloutStore

# look-back windows for "the last evaluation before T" (the store answers ranges)
_LOOKBACK_US = (60_000_000, 3_600_000_000, 86_400_000_000, None)


@dataclass(frozen=True)
class UnitAtTime:
    """The answer for one unit at one time."""

    rollout: str
    unit_id: int
    at_us: int
    in_effect: HistoryEntry | None  # the last transition at or before at_us
    plan: RolloutPlan
    variant: Variant | None  # None: the rollout did not place units then
    serves: str  # what the unit got
    why: str
    last_evaluation: HistoryEntry | None


def last_entry(
    store: RolloutStore, name: str, before_us: int, *, kind: Kind
) -> HistoryEntry | None:
    """The latest history row of ``kind`` at or before ``before_us`` (recent windows
    first: evaluations arrive every few seconds, so a rollout's history can be long)."""
    for window in _LOOKBACK_US:
        since = None if window is None else before_us - window
        rows = store.history(name, since_us=since, until_us=before_us, kind=kind)
        if rows:
            return rows[-1]
    return None


def explain_unit(store: RolloutStore, name: str, unit_id: int, at_us: int) -> UnitAtTime:
    """Which variant served ``unit_id`` at ``at_us`` under rollout ``name``, and why."""
    state = store.get(name)
    if state is None:
        raise UserError(f"no rollout named {name!r}", parameter="name")
    plan = state.plan
    entry = store.state_at(name, at_us)
    last = last_entry(store, name, at_us, kind="evaluation")
    if entry is None:
        return UnitAtTime(
            name, unit_id, at_us, None, plan, None,
            "the service's own model (--model / --model-name)",
            "the rollout had not started yet", last,
        )  # fmt: skip
    if entry.status == "promoted":
        why = f"the rollout was over: {entry.reason or 'promoted'}"
        return UnitAtTime(
            name, unit_id, at_us, entry, plan, None,
            "the champion or the service's --model (the rollout was over)", why, last,
        )  # fmt: skip
    variant = variants(plan.effective_salt, [unit_id], plan.holdout, entry.share)[0]
    step = plan.steps[entry.step]
    why = (
        f"{entry.status} at step {entry.step} ({step.name}) with candidate share "
        f"{entry.share:.2%} of the non-holdout units since {entry.action}"
        + (f" ({entry.reason})" if entry.reason else "")
        + f"; the salted hash places unit {unit_id} in {variant}"
    )
    return UnitAtTime(name, unit_id, at_us, entry, plan, variant, _serves(plan, variant), why, last)


def _serves(plan: RolloutPlan, variant: Variant) -> str:
    if variant == HOLDOUT:
        return "the control arm (holdout: never treated)"
    if variant == CANDIDATE:
        return f"the candidate, {plan.candidate.description}"
    return f"the baseline, {plan.baseline.description}"
