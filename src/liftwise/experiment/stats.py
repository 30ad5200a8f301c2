"""Fixed-horizon statistics of a two-arm comparison, as pure functions of summary statistics.

Every function takes per-arm summaries (:class:`Moments`, :class:`JointMoments`) and works
element-wise on NumPy arrays as well as on floats, so one call analyses every segment at
once. The thin constructors ``from_values`` / ``from_sums`` turn per-unit arrays or
GrowthBook-style sums into those summaries. Effects are always *treatment minus control*
(``b - a``). Each formula is named in its docstring with its source; docs/experiments.md
lists them and the deliberate differences from gbstats and statsmodels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from scipy import optimize, special, stats

Array = np.ndarray | float
Alternative = Literal["two-sided", "larger", "smaller"]


def float_array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def scalar_or_array(value: np.ndarray) -> Array:
    """0-d results come back as plain floats, the rest as arrays."""
    return float(value) if np.ndim(value) == 0 else value


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
        values = {
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


# --- power, minimum detectable effect and sample size ---------------------------------

Test = Literal["z", "t"]


def power(
    effect: float,
    sd: float,
    n_control: float,
    *,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    test: Test = "z",
) -> float:
    """Power of the two-sample test of a mean difference ``effect`` with common standard
    deviation ``sd``, ``n_control`` units in control and ``ratio * n_control`` in treatment.

    z: Phi(d sqrt(m) - z_{1-a'}) [+ Phi(-d sqrt(m) - z_{1-a'}) two-sided], d = effect / sd,
    m = n_a n_b / (n_a + n_b), a' = alpha/2 two-sided (statsmodels ``NormalIndPower``);
    t: the same with the noncentral t, df = n_a + n_b - 2 (statsmodels ``TTestIndPower``;
    Cohen 1988, ch. 2).
    """
    d = effect / sd
    n_treatment = n_control * ratio
    m = 1.0 / (1.0 / n_control + 1.0 / n_treatment)
    shift = d * np.sqrt(m)
    tail = alpha / 2 if alternative == "two-sided" else alpha
    total = 0.0
    if test == "z":
        if alternative in ("two-sided", "larger"):
            total += stats.norm.sf(stats.norm.isf(tail) - shift)
        if alternative in ("two-sided", "smaller"):
            total += stats.norm.cdf(stats.norm.ppf(tail) - shift)
        return float(total)
    df = n_control + n_treatment - 2
    if alternative in ("two-sided", "larger"):
        total += 1 - special.nctdtr(df, shift, stats.t.isf(tail, df))
    if alternative in ("two-sided", "smaller"):
        total += special.nctdtr(df, shift, stats.t.ppf(tail, df))
    return float(total)


def _solve(function: Any, low: float, high: float) -> float:
    """Root of an increasing ``function`` on [low, high], expanding ``high`` as needed;
    ``low`` itself when the function is already >= 0 there (the target is met at once)."""
    if function(low) >= 0:
        return float(low)
    while function(high) < 0:
        low, high = high, high * 4
        if high > 1e15:
            raise ValueError("no solution below 1e15 (is the effect zero?)")
    return float(optimize.brentq(function, low, high, xtol=1e-12, rtol=4 * np.finfo(float).eps))


def sample_size(
    effect: float,
    sd: float,
    *,
    target_power: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    test: Test = "z",
) -> float:
    """Control-arm units needed to detect ``effect`` with ``target_power`` (treatment gets
    ``ratio`` times as many): the root in n of :func:`power`; round up to plan."""
    if effect == 0 or sd <= 0:
        raise ValueError("effect must be non-zero and sd positive")
    effect = abs(effect) if alternative == "two-sided" else effect

    def gap(n: float) -> float:
        return (
            power(effect, sd, n, ratio=ratio, alpha=alpha, alternative=alternative, test=test)
            - target_power
        )

    return _solve(gap, 2.0, 1e3)


def minimum_detectable_effect(
    sd: float,
    n_control: float,
    *,
    target_power: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    test: Test = "z",
) -> float:
    """Smallest absolute effect detected with ``target_power`` at this size: the root in
    the effect of :func:`power` (negative for ``alternative='smaller'``)."""
    sign = -1.0 if alternative == "smaller" else 1.0

    def gap(effect: float) -> float:
        return (
            power(
                sign * effect,
                sd,
                n_control,
                ratio=ratio,
                alpha=alpha,
                alternative=alternative,
                test=test,
            )
            - target_power
        )

    return sign * _solve(gap, 0.0, sd)


def proportion_sd(p: float) -> float:
    """Standard deviation sqrt(p (1 - p)) of a 0/1 metric, for planning with :func:`power`."""
    return float(np.sqrt(p * (1 - p)))


# --- guardrails ------------------------------------------------------------------------


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
