"""The experiment report: one self-contained HTML page with plots, and the JSON summary.

Plots (matplotlib, inline PNG): relative effects with (1 - alpha) intervals per metric, the
net-profit uplift, effects per segment level, the confidence sequence over time next to
the fixed-horizon interval, and the SRM check. Both files are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from liftwise.experiment.analyze import (
    NET_PROFIT,
    ExperimentAnalysis,
    SegmentBreakdown,
    summary_dict,
)
from liftwise.io import atomic_path, write_json
from liftwise.report import (
    Bullets,
    Column,
    Paragraph,
    Section,
    Table,
    figure_png,
    markup,
    plot_sections,
    render_page,
)

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
    return figure_png(figure)


def plot_profit(analysis: ExperimentAnalysis) -> bytes:
    """Net profit uplift per unit: fixed-horizon interval (thick) and always-valid (thin)."""
    paths = {(p.treatment, p.baseline): p for p in analysis.paths if p.metric == NET_PROFIT}
    figure = Figure(figsize=(8, 0.6 * max(len(analysis.profit), 2) + 1.2))
    axis = figure.subplots()
    for y, uplift in enumerate(analysis.profit):
        e = uplift.per_unit
        low, high = float(e.ci_low), float(e.ci_high)
        colour = _colour(low, high)
        path = paths.get((uplift.treatment, uplift.baseline))
        if path is not None:  # the always-valid interval at the last look
            seq = path.sequential
            last = [np.atleast_1d(seq.ci_low)[-1], np.atleast_1d(seq.ci_high)[-1]]
            axis.plot(last, [y, y], color=colour, linewidth=0.8)
        axis.plot([low, high], [y, y], color=colour, linewidth=3)
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
    return figure_png(figure)


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
    return figure_png(figure)


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
    return figure_png(figure)


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
    return figure_png(figure)


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


def _verdict_lines(verdict: dict[str, Any], confidence: str) -> list[str]:
    """The verdict in words: SRM, guardrails, segment regressions, net profit per arm."""
    srm, guards = verdict["srm_ok"], verdict["guardrails_passed"]
    lines = [
        "Sample ratio: "
        + (
            "not checked (no expected ratios)"
            if srm is None
            else "ok"
            if srm
            else "MISMATCH: do not trust the effects"
        ),
        "Guardrails: " + ("none" if guards is None else "all passed" if guards else "FAILED"),
        f"Segment regressions: {len(verdict['segment_regressions']) or 'none'}",
    ]
    for key, item in verdict["profit"].items():
        outcome = (
            f"SUCCESS (gain above zero with {confidence} confidence)"
            if item["success"]
            else "not shown"
            if not item["confident_gain"]
            else "gain shown, but a check failed"
        )
        lines.append(f"Net profit, {key}: {outcome}")
    return lines


def _pair(interval: dict[str, Any]) -> tuple[object, object]:
    return interval["ci_low"], interval["ci_high"]


def _units_table(units: dict[str, Any]) -> Table:
    """Where every exposure and outcome row went: one row per count (or note)."""
    rows: list[list[object]] = []
    for key, value in units.items():
        if isinstance(value, int):
            rows.append([key.replace("_", " "), value, ""])
        else:
            note = ", ".join(value) if isinstance(value, list) else str(value)
            rows.append([key.replace("_", " "), None, note])
    return Table([Column("accounting"), Column("count", "integer"), Column("detail")], rows)


def _metric_table(summary: dict[str, Any], confidence: str) -> Table:
    columns = [
        Column("metric"),
        Column("comparison"),
        Column("n", "integer"),
        Column("baseline mean", "number"),
        Column("treatment mean", "number"),
        Column("effect", "number"),
        Column(f"{confidence} CI", "number", interval=True),
        Column(f"relative {confidence} CI", "percent", interval=True),
        Column("p", "number"),
        Column(f"p ({summary['correction']})", "number"),
        Column(f"always-valid {confidence} CI", "number", interval=True),
    ]
    rows = [
        [
            m["metric"] + (" (CUPED)" if m["cuped"] else ""),
            f"{m['treatment']} vs {m['baseline']}",
            m["n_treatment"],
            m["mean_baseline"],
            m["mean_treatment"],
            m["absolute"]["estimate"],
            _pair(m["absolute"]),
            _pair(m["relative"]),
            m["absolute"]["p_value"],
            m["adjusted_p_value"],
            _pair(m["sequential"]),
        ]
        for m in summary["metrics"]
        if not m["is_guardrail"]
    ]
    return Table(columns, rows)


def _guardrail_table(summary: dict[str, Any]) -> Table:
    columns = [
        Column("metric"),
        Column("comparison"),
        *(Column(label, "number") for label in ("effect", "margin", "one-sided bound", "p")),
        Column("passed", "flag"),
    ]
    rows = []
    for m in summary["metrics"]:
        if m["is_guardrail"]:
            guard = m["guardrail"] or {}
            values = [guard.get(k) for k in ("estimate", "margin", "bound", "p_value")]
            comparison = f"{m['treatment']} vs {m['baseline']}"
            rows.append([m["metric"], comparison, *values, bool(guard.get("passed"))])
    return Table(columns, rows)


def _profit_table(summary: dict[str, Any], confidence: str, currency: str) -> Table:
    unit = f" ({currency})" if currency else ""
    columns = [
        Column("comparison"),
        Column(f"baseline per unit{unit}", "money"),
        Column(f"treatment per unit{unit}", "money"),
        Column(f"uplift per unit{unit}", "money"),
        Column(f"{confidence} CI", "money", interval=True),
        Column("treatment units", "integer"),
        Column(f"total uplift{unit}", "money"),
        Column(f"{confidence} CI", "money", interval=True),
        Column("confident gain", "flag"),
    ]
    rows = [
        [
            f"{p['treatment']} vs {p['baseline']}" + (" (CUPED)" if p["cuped"] else ""),
            p["mean_baseline"],
            p["mean_treatment"],
            p["per_unit"]["estimate"],
            _pair(p["per_unit"]),
            p["treatment_units"],
            p["total"]["estimate"],
            _pair(p["total"]),
            p["confident_gain"],
        ]
        for p in summary["profit"]
    ]
    return Table(columns, rows)


def _segment_table(summary: dict[str, Any]) -> Table:
    columns = [
        Column("metric"),
        Column("comparison"),
        Column("segment column"),
        Column("levels", "integer"),
        Column("Cochran's Q", "number"),
        Column("p (heterogeneity)", "number"),
        Column("I²", "number"),
        Column("lowest"),
        Column("highest"),
        Column("range", "number"),
        Column("regressions (Holm)"),
    ]
    rows = [
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
    return Table(columns, rows)


def report_sections(analysis: ExperimentAnalysis) -> list[Section]:
    """Verdict, unit accounting, metrics, then guardrails, net profit and segments if any."""
    summary = summary_dict(analysis)
    confidence = level(analysis.config.alpha)
    currency = analysis.config.profit.currency if analysis.config.profit else ""
    sections = [
        Section("Verdict", [Bullets(_verdict_lines(summary["verdict"], confidence))]),
        Section("Units", [_units_table(summary["units"])]),
        Section("Metrics", [_metric_table(summary, confidence)]),
    ]
    if any(m["is_guardrail"] for m in summary["metrics"]):
        guards = _guardrail_table(summary)
        sections.append(Section("Guardrails (one-sided non-inferiority)", [guards]))
    if summary["profit"]:
        profit = _profit_table(summary, confidence, currency)
        sections.append(Section("Net profit uplift", [profit]))
    if summary["segments"]:
        sections.append(Section("Segments", [_segment_table(summary)]))
    return sections


def render_report(analysis: ExperimentAnalysis, images: dict[str, bytes], title: str) -> str:
    """A self-contained HTML page: verdict, tables, then the plots."""
    sources = analysis.sources
    intro = markup(
        "Control <b>{}</b>, arms {}; alpha {}; exposures <code>{}</code>, "
        "outcomes <code>{}</code>.",
        analysis.config.control,
        ", ".join(analysis.arms),
        analysis.config.alpha,
        str(sources.get("exposures", "")),
        str(sources.get("outcomes", "")),
    )
    return render_page(
        title,
        [*report_sections(analysis), *plot_sections(images)],
        intro=[Paragraph(intro)],
    )


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
