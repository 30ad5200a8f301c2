"""Batch decisions: value model -> hard guardrails -> soft guardrails -> budget optimiser.

For every unit: the chosen arm (or control), its expected profit and cost, the effect and
its interval, and, for a unit left untreated, the reason (do_not_contact, cap, ineligible,
interval_below_threshold, negative_profit, capacity, budget).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from liftwise.decide.config import DecisionConfig, SoftGuardrail
from liftwise.decide.guardrails import Reason, guardrail_reasons, lower_bound
from liftwise.decide.optimizer import Allocation, optimize_budget
from liftwise.errors import UserError
from liftwise.evaluate.bundle import ModelBundle
from liftwise.evaluate.economics import ArmCost, Economics, expected_profit

INTERVAL_ALPHA = 0.05  # the two-sided interval asked of the learner


@dataclass(frozen=True)
class DecisionSummary:
    """What a decision table adds up to: printed by the CLI, written to summary.json by
    the quickstart, logged by the daily pipeline (one typed record for all three)."""

    units: int
    treated: int
    expected_profit: float
    expected_cost: float
    upper_bound: float  # the optimiser's certified bound on the expected profit
    gap: float  # upper_bound - expected_profit
    arm_counts: dict[str, int]  # units per chosen arm, control included
    reasons: dict[str, int]  # untreated units per reason
    interval_guardrail_applied: bool


@dataclass(frozen=True)
class Decisions:
    """The decision table plus the optimiser's certificate and the inputs it solved."""

    table: pd.DataFrame
    allocation: Allocation
    profit: np.ndarray  # (n, k) expected incremental net profit
    cost: np.ndarray  # (n, k) expected cost
    allowed: np.ndarray  # (n, k) after every guardrail
    treatments: tuple[str, ...]
    control: str
    interval_used: bool

    def summary(self) -> DecisionSummary:
        table = self.table
        return DecisionSummary(
            units=len(table),
            treated=int((table["arm"] != self.control).sum()),
            expected_profit=float(table["expected_profit"].sum()),
            expected_cost=float(table["expected_cost"].sum()),
            upper_bound=float(self.allocation.upper_bound),
            gap=float(self.allocation.gap),
            arm_counts=self.arm_counts(),
            reasons=self.reason_counts(),
            interval_guardrail_applied=self.interval_used,
        )

    def arm_counts(self) -> dict[str, int]:
        """Units per chosen arm (control included), by arm name."""
        counts = self.table["arm"].value_counts().sort_index()
        return {str(k): int(v) for k, v in counts.items()}

    def reason_counts(self) -> dict[str, int]:
        """Untreated units per reason."""
        untreated = self.table["arm"] == self.control
        counts = self.table.loc[untreated, "reason"].value_counts().sort_index()
        return {str(k): int(v) for k, v in counts.items()}


def decision_economics(bundle: ModelBundle, config: DecisionConfig) -> Economics:
    """The model's money, with the config's value and costs taking precedence."""
    costs = dict(bundle.economics.costs)
    costs.update(
        {
            arm: ArmCost(contact=c.contact, redemption=c.redemption)
            for arm, c in config.costs.items()
        }
    )
    value = config.value_per_outcome or bundle.economics.value_per_outcome
    return Economics(value_per_outcome=value, costs=costs)


@dataclass(frozen=True)
class Valuation:
    """Per unit and treatment arm, (n, k) each: what the arm is expected to earn and cost,
    its effect with the interval, and the lower bounds the soft guardrail reads. Batch and
    real-time decisions both start from this."""

    effect: np.ndarray
    profit: np.ndarray  # expected incremental net profit
    cost: np.ndarray  # expected cost
    low: np.ndarray  # effect interval (NaN without one)
    high: np.ndarray
    effect_lower: np.ndarray | None  # set when a soft guardrail is configured and applicable
    profit_lower: np.ndarray | None

    @property
    def interval_used(self) -> bool:
        return self.effect_lower is not None


def value_outcomes(
    outcomes: np.ndarray,
    interval: tuple[np.ndarray, np.ndarray] | None,
    *,
    value_per_outcome: float,
    contact: np.ndarray,
    redemption: np.ndarray,
    soft: SoftGuardrail | None,
) -> Valuation:
    """The value model on predicted outcomes (n, k + 1; control first) and the learner's
    two-sided ``INTERVAL_ALPHA`` effect interval, if it gives one."""
    effect = outcomes[:, 1:] - outcomes[:, :1]
    profit = expected_profit(
        outcomes,
        value_per_outcome=value_per_outcome,
        contact_cost=contact,
        redemption_cost=redemption,
    )
    cost = contact + redemption * np.clip(outcomes[:, 1:], 0, None)
    if interval is not None:
        low, high = interval
    else:
        low = high = np.full_like(effect, np.nan)
    effect_lower = profit_lower = None
    if soft is not None and interval is not None:
        effect_lower = lower_bound(effect, low, high, soft.level, INTERVAL_ALPHA)
        # profit is linear in the effect: value * lower effect, costs at the point estimate
        profit_lower = profit - value_per_outcome * (effect - effect_lower)
    return Valuation(effect, profit, cost, low, high, effect_lower, profit_lower)


def value_units(
    bundle: ModelBundle, X: np.ndarray, economics: Economics, soft: SoftGuardrail | None
) -> Valuation:
    """Predict outcomes (and the interval where the learner gives one) and value them."""
    learner = bundle.learner
    contact, redemption = economics.arrays(bundle.treatments)
    interval = (
        learner.predict_interval(X, alpha=INTERVAL_ALPHA)
        if getattr(learner, "supports_interval", False)
        else None
    )
    return value_outcomes(
        learner.predict_outcomes(X),
        interval,
        value_per_outcome=economics.value_per_outcome,
        contact=contact,
        redemption=redemption,
        soft=soft,
    )


def decide_batch(
    bundle: ModelBundle,
    X: np.ndarray,
    unit_ids: np.ndarray,
    features: pd.DataFrame,
    config: DecisionConfig,
    *,
    exposures: pd.DataFrame | None = None,
    now: dt.datetime | None = None,
    source: str = "decision config",
) -> Decisions:
    """Decide one arm (or none) per unit under the budget and guardrails."""
    treatments, control = bundle.treatments, bundle.arms[0]
    config.check_arms(treatments, source=source)
    if config.contact_cap is not None and exposures is None:
        raise UserError(
            "a contact cap counts past contacts: give the exposure history (unit_id, "
            "occurred_at) or remove the cap",
            file=source,
            column="contact_cap",
        )
    economics = decision_economics(bundle, config)
    valuation = value_units(bundle, X, economics, config.soft_guardrail)
    reasons = guardrail_reasons(
        unit_ids,
        features,
        treatments,
        config,
        exposures=exposures,
        now=now or dt.datetime.now(dt.UTC).replace(tzinfo=None),
        effect_lower=valuation.effect_lower,
        profit_lower=valuation.profit_lower,
        source=source,
    )
    allowed = reasons == Reason.TREATED
    capacity = np.array([config.capacity.get(arm, -1) for arm in treatments])
    allocation = optimize_budget(
        valuation.profit,
        valuation.cost,
        config.budget,
        capacity=np.where(capacity < 0, np.inf, capacity) if config.capacity else None,
        allowed=allowed,
    )
    columns = decision_columns(
        allocation.arm, valuation, reasons, np.asarray(allocation.reason_codes(), dtype=np.int8)
    )
    return Decisions(
        table=_decision_table(unit_ids, columns, treatments, control),
        allocation=allocation,
        profit=valuation.profit,
        cost=valuation.cost,
        allowed=allowed,
        treatments=treatments,
        control=control,
        interval_used=valuation.interval_used,
    )


def decision_columns(
    chosen: np.ndarray, valuation: Valuation, reasons: np.ndarray, fallback: np.ndarray
) -> dict[str, np.ndarray]:
    """Per unit, as arrays: the chosen treatment index (-1: control), expected profit and
    cost (0 when untreated), the shown arm (chosen, else the most profitable) with its
    effect and interval, and the reason code. ``fallback`` is the reason for units that had
    an allowed profitable arm but were not treated (capacity, budget, pacing)."""
    n = len(chosen)
    rows = np.arange(n)
    treated = chosen >= 0
    shown = np.where(treated, chosen, valuation.profit.argmax(axis=1))
    untreated = untreated_reason(reasons, valuation.profit, fallback)
    return {
        "arm": chosen,
        "expected_profit": np.where(treated, valuation.profit[rows, shown], 0.0),
        "expected_cost": np.where(treated, valuation.cost[rows, shown], 0.0),
        "best_arm": shown,
        "effect": valuation.effect[rows, shown],
        "effect_low": valuation.low[rows, shown],
        "effect_high": valuation.high[rows, shown],
        "reason": np.where(treated, Reason.TREATED, untreated).astype(np.int8),
    }


def _decision_table(
    unit_ids: np.ndarray,
    columns: dict[str, np.ndarray],
    treatments: tuple[str, ...],
    control: str,
) -> pd.DataFrame:
    """One row per unit. Untreated units show their best arm's effect and a reason."""
    chosen = columns["arm"]
    labels = np.asarray(treatments, dtype=object)
    return pd.DataFrame(
        {
            "unit_id": unit_ids,
            "arm": np.where(chosen >= 0, labels[np.maximum(chosen, 0)], control),
            "expected_profit": columns["expected_profit"],
            "expected_cost": columns["expected_cost"],
            "best_arm": labels[columns["best_arm"]],
            "effect": columns["effect"],
            "effect_low": columns["effect_low"],
            "effect_high": columns["effect_high"],
            "reason": [Reason(int(r)).label for r in columns["reason"]],
        }
    )


def untreated_reason(reasons: np.ndarray, profit: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Guardrail reason when every arm is blocked; else negative profit when no allowed arm
    earns; else ``fallback`` (the optimiser's or the budget store's capacity/budget/pacing)."""
    blocked_everywhere = (reasons != Reason.TREATED).all(axis=1)
    fundamental = np.where(reasons == Reason.TREATED, 127, reasons).min(axis=1)
    allowed_profit = np.where(reasons == Reason.TREATED, profit, -np.inf).max(axis=1)
    return np.where(
        blocked_everywhere,
        fundamental,
        np.where(allowed_profit <= 0, Reason.NEGATIVE_PROFIT, fallback),
    )
