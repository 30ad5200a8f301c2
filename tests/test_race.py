"""The model race, the saved winner and the train/score commands."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from liftwise.cli import run
from liftwise.errors import UserError
from liftwise.evaluate.bundle import load_bundle, score_units
from liftwise.evaluate.economics import ArmCost, Economics, campaign_economics
from liftwise.evaluate.race import RaceSettings, run_race, split_by_arm, winner_bundle
from liftwise.evaluate.report import contestant_table, render_report, save_race
from liftwise.features import experiment_frame
from liftwise.simulate import World, policy_value


@pytest.fixture(scope="module")
def race(fintech_world: World):
    frame = experiment_frame(fintech_world)
    economics = campaign_economics(frame, fintech_world.campaign.arms)
    settings = RaceSettings(
        outcome="converted", economics=economics, learners=("s_lgbm", "t_lgbm"), n_boot=50, seed=3
    )
    policy = fintech_world.read("current_policy").set_index("unit_id")["arm"]
    return frame, run_race(frame, settings, current_policy=policy)


def test_campaign_economics_values_a_conversion_at_the_mean_margin(fintech_world: World):
    frame = experiment_frame(fintech_world)
    economics = campaign_economics(frame, fintech_world.campaign.arms)
    converted = frame.data["converted"] == 1
    expected = frame.data.loc[converted, "margin_vnd"].mean()
    assert economics.value_per_outcome == pytest.approx(expected)
    assert economics.costs["cashback_10"] == ArmCost(contact=1_000, redemption=60_000)
    half = frame.data["unit_id"].to_numpy() % 2 == 0
    expected_half = frame.data.loc[converted & half, "margin_vnd"].mean()
    assert campaign_economics(frame, [], rows=half).value_per_outcome == pytest.approx(
        expected_half
    )


def test_split_keeps_the_share_of_every_arm():
    treatment = np.repeat([0, 1, 2], [1000, 500, 250])
    mask = split_by_arm(treatment, 0.3, seed=1)
    assert [mask[treatment == a].sum() for a in (0, 1, 2)] == [300, 150, 75]
    assert (split_by_arm(treatment, 0.3, seed=1) == mask).all()


def test_race_table_has_learners_and_every_baseline(race):
    _, result = race
    names = set(result.table["name"])
    assert {"s_lgbm", "t_lgbm", "random", "current policy"} <= names
    assert {f"treat all: {arm}" for arm in result.arms[1:]} <= names
    assert result.table["winner"].sum() == 1


def test_winner_has_the_highest_profit_at_k_and_a_ci_around_it(race):
    _, result = race
    learners = result.table[result.table["kind"] == "learner"]
    best = learners.loc[learners["profit_at_k"].idxmax()]
    assert best["name"] == result.winner
    assert best["profit_at_k_low"] <= best["profit_at_k"] <= best["profit_at_k_high"]
    assert best["profit_at_k_high"] > best["profit_at_k_low"]


def test_winner_beats_random_and_current_policy_in_true_profit(race, fintech_world: World):
    """Ground truth: the winner's top-30% with their best arm earn more than random targeting
    of as many units and than the current policy."""
    frame, result = race
    bundle = winner_bundle(result, frame)
    scores = score_units(bundle, frame.X(), frame.data["unit_id"].to_numpy())
    best = scores.loc[scores.groupby("unit_id")["expected_profit"].idxmax()]
    top = best.nlargest(int(0.3 * len(best)), "expected_profit")
    truth, arms = fintech_world.read("ground_truth"), fintech_world.read("arms")
    ours = policy_value(top[["unit_id", "arm"]], truth, arms).expected_net_profit
    rng = np.random.default_rng(0)
    random_units = rng.choice(best["unit_id"].to_numpy(), size=len(top), replace=False)
    random_arms = rng.choice(np.asarray(result.arms[1:]), size=len(top))
    randomly = policy_value(
        pd.DataFrame({"unit_id": random_units, "arm": random_arms}), truth, arms
    )
    current = policy_value(fintech_world.read("current_policy"), truth, arms)
    assert ours > randomly.expected_net_profit
    assert ours > current.expected_net_profit


def test_race_report_is_a_shell_page_with_a_formatted_table(race, shell_page):
    """Money with separators, no ``nan`` for the baselines' missing per-arm metrics, and a
    learner name that is markup shown as text."""
    _, result = race
    script = "<script>alert(1)</script>"
    table = result.table.replace({"name": {result.winner: script}})
    renamed = dataclasses.replace(result, table=table, winner=script)
    page = render_report(renamed, {}, "race", currency="VND")
    shell_page(page)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; (winner)" in page
    row = renamed.winner_row
    assert row["name"] == script and row["profit_at_k"] == result.winner_row["profit_at_k"]
    money = f"{row['profit_at_k']:,.0f}"
    assert abs(row["profit_at_k"]) >= 1000 and "," in money
    assert f'<td class="num">{money}</td>' in page
    low, high = f"{row['profit_at_k_low']:,.0f}", f"{row['profit_at_k_high']:,.0f}"
    assert f'<td class="num">{low} .. {high}</td>' in page
    assert "<h2>Contestants</h2>" in page and "<h2>Ranking metrics per arm</h2>" in page
    fit_seconds = {r[0]: r[-1] for r in contestant_table(result).rows}
    assert fit_seconds["random"] is None and fit_seconds[f"{result.winner} (winner)"] > 0


def test_saved_race_can_be_loaded_and_scores_new_units(race, tmp_path):
    frame, result = race
    paths = save_race(result, winner_bundle(result, frame, world="fintech"), tmp_path / "race")
    for name in (
        "race.csv",
        "race.json",
        "report.html",
        "plots/profit_vs_K.png",
        "model/model.joblib",
    ):
        assert (tmp_path / "race" / name).is_file(), name
    report = paths["report"].read_text()
    assert report.count("data:image/png;base64,") == 3 and result.winner in report
    assert json.loads((tmp_path / "race" / "race.json").read_text())["winner"] == result.winner
    bundle = load_bundle(tmp_path / "race" / "model")
    scores = score_units(bundle, frame.X()[:10], np.arange(10))
    assert len(scores) == 10 * len(result.arms[1:])
    np.testing.assert_allclose(
        scores["effect"], (scores["expected_outcome"] - scores["control_outcome"]), atol=1e-12
    )


def test_settings_reject_impossible_values():
    with pytest.raises(UserError, match="parameter k"):
        RaceSettings(outcome="y", economics=Economics(), k=0)


def test_train_and_score_commands_on_a_csv(tmp_path, capsys):
    rng = np.random.default_rng(5)
    n = 4_000
    x = rng.normal(size=(n, 3))
    arm = rng.choice(["ctrl", "a", "b"], size=n)
    lift = np.where(arm == "a", 0.15 * (x[:, 0] > 0), np.where(arm == "b", 0.1, 0.0))
    y = (rng.random(n) < 0.2 + lift).astype(int)
    table = pd.DataFrame(
        {
            "x0": x[:, 0],
            "x1": x[:, 1],
            "region": rng.choice(["n", "s"], n),
            "group": arm,
            "bought": y,
        }
    )
    data = tmp_path / "exp.csv"
    table.to_csv(data, index=False)
    out = tmp_path / "race"
    code = run([
        "train", "--data", str(data), "--treatment", "group", "--control", "ctrl", "--outcome", "bought",
        "--learners", "t_lgbm,s_lgbm", "--value-per-outcome", "10", "--cost", "a=0.5", "--cost", "b=0.2",
        "--n-boot", "20", "--out", str(out),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "winner:" in capsys.readouterr().out
    scored = tmp_path / "scores.csv"
    assert (
        run(
            [
                "score",
                "--model",
                str(out),
                "--data",
                str(data),
                "--out",
                str(scored),
                "--number-rows",
            ]
        )
        == 0
    )
    scores = pd.read_csv(scored)
    assert len(scores) == 2 * n and set(scores["arm"]) == {"a", "b"}
    assert {"effect", "effect_low", "effect_high", "expected_profit"} <= set(scores.columns)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--learners", "magic_forest"], "option --learners: unknown learner 'magic_forest'"),
        (["--cost", "c=1"], "option --cost: costs given for unknown arm(s) ['c']"),
        (["--cost", "a=-1"], "option --cost: cost of 'a' must be >= 0"),
        (["--k", "1.5"], "option --k: Input should be less than or equal to 1, got 1.5"),
        (  # too few rows for the forest's leaves: its ValueError named as the learner
            ["--learners", "uplift_forest", "--no-track"],
            "option --learners: learner 'uplift_forest' cannot fit these 28 units",
        ),
    ],
)
def test_train_user_errors(tmp_path, capsys, extra, message):
    table = pd.DataFrame({"x": range(40), "g": ["ctrl", "a"] * 20, "y": [0, 1] * 20})
    table.to_csv(tmp_path / "t.csv", index=False)
    base = [
        "train",
        "--data",
        str(tmp_path / "t.csv"),
        "--treatment",
        "g",
        "--control",
        "ctrl",
        "--outcome",
        "y",
        "--out",
        str(tmp_path / "o"),
    ]
    assert run(base + extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_train_needs_data_or_world(tmp_path, capsys):
    assert run(["train", "--out", str(tmp_path / "o")]) == 2
    assert "option --data: required unless --world is given" in capsys.readouterr().err
