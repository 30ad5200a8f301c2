"""Race output on disk: the table (CSV, JSON), the curves as plots, an HTML report, the model."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # object API: no pyplot state, no display backend

from liftwise.evaluate.bundle import ModelBundle, save_bundle
from liftwise.evaluate.metrics import Curve
from liftwise.evaluate.race import RaceResult
from liftwise.io import atomic_path, write_json


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


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
    return png_bytes(figure)


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
    return png_bytes(figure)


def table_html(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(
                lambda v: f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
            )
    return shown.to_html(index=False, escape=True, border=0, classes="race")


def render_report(result: RaceResult, images: dict[str, bytes], title: str) -> str:
    """A self-contained HTML page: summary, the table and the plots (inline PNG)."""
    winner_row = result.table[result.table["name"] == result.winner].iloc[0]
    pictures = "".join(
        f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        for name, data in images.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table.race {{ border-collapse: collapse; font-size: 0.8rem; }}
table.race th, table.race td {{ padding: 0.25rem 0.5rem; border-bottom: 1px solid #ddd; text-align: right; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Winner by Profit@{result.settings.k:.0%} on {result.n_validation:,} validation units:
<b>{html.escape(result.winner)}</b>, {winner_row["profit_at_k"]:,.0f}
(95% CI {winner_row["profit_at_k_low"]:,.0f} to {winner_row["profit_at_k_high"]:,.0f}).
Outcome <code>{html.escape(result.settings.outcome)}</code>, value per outcome
{result.settings.economics.value_per_outcome:,.4g}; arms {html.escape(", ".join(result.arms))}
(control first).</p>
{table_html(result.table)}
{pictures}
</body></html>
"""


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
        tmp.write_text(render_report(result, images, title))
    save_bundle(bundle, out / "model")
    paths.update({"report": out / "report.html", "table": out / "race.csv", "model": out / "model"})
    return paths
