"""Planning an experiment: power, minimum detectable effect and sample size.

Closed forms for the z test and the noncentral t for the t test, as statsmodels'
``NormalIndPower`` and ``TTestIndPower``; sizes and effects are roots of :func:`power`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import optimize, special, stats

Alternative = Literal["two-sided", "larger", "smaller"]
Test = Literal["z", "t"]


def power(
    effect: float,
    sd: float,
    n_control: float,
    *,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    test: Test = "z",
) -> float:
    """Power of the two-sample test of a mean difference ``effect`` with common standard
    deviation ``sd``, ``n_control`` units in control and ``ratio * n_control`` in treatment.

    z: Phi(d sqrt(m) - z_{1-a'}) [+ Phi(-d sqrt(m) - z_{1-a'}) two-sided], d = effect / sd,
    m = n_a n_b / (n_a + n_b), a' = alpha/2 two-sided (statsmodels ``NormalIndPower``);
    t: the same with the noncentral t, df = n_a + n_b - 2 (statsmodels ``TTestIndPower``;
    Cohen 1988, ch. 2).
    """
    d = effect / sd
    n_treatment = n_control * ratio
    m = 1.0 / (1.0 / n_control + 1.0 / n_treatment)
    shift = d * np.sqrt(m)
    tail = alpha / 2 if alternative == "two-sided" else alpha
    total = 0.0
    if test == "z":
        if alternative in ("two-sided", "larger"):
            total += stats.norm.sf(stats.norm.isf(tail) - shift)
        if alternative in ("two-sided", "smaller"):
            total += stats.norm.cdf(stats.norm.ppf(tail) - shift)
        return float(total)
    df = n_control + n_treatment - 2
    if alternative in ("two-sided", "larger"):
        total += 1 - special.nctdtr(df, shift, stats.t.isf(tail, df))
    if alternative in ("two-sided", "smaller"):
        total += special.nctdtr(df, shift, stats.t.ppf(tail, df))
    return float(total)


def _solve(function: Any, low: float, high: float) -> float:
    """Root of an increasing ``function`` on [low, high], expanding ``high`` as needed;
    ``low`` itself when the function is already >= 0 there (the target is met at once)."""
    if function(low) >= 0:
        return float(low)
    while function(high) < 0:
        low, high = high, high * 4
        if high > 1e15:
            raise ValueError("no solution below 1e15 (is the effect zero?)")
    return float(optimize.brentq(function, low, high, xtol=1e-12, rtol=4 * np.finfo(float).eps))


def sample_size(
    effect: float,
    sd: float,
    *,
    target_power: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    test: Test = "z",
) -> float:
    """Control-arm units needed to detect ``effect`` with ``target_power`` (treatment gets
    ``ratio`` times as many): the root in n of :func:`power`; round up to plan."""
    if effect == 0 or sd <= 0:
        raise ValueError("effect must be non-zero and sd positive")
    effect = abs(effect) if alternative == "two-sided" else effect

    def gap(n: float) -> float:
        return (
            power(effect, sd, n, ratio=ratio, alpha=alpha, alternative=alternative, test=test)
            - target_power
        )

    return _solve(gap, 2.0, 1e3)


def minimum_detectable_effect(
    sd: float,
    n_control: float,
    *,
    target_power: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    test: Test = "z",
) -> float:
    """Smallest absolute effect detected with ``target_power`` at this size: the root in
    the effect of :func:`power` (negative for ``alternative='smaller'``)."""
    sign = -1.0 if alternative == "smaller" else 1.0

    def gap(effect: float) -> float:
        return (
            power(
                sign * effect,
                sd,
                n_control,
                ratio=ratio,
                alpha=alpha,
                alternative=alternative,
                test=test,
            )
            - target_power
        )

    return sign * _solve(gap, 0.0, sd)


def proportion_sd(p: float) -> float:
    """Standard deviation sqrt(p (1 - p)) of a 0/1 metric, for planning with :func:`power`."""
    return float(np.sqrt(p * (1 - p)))
