"""The quickstart: generate a fintech world, race the learners on its past randomised
campaign, decide a new campaign under a budget, and value every policy with ground truth.

Steps are plain functions over the stage packages; the CLI command is a thin shell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liftwise.contracts.experiment import ExperimentFrame
from liftwise.contracts.validate import validate_world
from liftwise.decide.batch import Decisions, decide_batch
from liftwise.decide.config import DecisionConfig, EligibilityRule, SoftGuardrail
from liftwise.decide.curve import budget_curve
from liftwise.evaluate.bundle import ModelBundle
from liftwise.evaluate.economics import campaign_economics
from liftwise.evaluate.race import RaceResult, RaceSettings, run_race, winner_bundle
from liftwise.evaluate.report import save_race
from liftwise.features import experiment_frame
from liftwise.io import write_frame, write_json
from liftwise.simulate import World, WorldConfig, load_world, policy_value, simulate
from liftwise.simulate.truth import expected_net_matrix

QUICK_RACE = ("s_lgbm", "t_lgbm", "x_lgbm", "dr_lgbm", "uplift_forest")
BUDGET_PER_CUSTOMER_VND = 3_000.0  # the new campaign's budget per customer: binding, not lavish

Say = Callable[[str], None]


@dataclass(frozen=True)
class PolicyRow:
    name: str
    treated: int
    expected_cost: float
    incremental_profit: float  # true expected net profit against treating nobody


@dataclass
class QuickstartResult:
    world: World
    race: RaceResult
    decisions: Decisions
    policies: list[PolicyRow]
    budget: float
    report: Path

    def policy(self, name: str) -> PolicyRow:
        return next(row for row in self.policies if row.name == name)


def generate(out: Path, units: int, days: int, seed: int, say: Say) -> World:
    """Simulate the fintech world and check it against every contract."""
    say("simulating the fintech world")
    simulate(WorldConfig(world="fintech", units=units, days=days, seed=seed), out)
    say("validating")
    report = validate_world(out)
    if not report.ok:
        raise RuntimeError(f"generated world breaks its contracts: {report.violations[:3]}")
    return load_world(out)


def race(
    world: World,
    out: Path,
    learners: tuple[str, ...],
    seed: int,
    say: Say,
    *,
    frame: ExperimentFrame | None = None,
    n_boot: int = 100,
    title: str = "liftwise quickstart: model race",
) -> tuple[ExperimentFrame, RaceResult, ModelBundle]:
    """The model race on the world's past randomised campaign; saves table, plots, model.

    ``frame`` defaults to the offline point-in-time features; the pipeline passes the
    feature store's training frame instead."""
    frame = frame if frame is not None else experiment_frame(world)
    economics = campaign_economics(frame, world.campaign.arms)
    settings = RaceSettings(
        outcome=frame.outcomes[0],
        economics=economics,
        learners=learners,
        n_boot=n_boot,
        seed=seed,
    )
    policy = world.read("current_policy").set_index("unit_id")["arm"]
    result = run_race(frame, settings, current_policy=policy, progress=say)
    bundle = winner_bundle(result, frame, world=world.name, currency=world.campaign.currency)
    save_race(result, bundle, out, title=title)
    return frame, result, bundle


def demo_config(frame_features: pd.DataFrame, budget: float, has_interval: bool) -> DecisionConfig:
    """The new campaign's rules: a do-not-contact list, a minimum tenure, the soft guardrail."""
    ids = frame_features.index.to_numpy()
    return DecisionConfig(
        budget=budget,
        do_not_contact=[int(i) for i in ids[ids % 50 == 0]],  # 2% opted out of marketing
        eligibility=[EligibilityRule(feature="tenure_months", op=">=", value=3)],
        soft_guardrail=SoftGuardrail(metric="effect", level=0.8, threshold=0.0)
        if has_interval
        else None,
    )


def value_policies(world: World, decisions: Decisions, budget: float, seed: int) -> list[PolicyRow]:
    """True expected value of liftwise's decisions and of every baseline policy."""
    truth, arms = world.read("ground_truth"), world.read("arms")
    control = decisions.control
    units = truth.loc[truth["arm"] == control, "unit_id"].to_numpy()
    true_net = expected_net_matrix(truth, arms).reindex(units)
    treatments = list(decisions.treatments)
    gains = true_net[treatments].to_numpy() - true_net[[control]].to_numpy()
    costs_table = arms.set_index("arm")
    p = truth.pivot(index="unit_id", columns="arm", values="expected_outcome").reindex(units)
    true_cost = (
        costs_table.loc[treatments, "contact_cost"].to_numpy()
        + costs_table.loc[treatments, "redemption_cost"].to_numpy() * p[treatments].to_numpy()
    )

    def row(name: str, chosen: pd.DataFrame) -> PolicyRow:
        value = policy_value(chosen, truth, arms, name=name)
        index = pd.Series(np.arange(len(units)), index=units)
        picked = chosen[chosen["arm"] != control]
        arm_index = picked["arm"].map({a: j for j, a in enumerate(treatments)}).to_numpy()
        cost = float(true_cost[index.reindex(picked["unit_id"]).to_numpy(), arm_index].sum())
        return PolicyRow(name, value.treated, cost, value.incremental_expected_net_profit)

    rows = [row("liftwise", decisions.table[["unit_id", "arm"]])]
    rows.append(row("treat nobody", pd.DataFrame({"unit_id": units, "arm": control})))
    for arm in treatments:
        rows.append(row(f"treat all: {arm}", pd.DataFrame({"unit_id": units, "arm": arm})))
    rng = np.random.default_rng([seed, 99])
    order = rng.permutation(len(units))
    random_arm = rng.integers(0, len(treatments), len(units))
    spent = np.cumsum(true_cost[order, random_arm[order]])
    take = order[: int(np.searchsorted(spent, budget, side="right"))]
    rows.append(
        row(
            "random, same budget",
            pd.DataFrame(
                {
                    "unit_id": units[take],
                    "arm": np.asarray(treatments, dtype=object)[random_arm[take]],
                }
            ),
        )
    )
    rows.append(row("current policy", world.read("current_policy")))
    best = gains.argmax(axis=1)
    positive = gains.max(axis=1) > 0
    rows.append(
        row(
            "oracle (no budget)",
            pd.DataFrame(
                {
                    "unit_id": units[positive],
                    "arm": np.asarray(treatments, dtype=object)[best[positive]],
                }
            ),
        )
    )
    from liftwise.decide.optimizer import optimize_budget

    oracle = optimize_budget(gains, true_cost, budget)
    chosen = oracle.arm >= 0
    rows.append(
        row(
            "oracle, same budget",
            pd.DataFrame(
                {
                    "unit_id": units[chosen],
                    "arm": np.asarray(treatments, dtype=object)[oracle.arm[chosen]],
                }
            ),
        )
    )
    return rows


def run_quickstart(
    out: Path,
    *,
    units: int = 50_000,
    days: int = 90,
    seed: int = 7,
    learners: tuple[str, ...] = QUICK_RACE,
    say: Say | None = None,
) -> QuickstartResult:
    """Every step of the quickstart; writes world/, race/, decisions.parquet, report.html."""
    say = say or (lambda _m: None)
    world = generate(out / "world", units, days, seed, say)
    frame, result, bundle = race(world, out / "race", learners, seed, say)
    say("deciding the new campaign")
    features = frame.data.set_index("unit_id")
    budget = BUDGET_PER_CUSTOMER_VND * units
    has_interval = bool(getattr(bundle.learner, "supports_interval", False))
    config = demo_config(features, budget, has_interval)
    decisions = decide_batch(
        bundle,
        frame.X(),
        features.index.to_numpy(),
        features,
        config,
        now=world.campaign.decision_time,
    )
    write_frame(out / "decisions.parquet", decisions.table)
    say("valuing every policy with ground truth")
    policies = value_policies(world, decisions, budget, seed)
    from liftwise.pipeline.quickstart_report import write_quickstart_report

    curve = budget_curve(decisions.profit, decisions.cost, allowed=decisions.allowed)
    report = write_quickstart_report(out, result, decisions, policies, budget, curve)
    write_json(
        out / "summary.json",
        {
            "budget": budget,
            "winner": result.winner,
            "decisions": asdict(decisions.summary()),
            "policies": [row.__dict__ for row in policies],
        },
    )
    return QuickstartResult(world, result, decisions, policies, budget, report)
