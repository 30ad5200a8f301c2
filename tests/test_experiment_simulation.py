"""Validation by simulation against the ground truth of a synthetic world.

The world (``fintech_world``, 30K customers) knows every unit's realised outcome under every
offer. An experiment draws units from it (with replacement: the world is the population
the interval is about), assigns them at random and measures; its true effect is the
population's mean difference (``truth.json`` of ``world_experiment``). Repeating that
many times checks what a single analysis cannot: the false-positive rate of A/A tests,
the coverage of the intervals, CUPED's variance reduction, peeking, and the SRM alarm.
Everything is vectorised over the replicates and seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from liftwise.experiment.analyze import analyze_tables
from liftwise.experiment.assign import Design, arm_indices, assign_units, buckets
from liftwise.experiment.world import design_offers, world_experiment
from liftwise.stats.cuped import cuped_difference
from liftwise.stats.moments import JointMoments, Moments, proportion_moments, ratio_moments
from liftwise.stats.multiple import holm
from liftwise.stats.sequential import half_width, sequential_estimate
from liftwise.stats.srm import srm_check
from liftwise.stats.welch import mean_difference, relative_difference

ALPHA = 0.05


@dataclass
class Population:
    """Potential outcomes per (design, arm): arrays over the world's units, and the truth."""

    pre_spend: np.ndarray
    pre_txn: np.ndarray
    outcomes: dict[tuple[str, str], dict[str, np.ndarray]]
    truth: dict[str, dict]
    campaign: object
    policy: object

    def arm(self, design: str, arm: str) -> dict[str, np.ndarray]:
        return {
            **self.outcomes[(design, arm)],
            "pre_spend": self.pre_spend,
            "pre_txn": self.pre_txn,
        }


@pytest.fixture(scope="module")
def population(fintech_world) -> Population:
    campaign = world_experiment(fintech_world, design="campaign", seed=1)
    policy = world_experiment(fintech_world, design="policy", seed=1)
    pre = campaign.outcomes.set_index("unit_id")
    units = pre.index.to_numpy()
    truth_table = fintech_world.read("ground_truth").set_index(["unit_id", "arm"])
    arms = pd.DataFrame([a.model_dump() for a in fintech_world.campaign.arms]).set_index("name")
    control = fintech_world.campaign.control
    outcomes = {}
    for design in ("campaign", "policy"):
        for arm, offer in design_offers(fintech_world, design, units=units).items():
            rows = truth_table.reindex(pd.MultiIndex.from_arrays([units, offer.to_numpy()]))
            converted = rows["outcome"].to_numpy(np.float64)
            margin = rows["value"].to_numpy(np.float64)
            price = arms.loc[offer.to_numpy()]
            cost = (
                price["contact_cost"].to_numpy() + price["redemption_cost"].to_numpy() * converted
            )
            cost[offer.to_numpy() == control] = 0.0
            outcomes[(design, arm)] = {
                "converted": converted,
                "margin": margin,
                "net": margin - cost,
            }
    return Population(
        pre_spend=pre["pre_spend_30d"].to_numpy(np.float64),
        pre_txn=pre["pre_txn_count_30d"].to_numpy(np.float64),
        outcomes=outcomes,
        truth={"campaign": campaign.truth, "policy": policy.truth},
        campaign=campaign,
        policy=policy,
    )


def test_potential_outcomes_reproduce_the_worlds_truth(population):
    """The populations below are the world's: their means are truth.json's, to the cent."""
    for design in ("campaign", "policy"):
        for arm, means in population.truth[design]["means"].items():
            mine = population.outcomes[(design, arm)]
            assert np.isclose(mine["converted"].mean(), means["converted_realised"], rtol=1e-12)
            assert np.isclose(mine["margin"].mean(), means["margin_vnd_realised"], rtol=1e-12)
            assert np.isclose(mine["net"].mean(), means["net_profit_realised"], rtol=1e-12)


# --- replicated experiments --------------------------------------------------------------


def arm_sums(values: dict[str, np.ndarray], member: np.ndarray) -> dict[str, np.ndarray]:
    """Per replicate (rows of ``member``) sums of every column and square over the member
    units; a 1-d column is the same population in every replicate."""
    weights = member.astype(np.float64)
    out = {"n": weights.sum(axis=1)}
    for name, v in values.items():
        out[name] = (v * weights).sum(axis=1)
        out[name + "^2"] = (v * v * weights).sum(axis=1)
    return out


# metric -> (outcome, covariate): CUPED pairs, and the ratio's numerator and denominator
PAIRS = {
    "margin": ("margin", "pre_spend"),
    "net": ("net", "pre_spend"),
    "converted": ("converted", "pre_txn"),
    "ratio": ("margin", "converted"),
}
Arms = dict[str, tuple[JointMoments, JointMoments]]


def split_moments(values: dict[str, np.ndarray], in_b: np.ndarray) -> Arms:
    """Joint moments of arm a (``~in_b``) and arm b per metric of :data:`PAIRS`, per
    replicate (rows of ``values`` and ``in_b``)."""
    out = {}
    for key, (y, x) in PAIRS.items():
        arms = []
        for member in (~in_b, in_b):
            s = arm_sums({y: values[y], x: values[x]}, member)
            cross = (values[y] * values[x] * member).sum(axis=1)
            arms.append(JointMoments.from_sums(s["n"], s[y], s[x], s[y + "^2"], s[x + "^2"], cross))
        out[key] = (arms[0], arms[1])
    return out


def concatenate(parts: list[Arms]) -> Arms:
    fields = list(JointMoments.__dataclass_fields__)
    return {
        key: tuple(
            JointMoments(
                *(np.concatenate([getattr(p[key][arm], f) for p in parts]) for f in fields)
            )
            for arm in (0, 1)
        )
        for key in PAIRS
    }


def replicate(
    population: Population,
    design: str,
    arms: tuple[str, str],
    *,
    units: int,
    seed: int,
    reps: int = 1_000,
) -> Arms:
    """``reps`` experiments of ``units`` units drawn with replacement from the world, each
    assigned to ``arms[0]`` or ``arms[1]`` with probability 1/2."""
    a, b = population.arm(design, arms[0]), population.arm(design, arms[1])
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, reps, 250):
        m = min(250, reps - start)
        index = rng.integers(0, a["margin"].size, (m, units))
        in_b = rng.random((m, units)) < 0.5
        parts.append(split_moments({k: np.where(in_b, b[k][index], a[k][index]) for k in a}, in_b))
    return concatenate(parts)


def covered(estimate, truth: float) -> np.ndarray:
    return (estimate.ci_low <= truth) & (truth <= estimate.ci_high)


def estimates(moments: dict[str, tuple[JointMoments, JointMoments]]) -> dict[str, object]:
    """Every estimator of the analysis, vectorised over the replicates."""
    (ma, mb), (na, nb) = moments["margin"], moments["net"]
    (ca, cb), (ra, rb) = moments["converted"], moments["ratio"]
    return {
        "margin (Welch)": mean_difference(ma.y_moments(), mb.y_moments()),
        "margin (CUPED)": cuped_difference(ma, mb).absolute,
        "margin (relative)": relative_difference(ma.y_moments(), mb.y_moments()),
        "net profit (Welch)": mean_difference(na.y_moments(), nb.y_moments()),
        "net profit (CUPED)": cuped_difference(na, nb).absolute,
        "converted (z)": mean_difference(
            proportion_moments(ca.mean_y * ca.n, ca.n),
            proportion_moments(cb.mean_y * cb.n, cb.n),
            normal=True,
        ),
        "converted (CUPED)": cuped_difference(ca, cb).absolute,
        "margin per converter (delta)": mean_difference(ratio_moments(ra), ratio_moments(rb)),
    }


def within_binomial_tolerance(hits: int, trials: int, p: float) -> bool:
    """Exact two-sided binomial test at 0.001: the tolerance of a fixed-seed simulation."""
    return stats.binomtest(hits, trials, p).pvalue > 0.001


def test_aa_false_positive_rate_over_1000_hashed_splits(population):
    """1,000 A/A tests: the same 5,000 customers (all under control) split 50/50 by
    liftwise's hash with 1,000 salts. Each test's false-positive rate at alpha = 0.05 lies
    in [3.5%, 6.5%]; Holm keeps the family's rate at or below it; the always-valid
    p-value is conservative at a single look."""
    rng = np.random.default_rng(7)
    chosen = rng.choice(population.pre_spend.size, 5_000, replace=False)
    control = {k: v[chosen] for k, v in population.arm("campaign", "control").items()}
    reps = 1_000
    in_b = np.empty((reps, chosen.size), dtype=bool)
    for i in range(reps):
        draw = buckets(f"aa-{i}", chosen)
        in_b[i] = arm_indices(draw, [0.5, 0.5], 1.0) == 1
    assert abs(in_b.mean() - 0.5) < 0.005
    moments = split_moments(control, in_b)  # one population, broadcast over the splits
    results = estimates(moments)
    rates = {name: float(np.mean(e.p_value < ALPHA)) for name, e in results.items()}
    for name, rate in rates.items():
        assert 0.035 <= rate <= 0.065, (name, rates)
    family = ["margin (CUPED)", "converted (CUPED)", "margin per converter (delta)"]
    p = np.column_stack([results[name].p_value for name in family])
    any_holm = np.mean([np.any(holm(row) < ALPHA) for row in p])
    any_raw = np.mean(np.any(p < ALPHA, axis=1))
    assert any_holm <= 0.065 and any_raw > any_holm
    n_total = moments["margin"][0].n + moments["margin"][1].n
    sequential = sequential_estimate(results["margin (CUPED)"], n_total)
    assert np.mean(sequential.p_value < ALPHA) < 0.02


@pytest.fixture(scope="module")
def campaign_replicates(population):
    """1,000 experiments of 6,000 customers: cashback_10 vs control."""
    moments = replicate(population, "campaign", ("control", "cashback_10"), units=6_000, seed=11)
    return moments, estimates(moments)


def test_intervals_cover_the_true_effect_95_percent_of_the_time(population, campaign_replicates):
    moments, results = campaign_replicates
    effect = population.truth["campaign"]["effects"]["cashback_10 vs control"]
    means = population.truth["campaign"]["means"]
    a = population.outcomes[("campaign", "control")]
    b = population.outcomes[("campaign", "cashback_10")]
    truth = {
        "margin (Welch)": effect["margin_vnd_realised"],
        "margin (CUPED)": effect["margin_vnd_realised"],
        "margin (relative)": effect["margin_vnd_realised"]
        / means["control"]["margin_vnd_realised"],
        "net profit (Welch)": effect["net_profit_realised"],
        "net profit (CUPED)": effect["net_profit_realised"],
        "converted (z)": effect["converted_realised"],
        "converted (CUPED)": effect["converted_realised"],
        "margin per converter (delta)": b["margin"].sum() / b["converted"].sum()
        - a["margin"].sum() / a["converted"].sum(),
    }
    coverage = {}
    for name, e in results.items():
        hits = covered(e, truth[name])
        coverage[name] = float(hits.mean())
        assert within_binomial_tolerance(int(hits.sum()), hits.size, 0.95), (name, coverage)
        # unbiased: the mean estimate is within 4 standard errors of the truth
        spread = np.std(e.estimate) / np.sqrt(e.estimate.size)
        assert abs(np.mean(e.estimate) - truth[name]) < 4 * spread, name
    # an interval that is too narrow (90% used as 95%) would fail the same check
    narrow = mean_difference(
        moments["margin"][0].y_moments(), moments["margin"][1].y_moments(), alpha=0.1
    )
    hits = int(covered(narrow, truth["margin (Welch)"]).sum())
    assert not within_binomial_tolerance(hits, 1_000, 0.95)


def test_policy_vs_current_policy_intervals_cover_the_truth(population):
    """The plan's design: net profit uplift of the policy over the current policy."""
    moments = replicate(population, "policy", ("current_policy", "policy"), units=4_000, seed=12)
    truth = population.truth["policy"]["effects"]["policy vs current_policy"]
    for name, target in (
        ("net profit (Welch)", truth["net_profit_realised"]),
        ("net profit (CUPED)", truth["net_profit_realised"]),
        ("converted (z)", truth["converted_realised"]),
    ):
        e = estimates(moments)[name]
        hits = covered(e, target)
        assert within_binomial_tolerance(int(hits.sum()), hits.size, 0.95), (name, hits.mean())


@pytest.mark.parametrize(("key", "covariate"), [("margin", "pre_spend"), ("converted", "pre_txn")])
def test_cuped_shrinks_the_variance_as_theory_predicts(
    population, campaign_replicates, key, covariate
):
    """Var(CUPED) / Var(plain) = Var(y - theta x) / Var(y) per arm with the pooled population
    slope theta (= 1 - rho^2 when both arms share rho): over 1,000 experiments, and as
    each analysis reports it."""
    moments, _ = campaign_replicates
    a = population.arm("campaign", "control")
    b = population.arm("campaign", "cashback_10")
    y = np.concatenate([a[key], b[key]])
    x = np.concatenate([a[covariate], b[covariate]])
    theta = np.cov(y, x)[0, 1] / x.var(ddof=1)
    predicted = (np.var(a[key] - theta * a[covariate]) + np.var(b[key] - theta * b[covariate])) / (
        np.var(a[key]) + np.var(b[key])
    )
    rho2 = np.corrcoef(y, x)[0, 1] ** 2
    assert abs(predicted - (1 - rho2)) < 0.02
    ja, jb = moments[key]
    cuped = cuped_difference(ja, jb)
    plain = mean_difference(ja.y_moments(), jb.y_moments())
    empirical = np.var(cuped.absolute.estimate) / np.var(plain.estimate)
    # a real reduction (10% for spend, 22% for conversions), measured to ~2% over 1,000
    # experiments, so a CUPED that did nothing (ratio 1) or too much would fail
    assert predicted < 0.95 and empirical < 0.95
    assert abs(empirical / predicted - 1) < 0.05, (empirical, predicted)
    assert abs(np.mean(cuped.variance_ratio) / predicted - 1) < 0.02
    assert np.all(cuped.variance_ratio < 1)


# --- peeking -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arms", "column", "target"),
    [
        (("control", "control"), "margin", "zero"),
        (("control", "cashback_10"), "net", "net_profit_realised"),
    ],
    ids=["A/A margin", "cashback_10 net profit"],
)
def test_sequential_intervals_survive_continuous_peeking(population, arms, column, target):
    """1,000 experiments of 10,000 customers, looked at after every 50: the always-valid
    interval excludes the truth at *any* look in at most alpha of them, the fixed-horizon
    interval far more often (the peeking problem)."""
    a = population.outcomes[("campaign", arms[0])][column]
    b = population.outcomes[("campaign", arms[1])][column]
    truth = (
        0.0
        if target == "zero"
        else population.truth["campaign"]["effects"][f"{arms[1]} vs {arms[0]}"][target]
    )
    rng = np.random.default_rng(21)
    reps, units, every = 1_000, 10_000, 50
    looks = np.arange(every, units + 1, every) - 1
    ever_fixed = ever_sequential = 0
    for _ in range(0, reps, 100):
        index = rng.integers(0, a.size, (100, units))
        in_b = rng.random((100, units)) < 0.5
        y = np.where(in_b, b[index], a[index])
        cells = []
        for member in (~in_b, in_b):
            w = member.astype(np.float64)
            cells.append(
                Moments.from_sums(
                    np.cumsum(w, axis=1)[:, looks],
                    np.cumsum(y * w, axis=1)[:, looks],
                    np.cumsum(y * y * w, axis=1)[:, looks],
                )
            )
        fixed = mean_difference(cells[0], cells[1])
        n_total = cells[0].n + cells[1].n
        width = half_width(np.asarray(fixed.standard_error) ** 2, n_total)
        missed_fixed = (fixed.ci_low > truth) | (fixed.ci_high < truth)
        missed_seq = np.abs(np.asarray(fixed.estimate) - truth) > width
        ever_fixed += int(np.any(missed_fixed, axis=1).sum())
        ever_sequential += int(np.any(missed_seq, axis=1).sum())
    assert ever_sequential / reps <= ALPHA
    assert ever_fixed / reps > 0.15


# --- sample-ratio mismatch ---------------------------------------------------------------


def test_srm_fires_on_a_planted_2_percent_imbalance_at_100k_units():
    """100,000 units assigned by the hash: 50/50 passes; a 51/49 split (the 2% imbalance a
    leaky redirect would plant) is flagged against the configured 50/50."""
    ids = np.arange(100_000)
    balanced = assign_units(ids, Design(name="srm", arms={"a": 0.5, "b": 0.5}))
    counts = balanced["arm"].value_counts().to_dict()
    assert not srm_check(counts, {"a": 0.5, "b": 0.5}).mismatch
    planted = assign_units(ids, Design(name="srm", arms={"a": 0.51, "b": 0.49}))
    result = srm_check(planted["arm"].value_counts().to_dict(), {"a": 0.5, "b": 0.5})
    assert result.mismatch and result.p_value < 1e-6
    # the same salt: only units near the boundary moved, from b to a
    moved = balanced["arm"] != planted["arm"]
    assert set(balanced.loc[moved, "arm"]) == {"b"} and 0.008 < moved.mean() < 0.012


def test_srm_stays_quiet_on_balanced_splits():
    """2,000 balanced three-arm experiments of 100,000 units: false alarms at about the
    threshold's rate (0.1%), not at 5%."""
    rng = np.random.default_rng(3)
    ratios = {"policy": 0.45, "current_policy": 0.45, "control": 0.10}
    draws = rng.multinomial(100_000, list(ratios.values()), size=2_000)
    alarms = sum(srm_check(dict(zip(ratios, row, strict=True)), ratios).mismatch for row in draws)
    assert alarms <= 8  # P(Binomial(2000, 0.001) > 8) < 0.001


def test_srm_in_the_analysis_blocks_the_verdict(population):
    """Drop 3% of one arm's exposures (a logging bug) in the world's policy experiment: the
    analysis flags the mismatch and withholds success."""
    experiment = population.policy
    exposures = experiment.exposures
    rng = np.random.default_rng(5)
    lost = (exposures["arm"] == "policy").to_numpy() & (rng.random(len(exposures)) < 0.03)
    clean = analyze_tables(
        pa.Table.from_pandas(exposures),
        pa.Table.from_pandas(experiment.outcomes),
        experiment.config,
    )
    broken = analyze_tables(
        pa.Table.from_pandas(exposures[~lost]),
        pa.Table.from_pandas(experiment.outcomes),
        experiment.config,
    )
    assert clean.srm is not None and not clean.srm.mismatch
    assert broken.srm is not None and broken.srm.mismatch
    assert broken.verdict()["srm_ok"] is False
    assert not any(v["success"] for v in broken.verdict()["profit"].values())


# --- the whole analysis on the world's experiments ---------------------------------------


def test_world_campaign_analysis_finds_the_true_effects(population):
    experiment = population.campaign
    result = analyze_tables(
        pa.Table.from_pandas(experiment.exposures),
        pa.Table.from_pandas(experiment.outcomes),
        experiment.config,
    )
    assert result.srm is not None and not result.srm.mismatch
    effects = population.truth["campaign"]["effects"]
    for c in result.comparisons:
        key = {"converted": "converted_realised", "margin_vnd": "margin_vnd_realised"}.get(c.metric)
        if key is None:
            continue
        truth = effects[f"{c.treatment} vs {c.baseline}"][key]
        assert abs(c.absolute.estimate - truth) < 4 * c.absolute.standard_error, c
        assert c.cuped and c.variance_ratio < 1
    for uplift in result.profit:
        truth = effects[f"{uplift.treatment} vs {uplift.baseline}"]["net_profit_realised"]
        assert abs(uplift.per_unit.estimate - truth) < 4 * uplift.per_unit.standard_error
        assert uplift.cuped


def test_world_policy_experiment_shows_the_policy_beats_the_current_policy(population):
    """Policy vs current policy vs no-contact control (45/45/10): the oracle policy's true
    gain over the current policy is large, and the analysis is confident about it."""
    experiment = population.policy
    result = analyze_tables(
        pa.Table.from_pandas(experiment.exposures),
        pa.Table.from_pandas(experiment.outcomes),
        experiment.config,
    )
    shares = {arm: n / sum(result.n_by_arm.values()) for arm, n in result.n_by_arm.items()}
    assert abs(shares["control"] - 0.10) < 0.01
    truth = population.truth["policy"]["effects"]["policy vs current_policy"]["net_profit_realised"]
    assert truth > 0
    uplift = next(
        p for p in result.profit if (p.treatment, p.baseline) == ("policy", "current_policy")
    )
    assert uplift.per_unit.ci_low <= truth <= uplift.per_unit.ci_high
    assert uplift.confident_gain
    assert uplift.total.estimate == pytest.approx(uplift.per_unit.estimate * uplift.treatment_units)
