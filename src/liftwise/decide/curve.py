"""Profit against budget for every budget at once: the feasible greedy value and the LP
upper bound from one sort of every unit's hull steps (docs/optimizer.md, "Budget curve").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liftwise.decide import _optimizer_kernels as kernels
from liftwise.decide._optimizer_inputs import check_inputs, threads_for

__all__ = ["BudgetCurve", "budget_curve"]


@dataclass(frozen=True)
class BudgetCurve:
    """Profit against budget: a feasible greedy value and the LP upper bound per budget."""

    budget: np.ndarray
    profit: np.ndarray  # integral greedy (LP solution without its fractional unit)
    upper_bound: np.ndarray  # LP relaxation = Lagrangian dual optimum

    def __len__(self) -> int:
        return len(self.budget)


def budget_curve(
    profit: np.ndarray,
    cost: np.ndarray,
    budgets: np.ndarray | None = None,
    *,
    allowed: np.ndarray | None = None,
    points: int = 201,
) -> BudgetCurve:
    """Profit against budget for every budget at once (no capacities).

    One sort of all units' hull steps by slope, then cumulative sums: at budget B the LP
    bound takes the steps that fit plus a fraction of the next; the greedy value (a
    feasible allocation, what ``optimize_budget`` improves on) stops before it, so the two
    differ by less than one unit's profit. ``budgets`` defaults to ``points`` budgets from
    0 to the cost of giving every unit its best arm.
    """
    profit, cost, _, _, allowed = check_inputs(profit, cost, 0.0, None, allowed)
    cost_step, profit_step = _sorted_steps(profit, cost, allowed)
    size = cost_step.size
    cum_cost = np.concatenate(([0.0], np.cumsum(cost_step)))
    cum_profit = np.concatenate(([0.0], np.cumsum(profit_step)))
    if budgets is None:
        budgets = np.linspace(0.0, cum_cost[-1], points)
    budgets = np.asarray(budgets, dtype=np.float64).reshape(-1)
    if np.isnan(budgets).any() or (budgets < 0).any():
        raise ValueError("budgets must be >= 0")
    taken = np.searchsorted(cum_cost, budgets, side="right") - 1  # steps that fit
    greedy = cum_profit[taken]
    nxt = np.minimum(taken, size - 1)  # the first step that does not fit
    left = np.where(taken < size, budgets - cum_cost[taken], 0.0)
    frac = np.clip(left / np.where(taken < size, cost_step[nxt], 1.0), 0.0, 1.0) if size else 0.0
    lp = greedy + (frac * profit_step[nxt] if size else 0.0)
    return BudgetCurve(budget=budgets, profit=greedy, upper_bound=lp)


def _sorted_steps(
    profit: np.ndarray, cost: np.ndarray, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(cost step, profit step) of every unit's hull steps, by slope desc (ties: unit,
    then position)."""
    n, k = profit.shape
    hull_arms = np.zeros((n, k), dtype=np.int16)
    hull_sizes = np.zeros(n, dtype=np.int16)
    with threads_for(n):
        kernels.unit_hulls(profit, cost, allowed, np.zeros(k), hull_arms, hull_sizes)
    offsets = np.concatenate(([0], np.cumsum(hull_sizes, dtype=np.int64)))
    size = int(offsets[-1])
    slope, cost_step, profit_step = np.empty(size), np.empty(size), np.empty(size)
    kernels.flatten_steps(
        profit, cost, hull_arms, hull_sizes, offsets[:-1], slope, cost_step, profit_step
    )
    del hull_arms, hull_sizes
    order = np.argsort(-slope, kind="stable")
    return cost_step[order], profit_step[order]
