"""CUPED: a pre-period covariate removes the variance it explains from the effect estimate.

Deng, Xu, Kohavi & Walker (2013), computed as gbstats does: theta pooled over both arms,
Welch on the adjusted moments, the relative lift over the unadjusted control mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liftwise.stats.arrays import Array, float_array, scalar_or_array
from liftwise.stats.estimate import Estimate
from liftwise.stats.moments import JointMoments, Moments, pool
from liftwise.stats.welch import mean_difference, relative_difference


def cuped_theta(a: JointMoments, b: JointMoments) -> Array:
    """CUPED's theta pooled over both arms: Cov(y, x) / Var(x) on the union of the arms
    (Deng, Xu, Kohavi & Walker 2013; gbstats ``compute_theta``). Pooling keeps theta
    independent of the treatment, so the adjusted difference stays unbiased. 0 when the
    covariate or the outcome has no variance (no adjustment, as gbstats)."""
    joint = pool(a, b)
    var_x, var_y = float_array(joint.var_x), float_array(joint.var_y)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where((var_x > 0) & (var_y > 0), float_array(joint.cov) / var_x, 0.0)
    return scalar_or_array(theta)


def cuped_moments(j: JointMoments, theta: Array) -> Moments:
    """Per-arm CUPED moments: mean m_y - theta m_x and variance
    v_y + theta^2 v_x - 2 theta c (gbstats ``RegressionAdjustedStatistic``)."""
    theta = float_array(theta)
    return Moments(
        n=j.n,
        mean=scalar_or_array(float_array(j.mean_y) - theta * float_array(j.mean_x)),
        variance=scalar_or_array(
            float_array(j.var_y) + theta**2 * float_array(j.var_x) - 2 * theta * float_array(j.cov)
        ),
    )


@dataclass(frozen=True)
class CupedResult:
    """CUPED absolute and relative effects, theta and the variance kept vs the plain test."""

    absolute: Estimate
    relative: Estimate
    theta: Array
    variance_ratio: Array  # Var(CUPED effect) / Var(plain effect); theory: 1 - rho^2


def cuped_difference(a: JointMoments, b: JointMoments, alpha: float = 0.05) -> CupedResult:
    """CUPED difference b - a with pooled theta and a Welch interval on the adjusted
    moments; the relative lift divides by the unadjusted control mean (as gbstats)."""
    theta = cuped_theta(a, b)
    adjusted_a, adjusted_b = cuped_moments(a, theta), cuped_moments(b, theta)
    absolute = mean_difference(adjusted_a, adjusted_b, alpha)
    relative = relative_difference(
        adjusted_a, adjusted_b, alpha, unadjusted_mean_a=a.mean_y, unadjusted_mean_b=b.mean_y
    )
    plain = mean_difference(a.y_moments(), b.y_moments(), alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float_array(absolute.standard_error) ** 2 / float_array(plain.standard_error) ** 2
    return CupedResult(absolute, relative, theta, scalar_or_array(ratio))
