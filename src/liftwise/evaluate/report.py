"""Race output on disk: the table (CSV, JSON), the curves as plots, an HTML report, the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # object API: no pyplot state, no display backend

from liftwise.evaluate.bundle import ModelBundle, save_bundle
from liftwise.evaluate.metrics import Curve
from liftwise.evaluate.race import RaceResult
from liftwise.io import atomic_path, write_json
from liftwise.report import (
    Column,
    Paragraph,
    Section,
    Table,
    figure_png,
    format_value,
    markup,
    plot_sections,
    render_page,
)


def plot_policy_profit(result: RaceResult, currency: str = "") -> bytes:
    """Incremental net profit vs number of units targeted, every candidate on one axis."""
    figure = Figure(figsize=(8, 4.8))
    axis = figure.subplots()
    for name, curve in result.policy_curves.items():
        is_winner = name == result.winner
        baseline = name not in result.arm_curves
        axis.plot(
            curve.x,
            curve.y,
            label=f"{name} (winner)" if is_winner else name,
            linewidth=2.6 if is_winner else 1.3,
            linestyle="--" if baseline else "-",
        )
    k = round(result.settings.k * result.n_validation)
    axis.axvline(k, color="grey", linewidth=0.8, linestyle=":")
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_xlabel("units targeted (validation split), best arm each")
    axis.set_ylabel(f"incremental net profit {currency}".strip())
    axis.set_title(f"Profit vs K (dotted: K = {result.settings.k:.0%})")
    axis.legend(fontsize=7, ncol=2)
    return figure_png(figure)


def plot_arm_curves(result: RaceResult, which: int) -> bytes:
    """Uplift (which=0) or Qini (which=1) curves per arm for every learner, with random."""
    arms = result.arms[1:]
    figure = Figure(figsize=(4.6 * len(arms), 4))
    axes = figure.subplots(1, len(arms), squeeze=False)
    for axis, arm in zip(axes[0], arms, strict=True):
        last: Curve | None = None
        for name, per_arm in result.arm_curves.items():
            curve = per_arm[arm][which]
            axis.plot(curve.x, curve.y, label=name, linewidth=2.4 if name == result.winner else 1.2)
            last = curve
        if last is not None:
            axis.plot(
                [0, last.x[-1]], [0, last.y[-1]], color="black", linestyle=":", label="random"
            )
        axis.set_title(f"{arm} vs {result.arms[0]}")
        axis.set_xlabel("units targeted")
    axes[0][0].set_ylabel("cumulative uplift" if which == 0 else "Qini")
    axes[0][-1].legend(fontsize=7)
    return figure_png(figure)


def contestant_table(result: RaceResult, currency: str = "") -> Table:
    """Every contestant's Profit@K with its CI and where its profit curve peaks."""
    money = f" ({currency})" if currency else ""
    k = f"Profit@{result.settings.k:.0%}"
    columns = [
        Column("contestant"),
        Column("kind"),
        Column(f"{k}{money}", "money"),
        Column(f"{k} 95% CI", "money", interval=True),
        Column(f"profit per 1,000 units{money}", "money"),
        Column("best K (units)", "integer"),
        Column(f"profit at best K{money}", "money"),
        Column("fit seconds", "number"),
    ]
    rows = [
        [
            f"{row.name} (winner)" if row.name == result.winner else row.name,
            row.kind,
            row.profit_at_k,
            (row.profit_at_k_low, row.profit_at_k_high),
            row.profit_per_1000_units,
            row.best_k,
            row.max_profit,
            row.fit_seconds if row.kind == "learner" else None,  # baselines are not fitted
        ]
        for row in result.table.itertuples(index=False)
    ]
    return Table(columns, rows)


def arm_metric_table(result: RaceResult) -> Table:
    """Per learner and treatment arm: Qini, AUUC (with CIs and in causalml's normalisation)
    and uplift@k; baselines rank no units by effect, so they have no row here."""
    uplift = f"uplift@{result.settings.uplift_k:g}"
    columns = [Column("learner"), Column("arm")]
    for label in ("Qini", "AUUC"):
        columns += [
            Column(label, "number"),
            Column(f"{label} 95% CI", "number", interval=True),
            Column(f"{label} (causalml)", "number"),
        ]
    columns += [Column(uplift, "number"), Column(f"{uplift} 95% CI", "number", interval=True)]
    rows = []
    for _, row in result.table[result.table["kind"] == "learner"].iterrows():
        for arm in result.arms[1:]:
            cells: list[object] = [row["name"], arm]
            for metric in ("qini", "auuc"):
                cells += [
                    row[f"{metric}[{arm}]"],
                    (row[f"{metric}_low[{arm}]"], row[f"{metric}_high[{arm}]"]),
                    row[f"{metric}_causalml[{arm}]"],
                ]
            cells += [
                row[f"{uplift}[{arm}]"],
                (row[f"{uplift}_low[{arm}]"], row[f"{uplift}_high[{arm}]"]),
            ]
            rows.append(cells)
    return Table(columns, rows)


def race_sections(result: RaceResult, currency: str = "", *, suffix: str = "") -> list[Section]:
    """The race's tables as page sections (the race report and the quickstart report)."""
    return [
        Section(f"Contestants{suffix}", [contestant_table(result, currency)]),
        Section(f"Ranking metrics per arm{suffix}", [arm_metric_table(result)]),
    ]


def race_summary(result: RaceResult, currency: str = "") -> Paragraph:
    """The winner, its Profit@K with CI, the outcome, value per outcome and arms."""
    row = result.winner_row
    unit = f" {currency}" if currency else ""
    return Paragraph(
        markup(
            "Winner by Profit@{} on {:,} validation units: <b>{}</b>, {}{} (95% CI {} to {}). "
            "Outcome <code>{}</code>, value per outcome {}; arms {} (control first).",
            f"{result.settings.k:.0%}",
            result.n_validation,
            result.winner,
            format_value(row["profit_at_k"], "money"),
            unit,
            format_value(row["profit_at_k_low"], "money"),
            format_value(row["profit_at_k_high"], "money"),
            result.settings.outcome,
            format_value(result.settings.economics.value_per_outcome, "number"),
            ", ".join(result.arms),
        )
    )


def render_report(
    result: RaceResult, images: dict[str, bytes], title: str, currency: str = ""
) -> str:
    """A self-contained HTML page: summary, the race tables and the plots (inline PNG)."""
    return render_page(
        title,
        [*race_sections(result, currency), *plot_sections(images)],
        intro=[race_summary(result, currency)],
    )


def save_race(
    result: RaceResult, bundle: ModelBundle, out: str | Path, *, title: str = "liftwise model race"
) -> dict[str, Path]:
    """Write race.csv, race.json, plots/*.png, report.html and model/ under ``out``."""
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    currency = str(bundle.metadata.get("currency", ""))
    images = {
        "profit vs K": plot_policy_profit(result, currency),
        "uplift curves": plot_arm_curves(result, 0),
        "Qini curves": plot_arm_curves(result, 1),
    }
    paths = {}
    for name, data in images.items():
        path = out / "plots" / f"{name.replace(' ', '_')}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        paths[name] = path
    with atomic_path(out / "race.csv") as tmp:
        result.table.to_csv(tmp, index=False)
    write_json(
        out / "race.json",
        {
            "winner": result.winner,
            "k": result.settings.k,
            "n_validation": result.n_validation,
            "arms": list(result.arms),
            "propensity": np.round(result.propensity, 6).tolist(),
            "learners": list(result.settings.learners),
            "table": result.table.replace({np.nan: None}).to_dict(orient="records"),
        },
    )
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(render_report(result, images, title, currency))
    save_bundle(bundle, out / "model")
    paths.update({"report": out / "report.html", "table": out / "race.csv", "model": out / "model"})
    return paths
