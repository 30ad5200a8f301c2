"""Tracking, the model registry with its approval gate and audit log, and model cards, on a
real MLflow with a SQLite store in a temporary data directory."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liftwise.contracts.experiment import ExperimentFrame
from liftwise.errors import UserError
from liftwise.evaluate.bundle import ModelBundle, load_bundle, score_units
from liftwise.evaluate.economics import campaign_economics
from liftwise.evaluate.race import RaceResult, RaceSettings, run_race, winner_bundle
from liftwise.features import experiment_frame
from liftwise.registry import ModelCard, ModelRegistry, describe_dataset, log_race, world_segments
from liftwise.registry.pyfunc import pip_requirements
from liftwise.registry.store import active_store, client
from liftwise.registry.tracking import TAG_MODEL_ID, metric_key
from liftwise.settings import Settings
from liftwise.simulate import World, WorldConfig, load_world, simulate

FEATURE_VERSIONS = {"customer_activity": "3", "customer_profile": "1"}


@dataclass(frozen=True)
class Race:
    """A small world's race, ready to log."""

    world: World
    frame: ExperimentFrame
    result: RaceResult
    bundle: ModelBundle


def make_race(root: Path, *, units: int = 3_000, seed: int = 5) -> Race:
    """A 3K-unit fintech world raced by two quick learners with a small bootstrap."""
    simulate(WorldConfig(world="fintech", units=units, days=30, seed=seed), root / "world")
    world = load_world(root / "world")
    frame = experiment_frame(world)
    settings = RaceSettings(
        outcome="converted",
        economics=campaign_economics(frame, world.campaign.arms),
        learners=("s_lgbm", "t_lgbm"),
        n_boot=20,
        seed=1,
    )
    policy = world.read("current_policy").set_index("unit_id")["arm"]
    result = run_race(frame, settings, current_policy=policy)
    bundle = winner_bundle(result, frame, world=world.name, currency="VND")
    return Race(world, frame, result, bundle)


def log(race: Race, settings: Settings, experiment: str = "registry-test") -> str:
    return log_race(
        race.result,
        race.bundle,
        race.frame,
        settings=settings,
        experiment=experiment,
        dataset=describe_dataset(race.world.path, race.frame),
        feature_versions=FEATURE_VERSIONS,
        segments=world_segments(race.world, race.frame),
        params={"run_date": "2025-01-31"},
    )


@pytest.fixture(scope="module")
def race(tmp_path_factory: pytest.TempPathFactory) -> Race:
    return make_race(tmp_path_factory.mktemp("registry_world"))


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("registry_data") / "data")


@pytest.fixture(scope="module")
def run_id(race: Race, settings: Settings) -> str:
    return log(race, settings)


# ---------------------------------------------------------------------- tracking


def test_run_holds_parameters_metrics_with_cis_tags_and_inputs(race, settings, run_id):
    run = client(settings).get_run(run_id)
    params, metrics = run.data.params, run.data.metrics
    assert run.info.status == "FINISHED"
    assert params["learners"] == "s_lgbm,t_lgbm" and params["seed"] == "1"
    assert params["winner"] == race.result.winner
    assert params["cost.cashback_10.redemption"] == "60000.0"
    assert params["feature_view.customer_activity"] == "3"
    assert params["run_date"] == "2025-01-31"
    assert len(params["dataset.manifest_sha256"]) == 64
    table = race.result.table.set_index("name")
    winner = table.loc[race.result.winner]
    assert metrics["profit_at_k"] == pytest.approx(winner["profit_at_k"])
    assert metrics["profit_at_k_low"] <= metrics["profit_at_k"] <= metrics["profit_at_k_high"]
    for arm in race.frame.treatments:
        for name in ("qini", "auuc", "uplift@0.3"):
            for suffix in ("", "_low", "_high"):
                column = f"{name}{suffix}[{arm}]"
                key = metric_key("race", "s_lgbm", f"{name}{suffix}", arm)
                assert metrics[key] == pytest.approx(table.loc["s_lgbm", column]), key
            assert metrics[metric_key(name, arm)] == pytest.approx(winner[f"{name}[{arm}]"])
    assert metrics["race/treat_all_fee_waiver/profit_at_k"] == pytest.approx(
        table.loc["treat all: fee_waiver", "profit_at_k"]
    )
    assert "race/random/qini/fee_waiver" not in metrics  # baselines have no per-arm ranking
    assert run.data.tags["liftwise.winner"] == race.result.winner
    assert run.data.tags[TAG_MODEL_ID].startswith("m-")
    contexts = {
        tag.value
        for i in run.inputs.dataset_inputs
        for tag in i.tags
        if tag.key.endswith("context")
    }
    assert contexts == {"training", "validation"}


def test_run_artefacts_are_curves_table_bundle_dataset_and_card(race, settings, run_id):
    tracking = client(settings)
    listed = {
        f.path
        for folder in ("race", "race/curves", "race/plots", "bundle", "dataset", "card")
        for f in tracking.list_artifacts(run_id, folder)
    }
    assert {
        "race/race.csv",
        "race/race.json",
        "race/report.html",
        "race/curves/policy_curves.csv",
        "race/curves/arm_curves.csv",
        "race/plots/profit_vs_K.png",
        "race/plots/Qini_curves.png",
        "bundle/model.joblib",
        "bundle/model.json",
        "dataset/dataset.json",
        "card/model_card_inputs.json",
    } <= listed
    root = settings.artifact_root.resolve()
    on_disk = list(root.rglob("policy_curves.csv"))
    assert len(on_disk) == 1, "artefacts live under settings.artifact_root"
    curves = pd.read_csv(on_disk[0])
    winner_curve = race.result.policy_curves[race.result.winner]
    mine = curves[curves["contestant"] == race.result.winner]
    np.testing.assert_allclose(mine["profit"].to_numpy(), winner_curve.y)
    dataset = json.loads(next(root.rglob("dataset.json")).read_text())
    assert dataset["rows"] == len(race.frame.data) == 3_000
    assert dataset["feature_views"] == FEATURE_VERSIONS
    assert dataset["world"] == "fintech" and len(dataset["frame_sha256"]) == 64


def test_pyfunc_model_predicts_what_score_units_gives(race, settings, run_id):
    model_id = client(settings).get_run(run_id).data.tags[TAG_MODEL_ID]
    with active_store(settings) as mlflow:
        model = mlflow.pyfunc.load_model(f"models:/{model_id}")
    rows = race.frame.data.iloc[:200]
    predicted = model.predict(rows[[*race.frame.features, "unit_id"]])
    expected = score_units(race.bundle, rows[list(race.frame.features)].to_numpy(), rows["unit_id"])
    assert predicted["unit_id"].tolist() == rows["unit_id"].tolist()
    for arm, part in expected.groupby("arm", sort=False):
        for column in ("effect", "expected_outcome", "expected_profit"):
            np.testing.assert_allclose(predicted[f"{column}[{arm}]"], part[column], rtol=1e-12)
    profit = np.column_stack([predicted[f"expected_profit[{a}]"] for a in race.frame.treatments])
    best = np.asarray(race.frame.treatments)[profit.argmax(axis=1)]
    best = np.where(profit.max(axis=1) > 0, best, race.frame.control)
    assert predicted["best_arm"].tolist() == best.tolist()
    without_ids = model.predict(rows[list(race.frame.features)])
    assert without_ids["unit_id"].tolist() == list(range(200))
    with pytest.raises(Exception, match=race.frame.features[0]):
        model.predict(rows[list(race.frame.features[1:])])  # the signature names what is missing


def test_model_carries_explicit_signature_and_pinned_requirements(race, settings, run_id):
    model_id = client(settings).get_run(run_id).data.tags[TAG_MODEL_ID]
    with active_store(settings) as mlflow:
        info = mlflow.models.get_model_info(f"models:/{model_id}")
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}"))
    inputs = {c["name"]: c for c in info.signature.inputs.to_dict()}
    assert set(inputs) == {*race.frame.features, "unit_id"}
    assert inputs["unit_id"]["required"] is False
    outputs = [c["name"] for c in info.signature.outputs.to_dict()]
    assert outputs[0] == "unit_id" and "best_arm" in outputs
    requirements = (local / "requirements.txt").read_text().split()
    assert requirements[0].startswith("mlflow==")
    assert requirements[1:] == pip_requirements()
    assert {"lightgbm", "catboost", "numpy", "pandas", "scikit-learn", "numba", "joblib"} <= {
        r.split("==")[0] for r in requirements
    }
    assert not (local / "uv.lock").exists(), "no project lock file sneaks into the model"
    assert (local / "python_model.py").is_file() or any(local.rglob("pyfunc_model.py"))


# ---------------------------------------------------------------------- registry


@pytest.fixture(scope="module")
def registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings)


def test_register_creates_a_challenger_with_its_model_card(race, registry, run_id):
    ref = registry.register(run_id, "card-model", by="ci")
    assert (ref.name, ref.version, ref.aliases) == ("card-model", 1, ("challenger",))
    assert ref.model_uri == "models:/card-model/1" and ref.run_id == run_id
    assert load_bundle(ref.bundle_dir).learner_name == race.result.winner
    version = registry.client.get_model_version("card-model", "1")
    assert version.tags["liftwise.model_card"].endswith("card/card-model/v1/model_card.html")
    paths = registry.card("card-model", 1)
    card = ModelCard.model_validate_json(paths["json"].read_text())
    details = card.model_details
    assert (details.name, details.version.name, details.path) == ("card-model", "1", ref.model_uri)
    assert details.owners and details.licenses and run_id in details.references[0].reference
    train = {d.name: d for d in card.model_parameters.data}
    assert train["validation split"].rows == race.result.n_validation
    assert train["all units (final refit)"].feature_views == FEATURE_VERSIONS
    metrics = card.quantitative_analysis.performance_metrics
    overall = next(m for m in metrics if m.type == "Profit@K" and m.slice is None)
    ci = overall.confidence_interval
    assert ci is not None and ci.lower_bound <= overall.value <= ci.upper_bound
    assert {m.type for m in metrics if m.slice is None} >= {"AUUC", "Qini", "uplift@0.3"}
    slices = [m for m in metrics if m.slice and m.type == "Profit@K"]
    segments = world_segments(race.world, race.frame)[race.result.validation_mask]
    for metric in slices:
        label = metric.slice.split("=", 1)[1]
        assert metric.units == int((segments == label).sum())
        assert metric.confidence_interval is not None
    assert len(slices) >= 2, "the big segments are measured"
    limitations = " ".join(x.description for x in card.considerations.limitations)
    assert "not measured" in limitations or len(slices) == segments.nunique()
    assert card.considerations.users and card.considerations.ethical_considerations
    html = paths["html"].read_text()
    assert "data:image/png;base64," in html and "Profit@K" in html
    markdown = paths["md"].read_text()
    assert "## Quantitative analysis" in markdown and "segment=mass" in markdown
    assert (paths["md"].parent / "profit_vs_K.png").is_file()


def test_promote_needs_an_approval_of_that_exact_version(registry, run_id):
    registry.register(run_id, "gated", by="ci")
    registry.register(run_id, "gated", by="ci")
    with pytest.raises(UserError, match="version 1 is not approved"):
        registry.promote("gated", 1)
    registry.approve("gated", 2, by="ana", note="reviewed the card")
    with pytest.raises(UserError, match="version 1 is not approved"):
        registry.promote("gated", 1)
    ref = registry.promote("gated", 2, by="bob")
    assert ref.aliases == ("champion",)  # challenger moved away from the promoted version
    tags = registry.client.get_model_version("gated", "2").tags
    assert tags["liftwise.approved_by"] == "ana"
    assert tags["liftwise.approval_note"] == "reviewed the card"
    champion = registry.champion("gated")
    assert champion is not None and champion.version == 2
    assert load_bundle(champion.bundle_dir).features
    promote = registry.history("gated")[-1]
    assert (promote.action, promote.by, promote.from_version, promote.to_version) == (
        "promote",
        "bob",
        None,
        2,
    )


def test_champion_at_answers_across_promote_promote_rollback(registry, run_id):
    for _ in range(2):
        registry.register(run_id, "timeline", by="ci")
    with pytest.raises(UserError, match="no champion to roll back"):
        registry.rollback("timeline")
    for version in (1, 2):
        registry.approve("timeline", version, by="ana", note=f"v{version} ok")
    registry.promote("timeline", 1)
    registry.promote("timeline", 2)
    restored = registry.rollback("timeline", by="ops", note="v2 misbehaves")
    assert restored.version == 1 and "champion" in restored.aliases
    assert registry.champion("timeline").version == 1
    moves = [e for e in registry.history("timeline") if e.action in ("promote", "rollback")]
    assert [(e.action, e.from_version, e.to_version) for e in moves] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("rollback", 2, 1),
    ]
    tick = dt.timedelta(microseconds=1)
    first, second, back = (e.at for e in moves)
    assert registry.champion_at("timeline", first - tick) is None
    assert registry.champion_at("timeline", first) == 1
    assert registry.champion_at("timeline", second - tick) == 1
    assert registry.champion_at("timeline", second) == 2
    assert registry.champion_at("timeline", back - tick) == 2
    assert registry.champion_at("timeline", back) == 1
    assert registry.champion_at("timeline", back.replace(tzinfo=None) + tick) == 1  # naive = UTC
    with pytest.raises(UserError, match="no previous champion"):
        registry.rollback("timeline")
    assert registry.champion("timeline").version == 1


def test_two_simultaneous_promotions_leave_a_chained_log(settings, registry, run_id):
    for version in (1, 2):
        registry.register(run_id, "race-condition", by="ci")
        registry.approve("race-condition", version, by="ana", note="ok")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def promote(version: int) -> None:
        start.wait()
        try:
            ModelRegistry(settings).promote("race-condition", version, by=f"p{version}")
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=promote, args=(v,)) for v in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    moves = [e for e in registry.history("race-condition") if e.action == "promote"]
    assert len(moves) == 2
    assert moves[0].from_version is None
    assert moves[1].from_version == moves[0].to_version  # the second saw the first's result
    assert registry.champion("race-condition").version == moves[1].to_version
    assert moves[0].at <= moves[1].at


def test_audit_log_refuses_updates_and_deletes(registry, run_id):
    registry.register(run_id, "append-only", by="ci")
    with sqlite3.connect(registry.audit.path) as connection:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("UPDATE audit_log SET by = 'mallory'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute("DELETE FROM audit_log")
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert registry.history("append-only")[0].by == "ci"


def test_lookups_fail_in_one_line_naming_what_exists(registry, run_id):
    registry.register(run_id, "lookups", by="ci")
    with pytest.raises(UserError, match=r"unknown model 'nope' \(registered: .*lookups"):
        registry.approve("nope", 1, by="ana", note="x")
    with pytest.raises(UserError, match=r"has no version 7 \(versions: 1\)"):
        registry.promote("lookups", 7)
    with pytest.raises(UserError, match="no run 0123abc"):
        registry.register("0123abc", "lookups")
    with pytest.raises(UserError, match="parameter note"):
        registry.approve("lookups", 1, by="ana", note="  ")
    with pytest.raises(UserError, match="parameter by"):
        registry.approve("lookups", 1, by=" ", note="fine")
    with pytest.raises(UserError, match="model names"):
        registry.register(run_id, "a/b")
    assert registry.champion("nope") is None
    assert [v.version for v in registry.versions("lookups")] == [1]
    info = registry.describe_versions("lookups")[0]
    assert info.aliases == ("challenger",) and info.approved_by is None
    assert info.learner and info.profit_at_k is not None


def test_segments_may_be_indexed_by_unit_id(race):
    from liftwise.registry.card import align_segments

    by_row = world_segments(race.world, race.frame)
    by_unit = pd.Series(by_row.to_numpy(), index=race.frame.data["unit_id"].to_numpy())
    shuffled = by_unit.sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(align_segments(shuffled, race.frame), by_row.to_numpy())
    with pytest.raises(UserError, match="no segment for unit_id"):
        align_segments(shuffled.iloc[1:], race.frame)


def test_the_cards_observed_effect_is_the_normal_welch_interval_and_none_without_variance():
    from scipy import stats

    from liftwise.registry.card.stats import observed_effect

    rng = np.random.default_rng(5)
    t = np.repeat([0, 1, 2], [300, 250, 40])
    y = rng.normal(1.0 + 0.2 * t, 1.0 + t)
    treated, control = y[t == 2], y[t == 0]
    effect = treated.mean() - control.mean()
    se = np.sqrt(treated.var(ddof=1) / treated.size + control.var(ddof=1) / control.size)
    half = stats.norm.ppf(0.975) * se
    observed = observed_effect(y, t, 2)
    assert observed.value == pytest.approx(effect, rel=1e-12)
    ci = observed.confidence_interval
    assert ci is not None
    assert (ci.lower_bound, ci.upper_bound) == pytest.approx((effect - half, effect + half))
    flat = observed_effect(np.zeros(590), t, 1)  # nobody converted: no variance, no interval
    assert flat.value == 0.0 and flat.confidence_interval is None
