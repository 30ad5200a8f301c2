"""Money: the value of an outcome and each arm's costs, and expected net profit per arm.

Expected incremental net profit of giving arm *a* to a unit, against leaving it alone:

    value_per_outcome * (mu_a - mu_0) - contact_cost_a - redemption_cost_a * mu_a

where mu_a is the predicted outcome under arm *a* (for a binary outcome, the probability
of converting, i.e. of redeeming the offer). This is what rankings, Profit@K and, later,
the budget optimiser maximise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field, model_validator

from liftwise.contracts.experiment import ExperimentFrame
from liftwise.contracts.world_config import ArmConfig
from liftwise.params import Parameters


class ArmCost(Parameters):
    """What treating one unit with an arm costs: per contact and per conversion."""

    contact: float = Field(default=0.0, ge=0)
    redemption: float = Field(default=0.0, ge=0)


class Economics(Parameters):
    """Value of one unit of outcome and the cost of every treatment arm."""

    value_per_outcome: float = Field(default=1.0, gt=0)
    costs: dict[str, ArmCost] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> Economics:
        for name in self.costs:
            if not name:
                raise ValueError("arm names in costs must be non-empty")
        return self

    def arrays(self, treatments: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Contact and redemption cost per treatment arm, in ``treatments`` order."""
        free = ArmCost()
        contact = np.array([self.costs.get(a, free).contact for a in treatments], dtype=float)
        redemption = np.array([self.costs.get(a, free).redemption for a in treatments], dtype=float)
        return contact, redemption

    def unknown_arms(self, arms: Sequence[str]) -> list[str]:
        return sorted(set(self.costs) - set(arms))

    @classmethod
    def from_world_arms(cls, arms: Sequence[ArmConfig], value: float) -> Economics:
        """Costs from a world manifest's campaign arms."""
        return cls(
            value_per_outcome=value,
            costs={
                a.name: ArmCost(contact=a.contact_cost, redemption=a.redemption_cost) for a in arms
            },
        )


def expected_profit(
    outcomes: np.ndarray,
    *,
    value_per_outcome: float,
    contact_cost: np.ndarray,
    redemption_cost: np.ndarray,
) -> np.ndarray:
    """Expected incremental net profit (n, K) from predicted outcomes (n, K + 1) under every
    arm (column 0 = control)."""
    outcomes = np.asarray(outcomes, dtype=float)
    effect = outcomes[:, 1:] - outcomes[:, :1]
    return value_per_outcome * effect - contact_cost - redemption_cost * outcomes[:, 1:]


def campaign_economics(
    frame: ExperimentFrame,
    arms: Sequence[ArmConfig],
    rows: np.ndarray | None = None,
) -> Economics:
    """Money of a world's campaign: each arm's costs and, as the value of one conversion
    (the frame's first, binary outcome), the mean of its value outcome (the second, e.g.
    margin) over converters in ``rows`` (a boolean mask; default every unit)."""
    data = frame.data if rows is None else frame.data[rows]
    converted = data[frame.outcomes[0]].to_numpy() == 1
    value_column = data[frame.outcomes[1]].to_numpy()
    value = float(value_column[converted].mean()) if converted.any() else 1.0
    return Economics.from_world_arms(arms, value)
