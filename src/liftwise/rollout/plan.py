"""The rollout plan: what replaces what, on which share of traffic, and what must be true
before each step.

A plan is a typed YAML file (docs/rollouts.md)::

    name: fintech-v4
    campaign: spring-2026                                  # liftwise serve --campaign
    candidate: {model_name: liftwise-fintech, version: 4}   # or {model_dir: DIR}
    baseline: {champion: liftwise-fintech}     # or {model_dir: DIR} or {decision_table: FILE}
    holdout: 0.05
    steps:
      - {name: canary, share: 0.01, min_seconds: 60, min_decisions: 500, min_outcomes: 300}
      - {name: ramp, share: 0.10}
      - {name: half, share: 0.50, business: uplift}
      - {name: full, share: 1.0}

A bad key is one line naming it (``steps[1].share``). ``share`` is the candidate's share
of the units that are not held out; it only grows from step to step, so ramping moves
units from the baseline to the candidate and never back (liftwise.rollout.split).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from liftwise.errors import UserError
from liftwise.io import read_yaml_mapping

NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
Gate = Literal["errors", "latency", "srm", "business"]
GATES: tuple[Gate, ...] = ("errors", "latency", "srm", "business")
Business = Literal["no_harm", "uplift", "none"]
OnMaxWait = Literal["pause", "abort"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Candidate(_Strict):
    """The new model: a registered version, or a model directory."""

    model_name: str | None = Field(None, min_length=1, description="Registered model name.")
    version: int | None = Field(None, ge=1, description="Its registered version.")
    model_dir: Path | None = Field(None, description="A ModelBundle directory (liftwise train).")

    @model_validator(mode="after")
    def _one_source(self) -> Candidate:
        registered = self.model_name is not None or self.version is not None
        if registered == (self.model_dir is not None):
            raise ValueError("give either model_name and version, or model_dir")
        if registered and (self.model_name is None or self.version is None):
            raise ValueError("a registered candidate needs both model_name and version")
        return self

    @property
    def description(self) -> str:
        if self.model_dir is not None:
            return f"model directory {self.model_dir}"
        return f"{self.model_name} v{self.version}"


class Baseline(_Strict):
    """What the candidate must beat: the registry's champion, a model directory, or the
    business's current policy as a decision table (unit_id, arm; units not in it get the
    control arm)."""

    champion: str | None = Field(None, min_length=1, description="Registered model name.")
    model_dir: Path | None = Field(None, description="A ModelBundle directory.")
    decision_table: Path | None = Field(None, description="CSV/Parquet of unit_id, arm.")

    @model_validator(mode="after")
    def _one_source(self) -> Baseline:
        given = [v for v in (self.champion, self.model_dir, self.decision_table) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of champion, model_dir and decision_table")
        return self

    @property
    def kind(self) -> Literal["champion", "model_dir", "decision_table"]:
        if self.champion is not None:
            return "champion"
        return "model_dir" if self.model_dir is not None else "decision_table"

    @property
    def description(self) -> str:
        if self.champion is not None:
            return f"champion of {self.champion}"
        if self.model_dir is not None:
            return f"model directory {self.model_dir}"
        return f"decision table {self.decision_table}"


class Thresholds(_Strict):
    """The operational and statistical limits every gate compares against."""

    max_error_rate: float = Field(
        0.001, ge=0, lt=1, description="Most 5xx + time-outs per decision, per variant."
    )
    max_p99_ms: float = Field(50.0, gt=0, description="Highest p99 latency over the step.")
    timeout_ms: float = Field(
        1000.0, gt=0, description="A decision slower than this counts as a time-out error."
    )
    srm_p_value: float = Field(
        0.001, gt=0, lt=1, description="Sample-ratio mismatch below this p-value fails."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Of the sequential intervals.")
    harm_tolerance: float = Field(
        0.0,
        ge=0,
        description="Net profit per unit the candidate may lose against the baseline before "
        "the business gate fails (currency units).",
    )
    sequential_tuning: float = Field(
        5000.0, gt=0, description="Units where the confidence sequence is tightest."
    )

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence


class Step(_Strict):
    """One step: the candidate's share and what must hold before the next one."""

    name: str = Field(pattern=NAME_PATTERN)
    share: float = Field(gt=0, le=1, description="Candidate share of non-holdout units.")
    min_seconds: float = Field(60.0, ge=0, description="Shortest time on this step.")
    min_decisions: int = Field(200, ge=0, description="Fewest decisions per variant.")
    min_outcomes: int = Field(
        300,
        ge=0,
        description="Fewest outcomes per compared variant before the business gate judges "
        "(fewer make the asymptotic interval falsely narrow: benchmarks/bench_rollout_gates.py).",
    )
    max_wait_seconds: float = Field(
        3600.0, gt=0, description="Longest wait for the minimums before on_max_wait."
    )
    gates: tuple[Gate, ...] = Field(GATES, description="Gates that must pass.")
    business: Business | None = Field(
        None,
        description="no_harm: the interval must not show harm beyond the tolerance; uplift: "
        "its lower bound must be above zero; default: uplift on the last step that still "
        "has baseline traffic, no_harm before it, none at share 1.",
    )

    @property
    def full(self) -> bool:
        return self.share >= 1.0


class RolloutPlan(_Strict):
    """A whole rollout (see the module docstring)."""

    name: str = Field(pattern=NAME_PATTERN, description="Rollout name (also the hash salt).")
    campaign: str = Field(
        "default",
        pattern=NAME_PATTERN,
        description="The served campaign (liftwise serve --campaign) this rollout runs in.",
    )
    candidate: Candidate
    baseline: Baseline
    holdout: float = Field(0.05, ge=0, lt=1, description="Share of units never treated.")
    salt: str | None = Field(None, min_length=1, description="Hash salt (default: name).")
    steps: tuple[Step, ...] = Field(min_length=1)
    thresholds: Thresholds = Thresholds()
    on_max_wait: OnMaxWait = Field("pause", description="When a step waits too long.")
    evaluate_seconds: float = Field(5.0, gt=0, le=300, description="Gate evaluation period.")

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        shares = [s.share for s in steps]
        if any(b <= a for a, b in itertools.pairwise(shares)):
            raise ValueError("step shares must increase (ramping never moves units back)")
        if any(s.full for s in steps[:-1]):
            raise ValueError("only the last step may have share 1")
        for step in steps:
            if step.full and step.business not in (None, "none"):
                raise ValueError(
                    f"step {step.name} has no baseline traffic (share 1): business must be none"
                )
        return steps

    @property
    def effective_salt(self) -> str:
        return self.salt if self.salt is not None else self.name

    def business(self, index: int) -> Business:
        """The business criterion of step ``index``, defaults resolved."""
        step = self.steps[index]
        if step.business is not None:
            return step.business
        if step.full:
            return "none"
        last_partial = max(i for i, s in enumerate(self.steps) if not s.full)
        return "uplift" if index == last_partial else "no_harm"

    def digest(self) -> str:
        """SHA-256 of the plan's canonical JSON: which plan a stored rollout runs."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<plan>"


def parse_plan(data: dict[str, object], *, source: str = "rollout plan") -> RolloutPlan:
    """A plan from a mapping; the first problem is one UserError naming its key."""
    try:
        return RolloutPlan.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(p for p in first["loc"] if not re.fullmatch(r"function-after\[.*\]", str(p)))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UserError(message, file=source, column=_location(loc)) from None


def load_plan(path: str | Path) -> RolloutPlan:
    """Read and check a plan file; relative paths in it are relative to the file."""
    path = Path(path)
    data = read_yaml_mapping(path)
    plan = parse_plan(data, source=str(path))
    return _resolve_paths(plan, path.parent)


def _resolve_paths(plan: RolloutPlan, base: Path) -> RolloutPlan:
    def absolute(value: Path | None) -> Path | None:
        return None if value is None or value.is_absolute() else base / value

    candidate = plan.candidate
    if candidate.model_dir is not None and not candidate.model_dir.is_absolute():
        candidate = candidate.model_copy(update={"model_dir": absolute(candidate.model_dir)})
    baseline = plan.baseline
    for key in ("model_dir", "decision_table"):
        value = getattr(baseline, key)
        if value is not None and not value.is_absolute():
            baseline = baseline.model_copy(update={key: absolute(value)})
    return plan.model_copy(update={"candidate": candidate, "baseline": baseline})
