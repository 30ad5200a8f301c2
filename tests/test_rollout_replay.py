"""Rehearsal candidates (liftwise.rollout.faults) and the live traffic replay
(liftwise.rollout.replay) against a real `liftwise serve`: the faults do exactly what they
say on the service's own scoring path, and a replay's decisions, true values and fed-back
outcomes agree with the service's exposure log and the world's ground truth."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from liftwise.cli import run
from liftwise.errors import UserError
from liftwise.evaluate.bundle import ModelBundle, load_bundle
from liftwise.features import experiment_frame
from liftwise.rollout.faults import InjectedFailure, RehearsalLearner, rehearsal_bundle
from liftwise.rollout.replay import NO_ROLLOUT, replay, world_traffic
from liftwise.serve.exposures import SqliteExposureLog
from liftwise.serve.outcomes import outcome_store
from liftwise.serve.predict import outcome_predictor
from liftwise.serve.sqlite import SqliteDatabase
from liftwise.simulate import World
from liftwise.simulate.truth import expected_net_matrix
from test_serve_server import serving


@pytest.fixture(scope="module")
def model(serve_model: Path) -> ModelBundle:
    return load_bundle(serve_model)


@pytest.fixture(scope="module")
def X(serve_world: World, model: ModelBundle) -> np.ndarray:
    frame = experiment_frame(serve_world).data
    return frame[list(model.features)].to_numpy(dtype=np.float64)[:500]


# ---------------------------------------------------------------------- rehearsal candidates


def test_same_predicts_exactly_the_original_on_the_compiled_path(model, X, monkeypatch):
    same = rehearsal_bundle(model, "same")
    assert isinstance(same.learner, RehearsalLearner) and same.learner.inner is model.learner
    assert np.array_equal(same.learner.predict_outcomes(X), model.learner.predict_outcomes(X))
    # the service compiles the wrapped T-learner, exactly as it compiles the original: the
    # learner's own method is never called on the request path
    original = outcome_predictor(model.learner)(X)

    def not_compiled(_X: object) -> np.ndarray:
        raise AssertionError("served through the learner's own predict_outcomes")

    monkeypatch.setattr(model.learner, "predict_outcomes", not_compiled)
    assert np.array_equal(outcome_predictor(same.learner)(X), original)
    assert same.features == model.features and same.arms == model.arms
    assert same.metadata["rehearsal"]["kind"] == "same" and same.learner_name.endswith("+same")


def test_harmful_reflects_every_arms_effect_around_control(model, X):
    harmful = rehearsal_bundle(model, "harmful")
    for predict, reference in (
        (harmful.learner.predict_outcomes, model.learner.predict_outcomes),
        (outcome_predictor(harmful.learner), outcome_predictor(model.learner)),
    ):
        mu, mu0 = predict(X), reference(X)
        assert np.array_equal(mu[:, 0], mu0[:, 0])  # control untouched
        np.testing.assert_allclose(mu[:, 1:] - mu[:, :1], -(mu0[:, 1:] - mu0[:, :1]), atol=1e-12)
    # the units the original thinks treatment hurts most are the harmful one's favourites
    effects = model.learner.predict(X)
    worst = np.unravel_index(np.argmin(effects), effects.shape)
    assert harmful.learner.predict(X)[worst] == pytest.approx(-effects[worst])
    assert harmful.learner.predict(X).max() == pytest.approx(-effects.min())


def test_slow_adds_its_latency_to_every_call_and_predicts_the_same(model, X):
    slow = rehearsal_bundle(model, "slow", latency_ms=60)
    served = outcome_predictor(slow.learner)
    for predict in (served, slow.learner.predict_outcomes):
        started = time.perf_counter()
        out = predict(X[:1])
        assert time.perf_counter() - started >= 0.060  # a sleep never returns early
        assert np.array_equal(out, outcome_predictor(model.learner)(X[:1]))


def test_broken_raises_on_its_share_of_calls_after_the_warm_up(model, X):
    broken = rehearsal_bundle(model, "broken")
    served = outcome_predictor(broken.learner)
    served(X[:1])  # the load's warm-up call succeeds: the model must load to serve
    for _ in range(3):
        with pytest.raises(RuntimeError, match="injected"):
            served(X[:1])
    partial = outcome_predictor(rehearsal_bundle(model, "broken", error_rate=0.25, seed=7).learner)
    failures = 0
    for _ in range(2000):
        try:
            partial(X[:1])
        except InjectedFailure:
            failures += 1
    assert (
        0.25 * 2000 - 4 * np.sqrt(2000 * 0.25 * 0.75)
        < failures
        < 0.25 * 2000 + 4 * np.sqrt(2000 * 0.25 * 0.75)
    )
    # a pickled copy (what a worker loads) starts afresh: its own first call succeeds
    copy = pickle.loads(pickle.dumps(broken.learner))
    copy.predict_outcomes(X[:1])
    with pytest.raises(InjectedFailure):
        copy.predict_outcomes(X[:1])


def test_rehearsal_settings_are_checked_and_name_their_parameter(model):
    with pytest.raises(UserError, match="kinds: slow, broken, harmful, same") as err:
        rehearsal_bundle(model, "flaky")
    assert err.value.parameter == "kind"
    for bad in ({"error_rate": 1.5}, {"latency_ms": -1.0}):
        with pytest.raises(UserError) as err:
            rehearsal_bundle(model, "slow", **bad)
        assert err.value.parameter == next(iter(bad))


def test_cli_writes_a_rehearsal_bundle_directory(serve_model, tmp_path, X, capsys):
    out = tmp_path / "harmful"
    argv = ["rollout", "rehearsal-candidate", "--model", str(serve_model), "--kind", "harmful",
            "--out", str(out)]  # fmt: skip
    assert run(argv) == 0
    bundle = load_bundle(out)
    assert isinstance(bundle.learner, RehearsalLearner) and bundle.learner.kind == "harmful"
    original = load_bundle(serve_model).learner
    assert np.allclose(bundle.learner.predict(X), -original.predict(X))
    assert sorted(p.name for p in out.iterdir()) == ["model.joblib", "model.json"]
    assert run([*argv[:-4], "--kind", "slow", "--latency-ms", "-3", "--out", str(out)]) == 2
    assert "--latency-ms" in capsys.readouterr().err
    assert load_bundle(out).learner.kind == "harmful"  # a refused write left the old one


# ---------------------------------------------------------------------- replay on a server


@pytest.fixture(scope="module")
def server(serve_model: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("replay_server")
    args = ["--model", str(serve_model), "--budget", "1e12", "--data-dir", str(tmp / "data"),
            "--no-log-requests"]  # fmt: skip
    with serving(tmp, *args) as running:
        yield running, tmp / "data" / "exposures.db"


def _logged(path: Path) -> list:
    db = SqliteDatabase(path)
    try:
        return SqliteExposureLog(db).read_all()
    finally:
        db.close()


def test_replay_decisions_match_the_log_and_the_ground_truth(server, serve_world):
    running, log = server
    traffic = world_traffic(serve_world)
    before = {r.request_id for r in _logged(log)}
    report = replay(serve_world.path, running.url, rate=150, units=450, seed=1,
                    post_outcomes=False, traffic=traffic)  # fmt: skip
    assert report.requests == report.answered == 450 and report.errors == {}
    assert report.latency_p50_ms <= report.latency_p99_ms
    assert set(report.variants) == {NO_ROLLOUT}
    rows = [r for r in _logged(log) if r.request_id not in before]
    assert len(rows) == 450 and len({r.unit_id for r in rows}) == 450  # fresh ids, no repeat
    decided = report.variants[NO_ROLLOUT]
    assert decided.decisions == 450 and decided.treated == sum(r.treated for r in rows)
    truth = serve_world.read("ground_truth")
    net = expected_net_matrix(truth, serve_world.read("arms"))
    expected = np.mean([net.at[r.unit_id, r.arm] for r in rows])
    assert decided.true_expected_net_profit_per_unit == pytest.approx(expected, rel=1e-12)
    realised = truth.set_index(["unit_id", "arm"])
    costs = serve_world.read("arms").set_index("arm")
    nets = [realised.at[(r.unit_id, r.arm), "value"] - r.treated * (
        costs.at[r.arm, "contact_cost"] + costs.at[r.arm, "redemption_cost"]
        * realised.at[(r.unit_id, r.arm), "outcome"]) for r in rows]  # fmt: skip
    assert decided.realised_net_profit_per_unit == pytest.approx(np.mean(nets), rel=1e-12)

    # the same seed again: the same units in the same order, new request ids, same arms
    again = replay(serve_world.path, running.url, rate=150, units=450, seed=1,
                   post_outcomes=False, traffic=traffic)  # fmt: skip
    assert again.answered == 450
    first = {r.request_id for r in rows}
    rows2 = [r for r in _logged(log) if r.request_id not in before | first]
    assert len(rows2) == 450 and not {r.request_id for r in rows2} & {r.request_id for r in rows}
    assert {r.unit_id: r.arm for r in rows2} == {r.unit_id: r.arm for r in rows}


def test_replay_traffic_stops_after_its_duration_and_loops_over_units(server, serve_world):
    running, log = server
    traffic = world_traffic(serve_world)
    stopped = replay(serve_world.path, running.url, rate=100, duration=1.5, post_outcomes=False,
                     traffic=traffic)  # fmt: skip
    assert stopped.requests == stopped.answered == 150  # of 3,000 units: the traffic stopped
    before = {r.request_id for r in _logged(log)}
    looped = replay(serve_world.path, running.url, rate=100, units=40, loop=True, duration=1.2,
                    seed=5, post_outcomes=False, traffic=traffic)  # fmt: skip
    assert looped.requests == looped.answered == 120
    rows = [r for r in _logged(log) if r.request_id not in before]
    units, counts = np.unique([r.unit_id for r in rows], return_counts=True)
    assert len(units) == 40 and set(counts.tolist()) == {3}
    with pytest.raises(UserError, match="needs a duration") as err:
        replay(serve_world.path, running.url, units=40, loop=True, traffic=traffic)
    assert err.value.parameter == "loop"


def test_replay_feeds_back_every_decisions_true_outcome(server, serve_world):
    running, log = server
    before = {r.request_id for r in _logged(log)}
    report = replay(serve_world.path, running.url, rate=150, units=300, seed=2,
                    outcome_delay_seconds=0.3, outcome_batch=25)  # fmt: skip
    assert report.answered == report.outcomes_posted == report.outcomes_accepted == 300
    assert report.outcome_errors == {}
    decided = {r.decision_id: r for r in _logged(log) if r.request_id not in before}
    db = SqliteDatabase(log)
    try:
        recorded = [o for o in outcome_store(SqliteExposureLog(db)).read_all()
                    if o.decision_id in decided]  # fmt: skip
    finally:
        db.close()
    assert len(recorded) == 300 and all(o.cost is not None for o in recorded)
    truth = serve_world.read("ground_truth").set_index(["unit_id", "arm"])
    costs = serve_world.read("arms").set_index("arm")
    for o in recorded:
        arm = decided[o.decision_id].arm
        row = truth.loc[(o.unit_id, arm)]
        assert o.revenue == row["value"]
        treated = decided[o.decision_id].treated
        expected_cost = (
            costs.at[arm, "contact_cost"] + costs.at[arm, "redemption_cost"] * row["outcome"]
        )
        assert o.cost == (expected_cost if treated else 0.0)
    realised = np.mean([o.net_profit for o in recorded])
    assert report.variants[NO_ROLLOUT].realised_net_profit_per_unit == pytest.approx(realised)
    # outcomes arrive after their delay: none observed before its decision + 0.3 s
    latest = {
        o.decision_id: o.received_at_us - decided[o.decision_id].decided_at_us for o in recorded
    }
    assert min(latest.values()) >= 0.3e6


def test_replay_stops_when_told(server, serve_world):
    running, _ = server
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    report = replay(serve_world.path, running.url, rate=50, units=1000, post_outcomes=False,
                    stop=stop)  # fmt: skip
    assert 10 <= report.requests == report.answered < 1000  # about 1 s of traffic at 50/s
    assert report.steps == {} and set(report.variants) == {NO_ROLLOUT}
