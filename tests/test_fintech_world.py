"""The fintech world: determinism, realism, ground truth and the randomised campaign."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from liftwise.contracts.manifest import Manifest
from liftwise.contracts.validate import validate_world
from liftwise.errors import UserError
from liftwise.simulate import World, WorldConfig, fintech, load_world, policy_value, simulate
from liftwise.simulate.truth import expected_net_matrix, oracle_policy


def _hashes(manifest: Manifest) -> dict[str, str]:
    return {name: entry.sha256 for name, entry in manifest.tables.items()}


def test_same_arguments_give_identical_files_and_another_seed_does_not(tmp_path):
    config = WorldConfig(world="fintech", units=3_000, days=20, seed=5, chunk_units=1_000)
    first = simulate(config, tmp_path / "a")
    second = simulate(config, tmp_path / "b")
    other = simulate(config.model_copy(update={"seed": 6}), tmp_path / "c")
    assert _hashes(first) == _hashes(second)
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (
        tmp_path / "b" / "manifest.json"
    ).read_bytes()
    assert _hashes(first)["payments"] != _hashes(other)["payments"]


def test_world_satisfies_every_contract(fintech_world: World):
    report = validate_world(fintech_world.path)
    assert report.ok, [v.one_line() for v in report.violations[:10]]
    assert report.rows_checked["customers"] == 30_000
    assert report.rows_checked["ground_truth"] == 30_000 * 4


def test_manifest_records_world_seed_sizes_schemas_and_hashes(fintech_world: World):
    manifest = fintech_world.manifest
    assert manifest.world == "fintech" and manifest.seed == 11
    assert manifest.sizes["customers"] == 30_000
    for name, entry in manifest.tables.items():
        assert entry.contract.startswith(f"{name if name != 'current_policy' else 'policy'}/")
        assert len(entry.sha256) == 64
    assert manifest.campaign.control == "control"


def test_cards_per_customer_between_one_and_three(fintech_world: World):
    per_customer = fintech_world.read("cards").groupby("customer_id").size()
    assert len(per_customer) == 30_000
    assert per_customer.min() == 1 and per_customer.max() == 3
    assert set(fintech_world.read("cards")["card_type"]) == {
        "debit", "credit_classic", "credit_gold", "credit_platinum"
    }  # fmt: skip


def _hour_and_weekday_counts(world: World) -> tuple[np.ndarray, np.ndarray]:
    ts = world.read("payments", columns=["ts"])["ts"]
    return (
        np.bincount(ts.dt.hour, minlength=24),
        np.bincount(ts.dt.weekday, minlength=7),
    )


def test_v2_has_hour_and_weekday_seasonality(fintech_world: World):
    hours, weekdays = _hour_and_weekday_counts(fintech_world)
    assert hours.max() / hours.min() > 10  # evening peak vs 3am trough
    assert weekdays[5] / weekdays[1] > 1.3  # Saturday vs Tuesday
    assert stats.chisquare(hours).pvalue < 1e-12


def test_v1_is_flat(fintech_world_v1: World):
    hours, weekdays = _hour_and_weekday_counts(fintech_world_v1)
    assert hours.max() / hours.min() < 1.1
    assert stats.chisquare(hours).pvalue > 1e-3
    assert weekdays.max() / weekdays.min() < 1.05  # nine whole weeks: each weekday 9 times


@pytest.mark.parametrize(
    "world_fixture, exponent", [("fintech_world", 1.1), ("fintech_world_v1", 1.5)]
)
def test_merchant_popularity_follows_configured_zipf_exponent(request, world_fixture, exponent):
    world: World = request.getfixturevalue(world_fixture)
    counts = world.read("payments", columns=["merchant_id"])["merchant_id"].value_counts()
    ranks = world.read("merchants").set_index("merchant_id")["popularity_rank"]
    by_rank = counts.reindex(ranks.index, fill_value=0).groupby(ranks).sum().sort_index()
    top = by_rank.iloc[:50]
    slope = np.polyfit(np.log(top.index.to_numpy()), np.log(top.to_numpy()), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.08)


def test_amounts_are_lognormal_per_category(fintech_world: World):
    payments = fintech_world.read("payments", columns=["merchant_id", "amount_vnd"])
    merchants = fintech_world.read("merchants").set_index("merchant_id")["category"]
    log_amount = np.log(payments["amount_vnd"].to_numpy())
    category = merchants.reindex(payments["merchant_id"]).to_numpy()
    for index, name in enumerate(fintech.CATEGORIES):
        sample = log_amount[category == name]
        assert sample.mean() == pytest.approx(np.log(fintech.AMOUNT_MEDIAN_VND[index]), abs=0.03)
        assert sample.std() == pytest.approx(fintech.AMOUNT_SIGMA[index], rel=0.05)


def test_observed_outcome_is_the_potential_outcome_of_the_assigned_arm(fintech_world: World):
    outcomes = fintech_world.read("outcomes")
    truth = fintech_world.read("ground_truth")
    joined = outcomes.merge(truth, on=["unit_id", "arm"], how="left", validate="one_to_one")
    assert len(joined) == 30_000
    np.testing.assert_array_equal(joined["converted"], joined["outcome"])
    np.testing.assert_allclose(joined["margin_vnd"], joined["value"])
    assignments = fintech_world.read("assignments")
    assert (assignments.set_index("unit_id")["arm"] == outcomes.set_index("unit_id")["arm"]).all()


def _welch_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(0.95)
    return interval.low, interval.high


@pytest.mark.parametrize(
    "outcome, truth_column", [("converted", "expected_outcome"), ("margin_vnd", "expected_value")]
)
def test_difference_in_means_covers_true_average_effect(
    fintech_world: World, outcome, truth_column
):
    outcomes = fintech_world.read("outcomes")
    truth = fintech_world.read("ground_truth")
    true_mean = truth.groupby("arm")[truth_column].mean()
    control = outcomes.loc[outcomes["arm"] == "control", outcome].to_numpy()
    for arm in ("cashback_5", "cashback_10", "fee_waiver"):
        treated = outcomes.loc[outcomes["arm"] == arm, outcome].to_numpy()
        low, high = _welch_interval(treated, control)
        assert low <= true_mean[arm] - true_mean["control"] <= high, arm


def test_interval_coverage_over_rerandomisations_is_nominal(fintech_world: World):
    """Re-randomise the same units many times: 95% Welch intervals of the difference in
    conversion cover the true (expected) effect about 95% of the time."""
    truth = fintech_world.read("ground_truth")
    wide = truth.pivot(index="unit_id", columns="arm", values="outcome")
    expected = truth.groupby("arm")["expected_outcome"].mean()
    true_effect = expected["cashback_10"] - expected["control"]
    treated, control = wide["cashback_10"].to_numpy(), wide["control"].to_numpy()
    rng = np.random.default_rng(0)
    repeats, covered = 400, 0
    for _ in range(repeats):
        is_treated = rng.random(len(wide)) < 0.5
        low, high = _welch_interval(treated[is_treated], control[~is_treated])
        covered += low <= true_effect <= high
    tolerance = 3 * np.sqrt(0.95 * 0.05 / repeats)
    assert covered / repeats >= 0.95 - tolerance


def test_all_four_unit_types_present_in_meaningful_shares(fintech_world: World):
    truth = fintech_world.read("ground_truth")
    shares = truth.loc[truth["arm"] == "control", "unit_type"].value_counts(normalize=True)
    for unit_type in ("persuadable", "sure_thing", "lost_cause", "sleeping_dog"):
        assert shares.get(unit_type, 0) >= 0.05, shares


def test_unit_types_agree_with_true_effects(fintech_world: World):
    truth = fintech_world.read("ground_truth")
    p = truth.pivot(index="unit_id", columns="arm", values="expected_outcome")
    kind = truth.loc[truth["arm"] == "control"].set_index("unit_id")["unit_type"]
    best_effect = p[["cashback_5", "cashback_10", "fee_waiver"]].max(axis=1) - p["control"]
    assert (best_effect[kind == "sleeping_dog"] < 0).all()
    assert (best_effect[kind == "persuadable"] >= 0.03).all()
    assert (p["control"][kind == "sure_thing"] >= 0.5).all()


def test_largest_offer_is_not_best_for_everyone(fintech_world: World):
    truth = fintech_world.read("ground_truth")
    arms = fintech_world.read("arms")
    net = expected_net_matrix(truth, arms)
    incremental = net.sub(net["control"], axis=0)
    best = incremental.idxmax(axis=1)
    shares = best.value_counts(normalize=True)
    for arm in ("cashback_5", "cashback_10", "fee_waiver"):
        assert shares.get(arm, 0) >= 0.05, shares
    assert shares.get("control", 0) >= 0.2  # treating everyone loses money somewhere


def test_current_policy_gives_biggest_offer_to_top_spenders(fintech_world: World):
    policy = fintech_world.read("current_policy")
    payments = fintech_world.read("payments", columns=["customer_id", "ts", "amount_vnd"])
    decision = pd.Timestamp(fintech_world.campaign.decision_time)
    window = min(90, fintech_world.manifest.config.days)
    recent = payments[payments["ts"] >= decision - pd.Timedelta(days=window)]
    spend = recent.groupby("customer_id")["amount_vnd"].sum() * 30 / window
    spend = spend.reindex(policy["unit_id"], fill_value=0).to_numpy()
    arm = policy["arm"].to_numpy()
    thresholds = fintech_world.campaign.current_policy
    assert thresholds is not None
    assert (arm[spend >= thresholds.top_monthly_spend_vnd + 1] == "cashback_10").all()
    assert (arm[spend < thresholds.mid_monthly_spend_vnd - 1] == "control").all()
    assert (arm == "cashback_10").mean() == pytest.approx(0.10, abs=0.002)
    assert (arm == "cashback_5").mean() == pytest.approx(0.15, abs=0.002)


def test_oracle_beats_current_policy_and_every_treat_all(fintech_world: World):
    truth, arms = fintech_world.read("ground_truth"), fintech_world.read("arms")
    oracle = policy_value(oracle_policy(truth, arms), truth, arms).expected_net_profit
    current = policy_value(fintech_world.read("current_policy"), truth, arms)
    assert oracle > current.expected_net_profit
    units = truth["unit_id"].unique()
    for arm in ("cashback_5", "cashback_10", "fee_waiver"):
        everyone = policy_value(pd.DataFrame({"unit_id": units, "arm": arm}), truth, arms)
        assert oracle > everyone.expected_net_profit
        assert everyone.treated == len(units)


def test_policy_value_matches_hand_computation(fintech_world: World):
    truth, arms = fintech_world.read("ground_truth"), fintech_world.read("arms")
    decisions = pd.DataFrame({"unit_id": [0, 1, 2], "arm": ["cashback_5", "control", "fee_waiver"]})
    value = policy_value(decisions, truth, arms)
    rows = truth.set_index(["unit_id", "arm"])
    cost = arms.set_index("arm")
    by_hand = rows["expected_value"].xs("control", level="arm").sum()
    for unit, arm in [(0, "cashback_5"), (2, "fee_waiver")]:
        gain = (
            rows.loc[(unit, arm), "expected_value"] - rows.loc[(unit, "control"), "expected_value"]
        )
        by_hand += gain - cost.loc[arm, "contact_cost"]
        by_hand -= cost.loc[arm, "redemption_cost"] * rows.loc[(unit, arm), "expected_outcome"]
    assert value.expected_net_profit == pytest.approx(by_hand, rel=1e-12)
    assert value.treated == 2 and value.units == 30_000


def test_policy_value_names_bad_rows(fintech_world: World):
    truth, arms = fintech_world.read("ground_truth"), fintech_world.read("arms")
    with pytest.raises(UserError, match=r"column 'arm', row 1: unknown arm 'cashback_50'"):
        policy_value(
            pd.DataFrame({"unit_id": [0, 1], "arm": ["control", "cashback_50"]}), truth, arms
        )
    with pytest.raises(UserError, match=r"column 'unit_id', row 1: unit decided twice"):
        policy_value(pd.DataFrame({"unit_id": [4, 4], "arm": ["control", "control"]}), truth, arms)
    with pytest.raises(UserError, match=r"row 0: unit 999999 is not in the world"):
        policy_value(pd.DataFrame({"unit_id": [999_999], "arm": ["control"]}), truth, arms)


def test_configured_arm_ratios_are_respected(tmp_path):
    arms = (
        fintech.DEFAULT_ARMS[0].model_copy(update={"ratio": 0.5}),
        fintech.DEFAULT_ARMS[2].model_copy(update={"ratio": 0.5}),
    )
    config = WorldConfig(world="fintech", units=4_000, days=10, seed=1, arms=arms)
    simulate(config, tmp_path / "w")
    world = load_world(tmp_path / "w")
    shares = world.read("assignments")["arm"].value_counts(normalize=True)
    assert set(shares.index) == {"control", "cashback_10"}
    assert shares["control"] == pytest.approx(0.5, abs=0.03)
    assert set(world.read("ground_truth")["arm"]) == {"control", "cashback_10"}


def test_unknown_arm_is_a_user_error(tmp_path):
    bogus = fintech.DEFAULT_ARMS[1].model_copy(update={"name": "cashback_50", "ratio": 0.6})
    arms = (fintech.DEFAULT_ARMS[0], bogus)
    with pytest.raises(UserError, match="unknown arm 'cashback_50'"):
        simulate(WorldConfig(world="fintech", units=100, days=5, seed=1, arms=arms), tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fintech, "_write_campaign", explode)
    with pytest.raises(RuntimeError):
        simulate(WorldConfig(world="fintech", units=500, days=5, seed=1), tmp_path / "w")
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_directory_that_is_not_a_world(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a liftwise world"):
        simulate(WorldConfig(world="fintech", units=100, days=5, seed=1), tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
