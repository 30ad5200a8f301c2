"""A synthetic world's campaign as experiment files, with the true effects to check against.

Two designs:

- ``campaign``: the world's own randomised past campaign (control and every offer, at the
  world's ratios); outcomes are the observed ones.
- ``policy``: the plan's typical design, *policy vs current policy vs no-contact control*,
  assigned with :mod:`~liftwise.experiment.assign` (45% / 45% / 10%). A unit's outcome is
  its realised potential outcome (ground truth) under the offer its arm gives it: the
  policy's decision (a decisions file, default the world's oracle policy), the world's
  current policy, or nothing.

Exposure times are synthetic: spread uniformly (seeded) over ``exposure_days`` after the
decision time, so the sequential view has a time axis. Outcomes carry the pre-period
spend and payment count (CUPED covariates, computed strictly before the decision time),
the customer segment columns and an 8-level pre-period spend band. ``truth`` holds the
true average effects over all units, from expected and from realised potential outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from liftwise.errors import UserError
from liftwise.experiment.assign import Design, assign_units
from liftwise.experiment.config import AnalysisConfig, dump_config, parse_config
from liftwise.io import atomic_path, write_frame, write_json
from liftwise.simulate import World
from liftwise.simulate.truth import expected_net_matrix, oracle_policy

WorldDesign = Literal["campaign", "policy"]
POLICY_ARMS = {"policy": 0.45, "current_policy": 0.45, "control": 0.10}
SPEND_BANDS = 8


@dataclass(frozen=True)
class WorldExperiment:
    """Exposures, outcomes, the analysis config and the true effects of one design."""

    exposures: pd.DataFrame
    outcomes: pd.DataFrame
    config: AnalysisConfig
    truth: dict[str, Any]


def _pre_period(world: World) -> pd.DataFrame:
    """Pre-period covariates and segment columns per unit (index = unit id)."""
    from liftwise.features.offline import unit_features

    cutoff = world.campaign.decision_time
    features = unit_features(world, cutoff)
    customers = world.read("customers").set_index("customer_id")
    spend = features["spend_30d"]
    band = pd.qcut(
        spend.rank(method="first"), SPEND_BANDS, labels=[f"q{i + 1}" for i in range(SPEND_BANDS)]
    )
    return pd.DataFrame(
        {
            "pre_spend_30d": spend.astype(np.float64),
            "pre_txn_count_30d": features["txn_count_30d"].astype(np.float64),
            "segment": customers["segment"].reindex(features.index),
            "income_band": customers["income_band"].reindex(features.index),
            "spend_band": band.astype(str),
        },
        index=features.index,
    )


def _exposure_times(world: World, n: int, days: int, seed: int) -> np.ndarray:
    start = np.datetime64(world.campaign.decision_time, "us")
    offsets = np.random.default_rng(seed).random(n) * days * 86_400_000_000
    return start + offsets.astype("timedelta64[us]")


def _prices(world: World) -> pd.DataFrame:
    arms = pd.DataFrame([a.model_dump() for a in world.campaign.arms])
    arms = arms.rename(columns={"name": "arm"})
    arms["is_control"] = arms["arm"] == world.campaign.control
    return arms


def _cost(offered: pd.Series, converted: np.ndarray, prices: pd.DataFrame) -> np.ndarray:
    """Contact cost of every offer plus its redemption cost when the unit converts."""
    by_arm = prices.set_index("arm")
    return (
        offered.map(by_arm["contact_cost"]).to_numpy()
        + offered.map(by_arm["redemption_cost"]).to_numpy() * converted
    )


def _truth_rows(
    ground_truth: pd.DataFrame, prices: pd.DataFrame, offers: dict[str, pd.Series]
) -> dict[str, dict[str, float]]:
    """Mean per unit over all units of conversion, margin and net profit under each design
    arm's offers, expected and realised."""
    control = str(prices.loc[prices["is_control"], "arm"].iloc[0])
    expected_net = expected_net_matrix(ground_truth, prices)
    by_arm = prices.set_index("arm")
    out: dict[str, dict[str, float]] = {}
    for name, offer in offers.items():
        chosen = pd.DataFrame({"unit_id": offer.index.to_numpy(), "arm": offer.to_numpy()})
        rows = chosen.merge(ground_truth, on=["unit_id", "arm"], how="left", validate="one_to_one")
        treated = (rows["arm"] != control).to_numpy()
        realised_cost = (
            treated
            * (
                rows["arm"].map(by_arm["contact_cost"])
                + rows["arm"].map(by_arm["redemption_cost"]) * rows["outcome"]
            ).to_numpy()
        )
        column = expected_net.columns.get_indexer(rows["arm"])
        net = expected_net.reindex(rows["unit_id"]).to_numpy()[np.arange(len(rows)), column]
        out[name] = {
            "converted_expected": float(rows["expected_outcome"].mean()),
            "converted_realised": float(rows["outcome"].mean()),
            "margin_vnd_expected": float(rows["expected_value"].mean()),
            "margin_vnd_realised": float(rows["value"].mean()),
            "net_profit_expected": float(net.mean()),
            "net_profit_realised": float((rows["value"] - realised_cost).mean()),
        }
    return out


def _effects(
    levels: dict[str, dict[str, float]], pairs: list[tuple[str, str]]
) -> dict[str, dict[str, float]]:
    return {
        f"{treatment} vs {baseline}": {
            k: levels[treatment][k] - levels[baseline][k] for k in levels[treatment]
        }
        for treatment, baseline in pairs
    }


def world_experiment(
    world: World,
    *,
    design: WorldDesign = "campaign",
    policy: pd.DataFrame | None = None,
    exposure_days: int = 14,
    seed: int = 0,
) -> WorldExperiment:
    """Build the experiment files of ``design`` from a fintech world (module docstring)."""
    if world.name != "fintech":
        raise UserError(
            f"from-world supports the fintech world, not '{world.name}'", file=world.path
        )
    if exposure_days < 1:
        raise UserError("must be at least 1", parameter="exposure_days")
    campaign = world.campaign
    prices = _prices(world)
    control = campaign.control
    ground_truth = world.read("ground_truth")
    pre = _pre_period(world)
    units = pre.index.to_numpy()
    if design == "campaign":
        observed = world.read("outcomes").set_index("unit_id").reindex(units)
        assigned = observed["arm"].astype(str)
        arms = {a.name: a.ratio for a in campaign.arms}
        offered = assigned
        outcomes = pd.DataFrame(
            {
                "unit_id": units,
                "converted": observed["converted"].to_numpy(np.int64),
                "margin_vnd": observed["margin_vnd"].to_numpy(np.float64),
                "spend_vnd": observed["spend_vnd"].to_numpy(np.float64),
            }
        )
        offers = design_offers(world, design, units=units, ground_truth=ground_truth)
        pairs = [(arm, control) for arm in arms if arm != control]
        name = f"{world.name}-campaign"
    elif design == "policy":
        name = f"{world.name}-policy"
        offers = design_offers(world, design, policy=policy, units=units, ground_truth=ground_truth)
        chosen, current = offers["policy"], offers["current_policy"]
        table = assign_units(units, Design(name=name, arms=POLICY_ARMS, salt=f"{name}-{seed}"))
        assigned = pd.Series(table["arm"].to_numpy(), index=units, dtype=object)
        offered = pd.Series(
            np.select(
                [assigned == "policy", assigned == "current_policy"],
                [chosen.to_numpy(), current.to_numpy()],
                default=control,
            ),
            index=units,
        )
        lookup = ground_truth.set_index(["unit_id", "arm"])
        realised = lookup.reindex(pd.MultiIndex.from_arrays([units, offered.to_numpy()]))
        outcomes = pd.DataFrame(
            {
                "unit_id": units,
                "converted": realised["outcome"].to_numpy(np.int64),
                "margin_vnd": realised["value"].to_numpy(np.float64),
            }
        )
        arms = dict(POLICY_ARMS)
        pairs = [("policy", "current_policy"), ("policy", "control"), ("current_policy", "control")]
    else:
        raise UserError(f"unknown design '{design}' (campaign or policy)", parameter="design")
    outcomes["cost_vnd"] = _cost(
        offered.reset_index(drop=True), outcomes["converted"].to_numpy(), prices
    )
    outcomes["offer"] = offered.to_numpy().astype(str)
    for column in pre.columns:
        outcomes[column] = pre[column].to_numpy()
    exposures = pd.DataFrame(
        {
            "unit_id": units,
            "arm": assigned.to_numpy().astype(str),
            "exposed_at": _exposure_times(world, len(units), exposure_days, seed),
            "experiment": name,
        }
    ).sort_values("exposed_at", kind="stable", ignore_index=True)
    config = _config(name, design, control if design == "campaign" else "control", arms, pairs)
    means = _truth_rows(ground_truth, prices, offers)
    truth = {
        "world": str(world.path),
        "design": design,
        "units": len(units),
        "means": means,
        "effects": _effects(means, pairs),
    }
    return WorldExperiment(exposures=exposures, outcomes=outcomes, config=config, truth=truth)


def design_offers(
    world: World,
    design: WorldDesign,
    *,
    policy: pd.DataFrame | None = None,
    units: np.ndarray | None = None,
    ground_truth: pd.DataFrame | None = None,
) -> dict[str, pd.Series]:
    """The offer (a world arm) every unit gets in each arm of ``design``, indexed by unit
    id: with the world's ground truth, every unit's potential outcomes under the design."""
    ground_truth = world.read("ground_truth") if ground_truth is None else ground_truth
    control = world.campaign.control
    if units is None:
        units = np.sort(ground_truth["unit_id"].unique())
    if design == "campaign":
        return {name: pd.Series(name, index=units) for name in world.campaign.arm_names}
    current = world.read("current_policy").set_index("unit_id")["arm"].reindex(units)
    return {
        "policy": _policy_offers(world, policy, ground_truth, _prices(world), units),
        "current_policy": current.fillna(control).astype(str),
        "control": pd.Series(control, index=units),
    }


def _policy_offers(
    world: World,
    policy: pd.DataFrame | None,
    ground_truth: pd.DataFrame,
    prices: pd.DataFrame,
    units: np.ndarray,
) -> pd.Series:
    """The offer the policy arm gives each unit: the decisions table, else the oracle."""
    control = world.campaign.control
    if policy is None:
        policy = oracle_policy(ground_truth, prices)
    missing = [c for c in ("unit_id", "arm") if c not in policy.columns]
    if missing:
        raise UserError(
            "missing column in the policy decisions", column=missing[0], parameter="policy"
        )
    unknown = ~policy["arm"].isin(prices["arm"])
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise UserError(
            f"unknown offer '{policy['arm'].iloc[row]}'", column="arm", row=row, parameter="policy"
        )
    return (
        policy.drop_duplicates("unit_id")
        .set_index("unit_id")["arm"]
        .reindex(units)
        .fillna(control)
        .astype(str)
    )


def _config(
    name: str,
    design: WorldDesign,
    control: str,
    arms: dict[str, float],
    pairs: list[tuple[str, str]],
) -> AnalysisConfig:
    """The analysis this design calls for: five metrics (net profit included), segments."""
    metrics: list[dict[str, Any]] = [
        {"name": "margin_vnd", "type": "continuous", "covariate": "pre_spend_30d"},
        {
            "name": "margin_per_converter",
            "type": "ratio",
            "numerator": "margin_vnd",
            "denominator": "converted",
        },
    ]
    if design == "campaign":
        metrics.insert(0, {"name": "converted", "type": "binary", "covariate": "pre_txn_count_30d"})
        metrics.append(
            {
                "name": "spend_vnd",
                "type": "continuous",
                "guardrail": {"margin": 0.05, "relative": True},
            }
        )
    else:
        metrics.append({"name": "converted", "type": "binary", "guardrail": {"margin": 0.01}})
    payload = {
        "experiment": name,
        "control": control,
        "arms": arms,
        "metrics": metrics,
        "segments": ["segment", "spend_band"],
        "profit": {
            "revenue": "margin_vnd",
            "cost": "cost_vnd",
            "covariate": "pre_spend_30d",
            "comparisons": [list(p) for p in pairs],
            "currency": "VND",
        },
    }
    return parse_config(payload, source=name)


def write_world_experiment(
    world: World,
    out: str | Path,
    *,
    design: WorldDesign = "campaign",
    policy: pd.DataFrame | None = None,
    exposure_days: int = 14,
    seed: int = 0,
) -> dict[str, Path]:
    """Write exposures.parquet, outcomes.parquet, experiment.yaml and truth.json into ``out``."""
    built = world_experiment(
        world, design=design, policy=policy, exposure_days=exposure_days, seed=seed
    )
    out = Path(out)
    paths = {
        "exposures": out / "exposures.parquet",
        "outcomes": out / "outcomes.parquet",
        "config": out / "experiment.yaml",
        "truth": out / "truth.json",
    }
    write_frame(paths["exposures"], built.exposures)
    write_frame(paths["outcomes"], built.outcomes)
    with atomic_path(paths["config"]) as tmp:
        tmp.write_text(dump_config(built.config))
    write_json(paths["truth"], built.truth)
    return paths
