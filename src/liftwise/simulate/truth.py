"""The true value of any policy, computed exactly from a world's ground truth."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from liftwise.contracts.base import require_columns
from liftwise.errors import UserError


@dataclass(frozen=True)
class PolicyValue:
    """True money of a policy: gross value, treatment costs and net profit, both expected
    (from outcome probabilities) and realised (from the drawn potential outcomes).

    ``incremental_*`` is relative to treating nobody, the figure a business compares.
    """

    units: int
    treated: int
    expected_net_profit: float
    realised_net_profit: float
    expected_cost: float
    realised_cost: float
    incremental_expected_net_profit: float
    incremental_realised_net_profit: float
    arm_counts: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def policy_value(
    decisions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    arms: pd.DataFrame,
    *,
    name: str = "decisions",
) -> PolicyValue:
    """Exact value of ``decisions`` (unit_id, arm); units not listed get the control arm.

    Net profit per unit = value under the chosen arm - (contact cost + redemption cost if
    the unit converts) for treated units. Raises a UserError naming the bad column or row.
    """
    require_columns(decisions.columns, ["unit_id", "arm"], file=name)
    control = _control_label(arms)
    costs = arms.set_index("arm")[["contact_cost", "redemption_cost"]]
    unknown = ~decisions["arm"].isin(costs.index)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise UserError(
            f"unknown arm '{decisions['arm'].iloc[row]}' (arms: {', '.join(costs.index)})",
            file=name,
            column="arm",
            row=row,
        )
    duplicated = decisions["unit_id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise UserError("unit decided twice", file=name, column="unit_id", row=row)

    units = ground_truth.loc[ground_truth["arm"] == control, "unit_id"]
    known = decisions["unit_id"].isin(units)
    if not known.all():
        row = int(np.flatnonzero(~known.to_numpy())[0])
        raise UserError(
            f"unit {decisions['unit_id'].iloc[row]} is not in the world",
            file=name,
            column="unit_id",
            row=row,
        )
    chosen = pd.DataFrame({"unit_id": units.to_numpy()}).merge(
        decisions[["unit_id", "arm"]], on="unit_id", how="left"
    )
    chosen["arm"] = chosen["arm"].fillna(control)
    rows = chosen.merge(ground_truth, on=["unit_id", "arm"], how="left", validate="one_to_one")
    treated = (rows["arm"] != control).to_numpy()
    contact = rows["arm"].map(costs["contact_cost"]).to_numpy()
    redemption = rows["arm"].map(costs["redemption_cost"]).to_numpy()
    expected_cost = treated * (contact + redemption * rows["expected_outcome"].to_numpy())
    realised_cost = treated * (contact + redemption * rows["outcome"].to_numpy())
    expected = float(rows["expected_value"].sum() - expected_cost.sum())
    realised = float(rows["value"].sum() - realised_cost.sum())
    baseline = ground_truth[ground_truth["arm"] == control]
    return PolicyValue(
        units=len(rows),
        treated=int(treated.sum()),
        expected_net_profit=expected,
        realised_net_profit=realised,
        expected_cost=float(expected_cost.sum()),
        realised_cost=float(realised_cost.sum()),
        incremental_expected_net_profit=expected - float(baseline["expected_value"].sum()),
        incremental_realised_net_profit=realised - float(baseline["value"].sum()),
        arm_counts={str(k): int(v) for k, v in rows["arm"].value_counts().sort_index().items()},
    )


def _control_label(arms: pd.DataFrame) -> str:
    controls = arms.loc[arms["is_control"], "arm"].tolist()
    if len(controls) != 1:
        raise UserError(f"exactly one control arm expected, found {controls}", column="is_control")
    return str(controls[0])


def expected_net_matrix(ground_truth: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """Expected net profit of every unit under every arm (units x arms, arms in table order)."""
    costs = arms.set_index("arm")
    frame = ground_truth[["unit_id", "arm", "expected_outcome", "expected_value"]]
    contact = frame["arm"].map(costs["contact_cost"])
    redemption = frame["arm"].map(costs["redemption_cost"])
    net = frame["expected_value"] - contact - redemption * frame["expected_outcome"]
    wide = (
        frame.assign(net=net.to_numpy())
        .pivot(index="unit_id", columns="arm", values="net")
        .reindex(columns=arms["arm"].tolist())
    )
    return wide


def oracle_policy(ground_truth: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """The best possible unconstrained policy: each unit's arm of highest expected net profit."""
    wide = expected_net_matrix(ground_truth, arms)
    best = wide.to_numpy().argmax(axis=1)
    return pd.DataFrame({"unit_id": wide.index.to_numpy(), "arm": wide.columns.to_numpy()[best]})
