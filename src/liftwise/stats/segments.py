"""Segment deep-dive: the effect in every segment, whether segments differ, and who regresses.

A positive average can hide a segment that loses (premium customers annoyed by an offer,
say). Per segment we report the effect with its interval, Holm-adjusted p-values across
the segments, and flag a *regression* where the effect is significantly harmful after
that correction. Whether the effects differ at all is Cochran's Q test of heterogeneity
(Cochran 1954) with I^2 (Higgins & Thompson 2002) and the DerSimonian-Laird between-
segment variance tau^2 (DerSimonian & Laird 1986), the standard meta-analysis toolkit
applied to segments as independent strata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from liftwise.stats.estimate import Estimate
from liftwise.stats.multiple import holm


@dataclass(frozen=True)
class Heterogeneity:
    """Cochran's Q over the segments with a usable standard error, and what follows from it."""

    segments: int
    q: float
    dof: int
    p_value: float
    i_squared: float
    tau_squared: float
    pooled_estimate: float
    pooled_standard_error: float


def cochran_q(estimates: np.ndarray, standard_errors: np.ndarray) -> Heterogeneity:
    """Fixed-effect pooling and heterogeneity of independent estimates theta_i with
    standard errors s_i (weights w_i = 1 / s_i^2):

        pooled = sum w theta / sum w,  Q = sum w (theta - pooled)^2 ~ chi2(k - 1) under H0,
        I^2 = max(0, (Q - (k - 1)) / Q),
        tau^2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w))   (DerSimonian-Laird).
    """
    theta = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(standard_errors, dtype=np.float64)
    usable = np.isfinite(theta) & np.isfinite(se) & (se > 0)
    theta, weight = theta[usable], 1.0 / se[usable] ** 2
    k = int(theta.size)
    if k == 0:
        return Heterogeneity(0, np.nan, 0, np.nan, np.nan, np.nan, np.nan, np.nan)
    pooled = float((weight * theta).sum() / weight.sum())
    pooled_se = float(np.sqrt(1.0 / weight.sum()))
    if k < 2:
        return Heterogeneity(k, 0.0, 0, np.nan, 0.0, 0.0, pooled, pooled_se)
    q = float((weight * (theta - pooled) ** 2).sum())
    dof = k - 1
    i_squared = max(0.0, (q - dof) / q) if q > 0 else 0.0
    scale = weight.sum() - (weight**2).sum() / weight.sum()
    tau_squared = max(0.0, (q - dof) / scale)
    return Heterogeneity(
        segments=k,
        q=q,
        dof=dof,
        p_value=float(stats.chi2.sf(q, dof)),
        i_squared=i_squared,
        tau_squared=tau_squared,
        pooled_estimate=pooled,
        pooled_standard_error=pooled_se,
    )


@dataclass(frozen=True)
class Spread:
    """How far apart the segment effects lie: extremes, range and their standard deviation."""

    lowest: float
    lowest_segment: str
    highest: float
    highest_segment: str
    range: float
    sd: float


def spread(levels: list[str], estimates: np.ndarray) -> Spread:
    """Extremes, range and (unweighted, ddof = 1) standard deviation of the segment effects."""
    theta = np.asarray(estimates, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(theta))
    if finite.size == 0:
        return Spread(np.nan, "", np.nan, "", np.nan, np.nan)
    low = int(finite[np.argmin(theta[finite])])
    high = int(finite[np.argmax(theta[finite])])
    return Spread(
        lowest=float(theta[low]),
        lowest_segment=levels[low],
        highest=float(theta[high]),
        highest_segment=levels[high],
        range=float(theta[high] - theta[low]),
        sd=float(theta[finite].std(ddof=1)) if finite.size > 1 else 0.0,
    )


@dataclass(frozen=True)
class SegmentEffects:
    """One metric and comparison broken down by one segment column."""

    dimension: str
    levels: list[str]
    n_baseline: np.ndarray
    n_treatment: np.ndarray
    effect: Estimate  # vectorised over ``levels``
    holm_p_value: np.ndarray
    regressions: list[str]
    heterogeneity: Heterogeneity
    spread: Spread


def segment_effects(
    dimension: str,
    levels: list[str],
    effect: Estimate,
    n_baseline: np.ndarray,
    n_treatment: np.ndarray,
    *,
    higher_is_better: bool = True,
) -> SegmentEffects:
    """Holm-adjusted per-segment p-values, regressions (significantly harmful after the
    correction, in the metric's good direction), Cochran's Q and the spread."""
    estimates = np.asarray(effect.estimate, dtype=np.float64)
    adjusted = holm(np.asarray(effect.p_value, dtype=np.float64))
    harmful = estimates < 0 if higher_is_better else estimates > 0
    regressed = harmful & (adjusted < effect.alpha)
    return SegmentEffects(
        dimension=dimension,
        levels=list(levels),
        n_baseline=np.asarray(n_baseline),
        n_treatment=np.asarray(n_treatment),
        effect=effect,
        holm_p_value=adjusted,
        regressions=[level for level, bad in zip(levels, regressed, strict=True) if bad],
        heterogeneity=cochran_q(estimates, np.asarray(effect.standard_error, dtype=np.float64)),
        spread=spread(list(levels), estimates),
    )
