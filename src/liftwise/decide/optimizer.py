"""Budget optimiser: at most one arm per unit, the most expected profit within a budget.

The problem is a multiple-choice knapsack (MCKP) with optional per-arm capacities. It is
solved by Lagrangian relaxation: the budget multiplier ``lam`` comes exactly from the
convex hull of every unit's (cost, profit) options (a radix select over hull slopes, no
full sort), capacity multipliers ``mu`` from a cutting-plane search; a greedy primal is
built from the relaxed solution, polished, and, when few units are in doubt, proved
optimal by a small branch and bound. Every answer carries its certificate: the dual value
is an upper bound on the best possible profit. See docs/optimizer.md.

This module holds the public API and the result; the steps live in private modules:
``_optimizer_inputs`` (checks, threads), ``_optimizer_dual`` (the relaxation and its
multipliers), ``_optimizer_primal`` (the feasible allocation), ``_optimizer_exact`` (the
branch and bound) and ``_optimizer_kernels`` (the compiled passes over the units).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from liftwise.decide import _optimizer_kernels as kernels
from liftwise.decide._optimizer_dual import Relaxed, capacity_multipliers
from liftwise.decide._optimizer_exact import exact_core
from liftwise.decide._optimizer_inputs import check_inputs, threads_for
from liftwise.decide._optimizer_primal import greedy_primal, repair_budget, totals_of

__all__ = ["Allocation", "Untreated", "optimize_budget"]


class Untreated(IntEnum):
    """Why a unit got no arm (TREATED for a treated unit).

    Codes 5-7 equal ``liftwise.decide.guardrails.Reason``'s NEGATIVE_PROFIT, CAPACITY and
    BUDGET, so the decision table can use them as they are.
    """

    TREATED = 0
    NO_POSITIVE_PROFIT = 5  # every allowed arm has expected profit <= 0
    CAPACITY = 6  # every allowed profitable arm is full
    BUDGET = 7  # a profitable arm had room: the budget went to better units
    NOT_ALLOWED = 8  # no arm is allowed for this unit

    @property
    def label(self) -> str:
        return "" if self is Untreated.TREATED else self.name.lower()


@dataclass(frozen=True)
class Allocation:
    """One arm per unit (-1: none) with the certificate of how far from optimal it can be.

    ``upper_bound`` is the Lagrangian dual value, an upper bound on the profit of every
    feasible allocation (and on the LP relaxation), so the true optimum lies in
    ``[profit, upper_bound]`` and ``gap`` bounds the profit left on the table.
    ``status`` is "optimal" when the exact search proved no allocation beats ``profit``
    by more than a 1e-9 relative tolerance, else "feasible" (certificate only).
    """

    arm: np.ndarray  # (n,) int32, -1 = no arm
    profit: float
    cost: float
    upper_bound: float
    gap: float
    relative_gap: float
    multiplier: float  # lam: profit per unit of budget at the margin
    arm_multipliers: np.ndarray  # (k,) mu: profit per unit of each arm's capacity
    reason: np.ndarray  # (n,) int8 Untreated codes
    iterations: int  # dual evaluations (one per multiplier vector tried)
    status: str
    nodes: int  # nodes of the exact search (0 when it did not run)

    def reason_codes(self) -> np.ndarray:
        """The (n,) int8 ``Untreated`` code of every unit (0 for treated units)."""
        return self.reason

    def reason_labels(self) -> np.ndarray:
        """The (n,) reason as text ("" for treated units), e.g. for a decision table."""
        labels = np.array([""] * (max(Untreated) + 1), dtype=object)
        for code in Untreated:
            labels[code] = code.label
        return labels[self.reason]


def optimize_budget(
    profit: np.ndarray,
    cost: np.ndarray,
    budget: float,
    *,
    capacity: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    tol: float = 1e-5,
    max_iter: int = 100,
    max_nodes: int = 1_000_000,
) -> Allocation:
    """Give each unit at most one arm to maximise total expected profit.

    Constraints: total expected cost <= ``budget``; at most ``capacity[j]`` units on arm
    j (inf: unlimited); only cells with ``allowed`` True. ``profit`` and ``cost`` are
    (n, k) float32/float64, cost >= 0. Options with profit <= 0 are never used; options
    that cost nothing and earn something are used even with a zero budget.

    ``tol`` and ``max_iter`` bound the capacity-multiplier search (unused without
    capacities, where the multiplier is exact); ``max_nodes`` bounds the exact search on
    the units in doubt (0: skip it). Without capacities ``gap`` never exceeds the largest
    single-unit profit; see docs/optimizer.md for what holds with capacities.
    """
    profit, cost, budget, cap, allowed = check_inputs(profit, cost, budget, capacity, allowed)
    n, k = profit.shape
    if n == 0:
        return _empty_allocation(k)
    with threads_for(n):
        rel, iterations = capacity_multipliers(profit, cost, allowed, budget, cap, tol, max_iter)
        arm = greedy_primal(profit, cost, allowed, budget, cap, rel)
        repair_budget(profit, cost, arm, budget)
        spent, value, counts = totals_of(profit, cost, arm)
        new, nodes, proven = exact_core(profit, cost, allowed, budget, cap, rel, value, max_nodes)
        if new is not None:
            repair_budget(profit, cost, new, budget)
            new_spent, new_value, new_counts = totals_of(profit, cost, new)
            if new_value > value:
                arm, spent, value, counts = new, new_spent, new_value, new_counts
        reason = _reasons(profit, allowed, arm, counts, cap)
    _check_feasible(arm, allowed, spent, budget, counts, cap)
    return _certified(rel, arm, spent, value, reason, iterations, nodes, proven)


def _empty_allocation(n_arms: int) -> Allocation:
    """The allocation of zero units: nothing to do, trivially optimal."""
    nothing = np.empty(0, np.int32)
    return Allocation(
        arm=nothing,
        profit=0.0,
        cost=0.0,
        upper_bound=0.0,
        gap=0.0,
        relative_gap=0.0,
        multiplier=0.0,
        arm_multipliers=np.zeros(n_arms),
        reason=nothing.astype(np.int8),
        iterations=0,
        status="optimal",
        nodes=0,
    )


def _certified(
    rel: Relaxed,
    arm: np.ndarray,
    spent: float,
    value: float,
    reason: np.ndarray,
    iterations: int,
    nodes: int,
    proven: bool,
) -> Allocation:
    """The allocation with its certificate: the dual bound and the gap to it."""
    upper = max(rel.dual, value)  # a feasible value above the computed dual is rounding
    gap = upper - value
    return Allocation(
        arm=arm,
        profit=value,
        cost=spent,
        upper_bound=upper,
        gap=gap,
        relative_gap=gap / max(abs(upper), np.finfo(np.float64).tiny),
        multiplier=rel.lam,
        arm_multipliers=rel.mu.copy(),
        reason=reason,
        iterations=iterations,
        status="optimal" if proven else "feasible",
        nodes=nodes,
    )


def _check_feasible(
    arm: np.ndarray,
    allowed: np.ndarray,
    spent: float,
    budget: float,
    counts: np.ndarray,
    cap: np.ndarray,
) -> None:
    """The allocation must respect the budget, the capacities and the mask."""
    if spent > budget:
        raise AssertionError(f"allocation costs {spent} > budget {budget}")
    if (counts > cap).any():
        raise AssertionError(f"arm counts {counts} exceed capacities {cap}")
    if allowed.shape[0]:
        treated = np.flatnonzero(arm >= 0)
        if not allowed[treated, arm[treated]].all():
            raise AssertionError("allocation uses a cell that is not allowed")


def _reasons(
    profit: np.ndarray, allowed: np.ndarray, arm: np.ndarray, counts: np.ndarray, cap: np.ndarray
) -> np.ndarray:
    """Untreated code per unit: not allowed, no positive profit, capacity, else budget."""
    reason = np.empty(arm.shape[0], dtype=np.int8)
    order = (
        Untreated.NOT_ALLOWED,
        Untreated.NO_POSITIVE_PROFIT,
        Untreated.CAPACITY,
        Untreated.BUDGET,
    )
    codes = np.array(order, dtype=np.int8)
    kernels.reason_codes(profit, allowed, arm, counts >= cap, codes, reason)
    return reason
