"""The pure statistics against reference implementations, to 1e-9 where the formulas agree:
scipy (Welch, chi-square), statsmodels (proportions, power, Holm/BH, non-inferiority,
meta-analysis) and GrowthBook's gbstats (delta method, CUPED, sequential intervals) on the
same summary statistics. Deliberate differences are asserted as differences."""

from __future__ import annotations

import numpy as np
import pytest
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportions_ztest,
)
from statsmodels.stats.proportion import (
    test_proportions_2indep as proportions_2indep_test,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from liftwise.stats.cuped import cuped_difference
from liftwise.stats.moments import JointMoments, Moments, pool, proportion_moments, ratio_moments
from liftwise.stats.multiple import adjust, benjamini_hochberg, holm
from liftwise.stats.noninferiority import non_inferiority
from liftwise.stats.power import minimum_detectable_effect, power, sample_size
from liftwise.stats.proportions import pooled_proportion_ztest, proportion_difference
from liftwise.stats.segments import cochran_q, segment_effects
from liftwise.stats.sequential import (
    always_valid_p_value,
    half_width,
    mixture_rho,
    sequential_estimate,
)
from liftwise.stats.srm import srm_check
from liftwise.stats.welch import mean_difference, relative_difference, sample_mean_difference

TIGHT = {"rtol": 1e-9, "atol": 1e-12}


def samples(seed: int):
    """Two arms of skewed revenue-like data (y) with a correlated pre-period covariate (x);
    unequal sizes and variances, as in a real test."""
    rng = np.random.default_rng(seed)
    out = []
    for n, lift, spread in ((900 + 37 * seed, 0.0, 1.0), (1300 - 41 * seed, 0.15, 1.4)):
        x = rng.gamma(2.0, 20.0, n)
        y = 0.6 * x + spread * rng.gamma(1.5, 15.0, n) * (1 + lift)
        out.append((y, x))
    return out


def sample_stat(values):
    return SampleMeanStatistic(
        n=len(values), sum=float(values.sum()), sum_squares=float((values**2).sum())
    )


SEEDS = [0, 1, 2]


# --- classic tests: scipy and statsmodels ------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_welch_equals_scipy_and_statsmodels(seed):
    (ya, _), (yb, _) = samples(seed)
    ours = mean_difference(Moments.from_values(ya), Moments.from_values(yb), alpha=0.05)
    ref = stats.ttest_ind(yb, ya, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert np.allclose(ours.dof, ref.df, **TIGHT)
    assert np.allclose(ours.p_value, ref.pvalue, **TIGHT)
    assert np.allclose([ours.ci_low, ours.ci_high], [ci.low, ci.high], **TIGHT)
    assert np.allclose((ours.estimate) / ours.standard_error, ref.statistic, **TIGHT)
    compare = CompareMeans(DescrStatsW(yb), DescrStatsW(ya))
    low, high = compare.tconfint_diff(alpha=0.1, usevar="unequal")
    at_90 = mean_difference(Moments.from_values(ya), Moments.from_values(yb), alpha=0.1)
    assert np.allclose([at_90.ci_low, at_90.ci_high], [low, high], **TIGHT)
    # against a non-zero null as well
    shifted = mean_difference(Moments.from_values(ya), Moments.from_values(yb), null=2.0)
    assert np.allclose(shifted.p_value, compare.ttest_ind(usevar="unequal", value=2.0)[1], **TIGHT)


@pytest.mark.parametrize("seed", SEEDS)
def test_sample_mean_difference_is_welch_on_raw_values(seed):
    """The raw-values entry point (what a model card calls): Welch's t interval as scipy's,
    and with ``normal=True`` the z interval effect +- z_{1-alpha/2} se at any confidence."""
    (control, _), (treatment, _) = samples(seed)
    welch = sample_mean_difference(control, treatment, alpha=0.05)
    ci = stats.ttest_ind(treatment, control, equal_var=False).confidence_interval(0.95)
    assert np.allclose([welch.ci_low, welch.ci_high], [ci.low, ci.high], **TIGHT)
    se = np.sqrt(control.var(ddof=1) / control.size + treatment.var(ddof=1) / treatment.size)
    effect = treatment.mean() - control.mean()
    for alpha in (0.05, 0.2):
        z = sample_mean_difference(control, treatment, alpha=alpha, normal=True)
        half = stats.norm.ppf(1 - alpha / 2) * se
        assert np.allclose(
            [z.estimate, z.ci_low, z.ci_high], [effect, effect - half, effect + half], **TIGHT
        )
        assert np.isinf(z.dof)


def test_moments_from_sums_and_pooling_match_the_data():
    (ya, xa), (yb, xb) = samples(4)
    direct = Moments.from_values(ya)
    summed = Moments.from_sums(len(ya), ya.sum(), (ya**2).sum())
    assert np.allclose(
        [summed.n, summed.mean, summed.variance], [direct.n, direct.mean, direct.variance], **TIGHT
    )
    pooled = pool(JointMoments.from_values(ya, xa), JointMoments.from_values(yb, xb))
    y, x = np.concatenate([ya, yb]), np.concatenate([xa, xb])
    cov = np.cov(y, x, ddof=1)
    assert np.allclose(
        [pooled.n, pooled.mean_y, pooled.mean_x, pooled.var_y, pooled.var_x, pooled.cov],
        [y.size, y.mean(), x.mean(), cov[0, 0], cov[1, 1], cov[0, 1]],
        **TIGHT,
    )


@pytest.mark.parametrize(("xa", "na", "xb", "nb"), [(412, 5000, 475, 5100), (30, 200, 18, 260)])
def test_proportions_equal_statsmodels(xa, na, xb, nb):
    wald = proportion_difference(xa, na, xb, nb)
    low, high = confint_proportions_2indep(xb, nb, xa, na, method="wald", compare="diff")
    assert np.allclose([wald.ci_low, wald.ci_high], [low, high], **TIGHT)
    test = proportions_2indep_test(xb, nb, xa, na, method="wald", compare="diff")
    assert np.allclose(wald.p_value, test.pvalue, **TIGHT)
    z, p = pooled_proportion_ztest(xa, na, xb, nb)
    z_ref, p_ref = proportions_ztest([xb, xa], [nb, na])
    assert np.allclose([z, p], [z_ref, p_ref], **TIGHT)
    # the Wald test and the pooled test differ (deliberately reported as the Wald one)
    assert not np.isclose(wald.p_value, p, rtol=1e-6)


# --- gbstats: the same summary statistics ------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("difference", ["absolute", "relative"])
def test_mean_and_relative_difference_equal_gbstats(seed, difference):
    (ya, _), (yb, _) = samples(seed)
    ma, mb = Moments.from_values(ya), Moments.from_values(yb)
    ours = (mean_difference if difference == "absolute" else relative_difference)(ma, mb)
    ref = TwoSidedTTest(
        sample_stat(ya), sample_stat(yb), FrequentistConfig(difference_type=difference)
    ).compute_result()
    assert np.allclose(ours.estimate, ref.expected, **TIGHT)
    assert np.allclose([ours.ci_low, ours.ci_high], ref.ci, **TIGHT)
    assert np.allclose(ours.standard_error, ref.uplift.stddev, **TIGHT)
    assert np.allclose(ours.p_value, ref.p_value, rtol=1e-9, atol=1e-14)


def test_proportions_with_welch_dof_equal_gbstats():
    """gbstats tests proportions with Welch's t on p(1 - p); liftwise's default is the z
    (Wald) interval of statsmodels. With ``normal=False`` the two agree exactly."""
    a, b = proportion_moments(412, 5000), proportion_moments(475, 5100)
    ref_stats = ProportionStatistic(n=5000, sum=412), ProportionStatistic(n=5100, sum=475)
    for difference, function in (("absolute", mean_difference), ("relative", relative_difference)):
        ours = function(a, b)
        ref = TwoSidedTTest(
            *ref_stats, FrequentistConfig(difference_type=difference)
        ).compute_result()
        assert np.allclose([ours.ci_low, ours.ci_high], ref.ci, **TIGHT)
        assert np.allclose(ours.p_value, ref.p_value, **TIGHT)
        z = function(a, b, normal=True)
        assert z.ci_high - z.ci_low < ours.ci_high - ours.ci_low  # z is a hair narrower


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("difference", ["absolute", "relative"])
def test_ratio_metric_delta_method_equals_gbstats(seed, difference):
    rng = np.random.default_rng(seed)
    arms, refs = [], []
    for n, rate in ((3000, 0.2), (3200, 0.23)):
        orders = rng.poisson(rate * 5, n).astype(float)
        revenue = orders * rng.gamma(3.0, 10.0, n)
        arms.append(ratio_moments(JointMoments.from_values(revenue, orders)))
        refs.append(
            RatioStatistic(
                n=n,
                m_statistic=sample_stat(revenue),
                d_statistic=sample_stat(orders),
                m_d_sum_of_products=float((revenue * orders).sum()),
            )
        )
    assert np.allclose(arms[0].mean, refs[0].mean, **TIGHT)
    assert np.allclose(arms[0].variance, refs[0].variance, **TIGHT)
    ours = (mean_difference if difference == "absolute" else relative_difference)(*arms)
    ref = TwoSidedTTest(*refs, FrequentistConfig(difference_type=difference)).compute_result()
    assert np.allclose([ours.ci_low, ours.ci_high], ref.ci, **TIGHT)
    assert np.allclose(ours.p_value, ref.p_value, **TIGHT)


def regression_stats(y, x):
    return RegressionAdjustedStatistic(
        n=len(y),
        post_statistic=sample_stat(y),
        pre_statistic=sample_stat(x),
        post_pre_sum_of_products=float((y * x).sum()),
        theta=0,
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("difference", ["absolute", "relative"])
def test_cuped_equals_gbstats_regression_adjustment(seed, difference):
    (ya, xa), (yb, xb) = samples(seed)
    ours = cuped_difference(JointMoments.from_values(ya, xa), JointMoments.from_values(yb, xb))
    test = TwoSidedTTest(
        regression_stats(ya, xa),
        regression_stats(yb, xb),
        FrequentistConfig(difference_type=difference),
    )
    ref = test.compute_result()
    assert np.allclose(ours.theta, test.stat_a.theta, **TIGHT)
    # theta is pooled over both arms: the union's regression slope
    y, x = np.concatenate([ya, yb]), np.concatenate([xa, xb])
    assert np.allclose(ours.theta, np.cov(y, x)[0, 1] / x.var(ddof=1), **TIGHT)
    estimate = ours.absolute if difference == "absolute" else ours.relative
    assert np.allclose(estimate.estimate, ref.expected, **TIGHT)
    assert np.allclose([estimate.ci_low, estimate.ci_high], ref.ci, **TIGHT)
    assert np.allclose(estimate.p_value, ref.p_value, rtol=1e-9, atol=1e-14)


def test_cuped_without_covariate_variance_falls_back_to_the_plain_test():
    (ya, _), (yb, _) = samples(1)
    flat = (
        JointMoments.from_values(ya, np.ones_like(ya)),
        JointMoments.from_values(yb, np.ones_like(yb)),
    )
    result = cuped_difference(*flat)
    plain = mean_difference(Moments.from_values(ya), Moments.from_values(yb))
    assert result.theta == 0.0
    assert np.allclose(
        [result.absolute.ci_low, result.absolute.ci_high], [plain.ci_low, plain.ci_high], **TIGHT
    )
    assert np.isclose(result.variance_ratio, 1.0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("difference", ["absolute", "relative"])
@pytest.mark.parametrize("tuning", [5000.0, 200.0])
def test_sequential_interval_equals_gbstats(seed, difference, tuning):
    (ya, xa), (yb, xb) = samples(seed)
    config = SequentialConfig(difference_type=difference, sequential_tuning_parameter=tuning)
    function = mean_difference if difference == "absolute" else relative_difference
    fixed = function(Moments.from_values(ya), Moments.from_values(yb))
    ours = sequential_estimate(fixed, ya.size + yb.size, tuning)
    ref = SequentialTwoSidedTTest(sample_stat(ya), sample_stat(yb), config).compute_result()
    assert np.allclose([ours.ci_low, ours.ci_high], ref.ci, **TIGHT)
    assert np.allclose(ours.p_value, ref.p_value, **TIGHT)
    # and on CUPED-adjusted statistics
    cuped = cuped_difference(JointMoments.from_values(ya, xa), JointMoments.from_values(yb, xb))
    fixed = cuped.absolute if difference == "absolute" else cuped.relative
    ours = sequential_estimate(fixed, ya.size + yb.size, tuning)
    ref = SequentialTwoSidedTTest(
        regression_stats(ya, xa), regression_stats(yb, xb), config
    ).compute_result()
    assert np.allclose([ours.ci_low, ours.ci_high], ref.ci, **TIGHT)
    assert np.allclose(ours.p_value, ref.p_value, **TIGHT)


def test_sequential_interval_is_wider_and_consistent_with_its_p_value():
    (ya, _), (yb, _) = samples(0)
    fixed = mean_difference(Moments.from_values(ya), Moments.from_values(yb))
    seq = sequential_estimate(fixed, ya.size + yb.size)
    assert seq.ci_low < fixed.ci_low and seq.ci_high > fixed.ci_high
    # p < alpha exactly when the sequence excludes 0: at the null where the bound touches it
    n = ya.size + yb.size
    variance = fixed.standard_error**2
    edge = float(half_width(variance, n))
    assert np.isclose(always_valid_p_value(edge, variance, n), 0.05, rtol=1e-9)
    assert (
        always_valid_p_value(edge * 1.01, variance, n)
        < 0.05
        < always_valid_p_value(edge * 0.99, variance, n)
    )
    # the width is smallest, relative to the fixed interval, near the tuning size
    assert np.isclose(
        mixture_rho(0.05, 5000),
        SequentialTwoSidedTTest(sample_stat(ya), sample_stat(yb)).rho,
        **TIGHT,
    )


def test_srm_equals_gbstats_and_scipy():
    counts = {"control": 50_310, "a": 49_800, "b": 25_101}
    ratios = {"control": 0.4, "a": 0.4, "b": 0.2}
    ours = srm_check(counts, ratios)
    assert np.isclose(
        ours.p_value, check_srm(list(counts.values()), list(ratios.values())), **TIGHT
    )
    total = sum(counts.values())
    ref = stats.chisquare(list(counts.values()), [total * r for r in ratios.values()])
    assert np.isclose(ours.chi2, ref.statistic, **TIGHT) and ours.dof == 2
    # an arm with no units still counts (a crashing variant is the worst mismatch)
    missing = srm_check({"control": 1000}, {"control": 0.5, "a": 0.5})
    assert missing.mismatch and missing.observed == {"control": 1000, "a": 0}
    with pytest.raises(ValueError, match="without an expected ratio: z"):
        srm_check({"z": 3}, {"control": 1.0})


# --- multiplicity, power, guardrails, segments -------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_holm_and_bh_equal_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.05, 4), rng.uniform(0, 1, 12), [0.01, 0.01]])
    rng.shuffle(p)
    assert np.allclose(holm(p), multipletests(p, method="holm")[1], **TIGHT)
    assert np.allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], **TIGHT)
    with_nan = np.insert(p, [3, 7], np.nan)
    adjusted = adjust(with_nan, "holm")
    assert np.isnan(adjusted[[3, 8]]).all()
    assert np.allclose(adjusted[~np.isnan(with_nan)], holm(p), **TIGHT)
    assert np.array_equal(adjust(p, "none"), p)


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
@pytest.mark.parametrize("ratio", [1.0, 0.25, 3.0])
def test_power_equals_statsmodels(alternative, ratio):
    effect, sd, n = (0.12 if alternative != "smaller" else -0.12), 1.3, 900.0
    d = effect / sd
    normal = NormalIndPower().power(d, n, 0.05, ratio=ratio, alternative=alternative)
    t = TTestIndPower().power(d, n, 0.05, ratio=ratio, alternative=alternative)
    kwargs = {"ratio": ratio, "alternative": alternative}
    assert np.isclose(power(effect, sd, n, test="z", **kwargs), normal, **TIGHT)
    assert np.isclose(power(effect, sd, n, test="t", **kwargs), t, **TIGHT)


@pytest.mark.parametrize("test", ["z", "t"])
@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_sample_size_and_mde_equal_statsmodels(test, ratio):
    solver = NormalIndPower() if test == "z" else TTestIndPower()
    n_ref = solver.solve_power(effect_size=0.05, alpha=0.05, power=0.8, ratio=ratio)
    n = sample_size(0.05 * 2.0, 2.0, target_power=0.8, ratio=ratio, test=test)
    assert np.isclose(n, n_ref, rtol=1e-7)  # both solve numerically: 1e-7, not 1e-9
    # ... and the power at that size is the target, to 1e-9
    assert np.isclose(power(0.1, 2.0, n, ratio=ratio, test=test), 0.8, **TIGHT)
    d_ref = solver.solve_power(nobs1=5000, alpha=0.05, power=0.9, ratio=ratio)
    mde = minimum_detectable_effect(2.0, 5000, target_power=0.9, ratio=ratio, test=test)
    # statsmodels stops its effect-size search early (its power at its own root is off by
    # ~2e-7); ours solves to 1e-9 in power, so compare the roots to 1e-5 only
    assert np.isclose(mde / 2.0, d_ref, rtol=1e-5)
    assert np.isclose(power(mde, 2.0, 5000, ratio=ratio, test=test), 0.9, **TIGHT)
    ref_power = solver.power(d_ref, 5000, 0.05, ratio=ratio)
    assert abs(power(mde, 2.0, 5000, ratio=ratio, test=test) - 0.9) <= abs(ref_power - 0.9)
    # a huge effect needs the smallest sample there is rather than an error
    assert sample_size(100.0, 1.0, test=test) == 2.0


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_non_inferiority_equals_statsmodels_one_sided_welch(higher_is_better):
    (ya, _), (yb, _) = samples(2)
    fixed = mean_difference(Moments.from_values(ya), Moments.from_values(yb))
    margin = 5.0
    result = non_inferiority(
        fixed.estimate,
        fixed.standard_error,
        fixed.dof,
        margin,
        higher_is_better=higher_is_better,
    )
    compare = CompareMeans(DescrStatsW(yb), DescrStatsW(ya))
    if higher_is_better:
        _, p_ref, _ = compare.ttest_ind(alternative="larger", usevar="unequal", value=-margin)
        bound = compare.tconfint_diff(alpha=0.1, usevar="unequal")[0]
    else:
        _, p_ref, _ = compare.ttest_ind(alternative="smaller", usevar="unequal", value=margin)
        bound = compare.tconfint_diff(alpha=0.1, usevar="unequal")[1]
    assert np.isclose(result.p_value, p_ref, **TIGHT)
    assert np.isclose(result.bound, bound, **TIGHT)
    assert result.passed == (result.p_value < 0.05)
    # the treatment is better by ~10: non-inferior when higher is better, not when lower is
    assert result.passed is higher_is_better


def test_cochran_q_equals_statsmodels_meta_analysis():
    rng = np.random.default_rng(5)
    effects = rng.normal(0.2, 0.1, 9)
    se = rng.uniform(0.03, 0.08, 9)
    ours = cochran_q(effects, se)
    ref = combine_effects(effects, se**2, method_re="dl")
    assert np.isclose(ours.q, ref.q, **TIGHT)
    assert np.isclose(ours.i_squared, ref.i2, **TIGHT)
    assert np.isclose(ours.tau_squared, ref.tau2, **TIGHT)
    assert np.isclose(ours.pooled_estimate, ref.mean_effect_fe, **TIGHT)
    assert np.isclose(ours.pooled_standard_error, ref.sd_eff_w_fe, **TIGHT)
    assert np.isclose(ours.p_value, stats.chi2.sf(ref.q, 8), **TIGHT)
    # segments without a standard error are left out of the family
    with_gaps = cochran_q(np.append(effects, [1.0, np.nan]), np.append(se, [0.0, 0.1]))
    assert with_gaps.segments == 9 and np.isclose(with_gaps.q, ours.q, **TIGHT)


def test_segment_effects_flag_harm_after_holm_only():
    levels = [f"s{i}" for i in range(8)]
    estimate = np.array([0.05, 0.02, 0.6, -0.03, 0.01, 0.04, -0.9, -0.12])
    se = np.full(8, 0.05)
    effect = mean_difference(
        Moments(n=np.full(8, 1e4), mean=np.zeros(8), variance=np.full(8, 12.5)),
        Moments(n=np.full(8, 1e4), mean=estimate, variance=np.full(8, 12.5)),
    )
    assert np.allclose(effect.standard_error, se)
    result = segment_effects("band", levels, effect, np.full(8, 1e4), np.full(8, 1e4))
    assert result.regressions == ["s6"]  # s7: p = 0.016 alone, 0.098 after Holm
    assert result.holm_p_value[7] > 0.05 > float(effect.p_value[7])
    assert result.spread.lowest_segment == "s6" and result.spread.highest_segment == "s2"
    assert np.isclose(result.spread.range, 1.5)
    assert result.heterogeneity.p_value < 1e-6
    flipped = segment_effects(
        "band", levels, effect, np.full(8, 1e4), np.full(8, 1e4), higher_is_better=False
    )
    assert flipped.regressions == ["s2"]


# --- element-wise and degenerate inputs --------------------------------------------------


def test_vectorised_calls_equal_scalar_calls():
    rng = np.random.default_rng(9)
    n = rng.integers(50, 500, (2, 6)).astype(float)
    mean, var = rng.normal(10, 2, (2, 6)), rng.uniform(1, 5, (2, 6))
    a, b = Moments(n[0], mean[0], var[0]), Moments(n[1], mean[1], var[1])
    vector = relative_difference(a, b, alpha=0.1)
    for i in range(6):
        one = relative_difference(
            Moments(n[0, i], mean[0, i], var[0, i]), Moments(n[1, i], mean[1, i], var[1, i]), 0.1
        )
        assert vector.take(i) == one


def test_degenerate_inputs_give_nan_not_errors():
    empty = Moments.from_sums(0, 0.0, 0.0)
    one = Moments.from_sums(1, 3.0, 9.0)
    some = Moments.from_values(np.array([1.0, 2.0, 4.0]))
    for a, b in ((empty, some), (one, some), (some, Moments(5, 2.0, 0.0))):
        result = mean_difference(a, b)
        assert np.isnan(result.ci_low) or result.ci_low <= result.ci_high
    constant = mean_difference(Moments(5, 2.0, 0.0), Moments(5, 2.0, 0.0))
    assert np.isnan(constant.p_value) and np.isnan(constant.ci_low)
    assert constant.as_dict()["p_value"] is None and constant.as_dict()["dof"] is None
    zero_base = relative_difference(Moments(10, 0.0, 1.0), Moments(10, 1.0, 1.0))
    assert np.isnan(zero_base.estimate)
    assert np.isnan(ratio_moments(JointMoments.from_values(np.ones(4), np.zeros(4))).mean)


def test_always_valid_p_value_of_a_decisive_result_is_zero_without_overflow():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        assert always_valid_p_value(10.0, 1e-6, 1e7) == 0.0
        assert always_valid_p_value(0.0, 1.0, 100) == 1.0
