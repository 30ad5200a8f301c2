"""The decision service's exposure log: one row per decision, keyed by the request id.

Declared once here so the writer (:mod:`liftwise.serve.exposures` creates the SQLite or
PostgreSQL table from it) and the reader (:mod:`liftwise.experiment.data` reads the log as
an experiment's exposures) cannot drift apart.
"""

from __future__ import annotations

from liftwise.contracts.base import ColumnSpec, TableContract

EXPOSURE_LOG = TableContract(
    name="exposure_log",
    version="2",
    description="Every decision the service made, once, keyed by the client's request id.",
    key=("request_id",),
    columns=(
        ColumnSpec("request_id", "str", "The client's request id (retries find it).", unique=True),
        ColumnSpec("decision_id", "str", "The decision's own id.", unique=True),
        ColumnSpec("campaign", "str", "Budget ledger name: the experiment the log feeds."),
        ColumnSpec("unit_id", "int", "Unit decided for."),
        ColumnSpec("arm", "str", "Chosen arm (the control label when untreated)."),
        ColumnSpec("effect_arm", "str", "Arm the effect describes: chosen, else most profitable."),
        ColumnSpec("treated", "bool", "True when an offer was made."),
        ColumnSpec("expected_profit", "float", "Expected incremental net profit."),
        ColumnSpec("expected_cost", "float", "Expected cost of the offer.", ge=0),
        ColumnSpec("cost_units", "int", "Budget reservation in ledger units (0 untreated).", ge=0),
        ColumnSpec("effect", "float", "Predicted effect of effect_arm.", nullable=True),
        ColumnSpec("effect_low", "float", "Lower interval bound of the effect.", nullable=True),
        ColumnSpec("effect_high", "float", "Upper interval bound of the effect.", nullable=True),
        ColumnSpec("reason", "str", "Why untreated (guardrail, budget), if so.", nullable=True),
        ColumnSpec("model_name", "str", "Registered model that decided."),
        ColumnSpec("model_version", "str", "Its version."),
        ColumnSpec("decided_at_us", "int", "Decision time, microseconds since the epoch, UTC."),
        ColumnSpec("context", "str", "The request's context as JSON.", nullable=True),
        # version 2: which rollout, step and variant served the unit (null outside rollouts)
        ColumnSpec("rollout", "str", "Rollout that served the unit, if any.", nullable=True),
        ColumnSpec("rollout_step", "int", "Its step index at the decision.", nullable=True),
        ColumnSpec("variant", "str", "holdout, baseline or candidate.", nullable=True),
    ),
)

# Columns added after version 1: nullable, so a version-1 table gets them by ALTER TABLE
# and a version-1 export still reads as the log.
ADDED_COLUMNS: tuple[str, ...] = ("rollout", "rollout_step", "variant")

# The log read as an experiment's exposures: which log column holds the experiment's name
# and which the exposure time (microseconds since the epoch, UTC).
LOG_EXPERIMENT = "campaign"
LOG_TIME_US = "decided_at_us"

# The outcomes reported for logged decisions: one row per decision, in the table
# ``<exposure table>_outcomes`` beside the log (the rollout measurements join the two).
OUTCOME_LOG = TableContract(
    name="outcome_log",
    version="1",
    description="The observed revenue (and cost) of a logged decision, once per decision.",
    key=("decision_id",),
    columns=(
        ColumnSpec("decision_id", "str", "The decision the outcome belongs to.", unique=True),
        ColumnSpec("request_id", "str", "Its request id (copied from the log)."),
        ColumnSpec("unit_id", "int", "Its unit."),
        ColumnSpec("campaign", "str", "Its campaign."),
        ColumnSpec("revenue", "float", "Revenue observed from the unit after the decision."),
        ColumnSpec(
            "cost",
            "float",
            "Cost observed; null: the decision's expected_cost.",
            ge=0,
            nullable=True,
        ),
        ColumnSpec("observed_at_us", "int", "When the outcome happened, µs since the epoch."),
        ColumnSpec("received_at_us", "int", "When it was recorded, µs since the epoch."),
    ),
)
OUTCOME_TABLE_SUFFIX = "_outcomes"
