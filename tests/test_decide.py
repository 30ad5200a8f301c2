"""Decision layer: typed config, guardrails, batch decisions with reasons, the CLI."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from liftwise.cli import run
from liftwise.decide.batch import decide_batch
from liftwise.decide.config import (
    DecisionConfig,
    EligibilityRule,
    SoftGuardrail,
    load_decision_config,
)
from liftwise.decide.guardrails import Reason, block_contact_cap, guardrail_reasons, lower_bound
from liftwise.errors import UserError
from liftwise.evaluate.bundle import ModelBundle
from liftwise.evaluate.economics import ArmCost, Economics
from liftwise.learn.meta import TLearner

NOW = dt.datetime(2026, 6, 1)


@pytest.fixture(scope="module")
def toy():
    """A T-learner on a 3-arm experiment where arm 'a' helps when x0 > 0 and 'b' helps all."""
    rng = np.random.default_rng(3)
    n = 6_000
    X = rng.normal(size=(n, 3))
    t = rng.integers(0, 3, n)
    p = 0.2 + np.where(t == 1, 0.25 * (X[:, 0] > 0), 0.0) + np.where(t == 2, 0.08, 0.0)
    y = (rng.random(n) < p).astype(float)
    learner = TLearner(params={"n_estimators": 60, "num_leaves": 7}, random_state=0).fit(X, t, y)
    economics = Economics(
        value_per_outcome=10.0,
        costs={"a": ArmCost(contact=0.5), "b": ArmCost(contact=0.3, redemption=1.0)},
    )
    bundle = ModelBundle(learner, "t_lgbm", ("x0", "x1", "x2"), ("ctrl", "a", "b"), "y", economics)
    features = pd.DataFrame(X, columns=["x0", "x1", "x2"]).assign(tenure=rng.integers(0, 24, n))
    return bundle, X, np.arange(n), features


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "g.yaml"
    bad.write_text("budget: 100\nbudgte: 5\n")
    with pytest.raises(
        UserError, match=r"g\.yaml, column 'budgte': Extra inputs are not permitted"
    ):
        load_decision_config(bad)
    bad.write_text("budget: -1\n")
    with pytest.raises(
        UserError, match=r"column 'budget': Input should be greater than or equal to 0"
    ):
        load_decision_config(bad)
    bad.write_text("budget: 1\ncapacity:\n  a: -2\n")
    with pytest.raises(UserError, match=r"column 'capacity.a'"):
        load_decision_config(bad)
    bad.write_text("budget: [1\n")
    with pytest.raises(UserError, match="invalid YAML at line"):
        load_decision_config(bad)
    for budget in (float("nan"), -1.0):  # the caller's argument, named as such (the flag)
        with pytest.raises(UserError, match=r"^parameter budget: Input should be greater"):
            load_decision_config(None, budget=budget)
    assert load_decision_config(None, budget=float("inf")).budget == float("inf")  # no limit
    config = load_decision_config(None, budget=5.0)
    with pytest.raises(UserError, match=r"column 'costs': unknown arm 'zz'"):
        config.model_copy(update={"costs": {"zz": {}}}).check_arms(("a", "b"), source="cfg")


def test_contact_cap_counts_exposures_in_the_rolling_window():
    exposures = pd.DataFrame(
        {
            "unit_id": [1, 1, 2, 3, 3],
            "occurred_at": pd.to_datetime(
                ["2026-05-30", "2026-05-20", "2026-05-31", "2026-03-01", "2026-05-29"]
            ),
        }
    )
    capped = block_contact_cap(
        np.array([1, 2, 3, 4]), exposures, max_contacts=2, window_days=30, now=NOW
    )
    assert capped.tolist() == [True, False, False, False]


def test_reasons_take_the_most_fundamental_blocker(toy):
    _, _, ids, features = toy
    config = DecisionConfig(
        budget=100,
        do_not_contact=[0, 1],
        eligibility=[EligibilityRule(feature="tenure", op=">=", value=6, arms=["a"])],
        soft_guardrail=SoftGuardrail(metric="effect", level=0.9, threshold=0.0),
    )
    effect_lower = np.full((len(ids), 2), 1.0)
    effect_lower[5, 1] = -1.0
    reasons = guardrail_reasons(
        ids,
        features,
        ("a", "b"),
        config,
        exposures=None,
        now=NOW,
        effect_lower=effect_lower,
        profit_lower=None,
    )
    assert (reasons[[0, 1]] == Reason.DO_NOT_CONTACT).all()
    young = features["tenure"].to_numpy() < 6
    assert (reasons[young & (ids > 1), 0] == Reason.INELIGIBLE).all()
    assert (reasons[~young & (ids > 5), :] == Reason.TREATED).all()
    assert reasons[5, 1] == Reason.INTERVAL_BELOW_THRESHOLD


def test_lower_bound_from_a_two_sided_interval():
    point, low, high = np.array([1.0]), np.array([0.0]), np.array([2.0])
    assert lower_bound(point, low, high, level=0.975, alpha=0.05)[0] == pytest.approx(0.0)
    assert lower_bound(point, low, high, level=0.5, alpha=0.05)[0] == pytest.approx(1.0)


def test_batch_decisions_respect_budget_guardrails_and_capacity(toy):
    bundle, X, ids, features = toy
    config = DecisionConfig(
        budget=400.0, do_not_contact=list(range(0, 6_000, 10)), capacity={"a": 300}
    )
    decisions = decide_batch(bundle, X, ids, features, config, now=NOW)
    table = decisions.table
    treated = table["arm"] != "ctrl"
    assert table["expected_cost"].sum() <= 400.0 + 1e-9
    assert (table.loc[ids % 10 == 0, "arm"] == "ctrl").all()
    assert (table.loc[ids % 10 == 0, "reason"] == "do_not_contact").all()
    assert (table["arm"] == "a").sum() <= 300
    assert (table.loc[treated, "reason"] == "").all()
    assert (table.loc[~treated, "reason"] != "").all()
    assert set(table.loc[~treated, "reason"]) <= {
        "do_not_contact",
        "negative_profit",
        "budget",
        "capacity",
    }
    assert (table.loc[treated, "expected_profit"] > 0).all()
    allocation = decisions.allocation
    assert allocation.profit <= allocation.upper_bound + 1e-9
    summary = decisions.summary()
    assert summary.treated == int(treated.sum()) and summary.gap >= 0


def test_a_bigger_budget_never_earns_less(toy):
    bundle, X, ids, features = toy
    profits = [
        decide_batch(bundle, X, ids, features, DecisionConfig(budget=b), now=NOW).allocation.profit
        for b in (50.0, 200.0, 800.0, 1e9)
    ]
    assert profits == sorted(profits)
    everyone = decide_batch(bundle, X, ids, features, DecisionConfig(budget=1e9), now=NOW).table
    assert (everyone.loc[everyone["arm"] == "ctrl", "reason"] == "negative_profit").all()


def test_decide_command_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n = 3_000
    x = rng.normal(size=n)
    arm = rng.choice(["ctrl", "a", "b"], size=n)
    y = (rng.random(n) < 0.2 + np.where(arm == "a", 0.2 * (x > 0), 0.05 * (arm == "b"))).astype(int)
    data = tmp_path / "exp.csv"
    pd.DataFrame({"x": x, "tenure": rng.integers(0, 24, n), "g": arm, "y": y}).to_csv(
        data, index=False
    )
    assert run(["train", "--data", str(data), "--treatment", "g", "--control", "ctrl", "--outcome", "y",
                "--learners", "t_lgbm", "--value-per-outcome", "10", "--cost", "a=0.5", "--cost", "b=0.2",
                "--n-boot", "10", "--out", str(tmp_path / "race")]) == 0  # fmt: skip
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "do_not_contact: [0, 1, 2]\neligibility:\n  - {feature: tenure, op: '>=', value: 3}\ncapacity: {a: 100}\n"
    )
    out = tmp_path / "decisions.csv"
    assert run(["decide", "--model", str(tmp_path / "race" / "model"), "--data", str(data), "--budget", "150",
                "--guardrails", str(rules), "--out", str(out), "--number-rows"]) == 0  # fmt: skip
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == n and (table.loc[:2, "reason"] == "do_not_contact").all()
    assert (table["arm"] == "a").sum() <= 100
    assert "certified gap" in capsys.readouterr().out
    rules.write_text("budget_per_unit: 3\n")
    assert run(["decide", "--model", str(tmp_path / "race" / "model"), "--data", str(data), "--budget", "150",
                "--guardrails", str(rules), "--out", str(out), "--number-rows"]) == 2  # fmt: skip
    assert "column 'budget_per_unit': Extra inputs are not permitted" in capsys.readouterr().err
    rules.write_text("capacity: {zz: 3}\n")
    assert run(["decide", "--model", str(tmp_path / "race" / "model"), "--data", str(data), "--budget", "150",
                "--guardrails", str(rules), "--out", str(out), "--number-rows"]) == 2  # fmt: skip
    assert "unknown arm 'zz'" in capsys.readouterr().err
