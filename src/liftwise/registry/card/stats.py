"""What the card computes: the race's metrics as performance metrics, and per segment of
the validation split the winner's Profit@K, uplift@k (bootstrap CIs), observed effect
(Welch interval from :mod:`liftwise.stats`) and mean predicted effect."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from liftwise.contracts.experiment import ExperimentFrame
from liftwise.errors import UserError
from liftwise.evaluate.bootstrap import bootstrap_ci, metric_with_ci
from liftwise.evaluate.metrics import policy_profit_at_k
from liftwise.evaluate.race import RaceResult
from liftwise.registry.card.schema import ConfidenceInterval, PerformanceMetric
from liftwise.stats.welch import sample_mean_difference

MIN_UNITS_PER_ARM = 20  # a segment slice needs this many validation units in every arm


def _interval(low: float, high: float) -> ConfidenceInterval:
    return ConfidenceInterval(lower_bound=float(low), upper_bound=float(high))


def overall_metrics(result: RaceResult) -> list[PerformanceMetric]:
    """The winner's Profit@K and, per arm, AUUC, Qini and uplift@k, each with its CI."""
    row = result.winner_row
    k = result.settings.k
    out = [
        PerformanceMetric(
            type="Profit@K",
            value=float(row["profit_at_k"]),
            confidence_interval=_interval(row["profit_at_k_low"], row["profit_at_k_high"]),
            threshold=f"K = {k:.0%} of units, best arm each",
            units=result.n_validation,
        )
    ]
    uplift = f"uplift@{result.settings.uplift_k:g}"
    for arm in result.arms[1:]:
        for column, label in (("auuc", "AUUC"), ("qini", "Qini"), (uplift, uplift)):
            low, high = row.get(f"{column}_low[{arm}]"), row.get(f"{column}_high[{arm}]")
            out.append(
                PerformanceMetric(
                    type=label,
                    value=float(row[f"{column}[{arm}]"]),
                    confidence_interval=None
                    if low is None or pd.isna(low)
                    else _interval(low, high),
                    arm=arm,
                    units=result.n_validation,
                )
            )
    return out


def baseline_metrics(result: RaceResult) -> list[PerformanceMetric]:
    """Profit@K of every other contestant, for scale."""
    return [
        PerformanceMetric(
            type=f"Profit@K, {row.kind}: {row.name}",
            value=float(row.profit_at_k),
            confidence_interval=_interval(row.profit_at_k_low, row.profit_at_k_high),
            threshold=f"K = {result.settings.k:.0%} of units",
            units=result.n_validation,
        )
        for row in result.table.itertuples()
        if row.name != result.winner
    ]


def align_segments(segments: pd.Series, frame: ExperimentFrame) -> np.ndarray:
    """Segment label per frame row: ``segments`` either shares the frame's index (row
    aligned) or is indexed by unit id."""
    data = frame.data
    if segments.index.equals(data.index):
        return segments.to_numpy(dtype=object)
    labels = segments.reindex(data["unit_id"].to_numpy())
    if labels.isna().any():
        missing = data["unit_id"].to_numpy()[labels.isna().to_numpy()][0]
        raise UserError(
            f"no segment for unit_id {missing}: pass a Series aligned with the frame's rows "
            "or indexed by unit_id",
            column=str(segments.name or "segment"),
        )
    return labels.to_numpy(dtype=object)


@dataclass(frozen=True)
class ValidationUnits:
    """The race's validation split, one entry per unit: outcome, arm code, the winner's
    expected profit and predicted effect per treatment arm, and the unit's segment."""

    y: np.ndarray
    t: np.ndarray
    profit: np.ndarray  # (n_val, K)
    effects: np.ndarray  # (n_val, K)
    labels: np.ndarray

    def take(self, rows: np.ndarray) -> ValidationUnits:
        return ValidationUnits(
            self.y[rows], self.t[rows], self.profit[rows], self.effects[rows], self.labels[rows]
        )


def validation_units(
    result: RaceResult, frame: ExperimentFrame, segments: pd.Series
) -> ValidationUnits:
    """The validation split as the race saw it, with each unit's segment label."""
    mask, profit, effects = (
        result.validation_mask,
        result.winner_profit_scores,
        result.winner_effects,
    )
    if mask is None or profit is None or effects is None:
        raise UserError("this race result has no validation predictions (rerun the race)")
    return ValidationUnits(
        y=frame.y(result.settings.outcome)[mask],
        t=frame.treatment_codes()[mask],
        profit=profit,
        effects=effects,
        labels=align_segments(segments, frame)[mask],
    )


def segment_slices(
    result: RaceResult, frame: ExperimentFrame, segments: pd.Series
) -> tuple[list[PerformanceMetric], list[str]]:
    """Per segment of the validation split: the winner's Profit@K, and per arm its
    uplift@k (bootstrap CIs), the observed effect (normal CI) and the mean predicted
    effect. Segments too small to measure are listed in the returned notes."""
    units = validation_units(result, frame, segments)
    name = str(segments.name or "segment")
    out: list[PerformanceMetric] = []
    notes: list[str] = []
    for label in sorted({str(v) for v in units.labels}):
        rows = np.array([str(v) == label for v in units.labels])
        per_arm = np.bincount(units.t[rows], minlength=len(frame.arms))
        where = f"{name}={label}"
        if per_arm.min() < MIN_UNITS_PER_ARM:
            notes.append(
                f"Slice {where} not measured: {int(rows.sum())} validation units, fewer than "
                f"{MIN_UNITS_PER_ARM} in some arm."
            )
            continue
        out += slice_metrics(result, frame, units.take(rows), where)
    return out, notes


def slice_metrics(
    result: RaceResult, frame: ExperimentFrame, units: ValidationUnits, where: str
) -> list[PerformanceMetric]:
    """One slice's Profit@K (the K share of its own units), then per treatment arm its
    uplift@k, observed effect and mean predicted effect."""
    settings = result.settings
    n = len(units.y)
    profit_at = partial(_profit_at, k=max(1, round(settings.k * n)), money=_money(result, frame))
    n_boot, seed = settings.n_boot, settings.seed
    interval = bootstrap_ci(
        profit_at, units.y, units.t, units.profit, n_boot=n_boot, seed=seed, stratify=units.t
    )
    out = [
        PerformanceMetric(
            type="Profit@K",
            value=interval.estimate,
            slice=where,
            confidence_interval=_interval(interval.low, interval.high),
            threshold=f"K = {settings.k:.0%} of the slice's units",
            units=n,
        )
    ]
    for index, arm in enumerate(frame.treatments, start=1):
        effect = units.effects[:, index - 1]
        uplift = metric_with_ci(
            "uplift_at_k",
            units.y,
            units.t,
            effect,
            n_boot=n_boot,
            seed=seed,
            k=settings.uplift_k,
            arm=index,
        )
        observed = observed_effect(units.y, units.t, index)
        common: dict[str, Any] = {"slice": where, "arm": arm, "units": n}
        out += [
            PerformanceMetric(
                type=f"uplift@{settings.uplift_k:g}",
                value=uplift.estimate,
                confidence_interval=_interval(uplift.low, uplift.high),
                **common,
            ),
            PerformanceMetric(
                type="observed effect (difference in means)",
                value=observed.value,
                confidence_interval=observed.confidence_interval,
                **common,
            ),
            PerformanceMetric(type="mean predicted effect", value=float(effect.mean()), **common),
        ]
    return out


def _money(result: RaceResult, frame: ExperimentFrame) -> dict[str, Any]:
    """The race's value model as ``policy_profit_at_k`` keywords."""
    economics = result.settings.economics
    contact, redemption = economics.arrays(frame.treatments)
    return {
        "value_per_outcome": economics.value_per_outcome,
        "contact_cost": contact,
        "redemption_cost": redemption,
        "propensity": result.propensity,
    }


def _profit_at(
    y: np.ndarray, t: np.ndarray, scores: np.ndarray, *, k: int, money: dict[str, Any]
) -> float:
    return policy_profit_at_k(y, t, scores, min(k, len(y)), **money)


@dataclass(frozen=True)
class ObservedEffect:
    value: float
    confidence_interval: ConfidenceInterval | None  # None without variance in either arm


def observed_effect(y: np.ndarray, t: np.ndarray, arm: int) -> ObservedEffect:
    """Difference in mean outcome, arm minus control, with the statistics core's 95% Welch
    interval on the normal quantile (``liftwise.stats.welch.sample_mean_difference``)."""
    estimate = sample_mean_difference(y[t == 0], y[t == arm], 0.05, normal=True)
    low, high = float(estimate.ci_low), float(estimate.ci_high)
    interval = _interval(low, high) if np.isfinite(low) and np.isfinite(high) else None
    return ObservedEffect(float(estimate.estimate), interval)
