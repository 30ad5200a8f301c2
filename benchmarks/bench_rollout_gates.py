"""Benchmark: the rollout gates' statistics against ground truth: false aborts of A/A
rollouts, and the time to abort a candidate that loses 5% of net profit per unit, next to
a fixed-horizon test on the same data in the same run.

A seeded world of units, each with common random numbers: two hash-like uniforms place it
(holdout 5%, then the candidate below the step's share, as liftwise.rollout.split), and
two more decide whether its variant treats it and whether it converts. Net profit per
unit = conversion (Bernoulli) x margin - treatment cost; the holdout is never treated, the
baseline and the candidate treat half their units, the candidate's treatment lifting
conversion by ``--candidate-lift`` of the baseline's. Outcomes arrive with the decision
(no delay); no errors, every decision in 3 ms. At ``--rate`` requests/s the controller
evaluates the gates every ``evaluate_seconds`` (k = rate x 5 s units between looks) with
``liftwise.rollout.gates.evaluate_step`` and follows ``next_action`` through the plan
canary 1% -> ramp 10% -> half 50% (business: uplift, at most 30 min) -> full.

(a) False aborts over ``--runs`` A/A rollouts (candidate = baseline): rolled back by a gate,
    with a Clopper-Pearson interval, against the plan's alpha; the same runs with the
    naive fixed-horizon Welch interval in the business gate, looked at on every
    evaluation (peeking), on the same units.
(b) Time to abort a candidate losing 5% of net profit per unit: units and seconds until the
    rollback (median, 90th percentile; runs that never abort count as never), through the
    plan from the canary and on the half step alone; the peer is a fixed-horizon Welch test
    at the half step sized for 80% power (liftwise.stats.power.sample_size at the true
    standard deviation), decided once at its horizon on the same units.

    .venv/bin/python benchmarks/bench_rollout_gates.py [--runs 200] [--rate 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats

from liftwise.rollout.gates import (
    Evaluation,
    StepMeasurements,
    compared_variants,
    evaluate_step,
    next_action,
    profit_moments,
)
from liftwise.rollout.measure import ProfitMoments, VariantCounters, latency_bucket
from liftwise.rollout.plan import RolloutPlan, parse_plan
from liftwise.rollout.split import BASELINE, CANDIDATE, VARIANTS
from liftwise.stats.power import sample_size
from liftwise.stats.welch import mean_difference

HOLDOUT_SHARE = 0.05
HALF_STEP = 2
LATENCY_MS = 3.0
Judge = Callable[[RolloutPlan, int, float, StepMeasurements], Evaluation]


def benchmark_plan(tuning: float = 5000.0, min_outcomes: int = 300) -> RolloutPlan:
    """canary 1% -> ramp 10% -> half 50% -> full. The outcomes minimum is above the
    plan's default of 100: on 100-300 outcomes of a 10% conversion the canary's Welch
    interval is too narrow when few converted (the CLT is not there yet)."""
    minimums = {"min_seconds": 60, "min_decisions": 500, "min_outcomes": min_outcomes}
    return parse_plan(
        {
            "name": "bench",
            "candidate": {"model_dir": "candidate"},
            "baseline": {"champion": "m"},
            "holdout": HOLDOUT_SHARE,
            "steps": [
                {"name": "canary", "share": 0.01, "max_wait_seconds": 3600} | minimums,
                {"name": "ramp", "share": 0.10, "max_wait_seconds": 3600} | minimums,
                {"name": "half", "share": 0.50, "max_wait_seconds": 1800} | minimums,
                {"name": "full", "share": 1.0, "max_wait_seconds": 3600} | minimums,
            ],
            "thresholds": {"sequential_tuning": tuning},
            "on_max_wait": "pause",
        }
    )


@dataclass(frozen=True)
class World:
    """Conversion x margin - cost; the variant sets the treatment and its lift."""

    margin: float = 40.0
    conversion: float = 0.08  # untreated
    lift: float = 0.04  # the baseline's treatment effect on conversion
    candidate_lift: float = 0.04
    treated_share: float = 0.5
    cost: float = 1.0

    def lifts(self) -> np.ndarray:  # per variant code: holdout, baseline, candidate
        return np.array([0.0, self.lift, self.candidate_lift])

    def mean(self, code: int) -> float:
        treated = 0.0 if code == 0 else self.treated_share
        p = self.conversion + treated * self.lifts()[code]
        return self.margin * p - self.cost * treated

    def sd(self, code: int) -> float:
        treated = 0.0 if code == 0 else self.treated_share
        p = self.conversion + treated * self.lifts()[code]
        second = self.margin**2 * p - 2 * self.margin * self.cost * treated * (
            self.conversion + self.lifts()[code]
        )
        return float(np.sqrt(second + self.cost**2 * treated - self.mean(code) ** 2))

    def losing(self, loss: float) -> World:
        """The same world with a candidate whose mean net profit is (1 - loss) x the
        baseline's (a weaker treatment lift)."""
        target = (1 - loss) * self.mean(1)
        lift = ((target + self.cost * self.treated_share) / self.margin - self.conversion) / (
            self.treated_share
        )
        return World(self.margin, self.conversion, self.lift, lift, self.treated_share, self.cost)


def unit_stream(seed: int, run: int, chunk: int) -> Iterator[np.ndarray]:
    """Chunks of units as 4 uniforms each (holdout, candidate, treated, converted); the
    same (seed, run) gives the same units to every method."""
    rng = np.random.default_rng([seed, run])
    while True:
        yield rng.random((4, chunk))


def variant_codes(uniforms: np.ndarray, share: float) -> np.ndarray:
    codes = np.where(uniforms[1] < share, 2, 1)
    return np.where(uniforms[0] < HOLDOUT_SHARE, 0, codes)


def net_profit(world: World, uniforms: np.ndarray, codes: np.ndarray) -> np.ndarray:
    treated = (codes > 0) & (uniforms[2] < world.treated_share)
    converted = uniforms[3] < world.conversion + treated * world.lifts()[codes]
    return converted * world.margin - treated * world.cost


class StepTally:
    """One step's cumulative per-variant counts and net profit sums."""

    def __init__(self) -> None:
        self.n = np.zeros(3, dtype=np.int64)
        self.total = np.zeros(3)
        self.squares = np.zeros(3)
        self.units = 0

    def add(self, codes: np.ndarray, net: np.ndarray) -> None:
        self.n += np.bincount(codes, minlength=3)
        self.total += np.bincount(codes, weights=net, minlength=3)
        self.squares += np.bincount(codes, weights=net * net, minlength=3)
        self.units += len(codes)

    def measurements(self, seconds: float) -> StepMeasurements:
        counters, profit = {}, {}
        for code, variant in enumerate(VARIANTS):
            n = int(self.n[code])
            counters[variant] = VariantCounters(decisions=n)
            counters[variant].latency[latency_bucket(LATENCY_MS)] = n
            profit[variant] = ProfitMoments(n, float(self.total[code]), float(self.squares[code]))
        return StepMeasurements(seconds, counters, profit)


@dataclass(frozen=True)
class RolloutRun:
    outcome: str  # aborted (a gate failed), paused (max wait), completed
    step: int
    units: int
    failed_gates: tuple[str, ...]


def run_rollout(
    plan: RolloutPlan, world: World, judge: Judge, stream: Iterator[np.ndarray], rate: float,
    first_step: int = 0,
) -> RolloutRun:  # fmt: skip
    """Follow next_action through the plan, evaluating after every chunk of units."""
    units = 0
    for index in range(first_step, len(plan.steps)):
        share, tally = plan.steps[index].share, StepTally()
        while True:
            uniforms = next(stream)
            codes = variant_codes(uniforms, share)
            tally.add(codes, net_profit(world, uniforms, codes))
            units += len(codes)
            seconds = tally.units / rate
            evaluation = judge(plan, index, share, tally.measurements(seconds))
            action = next_action(plan, index, evaluation, seconds)
            if action.kind in ("rollback", "abort", "pause", "complete"):
                failed = tuple(g.gate for g in evaluation.gates if g.verdict == "fail")
                outcome = {"rollback": "aborted", "complete": "completed"}.get(action.kind)
                return RolloutRun(outcome or "paused", index, units, failed)
            if action.kind == "advance":
                break
    raise AssertionError("a plan ends in complete")


def sequential_judge(
    plan: RolloutPlan, index: int, share: float, m: StepMeasurements
) -> Evaluation:
    return evaluate_step(plan, index, share, m)


def naive_judge(plan: RolloutPlan, index: int, share: float, m: StepMeasurements) -> Evaluation:
    """The gates with the business gate's interval replaced by the fixed-horizon Welch
    interval at the same alpha, read at every look (what a dashboard without a
    sequential test invites)."""
    evaluation = evaluate_step(plan, index, share, m)
    others = [g.verdict for g in evaluation.gates if g.gate != "business"]
    if len(others) == len(evaluation.gates):
        return evaluation
    t, step = plan.thresholds, plan.steps[index]
    candidate = m.profit_of(CANDIDATE)
    fixed = {
        v: mean_difference(profit_moments(m.profit_of(v)), profit_moments(candidate), t.alpha)
        for v in compared_variants(plan.holdout, share)
    }
    if min(m.profit_of(v).n for v in (CANDIDATE, *fixed)) < step.min_outcomes:
        business = "hold"  # the same minimum as the gate's: only the interval differs
    elif any(float(e.ci_high) < -t.harm_tolerance for e in fixed.values()):
        business = "fail"
    elif plan.business(index) == "uplift" and not float(fixed[BASELINE].ci_low) > 0:
        business = "hold"
    else:
        business = "pass"
    verdicts = [*others, business]
    if "fail" in verdicts:
        verdict = "fail"
    else:
        verdict = "pass" if evaluation.minimums_met and set(verdicts) == {"pass"} else "hold"
    gates = [
        g.model_copy(update={"verdict": business}) if g.gate == "business" else g
        for g in evaluation.gates
    ]
    return evaluation.model_copy(update={"verdict": verdict, "gates": gates})


def clopper_pearson(hits: int, runs: int) -> tuple[float, float]:
    interval = stats.binomtest(hits, runs).proportion_ci(0.95, method="exact")
    return interval.low, interval.high


def false_aborts(args: argparse.Namespace, chunk: int) -> None:
    plan, world = benchmark_plan(min_outcomes=args.min_outcomes), World()
    print(f"(a) A/A rollouts: {args.runs} runs through canary 1% -> ramp 10% -> half 50% "
          f"(uplift, max wait 30 min, then pause) -> full; net profit per unit "
          f"{world.mean(1):.2f} (sd {world.sd(1):.1f}), holdout {world.mean(0):.2f}; "
          f"gates every {chunk:,} units; min outcomes {args.min_outcomes} per variant; "
          f"alpha {plan.thresholds.alpha:g}")  # fmt: skip
    header = f"{'business interval':<34} {'aborted':>8} {'rate':>6}  {'95% CI':>15}  "
    print(header + f"{'by gate':<22} {'completed':>9} {'paused':>7}  {'seconds':>7}")
    print("-" * (len(header) + 50))
    for name, judge in (("always-valid (liftwise gates)", sequential_judge),
                        ("fixed-horizon Welch, peeking", naive_judge)):  # fmt: skip
        started = time.perf_counter()
        runs = [
            run_rollout(plan, world, judge, unit_stream(args.seed, run, chunk), args.rate)
            for run in range(args.runs)
        ]
        outcomes = Counter(r.outcome for r in runs)
        aborted = outcomes["aborted"]
        low, high = clopper_pearson(aborted, len(runs))
        gates = Counter(g for r in runs if r.outcome == "aborted" for g in r.failed_gates)
        by_gate = ", ".join(f"{g} {n}" for g, n in sorted(gates.items())) or "-"
        print(f"{name:<34} {aborted:>8} {aborted / len(runs):>6.1%}  "
              f"[{low:>5.1%}, {high:>5.1%}]  {by_gate:<22} {outcomes['completed']:>9} "
              f"{outcomes['paused']:>7}  {time.perf_counter() - started:>7.1f}")  # fmt: skip
    print(f"goal: false-abort rate within alpha = {plan.thresholds.alpha:.0%}")


def fixed_horizon_units(
    world: World, stream: Iterator[np.ndarray], per_arm: int, alpha: float
) -> int | None:
    """Units until both arms of the half step hold ``per_arm`` outcomes, then one Welch
    test: the units at the abort, or None when it does not show the loss."""
    tally = StepTally()
    while min(tally.n[1], tally.n[2]) < per_arm:
        uniforms = next(stream)
        codes = variant_codes(uniforms, benchmark_plan().steps[HALF_STEP].share)
        tally.add(codes, net_profit(world, uniforms, codes))
    m = tally.measurements(0.0)
    estimate = mean_difference(
        profit_moments(m.profit_of(BASELINE)), profit_moments(m.profit_of(CANDIDATE)), alpha
    )
    return tally.units if float(estimate.ci_high) < 0 else None


def quantiles(units: list[float], rate: float) -> str:
    median, p90 = np.quantile(np.asarray(units, dtype=float), [0.5, 0.9], method="lower")

    def show(value: float) -> str:
        return "never" if not np.isfinite(value) else f"{value:>9,.0f} ({value / rate:>5,.0f} s)"

    return f"{show(median):>19} {show(p90):>19}"


def time_to_abort(args: argparse.Namespace, chunk: int) -> None:
    world = World().losing(0.05)
    alpha = benchmark_plan().thresholds.alpha
    effect = world.mean(2) - world.mean(1)
    per_arm = int(np.ceil(sample_size(effect, world.sd(1), alpha=alpha, target_power=0.8)))
    half_share = benchmark_plan().steps[HALF_STEP].share
    fixed_units = per_arm / ((1 - HOLDOUT_SHARE) * half_share)
    plan = benchmark_plan(min_outcomes=args.min_outcomes)
    tuned = benchmark_plan(tuning=2 * per_arm, min_outcomes=args.min_outcomes)
    print()
    print(f"(b) candidate losing 5% of net profit per unit ({world.mean(2):.3f} vs "
          f"{world.mean(1):.3f}, true effect {effect:+.3f}, sd {world.sd(1):.1f}); "
          f"{args.runs} runs at {args.rate:,.0f} requests/s; fixed horizon for 80% power: "
          f"{per_arm:,} units per arm (~{fixed_units:,.0f} units at the half step)")  # fmt: skip
    header = f"{'method':<52} {'aborted':>7} {'median units (s)':>19} {'p90 units (s)':>19}"
    print(header + f" {'median / fixed':>14}")
    print("-" * (len(header) + 15))
    rows: list[tuple[str, list[float]]] = []
    for name, steps, first in (
        ("always-valid gates, whole plan from the canary", plan, 0),
        ("always-valid gates, half step only", plan, HALF_STEP),
        (f"always-valid gates, half step, tuning {2 * per_arm:,}", tuned, HALF_STEP),
    ):
        runs = [
            run_rollout(steps, world, sequential_judge, unit_stream(args.seed + 1, run, chunk),
                        args.rate, first)
            for run in range(args.runs)
        ]  # fmt: skip
        rows.append((name, [r.units if r.outcome == "aborted" else np.inf for r in runs]))
    fixed = [
        fixed_horizon_units(world, unit_stream(args.seed + 1, run, chunk), per_arm, alpha)
        for run in range(args.runs)
    ]
    fixed_times = [np.inf if u is None else float(u) for u in fixed]
    rows.append(("fixed-horizon Welch at the half step (one look)", fixed_times))
    reference = float(np.quantile(fixed_times, 0.5, method="lower"))
    for name, units in rows:
        aborted = float(np.mean(np.isfinite(units)))
        median = float(np.quantile(units, 0.5, method="lower"))
        ratio = f"{median / reference:>14.2f}" if np.isfinite(median) else f"{'-':>14}"
        print(f"{name:<52} {aborted:>7.0%} {quantiles(units, args.rate)}{ratio}")
    print("units count every unit served from the start of the method (holdout included); "
          "'never': not aborted within the plan (paused at the half step's maximum wait)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=500.0, help="requests (units) per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-outcomes", type=int, default=300, help="per variant and step")
    parser.add_argument("--skip-a", action="store_true", help="only the time to abort")
    args = parser.parse_args()
    chunk = int(args.rate * benchmark_plan().evaluate_seconds)
    if not args.skip_a:
        false_aborts(args, chunk)
    time_to_abort(args, chunk)


if __name__ == "__main__":
    main()
