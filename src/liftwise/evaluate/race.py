"""The model race: fit candidate learners, score them with baselines on a validation split,
and pick the winner by Profit@K (with its bootstrap CI).

Every candidate ranks validation units by the expected net profit of its best arm
(:func:`~liftwise.evaluate.economics.expected_profit`); Profit@K is the inverse-propensity
estimate of the incremental net profit of treating the top K with their best arm
(:func:`~liftwise.evaluate.metrics.policy_profit_curve`). Per-arm AUUC, Qini and
uplift@k rank by the predicted effect, the usual way, in both normalisations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, field_validator

from liftwise.contracts.experiment import ExperimentFrame
from liftwise.errors import UserError
from liftwise.evaluate.bootstrap import Interval, bootstrap_ci
from liftwise.evaluate.economics import Economics, expected_profit
from liftwise.evaluate.metrics import (
    Curve,
    auuc,
    policy_profit_at_k,
    policy_profit_curve,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
    uplift_curve,
)
from liftwise.learn.base import UpliftLearner, outcome_kind
from liftwise.learn.registry import DEFAULT_RACE, check_learner_names, make_learner
from liftwise.params import Parameters

Progress = Callable[[str], None]


class RaceSettings(Parameters):
    """What the race optimises and how it measures it (ranges declared once, here)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    outcome: str
    economics: Economics
    learners: tuple[str, ...] = Field(default=DEFAULT_RACE, min_length=1)
    k: float = Field(default=0.3, gt=0, le=1)  # Profit@K at this share of validation units
    uplift_k: float = Field(default=0.3, gt=0, le=1)  # uplift@k for the per-arm table
    validation_fraction: float = Field(default=0.3, gt=0, lt=1)
    n_boot: int = Field(default=200, ge=2)
    seed: int = Field(default=0, ge=0)

    _known_learners = field_validator("learners")(check_learner_names)


@dataclass
class Candidate:
    """One contestant on the validation split: its profit scores and, for learners, effects."""

    name: str
    kind: str  # "learner" or "baseline"
    profit_scores: np.ndarray  # (n_val, K) expected incremental net profit per arm
    effects: np.ndarray | None = None  # (n_val, K) predicted effects (learners only)
    treat_limit: int | None = None  # a fixed policy treats at most this many units
    fit_seconds: float = 0.0
    model: UpliftLearner | None = None


@dataclass
class RaceResult:
    """The table, the curves for the plots, the winner and its refitted model."""

    table: pd.DataFrame
    policy_curves: dict[str, Curve]
    arm_curves: dict[str, dict[str, tuple[Curve, Curve]]]  # learner -> arm -> (uplift, qini)
    winner: str
    winner_model: UpliftLearner
    arms: tuple[str, ...]
    n_validation: int
    propensity: np.ndarray
    settings: RaceSettings
    extra: dict[str, object] = field(default_factory=dict)
    # The validation split as the race saw it, for slices computed later (model cards):
    validation_mask: np.ndarray | None = None  # (n_units,) frame rows held out for scoring
    winner_profit_scores: np.ndarray | None = None  # (n_val, K) winner's expected profit per arm
    winner_effects: np.ndarray | None = None  # (n_val, K) winner's predicted effect per arm

    @property
    def winner_row(self) -> pd.Series:
        """The winner's row of :attr:`table` (its Profit@K with CI and per-arm metrics)."""
        return self.table.loc[self.table["name"] == self.winner].iloc[0]


def split_by_arm(treatment: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean validation mask holding ``fraction`` of every arm (stratified, seeded)."""
    rng = np.random.default_rng([seed, 7])
    mask = np.zeros(len(treatment), dtype=bool)
    for arm in np.unique(treatment):
        members = np.flatnonzero(treatment == arm)
        chosen = rng.permutation(members)[: round(fraction * len(members))]
        mask[chosen] = True
    return mask


MIN_SPLIT_UNITS = 5  # units of every arm each side of the split needs to fit and score


def _check_split(treatment: np.ndarray, validation: np.ndarray, arms: Sequence[str]) -> None:
    """Both sides of the split hold every arm often enough to fit on and to score."""
    for side, mask in (("validation", validation), ("training", ~validation)):
        counts = np.bincount(treatment[mask], minlength=len(arms))
        if counts.min() < MIN_SPLIT_UNITS:
            arm = arms[int(counts.argmin())]
            raise UserError(
                f"the {side} split holds {counts.min()} units of arm '{arm}'; every arm needs "
                f"at least {MIN_SPLIT_UNITS} on each side",
                parameter="validation_fraction",
            )


def _fit(
    learner: UpliftLearner, name: str, X: np.ndarray, t: np.ndarray, y: np.ndarray
) -> UpliftLearner:
    """Fit one contestant; a learner that refuses these data (too few rows for its leaves,
    say) is one line naming it, so the user can drop it from the race."""
    try:
        return learner.fit(X, t, y)
    except ValueError as err:  # the learners' own input and size checks
        raise UserError(
            f"learner '{name}' cannot fit these {len(y):,} units: {err} (drop it from the race)",
            parameter="learners",
        ) from None


def run_race(
    frame: ExperimentFrame,
    settings: RaceSettings,
    *,
    current_policy: pd.Series | None = None,
    progress: Progress | None = None,
) -> RaceResult:
    """Run the race on an experiment frame; ``current_policy`` maps unit_id -> arm."""
    say = progress or (lambda _m: None)
    unknown = settings.economics.unknown_arms(frame.arms)
    if unknown:
        raise UserError(
            f"costs given for unknown arm(s) {unknown} (arms: {', '.join(frame.arms)})",
            parameter="costs",
        )
    X, t, y = frame.X(), frame.treatment_codes(), frame.y(settings.outcome)
    kind = outcome_kind(y)
    contact, redemption = settings.economics.arrays(frame.treatments)
    if kind == "continuous" and redemption.any():
        raise UserError(
            "redemption costs need a binary (converted) outcome to know who redeems",
            parameter="redemption",
        )
    validation = split_by_arm(t, settings.validation_fraction, settings.seed)
    _check_split(t, validation, frame.arms)
    propensity = np.bincount(t, minlength=len(frame.arms)) / len(t)  # randomised design
    design = tuple(float(p) for p in propensity)
    economics: dict[str, Any] = {
        "value_per_outcome": settings.economics.value_per_outcome,
        "contact_cost": contact,
        "redemption_cost": redemption,
    }
    candidates = []
    for name in settings.learners:
        say(f"fitting {name}")
        learner = make_learner(name, settings.seed, design)
        started = time.perf_counter()
        _fit(learner, name, X[~validation], t[~validation], y[~validation])
        seconds = time.perf_counter() - started
        outcomes = learner.predict_outcomes(X[validation])
        candidates.append(
            Candidate(
                name=name,
                kind="learner",
                profit_scores=expected_profit(outcomes, **economics),
                effects=outcomes[:, 1:] - outcomes[:, :1],
                fit_seconds=seconds,
                model=learner,
            )
        )
    unit_ids = frame.data["unit_id"].to_numpy()[validation]
    candidates.extend(_baselines(frame, unit_ids, settings.seed, current_policy))
    say("scoring")
    y_val, t_val = y[validation], t[validation]
    result_rows, policy_curves, arm_curves = [], {}, {}
    for candidate in candidates:
        row, curve = _policy_row(candidate, y_val, t_val, propensity, economics, settings)
        policy_curves[candidate.name] = curve
        if candidate.effects is not None:
            arm_rows, arm_curves[candidate.name] = _arm_metrics(
                candidate, y_val, t_val, frame.treatments, settings
            )
            row.update(arm_rows)
        result_rows.append(row)
    table = pd.DataFrame(result_rows)
    learners = table[table["kind"] == "learner"]
    if learners.empty:
        raise UserError("no learner in the race", parameter="learners")
    winner = str(
        learners.sort_values(["profit_at_k", "name"], ascending=[False, True]).iloc[0]["name"]
    )
    say(f"refitting winner {winner} on all units")
    model = _fit(make_learner(winner, settings.seed, design), winner, X, t, y)
    table.insert(2, "winner", table["name"] == winner)
    chosen = next(c for c in candidates if c.name == winner)
    return RaceResult(
        table=table,
        policy_curves=policy_curves,
        arm_curves=arm_curves,
        winner=winner,
        winner_model=model,
        arms=frame.arms,
        n_validation=int(validation.sum()),
        propensity=propensity,
        settings=settings,
        validation_mask=validation,
        winner_profit_scores=chosen.profit_scores,
        winner_effects=chosen.effects,
    )


def _baselines(
    frame: ExperimentFrame, unit_ids: np.ndarray, seed: int, current_policy: pd.Series | None
) -> list[Candidate]:
    """Random targeting, treat-everyone with each arm, and the current policy if known."""
    n, k = len(unit_ids), len(frame.treatments)
    rng = np.random.default_rng([seed, 11])
    out = [Candidate("random", "baseline", rng.random((n, k)))]
    for index, arm in enumerate(frame.treatments):
        scores = np.zeros((n, k))
        scores[:, index] = 1.0  # every unit gets this arm; all tied, so Profit@K scales with K
        out.append(Candidate(f"treat all: {arm}", "baseline", scores))
    if current_policy is not None:
        chosen = current_policy.reindex(unit_ids).fillna(frame.control).to_numpy()
        scores = np.full((n, k), -1.0)
        for index, arm in enumerate(frame.treatments):
            scores[chosen == arm, index] = 1.0
        treated = int((chosen != frame.control).sum())
        out.append(Candidate("current policy", "baseline", scores, treat_limit=treated))
    return out


def _policy_row(
    candidate: Candidate,
    y: np.ndarray,
    t: np.ndarray,
    propensity: np.ndarray,
    economics: dict[str, Any],
    settings: RaceSettings,
) -> tuple[dict[str, object], Curve]:
    """Profit@K with its bootstrap CI, the best K and its profit, for one candidate."""
    n = len(y)
    k = round(settings.k * n)
    limit = candidate.treat_limit

    def profit_at(yy: np.ndarray, tt: np.ndarray, ss: np.ndarray) -> float:
        kk = k if limit is None else min(k, round(limit * len(yy) / n))
        if kk == 0:
            return 0.0
        return policy_profit_at_k(yy, tt, ss, kk, propensity=propensity, **economics)

    curve = policy_profit_curve(y, t, candidate.profit_scores, propensity=propensity, **economics)
    if limit is not None:  # a fixed policy stops treating after its own units
        stop = np.searchsorted(curve.x, limit, side="right")
        curve = Curve(curve.x, np.where(curve.x <= limit, curve.y, curve.y[max(int(stop) - 1, 0)]))
    interval: Interval = bootstrap_ci(
        profit_at,
        y,
        t,
        candidate.profit_scores,
        n_boot=settings.n_boot,
        seed=settings.seed,
        stratify=t,
    )
    best_k, best_profit = curve.best()
    return {
        "name": candidate.name,
        "kind": candidate.kind,
        "profit_at_k": interval.estimate,
        "profit_at_k_low": interval.low,
        "profit_at_k_high": interval.high,
        "profit_per_1000_units": interval.estimate / n * 1000,
        "best_k": best_k,
        "max_profit": best_profit,
        "fit_seconds": round(candidate.fit_seconds, 2),
    }, curve


def _arm_metrics(
    candidate: Candidate,
    y: np.ndarray,
    t: np.ndarray,
    treatments: Sequence[str],
    settings: RaceSettings,
) -> tuple[dict[str, float], dict[str, tuple[Curve, Curve]]]:
    """Per arm: Qini, AUUC (both with a CI and in both normalisations) and uplift@k (with a
    CI); every CI is the stratified bootstrap of the race's settings."""
    assert candidate.effects is not None
    row: dict[str, float] = {}
    curves: dict[str, tuple[Curve, Curve]] = {}
    uplift_name = f"uplift@{settings.uplift_k:g}"
    for index, arm in enumerate(treatments, start=1):
        score = candidate.effects[:, index - 1]
        sample = (y, t, score, settings)
        row.update(_with_ci(f"qini[{arm}]", partial(qini_coefficient, arm=index), *sample))
        row[f"qini_causalml[{arm}]"] = qini_coefficient(
            y, t, score, arm=index, normalize="causalml"
        )
        row.update(_with_ci(f"auuc[{arm}]", partial(auuc, arm=index), *sample))
        row[f"auuc_causalml[{arm}]"] = auuc(y, t, score, arm=index, normalize="causalml")
        at_k = partial(_uplift_at, k=settings.uplift_k, arm=index)
        row.update(_with_ci(f"{uplift_name}[{arm}]", at_k, *sample))
        curves[arm] = (uplift_curve(y, t, score, arm=index), qini_curve(y, t, score, arm=index))
    return row, curves


def _uplift_at(y: np.ndarray, t: np.ndarray, score: np.ndarray, *, k: float, arm: int) -> float:
    return uplift_at_k(y, t, score, k, arm=arm)


def _with_ci(
    column: str,
    metric: Callable[..., float],
    y: np.ndarray,
    t: np.ndarray,
    score: np.ndarray,
    settings: RaceSettings,
) -> dict[str, float]:
    """``name[arm]`` with ``name_low[arm]`` and ``name_high[arm]`` from the race's bootstrap."""
    interval = bootstrap_ci(
        metric, y, t, score, n_boot=settings.n_boot, seed=settings.seed, stratify=t
    )
    name, _, arm = column.partition("[")
    return {
        column: interval.estimate,
        f"{name}_low[{arm}": interval.low,
        f"{name}_high[{arm}": interval.high,
    }


def winner_bundle(
    result: RaceResult, frame: ExperimentFrame, *, world: str | None = None, **metadata: object
):
    """The race winner, refitted on all units, packaged for scoring new units."""
    from liftwise.evaluate.bundle import ModelBundle

    row = result.winner_row
    return ModelBundle(
        learner=result.winner_model,
        learner_name=result.winner,
        features=frame.features,
        arms=frame.arms,
        outcome=result.settings.outcome,
        economics=result.settings.economics,
        world=world,
        id_column=frame.id_column,
        metadata={
            "trained_on": frame.source,
            "units": len(frame.data),
            "seed": result.settings.seed,
            "profit_at_k": float(row["profit_at_k"]),
            "profit_at_k_ci": [float(row["profit_at_k_low"]), float(row["profit_at_k_high"])],
            "k": result.settings.k,
            **metadata,
        },
    )
