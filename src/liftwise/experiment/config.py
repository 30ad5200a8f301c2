"""What to analyse: arms and their expected ratios, metrics, guardrails, segments, profit.

Read from a small YAML file (``load_config``) or built from CLI flags; every problem is a
one-line UserError naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from liftwise.errors import UserError
from liftwise.io import read_yaml_mapping
from liftwise.stats.multiple import Correction
from liftwise.stats.sequential import DEFAULT_TUNING
from liftwise.stats.srm import DEFAULT_THRESHOLD

MetricType = Literal["binary", "continuous", "ratio"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardrailSpec(_Strict):
    """A metric that must not get worse by more than ``margin`` (non-inferiority)."""

    margin: float = Field(ge=0, description="Largest acceptable harm (absolute, or relative).")
    relative: bool = Field(False, description="Margin is a share of the baseline's mean.")


class MetricSpec(_Strict):
    """One metric: a 0/1 or numeric column, or a ratio of two columns' sums."""

    name: str = Field(min_length=1)
    type: MetricType
    column: str | None = Field(None, description="Outcome column (default: the metric name).")
    numerator: str | None = Field(None, description="Ratio metrics: column summed on top.")
    denominator: str | None = Field(None, description="Ratio metrics: column summed below.")
    covariate: str | None = Field(None, description="Pre-period column for CUPED.")
    higher_is_better: bool = True
    guardrail: GuardrailSpec | None = None

    @model_validator(mode="after")
    def _columns(self) -> MetricSpec:
        if self.type == "ratio":
            if not (self.numerator and self.denominator):
                raise ValueError(f"ratio metric '{self.name}' needs numerator and denominator")
            if self.covariate:
                raise ValueError(f"ratio metric '{self.name}' cannot take a CUPED covariate")
            if self.column:
                raise ValueError(
                    f"ratio metric '{self.name}' takes numerator/denominator, not column"
                )
        elif self.numerator or self.denominator:
            raise ValueError(
                f"{self.type} metric '{self.name}' takes column, not numerator/denominator"
            )
        return self

    @property
    def value_column(self) -> str:
        """The outcome column of a binary or continuous metric."""
        return self.column or self.name

    def columns(self) -> list[str]:
        """Every outcome column this metric reads."""
        if self.type == "ratio":
            return [str(self.numerator), str(self.denominator)]
        return [self.value_column, *([self.covariate] if self.covariate else [])]


class ArmPrice(_Strict):
    """What treating one unit with an arm costs."""

    contact: float = Field(0.0, ge=0, description="Per exposed unit.")
    per_conversion: float = Field(0.0, ge=0, description="Per unit that converts (redeems).")


class ProfitSpec(_Strict):
    """Net profit per unit = revenue - cost column - arm prices; compared between arms."""

    revenue: str = Field(min_length=1, description="Column with each unit's gross value.")
    cost: str | None = Field(None, description="Column with each unit's treatment cost.")
    arm_costs: dict[str, ArmPrice] = Field(default_factory=dict)
    conversion: str | None = Field(None, description="0/1 column that triggers per_conversion.")
    covariate: str | None = Field(None, description="Pre-period column for CUPED.")
    comparisons: list[tuple[str, str]] = Field(
        default_factory=list, description="(treatment, baseline) pairs; default: each vs control."
    )
    currency: str = ""

    @model_validator(mode="after")
    def _conversion(self) -> ProfitSpec:
        if any(p.per_conversion > 0 for p in self.arm_costs.values()) and not self.conversion:
            raise ValueError("per_conversion costs need the 'conversion' column")
        return self

    def columns(self) -> list[str]:
        return [c for c in (self.revenue, self.cost, self.conversion, self.covariate) if c]


class AnalysisConfig(_Strict):
    """Everything ``analyze`` needs besides the two tables."""

    experiment: str | None = Field(None, description="Keep exposures of this experiment only.")
    control: str = Field(min_length=1)
    arms: dict[str, float] | None = Field(
        None, description="Expected ratio of each arm (SRM check); order = report order."
    )
    alpha: float = Field(0.05, gt=0, lt=0.5)
    correction: Correction = "holm"
    srm_threshold: float = Field(DEFAULT_THRESHOLD, gt=0, lt=1)
    sequential_tuning: float = Field(DEFAULT_TUNING, gt=0)
    looks: int = Field(30, ge=1, le=1000, description="Time points of the sequential path.")
    metrics: list[MetricSpec] = Field(default_factory=list)
    segments: list[str] = Field(default_factory=list)
    max_segment_levels: int = Field(20, ge=2, le=200)
    profit: ProfitSpec | None = None
    missing_outcomes: Literal["zero", "error"] = Field(
        "zero", description="Exposed units without an outcome row: zero metrics, or an error."
    )

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisConfig:
        if not self.metrics and self.profit is None:
            raise ValueError("configure at least one metric or the profit")
        names = [m.name for m in self.metrics]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"metric names repeat: {', '.join(repeated)}")
        if "net_profit" in names and self.profit is not None:
            raise ValueError("'net_profit' is the profit's name; rename that metric")
        if self.arms is not None:
            if self.control not in self.arms:
                raise ValueError(f"control '{self.control}' is not among the arms")
            if any(r <= 0 for r in self.arms.values()):
                raise ValueError("expected arm ratios must be positive")
        if len(set(self.segments)) != len(self.segments):
            raise ValueError("segment columns repeat")
        numeric = {c for m in self.metrics for c in m.columns()}
        if self.profit is not None:
            numeric |= set(self.profit.columns())
        both = sorted(numeric & set(self.segments))
        if both:
            raise ValueError(f"column '{both[0]}' cannot be both a segment and a metric column")
        if self.profit is not None and "net_profit" in numeric:
            raise ValueError("the column name 'net_profit' is reserved for the computed profit")
        return self

    def outcome_columns(self) -> list[str]:
        """Every outcome-table column the analysis reads (besides unit_id), in first use order."""
        columns: list[str] = []
        for metric in self.metrics:
            columns += metric.columns()
        if self.profit is not None:
            columns += self.profit.columns()
        columns += self.segments
        return list(dict.fromkeys(columns))


def parse_config(payload: dict[str, Any], *, source: str) -> AnalysisConfig:
    """Validate a config mapping; the first problem becomes a UserError naming the field."""
    try:
        return AnalysisConfig.model_validate(payload)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise UserError(message, file=source, option=where) from None


def read_payload(path: str | Path, *, option: str | None = None) -> dict[str, Any]:
    """The top-level mapping of a YAML config file; a UserError naming the file otherwise."""
    return read_yaml_mapping(path, option=option)


def load_config(path: str | Path, **overrides: Any) -> AnalysisConfig:
    """Read a YAML config; non-None ``overrides`` replace its top-level keys."""
    payload = read_payload(path)
    payload.update({k: v for k, v in overrides.items() if v is not None})
    return parse_config(payload, source=str(path))


def dump_config(config: AnalysisConfig) -> str:
    """YAML text of a config (what ``from-world`` writes next to its tables)."""
    payload = config.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(payload, sort_keys=False)
