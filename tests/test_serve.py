"""The decision service in-process (FastAPI TestClient on the real app, SQLite stores in a
temporary directory; PostgreSQL, Redis and Feast where a test says so): decisions, the
value model shared with batch decisions, idempotent retries, refusals naming the field with
nothing logged, budget and pacing, capacities, operations routes, the compiled predictor,
and a schemathesis run against the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from liftwise.decide.batch import decision_economics, value_units
from liftwise.decide.config import DecisionConfig
from liftwise.decide.guardrails import Reason
from liftwise.evaluate.bundle import ModelBundle, load_bundle
from liftwise.features import experiment_frame
from liftwise.learn.meta import SLearner, TLearner, XLearner
from liftwise.serve.app import create_app
from liftwise.serve.budget import Limits, Offer, Pacing, RedisBudget, grant_offers
from liftwise.serve.config import ServeConfig
from liftwise.serve.exposures import ExposureRecord, PostgresExposureLog
from liftwise.serve.predict import outcome_predictor
from liftwise.simulate import World

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# ---------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def bundle(serve_model: Path) -> ModelBundle:
    return load_bundle(serve_model)


@pytest.fixture(scope="module")
def units(serve_world: World, bundle: ModelBundle) -> dict[int, dict[str, float]]:
    """Every unit's model features as a request sends them inline."""
    frame = experiment_frame(serve_world).data
    X = frame[list(bundle.features)].to_numpy(dtype=np.float64)
    return {
        int(unit): dict(zip(bundle.features, map(float, row), strict=True))
        for unit, row in zip(frame["unit_id"], X, strict=True)
    }


def serve(tmp_path: Path, model: Path, **config: Any) -> FastAPI:
    """The app on a fresh data directory (request logs off: tests read the log table)."""
    values: dict[str, Any] = {"budget": 1e9, "log_requests": False, **config}
    return create_app(ServeConfig(model_dir=model, data_dir=tmp_path / "data", **values))


def ask(unit: int, features: dict[str, float], request_id: str | None = None) -> dict:
    return {"request_id": request_id or uuid.uuid4().hex, "unit_id": unit, "features": features}


def logged(app: FastAPI) -> list[ExposureRecord]:
    return app.state.service.ledger.log.read_all()


def first_units(units: dict[int, dict[str, float]], n: int) -> list[int]:
    return sorted(units)[:n]


# ---------------------------------------------------------------------- decisions


def test_a_decision_names_arm_profit_interval_reason_model_and_id(tmp_path, serve_model, units, bundle):  # fmt: skip
    app = serve(tmp_path, serve_model)
    with TestClient(app) as client:
        unit = first_units(units, 1)[0]
        response = client.post("/v1/decisions", json=ask(unit, units[unit], "r-1"))
        assert response.status_code == 200
        body = response.json()
    assert set(body) == {
        "request_id", "decision_id", "unit_id", "arm", "treated", "expected_profit",
        "expected_cost", "effect_arm", "effect", "effect_low", "effect_high", "reason",
        "model", "decided_at", "replayed",
    }  # fmt: skip
    assert body["request_id"] == "r-1" and body["unit_id"] == unit and not body["replayed"]
    assert UUID7.match(body["decision_id"])
    assert body["arm"] in bundle.arms and body["effect_arm"] in bundle.treatments
    assert body["model"]["name"] == serve_model.name and len(body["model"]["version"]) == 12
    assert body["treated"] == (body["arm"] != bundle.arms[0]) == (body["reason"] is None)
    assert body["effect_low"] is None and body["effect_high"] is None  # a T-learner: no interval
    [row] = logged(app)
    assert (row.request_id, row.decision_id, row.arm) == ("r-1", body["decision_id"], body["arm"])


def test_served_profit_is_the_batch_value_model(tmp_path, serve_model, units, bundle):
    """With money to spare every unit gets its most profitable arm, valued exactly as
    `liftwise decide` values it."""
    ids = first_units(units, 60)
    app = serve(tmp_path, serve_model)
    with TestClient(app) as client:
        response = client.post("/v1/decisions:batch",
                               json={"decisions": [ask(u, units[u]) for u in ids]})  # fmt: skip
    assert response.status_code == 200
    decisions = response.json()["decisions"]
    X = np.array([[units[u][f] for f in bundle.features] for u in ids])
    config = DecisionConfig(budget=1e9)
    valued = value_units(bundle, X, decision_economics(bundle, config), None)
    best = valued.profit.argmax(axis=1)
    for i, decision in enumerate(decisions):
        assert decision["unit_id"] == ids[i]
        assert decision["effect_arm"] == bundle.treatments[best[i]]
        assert decision["effect"] == pytest.approx(valued.effect[i, best[i]], rel=1e-12)
        if valued.profit[i, best[i]] > 0:
            assert decision["arm"] == bundle.treatments[best[i]]
            assert decision["expected_profit"] == pytest.approx(valued.profit[i, best[i]], rel=1e-12)  # fmt: skip
            assert decision["expected_cost"] == pytest.approx(valued.cost[i, best[i]], rel=1e-12)
        else:
            assert (decision["arm"], decision["reason"]) == (bundle.arms[0], "negative_profit")
            assert decision["expected_profit"] == 0.0
    assert any(d["treated"] for d in decisions) and not all(d["treated"] for d in decisions)


def test_a_retry_returns_the_same_decision_and_is_logged_once(tmp_path, serve_model, units):
    a, b = first_units(units, 2)
    app = serve(tmp_path, serve_model)
    with TestClient(app) as client:
        first = client.post("/v1/decisions", json=ask(a, units[a], "same")).json()
        again = client.post("/v1/decisions", json=ask(a, units[a], "same")).json()
        assert again == {**first, "replayed": True}
        batch = client.post("/v1/decisions:batch", json={"decisions": [
            ask(b, units[b], "in-batch"), ask(a, units[a], "same"), ask(b, units[b], "in-batch"),
        ]}).json()["decisions"]  # fmt: skip
        assert [d["replayed"] for d in batch] == [False, True, True]
        assert batch[1] == again and batch[2] == {**batch[0], "replayed": True}
        other = client.post("/v1/decisions", json=ask(b, units[b], "same"))
        assert other.status_code == 409
        assert other.json()["field"] == "request_id" and str(a) in other.json()["message"]
        clash = client.post("/v1/decisions:batch", json={"decisions": [
            ask(a, units[a], "fresh-1"), ask(b, units[b], "fresh-1")]})  # fmt: skip
        assert clash.status_code == 409 and clash.json()["field"] == "decisions[1].request_id"
        metrics = client.get("/metrics").text
    assert sorted(r.request_id for r in logged(app)) == ["in-batch", "same"]
    assert "liftwise_serve_replays_total 3.0" in metrics


# ---------------------------------------------------------------------- refusals


BAD_BODIES = [
    (b'{"request_id": "x", "unit_id": 1', 400, "invalid_json", "body"),
    (b"[]", 422, "invalid_request", "body"),
    (b'{"unit_id": 1}', 422, "invalid_request", "request_id"),
    (b'{"request_id": "x", "unit_id": "7"}', 422, "invalid_request", "unit_id"),
    (b'{"request_id": "x", "unit_id": 1.5}', 422, "invalid_request", "unit_id"),
    (b'{"request_id": "x", "unit_id": -1}', 422, "invalid_request", "unit_id"),
    (b'{"request_id": "has space", "unit_id": 1}', 422, "invalid_request", "request_id"),
    (b'{"request_id": "x", "unit_id": 1, "colour": "red"}', 422, "invalid_request", "colour"),
    (b'{"request_id": "x", "unit_id": 1, "features": {"age_band": [2]}}', 422,
     "invalid_request", "features.age_band"),
    (b'{"request_id": "x", "unit_id": 1, "features": {"age_band": 1e999}}', 422,
     "invalid_request", "features.age_band"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "code", "field"), BAD_BODIES)
def test_bad_bodies_are_refused_naming_the_field(tmp_path, serve_model, body, status, code, field):  # fmt: skip
    app = serve(tmp_path, serve_model)
    with TestClient(app) as client:
        response = client.post("/v1/decisions", content=body,
                               headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == status
    error = response.json()
    assert (error["error"], error["field"]) == (code, field)
    assert error["message"].startswith(f"{field}: ")
    assert logged(app) == []


def test_missing_mistyped_and_oversized_requests_log_nothing(tmp_path, serve_model, units, bundle):  # fmt: skip
    a, b, c = first_units(units, 3)
    feature = bundle.features[0]
    app = serve(tmp_path, serve_model, max_batch=3)
    with TestClient(app) as client:
        missing = {k: v for k, v in units[a].items() if k != feature}
        response = client.post("/v1/decisions", json=ask(a, missing))
        assert response.status_code == 422 and response.json()["field"] == f"features.{feature}"
        assert "no online feature store" in response.json()["message"]
        mistyped = {**units[b], feature: "twelve"}
        batch = [ask(a, units[a]), ask(b, mistyped)]
        response = client.post("/v1/decisions:batch", json={"decisions": batch})
        assert response.status_code == 422
        assert response.json()["field"] == f"decisions[1].features.{feature}"
        assert "must be a number" in response.json()["message"]
        oversized = [ask(u, units[u]) for u in (a, b, c, a)]
        response = client.post("/v1/decisions:batch", json={"decisions": oversized})
        assert response.status_code == 413 and response.json()["field"] == "decisions"
        assert "4 units, more than this server's maximum of 3" in response.json()["message"]
        response = client.post("/v1/decisions:batch", json={"decisions": []})
        assert response.status_code == 422 and response.json()["field"] == "decisions"
        metrics = client.get("/metrics").text
        budget = client.get("/v1/budget").json()
    assert logged(app) == [] and budget["spent"] == 0
    assert 'liftwise_serve_errors_total{error="mistyped_feature",route="/v1/decisions:batch"} 1.0' in metrics  # fmt: skip
    assert 'liftwise_serve_requests_total{route="/v1/decisions:batch",status="413"} 1.0' in metrics


# ---------------------------------------------------------------------- budget and pacing


def test_a_small_budget_is_spent_best_units_first_and_never_overspent(tmp_path, serve_model, units):  # fmt: skip
    ids = first_units(units, 400)
    budget = 150_000.0
    app = serve(tmp_path, serve_model, budget=budget)
    with TestClient(app) as client:
        decisions = [
            d
            for start in range(0, len(ids), 100)
            for d in client.post("/v1/decisions:batch", json={"decisions": [
                ask(u, units[u]) for u in ids[start : start + 100]]}).json()["decisions"]
        ]  # fmt: skip
        state = client.get("/v1/budget").json()
    treated = [d for d in decisions if d["treated"]]
    spent = sum(d["expected_cost"] for d in treated)
    assert treated and spent <= budget
    assert state["spent"] == pytest.approx(spent, abs=1e-3 * len(treated))  # ledger rounds up
    assert state["spent"] <= budget and state["remaining"] == budget - state["spent"]
    assert sum(state["units"].values()) == len(treated)
    reasons = {d["reason"] for d in decisions if not d["treated"]}
    assert "budget" in reasons
    # within the first batch, the units that got money are the most profitable ones
    first = decisions[:100]
    kept = min(d["expected_profit"] for d in first if d["treated"])
    refused = [d for d in first if d["reason"] == "budget"]
    cheapest = min(d["expected_cost"] for d in treated)
    assert all(state["remaining"] < cheapest or d["expected_profit"] <= kept for d in refused)


def test_pacing_holds_spend_to_the_share_of_the_window_elapsed(tmp_path, serve_model, units):
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=3)
    budget = 400_000.0
    app = serve(tmp_path, serve_model, budget=budget, campaign_start=start, campaign_end=end)
    ids = first_units(units, 300)
    with TestClient(app) as client:
        decisions = client.post("/v1/decisions:batch", json={"decisions": [
            ask(u, units[u]) for u in ids]}).json()["decisions"]  # fmt: skip
        state = client.get("/v1/budget").json()
        metrics = client.get("/metrics").text
    assert {d["reason"] for d in decisions if not d["treated"]} >= {"pacing"}
    # the window's end, for the budget alerts' projection (docs/rollouts.md#alerts)
    window_end = re.search(
        r'liftwise_budget_window_end_seconds\{campaign="default"\} (\S+)', metrics
    )
    assert window_end and float(window_end[1]) == end.replace(tzinfo=dt.UTC).timestamp()
    assert state["spent"] <= state["allowed_now"] < budget / 2  # about a quarter has elapsed
    assert state["window_start"].startswith(start.isoformat()[:16])


def test_pacing_is_linear_over_the_window_and_zero_before_it():
    start = dt.datetime(2025, 3, 1)
    pacing = Pacing(total=1_000, window=(start, start + dt.timedelta(days=10)))
    assert pacing.allowance(start - dt.timedelta(days=1)) == 0
    assert pacing.allowance(start + dt.timedelta(days=2.5)) == 250
    assert pacing.allowance(start + dt.timedelta(days=11)) == 1_000
    assert Pacing(total=7).allowance(start) == 7


def test_grants_take_the_first_arm_that_fits_and_name_why_not():
    limits = Limits(total=100, paced=60, capacity={"b": 1})
    offers = [
        Offer("1", ("a", "b"), (50, 5)),  # a fits
        Offer("2", ("b",), (5,)),  # b fits (capacity 1)
        Offer("3", ("b", "a"), (5, 50)),  # b is full; a exceeds the pacing (55 + 50 > 60)
        Offer("4", ("a",), (60,)),  # exceeds the budget
        Offer("5", ("a",), (5,)),  # fits
    ]
    grants, spent = grant_offers(offers, limits, 0, {})
    assert [(g.choice, g.reason) for g in grants] == [
        (0, Reason.TREATED), (0, Reason.TREATED), (-1, Reason.CAPACITY),
        (-1, Reason.BUDGET), (0, Reason.TREATED),
    ]  # fmt: skip
    assert spent == 60 and [g.amount for g in grants] == [50, 5, 0, 0, 5]


def test_redis_reservations_follow_the_same_rule(redis_url):
    """The Lua script is a translation of grant_offers: same grants on random offers."""
    rng = np.random.default_rng(4)
    campaign = f"test-{uuid.uuid4().hex}"
    store = RedisBudget(redis_url, campaign)
    try:
        limits = Limits(total=2_000, paced=1_500, capacity={"a": 7, "c": 3})
        arm_lists = [rng.permutation(["a", "b", "c"])[: rng.integers(1, 4)] for _ in range(60)]
        offers = [
            Offer(uuid.uuid4().hex, tuple(arms), tuple(map(int, rng.integers(1, 120, len(arms)))))
            for arms in arm_lists
        ]
        expected, spent = grant_offers(offers, limits, 0, {})
        got = store.reserve(offers[:25], limits, 1) + store.reserve(offers[25:], limits, 2)
        assert got == expected
        state = store.state()
        assert state.spent == spent and state.pending == sum(g.choice >= 0 for g in got)
        store.release([o.key for o in offers[:10]])
        assert store.state().spent == spent - sum(g.amount for g in expected[:10])
    finally:
        store.reset()
        store.close()


def test_capacity_caps_an_arm(tmp_path, serve_model, units, bundle):
    config = tmp_path / "rules.yaml"
    arm = bundle.treatments[0]
    config.write_text(f"budget: 1000000000\ncapacity: {{{arm}: 2}}\n")
    app = serve(tmp_path, serve_model, decision_config=config, budget=None)
    with TestClient(app) as client:
        decisions = client.post("/v1/decisions:batch", json={"decisions": [
            ask(u, units[u]) for u in first_units(units, 300)]}).json()["decisions"]  # fmt: skip
    assert sum(d["arm"] == arm for d in decisions) == 2
    refused = [d for d in decisions if not d["treated"] and d["effect_arm"] == arm]
    assert all(d["reason"] in ("capacity", "negative_profit") for d in refused)
    assert "capacity" in {d["reason"] for d in refused} or any(
        d["treated"] and d["arm"] != arm for d in decisions
    )  # units that wanted the full arm got their next best, or were refused for capacity


# ---------------------------------------------------------------------- operations


def test_health_readiness_metrics_model_and_docs(tmp_path, serve_model, units):
    app = serve(tmp_path, serve_model, campaign="spring")
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"model": "ok", "stores": "ok"}
        for unit in first_units(units, 20):
            assert client.post("/v1/decisions", json=ask(unit, units[unit])).status_code == 200
        client.post("/v1/decisions", content=b"{")
        version = client.get("/v1/model").json()["version"]
        metrics = client.get("/metrics")
        docs, spec = client.get("/docs"), client.get("/openapi.json").json()
    text = metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'liftwise_serve_requests_total{route="/v1/decisions",status="200"} 20.0' in text
    assert 'liftwise_serve_errors_total{error="invalid_json",route="/v1/decisions"} 1.0' in text
    assert 'liftwise_serve_request_seconds_bucket{le="0.01",route="/v1/decisions"}' in text
    assert 'liftwise_serve_request_seconds_count{route="/v1/decisions"} 21.0' in text
    per_arm = re.findall(
        r'liftwise_serve_decisions_total\{arm="[^"]+",reason="[^"]+"\} (\S+)', text
    )
    assert sum(float(v) for v in per_arm) == 20
    assert re.search(r'liftwise_budget_spent\{campaign="spring"\} \d', text)
    assert re.search(r'liftwise_budget_total\{campaign="spring"\} 1e\+09', text)
    assert "liftwise_budget_window_end_seconds" not in text  # no window, no end
    assert f'liftwise_model_info{{name="{serve_model.name}",version="{version}"}} 1.0' in text
    assert docs.status_code == 200
    request = spec["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]
    assert request["schema"] == {"$ref": "#/components/schemas/DecisionRequest"}
    assert spec["components"]["schemas"]["BatchDecisionRequest"]["properties"]["decisions"]["maxItems"] == 1000  # fmt: skip


def test_requests_are_logged_as_json_lines(tmp_path, serve_model, units, capsys):
    import json

    unit = first_units(units, 1)[0]
    app = serve(tmp_path, serve_model, log_requests=True)
    with TestClient(app) as client:
        client.post("/v1/decisions", json=ask(unit, units[unit], "logged-1"))
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    [line] = [x for x in lines if x.get("event") == "request"]
    assert line["request_id"] == "logged-1" and line["status"] == 200 and line["unit_id"] == unit
    assert {"ts", "level", "latency_ms", "arm", "decision_id", "model_version"} <= set(line)
    assert any(x.get("event") == "model_swap" for x in lines)  # the first load, logged


# ---------------------------------------------------------------------- features


@pytest.fixture(scope="module")
def feature_repo(serve_world: World, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The world's Feast repo with its online store (SQLite) filled at the decision time."""
    from liftwise.features.snapshots import decision_time
    from liftwise.features.store import build_feature_repo
    from liftwise.settings import Settings

    data_dir = tmp_path_factory.mktemp("serve_features")
    repo = build_feature_repo(serve_world, Settings(data_dir=data_dir), every_days=7)
    repo.materialize(decision_time(serve_world))
    return repo


def test_online_features_unknown_units_and_inline_precedence(tmp_path, feature_repo, serve_model, units, bundle):  # fmt: skip
    repo = feature_repo
    ids = first_units(units, 5)
    stored = repo.online_features(ids, features=list(bundle.features))
    app = serve(tmp_path, serve_model, feature_repo=repo.path)
    with TestClient(app) as client:
        assert client.get("/readyz").json()["checks"]["feature_repo"] == "ok"
        from_store = client.post("/v1/decisions:batch", json={"decisions": [
            {"request_id": f"s{u}", "unit_id": u} for u in ids]}).json()["decisions"]  # fmt: skip
        inline = client.post("/v1/decisions:batch", json={"decisions": [
            ask(u, stored.loc[u].to_dict()) for u in ids]}).json()["decisions"]  # fmt: skip
        assert [d["effect"] for d in from_store] == [d["effect"] for d in inline]
        feature = bundle.features[0]
        partial = client.post("/v1/decisions", json={"request_id": "p", "unit_id": ids[0],
                              "features": {feature: 1234.0}}).json()  # fmt: skip
        unknown = client.post("/v1/decisions", json={"request_id": "u", "unit_id": 10**12})
    assert partial["effect"] != from_store[0]["effect"]  # the inline value wins
    assert unknown.status_code == 404 and unknown.json()["field"] == "unit_id"
    assert "not in the online feature store" in unknown.json()["message"]
    assert "u" not in {r.request_id for r in logged(app)}


# ---------------------------------------------------------------------- exposure log on PostgreSQL


def test_postgres_exposure_log_is_idempotent_and_complete(tmp_path, serve_model, units, postgres_dsn):  # fmt: skip
    import psycopg

    table = f"exposures_{uuid.uuid4().hex[:12]}"
    ids = first_units(units, 30)
    app = serve(tmp_path, serve_model, exposure_log=postgres_dsn, exposure_table=table,
                budget=200_000.0)  # fmt: skip
    try:
        with TestClient(app) as client:
            batch = client.post("/v1/decisions:batch", json={"decisions": [
                ask(u, units[u], f"pg-{u}") for u in ids]}).json()["decisions"]  # fmt: skip
            retry = client.post("/v1/decisions", json=ask(ids[3], units[ids[3]], f"pg-{ids[3]}"))
            clash = client.post("/v1/decisions", json=ask(ids[4], units[ids[4]], f"pg-{ids[3]}"))
            bad = client.post("/v1/decisions", json=ask(ids[5], {"age_band": "x"}, "pg-bad"))
            state = client.get("/v1/budget").json()
            assert client.get("/readyz").status_code == 200
        rows = PostgresExposureLog(postgres_dsn, table).read_all()
        assert retry.json() == {**batch[3], "replayed": True}
        assert clash.status_code == 409 and bad.status_code == 422
        assert sorted(r.request_id for r in rows) == sorted(f"pg-{u}" for u in ids)
        by_id = {r.request_id: r for r in rows}
        for decision in batch:
            row = by_id[decision["request_id"]]
            assert (row.decision_id, row.arm, row.expected_cost) == (
                decision["decision_id"], decision["arm"], decision["expected_cost"])  # fmt: skip
        spent_units = sum(r.cost_units for r in rows)
        assert state["spent"] == spent_units / 1000 and state["spent"] <= 200_000
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


# ---------------------------------------------------------------------- the compiled predictor


def test_compiled_boosters_predict_what_the_learners_predict(serve_world):
    """S- and T-learners on LightGBM (one arm's outcome constant: a ConstantModel) through
    the compiled kernel equal their own predict_outcomes, with missing values and zeros."""
    frame = experiment_frame(serve_world)
    X, t = frame.X(), frame.treatment_codes()
    y = frame.y("converted")
    y_const = np.where(t == 1, 0.0, y)  # arm 1 never converts
    params = {"n_estimators": 40, "num_leaves": 15, "verbose": -1}
    rng = np.random.default_rng(9)
    probe = X[:700].copy()
    probe[rng.random(probe.shape) < 0.1] = np.nan
    probe[rng.random(probe.shape) < 0.1] = 0.0
    for learner in (SLearner(params=params, random_state=1).fit(X, t, y),
                    TLearner(params=params, random_state=1).fit(X, t, y_const),
                    TLearner(params={**params, "objective": "regression"}, random_state=1)
                    .fit(X, t, frame.y("revenue") if "revenue" in frame.outcomes else y)):  # fmt: skip
        fast = outcome_predictor(learner)
        assert fast != learner.predict_outcomes
        expected = learner.predict_outcomes(probe)
        np.testing.assert_allclose(fast(probe), expected, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(fast(probe[:1]), expected[:1], rtol=1e-12, atol=1e-15)
    other = XLearner(params=params, random_state=1).fit(X[:1500], t[:1500], y[:1500])
    assert outcome_predictor(other) == other.predict_outcomes  # served by the learner itself


# ---------------------------------------------------------------------- schemathesis


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_no_generated_request_gets_a_server_error(tmp_path, serve_model, feature_repo, mode):
    """Requests generated from the OpenAPI document, valid (positive) and invalid
    (negative), for every operation: none is answered with a 5xx. With the online store,
    generated small unit ids are real units and get decisions."""
    app = serve(tmp_path, serve_model, max_batch=20, feature_repo=feature_repo.path)
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: set[int] = set()

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=api.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        response = case.call()
        seen.add(response.status_code)
        assert response.status_code < 500, (case.method, case.path, case.body, response.text)

    check()
    if mode is schemathesis.GenerationMode.POSITIVE:
        assert 200 in seen  # some generated requests were decided
    else:
        assert seen and all(400 <= code < 500 or code == 200 for code in seen)
