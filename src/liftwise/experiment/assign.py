"""Deterministic, salted assignment of units to arms: no state, same answer everywhere.

The algorithm (docs/experiments.md has golden vectors):

1. The unit id becomes text: integers in decimal (``42``, also for ``42.0`` read from a
   CSV), strings as they are.
2. ``bucket(salt, id)`` = the first 8 bytes of SHA-256 of the UTF-8 bytes of
   ``f"{salt}:{id}"`` read as a big-endian unsigned 64-bit integer, shifted right by 11
   bits and divided by 2**53: a float in [0, 1) that is exact in binary64.
3. Holdout: a unit with ``bucket("holdout/<holdout_name>", id) < holdout`` is held out of
   every experiment that uses that holdout (same name, same units).
4. Layer: experiments in one layer (``bucket("layer/<layer>", id)``) take disjoint ranges
   [lo, hi) of it, so they never share a unit (mutually exclusive); experiments in other
   layers are independent of them.
5. Arm: with weights w_1..w_K (summing to 1) and coverage c, arm k owns
   [s_k, s_k + c w_k) of ``bucket(salt, id)`` where s_k = w_1 + ... + w_{k-1} (the
   range of the last arm ends at s_K + c (1 - s_K)). A unit outside every range is
   "not covered". Raising c only extends each range from its fixed start, so a unit
   never moves between arms (GrowthBook's ``getBucketRanges`` does the same).

Separate salts make the holdout, layer and arm draws independent: reusing one hash for
the layer and the arm would put the layer's slice of units into particular arms.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import stats

from liftwise.errors import UserError
from liftwise.hashing import bucket, buckets, unit_keys  # noqa: F401 (re-exported)

LAYER_PREFIX = "layer/"
HOLDOUT_PREFIX = "holdout/"
WEIGHT_TOLERANCE = 1e-6
_BATCH = 100_000

ASSIGNED, HOLDOUT, OUTSIDE_LAYER, NOT_COVERED = (
    "assigned",
    "holdout",
    "outside_layer",
    "not_covered",
)
STATUSES = (ASSIGNED, HOLDOUT, OUTSIDE_LAYER, NOT_COVERED)


def bucket_ranges(weights: Sequence[float], coverage: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of every arm's range of the unit interval (step 5)."""
    w = np.asarray(weights, dtype=np.float64)
    starts = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    nexts = np.concatenate([starts[1:], [1.0]])
    return starts, starts + coverage * (nexts - starts)


def arm_indices(values: np.ndarray, weights: Sequence[float], coverage: float) -> np.ndarray:
    """Index of the arm owning each bucket value, -1 where no arm covers it."""
    starts, ends = bucket_ranges(weights, coverage)
    index = np.searchsorted(starts, values, side="right") - 1
    index = np.clip(index, 0, len(starts) - 1)
    return np.where(values < ends[index], index, -1)


class Design(BaseModel):
    """One experiment's assignment: arms with weights, coverage, holdout and layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Experiment name; the default salt.")
    arms: dict[str, float] = Field(description="Arm -> weight, in order; weights sum to 1.")
    coverage: float = Field(1.0, gt=0, le=1, description="Share of eligible units enrolled.")
    salt: str | None = Field(None, description="Hash salt of the arm draw (default: name).")
    holdout: float = Field(0.0, ge=0, lt=1, description="Share of units held out of everything.")
    holdout_name: str = Field("global", min_length=1, description="Which holdout group.")
    layer: str | None = Field(None, description="Layer (namespace) for mutual exclusion.")
    layer_range: tuple[float, float] = Field((0.0, 1.0), description="[lo, hi) of the layer.")

    @field_validator("arms")
    @classmethod
    def _weights(cls, arms: dict[str, float]) -> dict[str, float]:
        if len(arms) < 1:
            raise ValueError("need at least one arm")
        if any(not name for name in arms):
            raise ValueError("arm names must be non-empty")
        if any(not w > 0 for w in arms.values()):
            raise ValueError("every arm weight must be > 0")
        total = sum(arms.values())
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(f"arm weights must sum to 1, they sum to {total:.6g}")
        return arms

    @model_validator(mode="after")
    def _ranges_and_salt(self) -> Design:
        lo, hi = self.layer_range
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"layer range must satisfy 0 <= lo < hi <= 1, got {lo}-{hi}")
        if self.effective_salt.startswith((LAYER_PREFIX, HOLDOUT_PREFIX)):
            raise ValueError(f"the salt must not start with {LAYER_PREFIX!r} or {HOLDOUT_PREFIX!r}")
        return self

    @property
    def effective_salt(self) -> str:
        return self.salt if self.salt is not None else self.name

    @property
    def arm_names(self) -> list[str]:
        return list(self.arms)


def assign_units(
    unit_ids: np.ndarray | Sequence[object],
    design: Design,
    *,
    source: str = "unit ids",
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Assign every unit: columns unit_id, experiment, arm (None unless assigned), status
    (assigned, holdout, outside_layer, not_covered) and bucket (the arm draw)."""
    ids = np.asarray(unit_ids)
    n = len(ids)
    status = np.full(n, ASSIGNED, dtype=object)
    arm = np.full(n, None, dtype=object)
    draws = np.empty(n, dtype=np.float64)
    names = np.asarray(design.arm_names, dtype=object)
    weights = list(design.arms.values())
    for start in range(0, n, _BATCH):
        part = slice(start, min(n, start + _BATCH))
        chunk = ids[part]
        draws[part] = buckets(design.effective_salt, chunk, source=source)
        local = np.full(len(chunk), ASSIGNED, dtype=object)
        if design.holdout > 0:
            held = (
                buckets(HOLDOUT_PREFIX + design.holdout_name, chunk, source=source) < design.holdout
            )
            local[held] = HOLDOUT
        if design.layer is not None:
            lo, hi = design.layer_range
            position = buckets(LAYER_PREFIX + design.layer, chunk, source=source)
            local[(local == ASSIGNED) & ((position < lo) | (position >= hi))] = OUTSIDE_LAYER
        index = arm_indices(draws[part], weights, design.coverage)
        local[(local == ASSIGNED) & (index < 0)] = NOT_COVERED
        enrolled = local == ASSIGNED
        chunk_arms = np.full(len(chunk), None, dtype=object)
        chunk_arms[enrolled] = names[index[enrolled]]
        status[part], arm[part] = local, chunk_arms
        if progress is not None:
            progress(len(chunk))
    return pd.DataFrame(
        {
            "unit_id": ids,
            "experiment": design.name,
            "arm": arm,
            "status": status,
            "bucket": draws,
        }
    )


def check_exclusive(designs: Sequence[Design]) -> None:
    """Raise a UserError if two experiments of one layer overlap, or if two experiments
    share a salt (their arm draws would be identical, not independent)."""
    salts: dict[str, str] = {}
    for design in designs:
        other = salts.setdefault(design.effective_salt, design.name)
        if other != design.name:
            raise UserError(
                f"experiments '{other}' and '{design.name}' share the salt "
                f"'{design.effective_salt}'; give each its own",
                parameter="salt",
            )
    by_layer: dict[str, list[Design]] = {}
    for design in designs:
        if design.layer is not None:
            by_layer.setdefault(design.layer, []).append(design)
    for layer, members in by_layer.items():
        ordered = sorted(members, key=lambda d: d.layer_range[0])
        for left, right in itertools.pairwise(ordered):
            if right.layer_range[0] < left.layer_range[1]:
                raise UserError(
                    f"experiments '{left.name}' and '{right.name}' overlap in layer '{layer}' "
                    f"({left.layer_range[0]}-{left.layer_range[1]} and "
                    f"{right.layer_range[0]}-{right.layer_range[1]})",
                    parameter="layer_range",
                )


@dataclass(frozen=True)
class Uniformity:
    """Pearson chi-square of bucket values against the uniform law over equal-width bins."""

    bins: int
    chi2: float
    dof: int
    p_value: float


def uniformity_check(values: np.ndarray, bins: int = 100) -> Uniformity:
    """Are bucket draws uniform on [0, 1)? Counts in ``bins`` equal bins vs n / bins each."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.bincount(np.minimum((values * bins).astype(np.int64), bins - 1), minlength=bins)
    result = stats.chisquare(counts)
    return Uniformity(
        bins=bins, chi2=float(result.statistic), dof=bins - 1, p_value=float(result.pvalue)
    )
