"""Decisions: who gets which arm under the budget, the capacities and the guardrails."""

from liftwise.decide.curve import BudgetCurve, budget_curve
from liftwise.decide.optimizer import Allocation, Untreated, optimize_budget

__all__ = ["Allocation", "BudgetCurve", "Untreated", "budget_curve", "optimize_budget"]
