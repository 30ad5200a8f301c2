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

from liftwise.decide.config import DecisionConfig
from liftwise.decide.guardrails import Reason, guardrail_reasons, lower_bound
from liftwise.decide.optimizer import Allocation, optimize_budget
from liftwise.evaluate.bundle import ModelBundle
from liftwise.evaluate.economics import ArmCost, Economics, expected_profit

INTERVAL_ALPHA = 0.05  # the two-sided interval asked of the learner


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

    def summary(self) -> dict[str, object]:
        table = self.table
        treated = table["arm"] != self.control
        return {
            "units": len(table),
            "treated": int(treated.sum()),
            "expected_profit": float(table["expected_profit"].sum()),
            "expected_cost": float(table["expected_cost"].sum()),
            "upper_bound": float(self.allocation.upper_bound),
            "gap": float(self.allocation.gap),
            "arm_counts": {
                str(k): int(v) for k, v in table["arm"].value_counts().sort_index().items()
            },
            "reasons": {
                str(k): int(v)
                for k, v in table.loc[~treated, "reason"].value_counts().sort_index().items()
            },
            "interval_guardrail_applied": self.interval_used,
        }


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
    economics = decision_economics(bundle, config)
    contact, redemption = economics.arrays(treatments)
    learner = bundle.learner
    outcomes = learner.predict_outcomes(X)
    effect = outcomes[:, 1:] - outcomes[:, :1]
    profit = expected_profit(
        outcomes,
        value_per_outcome=economics.value_per_outcome,
        contact_cost=contact,
        redemption_cost=redemption,
    )
    cost = contact + redemption * np.clip(outcomes[:, 1:], 0, None)
    has_interval = bool(getattr(learner, "supports_interval", False))
    if has_interval:
        low, high = learner.predict_interval(X, alpha=INTERVAL_ALPHA)
    else:
        low = high = np.full_like(effect, np.nan)
    effect_lower = profit_lower = None
    soft = config.soft_guardrail
    if soft is not None and has_interval:
        effect_lower = lower_bound(effect, low, high, soft.level, INTERVAL_ALPHA)
        # profit is linear in the effect: value * lower effect, costs at the point estimate
        profit_lower = profit - economics.value_per_outcome * (effect - effect_lower)
    reasons = guardrail_reasons(
        unit_ids,
        features,
        treatments,
        config,
        exposures=exposures,
        now=now or dt.datetime.now(dt.UTC).replace(tzinfo=None),
        effect_lower=effect_lower,
        profit_lower=profit_lower,
        source=source,
    )
    allowed = reasons == Reason.TREATED
    capacity = np.array([config.capacity.get(arm, -1) for arm in treatments])
    allocation = optimize_budget(
        profit,
        cost,
        config.budget,
        capacity=np.where(capacity < 0, np.inf, capacity) if config.capacity else None,
        allowed=allowed,
    )
    table = _decision_table(
        unit_ids, allocation, profit, cost, effect, low, high, reasons, treatments, control
    )
    return Decisions(
        table=table,
        allocation=allocation,
        profit=profit,
        cost=cost,
        allowed=allowed,
        treatments=treatments,
        control=control,
        interval_used=soft is not None and has_interval,
    )


def _decision_table(
    unit_ids: np.ndarray,
    allocation: Allocation,
    profit: np.ndarray,
    cost: np.ndarray,
    effect: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    reasons: np.ndarray,
    treatments: tuple[str, ...],
    control: str,
) -> pd.DataFrame:
    """One row per unit. Untreated units show their best arm's effect and a reason."""
    n = len(unit_ids)
    rows = np.arange(n)
    chosen = allocation.arm
    treated = chosen >= 0
    # for untreated units, report the arm with the highest expected profit among all arms
    shown = np.where(treated, chosen, profit.argmax(axis=1))
    reason = np.where(treated, Reason.TREATED, _untreated_reason(reasons, profit, allocation))
    labels = np.asarray(treatments, dtype=object)
    return pd.DataFrame(
        {
            "unit_id": unit_ids,
            "arm": np.where(treated, labels[np.maximum(chosen, 0)], control),
            "expected_profit": np.where(treated, profit[rows, shown], 0.0),
            "expected_cost": np.where(treated, cost[rows, shown], 0.0),
            "best_arm": labels[shown],
            "effect": effect[rows, shown],
            "effect_low": low[rows, shown],
            "effect_high": high[rows, shown],
            "reason": [Reason(int(r)).label for r in reason],
        }
    )


def _untreated_reason(
    reasons: np.ndarray, profit: np.ndarray, allocation: Allocation
) -> np.ndarray:
    """Guardrail reason when every arm is blocked; else negative profit, capacity or budget."""
    blocked_everywhere = (reasons != Reason.TREATED).all(axis=1)
    fundamental = np.where(reasons == Reason.TREATED, 127, reasons).min(axis=1)
    allowed_profit = np.where(reasons == Reason.TREATED, profit, -np.inf).max(axis=1)
    optimiser = np.asarray(allocation.reason_codes(), dtype=np.int8)
    return np.where(
        blocked_everywhere,
        fundamental,
        np.where(allowed_profit <= 0, Reason.NEGATIVE_PROFIT, optimiser),
    )
