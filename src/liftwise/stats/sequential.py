"""Always-valid confidence sequences, so an experiment can be watched every day.

A fixed-horizon 95% interval looked at after every batch of units excludes a true zero far
more often than 5% of the time ("peeking"). A confidence sequence covers the effect at
*every* look simultaneously with probability 1 - alpha. This is the asymptotic normal-
mixture confidence sequence of Howard, Ramdas, McAuliffe & Sekhon (2021) in the form of
Waudby-Smith, Arnold, Wu, Ramdas et al. (2023, arXiv:2103.06476 v7, eq. 9, 155 and 161),
exactly as GrowthBook's gbstats ``SequentialTwoSidedTTest`` computes it, so the two agree
on the same summary statistics.
"""

from __future__ import annotations

import numpy as np

from liftwise.stats.arrays import Array, float_array, scalar_or_array
from liftwise.stats.estimate import Estimate

DEFAULT_TUNING = 5000.0


def mixture_rho(alpha: float = 0.05, tuning: float = DEFAULT_TUNING) -> float:
    """Mixing standard deviation rho that makes the sequence tightest near ``tuning`` total
    units (Waudby-Smith et al. 2023, eq. 161):

        rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / n*

    n* (gbstats' ``sequential_tuning_parameter``, default 5000) is the sample size where
    the interval should be narrowest; any value keeps the coverage, only the width moves.
    """
    if not 0 < alpha < 1 or tuning <= 0:
        raise ValueError("need 0 < alpha < 1 and a positive tuning parameter")
    log_alpha = np.log(alpha)
    return float(np.sqrt((-2 * log_alpha + np.log(-2 * log_alpha + 1)) / tuning))


def half_width(
    variance: Array, n_total: Array, alpha: float = 0.05, tuning: float = DEFAULT_TUNING
) -> Array:
    """Half-width of the confidence sequence for an estimate with ``variance`` after
    ``n_total`` units in both arms (eq. 9), with s^2 = variance * N:

        s sqrt( 2 (N rho^2 + 1) ln( sqrt(N rho^2 + 1) / alpha ) / (N rho)^2 )
    """
    rho = mixture_rho(alpha, tuning)
    n, variance = float_array(n_total), float_array(variance)
    spread = n * rho**2 + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        width = np.sqrt(variance * n) * np.sqrt(
            2 * spread * np.log(np.sqrt(spread) / alpha) / (n * rho) ** 2
        )
    return scalar_or_array(width)


def always_valid_p_value(
    estimate: Array,
    variance: Array,
    n_total: Array,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    null: float = 0.0,
) -> Array:
    """Always-valid p-value, the inverse of the mixture e-value (eq. 155), capped at 1:

        p = min(1, sqrt(N rho^2 + 1) exp(-rho^2 S / (2 (N rho^2 + 1)))),
        S = (estimate - null)^2 N / variance

    p < alpha exactly when the sequence excludes ``null``.
    """
    rho2 = mixture_rho(alpha, tuning) ** 2
    n, variance = float_array(n_total), float_array(variance)
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = (float_array(estimate) - null) ** 2 * n / variance
        spread = n * rho2 + 1
        # 1 / e-value in logs: a decisive result underflows to 0 instead of overflowing
        log_p = 0.5 * np.log(spread) - rho2 * statistic / (2 * spread)
        p_value = np.exp(np.minimum(log_p, 0.0))
    return scalar_or_array(np.where(np.isfinite(statistic), p_value, np.nan))


def sequential_estimate(
    fixed: Estimate, n_total: Array, tuning: float = DEFAULT_TUNING
) -> Estimate:
    """The always-valid version of a fixed-horizon estimate: same point estimate and
    standard error, the confidence-sequence interval and the always-valid p-value."""
    variance = float_array(fixed.standard_error) ** 2
    width = float_array(half_width(variance, n_total, fixed.alpha, tuning))
    estimate = float_array(fixed.estimate)
    return Estimate(
        estimate=fixed.estimate,
        standard_error=fixed.standard_error,
        dof=scalar_or_array(np.full(np.shape(estimate), np.inf)),
        ci_low=scalar_or_array(estimate - width),
        ci_high=scalar_or_array(estimate + width),
        p_value=always_valid_p_value(estimate, variance, n_total, fixed.alpha, tuning, fixed.null),
        alpha=fixed.alpha,
        null=fixed.null,
    )
