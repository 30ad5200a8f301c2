"""Two-sample differences in means: Welch's unequal-variance interval, absolute and relative.

Effects are always *treatment minus control* (``b - a``). Each formula is named in its
docstring with its source; docs/experiments.md lists them and the deliberate differences
from gbstats and statsmodels.
"""

from __future__ import annotations

import numpy as np

from liftwise.stats.arrays import Array, float_array
from liftwise.stats.estimate import Estimate, wald_estimate
from liftwise.stats.moments import Moments


def welch_dof(var_a: Array, n_a: Array, var_b: Array, n_b: Array) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom (Welch 1947):
    (v_a/n_a + v_b/n_b)^2 / ((v_a/n_a)^2/(n_a - 1) + (v_b/n_b)^2/(n_b - 1))."""
    var_a, n_a, var_b, n_b = map(float_array, (var_a, n_a, var_b, n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        sa, sb = var_a / n_a, var_b / n_b
        return (sa + sb) ** 2 / (sa * sa / (n_a - 1) + sb * sb / (n_b - 1))


def mean_difference(
    a: Moments, b: Moments, alpha: float = 0.05, *, normal: bool = False, null: float = 0.0
) -> Estimate:
    """Difference in means b - a with Welch's unequal-variance t interval (Welch 1947;
    = ``scipy.stats.ttest_ind(equal_var=False)``); ``normal=True`` uses z instead (the
    Wald z test of two proportions, statsmodels ``test_proportions_2indep(method='wald')``).

    Var = v_a / n_a + v_b / n_b.
    """
    n_a, n_b = float_array(a.n), float_array(b.n)
    var_a, var_b = float_array(a.variance), float_array(b.variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = var_a / n_a + var_b / n_b
    dof = np.inf if normal else welch_dof(var_a, n_a, var_b, n_b)
    return wald_estimate(float_array(b.mean) - float_array(a.mean), variance, dof, alpha, null)


def sample_mean_difference(
    control: np.ndarray, treatment: np.ndarray, alpha: float = 0.05, *, normal: bool = False
) -> Estimate:
    """Difference in means of two samples of per-unit values, ``treatment - control``, with
    Welch's (1 - alpha) interval: :func:`mean_difference` on their :class:`Moments`, so a
    caller holding raw values (a model card's observed effect on validation units) gets the
    same formula as an experiment. ``normal=True`` takes the normal quantile z_{1-alpha/2}
    instead of Student's t with Welch's degrees of freedom."""
    return mean_difference(
        Moments.from_values(control), Moments.from_values(treatment), alpha, normal=normal
    )


def relative_difference(
    a: Moments,
    b: Moments,
    alpha: float = 0.05,
    *,
    normal: bool = False,
    unadjusted_mean_a: Array | None = None,
    unadjusted_mean_b: Array | None = None,
) -> Estimate:
    """Relative lift (m_b - m_a) / m_a by the delta method (gbstats ``frequentist_variance``;
    Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics"):

        Var = v_b / (m_a^2 n_b) + v_a m_b^2 / (m_a^4 n_a)

    with Welch degrees of freedom (z with ``normal``). For CUPED, gbstats divides by the
    *unadjusted* control mean and uses the unadjusted means in the variance; pass them as
    ``unadjusted_mean_a`` / ``unadjusted_mean_b`` to do the same.
    """
    mean_a = float_array(a.mean if unadjusted_mean_a is None else unadjusted_mean_a)
    mean_b = float_array(b.mean if unadjusted_mean_b is None else unadjusted_mean_b)
    n_a, n_b = float_array(a.n), float_array(b.n)
    var_a, var_b = float_array(a.variance), float_array(b.variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.where(mean_a != 0, mean_a, np.nan)
        estimate = (float_array(b.mean) - float_array(a.mean)) / base
        variance = var_b / (base**2 * n_b) + var_a * mean_b**2 / (base**4 * n_a)
    dof = np.inf if normal else welch_dof(var_a, n_a, var_b, n_b)
    return wald_estimate(estimate, variance, dof, alpha)
