"""The one typed decision configuration: budget, costs, hard and soft guardrails.

Accepted as YAML by the CLI (``--guardrails FILE``). Unknown keys and impossible values
(negative budget, a cap below zero, an arm the model does not know) are one-line
UserErrors naming the file and field.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from liftwise.errors import UserError
from liftwise.io import read_yaml_mapping

Operator = Literal["<", "<=", ">", ">=", "==", "!=", "in", "not in"]

ORDERS = ("<", "<=", ">", ">=")
OPERATORS: dict[str, Callable] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EligibilityRule(_Strict):
    """A predicate a unit must satisfy to be treated, e.g. ``tenure_months >= 6``.

    ``arms`` limits the rule to some arms (default: every arm)."""

    feature: str = Field(min_length=1)
    op: Operator
    value: float | str | list[float | str]
    arms: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _value_fits_operator(cls, data: object) -> object:
        """An order (<, <=, >, >=) compares numbers, so its value must be one (a numeric
        string such as "30" becomes 30); only in / not in take a list. Refused at load,
        not as a TypeError deep in the decision run."""
        if not isinstance(data, dict) or data.get("op") in (None, "in", "not in"):
            return data
        op, value = data["op"], data.get("value")
        if isinstance(value, list):
            raise ValueError(f"operator '{op}' takes one value, not a list")
        if op in ORDERS and not isinstance(value, bool):
            try:
                return {**data, "value": float(value)}  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(
                    f"operator '{op}' compares numbers; {value!r} is not one"
                ) from None
        return data


class ContactCap(_Strict):
    """At most ``max_contacts`` treatments per unit within the last ``window_days``."""

    max_contacts: int = Field(ge=0)
    window_days: int = Field(gt=0)


class SoftGuardrail(_Strict):
    """Treat only where the lower bound of the effect (or of the expected profit) at
    ``level`` confidence exceeds ``threshold``."""

    metric: Literal["effect", "profit"] = "effect"  # not "on": YAML reads a bare on as true
    level: float = Field(default=0.9, gt=0, lt=1)
    threshold: float = 0.0
    require_interval: bool = Field(
        default=False,
        description="Refuse models without per-unit intervals instead of skipping the rule.",
    )


class ArmCostConfig(_Strict):
    contact: float = Field(default=0.0, ge=0)
    redemption: float = Field(default=0.0, ge=0)


class DecisionConfig(_Strict):
    """Everything that shapes a batch of decisions; all fields optional except the budget."""

    budget: float = Field(
        ge=0, allow_inf_nan=True, description="Total expected treatment cost allowed (inf: none)."
    )
    value_per_outcome: float | None = Field(default=None, gt=0)
    costs: dict[str, ArmCostConfig] = Field(default_factory=dict)
    capacity: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="Max units per arm."
    )
    do_not_contact: list[int] = Field(default_factory=list)
    do_not_contact_file: Path | None = None
    eligibility: list[EligibilityRule] = Field(default_factory=list)
    contact_cap: ContactCap | None = None
    soft_guardrail: SoftGuardrail | None = None

    def check_arms(self, arms: Sequence[str], *, source: str) -> None:
        """Every arm named in costs, capacity or rules must be a treatment arm of the model."""
        known = set(arms)
        named = [
            *(("costs", a) for a in self.costs),
            *(("capacity", a) for a in self.capacity),
            *(("eligibility", a) for rule in self.eligibility for a in (rule.arms or [])),
        ]
        for field, arm in named:
            if arm not in known:
                raise UserError(
                    f"unknown arm '{arm}' (model arms: {', '.join(arms)})",
                    file=source,
                    column=field,
                )


def load_decision_config(path: str | Path | None, **overrides: object) -> DecisionConfig:
    """Read the YAML file (if any) and apply CLI overrides such as ``budget``."""
    data: dict[str, object] = {}
    source = str(path) if path is not None else "decision config"
    if path is not None:
        data.update(read_yaml_mapping(path))
    given = {k: v for k, v in overrides.items() if v is not None}
    data.update(given)
    try:
        return DecisionConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "<config>"
        message = first["msg"].removeprefix("Value error, ")
        if field in given:  # the caller's own argument (the CLI's flag), not the file
            raise UserError(f"{message}, got {given[field]!r}", parameter=field) from None
        raise UserError(message, file=source, column=field) from None
