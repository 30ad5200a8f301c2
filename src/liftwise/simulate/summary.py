"""A short, true summary of a world: sizes, latent unit types and simple policies' value."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from liftwise.simulate.truth import oracle_policy, policy_value
from liftwise.simulate.world import World


@dataclass(frozen=True)
class PolicyRow:
    name: str
    treated: int
    average_effect: float | None  # true mean effect on the outcome, for treat-all rows
    incremental_net_profit: float  # expected, against treating nobody


@dataclass(frozen=True)
class WorldSummary:
    world: str
    seed: int
    currency: str
    sizes: dict[str, int]
    unit_type_share: dict[str, float]
    policies: list[PolicyRow]


def summarize_world(world: World) -> WorldSummary:
    """Value treat-none, treat-all per arm, the current policy and the oracle exactly."""
    truth = world.read("ground_truth")
    arms = world.read("arms")
    control = str(arms.loc[arms["is_control"], "arm"].iloc[0])
    units = truth.loc[truth["arm"] == control, "unit_id"].to_numpy()
    mean_outcome = truth.groupby("arm", sort=False)["expected_outcome"].mean()
    rows = [PolicyRow("treat nobody", 0, None, 0.0)]
    for arm in arms["arm"]:
        if arm == control:
            continue
        value = policy_value(pd.DataFrame({"unit_id": units, "arm": arm}), truth, arms)
        effect = float(mean_outcome[arm] - mean_outcome[control])
        rows.append(
            PolicyRow(
                f"treat all: {arm}", value.treated, effect, value.incremental_expected_net_profit
            )
        )
    for name, decisions in (
        ("current policy", world.read("current_policy")),
        ("oracle", oracle_policy(truth, arms)),
    ):
        value = policy_value(decisions, truth, arms, name=name)
        rows.append(PolicyRow(name, value.treated, None, value.incremental_expected_net_profit))
    shares = truth.loc[truth["arm"] == control, "unit_type"].value_counts(normalize=True)
    return WorldSummary(
        world=world.name,
        seed=world.manifest.seed,
        currency=world.campaign.currency,
        sizes=dict(world.manifest.sizes),
        unit_type_share={str(k): float(v) for k, v in shares.sort_index().items()},
        policies=rows,
    )
