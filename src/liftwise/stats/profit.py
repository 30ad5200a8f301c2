"""Net profit uplift: what an arm earns over another once its treatments are paid for.

Per unit, net profit = revenue (margin, gross value) minus treatment cost; the uplift of
arm B over arm A is the difference in mean net profit per unit, with a Welch interval
(or CUPED, with a pre-period covariate), and its total over B's units: what B earned
over what A would have earned on the same units. The plan's success criterion, "net
profit uplift above the current policy with 95% confidence", is ``ci_low > 0`` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from liftwise.stats.cuped import cuped_difference
from liftwise.stats.estimate import Estimate
from liftwise.stats.moments import JointMoments, Moments
from liftwise.stats.welch import mean_difference


@dataclass(frozen=True)
class NetProfitUplift:
    """Mean net profit per unit of both arms and the uplift of ``treatment`` over
    ``baseline``: per unit with its interval, and in total over the treatment's units."""

    treatment: str
    baseline: str
    mean_treatment: float
    mean_baseline: float
    per_unit: Estimate
    treatment_units: int
    total: Estimate  # per_unit scaled by treatment_units
    cuped: bool

    @property
    def confident_gain(self) -> bool:
        """The success criterion: the whole (1 - alpha) interval lies above zero."""
        return bool(self.per_unit.ci_low > 0)


def _scaled(estimate: Estimate, factor: float) -> Estimate:
    return Estimate(
        estimate=float(estimate.estimate) * factor,
        standard_error=float(estimate.standard_error) * factor,
        dof=estimate.dof,
        ci_low=float(estimate.ci_low) * factor,
        ci_high=float(estimate.ci_high) * factor,
        p_value=estimate.p_value,
        alpha=estimate.alpha,
        null=estimate.null,
    )


def net_profit_uplift(
    treatment: str,
    baseline: str,
    treatment_moments: Moments | JointMoments,
    baseline_moments: Moments | JointMoments,
    alpha: float = 0.05,
) -> NetProfitUplift:
    """Uplift in net profit per unit, treatment minus baseline: Welch on plain moments,
    CUPED (pooled theta) when both are :class:`JointMoments` with a pre-period covariate."""
    if isinstance(treatment_moments, JointMoments) and isinstance(baseline_moments, JointMoments):
        per_unit = cuped_difference(baseline_moments, treatment_moments, alpha).absolute
        means = (float(treatment_moments.mean_y), float(baseline_moments.mean_y))
        n_treatment, cuped = treatment_moments.n, True
    elif isinstance(treatment_moments, Moments) and isinstance(baseline_moments, Moments):
        per_unit = mean_difference(baseline_moments, treatment_moments, alpha)
        means = (float(treatment_moments.mean), float(baseline_moments.mean))
        n_treatment, cuped = treatment_moments.n, False
    else:
        raise TypeError("both arms need the same kind of moments")
    units = int(n_treatment)
    return NetProfitUplift(
        treatment=treatment,
        baseline=baseline,
        mean_treatment=means[0],
        mean_baseline=means[1],
        per_unit=per_unit,
        treatment_units=units,
        total=_scaled(per_unit, units),
        cuped=cuped,
    )
