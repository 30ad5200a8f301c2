"""The rollout gates: each rule's pass / fail / hold boundary on hand-built measurements,
no data never passing, the actions, and the business gate checked against
liftwise.stats and by simulation against ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from liftwise.rollout.gates import (
    Action,
    BusinessEvidence,
    ErrorsEvidence,
    Evaluation,
    GateResult,
    LatencyEvidence,
    StepMeasurements,
    evaluate_step,
    next_action,
)
from liftwise.rollout.measure import ProfitMoments, VariantCounters, latency_bucket
from liftwise.rollout.plan import RolloutPlan, parse_plan
from liftwise.rollout.split import Variant
from liftwise.stats.moments import Moments
from liftwise.stats.sequential import sequential_estimate
from liftwise.stats.srm import sequential_srm_p_value, srm_check
from liftwise.stats.welch import mean_difference

FAST_MS, SLOW_MS = 3.0, 75.0


def make_plan(step: dict[str, Any] | None = None, **top: Any) -> RolloutPlan:
    """A one-step plan (a 50% step unless told) plus a full step after it."""
    first = {"name": "half", "share": 0.5, "min_seconds": 0, "min_decisions": 200}
    first |= {"min_outcomes": 100, "max_wait_seconds": 600} | (step or {})
    data: dict[str, Any] = {
        "name": "gates-test",
        "candidate": {"model_dir": "candidate"},
        "baseline": {"champion": "m"},
        "holdout": 0.05,
        "steps": [first, {"name": "full", "share": 1.0}],
        "thresholds": {"max_error_rate": 0.01},
    }
    return parse_plan(data | top)


def counters(
    decisions: int, *, errors: int = 0, timeouts: int = 0, slow: int = 0, slow_ms: float = SLOW_MS
) -> VariantCounters:
    """``decisions`` answered in FAST_MS (``slow`` of them in ``slow_ms``), plus errors."""
    out = VariantCounters(decisions=decisions, errors=errors, timeouts=timeouts)
    out.latency[latency_bucket(FAST_MS)] += decisions - slow + errors
    out.latency[latency_bucket(slow_ms)] += slow
    return out


def profit(values: np.ndarray) -> ProfitMoments:
    values = np.asarray(values, dtype=float)
    return ProfitMoments(len(values), float(values.sum()), float((values * values).sum()))


def split_counts(total: int, share: float = 0.5, holdout: float = 0.05) -> dict[Variant, int]:
    """Requests per variant exactly as the split promises."""
    return {
        "holdout": round(total * holdout),
        "baseline": round(total * (1 - holdout) * (1 - share)),
        "candidate": round(total * (1 - holdout) * share),
    }


def healthy(
    total: int = 2000, share: float = 0.5, **candidate: int
) -> dict[Variant, VariantCounters]:
    """Counters of a clean step, the candidate's replaced by ``counters(**candidate)``."""
    counts = split_counts(total, share)
    out = {v: counters(n) for v, n in counts.items()}
    if candidate:
        out["candidate"] = counters(counts["candidate"], **candidate)
    return out


def only(gate: str) -> dict[str, Any]:
    return {"gates": [gate]}


def gate_of(plan: RolloutPlan, measurements: StepMeasurements, step: int = 0) -> GateResult:
    evaluation = evaluate_step(plan, step, plan.steps[step].share, measurements)
    assert len(evaluation.gates) == 1
    return evaluation.gates[0]


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decisions", "errors", "verdict"),
    [
        (99, 2, "hold"),  # 2 errors <= 1% of max(101, 200) = 2: budget not spent yet
        (97, 3, "fail"),  # 3 > 2.0: spent before the minimum
        (150, 0, "hold"),  # clean but fewer than 200 decisions
        (991, 9, "pass"),  # 0.9% over 1,000 requests
        (990, 10, "hold"),  # exactly 1%: not below the limit, not above it
        (989, 11, "fail"),
    ],
)
def test_errors_gate_boundaries(decisions: int, errors: int, verdict: str) -> None:
    plan = make_plan(only("errors"))
    result = gate_of(plan, StepMeasurements(60, {"baseline": counters(1000),
                                                 "candidate": counters(decisions, errors=errors)}))  # fmt: skip
    assert result.verdict == verdict, result.reason
    if verdict == "fail":
        assert result.reason.startswith(f"candidate {errors} errors and time-outs over")


def test_timeouts_count_as_errors() -> None:
    plan = make_plan(only("errors"))
    measured = {"baseline": counters(1000), "candidate": counters(1000, timeouts=11)}
    assert gate_of(plan, StepMeasurements(60, measured)).verdict == "fail"


def test_broken_candidate_fails_after_the_first_few_requests() -> None:
    """100% errors: at the default 0.1% rate the first error already spends the budget
    of 0.1% x 200; the step fails at once and the action rolls back to share 0."""
    plan = make_plan({"share": 0.01}, thresholds={})
    for requests in (1, 2, 5):
        measured = {"baseline": counters(3 * requests), "candidate": counters(0, errors=requests)}
        evaluation = evaluate_step(plan, 0, 0.01, StepMeasurements(1.0, measured))
        assert evaluation.verdict == "fail"
        assert evaluation.gate("errors") is not None
        action = next_action(plan, 0, evaluation, 1.0)
        assert (action.kind, action.to_share, action.status) == ("rollback", 0.0, "aborted")


# --- latency ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decisions", "slow", "verdict"),
    [
        (100, 2, "hold"),  # 2 <= 1% of max(100, 200): few requests, budget not spent
        (100, 3, "fail"),
        (150, 0, "hold"),  # fast but below the minimum
        (1000, 10, "pass"),  # 1% slow: the p99 is still in the fast bucket
        (1000, 11, "fail"),
    ],
)
def test_latency_gate_boundaries(decisions: int, slow: int, verdict: str) -> None:
    plan = make_plan(only("latency"))
    measured = {"baseline": counters(1000), "candidate": counters(decisions, slow=slow)}
    result = gate_of(plan, StepMeasurements(60, measured))
    assert result.verdict == verdict, result.reason
    if verdict == "fail":
        assert result.reason.startswith("candidate p99 ")
        assert f"> 50 ms over {decisions:,} requests ({slow} slower)" in result.reason


def test_latency_reason_names_the_p99_and_the_sample() -> None:
    plan = make_plan(only("latency"))
    measured = {"baseline": counters(1204), "candidate": counters(1204, slow=100, slow_ms=62)}
    result = gate_of(plan, StepMeasurements(60, measured))
    assert result.reason == "candidate p99 75 ms > 50 ms over 1,204 requests (100 slower)"
    assert isinstance(result.evidence, LatencyEvidence)
    row = result.evidence.variants[1]
    assert (row.variant, row.p99_ms, row.slow, row.requests) == ("candidate", 75.0, 100, 1204)


def test_latency_at_the_limit_passes_and_beyond_the_histogram_fails() -> None:
    plan = make_plan(only("latency"))
    at_limit = {"baseline": counters(1000), "candidate": counters(1000, slow=1000, slow_ms=50)}
    assert gate_of(plan, StepMeasurements(60, at_limit)).verdict == "pass"
    beyond = {"baseline": counters(1000), "candidate": counters(1000, slow=1000, slow_ms=9999)}
    result = gate_of(plan, StepMeasurements(60, beyond))
    assert result.verdict == "fail"
    assert "beyond the histogram" in result.reason
    restored = GateResult.model_validate_json(result.model_dump_json())
    assert isinstance(restored.evidence, LatencyEvidence)
    assert restored.evidence.variants[1].p99_beyond_histogram


# --- sample-ratio mismatch ----------------------------------------------------------------


def test_srm_gate_passes_the_planned_split_and_fails_a_lost_variant() -> None:
    plan = make_plan(only("srm"))
    assert gate_of(plan, StepMeasurements(60, healthy(4000))).verdict == "pass"
    lopsided = healthy(4000)
    lopsided["candidate"] = counters(1500)  # 1,900 planned
    result = gate_of(plan, StepMeasurements(60, lopsided))
    assert result.verdict == "fail"
    assert result.reason.startswith("sample-ratio mismatch, always-valid p ")


def test_srm_gate_waits_for_the_minimum_and_leaves_out_empty_variants() -> None:
    plan = make_plan(only("srm"))
    few = {"holdout": counters(0), "baseline": counters(150), "candidate": counters(0)}
    assert gate_of(plan, StepMeasurements(60, few)).verdict == "hold"
    # no holdout and share 1: only the candidate is expected, nothing can mismatch
    full = make_plan(holdout=0.0)
    evaluation = evaluate_step(full, 1, 1.0, StepMeasurements(60, {"candidate": counters(500)}))
    srm = evaluation.gate("srm")
    assert srm is not None and srm.verdict == "pass"
    assert srm.evidence.model_dump()["ratios"] == {"candidate": 1.0}


def test_sequential_srm_p_value_is_the_dirichlet_multinomial_bayes_factor() -> None:
    """1 / BF with BF = Dirichlet(100 r)-multinomial over multinomial(r), from scipy."""
    x, r = np.array([210, 1850, 1540]), np.array([0.05, 0.475, 0.475])
    log_bf = stats.dirichlet_multinomial.logpmf(x, 100 * r, x.sum()) - stats.multinomial.logpmf(
        x, x.sum(), r
    )
    got = sequential_srm_p_value(
        dict(zip("hbc", x.tolist(), strict=True)), dict(zip("hbc", r, strict=True))
    )
    assert got == pytest.approx(np.exp(-log_bf), rel=1e-9)
    assert sequential_srm_p_value({"b": 50, "c": 50}, {"b": 0.5, "c": 0.5}) == 1.0


def test_sequential_srm_keeps_its_level_under_peeking() -> None:
    """300 planned splits looked at 60 times each: the always-valid p-value falls below
    0.01 in at most 1% (+ Monte-Carlo slack) of them; the chi-square test, peeked at,
    does several times as often."""
    rng = np.random.default_rng(21)
    ratios = {"holdout": 0.05, "baseline": 0.475, "candidate": 0.475}
    runs, alarms, naive = 300, 0, 0
    for _ in range(runs):
        draws = rng.multinomial(500, list(ratios.values()), size=60).cumsum(axis=0)
        looks = [dict(zip(ratios, row.tolist(), strict=True)) for row in draws]
        alarms += any(sequential_srm_p_value(c, ratios) < 0.01 for c in looks)
        naive += any(srm_check(c, ratios).p_value < 0.01 for c in looks)
    assert alarms / runs <= 0.01 + 3 * np.sqrt(0.01 * 0.99 / runs)
    assert naive / runs > 0.03


# --- business -----------------------------------------------------------------------------


def profits(
    rng: np.random.Generator, n: int, shift: dict[Variant, float] | None = None
) -> dict[Variant, ProfitMoments]:
    """Net profit per unit like a world: conversion (10%) x margin 50 - cost 1 on half the
    units; ``shift`` adds a constant per variant."""
    out = {}
    for variant, share in split_counts(n).items():
        values = (rng.random(share) < 0.1) * 50.0 - (rng.random(share) < 0.5)
        out[variant] = profit(values + (shift or {}).get(variant, 0.0))
    return out


def business(plan: RolloutPlan, profit_by_variant: dict[Variant, ProfitMoments]) -> GateResult:
    return gate_of(plan, StepMeasurements(60, healthy(), profit_by_variant))


def test_business_interval_is_the_stats_confidence_sequence() -> None:
    rng = np.random.default_rng(3)
    values = {v: (rng.random(n) < 0.1) * 50.0 - 1 for v, n in split_counts(4000).items()}
    plan = make_plan(only("business"), thresholds={"confidence": 0.9, "sequential_tuning": 800})
    result = business(plan, {v: profit(x) for v, x in values.items()})
    assert isinstance(result.evidence, BusinessEvidence)
    for comparison in result.evidence.comparisons:
        other, candidate = values[comparison.against], values["candidate"]
        fixed = mean_difference(Moments.from_values(other), Moments.from_values(candidate), 0.1)
        expected = sequential_estimate(fixed, len(other) + len(candidate), 800)
        assert comparison.estimate == pytest.approx(candidate.mean() - other.mean())
        assert comparison.ci_low == pytest.approx(expected.ci_low, rel=1e-9)
        assert comparison.ci_high == pytest.approx(expected.ci_high, rel=1e-9)
        assert comparison.p_value == pytest.approx(expected.p_value, rel=1e-9)
    means = {v.variant: v.mean_net_profit for v in result.evidence.variants}
    assert means == pytest.approx({v: x.mean() for v, x in values.items()})
    assert [v.n for v in result.evidence.variants] == [1900, 1900, 200]
    assert result.evidence.confidence == 0.9


def test_business_fails_on_harm_beyond_the_tolerance_only() -> None:
    rng = np.random.default_rng(4)
    hurt = profits(rng, 8000, {"candidate": -2.0})
    plan = make_plan({"gates": ["business"], "business": "no_harm"})
    result = business(plan, hurt)
    assert result.verdict == "fail"
    assert result.reason.startswith("net profit vs baseline -")
    assert isinstance(result.evidence, BusinessEvidence)
    high = result.evidence.comparisons[0].ci_high
    assert high is not None and high < 0
    within = make_plan(
        {"gates": ["business"], "business": "no_harm"}, thresholds={"harm_tolerance": -high + 0.01}
    )
    against_holdout = business(within, hurt).evidence
    assert isinstance(against_holdout, BusinessEvidence)
    # the holdout's interval is wider: tolerating the baseline's bound tolerates both
    assert business(within, hurt).verdict == "pass"
    assert not any(c.shows_harm for c in against_holdout.comparisons)


def test_business_uplift_passes_only_on_a_lower_bound_above_zero() -> None:
    rng = np.random.default_rng(5)
    plan = make_plan({"gates": ["business"], "business": "uplift"})
    assert business(plan, profits(rng, 8000, {"candidate": 3.0})).verdict == "pass"
    flat = business(plan, profits(rng, 8000))
    assert flat.verdict == "hold"
    assert flat.reason.startswith("no significant uplift yet")
    no_harm = make_plan({"gates": ["business"], "business": "no_harm"})
    assert business(no_harm, profits(rng, 8000)).verdict == "pass"


def test_business_holds_below_the_minimum_outcomes() -> None:
    rng = np.random.default_rng(6)
    plan = make_plan(only("business"))
    few = profits(rng, 8000)
    few["holdout"] = profit(np.ones(99))
    result = business(plan, few)
    assert (result.verdict, result.reason) == ("hold", "holdout 99 outcomes < 100")


# --- the step: no data, skipped gates, minimums ------------------------------------------


def test_no_data_is_never_a_pass() -> None:
    plan = make_plan()
    evaluation = evaluate_step(plan, 0, 0.5, StepMeasurements(0.0))
    assert evaluation.verdict == "hold"
    assert not evaluation.minimums_met
    assert [g.verdict for g in evaluation.gates] == ["hold"] * 4
    restored = Evaluation.model_validate_json(evaluation.model_dump_json())
    assert restored == evaluation
    business_evidence = evaluation.gates[3].evidence
    assert isinstance(business_evidence, BusinessEvidence)
    assert business_evidence.comparisons[0].ci_high is None


def test_gates_pass_but_the_step_holds_until_its_minimum_time() -> None:
    rng = np.random.default_rng(7)
    plan = make_plan({"min_seconds": 120, "business": "no_harm"})
    short = evaluate_step(plan, 0, 0.5, StepMeasurements(119.0, healthy(), profits(rng, 8000)))
    assert [g.verdict for g in short.gates] == ["pass"] * 4
    assert (short.verdict, short.minimums_met) == ("hold", False)
    assert short.reason == "119 s on the step < 120 s"
    done = evaluate_step(plan, 0, 0.5, StepMeasurements(120.0, healthy(), profits(rng, 8000)))
    assert done.verdict == "pass" and done.minimums_met


def test_unlisted_gates_are_skipped_not_passed() -> None:
    plan = make_plan({"gates": ["errors", "latency"]})
    evaluation = evaluate_step(plan, 0, 0.5, StepMeasurements(60, healthy()))
    assert [g.gate for g in evaluation.gates] == ["errors", "latency"]
    assert evaluation.verdict == "pass"  # outcomes are not a minimum without the business gate
    full = evaluate_step(plan, 1, 1.0, StepMeasurements(60, {"candidate": counters(900)}))
    assert [g.gate for g in full.gates] == ["errors", "latency", "srm"]  # business: none
    errors = full.gates[0].evidence
    assert isinstance(errors, ErrorsEvidence)
    assert [row.variant for row in errors.variants] == ["candidate"]


def test_a_failing_gate_fails_the_step_even_without_the_minimums() -> None:
    plan = make_plan({"min_seconds": 600})
    measured = StepMeasurements(5.0, healthy(total=300, errors=5))
    evaluation = evaluate_step(plan, 0, 0.5, measured)
    assert evaluation.verdict == "fail"
    assert evaluation.reason.startswith("errors: candidate 5 errors and time-outs over 147")


# --- actions ------------------------------------------------------------------------------


def _evaluation(plan: RolloutPlan, step: int, verdict: str) -> Evaluation:
    return Evaluation(
        step=step,
        step_name=plan.steps[step].name,
        share=plan.steps[step].share,
        seconds_on_step=10.0,
        verdict=verdict,  # type: ignore[arg-type]
        gates=[],
        minimums_met=verdict == "pass",
        reason="because",
    )


@pytest.mark.parametrize(
    ("step", "verdict", "seconds", "on_max_wait", "expected"),
    [
        (0, "fail", 10, "pause", ("rollback", 0, 0.0, "aborted")),
        (0, "pass", 10, "pause", ("advance", 1, 1.0, "running")),
        (1, "pass", 10, "pause", ("complete", 1, 1.0, "completed")),
        (0, "hold", 600, "abort", ("hold", 0, 0.5, "running")),  # at the maximum: still waits
        (0, "hold", 601, "abort", ("abort", 0, 0.0, "aborted")),
        (0, "hold", 601, "pause", ("pause", 0, 0.5, "paused")),
    ],
)
def test_next_action(
    step: int, verdict: str, seconds: float, on_max_wait: str, expected: tuple[Any, ...]
) -> None:
    plan = make_plan(on_max_wait=on_max_wait)
    action = next_action(plan, step, _evaluation(plan, step, verdict), seconds)
    assert (action.kind, action.to_step, action.to_share, action.status) == expected
    assert Action.model_validate_json(action.model_dump_json()) == action
    assert "because" in action.reason


# --- simulation against ground truth ------------------------------------------------------


def simulate_rollout(
    plan: RolloutPlan, rng: np.random.Generator, candidate_shift: float, looks: np.ndarray
) -> str:
    """One rollout step watched at every look (units so far): draws net profits per unit
    (conversion x margin - cost, the candidate shifted by ``candidate_shift``) and returns
    the business gate's first fail, else its last verdict."""
    n = int(looks[-1])
    codes = rng.choice(3, n, p=[0.05, 0.475, 0.475])
    net = (rng.random(n) < 0.1) * 50.0 - (rng.random(n) < 0.5) + candidate_shift * (codes == 2)
    verdict = "hold"
    for look in looks:
        by_variant = {
            v: profit(net[:look][codes[:look] == c])
            for c, v in enumerate(("holdout", "baseline", "candidate"))
        }
        measured = StepMeasurements(60.0, healthy(), by_variant)
        verdict = evaluate_step(plan, 0, 0.5, measured).verdict
        if verdict == "fail":
            break
    return verdict


def test_aa_rollouts_fail_no_more_often_than_alpha() -> None:
    """300 A/A rollouts watched 12 times each: the always-valid interval keeps the
    false-fail rate within alpha = 0.05 plus three Monte-Carlo standard errors."""
    rng = np.random.default_rng(12)
    plan = make_plan({"gates": ["business"], "business": "uplift"})
    looks = np.geomspace(300, 20_000, 12).astype(int)
    runs = 300
    fails = sum(simulate_rollout(plan, rng, 0.0, looks) == "fail" for _ in range(runs))
    alpha = plan.thresholds.alpha
    assert fails / runs <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / runs)


def test_a_big_true_loss_fails() -> None:
    """A candidate losing 1.5 per unit (a third of the baseline's 4.5) fails in almost
    every run, and a big true gain never does."""
    rng = np.random.default_rng(13)
    plan = make_plan({"gates": ["business"], "business": "uplift"})
    looks = np.geomspace(300, 20_000, 12).astype(int)
    losses = [simulate_rollout(plan, rng, -1.5, looks) for _ in range(40)]
    assert losses.count("fail") >= 38
    gains = [simulate_rollout(plan, rng, +1.5, looks) for _ in range(20)]
    assert "fail" not in gains and gains.count("pass") >= 18


def test_business_judges_nothing_before_the_minimum_outcomes() -> None:
    """31 candidate units without a conversion: near-zero variance makes the asymptotic
    interval show harm falsely; below min_outcomes the gate holds instead of failing."""
    rng = np.random.default_rng(8)
    measured = profits(rng, 8000)
    measured["candidate"] = profit(-(rng.random(31) < 0.5).astype(float))
    plan = make_plan({"gates": ["business"], "business": "no_harm"})
    result = business(plan, measured)
    assert isinstance(result.evidence, BusinessEvidence)
    assert result.evidence.comparisons[0].shows_harm
    assert (result.verdict, result.reason) == ("hold", "candidate 31 outcomes < 100")
    lenient = make_plan({"gates": ["business"], "business": "no_harm", "min_outcomes": 30})
    assert business(lenient, measured).verdict == "fail"
