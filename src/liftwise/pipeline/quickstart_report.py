"""The quickstart's HTML report: the race's curves, profit vs budget, arm mix, reasons for
not treating and every policy's true value."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from liftwise.decide.batch import Decisions
from liftwise.decide.curve import BudgetCurve
from liftwise.evaluate.race import RaceResult
from liftwise.evaluate.report import plot_arm_curves, plot_policy_profit, race_sections
from liftwise.io import atomic_path
from liftwise.report import (
    Column,
    Paragraph,
    Section,
    Table,
    figure_png,
    markup,
    plot_sections,
    render_page,
)

if TYPE_CHECKING:  # quickstart imports this module when it writes the report
    from liftwise.pipeline.quickstart import PolicyRow


def plot_budget_curve(curve: BudgetCurve, budget: float) -> bytes:
    """Expected profit (model's view) of the best allocation at every budget."""
    budgets, profits, bounds = curve.budget, curve.profit, curve.upper_bound
    figure = Figure(figsize=(7, 4))
    axis = figure.subplots()
    axis.plot(budgets, profits, label="allocation (integral)")
    axis.plot(budgets, bounds, linestyle=":", label="LP upper bound")
    axis.axvline(budget, color="grey", linestyle="--", label="chosen budget")
    axis.set_xlabel("budget (VND)")
    axis.set_ylabel("expected net profit (VND)")
    axis.set_title("Profit vs budget")
    axis.legend(fontsize=8)
    return figure_png(figure)


def plot_counts(counts: dict[str, int], title: str) -> bytes:
    figure = Figure(figsize=(6, 3.2))
    axis = figure.subplots()
    names = list(counts)
    axis.barh(names, [counts[n] for n in names])
    axis.set_title(title)
    axis.invert_yaxis()
    return figure_png(figure)


def plot_policies(policies: Sequence[PolicyRow]) -> bytes:
    figure = Figure(figsize=(7, 3.8))
    axis = figure.subplots()
    names = [p.name for p in policies]
    values = np.array([p.incremental_profit for p in policies]) / 1e6
    axis.barh(names, values, color=["tab:green" if n == "liftwise" else "tab:gray" for n in names])
    axis.axvline(0, color="black", linewidth=0.6)
    axis.set_xlabel("true incremental net profit (million VND)")
    axis.invert_yaxis()
    axis.set_title("Every policy, valued with ground truth")
    return figure_png(figure)


def write_quickstart_report(
    out: Path,
    race: RaceResult,
    decisions: Decisions,
    policies: Sequence[PolicyRow],
    budget: float,
    curve: BudgetCurve,
) -> Path:
    """``out/report.html``: the decisions' summary, every policy's true value, the race's
    tables and the plots, in the report shell."""
    summary = decisions.summary()
    images = {
        "policies, true value": plot_policies(policies),
        "profit vs K (race)": plot_policy_profit(race, "VND"),
        "uplift curves (race)": plot_arm_curves(race, 0),
        "Qini curves (race)": plot_arm_curves(race, 1),
        "profit vs budget": plot_budget_curve(curve, budget),
        "arm mix": plot_counts(summary.arm_counts, "decided arms"),
        "reasons for not treating": plot_counts(summary.reasons, "untreated units by reason"),
    }
    intro = Paragraph(
        markup(
            "Budget {:,.0f} VND for {:,} customers. Race winner <b>{}</b>; {:,} customers "
            "treated, expected profit {:,.0f} VND (optimiser bound {:,.0f}, gap {:,.0f}).",
            budget,
            summary.units,
            race.winner,
            summary.treated,
            summary.expected_profit,
            summary.upper_bound,
            summary.gap,
        )
    )
    policy_table = Table(
        [
            Column("policy"),
            Column("treated", "integer"),
            Column("true expected cost (VND)", "money"),
            Column("true incremental net profit (VND)", "money"),
        ],
        [[p.name, p.treated, p.expected_cost, p.incremental_profit] for p in policies],
    )
    page = render_page(
        "liftwise quickstart",
        [
            Section("Policies, valued with ground truth", [policy_table]),
            *race_sections(race, "VND", suffix=" (race)"),
            *plot_sections(images),
        ],
        intro=[intro],
    )
    path = out / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page)
    return path
