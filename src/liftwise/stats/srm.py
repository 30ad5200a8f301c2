"""Sample-ratio mismatch: do the arms hold the shares of units the design promised?

A mismatch means something between assignment and logging drops or duplicates units in one
arm (a redirect that loses users, a bot filter, a crash in one variant), and every effect
estimate is then suspect. The check is Pearson's chi-square goodness of fit of the arm
counts against the configured ratios (as GrowthBook's ``check_srm``), with GrowthBook's
strict threshold p < 0.001: run on every analysis, a 5% threshold would raise false alarms
on one experiment in twenty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

DEFAULT_THRESHOLD = 0.001
DEFAULT_CONCENTRATION = 100.0


@dataclass(frozen=True)
class SrmResult:
    """Observed and expected units per arm, the chi-square statistic and its verdict."""

    observed: dict[str, int]
    expected: dict[str, float]
    ratios: dict[str, float]
    chi2: float
    dof: int
    p_value: float
    threshold: float
    mismatch: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def srm_check(
    counts: Mapping[str, int],
    ratios: Mapping[str, float],
    threshold: float = DEFAULT_THRESHOLD,
) -> SrmResult:
    """Pearson chi-square of ``counts`` against ``ratios`` (normalised to sum to 1):
    X^2 = sum_k (o_k - e_k)^2 / e_k, e_k = N r_k, df = K - 1; mismatch when p < threshold.

    Every arm of ``ratios`` takes part, with 0 units if absent from ``counts``; an arm
    with units but no ratio, or a non-positive ratio, is a ``ValueError`` (the caller
    names the file).
    """
    unknown = sorted(set(counts) - set(ratios))
    if unknown:
        raise ValueError(f"arms without an expected ratio: {', '.join(map(str, unknown))}")
    if any(r <= 0 for r in ratios.values()):
        raise ValueError("every expected ratio must be positive")
    arms = list(ratios)
    observed = np.array([counts.get(arm, 0) for arm in arms], dtype=np.float64)
    weights = np.array([ratios[arm] for arm in arms], dtype=np.float64)
    weights = weights / weights.sum()
    total = observed.sum()
    expected = total * weights
    if total == 0 or len(arms) < 2:
        chi2, p_value = 0.0, 1.0
    else:
        chi2 = float(((observed - expected) ** 2 / expected).sum())
        p_value = float(stats.chi2.sf(chi2, len(arms) - 1))
    return SrmResult(
        observed={arm: int(o) for arm, o in zip(arms, observed, strict=True)},
        expected={arm: float(e) for arm, e in zip(arms, expected, strict=True)},
        ratios={arm: float(w) for arm, w in zip(arms, weights, strict=True)},
        chi2=chi2,
        dof=len(arms) - 1,
        p_value=p_value,
        threshold=threshold,
        mismatch=p_value < threshold,
    )


def sequential_srm_p_value(
    counts: Mapping[str, int],
    ratios: Mapping[str, float],
    concentration: float = DEFAULT_CONCENTRATION,
) -> float:
    """Always-valid p-value of the split, for checking it at every look (a rollout's
    gates every few seconds), where the chi-square test above, peeked at, raises false
    alarms: Lindon & Malek (2022), "Anytime-Valid Inference for Multinomial Count Data"
    (NeurIPS; Optimizely's ``ssrm-test``, savvi's ``Multinomial`` with k = 100).

    The Dirichlet(k r)-multinomial mixture over the likelihood at the ratios r,

        log BF = ln G(k) - ln G(k + n) + sum_i [ln G(k r_i + x_i) - ln G(k r_i)]
                 - sum_i x_i ln r_i,

    is a nonnegative martingale under the planned split, so (Ville's inequality)
    p = min(1, 1 / BF) falls below alpha at any look with probability at most alpha.
    ``ratios`` as in :func:`srm_check` (normalised, every arm positive).
    """
    if any(r <= 0 for r in ratios.values()) or concentration <= 0:
        raise ValueError("every expected ratio and the concentration must be positive")
    arms = list(ratios)
    x = np.array([counts.get(arm, 0) for arm in arms], dtype=np.float64)
    r = np.array([ratios[arm] for arm in arms], dtype=np.float64)
    r = r / r.sum()
    prior = concentration * r
    log_bf = (
        special.gammaln(concentration)
        - special.gammaln(concentration + x.sum())
        + float(np.sum(special.gammaln(prior + x) - special.gammaln(prior)))
        - float(np.sum(x * np.log(r)))
    )
    return float(np.exp(min(0.0, -log_bf)))
