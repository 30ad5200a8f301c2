"""The statistics core: pure functions of summary statistics, one named formula each.

Like GrowthBook's gbstats, this package imports nothing from the rest of liftwise (at most
:mod:`liftwise.errors`), so every stage that needs a test or an interval (experiments,
model cards, the coming rollout gates) calls the same formulas. Results are typed frozen
dataclasses; inputs are floats or arrays (one value per segment), element-wise.

- :mod:`arrays`: the float-or-array convention.
- :mod:`moments`: per-group summaries (:class:`~liftwise.stats.moments.Moments`,
  :class:`~liftwise.stats.moments.JointMoments`), pooling, ratio metrics (delta method).
- :mod:`estimate`: :class:`~liftwise.stats.estimate.Estimate` and the Wald construction.
- :mod:`welch`: difference in means (Welch t or z), relative lift (delta method).
- :mod:`proportions`: two proportions (Wald interval, pooled z test).
- :mod:`cuped`: variance reduction with a pre-period covariate.
- :mod:`power`: power, minimum detectable effect, sample size.
- :mod:`noninferiority`: the one-sided test of a guardrail.
- :mod:`sequential`: always-valid confidence sequences.
- :mod:`srm`: sample-ratio mismatch (chi-square; always-valid, for checks at every look).
- :mod:`multiple`: Holm and Benjamini-Hochberg corrections.
- :mod:`segments`: per-segment effects, heterogeneity, regressions.
- :mod:`profit`: net profit uplift of one arm over another.

docs/experiments.md lists the formulas with their sources and the deliberate differences
from gbstats and statsmodels.
"""
