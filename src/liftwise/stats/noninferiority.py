"""Guardrails: the one-sided non-inferiority test a guardrail metric must pass."""

from __future__ import annotations

from dataclasses import dataclass

from liftwise.stats.estimate import quantile, survival


@dataclass(frozen=True)
class NonInferiority:
    """One-sided non-inferiority test of a guardrail: passed when the one-sided (1 - alpha)
    bound stays within the margin."""

    estimate: float
    margin: float  # absolute, >= 0
    bound: float  # lower bound (higher is better) or upper bound (lower is better)
    p_value: float
    passed: bool
    higher_is_better: bool
    alpha: float


def non_inferiority(
    estimate: float,
    standard_error: float,
    dof: float,
    margin: float,
    *,
    higher_is_better: bool = True,
    alpha: float = 0.05,
) -> NonInferiority:
    """Non-inferiority at margin m (Schuirmann 1987; FDA 2016 guidance): for a metric where
    higher is better, H0: delta <= -m vs H1: delta > -m, t = (delta + m) / se, p = P(T > t),
    passed iff the lower (1 - alpha) bound delta - t_{1-alpha} se > -m; mirrored when
    lower is better. Several guardrails that must all pass need no multiplicity
    correction (an intersection-union test, Berger 1982)."""
    q = float(quantile(1 - alpha, dof))
    if higher_is_better:
        statistic, bound = (estimate + margin) / standard_error, estimate - q * standard_error
        passed = bound > -margin
    else:
        statistic, bound = (margin - estimate) / standard_error, estimate + q * standard_error
        passed = bound < margin
    p_value = float(survival(statistic, dof))
    return NonInferiority(
        estimate=float(estimate),
        margin=float(margin),
        bound=float(bound),
        p_value=p_value,
        passed=bool(passed),
        higher_is_better=higher_is_better,
        alpha=alpha,
    )
