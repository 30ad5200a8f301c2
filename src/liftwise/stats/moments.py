"""Summary statistics of one group: what every two-arm test in :mod:`liftwise.stats` reads.

Per-arm summaries (:class:`Moments`, :class:`JointMoments`) hold counts, means, variances
and covariances as floats or arrays (one value per segment). The thin constructors
``from_values`` / ``from_sums`` turn per-unit arrays or GrowthBook-style sums into them;
:func:`pool` merges two groups and :func:`ratio_moments` turns a ratio metric into
per-unit moments by the delta method, so the tests need not know where the numbers came
from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liftwise.stats.arrays import Array, float_array, scalar_or_array


@dataclass(frozen=True)
class Moments:
    """Count, mean and sample variance (ddof = 1) of one metric in one group.

    For a proportion the variance is p(1 - p) (:func:`proportion_moments`), as in
    statsmodels' Wald interval and gbstats' ``ProportionStatistic``.
    """

    n: Array
    mean: Array
    variance: Array

    @classmethod
    def from_values(cls, values: np.ndarray) -> Moments:
        values = float_array(values)
        n = values.size
        variance = float(values.var(ddof=1)) if n > 1 else np.nan
        return cls(n=float(n), mean=float(values.mean()) if n else np.nan, variance=variance)

    @classmethod
    def from_sums(cls, n: Array, total: Array, sum_squares: Array) -> Moments:
        """From n, sum and sum of squares (gbstats' ``SampleMeanStatistic`` inputs)."""
        n, total, sum_squares = float_array(n), float_array(total), float_array(sum_squares)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = total / n
            variance = np.where(n > 1, (sum_squares - total * total / n) / (n - 1), np.nan)
        return cls(
            n=scalar_or_array(n), mean=scalar_or_array(mean), variance=scalar_or_array(variance)
        )


def proportion_moments(successes: Array, n: Array) -> Moments:
    """Moments of a 0/1 metric: mean p = x / n, variance p (1 - p) (Bernoulli)."""
    successes, n = float_array(successes), float_array(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / n
    return Moments(
        n=scalar_or_array(n), mean=scalar_or_array(p), variance=scalar_or_array(p * (1 - p))
    )


@dataclass(frozen=True)
class JointMoments:
    """Moments of two metrics measured on the same units, plus their sample covariance.

    ``y`` is the outcome (CUPED) or the numerator (ratio metric); ``x`` the pre-period
    covariate (CUPED) or the denominator (ratio metric).
    """

    n: Array
    mean_y: Array
    mean_x: Array
    var_y: Array
    var_x: Array
    cov: Array

    @classmethod
    def from_values(cls, y: np.ndarray, x: np.ndarray) -> JointMoments:
        y, x = float_array(y), float_array(x)
        return cls.from_sums(y.size, y.sum(), x.sum(), (y * y).sum(), (x * x).sum(), (y * x).sum())

    @classmethod
    def from_sums(
        cls,
        n: Array,
        sum_y: Array,
        sum_x: Array,
        sum_yy: Array,
        sum_xx: Array,
        sum_xy: Array,
    ) -> JointMoments:
        """From the sums GrowthBook's SQL produces (``main_sum``, ``covariate_sum``, ...)."""
        n = float_array(n)
        sum_y, sum_x = float_array(sum_y), float_array(sum_x)
        with np.errstate(divide="ignore", invalid="ignore"):
            many = n > 1
            return cls(
                n=scalar_or_array(n),
                mean_y=scalar_or_array(sum_y / n),
                mean_x=scalar_or_array(sum_x / n),
                var_y=scalar_or_array(
                    np.where(many, (float_array(sum_yy) - sum_y * sum_y / n) / (n - 1), np.nan)
                ),
                var_x=scalar_or_array(
                    np.where(many, (float_array(sum_xx) - sum_x * sum_x / n) / (n - 1), np.nan)
                ),
                cov=scalar_or_array(
                    np.where(many, (float_array(sum_xy) - sum_y * sum_x / n) / (n - 1), np.nan)
                ),
            )

    def y_moments(self) -> Moments:
        return Moments(n=self.n, mean=self.mean_y, variance=self.var_y)


def pool(a: JointMoments, b: JointMoments) -> JointMoments:
    """Moments of the union of two groups (Chan, Golub & LeVeque 1979, pairwise update):
    M2 = M2_a + M2_b + d_y d_x n_a n_b / n for every (co)variance."""
    na, nb = float_array(a.n), float_array(b.n)
    n = na + nb
    dy = float_array(b.mean_y) - float_array(a.mean_y)
    dx = float_array(b.mean_x) - float_array(a.mean_x)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = na * nb / n

        def combine(var_a: Array, var_b: Array, cross: np.ndarray) -> np.ndarray:
            m2 = float_array(var_a) * (na - 1) + float_array(var_b) * (nb - 1) + cross * w
            return m2 / (n - 1)

        return JointMoments(
            n=scalar_or_array(n),
            mean_y=scalar_or_array(float_array(a.mean_y) + dy * nb / n),
            mean_x=scalar_or_array(float_array(a.mean_x) + dx * nb / n),
            var_y=scalar_or_array(combine(a.var_y, b.var_y, dy * dy)),
            var_x=scalar_or_array(combine(a.var_x, b.var_x, dx * dx)),
            cov=scalar_or_array(combine(a.cov, b.cov, dy * dx)),
        )


def ratio_moments(j: JointMoments) -> Moments:
    """A ratio metric sum(y) / sum(x) (e.g. margin per converter) as a per-unit mean with a
    delta-method variance (Deng et al. 2018, eq. for R = mean_y / mean_x; gbstats
    ``RatioStatistic``):

        Var_unit = v_y / m_x^2 - 2 c m_y / m_x^3 + m_y^2 v_x / m_x^4

    so that Var(R) = Var_unit / n, and every two-arm test above applies unchanged.
    """
    my, mx = float_array(j.mean_y), float_array(j.mean_x)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = np.where(mx != 0, mx, np.nan)
        variance = (
            float_array(j.var_y) / mx**2
            - 2 * float_array(j.cov) * my / mx**3
            + my**2 * float_array(j.var_x) / mx**4
        )
        return Moments(n=j.n, mean=scalar_or_array(my / mx), variance=scalar_or_array(variance))
