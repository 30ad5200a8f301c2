"""An effect estimate with its interval and p-value, and the Wald construction of one.

Every fixed-horizon test of :mod:`liftwise.stats` ends in :func:`wald_estimate`: an
estimate, its variance and degrees of freedom (``inf`` for a normal test) give the
interval estimate +- q se and the two-sided p-value, so interval and test always agree
(p < alpha exactly when the interval excludes the null).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import stats

from liftwise.stats.arrays import Array, float_array, scalar_or_array


@dataclass(frozen=True)
class Estimate:
    """An effect with standard error, degrees of freedom (``inf``: normal), two-sided
    (1 - alpha) confidence interval and p-value against ``null``."""

    estimate: Array
    standard_error: Array
    dof: Array
    ci_low: Array
    ci_high: Array
    p_value: Array
    alpha: float
    null: float = 0.0

    def take(self, index: Any) -> Estimate:
        """One element (or a slice) of a vectorised estimate."""
        values: dict[str, Any] = {
            f.name: scalar_or_array(np.asarray(getattr(self, f.name))[index])
            if f.name not in ("alpha", "null")
            else getattr(self, f.name)
            for f in fields(self)
        }
        return Estimate(**values)

    def as_dict(self) -> dict[str, float | None]:
        """Plain floats for JSON; NaN (no data, no variance) and dof = inf become None."""
        return {f.name: _json_float(getattr(self, f.name)) for f in fields(self)}

    @property
    def significant(self) -> bool:
        return bool(np.all(np.asarray(self.p_value) < self.alpha))


def _json_float(value: Any) -> float | None:
    """NaN (no data) and infinity (dof of a z test) become null in JSON."""
    value = float(value)
    return value if np.isfinite(value) else None


def quantile(probability: float, dof: Array) -> np.ndarray:
    """Student-t quantile; the exact normal quantile where ``dof`` is infinite."""
    dof = float_array(dof)
    with np.errstate(invalid="ignore"):
        t_quantile = stats.t.ppf(probability, np.where(np.isinf(dof), 1.0, dof))
    return np.where(np.isinf(dof), stats.norm.ppf(probability), t_quantile)


def survival(statistic: Array, dof: Array) -> np.ndarray:
    """P(T > statistic) for Student's t with ``dof`` (normal where ``dof`` is infinite)."""
    statistic, dof = float_array(statistic), float_array(dof)
    with np.errstate(invalid="ignore"):
        t_tail = stats.t.sf(statistic, np.where(np.isinf(dof), 1.0, dof))
    return np.where(np.isinf(dof), stats.norm.sf(statistic), t_tail)


def wald_estimate(
    estimate: Array, variance: Array, dof: Array = np.inf, alpha: float = 0.05, null: float = 0.0
) -> Estimate:
    """Wald interval estimate +- q se with q = t_{1 - alpha/2, dof}, and the two-sided
    p-value 2 P(T_dof > |estimate - null| / se). NaN where se is 0 or undefined."""
    estimate, variance = float_array(estimate), float_array(variance)
    dof = np.broadcast_to(float_array(dof), estimate.shape) if estimate.ndim else float_array(dof)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.where(variance > 0, variance, np.nan))
        width = quantile(1 - alpha / 2, dof) * se
        p_value = 2 * survival(np.abs(estimate - null) / se, dof)
    return Estimate(
        estimate=scalar_or_array(estimate),
        standard_error=scalar_or_array(se),
        dof=scalar_or_array(dof),
        ci_low=scalar_or_array(estimate - width),
        ci_high=scalar_or_array(estimate + width),
        p_value=scalar_or_array(np.minimum(p_value, 1.0)),
        alpha=alpha,
        null=null,
    )
