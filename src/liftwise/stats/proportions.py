"""Two proportions compared: the Wald interval of their difference and the pooled z test."""

from __future__ import annotations

import numpy as np
from scipy import stats

from liftwise.stats.arrays import Array, float_array, scalar_or_array
from liftwise.stats.estimate import Estimate
from liftwise.stats.moments import proportion_moments
from liftwise.stats.welch import mean_difference


def proportion_difference(
    successes_a: Array, n_a: Array, successes_b: Array, n_b: Array, alpha: float = 0.05
) -> Estimate:
    """Difference of two proportions p_b - p_a, Wald z with unpooled variance
    p_a(1 - p_a)/n_a + p_b(1 - p_b)/n_b (statsmodels ``confint_proportions_2indep(method=
    'wald')``), so that p < alpha exactly when the interval excludes 0."""
    return mean_difference(
        proportion_moments(successes_a, n_a),
        proportion_moments(successes_b, n_b),
        alpha,
        normal=True,
    )


def pooled_proportion_ztest(
    successes_a: Array, n_a: Array, successes_b: Array, n_b: Array
) -> tuple[Array, Array]:
    """The textbook two-proportion z test with the pooled proportion under H0 (z, two-sided
    p); equals statsmodels ``proportions_ztest`` (sign: b - a). A test only: its variance
    is not that of the estimate, so the Wald interval is reported alongside."""
    xa, na, xb, nb = map(float_array, (successes_a, n_a, successes_b, n_b))
    pooled = (xa + xb) / (na + nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (xb / nb - xa / na) / np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    return scalar_or_array(z), scalar_or_array(2 * stats.norm.sf(np.abs(z)))
