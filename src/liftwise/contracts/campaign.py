"""Contracts shared by every world's campaign tables: arms, assignments, ground truth, policy.

Both worlds key these on ``unit_id`` so that policy evaluation, the model race and the
decision layer can work on any world without knowing what a unit is.
"""

from __future__ import annotations

import pandas as pd

from liftwise.contracts.base import ColumnSpec, TableContract


def _one_control(frame: pd.DataFrame) -> bool:
    return int(frame["is_control"].sum()) == 1


def _ratios_sum_to_one(frame: pd.DataFrame) -> bool:
    return abs(float(frame["ratio"].sum()) - 1.0) < 1e-9


ARMS = TableContract(
    name="arms",
    version="1",
    description="The campaign's arms with their costs; exactly one is the control.",
    key=("arm",),
    frame_checks=(_one_control, _ratios_sum_to_one),
    columns=(
        ColumnSpec("arm", "str", "Arm label.", unique=True),
        ColumnSpec("is_control", "bool", "True for the untreated arm."),
        ColumnSpec("ratio", "float", "Share of units randomised to this arm.", ge=0, le=1),
        ColumnSpec("contact_cost", "float", "Cost per treated unit (world currency).", ge=0),
        ColumnSpec("redemption_cost", "float", "Cost per treated unit that converts.", ge=0),
        ColumnSpec("description", "str", "What the arm offers."),
    ),
)

ASSIGNMENTS = TableContract(
    name="assignments",
    version="1",
    description="Past randomised campaign: the arm each unit was assigned at decision time.",
    key=("unit_id",),
    columns=(
        ColumnSpec("unit_id", "int", "Unit (customer or learner) id.", ge=0, unique=True),
        ColumnSpec("arm", "str", "Assigned arm (see arms)."),
        ColumnSpec("assigned_at", "timestamp", "Decision timestamp of the campaign."),
    ),
)

GROUND_TRUTH = TableContract(
    name="ground_truth",
    version="1",
    description=(
        "For every unit and arm: expected and realised potential outcome and value, so the "
        "true value of any policy is exact."
    ),
    key=("unit_id", "arm"),
    columns=(
        ColumnSpec("unit_id", "int", "Unit id.", ge=0),
        ColumnSpec("arm", "str", "Arm label."),
        ColumnSpec("expected_outcome", "float", "P(outcome = 1) under this arm.", ge=0, le=1),
        ColumnSpec("expected_value", "float", "Expected gross value (margin or revenue)."),
        ColumnSpec("outcome", "int", "Realised potential outcome under this arm.", ge=0, le=1),
        ColumnSpec("value", "float", "Realised potential gross value under this arm."),
        ColumnSpec(
            "unit_type",
            "str",
            "Latent class from the true effects.",
            allowed=("persuadable", "sure_thing", "lost_cause", "sleeping_dog"),
        ),
    ),
)

POLICY = TableContract(
    name="policy",
    version="1",
    description="A decision table: the arm chosen for each unit (absent units get control).",
    key=("unit_id",),
    columns=(
        ColumnSpec("unit_id", "int", "Unit id.", ge=0, unique=True),
        ColumnSpec("arm", "str", "Chosen arm, or the control label for no treatment."),
    ),
)

# The campaign tables every world writes, by table name. The business-as-usual rule is a
# POLICY table named ``current_policy``.
CAMPAIGN_CONTRACTS = {
    "arms": ARMS,
    "assignments": ASSIGNMENTS,
    "ground_truth": GROUND_TRUTH,
    "current_policy": POLICY,
}
