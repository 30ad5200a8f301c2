"""The experiment report: one self-contained HTML page with plots, and the JSON summary.

Plots (matplotlib, inline PNG): relative effects with (1 - alpha) intervals per metric, the
net-profit uplift, effects per segment level, the confidence sequence over time next to
the fixed-horizon interval, and the SRM check. Both files are written atomically.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from liftwise.evaluate.report import png_bytes
from liftwise.experiment.analyze import (
    NET_PROFIT,
    ExperimentAnalysis,
    SegmentBreakdown,
    summary_dict,
)
from liftwise.io import atomic_path, write_json

GOOD, BAD, NEUTRAL, BAND = "#1b7f3b", "#b3261e", "#555555", "#9ecae1"


def level(alpha: float) -> str:
    """The confidence level of ``alpha`` as text: 0.05 -> "95%"."""
    return f"{100 * (1 - alpha):g}%"


def _headline(analysis: ExperimentAnalysis) -> str:
    """The metric the segment and over-time plots follow: net profit, else the first metric."""
    if analysis.profit:
        return NET_PROFIT
    return analysis.comparisons[0].metric


def _colour(low: float, high: float, higher_is_better: bool = True) -> str:
    if low > 0:
        return GOOD if higher_is_better else BAD
    if high < 0:
        return BAD if higher_is_better else GOOD
    return NEUTRAL


def plot_metric_effects(analysis: ExperimentAnalysis) -> bytes:
    """Relative lift of every metric and arm vs its baseline, with (1 - alpha) intervals."""
    rows = [c for c in analysis.comparisons if np.isfinite(float(c.relative.estimate))]
    confidence = level(analysis.config.alpha)
    better = {m.name: m.higher_is_better for m in analysis.config.metrics}
    figure = Figure(figsize=(8, 0.45 * max(len(rows), 2) + 1.2))
    axis = figure.subplots()
    for y, c in enumerate(rows):
        low, high = 100 * float(c.relative.ci_low), 100 * float(c.relative.ci_high)
        colour = _colour(low, high, better.get(c.metric, True))
        axis.plot([low, high], [y, y], color=colour, linewidth=2)
        axis.plot(100 * float(c.relative.estimate), y, "o", color=colour)
        guard = analysis.config.metrics[
            [m.name for m in analysis.config.metrics].index(c.metric)
        ].guardrail
        if guard is not None and guard.relative:
            edge = -100 * guard.margin if better.get(c.metric, True) else 100 * guard.margin
            axis.plot([edge, edge], [y - 0.35, y + 0.35], color=BAD, linestyle=":")
    axis.set_yticks(range(len(rows)), [f"{c.metric}: {c.treatment} vs {c.baseline}" for c in rows])
    axis.axvline(0, color="black", linewidth=0.7)
    axis.set_xlabel(f"relative effect, % of the baseline mean ({confidence} CI)")
    axis.set_title("Effects per metric (green: better, red: worse, grey: not significant)")
    axis.invert_yaxis()
    return png_bytes(figure)


def plot_profit(analysis: ExperimentAnalysis) -> bytes:
    """Net profit uplift per unit: fixed-horizon interval (thick) and always-valid (thin)."""
    paths = {(p.treatment, p.baseline): p for p in analysis.paths if p.metric == NET_PROFIT}
    figure = Figure(figsize=(8, 0.6 * max(len(analysis.profit), 2) + 1.2))
    axis = figure.subplots()
    for y, uplift in enumerate(analysis.profit):
        e = uplift.per_unit
        colour = _colour(float(e.ci_low), float(e.ci_high))
        path = paths.get((uplift.treatment, uplift.baseline))
        if path is not None:
            axis.plot(
                [path.sequential.ci_low[-1], path.sequential.ci_high[-1]],
                [y, y],
                color=colour,
                linewidth=0.8,
            )
        axis.plot([e.ci_low, e.ci_high], [y, y], color=colour, linewidth=3)
        axis.plot(e.estimate, y, "o", color=colour)
    axis.set_yticks(
        range(len(analysis.profit)), [f"{u.treatment} vs {u.baseline}" for u in analysis.profit]
    )
    axis.axvline(0, color="black", linewidth=0.7)
    currency = analysis.config.profit.currency if analysis.config.profit else ""
    axis.set_xlabel(
        f"net profit uplift per unit {currency} "
        f"(thick: {level(analysis.config.alpha)} CI, thin: always-valid)"
    )
    axis.set_title("Net profit uplift = revenue - treatment costs, vs baseline")
    axis.invert_yaxis()
    return png_bytes(figure)


def plot_segments(breakdowns: list[SegmentBreakdown]) -> bytes:
    """One panel per comparison: the effect in every level of one segment column."""
    figure = Figure(figsize=(5.2 * len(breakdowns), 0.42 * len(breakdowns[0].effects.levels) + 1.6))
    axes = figure.subplots(1, len(breakdowns), squeeze=False)[0]
    for axis, item in zip(axes, breakdowns, strict=True):
        effect = item.effects.effect
        estimate = np.atleast_1d(effect.estimate)
        low, high = np.atleast_1d(effect.ci_low), np.atleast_1d(effect.ci_high)
        for y in range(estimate.size):
            if not np.isfinite(estimate[y]) or not np.isfinite(low[y]):
                continue
            colour = (
                BAD
                if item.effects.levels[y] in item.effects.regressions
                else _colour(low[y], high[y])
            )
            axis.plot([low[y], high[y]], [y, y], color=colour, linewidth=2)
            axis.plot(estimate[y], y, "o", color=colour)
        pooled = item.effects.heterogeneity.pooled_estimate
        if np.isfinite(pooled):
            axis.axvline(pooled, color=NEUTRAL, linestyle="--", linewidth=0.8)
        axis.axvline(0, color="black", linewidth=0.7)
        axis.set_yticks(range(estimate.size), item.effects.levels)
        axis.invert_yaxis()
        p_q = item.effects.heterogeneity.p_value
        axis.set_title(
            f"{item.metric}: {item.treatment} vs {item.baseline}\nCochran's Q p = {p_q:.3g}",
            fontsize=9,
        )
        axis.set_xlabel(f"effect ({level(effect.alpha)} CI); dashed: pooled")
    figure.suptitle(f"By {breakdowns[0].effects.dimension}", fontsize=10)
    return png_bytes(figure)


def plot_sequential(analysis: ExperimentAnalysis, metric: str) -> bytes:
    """The confidence sequence over time (band) and the fixed-horizon interval (lines)."""
    paths = [p for p in analysis.paths if p.metric == metric]
    figure = Figure(figsize=(5.2 * len(paths), 3.8))
    axes = figure.subplots(1, len(paths), squeeze=False)[0]
    for axis, path in zip(axes, paths, strict=True):
        x = np.arange(len(path.times))
        seq, fixed = path.sequential, path.fixed
        axis.fill_between(
            x,
            seq.ci_low,
            seq.ci_high,
            color=BAND,
            alpha=0.6,
            label=f"always-valid {level(seq.alpha)}",
        )
        axis.plot(
            x,
            fixed.ci_low,
            color=NEUTRAL,
            linewidth=0.8,
            linestyle="--",
            label=f"fixed-horizon {level(fixed.alpha)}",
        )
        axis.plot(x, fixed.ci_high, color=NEUTRAL, linewidth=0.8, linestyle="--")
        axis.plot(x, seq.estimate, color="black", linewidth=1.2, label="estimate")
        axis.axhline(0, color="black", linewidth=0.6)
        ticks = np.unique(np.linspace(0, len(path.times) - 1, min(5, len(path.times))).astype(int))
        axis.set_xticks(ticks, [path.times[i][:10] for i in ticks], fontsize=7)
        axis.set_title(f"{metric}: {path.treatment} vs {path.baseline}", fontsize=9)
        axis.set_xlabel("exposed up to")
    axes[0].legend(fontsize=7)
    figure.suptitle("Sequential monitoring (valid at every look)", fontsize=10)
    return png_bytes(figure)


def plot_srm(analysis: ExperimentAnalysis) -> bytes:
    """Observed vs expected units per arm."""
    srm = analysis.srm
    assert srm is not None
    arms = list(srm.observed)
    x = np.arange(len(arms))
    figure = Figure(figsize=(6, 3.4))
    axis = figure.subplots()
    axis.bar(
        x - 0.2,
        [srm.observed[a] for a in arms],
        0.4,
        label="observed",
        color=BAD if srm.mismatch else GOOD,
    )
    axis.bar(x + 0.2, [srm.expected[a] for a in arms], 0.4, label="expected", color=NEUTRAL)
    axis.set_xticks(x, arms)
    status = "MISMATCH" if srm.mismatch else "ok"
    axis.set_title(
        f"Sample ratio: {status} (chi-square p = {srm.p_value:.3g}, threshold {srm.threshold:g})"
    )
    axis.legend(fontsize=8)
    return png_bytes(figure)


def report_images(analysis: ExperimentAnalysis) -> dict[str, bytes]:
    """Every plot of the report, by title."""
    images: dict[str, bytes] = {}
    if analysis.srm is not None:
        images["Sample ratio check"] = plot_srm(analysis)
    if analysis.comparisons:
        images["Effects per metric"] = plot_metric_effects(analysis)
    if analysis.profit:
        images["Net profit uplift"] = plot_profit(analysis)
    headline = _headline(analysis)
    if any(p.metric == headline for p in analysis.paths):
        images["Sequential interval over time"] = plot_sequential(analysis, headline)
    for dimension in analysis.config.segments:
        chosen = [
            s
            for s in analysis.segments
            if s.metric == headline and s.effects.dimension == dimension
        ]
        if chosen:
            images[f"Segments: {dimension}"] = plot_segments(chosen)
    return images


def _number(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    number = float(value)  # type: ignore[arg-type]
    if not np.isfinite(number):
        return "–"
    return f"{number:,.4g}" if abs(number) < 1e4 else f"{number:,.0f}"


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(v) if isinstance(v, str) else _number(v)}</td>" for v in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _interval(low: object, high: object, percent: bool = False) -> str:
    scale = 100.0 if percent else 1.0
    if low is None or high is None or not np.isfinite(float(low)) or not np.isfinite(float(high)):  # type: ignore[arg-type]
        return "–"
    suffix = "%" if percent else ""
    return f"[{_number(scale * float(low))}{suffix}, {_number(scale * float(high))}{suffix}]"  # type: ignore[arg-type]


def render_report(analysis: ExperimentAnalysis, images: dict[str, bytes], title: str) -> str:
    """A self-contained HTML page: verdict, tables, then the plots."""
    summary = summary_dict(analysis)
    verdict = summary["verdict"]
    confidence = level(analysis.config.alpha)
    lines = [
        f"Sample ratio: {'not checked (no expected ratios)' if verdict['srm_ok'] is None else 'ok' if verdict['srm_ok'] else 'MISMATCH: do not trust the effects'}",
        f"Guardrails: {'none' if verdict['guardrails_passed'] is None else 'all passed' if verdict['guardrails_passed'] else 'FAILED'}",
        f"Segment regressions: {len(verdict['segment_regressions']) or 'none'}",
    ]
    for key, item in verdict["profit"].items():
        lines.append(
            f"Net profit, {key}: {'SUCCESS (gain above zero with ' + confidence + ' confidence)' if item['success'] else 'not shown' if not item['confident_gain'] else 'gain shown, but a check failed'}"
        )
    metric_rows = [
        [
            m["metric"] + (" (CUPED)" if m["cuped"] else ""),
            f"{m['treatment']} vs {m['baseline']}",
            m["n_treatment"],
            m["mean_baseline"],
            m["mean_treatment"],
            m["absolute"]["estimate"],
            _interval(m["absolute"]["ci_low"], m["absolute"]["ci_high"]),
            _interval(m["relative"]["ci_low"], m["relative"]["ci_high"], percent=True),
            m["absolute"]["p_value"],
            m["adjusted_p_value"],
            _interval(m["sequential"]["ci_low"], m["sequential"]["ci_high"]),
        ]
        for m in summary["metrics"]
        if not m["is_guardrail"]
    ]
    guard_rows = [
        [
            m["metric"],
            f"{m['treatment']} vs {m['baseline']}",
            m["guardrail"]["estimate"] if m["guardrail"] else None,
            m["guardrail"]["margin"] if m["guardrail"] else None,
            m["guardrail"]["bound"] if m["guardrail"] else None,
            m["guardrail"]["p_value"] if m["guardrail"] else None,
            bool(m["guardrail"] and m["guardrail"]["passed"]),
        ]
        for m in summary["metrics"]
        if m["is_guardrail"]
    ]
    profit_rows = [
        [
            f"{p['treatment']} vs {p['baseline']}" + (" (CUPED)" if p["cuped"] else ""),
            p["mean_baseline"],
            p["mean_treatment"],
            p["per_unit"]["estimate"],
            _interval(p["per_unit"]["ci_low"], p["per_unit"]["ci_high"]),
            p["treatment_units"],
            p["total"]["estimate"],
            _interval(p["total"]["ci_low"], p["total"]["ci_high"]),
            p["confident_gain"],
        ]
        for p in summary["profit"]
    ]
    segment_rows = [
        [
            s["metric"],
            f"{s['treatment']} vs {s['baseline']}",
            s["dimension"],
            len(s["levels"]),
            s["heterogeneity"]["q"],
            s["heterogeneity"]["p_value"],
            s["heterogeneity"]["i_squared"],
            s["spread"]["lowest_segment"],
            s["spread"]["highest_segment"],
            s["spread"]["range"],
            ", ".join(s["regressions"]) or "none",
        ]
        for s in summary["segments"]
    ]
    units = summary["units"]
    sections = [
        "<h2>Verdict</h2><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        + "</ul>",
        "<h2>Units</h2>"
        + _table(
            list(units),
            [
                [
                    units[k] if not isinstance(units[k], list) else ", ".join(units[k]) or "–"
                    for k in units
                ]
            ],
        ),
        "<h2>Metrics</h2>"
        + _table(
            [
                "metric",
                "comparison",
                "n",
                "baseline mean",
                "treatment mean",
                "effect",
                f"{confidence} CI",
                f"relative {confidence} CI",
                "p",
                f"p ({summary['correction']})",
                f"always-valid {confidence} CI",
            ],
            metric_rows,
        ),
    ]
    if guard_rows:
        sections.append(
            "<h2>Guardrails (one-sided non-inferiority)</h2>"
            + _table(
                ["metric", "comparison", "effect", "margin", "one-sided bound", "p", "passed"],
                guard_rows,
            )
        )
    if profit_rows:
        sections.append(
            "<h2>Net profit uplift</h2>"
            + _table(
                [
                    "comparison",
                    "baseline per unit",
                    "treatment per unit",
                    "uplift per unit",
                    f"{confidence} CI",
                    "treatment units",
                    "total uplift",
                    f"{confidence} CI",
                    "confident gain",
                ],
                profit_rows,
            )
        )
    if segment_rows:
        sections.append(
            "<h2>Segments</h2>"
            + _table(
                [
                    "metric",
                    "comparison",
                    "segment column",
                    "levels",
                    "Cochran's Q",
                    "p (heterogeneity)",
                    "I²",
                    "lowest",
                    "highest",
                    "range",
                    "regressions (Holm)",
                ],
                segment_rows,
            )
        )
    pictures = "".join(
        f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(data).decode()}">'
        for name, data in images.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.8rem; margin-bottom: 1rem; }}
th, td {{ padding: 0.25rem 0.5rem; border-bottom: 1px solid #ddd; text-align: right; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Control <b>{html.escape(summary["control"])}</b>, arms {html.escape(", ".join(summary["arms"]))};
alpha {summary["alpha"]}; exposures <code>{html.escape(str(summary["sources"].get("exposures", "")))}</code>,
outcomes <code>{html.escape(str(summary["sources"].get("outcomes", "")))}</code>.</p>
{"".join(sections)}
{pictures}
</body></html>
"""


def write_report(
    analysis: ExperimentAnalysis, out: str | Path, *, title: str = "liftwise experiment"
) -> dict[str, Path]:
    """Write ``summary.json`` and ``report.html`` into ``out`` (each atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "summary.json", "report": out / "report.html"}
    write_json(paths["summary"], summary_dict(analysis))
    with atomic_path(paths["report"]) as tmp:
        tmp.write_text(render_report(analysis, report_images(analysis), title))
    return paths
