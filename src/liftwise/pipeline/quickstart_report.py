"""The quickstart's HTML report: the race's curves, profit vs budget, arm mix, reasons for
not treating and every policy's true value."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from liftwise.decide.batch import Decisions
from liftwise.evaluate.race import RaceResult
from liftwise.evaluate.report import plot_arm_curves, plot_policy_profit, png_bytes, table_html
from liftwise.io import atomic_path


def plot_budget_curve(curve, budget: float) -> bytes:
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
    return png_bytes(figure)


def plot_counts(counts: dict[str, int], title: str) -> bytes:
    figure = Figure(figsize=(6, 3.2))
    axis = figure.subplots()
    names = list(counts)
    axis.barh(names, [counts[n] for n in names])
    axis.set_title(title)
    axis.invert_yaxis()
    return png_bytes(figure)


def plot_policies(policies) -> bytes:
    figure = Figure(figsize=(7, 3.8))
    axis = figure.subplots()
    names = [p.name for p in policies]
    values = np.array([p.incremental_profit for p in policies]) / 1e6
    axis.barh(names, values, color=["tab:green" if n == "liftwise" else "tab:gray" for n in names])
    axis.axvline(0, color="black", linewidth=0.6)
    axis.set_xlabel("true incremental net profit (million VND)")
    axis.invert_yaxis()
    axis.set_title("Every policy, valued with ground truth")
    return png_bytes(figure)


def write_quickstart_report(
    out: Path, race: RaceResult, decisions: Decisions, policies, budget: float, curve
) -> Path:
    summary = decisions.summary()
    images = {
        "policies, true value": plot_policies(policies),
        "profit vs K (race)": plot_policy_profit(race, "VND"),
        "uplift curves (race)": plot_arm_curves(race, 0),
        "Qini curves (race)": plot_arm_curves(race, 1),
        "profit vs budget": plot_budget_curve(curve, budget),
        "arm mix": plot_counts(summary["arm_counts"], "decided arms"),
        "reasons for not treating": plot_counts(summary["reasons"], "untreated units by reason"),
    }
    rows = "".join(
        f"<tr><td>{html.escape(p.name)}</td><td>{p.treated:,}</td><td>{p.expected_cost:,.0f}</td>"
        f"<td>{p.incremental_profit:,.0f}</td></tr>"
        for p in policies
    )
    pictures = "".join(
        f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        for name, data in images.items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>liftwise quickstart</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85rem; }} td, th {{ padding: 0.25rem 0.6rem;
border-bottom: 1px solid #ddd; text-align: right; }} img {{ max-width: 100%; }}</style></head>
<body><h1>liftwise quickstart</h1>
<p>Budget {budget:,.0f} VND for {summary["units"]:,} customers. Race winner
<b>{html.escape(race.winner)}</b>; {summary["treated"]:,} customers treated, expected
profit {summary["expected_profit"]:,.0f} VND (optimiser bound {summary["upper_bound"]:,.0f},
gap {summary["gap"]:,.0f}).</p>
<table><tr><th>policy</th><th>treated</th><th>true expected cost</th>
<th>true incremental net profit</th></tr>{rows}</table>
<h2>Race</h2>{table_html(race.table)}
{pictures}</body></html>
"""
    path = out / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page)
    return path
