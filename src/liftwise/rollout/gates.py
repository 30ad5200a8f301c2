"""The gates of a rollout step: what must be true before the candidate gets more traffic,
and what happens when it is not. Pure functions of the plan and the step's measurements.

Every gate gives one of three verdicts (docs/rollouts.md):

- **fail** as soon as the data prove a limit broken: the step's error or latency budget
  is spent (whatever the minimums), the split is mismatched, or, once every compared
  variant has the step's minimum outcomes, the always-valid interval of the net profit
  difference shows harm beyond the plan's tolerance. A failed gate rolls the candidate
  back. (The interval is asymptotic: on a few dozen outcomes without a conversion, a
  variant's sample variance is near zero and the interval falsely narrow, so the
  business gate judges nothing before the minimum; benchmarks/bench_rollout_gates.py
  shows the false aborts it would cause.)
- **pass** only on enough data: every served variant has the step's minimum decisions
  (and outcomes, for the business gate) and the limit holds. No data is never a pass.
- **hold** otherwise: wait for more data, up to the step's maximum wait.

The statistics are :mod:`liftwise.stats`' (Welch, the confidence sequence of Howard et
al. 2021 / Waudby-Smith et al. 2023, the always-valid SRM test of Lindon & Malek 2022), on the summaries
:mod:`liftwise.rollout.measure` keeps. Results are typed pydantic models, so the history
stores ``evaluation.model_dump_json()`` and the dashboard shows the same evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from liftwise.rollout.measure import ProfitMoments, VariantCounters
from liftwise.rollout.plan import Business, Gate, RolloutPlan, Step
from liftwise.rollout.split import BASELINE, CANDIDATE, HOLDOUT, Variant, expected_shares
from liftwise.stats.arrays import Array
from liftwise.stats.estimate import Estimate
from liftwise.stats.moments import Moments
from liftwise.stats.sequential import sequential_estimate
from liftwise.stats.srm import sequential_srm_p_value, srm_check
from liftwise.stats.welch import mean_difference

Verdict = Literal["pass", "fail", "hold"]
ActionKind = Literal["advance", "complete", "hold", "rollback", "pause", "abort"]
Status = Literal["running", "paused", "aborted", "completed"]
LATENCY_QUANTILE = 0.99
SLOW_SHARE = 0.01  # 1 - LATENCY_QUANTILE, exactly: more slow requests than this, p99 too slow


@dataclass(frozen=True)
class StepMeasurements:
    """What the service measured since the step began: operational counters summed over
    workers, and net profit moments of the units whose outcomes arrived. A variant
    missing from a mapping has no data yet."""

    seconds_on_step: float
    counters: Mapping[Variant, VariantCounters] = field(default_factory=dict)
    profit: Mapping[Variant, ProfitMoments] = field(default_factory=dict)

    def counters_of(self, variant: Variant) -> VariantCounters:
        return self.counters.get(variant, VariantCounters())

    def profit_of(self, variant: Variant) -> ProfitMoments:
        return self.profit.get(variant, ProfitMoments())


# --- evidence: typed, JSON-safe (NaN and infinity become None) ----------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class VariantErrors(_Model):
    variant: Variant
    requests: int
    decisions: int
    errors_and_timeouts: int
    error_rate: float | None = Field(description="None without requests.")
    budget: float = Field(description="Errors the step allows: rate x max(requests, minimum).")


class ErrorsEvidence(_Model):
    gate: Literal["errors"] = "errors"
    max_error_rate: float
    min_decisions: int
    variants: list[VariantErrors]


class VariantLatency(_Model):
    variant: Variant
    requests: int
    decisions: int
    p99_ms: float | None = Field(
        description="Upper bound of the histogram bucket holding the p99 (at least the true "
        "p99); None without requests or when the p99 lies beyond the last bound."
    )
    p99_beyond_histogram: bool = False
    slow: int = Field(description="Requests slower than max_p99_ms.")
    slow_budget: float = Field(description="Slow requests allowed: 1% of max(requests, min).")


class LatencyEvidence(_Model):
    gate: Literal["latency"] = "latency"
    max_p99_ms: float
    min_decisions: int
    variants: list[VariantLatency]


class SrmEvidence(_Model):
    gate: Literal["srm"] = "srm"
    observed: dict[Variant, int] = Field(description="Requests per variant.")
    expected: dict[Variant, float] = Field(description="Requests the split promises.")
    ratios: dict[Variant, float]
    total: int
    chi2: float
    p_value: float = Field(description="Fixed-horizon chi-square p-value (for reference).")
    sequential_p_value: float = Field(description="Always-valid p-value: what the gate reads.")
    srm_p_value: float
    min_decisions: int = Field(description="Total requests before the check is made.")


class VariantProfit(_Model):
    variant: Variant
    n: int = Field(description="Units with an outcome.")
    mean_net_profit: float | None = Field(description="Per unit; None without outcomes.")


class ProfitComparison(_Model):
    """Candidate minus ``against`` in mean net profit per unit, always-valid interval."""

    against: Variant
    n_candidate: int
    n_against: int
    estimate: float | None
    standard_error: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None = Field(description="Always-valid p-value of no difference.")
    shows_harm: bool = Field(description="ci_high < -harm_tolerance.")
    shows_uplift: bool = Field(description="ci_low > 0.")


class BusinessEvidence(_Model):
    gate: Literal["business"] = "business"
    criterion: Literal["no_harm", "uplift"]
    confidence: float
    harm_tolerance: float
    sequential_tuning: float
    min_outcomes: int
    variants: list[VariantProfit]
    comparisons: list[ProfitComparison]


Evidence = Annotated[
    ErrorsEvidence | LatencyEvidence | SrmEvidence | BusinessEvidence,
    Field(discriminator="gate"),
]


class GateResult(_Model):
    gate: Gate
    verdict: Verdict
    reason: str = Field(description="One human line.")
    evidence: Evidence


class Evaluation(_Model):
    """One look at a step: every listed gate's result and the step's verdict."""

    step: int
    step_name: str
    share: float
    seconds_on_step: float
    verdict: Verdict
    gates: list[GateResult]
    minimums_met: bool
    reason: str

    def gate(self, name: Gate) -> GateResult | None:
        return next((g for g in self.gates if g.gate == name), None)


class Action(_Model):
    """What the controller does after an evaluation: the step and share to move to."""

    kind: ActionKind
    to_step: int
    to_share: float
    reason: str

    @property
    def status(self) -> Status:
        """The rollout's status after the action."""
        if self.kind in ("rollback", "abort"):
            return "aborted"
        if self.kind == "pause":
            return "paused"
        return "completed" if self.kind == "complete" else "running"


# --- which variants each gate reads ------------------------------------------------------


def served_variants(holdout: float, share: float) -> list[Variant]:
    """The variants a model serves at this share (baseline and/or candidate): the ones
    the operational gates and the decision minimums apply to."""
    shares = expected_shares(holdout, share)
    return [v for v in (BASELINE, CANDIDATE) if shares[v] > 0]


def compared_variants(holdout: float, share: float) -> list[Variant]:
    """What the candidate's net profit is compared with: the baseline (while it has
    traffic) and the holdout (when there is one)."""
    shares = expected_shares(holdout, share)
    return [v for v in (BASELINE, HOLDOUT) if shares[v] > 0]


def _finite(value: Array) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _worst(verdicts: list[Verdict]) -> Verdict:
    if "fail" in verdicts:
        return "fail"
    return "hold" if "hold" in verdicts or not verdicts else "pass"


def _per_variant(lines: list[tuple[Verdict, str]], limit: str) -> tuple[Verdict, str]:
    """A gate's verdict from its variants' (the worst) and its reason: the first line with
    that verdict, or every variant's line and the limit when it passes."""
    verdict = _worst([v for v, _ in lines])
    if verdict == "pass":
        return verdict, "; ".join(line for _, line in lines) + f" {limit}"
    return verdict, next(line for v, line in lines if v == verdict)


# --- errors -----------------------------------------------------------------------------


def _variant_errors(
    variant: Variant, counters: VariantCounters, step: Step, rate: float
) -> VariantErrors:
    requests = counters.requests
    bad = counters.errors + counters.timeouts
    return VariantErrors(
        variant=variant,
        requests=requests,
        decisions=counters.decisions,
        errors_and_timeouts=bad,
        error_rate=bad / requests if requests else None,
        budget=rate * max(requests, step.min_decisions),
    )


def _errors_verdict(row: VariantErrors, step: Step, rate: float) -> tuple[Verdict, str]:
    """Fail once the errors exceed the budget; pass below the rate on the minimum."""
    bad, requests = row.errors_and_timeouts, row.requests
    if bad > row.budget:
        return "fail", (
            f"{row.variant} {bad:,} errors and time-outs over {requests:,} requests "
            f"> the step's budget of {row.budget:,.1f} ({rate:.2%} of "
            f"{max(requests, step.min_decisions):,})"
        )
    if row.decisions < step.min_decisions:
        return "hold", f"{row.variant} {row.decisions:,} decisions < {step.min_decisions:,}"
    if row.error_rate is not None and row.error_rate < rate:
        return "pass", f"{row.variant} error rate {row.error_rate:.2%} over {requests:,}"
    return "hold", f"{row.variant} error rate {row.error_rate or 0:.2%} = {rate:.2%} limit"


def errors_gate(plan: RolloutPlan, step: Step, share: float, m: StepMeasurements) -> GateResult:
    """(errors + time-outs) / requests < max_error_rate per served variant."""
    rate = plan.thresholds.max_error_rate
    rows = [
        _variant_errors(v, m.counters_of(v), step, rate)
        for v in served_variants(plan.holdout, share)
    ]
    verdict, reason = _per_variant([_errors_verdict(r, step, rate) for r in rows], f"< {rate:.2%}")
    evidence = ErrorsEvidence(max_error_rate=rate, min_decisions=step.min_decisions, variants=rows)
    return GateResult(gate="errors", verdict=verdict, reason=reason, evidence=evidence)


# --- latency ----------------------------------------------------------------------------


def _variant_latency(
    variant: Variant, counters: VariantCounters, step: Step, limit: float
) -> VariantLatency:
    p99 = counters.quantile_ms(LATENCY_QUANTILE)
    return VariantLatency(
        variant=variant,
        requests=counters.requests,
        decisions=counters.decisions,
        p99_ms=_finite(p99),
        p99_beyond_histogram=math.isinf(p99),
        slow=counters.slower_than(limit),
        slow_budget=SLOW_SHARE * max(counters.requests, step.min_decisions),
    )


def _p99_text(row: VariantLatency) -> str:
    if row.p99_beyond_histogram:
        return "beyond the histogram"
    return f"{row.p99_ms:,.4g} ms" if row.p99_ms is not None else "unknown"


def _latency_verdict(row: VariantLatency, step: Step, limit: float) -> tuple[Verdict, str]:
    """Fail once more than 1% of max(requests, minimum) were slower than the limit; pass
    when the p99's bucket bound (at least the true p99) is within it on the minimum."""
    if row.slow > row.slow_budget:
        return "fail", (
            f"{row.variant} p99 {_p99_text(row)} > {limit:,.4g} ms over {row.requests:,} "
            f"requests ({row.slow:,} slower)"
        )
    if row.decisions < step.min_decisions:
        return "hold", f"{row.variant} {row.decisions:,} decisions < {step.min_decisions:,}"
    if row.p99_ms is not None and row.p99_ms <= limit:
        return "pass", f"{row.variant} p99 {_p99_text(row)} over {row.requests:,} requests"
    return "hold", f"{row.variant} p99 {_p99_text(row)} not yet within {limit:,.4g} ms"


def latency_gate(plan: RolloutPlan, step: Step, share: float, m: StepMeasurements) -> GateResult:
    """p99 latency within max_p99_ms per served variant."""
    limit = plan.thresholds.max_p99_ms
    rows = [
        _variant_latency(v, m.counters_of(v), step, limit)
        for v in served_variants(plan.holdout, share)
    ]
    lines = [_latency_verdict(r, step, limit) for r in rows]
    verdict, reason = _per_variant(lines, f"<= {limit:,.4g} ms")
    evidence = LatencyEvidence(max_p99_ms=limit, min_decisions=step.min_decisions, variants=rows)
    return GateResult(gate="latency", verdict=verdict, reason=reason, evidence=evidence)


# --- sample-ratio mismatch --------------------------------------------------------------


def srm_gate(plan: RolloutPlan, step: Step, share: float, m: StepMeasurements) -> GateResult:
    """Requests per variant against the split's shares, judged once min_decisions requests
    arrived in total. The gate looks every few seconds, so it reads the always-valid
    p-value (stats.srm.sequential_srm_p_value): the chi-square test's p < 0.001, read at
    every look of a rollout, falsely aborts about one A/A rollout in twenty
    (benchmarks/bench_rollout_gates.py); its p-value stays in the evidence."""
    ratios = {v: r for v, r in expected_shares(plan.holdout, share).items() if r > 0}
    observed = {v: m.counters_of(v).requests for v in ratios}
    threshold = plan.thresholds.srm_p_value
    counts_by_name = {str(v): n for v, n in observed.items()}
    ratios_by_name = {str(v): r for v, r in ratios.items()}
    result = srm_check(counts_by_name, ratios_by_name, threshold)
    sequential = sequential_srm_p_value(counts_by_name, ratios_by_name)
    total = sum(observed.values())
    counts = ", ".join(f"{v} {n:,}" for v, n in observed.items())
    if total < step.min_decisions:
        verdict: Verdict = "hold"
        reason = f"{total:,} requests in total < {step.min_decisions:,} ({counts})"
    elif sequential < threshold:
        verdict = "fail"
        reason = (
            f"sample-ratio mismatch, always-valid p {sequential:.2g} < {threshold:g} ({counts})"
        )
    else:
        verdict, reason = "pass", f"split as planned, always-valid p {sequential:.2g} ({counts})"
    evidence = SrmEvidence(
        observed=observed,
        expected={v: result.expected[v] for v in ratios},
        ratios={v: result.ratios[v] for v in ratios},
        total=total,
        chi2=result.chi2,
        p_value=result.p_value,
        sequential_p_value=sequential,
        srm_p_value=threshold,
        min_decisions=step.min_decisions,
    )
    return GateResult(gate="srm", verdict=verdict, reason=reason, evidence=evidence)


# --- business: net profit per unit -----------------------------------------------------


def profit_moments(profit: ProfitMoments) -> Moments:
    """The stats core's :class:`Moments` of one variant's net profit per unit."""
    return Moments.from_sums(profit.n, profit.total, profit.total_squares)


def profit_difference(
    candidate: ProfitMoments, other: ProfitMoments, confidence: float, tuning: float
) -> Estimate:
    """Candidate minus other in mean net profit per unit: Welch's estimate and standard
    error, with the always-valid (confidence sequence) interval over both arms' units."""
    fixed = mean_difference(profit_moments(other), profit_moments(candidate), 1 - confidence)
    return sequential_estimate(fixed, candidate.n + other.n, tuning)


def _comparison(against: Variant, m: StepMeasurements, plan: RolloutPlan) -> ProfitComparison:
    t = plan.thresholds
    candidate, other = m.profit_of(CANDIDATE), m.profit_of(against)
    estimate = profit_difference(candidate, other, t.confidence, t.sequential_tuning)
    low, high = _finite(estimate.ci_low), _finite(estimate.ci_high)
    return ProfitComparison(
        against=against,
        n_candidate=candidate.n,
        n_against=other.n,
        estimate=_finite(estimate.estimate),
        standard_error=_finite(estimate.standard_error),
        ci_low=low,
        ci_high=high,
        p_value=_finite(estimate.p_value),
        shows_harm=high is not None and high < -t.harm_tolerance,
        shows_uplift=low is not None and low > 0,
    )


def _interval_text(c: ProfitComparison) -> str:
    if c.ci_low is None or c.ci_high is None or c.estimate is None:
        return f"vs {c.against}: no interval yet"
    return (
        f"vs {c.against} {c.estimate:+,.4g} per unit [{c.ci_low:+,.4g}, {c.ci_high:+,.4g}]"
        f" over {c.n_candidate:,} + {c.n_against:,} outcomes"
    )


def _business_verdict(
    criterion: Literal["no_harm", "uplift"],
    comparisons: list[ProfitComparison],
    variants: list[VariantProfit],
    step: Step,
    plan: RolloutPlan,
) -> tuple[Verdict, str]:
    """Hold below the minimum outcomes (the normal approximation needs them); then fail
    on harm in either comparison; no_harm passes, uplift passes when ci_low > 0 against
    the baseline."""
    level = f"{plan.thresholds.confidence:.0%}"
    short = next((v for v in variants if v.n < step.min_outcomes), None)
    if short is not None:
        return "hold", f"{short.variant} {short.n:,} outcomes < {step.min_outcomes:,}"
    harm = next((c for c in comparisons if c.shows_harm), None)
    if harm is not None:
        tolerance = plan.thresholds.harm_tolerance
        return "fail", f"net profit {_interval_text(harm)} ({level}) < -{tolerance:,.4g}: harm"
    summary = "; ".join(_interval_text(c) for c in comparisons) + f" ({level})"
    if criterion == "no_harm":
        return "pass", f"no harm: net profit {summary}"
    baseline = next(c for c in comparisons if c.against == BASELINE)
    if baseline.shows_uplift:
        return "pass", f"uplift: net profit {summary}"
    return "hold", f"no significant uplift yet: net profit {summary}"


def business_gate(
    plan: RolloutPlan,
    step: Step,
    share: float,
    m: StepMeasurements,
    criterion: Literal["no_harm", "uplift"],
) -> GateResult:
    """The candidate's net profit per unit against the baseline and the holdout."""
    against = compared_variants(plan.holdout, share)
    variants = [
        VariantProfit(variant=v, n=m.profit_of(v).n, mean_net_profit=_finite(m.profit_of(v).mean))
        for v in (CANDIDATE, *against)
    ]
    comparisons = [_comparison(v, m, plan) for v in against]
    verdict, reason = _business_verdict(criterion, comparisons, variants, step, plan)
    t = plan.thresholds
    evidence = BusinessEvidence(
        criterion=criterion,
        confidence=t.confidence,
        harm_tolerance=t.harm_tolerance,
        sequential_tuning=t.sequential_tuning,
        min_outcomes=step.min_outcomes,
        variants=variants,
        comparisons=comparisons,
    )
    return GateResult(gate="business", verdict=verdict, reason=reason, evidence=evidence)


# --- the step ---------------------------------------------------------------------------


GateFunction = Callable[[RolloutPlan, Step, float, StepMeasurements], GateResult]
OPERATIONAL: dict[Gate, GateFunction] = {
    "errors": errors_gate,
    "latency": latency_gate,
    "srm": srm_gate,
}


def _business_criterion(plan: RolloutPlan, index: int) -> Business:
    return plan.business(index) if "business" in plan.steps[index].gates else "none"


def unmet_minimums(
    plan: RolloutPlan, step_index: int, share: float, m: StepMeasurements
) -> list[str]:
    """Why the step has too little data to pass (empty: the minimums are met)."""
    step = plan.steps[step_index]
    unmet = []
    if m.seconds_on_step < step.min_seconds:
        unmet.append(f"{m.seconds_on_step:,.0f} s on the step < {step.min_seconds:,.0f} s")
    for variant in served_variants(plan.holdout, share):
        decisions = m.counters_of(variant).decisions
        if decisions < step.min_decisions:
            unmet.append(f"{variant} {decisions:,} decisions < {step.min_decisions:,}")
    if _business_criterion(plan, step_index) != "none":
        for variant in (CANDIDATE, *compared_variants(plan.holdout, share)):
            outcomes = m.profit_of(variant).n
            if outcomes < step.min_outcomes:
                unmet.append(f"{variant} {outcomes:,} outcomes < {step.min_outcomes:,}")
    return unmet


def _step_reason(verdict: Verdict, gates: list[GateResult], unmet: list[str]) -> str:
    if verdict == "fail":
        return "; ".join(f"{g.gate}: {g.reason}" for g in gates if g.verdict == "fail")
    if verdict == "pass":
        return "every gate passed: " + ", ".join(g.gate for g in gates)
    waiting = [f"{g.gate}: {g.reason}" for g in gates if g.verdict == "hold"]
    return "; ".join(waiting) if waiting else "; ".join(unmet)


def evaluate_step(
    plan: RolloutPlan, step_index: int, share: float, measurements: StepMeasurements
) -> Evaluation:
    """Run the step's listed gates (the others are skipped, not passed) on its
    measurements: fail if any gate fails, pass if all pass and the minimums are met,
    else hold."""
    step = plan.steps[step_index]
    gates = [
        OPERATIONAL[name](plan, step, share, measurements)
        for name in step.gates
        if name in OPERATIONAL
    ]
    criterion = _business_criterion(plan, step_index)
    if criterion != "none":
        gates.append(business_gate(plan, step, share, measurements, criterion))
    unmet = unmet_minimums(plan, step_index, share, measurements)
    verdicts = [g.verdict for g in gates]
    if "fail" in verdicts:
        verdict: Verdict = "fail"
    else:
        verdict = "pass" if not unmet and all(v == "pass" for v in verdicts) else "hold"
    return Evaluation(
        step=step_index,
        step_name=step.name,
        share=share,
        seconds_on_step=measurements.seconds_on_step,
        verdict=verdict,
        gates=gates,
        minimums_met=not unmet,
        reason=_step_reason(verdict, gates, unmet),
    )


def next_action(
    plan: RolloutPlan, step_index: int, evaluation: Evaluation, seconds_on_step: float
) -> Action:
    """fail -> rollback (share 0); pass -> advance, or complete on the last step; a hold
    past the step's max_wait_seconds -> the plan's on_max_wait (pause or abort)."""
    step = plan.steps[step_index]
    if evaluation.verdict == "fail":
        return Action(kind="rollback", to_step=step_index, to_share=0.0, reason=evaluation.reason)
    if evaluation.verdict == "pass":
        if step_index + 1 < len(plan.steps):
            following = plan.steps[step_index + 1]
            reason = f"{step.name} passed ({evaluation.reason}); on to {following.name}"
            return Action(
                kind="advance", to_step=step_index + 1, to_share=following.share, reason=reason
            )
        reason = f"last step {step.name} passed ({evaluation.reason})"
        return Action(kind="complete", to_step=step_index, to_share=step.share, reason=reason)
    if seconds_on_step > step.max_wait_seconds:
        reason = (
            f"{step.name} still holding after {seconds_on_step:,.0f} s > "
            f"{step.max_wait_seconds:,.0f} s maximum wait: {evaluation.reason}"
        )
        if plan.on_max_wait == "abort":
            return Action(kind="abort", to_step=step_index, to_share=0.0, reason=reason)
        return Action(kind="pause", to_step=step_index, to_share=evaluation.share, reason=reason)
    return Action(
        kind="hold", to_step=step_index, to_share=evaluation.share, reason=evaluation.reason
    )
