"""Outcomes of logged decisions, on SQLite and PostgreSQL: through the HTTP app (a real
model deciding real units), through `liftwise outcomes import`, and the per-variant
measurements a rollout reads, checked against pandas on the same rows."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from liftwise.cli import run
from liftwise.evaluate.bundle import load_bundle
from liftwise.features import experiment_frame
from liftwise.rollout.split import VARIANTS
from liftwise.serve.app import create_app
from liftwise.serve.budget import from_ledger_units
from liftwise.serve.config import ServeConfig
from liftwise.serve.exposures import ExposureRecord, open_exposure_log
from liftwise.serve.outcomes import OutcomeInput, OutcomeRefusal, OutcomeStore, outcome_store
from liftwise.simulate import World

START_US = 1_780_000_000_000_000  # 2026-05-28


@pytest.fixture(scope="module")
def units(serve_world: World, serve_model: Path) -> dict[int, dict[str, float]]:
    """Forty units' model features, as a request sends them inline."""
    features = list(load_bundle(serve_model).features)
    frame = experiment_frame(serve_world).data.sort_values("unit_id").head(40)
    rows = frame[features].to_numpy(dtype=np.float64)
    return {
        int(u): dict(zip(features, map(float, row), strict=True))
        for u, row in zip(frame["unit_id"], rows, strict=True)
    }


@pytest.fixture(params=["sqlite", "postgres"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(exposure log URL, a table name unique to the test) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'exposures.db'}", "exposures"
        return
    import psycopg

    dsn = request.getfixturevalue("postgres_dsn")
    table = f"exposures_out_{uuid.uuid4().hex[:10]}"
    try:
        yield dsn, table
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}_outcomes")
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def serve(tmp_path: Path, model: Path, url: str, table: str) -> FastAPI:
    config = ServeConfig(model_dir=model, data_dir=tmp_path / "data", budget=1e9,
                         log_requests=False, exposure_log=url, exposure_table=table,
                         campaign="spring")  # fmt: skip
    return create_app(config)


def decide(client: TestClient, units: dict[int, dict[str, float]], ids: list[int]) -> list[dict]:
    body = {"decisions": [{"request_id": uuid.uuid4().hex, "unit_id": u, "features": units[u]}
                          for u in ids]}  # fmt: skip
    response = client.post("/v1/decisions:batch", json=body)
    assert response.status_code == 200, response.text
    return response.json()["decisions"]


def iso(decision: dict, seconds: float) -> str:
    """A time ``seconds`` after the decision."""
    decided = dt.datetime.fromisoformat(decision["decided_at"].replace("Z", "+00:00"))
    return (decided + dt.timedelta(seconds=seconds)).isoformat()


def stored(app: FastAPI) -> list[Any]:
    return app.state.service.outcomes.read_all()


def refusal(response: Any) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["field"]


# ---------------------------------------------------------------------- over HTTP


def test_outcomes_join_by_decision_and_by_unit_replay_and_refuse(tmp_path, serve_model, units, log_url):  # fmt: skip
    url, table = log_url
    ids = sorted(units)[:20]
    with TestClient(serve(tmp_path, serve_model, url, table)) as client:
        first = decide(client, units, ids)
        second = decide(client, units, ids[:2])  # the same two units, decided again later
        app = client.app
        outcomes = [{"decision_id": d["decision_id"], "revenue": 10.0 + i}
                    for i, d in enumerate(first[2:10])]  # fmt: skip
        outcomes[0]["cost"] = 1.25
        # by unit: at its first decision's time -> the first; now -> the second, later one
        outcomes += [{"unit_id": ids[0], "revenue": 3.0, "observed_at": iso(first[0], 0)},
                     {"unit_id": ids[1], "revenue": 4.0}]  # fmt: skip
        answer = client.post("/v1/outcomes", json={"outcomes": outcomes})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["accepted"], body["replayed"]) == (10, 0)
        got = body["outcomes"]
        assert [o["decision_id"] for o in got] == [d["decision_id"] for d in first[2:10]] + [
            first[0]["decision_id"], second[1]["decision_id"]]  # fmt: skip
        assert got[0]["cost"] == 1.25 and got[0]["cost_given"]
        for o, d in zip(got[1:8], first[3:10], strict=True):  # no cost: the expected cost counts
            assert o["cost"] == d["expected_cost"] and not o["cost_given"]
            assert o["net_profit"] == pytest.approx(o["revenue"] - d["expected_cost"])
            assert (o["request_id"], o["unit_id"], o["campaign"]) == (
                d["request_id"], d["unit_id"], "spring")  # fmt: skip

        # the same outcomes again (the time-less one joins the same decision): replays
        again = client.post("/v1/outcomes", json={"outcomes": outcomes}).json()
        assert (again["accepted"], again["replayed"]) == (0, 10)
        assert len(stored(app)) == 10

        fresh = {"decision_id": first[12]["decision_id"], "revenue": 1.0}
        conflict = [fresh, {"decision_id": first[3]["decision_id"], "revenue": 99.0}]
        assert refusal(client.post("/v1/outcomes", json={"outcomes": conflict})) == (
            409, "outcome_conflict", "outcomes[1].decision_id")  # fmt: skip
        unknown = [fresh, fresh, fresh, {"decision_id": "no-such-decision", "revenue": 1.0}]
        assert refusal(client.post("/v1/outcomes", json={"outcomes": unknown})) == (
            404, "unknown_decision", "outcomes[3].decision_id")  # fmt: skip
        early = [fresh, {"unit_id": ids[5], "revenue": 1.0, "observed_at": iso(first[5], -60)}]
        assert refusal(client.post("/v1/outcomes", json={"outcomes": early})) == (
            404, "unknown_decision", "outcomes[1].unit_id")  # fmt: skip
        stranger = [{"unit_id": 10**12, "revenue": 1.0}]
        assert refusal(client.post("/v1/outcomes", json={"outcomes": stranger}))[:2] == (
            404, "unknown_decision")  # fmt: skip
        before_decision = [{"decision_id": first[6]["decision_id"], "revenue": 1.0,
                            "observed_at": iso(first[6], -60)}]  # fmt: skip
        assert refusal(client.post("/v1/outcomes", json={"outcomes": before_decision})) == (
            422, "invalid_request", "outcomes[0].observed_at")  # fmt: skip
        assert len(stored(app)) == 10  # every refused batch recorded nothing, `fresh` included


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"outcomes": [{"decision_id": "d", "revenue": 1}, {"decision_id": "d", '
         b'"revenue": NaN}]}', 422, "outcomes[1].revenue"),
        (b'{"outcomes": [{"decision_id": "d", "revenue": Infinity}]}', 422, "outcomes[0].revenue"),
        (b'{"outcomes": [{"decision_id": "d", "revenue": 1, "cost": -1}]}', 422,
         "outcomes[0].cost"),
        (b'{"outcomes": [{"revenue": 1}]}', 422, "outcomes[0].decision_id"),
        (b'{"outcomes": [{"decision_id": "d"}]}', 422, "outcomes[0].revenue"),
        (b'{"outcomes": []}', 422, "outcomes"),
        (b'{"outcomes": [', 400, "body"),
    ],
)  # fmt: skip
def test_bad_outcomes_are_refused_naming_the_field(tmp_path, serve_model, body, status, field):
    app = serve(tmp_path, serve_model, f"sqlite:///{tmp_path / 'e.db'}", "exposures")
    with TestClient(app) as client:
        response = client.post("/v1/outcomes", content=body,
                               headers={"content-type": "application/json"})  # fmt: skip
        assert (response.status_code, response.json()["field"]) == (status, field), response.text
        assert response.json()["message"].startswith(f"{field}: ")
        too_many = {"outcomes": [{"decision_id": "d", "revenue": 1.0}] * 10_001}
        assert refusal(client.post("/v1/outcomes", json=too_many)) == (
            413, "batch_too_large", "outcomes")  # fmt: skip


def test_the_route_is_typed_in_openapi(tmp_path, serve_model):
    app = serve(tmp_path, serve_model, f"sqlite:///{tmp_path / 'e.db'}", "exposures")
    operation = app.openapi()["paths"]["/v1/outcomes"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/OutcomeBatch")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/OutcomeResponse")  # fmt: skip
    assert {"404", "409", "422"} <= set(operation["responses"])


# ---------------------------------------------------------------------- the measurements


def rollout_records(n: int, seed: int) -> list[ExposureRecord]:
    """Decisions of two rollouts over two steps and of no rollout, with random costs."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        treated = bool(rng.random() < 0.6)
        rollout = [None, "r1", "r2"][int(rng.integers(3))]
        out.append(ExposureRecord(
            request_id=f"q{i}", decision_id=f"d{i}", campaign="spring", unit_id=i % 97,
            arm="offer" if treated else "control", effect_arm="offer", treated=treated,
            expected_profit=float(rng.normal(2, 1)),
            expected_cost=float(rng.uniform(0.5, 3)) if treated else 0.0,
            cost_units=int(rng.integers(500, 3000)) if treated else 0, effect=None,
            effect_low=None, effect_high=None, reason=None, model_name="m", model_version="1",
            decided_at_us=START_US + i, context=None, rollout=rollout,
            rollout_step=None if rollout is None else int(rng.integers(2)),
            variant=None if rollout is None else VARIANTS[int(rng.integers(3))],
        ))  # fmt: skip
    return out


@pytest.fixture
def measured(log_url) -> Iterator[tuple[OutcomeStore, pd.DataFrame]]:
    """1,500 decisions, 2/3 of them with an outcome (some with a cost), and the same
    rows as one pandas frame."""
    url, table = log_url
    log = open_exposure_log(url, table)
    store = outcome_store(log)
    try:
        records = rollout_records(1_500, seed=5)
        log.append(records)
        rng = np.random.default_rng(6)
        chosen = [r for r in records if rng.random() < 2 / 3]
        inputs = [OutcomeInput(r.decision_id, None, float(rng.gamma(2, 5)),
                               float(rng.uniform(0, 4)) if rng.random() < 0.3 else None)
                  for r in chosen]  # fmt: skip
        store.record(inputs, "spring", START_US + 10**9)
        frame = pd.DataFrame([vars_of(r) for r in records])
        got = pd.DataFrame(
            {"decision_id": [o.decision_id for o in inputs],
             "revenue": [o.revenue for o in inputs], "cost": [o.cost for o in inputs]}
        )  # fmt: skip
        yield store, frame.merge(got, on="decision_id", how="left")
    finally:
        store.close()


def vars_of(record: ExposureRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in ExposureRecord.__dataclass_fields__}


@pytest.mark.parametrize(("rollout", "step"), [("r1", 0), ("r1", 1), ("r2", 1), ("none", 0)])
def test_profit_moments_and_totals_are_what_pandas_computes(measured, rollout, step):
    store, frame = measured
    rows = frame[(frame["rollout"] == rollout) & (frame["rollout_step"] == step)]
    with_outcome = rows[rows["revenue"].notna()]
    net = with_outcome["revenue"] - with_outcome["cost"].fillna(with_outcome["expected_cost"])
    moments = store.profit_moments(rollout, step)
    totals = store.variant_totals(rollout, step)
    assert set(moments) == set(totals) == set(VARIANTS)
    for variant in VARIANTS:
        mine = net[with_outcome["variant"] == variant]
        got = moments[variant]
        assert got.n == len(mine)
        assert got.total == pytest.approx(mine.sum(), rel=1e-12, abs=1e-9)
        assert got.total_squares == pytest.approx((mine**2).sum(), rel=1e-12, abs=1e-9)
        if len(mine) > 1:
            assert got.variance == pytest.approx(mine.var(ddof=1), rel=1e-9)
        part = rows[rows["variant"] == variant]
        expected = (len(part), int(part["treated"].sum()),
                    from_ledger_units(int(part["cost_units"].sum())),
                    int(part["revenue"].notna().sum()))  # fmt: skip
        total = totals[variant]
        assert (total.decisions, total.treated, total.spend, total.outcomes) == expected
        assert total.expected_profit == pytest.approx(part["expected_profit"].sum(), abs=1e-9)
        assert total.revenue == pytest.approx(part["revenue"].sum(), abs=1e-9)
        assert total.net_profit == pytest.approx(mine.sum(), abs=1e-9)


def test_totals_over_every_step(measured):
    store, frame = measured
    totals = store.variant_totals("r2")
    rows = frame[frame["rollout"] == "r2"]
    assert sum(t.decisions for t in totals.values()) == len(rows) > 0
    assert sum(t.outcomes for t in totals.values()) == rows["revenue"].notna().sum()


def test_an_outcome_is_refused_for_a_decision_of_nobody(measured):
    store, _ = measured
    with pytest.raises(OutcomeRefusal) as refused:
        store.record([OutcomeInput(None, 5, 1.0, None, START_US - 1)], "spring", START_US)
    assert (refused.value.status, refused.value.field, refused.value.index) == (404, "unit_id", 0)
    with pytest.raises(OutcomeRefusal) as refused:
        store.record([OutcomeInput(None, 5, 1.0)], "autumn", START_US + 10**9)  # other campaign
    assert refused.value.code == "unknown_decision"


# ---------------------------------------------------------------------- the batch import


def test_outcomes_import_from_csv_and_parquet(tmp_path, log_url, capsys):
    url, table = log_url
    log = open_exposure_log(url, table)
    records = rollout_records(60, seed=8)
    log.append(records)
    store = outcome_store(log)
    flags = ["--campaign", "spring", "--exposure-log", url, "--exposure-table", table]
    by_id = pd.DataFrame({"decision_id": [r.decision_id for r in records[:30]],
                          "revenue": np.arange(30) * 1.5,
                          "cost": [None if i % 3 else 0.5 for i in range(30)]})  # fmt: skip
    by_id.to_csv(tmp_path / "by_id.csv", index=False)
    # units 40 and 41 have one decision each (d40, d41: decided at START + 40, + 41 µs)
    by_unit = pd.DataFrame({"unit_id": [40, 41], "revenue": [7.0, 8.0],
                            "observed_at": pd.to_datetime([START_US + 50, START_US + 41],
                                                          unit="us", utc=True)})  # fmt: skip
    by_unit.to_parquet(tmp_path / "by_unit.parquet")
    try:
        assert run(["outcomes", "import", str(tmp_path / "by_id.csv"), *flags]) == 0
        assert "30 accepted, 0 replayed" in capsys.readouterr().out
        assert run(["outcomes", "import", str(tmp_path / "by_id.csv"), *flags]) == 0
        assert "0 accepted, 30 replayed" in capsys.readouterr().out
        assert run(["outcomes", "import", str(tmp_path / "by_unit.parquet"), *flags]) == 0
        assert "2 accepted, 0 replayed" in capsys.readouterr().out
        recorded = {o.decision_id: o for o in store.read_all()}
        assert len(recorded) == 32
        assert (recorded["d40"].revenue, recorded["d41"].revenue) == (7.0, 8.0)
        assert recorded["d3"].cost == 0.5 and recorded["d4"].cost is None
        assert recorded["d40"].observed_at_us == START_US + 50

        changed = by_id.assign(revenue=by_id["revenue"] + (by_id.index == 4))
        changed.to_csv(tmp_path / "changed.csv", index=False)
        assert run(["outcomes", "import", str(tmp_path / "changed.csv"), *flags]) == 2
        err = capsys.readouterr().err
        assert "changed.csv" in err and "column 'decision_id', row 4" in err
        assert "outcome_conflict" in err
        bad = pd.DataFrame({"unit_id": [1, 2, 3], "revenue": ["1", "x", "2"]})
        bad.to_csv(tmp_path / "bad.csv", index=False)
        assert run(["outcomes", "import", str(tmp_path / "bad.csv"), *flags]) == 2
        assert "bad.csv, column 'revenue', row 1: not a finite number" in capsys.readouterr().err
        early = by_unit.assign(observed_at=pd.to_datetime([START_US + 50, START_US - 5],
                                                          unit="us", utc=True))  # fmt: skip
        early.to_parquet(tmp_path / "early.parquet")
        assert run(["outcomes", "import", str(tmp_path / "early.parquet"), *flags]) == 2
        assert "column 'unit_id', row 1" in capsys.readouterr().err
        assert len(store.read_all()) == 32  # refused files recorded nothing
    finally:
        store.close()


def test_outcomes_import_without_a_log_is_one_line(tmp_path, capsys):
    (tmp_path / "o.csv").write_text("decision_id,revenue\nd1,1\n")
    code = run(["outcomes", "import", str(tmp_path / "o.csv"), "--campaign", "c",
                "--data-dir", str(tmp_path / "data")])  # fmt: skip
    assert code == 2
    assert "--exposure-log: no exposure log at sqlite:///" in capsys.readouterr().err
