"""The learning world: determinism, contracts, seasonality, churn, randomisation and truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from liftwise.contracts import world_contracts
from liftwise.contracts.base import violations_from_frame
from liftwise.contracts.validate import validate_world
from liftwise.errors import UserError
from liftwise.simulate import (
    ArmConfig,
    World,
    WorldConfig,
    learning,
    load_world,
    policy_value,
    simulate,
)
from liftwise.simulate.common import chunk_rng

TREATMENTS = ("nudge_email", "tutor_call", "peer_cohort_invite")


def _world(path: Path, **overrides: object) -> World:
    config = {"world": "learning", "units": 2_000, "days": 60, "seed": 11, "chunk_units": 700}
    simulate(WorldConfig(**(config | overrides)), path)
    return load_world(path)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> World:
    """40K learners: large enough for the statistical checks, about three seconds."""
    path = tmp_path_factory.mktemp("learning") / "big"
    return _world(path, units=40_000, days=90, seed=2026, chunk_units=15_000)


@pytest.fixture(scope="module")
def truth(big: World) -> pd.DataFrame:
    """Ground truth with the expected net profit of each (unit, arm)."""
    gt = big.read("ground_truth")
    costs = big.read("arms").set_index("arm")
    treated = gt["arm"] != "control"
    gt["net"] = gt["expected_value"] - treated * (
        gt["arm"].map(costs["contact_cost"])
        + gt["arm"].map(costs["redemption_cost"]) * gt["expected_outcome"]
    )
    return gt


@pytest.fixture(scope="module")
def activity(big: World) -> pd.DataFrame:
    """Sessions per learner in the first and the last 14 days of the history."""
    sessions = big.read("sessions", ["learner_id", "started_at"])
    decision = pd.Timestamp(big.campaign.decision_time)
    start = decision - pd.Timedelta(days=90)
    units = big.read("learners", ["learner_id"])["learner_id"]
    early = sessions["started_at"] < start + pd.Timedelta(days=14)
    recent = sessions["started_at"] >= decision - pd.Timedelta(days=14)
    return (
        pd.DataFrame(
            {
                "early": sessions.loc[early, "learner_id"].value_counts(),
                "recent": sessions.loc[recent, "learner_id"].value_counts(),
            }
        )
        .reindex(units, fill_value=0)
        .fillna(0)
    )


def test_same_config_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first = _world(tmp_path / "a").manifest
    again = _world(tmp_path / "b").manifest
    other = _world(tmp_path / "c", seed=12).manifest
    hashes = {name: t.sha256 for name, t in first.tables.items()}
    assert hashes == {name: t.sha256 for name, t in again.tables.items()}
    assert first.summary == again.summary
    for name in ("learners", "sessions", "ground_truth", "assignments"):
        assert other.tables[name].sha256 != hashes[name]


def test_every_table_validates_against_its_contract(tmp_path: Path) -> None:
    world = _world(tmp_path / "w")
    contracts = world_contracts("learning")
    assert set(world.manifest.tables) == set(contracts)
    for name, contract in contracts.items():
        frame = world.read(name)
        assert len(frame) == world.manifest.tables[name].rows > 0, name
        assert violations_from_frame(frame, contract, file=name) == [], name
    json.dumps(world.manifest.dump(), allow_nan=False)  # plain, finite JSON
    report = validate_world(world.path)  # hashes, keys and cross-table references too
    assert report.ok, [v.one_line() for v in report.violations[:10]]


def test_tables_reference_each_other_and_respect_time(tmp_path: Path) -> None:
    world = _world(tmp_path / "w")
    learners = world.read("learners").set_index("learner_id")
    sessions = world.read("sessions")
    decision = pd.Timestamp(world.campaign.decision_time)
    assert learners.index.tolist() == list(range(2_000))
    assert sessions["learner_id"].isin(learners.index).all()
    assert sessions["course_id"].isin(world.read("courses")["course_id"]).all()
    assert (sessions["started_at"] < decision).all()
    assert (sessions["started_at"] >= decision - pd.Timedelta(days=60)).all()
    assert (sessions["started_at"] > sessions["learner_id"].map(learners["signup_at"])).all()
    assert (learners["signup_at"] < decision).all()
    tenure = (decision - learners["signup_at"]) // pd.Timedelta(days=1)
    assert (tenure == learners["tenure_days"]).all()
    for name in ("assignments", "outcomes", "current_policy"):
        assert world.read(name)["unit_id"].tolist() == learners.index.tolist(), name


def test_progress_reports_every_chunk(tmp_path: Path) -> None:
    calls: list[int] = []
    config = WorldConfig(world="learning", units=1_500, days=20, seed=1, chunk_units=600)
    simulate(config, tmp_path / "w", progress=calls.append)
    assert calls == [600, 600, 300]


def _weekday_ratios(world: World) -> tuple[np.ndarray, np.ndarray]:
    """Observed and trend-expected session counts per weekday (centred 7-day mean)."""
    daily = world.read("sessions", ["started_at"])["started_at"].dt.normalize().value_counts()
    daily = daily.sort_index()
    trend = daily.rolling(7, center=True).mean().dropna()
    observed = daily[trend.index].groupby(trend.index.weekday).sum()
    expected = trend.groupby(trend.index.weekday).sum()
    return observed.to_numpy(), (expected * observed.sum() / expected.sum()).to_numpy()


def test_seasonality_in_v2_and_flat_in_v1(tmp_path: Path) -> None:
    worlds = {r: _world(tmp_path / r, units=5_000, days=84, realism=r) for r in ("v1", "v2")}
    for realism, world in worlds.items():
        hours = np.bincount(world.read("sessions")["started_at"].dt.hour, minlength=24)
        observed, expected = _weekday_ratios(world)
        weekday_ratio = observed / expected
        if realism == "v1":
            assert hours.max() / hours.min() < 1.1
            assert stats.chisquare(hours).pvalue > 0.01
            assert weekday_ratio.max() / weekday_ratio.min() < 1.05
            assert stats.chisquare(observed, expected).pvalue > 0.01
        else:
            assert hours.argmax() in range(18, 23)  # evening peak
            assert hours.max() / hours.min() > 5
            assert weekday_ratio.max() / weekday_ratio.min() > 1.4
            assert weekday_ratio.argmax() == 6 and weekday_ratio.argmin() in (4, 5)  # Sun; Fri/Sat


def test_churn_hazard_rises_as_engagement_declines() -> None:
    grid = np.linspace(-4, 2.5, 50)
    assert (np.diff(learning.churn_hazard(grid)) < 0).all()


def test_churned_learners_never_study_after_their_churn_day() -> None:
    config = WorldConfig(world="learning", units=3_000, days=60, seed=5)
    catalogue = learning.Catalogue(cdf=np.linspace(0.01, 1, 100), lesson_minutes=np.ones(100))
    learners = learning.draw_learners(chunk_rng(5, 0, 0), config, 0, 3_000, catalogue)
    history = learning.simulate_history(chunk_rng(5, 1, 0), config, learners)
    churned = ~history.alive
    assert 0.1 < churned.mean() < 0.9
    last_day = np.full(3_000, -1)
    np.maximum.at(last_day, history.session_learner, history.session_day)
    assert (last_day[churned] <= history.churn_day[churned]).all()
    assert (history.session_day >= learners.first_day[history.session_learner]).all()
    # declining learners churn more than rising ones
    assert churned[learners.drift < -0.01].mean() > churned[learners.drift > 0.001].mean() + 0.1


def test_retention_under_control_rises_with_recent_engagement(
    big: World, truth: pd.DataFrame, activity: pd.DataFrame
) -> None:
    control = truth[truth["arm"] == "control"].set_index("unit_id")["expected_outcome"]
    # among learners still studying lately, so it is not just churned versus active
    studying = activity[activity["recent"] > 0]
    quartile = pd.qcut(studying["recent"].rank(method="first"), 4, labels=False)
    by_quartile = control[studying.index].groupby(quartile).mean()
    assert by_quartile.is_monotonic_increasing
    assert by_quartile.iloc[-1] - by_quartile.iloc[0] > 0.1

    outcomes = big.read("outcomes").set_index("unit_id")
    in_control = outcomes["arm"] == "control"
    fell = (activity["early"] >= 4) & (activity["recent"] <= 0.5 * activity["early"])
    kept = (activity["early"] >= 4) & (activity["recent"] >= activity["early"])
    retained = outcomes["retained_30d"]
    assert retained[in_control & fell].mean() + 0.2 < retained[in_control & kept].mean()


def test_observed_outcome_is_the_potential_outcome_of_the_assigned_arm(
    big: World, truth: pd.DataFrame
) -> None:
    outcomes = big.read("outcomes")
    assignments = big.read("assignments")
    assert (outcomes["arm"] == assignments["arm"]).all()
    merged = outcomes.merge(truth, on=["unit_id", "arm"], how="left", validate="one_to_one")
    assert merged["outcome"].notna().all()
    assert (merged["retained_30d"] == merged["outcome"]).all()
    assert np.allclose(merged["revenue_usd"], merged["value"])
    assert (merged.loc[merged["retained_30d"] == 0, "revenue_usd"] == 0).all()


def test_assignment_ratios_and_welch_intervals_cover_the_true_effects(
    big: World, truth: pd.DataFrame
) -> None:
    outcomes = big.read("outcomes")
    shares = outcomes["arm"].value_counts(normalize=True)
    for arm in big.campaign.arms:
        assert abs(shares[arm.name] - arm.ratio) < 0.01
    p = truth.pivot(index="unit_id", columns="arm", values="expected_outcome")
    control = outcomes.loc[outcomes["arm"] == "control", "retained_30d"]
    for arm in TREATMENTS:
        true_effect = float((p[arm] - p["control"]).mean())
        treated = outcomes.loc[outcomes["arm"] == arm, "retained_30d"]
        test = stats.ttest_ind(treated, control, equal_var=False)
        low, high = test.confidence_interval(0.95)
        assert low <= true_effect <= high, (arm, low, true_effect, high)
        assert true_effect == pytest.approx(big.manifest.summary.true_average_effect[arm], abs=1e-6)


def test_every_unit_type_has_a_meaningful_share(big: World, truth: pd.DataFrame) -> None:
    control = truth[truth["arm"] == "control"]
    shares = control["unit_type"].value_counts(normalize=True)
    for unit_type in ("persuadable", "sure_thing", "lost_cause", "sleeping_dog"):
        assert shares.get(unit_type, 0.0) >= 0.05, unit_type
        assert big.manifest.summary.unit_type_share[unit_type] == round(shares[unit_type], 6)
    effects = truth.pivot(index="unit_id", columns="arm", values="expected_outcome")
    effects = effects[list(TREATMENTS)].sub(effects["control"], axis=0)
    unit_type = control.set_index("unit_id")["unit_type"]
    assert (effects[unit_type == "sleeping_dog"].max(axis=1) < -0.01).all()
    assert (effects[unit_type == "persuadable"].max(axis=1) >= 0.03).all()
    # tutor calls annoy some learners that other arms help
    assert ((effects["tutor_call"] < -0.01) & (unit_type == "persuadable")).mean() > 0.05


def test_the_best_arm_differs_between_learners(big: World, truth: pd.DataFrame) -> None:
    net = truth.pivot(index="unit_id", columns="arm", values="net")
    best = net.idxmax(axis=1).value_counts(normalize=True)
    assert sum(best.get(arm, 0.0) >= 0.05 for arm in TREATMENTS) >= 2
    assert best.get("tutor_call", 0.0) < 0.5
    assert best.get("control", 0.0) >= 0.05
    for arm, share in big.manifest.summary.best_arm_share.items():
        assert share == pytest.approx(best.get(arm, 0.0), abs=1e-6)


def test_current_policy_covers_units_and_can_be_valued(big: World, truth: pd.DataFrame) -> None:
    policy = big.read("current_policy")
    arms = big.read("arms")
    assert policy["unit_id"].is_unique
    assert len(policy) == big.manifest.tables["learners"].rows
    assert policy["arm"].isin(arms["arm"]).all()
    used = policy["arm"].value_counts(normalize=True)
    assert used["nudge_email"] > 0.05 and used["tutor_call"] > 0.02 and used["control"] > 0.2
    value = policy_value(policy, truth.drop(columns="net"), arms)
    assert value.units == len(policy) and value.treated == int((policy["arm"] != "control").sum())
    net = truth.pivot(index="unit_id", columns="arm", values="net")
    oracle = pd.DataFrame({"unit_id": net.index, "arm": net.idxmax(axis=1).to_numpy()})
    best = policy_value(oracle, truth.drop(columns="net"), arms)
    assert best.expected_net_profit > value.expected_net_profit


def test_configured_arms_are_used_and_the_policy_falls_back(tmp_path: Path) -> None:
    arms = (
        ArmConfig(name="control", ratio=0.5, contact_cost=0, redemption_cost=0),
        ArmConfig(name="nudge_email", ratio=0.5, contact_cost=0.1, redemption_cost=0),
    )
    world = _world(tmp_path / "w", arms=arms)
    assert world.read("arms")["arm"].tolist() == ["control", "nudge_email"]
    assert set(world.read("current_policy")["arm"]) == {"control", "nudge_email"}
    assert set(world.read("ground_truth")["arm"]) == {"control", "nudge_email"}


def test_unknown_arm_is_a_user_error(tmp_path: Path) -> None:
    arms = (
        ArmConfig(name="control", ratio=0.5, contact_cost=0, redemption_cost=0),
        ArmConfig(name="cashback_5", ratio=0.5, contact_cost=1, redemption_cost=0),
    )
    with pytest.raises(UserError, match="cashback_5") as err:
        _world(tmp_path / "w", arms=arms)
    assert err.value.parameter == "arms"
    assert not (tmp_path / "w").exists()
