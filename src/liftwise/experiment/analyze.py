"""The whole analysis of one experiment: exposures + outcomes (+ costs) in, verdict out.

``analyze_tables`` joins the tables (:mod:`~liftwise.experiment.data`), sums every needed
column per cell in one pass each (:mod:`~liftwise.experiment.aggregate`) and runs the
pure statistics on those sums: SRM, every metric of every arm against the control
(Welch / z / delta method / CUPED, relative lift, always-valid interval, multiplicity
correction), guardrails, the net-profit comparisons, the segment deep-dive and the
confidence sequence over time. ``ExperimentAnalysis.as_dict`` is the JSON summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from liftwise.errors import UserError
from liftwise.experiment.aggregate import ArmSums, CellSums, Pair, aggregate, pair
from liftwise.experiment.config import AnalysisConfig, GuardrailSpec
from liftwise.experiment.data import (
    UnitAccounting,
    UnitData,
    prepare_units,
    read_exposures,
    read_table,
)
from liftwise.stats.cuped import cuped_difference
from liftwise.stats.estimate import Estimate
from liftwise.stats.moments import ratio_moments
from liftwise.stats.multiple import adjust
from liftwise.stats.noninferiority import NonInferiority, non_inferiority
from liftwise.stats.profit import NetProfitUplift, net_profit_uplift
from liftwise.stats.segments import SegmentEffects, segment_effects
from liftwise.stats.sequential import sequential_estimate
from liftwise.stats.srm import SrmResult, srm_check
from liftwise.stats.welch import mean_difference, relative_difference

NET_PROFIT = "net_profit"
Kind = Literal["binary", "continuous", "ratio"]


@dataclass(frozen=True)
class MetricEstimate:
    """A metric's effect of arm b over arm a, absolute and relative, on any cell shape."""

    n_a: np.ndarray
    n_b: np.ndarray
    mean_a: np.ndarray
    mean_b: np.ndarray
    absolute: Estimate
    relative: Estimate
    theta: np.ndarray | float | None
    variance_ratio: np.ndarray | float | None


@dataclass(frozen=True)
class MetricPlan:
    """How one metric (or the net profit) is estimated from cell sums: column ``y`` and
    ``x`` (CUPED covariate, or a ratio's denominator)."""

    name: str
    kind: Kind
    y: str
    x: str | None
    higher_is_better: bool = True
    guardrail: GuardrailSpec | None = None

    @property
    def cuped(self) -> bool:
        return self.kind != "ratio" and self.x is not None

    def pairs(self) -> list[Pair]:
        found = [pair(self.y, self.y)]
        if self.x is not None:
            found += [pair(self.x, self.x), pair(self.x, self.y)]
        return found

    def estimate(self, a: ArmSums, b: ArmSums, alpha: float) -> MetricEstimate:
        """Welch (continuous), Wald z (binary), delta method (ratio) or CUPED (covariate)."""
        theta = ratio = None
        if self.cuped:
            ja, jb = a.joint(self.y, str(self.x)), b.joint(self.y, str(self.x))
            result = cuped_difference(ja, jb, alpha)
            absolute, relative, theta, ratio = (
                result.absolute,
                result.relative,
                result.theta,
                result.variance_ratio,
            )
            mean_a, mean_b = ja.mean_y, jb.mean_y
        else:
            if self.kind == "ratio":
                ma, mb = (
                    ratio_moments(a.joint(self.y, str(self.x))),
                    ratio_moments(b.joint(self.y, str(self.x))),
                )
            elif self.kind == "binary":
                ma, mb = a.proportion(self.y), b.proportion(self.y)
            else:
                ma, mb = a.moments(self.y), b.moments(self.y)
            normal = self.kind == "binary"
            absolute = mean_difference(ma, mb, alpha, normal=normal)
            relative = relative_difference(ma, mb, alpha, normal=normal)
            mean_a, mean_b = ma.mean, mb.mean
        return MetricEstimate(
            n_a=np.asarray(a.n),
            n_b=np.asarray(b.n),
            mean_a=np.asarray(mean_a),
            mean_b=np.asarray(mean_b),
            absolute=absolute,
            relative=relative,
            theta=theta,
            variance_ratio=ratio,
        )


@dataclass(frozen=True)
class Comparison:
    """One metric, one arm against the baseline, at the end of the experiment."""

    metric: str
    kind: str
    treatment: str
    baseline: str
    cuped: bool
    n_baseline: int
    n_treatment: int
    mean_baseline: float
    mean_treatment: float
    absolute: Estimate
    relative: Estimate
    sequential: Estimate
    adjusted_p_value: float | None
    significant: bool | None
    theta: float | None
    variance_ratio: float | None
    is_guardrail: bool = False
    guardrail: NonInferiority | None = None  # None for a guardrail: no variance to test


@dataclass(frozen=True)
class SegmentBreakdown:
    """One metric and comparison across one segment column's levels."""

    metric: str
    treatment: str
    baseline: str
    effects: SegmentEffects


@dataclass(frozen=True)
class SequentialPath:
    """The confidence sequence of one comparison at every look (units exposed so far)."""

    metric: str
    treatment: str
    baseline: str
    times: list[str]
    n_total: np.ndarray
    sequential: Estimate
    fixed: Estimate


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Everything the report shows; ``as_dict`` is the machine-readable summary."""

    config: AnalysisConfig
    arms: list[str]
    units: UnitAccounting
    n_by_arm: dict[str, int]
    srm: SrmResult | None
    comparisons: list[Comparison]
    profit: list[NetProfitUplift]
    segments: list[SegmentBreakdown]
    paths: list[SequentialPath]
    sources: dict[str, str] = field(default_factory=dict)

    def verdict(self) -> dict[str, Any]:
        """SRM, guardrails, profit gains and segment regressions, and per profit comparison
        the plan's success criterion: all of them fine and the profit gain confident."""
        srm_ok = None if self.srm is None else not self.srm.mismatch
        guards = [c.guardrail for c in self.comparisons if c.is_guardrail]
        guardrails_ok = None if not guards else all(g is not None and g.passed for g in guards)
        regressions = [
            {
                "metric": s.metric,
                "treatment": s.treatment,
                "baseline": s.baseline,
                "dimension": s.effects.dimension,
                "segments": s.effects.regressions,
            }
            for s in self.segments
            if s.effects.regressions
        ]
        success = {}
        for uplift in self.profit:
            key = f"{uplift.treatment} vs {uplift.baseline}"
            regressed = any(
                r["metric"] == NET_PROFIT
                and r["treatment"] == uplift.treatment
                and r["baseline"] == uplift.baseline
                for r in regressions
            )
            success[key] = {
                "confident_gain": uplift.confident_gain,
                "segment_regression": regressed,
                "success": bool(
                    uplift.confident_gain
                    and srm_ok is not False
                    and guardrails_ok is not False
                    and not regressed
                ),
            }
        return {
            "srm_ok": srm_ok,
            "guardrails_passed": guardrails_ok,
            "segment_regressions": regressions,
            "profit": success,
        }

    def as_dict(self) -> dict[str, Any]:
        return summary_dict(self)


def _float(value: Any) -> Any:
    """JSON-safe value: text, booleans and integers as they are, non-finite floats as None."""
    if value is None or isinstance(value, str | bool | int):
        return value
    value = float(value)
    return None if not np.isfinite(value) else value


def _estimate_list(estimate: Estimate) -> dict[str, list[float | None]]:
    names = ("estimate", "standard_error", "ci_low", "ci_high", "p_value")
    return {name: [_float(v) for v in np.atleast_1d(getattr(estimate, name))] for name in names}


def summary_dict(analysis: ExperimentAnalysis) -> dict[str, Any]:
    """The JSON summary: plain numbers and lists, NaN as null."""
    config = analysis.config
    return {
        "experiment": config.experiment,
        "sources": analysis.sources,
        "control": config.control,
        "arms": analysis.arms,
        "alpha": config.alpha,
        "correction": config.correction,
        "units": analysis.units.as_dict(),
        "n_by_arm": analysis.n_by_arm,
        "srm": None if analysis.srm is None else analysis.srm.as_dict(),
        "verdict": analysis.verdict(),
        "metrics": [
            {
                "metric": c.metric,
                "kind": c.kind,
                "treatment": c.treatment,
                "baseline": c.baseline,
                "cuped": c.cuped,
                "n_baseline": c.n_baseline,
                "n_treatment": c.n_treatment,
                "mean_baseline": _float(c.mean_baseline),
                "mean_treatment": _float(c.mean_treatment),
                "absolute": c.absolute.as_dict(),
                "relative": c.relative.as_dict(),
                "sequential": c.sequential.as_dict(),
                "adjusted_p_value": _float(c.adjusted_p_value),
                "significant": c.significant,
                "theta": _float(c.theta),
                "variance_ratio": _float(c.variance_ratio),
                "is_guardrail": c.is_guardrail,
                "guardrail": None
                if c.guardrail is None
                else {k: _float(v) for k, v in vars(c.guardrail).items()},
            }
            for c in analysis.comparisons
        ],
        "profit": [
            {
                "treatment": p.treatment,
                "baseline": p.baseline,
                "currency": config.profit.currency if config.profit else "",
                "cuped": p.cuped,
                "mean_treatment": _float(p.mean_treatment),
                "mean_baseline": _float(p.mean_baseline),
                "per_unit": p.per_unit.as_dict(),
                "treatment_units": p.treatment_units,
                "total": p.total.as_dict(),
                "confident_gain": p.confident_gain,
            }
            for p in analysis.profit
        ],
        "segments": [
            {
                "metric": s.metric,
                "treatment": s.treatment,
                "baseline": s.baseline,
                "dimension": s.effects.dimension,
                "levels": s.effects.levels,
                "n_baseline": [int(v) for v in s.effects.n_baseline],
                "n_treatment": [int(v) for v in s.effects.n_treatment],
                **_estimate_list(s.effects.effect),
                "holm_p_value": [_float(v) for v in s.effects.holm_p_value],
                "regressions": s.effects.regressions,
                "heterogeneity": {k: _float(v) for k, v in vars(s.effects.heterogeneity).items()},
                "spread": {k: _float(v) for k, v in vars(s.effects.spread).items()},
            }
            for s in analysis.segments
        ],
        "sequential_paths": [
            {
                "metric": p.metric,
                "treatment": p.treatment,
                "baseline": p.baseline,
                "times": p.times,
                "n_total": [int(v) for v in p.n_total],
                "sequential": _estimate_list(p.sequential),
                "fixed": _estimate_list(p.fixed),
            }
            for p in analysis.paths
        ],
    }


def metric_plans(config: AnalysisConfig) -> list[MetricPlan]:
    """The metrics, then the net profit (named ``net_profit``) when configured."""
    plans = [
        MetricPlan(
            name=m.name,
            kind=m.type,
            y=str(m.numerator) if m.type == "ratio" else m.value_column,
            x=str(m.denominator) if m.type == "ratio" else m.covariate,
            higher_is_better=m.higher_is_better,
            guardrail=m.guardrail,
        )
        for m in config.metrics
    ]
    if config.profit is not None:
        plans.append(
            MetricPlan(name=NET_PROFIT, kind="continuous", y=NET_PROFIT, x=config.profit.covariate)
        )
    return plans


def _arm_prices(units: UnitData, config: AnalysisConfig) -> tuple[np.ndarray, np.ndarray]:
    """Contact and per-conversion price of every arm (in ``units.arms`` order)."""
    profit = config.profit
    assert profit is not None
    unknown = sorted(set(profit.arm_costs) - set(units.arms))
    if unknown:
        raise UserError(
            f"prices for arms that are not in the experiment: {', '.join(unknown)}",
            option="profit.arm_costs",
        )
    prices = [profit.arm_costs.get(arm) for arm in units.arms]
    contact = np.array([p.contact if p else 0.0 for p in prices])
    per_conversion = np.array([p.per_conversion if p else 0.0 for p in prices])
    return contact, per_conversion


def net_profit_column(units: UnitData, config: AnalysisConfig) -> np.ndarray:
    """Revenue - cost column - per-conversion price for every outcome row. The contact
    price is charged on the cell sums instead (:func:`charge_contact`), because it is due
    for every exposed unit, also one without an outcome row."""
    profit = config.profit
    assert profit is not None
    net = units.columns[profit.revenue].copy()
    if profit.cost:
        net -= units.columns[profit.cost]
    _, per_conversion = _arm_prices(units, config)
    if profit.conversion and per_conversion.any():
        arm = np.where(units.row_code >= 0, units.row_code // units.looks, 0)
        net -= per_conversion[arm] * units.columns[str(profit.conversion)]
    return net


def charge_contact(cells: CellSums, contact: np.ndarray) -> CellSums:
    """Subtract each arm's contact price c from the net profit y of every unit in its
    cells, exactly, on the sums: S_y - c n, S_yy - 2 c S_y + c^2 n, S_xy - c S_x."""
    if not contact.any():
        return cells
    c = contact.reshape(-1, *([1] * (cells.n.ndim - 1)))
    y = cells.sums[NET_PROFIT]
    sums = {**cells.sums, NET_PROFIT: y - c * cells.n}
    products = dict(cells.products)
    for key, value in cells.products.items():
        if key == (NET_PROFIT, NET_PROFIT):
            products[key] = value - 2 * c * y + c * c * cells.n
        elif NET_PROFIT in key:
            other = key[0] if key[1] == NET_PROFIT else key[1]
            products[key] = value - c * cells.sums[other]
    return replace(cells, sums=sums, products=products)


def _comparison_pairs(config: AnalysisConfig, arms: list[str]) -> list[tuple[str, str]]:
    """Profit comparisons (treatment, baseline): configured, or each arm vs the control."""
    if config.profit is None:
        return []
    pairs = config.profit.comparisons or [(arm, config.control) for arm in arms[1:]]
    for treatment, baseline in pairs:
        for arm in (treatment, baseline):
            if arm not in arms:
                raise UserError(
                    f"comparison arm '{arm}' is not in the experiment ({', '.join(arms)})",
                    option="profit.comparisons",
                )
        if treatment == baseline:
            raise UserError(f"compares '{treatment}' with itself", option="profit.comparisons")
    return [tuple(p) for p in pairs]  # type: ignore[misc]


def _guardrail(plan: MetricPlan, result: MetricEstimate, alpha: float) -> NonInferiority | None:
    """The non-inferiority test, None when the effect has no standard error (no data, no
    variance, or a zero baseline mean for a relative margin): the verdict then fails."""
    spec = plan.guardrail
    if spec is None:
        return None
    estimate = result.relative if spec.relative else result.absolute
    if not np.isfinite(float(estimate.standard_error)):
        return None
    return non_inferiority(
        float(estimate.estimate),
        float(estimate.standard_error),
        float(estimate.dof),
        spec.margin,
        higher_is_better=plan.higher_is_better,
        alpha=alpha,
    )


def _scalar(value: Any) -> float | None:
    return None if value is None else float(value)


def analyze_units(units: UnitData, config: AnalysisConfig) -> ExperimentAnalysis:
    """Every statistic of the experiment from the joined units."""
    plans = metric_plans(config)
    columns = {
        name: units.columns[name]
        for name in dict.fromkeys(c for p in plans for c in (p.y, p.x) if c and c != NET_PROFIT)
    }
    if config.profit is not None:
        columns[NET_PROFIT] = net_profit_column(units, config)
    pairs = [p for plan in plans for p in plan.pairs()]
    dimensions = aggregate(units, columns, pairs)
    if config.profit is not None:
        contact, _ = _arm_prices(units, config)
        dimensions = [charge_contact(cells, contact) for cells in dimensions]
    main = dimensions[0]
    overall = main.overall()
    arms, alpha = units.arms, config.alpha
    index = {arm: i for i, arm in enumerate(arms)}
    n_by_arm = {arm: int(overall.n[i]) for arm, i in index.items()}

    srm = None
    if config.arms is not None:
        srm = srm_check(n_by_arm, config.arms, config.srm_threshold)

    metric_pairs = [(arm, config.control) for arm in arms[1:]]
    comparisons: list[Comparison] = []
    for plan in plans:
        if plan.name == NET_PROFIT:
            continue
        for treatment, baseline in metric_pairs:
            result = plan.estimate(
                overall.arm(index[baseline]), overall.arm(index[treatment]), alpha
            )
            comparisons.append(_comparison(plan, treatment, baseline, result, config))
    comparisons = _corrected(comparisons, config)

    profit_pairs = _comparison_pairs(config, arms)
    profit: list[NetProfitUplift] = []
    if config.profit is not None:
        for treatment, baseline in profit_pairs:
            a, b = overall.arm(index[baseline]), overall.arm(index[treatment])
            cov = config.profit.covariate
            ma = a.joint(NET_PROFIT, cov) if cov else a.moments(NET_PROFIT)
            mb = b.joint(NET_PROFIT, cov) if cov else b.moments(NET_PROFIT)
            profit.append(net_profit_uplift(treatment, baseline, mb, ma, alpha))

    segments: list[SegmentBreakdown] = []
    if config.segments:
        for cells in dimensions:
            by_level = cells.by_level()
            segments += _segment_breakdowns(
                plans, by_level, index, metric_pairs, profit_pairs, alpha
            )

    paths: list[SequentialPath] = []
    if units.looks > 1:
        cumulative = main.cumulative_looks()
        for plan in plans:
            for treatment, baseline in profit_pairs if plan.name == NET_PROFIT else metric_pairs:
                result = plan.estimate(
                    cumulative.arm(index[baseline]), cumulative.arm(index[treatment]), alpha
                )
                n_total = result.n_a + result.n_b
                paths.append(
                    SequentialPath(
                        metric=plan.name,
                        treatment=treatment,
                        baseline=baseline,
                        times=units.look_times,
                        n_total=n_total,
                        sequential=sequential_estimate(
                            result.absolute, n_total, config.sequential_tuning
                        ),
                        fixed=result.absolute,
                    )
                )
    return ExperimentAnalysis(
        config=config,
        arms=arms,
        units=units.accounting,
        n_by_arm=n_by_arm,
        srm=srm,
        comparisons=comparisons,
        profit=profit,
        segments=segments,
        paths=paths,
        sources=units.sources,
    )


def _comparison(
    plan: MetricPlan, treatment: str, baseline: str, result: MetricEstimate, config: AnalysisConfig
) -> Comparison:
    n_total = result.n_a + result.n_b
    return Comparison(
        metric=plan.name,
        kind=plan.kind,
        treatment=treatment,
        baseline=baseline,
        cuped=plan.cuped,
        n_baseline=int(result.n_a),
        n_treatment=int(result.n_b),
        mean_baseline=float(result.mean_a),
        mean_treatment=float(result.mean_b),
        absolute=result.absolute,
        relative=result.relative,
        sequential=sequential_estimate(result.absolute, n_total, config.sequential_tuning),
        adjusted_p_value=None,
        significant=None,
        theta=_scalar(result.theta),
        variance_ratio=_scalar(result.variance_ratio),
        is_guardrail=plan.guardrail is not None,
        guardrail=_guardrail(plan, result, config.alpha),
    )


def _corrected(comparisons: list[Comparison], config: AnalysisConfig) -> list[Comparison]:
    """Adjust the p-values of the non-guardrail comparisons as one family."""
    family = [i for i, c in enumerate(comparisons) if not c.is_guardrail]
    adjusted = adjust(
        np.array([float(comparisons[i].absolute.p_value) for i in family]), config.correction
    )
    out = list(comparisons)
    for i, p in zip(family, adjusted, strict=True):
        out[i] = replace(out[i], adjusted_p_value=_scalar(p), significant=bool(p < config.alpha))
    return out


def _segment_breakdowns(
    plans: list[MetricPlan],
    cells: CellSums,
    index: dict[str, int],
    metric_pairs: list[tuple[str, str]],
    profit_pairs: list[tuple[str, str]],
    alpha: float,
) -> list[SegmentBreakdown]:
    out = []
    for plan in plans:
        for treatment, baseline in profit_pairs if plan.name == NET_PROFIT else metric_pairs:
            result = plan.estimate(cells.arm(index[baseline]), cells.arm(index[treatment]), alpha)
            effects = segment_effects(
                str(cells.dimension),
                cells.levels,
                result.absolute,
                result.n_a,
                result.n_b,
                higher_is_better=plan.higher_is_better,
            )
            out.append(SegmentBreakdown(plan.name, treatment, baseline, effects))
    return out


def analyze_tables(
    exposures: pa.Table,
    outcomes: pa.Table,
    config: AnalysisConfig,
    *,
    exposures_source: str = "exposures",
    outcomes_source: str = "outcomes",
) -> ExperimentAnalysis:
    """Analyse in-memory Arrow tables (see the module docstring)."""
    units = prepare_units(
        exposures,
        outcomes,
        config,
        exposures_source=exposures_source,
        outcomes_source=outcomes_source,
    )
    return analyze_units(units, config)


def analyze_files(
    exposures: str | Path, outcomes: str | Path, config: AnalysisConfig
) -> ExperimentAnalysis:
    """Read the exposures (file or registered URL) and the outcome file, then analyse."""
    exposure_table = read_exposures(exposures)
    outcome_table = read_table(outcomes, ["unit_id", *config.outcome_columns()], require=True)
    return analyze_tables(
        exposure_table,
        outcome_table,
        config,
        exposures_source=str(exposures),
        outcomes_source=str(outcomes),
    )
