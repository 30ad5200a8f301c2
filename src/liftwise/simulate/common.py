"""Building blocks shared by the worlds: seeded chunk RNGs, arms, seasonality, ground truth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import SupportsFloat

import numpy as np

from liftwise.contracts.manifest import CampaignSummary
from liftwise.errors import UserError
from liftwise.simulate.config import ArmConfig, WorldConfig

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000

# Effect thresholds that name a unit's latent class (documented in docs/worlds.md).
PERSUADABLE_MIN_EFFECT = 0.03
SLEEPING_DOG_MAX_EFFECT = -0.01
SURE_THING_MIN_BASELINE = 0.5
UNIT_TYPES = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")


def chunk_rng(seed: int, stream: int, chunk: int) -> np.random.Generator:
    """An independent generator per (seed, stream, chunk): output depends only on config."""
    return np.random.default_rng([seed, stream, chunk])


def resolve_arms(config: WorldConfig, defaults: Sequence[ArmConfig]) -> tuple[ArmConfig, ...]:
    """The configured arms (control first), checked against the arms the world can simulate."""
    if config.arms is None:
        return tuple(defaults)
    known = {a.name for a in defaults}
    for arm in config.arms:
        if arm.name not in known:
            raise UserError(
                f"unknown arm '{arm.name}' for world {config.world} (known: {', '.join(known)})",
                parameter="arms",
            )
    if config.arms[0].name != defaults[0].name:
        raise UserError(f"the first arm must be the control '{defaults[0].name}'", parameter="arms")
    return config.arms


def arms_columns(arms: Sequence[ArmConfig]) -> dict[str, list]:
    """Rows of the ``arms`` table."""
    return {
        "arm": [a.name for a in arms],
        "is_control": [i == 0 for i in range(len(arms))],
        "ratio": [a.ratio for a in arms],
        "contact_cost": [a.contact_cost for a in arms],
        "redemption_cost": [a.redemption_cost for a in arms],
        "description": [a.description for a in arms],
    }


def assign_arms(rng: np.random.Generator, n: int, arms: Sequence[ArmConfig]) -> np.ndarray:
    """Independent randomisation of ``n`` units to arm indices with the configured ratios."""
    ratios = np.array([a.ratio for a in arms], dtype=float)
    return rng.choice(len(arms), size=n, p=ratios / ratios.sum())


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def classify_units(baseline: np.ndarray, effects: np.ndarray) -> np.ndarray:
    """Latent class from the true effects (n, k) of the treatment arms and the baseline.

    sleeping dog: every arm hurts (best effect below -0.01); persuadable: some arm lifts the
    outcome by at least 0.03; sure thing: converts anyway (baseline >= 0.5); else lost cause.
    """
    best = effects.max(axis=1)
    labels = np.where(
        best < SLEEPING_DOG_MAX_EFFECT,
        "sleeping_dog",
        np.where(
            best >= PERSUADABLE_MIN_EFFECT,
            "persuadable",
            np.where(baseline >= SURE_THING_MIN_BASELINE, "sure_thing", "lost_cause"),
        ),
    )
    return labels.astype(object)


def day_cdf(start: dt.datetime, days: int, weekday_weights: np.ndarray | None) -> np.ndarray:
    """Cumulative day weights (length days + 1, starting at 0) for sampling days in a window."""
    if weekday_weights is None:
        weights = np.ones(days)
    else:
        weekdays = (start.weekday() + np.arange(days)) % 7
        weights = weekday_weights[weekdays]
    return np.concatenate([[0.0], np.cumsum(weights)])


def sample_days(
    rng: np.random.Generator, cdf: np.ndarray, first: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """One day index per event, in [first, last) of its unit, with the cdf's day weights."""
    lo, hi = cdf[first], cdf[last]
    target = lo + rng.random(len(first)) * (hi - lo)
    day = np.searchsorted(cdf, target, side="right") - 1
    return np.clip(day, first, last - 1)


def sample_hours(rng: np.random.Generator, n: int, hour_weights: np.ndarray | None) -> np.ndarray:
    """Hour of day per event: the world's profile in v2, uniform in v1."""
    if hour_weights is None:
        return rng.integers(0, 24, size=n)
    return rng.choice(24, size=n, p=hour_weights / hour_weights.sum())


def to_timestamps(origin: dt.datetime, offsets_us: np.ndarray) -> np.ndarray:
    """Naive microsecond timestamps ``origin + offsets``."""
    return np.datetime64(origin, "us") + offsets_us.astype("timedelta64[us]")


def ground_truth_columns(
    unit_ids: np.ndarray,
    arm_names: Sequence[str],
    expected_outcome: np.ndarray,
    expected_value: np.ndarray,
    outcome: np.ndarray,
    value: np.ndarray,
    unit_type: np.ndarray,
) -> dict[str, np.ndarray]:
    """Long ground-truth rows (unit-major, arms in order) from (n, k) potential outcomes."""
    n, k = expected_outcome.shape
    return {
        "unit_id": np.repeat(unit_ids, k),
        "arm": np.tile(np.asarray(arm_names, dtype=object), n),
        "expected_outcome": expected_outcome.reshape(-1),
        "expected_value": expected_value.reshape(-1),
        "outcome": outcome.reshape(-1).astype(np.int64),
        "value": value.reshape(-1),
        "unit_type": np.repeat(unit_type, k),
    }


def observed(matrix: np.ndarray, arm_index: np.ndarray) -> np.ndarray:
    """The column of each row's assigned arm: the observed outcome is the potential one."""
    return matrix[np.arange(len(arm_index)), arm_index]


def conditional_draw(rng: np.random.Generator, parent: np.ndarray, table: np.ndarray) -> np.ndarray:
    """One category per row from the probability row ``table[parent]`` (vectorised)."""
    cum = np.cumsum(table, axis=1)[parent]
    cum[:, -1] = 1.0
    return (rng.random(len(parent))[:, None] > cum).sum(axis=1)


def zipf_probabilities(n: int, exponent: float) -> np.ndarray:
    """P(rank r) proportional to r^-exponent over ranks 1..n."""
    weights = np.arange(1, n + 1, dtype=float) ** -exponent
    return weights / weights.sum()


def expected_net_profit(
    expected_value: np.ndarray, probability: np.ndarray, arms: Sequence[ArmConfig]
) -> np.ndarray:
    """(n, arms) expected value minus contact and expected redemption costs."""
    contact = np.array([a.contact_cost for a in arms])
    redemption = np.array([a.redemption_cost for a in arms])
    return expected_value - contact - redemption * probability


class CampaignTotals:
    """Running sums across chunks for the manifest's campaign summary (both worlds)."""

    def __init__(self, arms: Sequence[ArmConfig]) -> None:
        self.names = [a.name for a in arms]
        k = len(arms)
        self.types = dict.fromkeys(UNIT_TYPES, 0)
        self.assigned = np.zeros(k, dtype=np.int64)
        self.best = np.zeros(k, dtype=np.int64)
        self.policy = dict.fromkeys(self.names, 0)
        self.probability_sum = np.zeros(k)

    def add(
        self,
        unit_type: np.ndarray,
        arm: np.ndarray,
        probability: np.ndarray,
        net_profit: np.ndarray,
        policy: np.ndarray | None = None,
    ) -> None:
        """One chunk: latent types, assigned arm indices, (n, k) probabilities and expected
        net profits, and (when known per chunk) the current policy's arm names."""
        k = len(self.names)
        for name, count in zip(*np.unique(unit_type, return_counts=True), strict=True):
            self.types[str(name)] += int(count)
        if policy is not None:
            self.add_policy(policy)
        self.assigned += np.bincount(arm, minlength=k)
        self.best += np.bincount(net_profit.argmax(axis=1), minlength=k)
        self.probability_sum += probability.sum(axis=0)

    def add_policy(self, policy: np.ndarray) -> None:
        """Count the current policy's arms (for a chunk, or all units at once)."""
        for name, count in zip(*np.unique(policy, return_counts=True), strict=True):
            self.policy[str(name)] += int(count)

    def summary(self, units: int, **volumes: float) -> CampaignSummary:
        """The manifest's summary; ``volumes`` are the world's own event counts."""

        def share(count: SupportsFloat) -> float:
            return round(float(count) / units, 6)

        mean_p = self.probability_sum / units
        return CampaignSummary.model_validate(
            {
                "units": units,
                "unit_type_share": {k: share(v) for k, v in self.types.items()},
                "assigned_share": {
                    k: share(v) for k, v in zip(self.names, self.assigned, strict=True)
                },
                "best_arm_share": {k: share(v) for k, v in zip(self.names, self.best, strict=True)},
                "current_policy_share": {k: share(v) for k, v in self.policy.items()},
                "control_outcome_rate": round(float(mean_p[0]), 6),
                "true_average_effect": {
                    n: round(float(p - mean_p[0]), 6)
                    for n, p in zip(self.names[1:], mean_p[1:], strict=True)
                },
                **volumes,
            }
        )
