"""Cross-table rules of each world: references between tables and completeness.

A :class:`Reference` says every (child columns) value must exist among (parent columns)
values, e.g. a payment's (card_id, customer_id) must be a card owned by that customer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """``table[columns]`` values must appear in ``parent[parent_columns]``."""

    table: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]

    @property
    def rule(self) -> str:
        return f"references {self.parent}({', '.join(self.parent_columns)})"


def _campaign_references(unit_table: str, unit_key: str) -> tuple[Reference, ...]:
    """Campaign tables point at the world's units and arms; every unit is randomised."""
    unit = (unit_key,)
    return (
        Reference("assignments", ("unit_id",), unit_table, unit),
        Reference(unit_table, unit, "assignments", ("unit_id",)),
        Reference("assignments", ("arm",), "arms", ("arm",)),
        Reference("outcomes", ("unit_id", "arm"), "assignments", ("unit_id", "arm")),
        Reference("assignments", ("unit_id",), "outcomes", ("unit_id",)),
        Reference("ground_truth", ("unit_id",), unit_table, unit),
        Reference("ground_truth", ("arm",), "arms", ("arm",)),
        Reference("current_policy", ("unit_id",), unit_table, unit),
        Reference("current_policy", ("arm",), "arms", ("arm",)),
    )


FINTECH_REFERENCES: tuple[Reference, ...] = (
    Reference("cards", ("customer_id",), "customers", ("customer_id",)),
    Reference("payments", ("customer_id",), "customers", ("customer_id",)),
    Reference("payments", ("merchant_id",), "merchants", ("merchant_id",)),
    Reference("payments", ("card_id", "customer_id"), "cards", ("card_id", "customer_id")),
    *_campaign_references("customers", "customer_id"),
)

LEARNING_REFERENCES: tuple[Reference, ...] = (
    Reference("sessions", ("learner_id",), "learners", ("learner_id",)),
    Reference("sessions", ("course_id",), "courses", ("course_id",)),
    *_campaign_references("learners", "learner_id"),
)

WORLD_REFERENCES: dict[str, tuple[Reference, ...]] = {
    "fintech": FINTECH_REFERENCES,
    "learning": LEARNING_REFERENCES,
}
