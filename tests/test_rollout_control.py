"""The rollout controller (step_once on a real SQLite rollout store, measurements built by
hand) and the `liftwise rollout` commands, with promote through a real MLflow registry."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from liftwise.cli import run
from liftwise.errors import UserError
from liftwise.rollout import controller
from liftwise.rollout.explain import explain_unit
from liftwise.rollout.gates import StepMeasurements
from liftwise.rollout.measure import ProfitMoments, VariantCounters, latency_bucket
from liftwise.rollout.plan import RolloutPlan, parse_plan
from liftwise.rollout.split import BASELINE, CANDIDATE, HOLDOUT, Variant, expected_shares, variants
from liftwise.rollout.store import RolloutState, RolloutStore, open_rollout_store

T0 = 1_796_000_000_000_000  # µs: 2026-11-30
SECOND = 1_000_000
HOLDOUT_SHARE = 0.1


def plan_data(**change: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "ctl",
        "campaign": "spring",
        "candidate": {"model_dir": "/models/candidate"},
        "baseline": {"model_dir": "/models/baseline"},
        "holdout": HOLDOUT_SHARE,
        "steps": [
            {"name": "canary", "share": 0.1, "min_seconds": 10, "min_decisions": 100,
             "min_outcomes": 50, "max_wait_seconds": 60},
            {"name": "half", "share": 0.5, "min_seconds": 10, "min_decisions": 100,
             "min_outcomes": 50, "max_wait_seconds": 60},
        ],
    }  # fmt: skip
    return data | change


def make_plan(**change: object) -> RolloutPlan:
    return parse_plan(plan_data(**change))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RolloutStore]:
    opened = open_rollout_store(f"sqlite:///{tmp_path / 'rollouts.db'}")
    yield opened
    opened.close()


# --------------------------------------------------------------------------- measurements


def counters(decisions: int, *, errors: int = 0, ms: float = 4.0) -> VariantCounters:
    latency = [0] * len(VariantCounters().latency)
    latency[latency_bucket(ms)] = decisions + errors
    return VariantCounters(decisions=decisions, errors=errors, latency=latency)


def moments(n: int, mean: float, sd: float = 1.0) -> ProfitMoments:
    """n units of net profit with this mean and sample standard deviation."""
    return ProfitMoments(n, n * mean, (n - 1) * sd**2 + n * mean**2)


def measured(
    share: float,
    *,
    total: int = 20_000,
    candidate_errors: int = 0,
    candidate_profit: float = 5.0,
    outcomes: int = 2_000,
) -> StepMeasurements:
    """Requests split exactly as planned (no SRM), fast and error-free unless told; the
    candidate earns ``candidate_profit`` per unit more than the baseline and holdout."""
    shares = expected_shares(HOLDOUT_SHARE, share)
    counts: dict[Variant, VariantCounters] = {
        v: counters(round(total * shares[v])) for v in (HOLDOUT, BASELINE, CANDIDATE)
    }
    counts[CANDIDATE] = counters(counts[CANDIDATE].decisions, errors=candidate_errors)
    profit = {
        HOLDOUT: moments(outcomes, 0.0),
        BASELINE: moments(outcomes, 0.0),
        CANDIDATE: moments(outcomes, candidate_profit),
    }
    return StepMeasurements(0.0, counts, profit)


def good(state: RolloutState) -> StepMeasurements:
    return measured(state.share)


def broken(state: RolloutState) -> StepMeasurements:
    return measured(state.share, candidate_errors=500)


def nothing(state: RolloutState) -> StepMeasurements:
    return StepMeasurements(0.0)


def actions(store: RolloutStore, name: str = "ctl") -> list[str]:
    return [e.action for e in store.history(name, kind="transition")]


# --------------------------------------------------------------------------- step_once


def test_no_data_holds_and_is_recorded(store):
    store.create(make_plan(), T0)
    evaluation = controller.step_once(store, "ctl", nothing, T0 + 20 * SECOND)
    assert evaluation is not None and evaluation.verdict == "hold"
    assert not evaluation.minimums_met and evaluation.seconds_on_step == 20.0
    state = store.get("ctl")
    assert (state.status, state.step, state.version) == ("running", 0, 1)
    [row] = store.history("ctl", kind="evaluation")
    assert row.verdict == "hold" and row.reason == evaluation.reason
    assert json.loads(row.evidence)["verdict"] == "hold"


def test_good_candidate_advances_step_by_step_then_completes(store):
    store.create(make_plan(), T0)
    too_early = controller.step_once(store, "ctl", good, T0 + 5 * SECOND)
    assert too_early.verdict == "hold" and store.get("ctl").step == 0  # min_seconds
    passed = controller.step_once(store, "ctl", good, T0 + 20 * SECOND)
    assert passed.verdict == "pass" and {g.gate for g in passed.gates} == {
        "errors", "latency", "srm", "business"
    }  # fmt: skip
    state = store.get("ctl")
    assert (state.status, state.step, state.share) == ("running", 1, 0.5)
    assert state.step_started_us == T0 + 20 * SECOND
    assert controller.step_once(store, "ctl", good, T0 + 25 * SECOND).verdict == "hold"
    last = controller.step_once(store, "ctl", good, T0 + 40 * SECOND)
    assert last.verdict == "pass" and last.gate("business").evidence.criterion == "uplift"
    state = store.get("ctl")
    assert (state.status, state.step, state.share) == ("completed", 1, 0.5)
    assert controller.step_once(store, "ctl", good, T0 + 50 * SECOND) is None
    assert actions(store) == ["start", "advance", "complete"]
    advance = store.history("ctl", kind="transition")[1]
    evidence = json.loads(advance.evidence)
    assert evidence["by"] == "controller" and evidence["before"]["step_name"] == "canary"
    assert evidence["evaluation"]["verdict"] == "pass"


def test_a_failing_gate_rolls_back_to_share_zero(store):
    store.create(make_plan(), T0)
    evaluation = controller.step_once(store, "ctl", broken, T0 + 2 * SECOND)
    assert evaluation.verdict == "fail" and evaluation.gate("errors").verdict == "fail"
    state = store.get("ctl")
    assert (state.status, state.share) == ("aborted", 0.0)
    assert "errors" in state.reason
    assert actions(store) == ["start", "rollback"]
    assert controller.step_once(store, "ctl", good, T0 + 30 * SECOND) is None


def test_harm_on_the_business_gate_rolls_back(store):
    store.create(make_plan(), T0)

    def harmful(state: RolloutState) -> StepMeasurements:
        return measured(state.share, candidate_profit=-3.0)

    evaluation = controller.step_once(store, "ctl", harmful, T0 + 20 * SECOND)
    assert evaluation.gate("business").verdict == "fail"
    assert store.get("ctl").status == "aborted"


def test_max_wait_pauses_and_a_paused_rollout_never_advances(store):
    store.create(make_plan(on_max_wait="pause"), T0)
    controller.step_once(store, "ctl", nothing, T0 + 30 * SECOND)
    assert store.get("ctl").status == "running"
    controller.step_once(store, "ctl", nothing, T0 + 61 * SECOND)
    state = store.get("ctl")
    assert (state.status, state.step, state.share) == ("paused", 0, 0.1)
    assert "maximum wait" in state.reason
    for second in (70, 80):  # the gates pass, recorded, but a paused rollout stays
        assert controller.step_once(store, "ctl", good, T0 + second * SECOND).verdict == "pass"
    assert store.get("ctl").status == "paused" and store.get("ctl").step == 0
    paused_rows = [e for e in store.history("ctl", kind="evaluation") if e.status == "paused"]
    assert [e.verdict for e in paused_rows] == ["pass", "pass"]
    controller.resume(store, "ctl", by="ana", now_us=T0 + 90 * SECOND)
    # the wait starts again at the resume: no data for 10 s holds, it does not pause
    controller.step_once(store, "ctl", nothing, T0 + 100 * SECOND)
    assert store.get("ctl").status == "running"
    controller.step_once(store, "ctl", good, T0 + 101 * SECOND)
    assert store.get("ctl").step == 1
    assert actions(store) == ["start", "pause", "resume", "advance"]


def test_max_wait_aborts_when_the_plan_says_so(store):
    store.create(make_plan(on_max_wait="abort"), T0)
    controller.step_once(store, "ctl", nothing, T0 + 61 * SECOND)
    state = store.get("ctl")
    assert (state.status, state.share) == ("aborted", 0.0)
    assert actions(store) == ["start", "abort"]


def test_a_paused_rollout_still_rolls_back_on_a_failing_gate(store):
    store.create(make_plan(), T0)
    controller.pause(store, "ctl", by="ana", now_us=T0 + SECOND)
    controller.step_once(store, "ctl", broken, T0 + 2 * SECOND)
    assert store.get("ctl").status == "aborted"
    assert actions(store) == ["start", "pause", "rollback"]


def test_a_lost_compare_and_set_is_harmless(store):
    store.create(make_plan(), T0)

    def racing(state: RolloutState) -> StepMeasurements:
        # another actor moves the rollout while this controller measures
        controller.pause(store, "ctl", by="ops", now_us=T0 + 19 * SECOND)
        return measured(state.share)

    evaluation = controller.step_once(store, "ctl", racing, T0 + 20 * SECOND)
    assert evaluation.verdict == "pass"
    state = store.get("ctl")
    assert (state.status, state.step) == ("paused", 0)
    assert actions(store) == ["start", "pause"]


# --------------------------------------------------------------------------- manual moves


def test_manual_moves_record_who_and_why(store):
    store.create(make_plan(), T0)
    controller.pause(store, "ctl", by="ana", now_us=T0 + SECOND, note="checking a dashboard")
    with pytest.raises(UserError, match="is paused: only a running rollout can be paused"):
        controller.pause(store, "ctl", by="ana", now_us=T0 + 2 * SECOND)
    controller.resume(store, "ctl", by="bob", now_us=T0 + 3 * SECOND)
    with pytest.raises(UserError, match="is running: only a completed rollout"):
        controller.promote(store, "ctl", by="bob", now_us=T0 + 4 * SECOND, registry=_no_registry)
    state = controller.abort(store, "ctl", by="cy", now_us=T0 + 5 * SECOND)
    assert (state.status, state.share, state.reason) == ("aborted", 0.0, "manual abort by cy")
    with pytest.raises(UserError, match="is aborted"):
        controller.resume(store, "ctl", by="bob", now_us=T0 + 6 * SECOND)
    rows = store.history("ctl", kind="transition")
    assert [(r.action, json.loads(r.evidence).get("by")) for r in rows[1:]] == [
        ("pause", "ana"), ("resume", "bob"), ("abort", "cy")
    ]  # fmt: skip
    assert rows[1].reason == "paused by ana: checking a dashboard"
    with pytest.raises(UserError, match="no rollout named 'nope'"):
        controller.abort(store, "nope", by="cy", now_us=T0)


def _no_registry():  # a model-directory plan never opens the registry
    raise AssertionError("the registry was opened")


def test_promoting_a_model_directory_marks_the_rollout_promoted(store):
    store.create(make_plan(steps=[{"name": "all", "share": 1.0, "min_seconds": 0}]), T0)
    controller.step_once(store, "ctl", good, T0 + SECOND)
    assert store.get("ctl").status == "completed"
    done = controller.promote(store, "ctl", by="ana", now_us=T0 + 2 * SECOND, registry=_no_registry)
    assert done.state.status == "promoted" and done.champion is None
    assert done.serve_model_dir == Path("/models/candidate")
    evidence = json.loads(store.history("ctl", kind="transition")[-1].evidence)
    assert evidence["serve_model_dir"] == "/models/candidate" and evidence["by"] == "ana"


def test_what_served_a_unit_at_a_time(store):
    plan = make_plan()
    store.create(plan, T0)
    ids = list(range(2_000))
    before = variants(plan.effective_salt, ids, plan.holdout, 0.1)
    after = variants(plan.effective_salt, ids, plan.holdout, 0.5)
    moved = next(u for u in ids if before[u] == BASELINE and after[u] == CANDIDATE)
    held = next(u for u in ids if before[u] == HOLDOUT)
    controller.step_once(store, "ctl", good, T0 + 20 * SECOND)  # advance to 50%
    controller.abort(store, "ctl", by="ops", now_us=T0 + 60 * SECOND)
    at = {"canary": T0 + 10 * SECOND, "half": T0 + 30 * SECOND, "aborted": T0 + 70 * SECOND}
    served = {k: explain_unit(store, "ctl", moved, t) for k, t in at.items()}
    assert [served[k].variant for k in at] == [BASELINE, CANDIDATE, BASELINE]
    assert served["half"].serves.startswith("the candidate, model directory")
    assert "step 1 (half)" in served["half"].why
    assert served["half"].last_evaluation.verdict == "pass"
    assert "manual abort by ops" in served["aborted"].why
    assert {explain_unit(store, "ctl", held, t).variant for t in at.values()} == {HOLDOUT}
    assert explain_unit(store, "ctl", moved, T0 - SECOND).in_effect is None


# --------------------------------------------------------------------------- the CLI


def write_plan(path: Path, **change: object) -> Path:
    path.write_text(yaml.safe_dump(plan_data(**change)))
    return path


def model_dir(path: Path) -> Path:
    """A directory that holds a model file (start checks it exists, it loads nothing)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.joblib").write_bytes(b"model")
    return path


def rollout(data_dir: Path, *argv: str) -> list[str]:
    return ["rollout", *argv, "--data-dir", str(data_dir)]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The error line (MLflow may log its database set-up before it, on a new registry)."""
    lines = [x for x in capsys.readouterr().err.splitlines() if "INFO mlflow" not in x]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as a wide terminal shows them, so a reason is not folded across lines."""
    from liftwise.cli.app import stdout

    monkeypatch.setattr(stdout, "width", 240)


@pytest.fixture
def cli_plan(tmp_path: Path) -> Path:
    candidate, baseline = model_dir(tmp_path / "cand"), model_dir(tmp_path / "base")
    return write_plan(
        tmp_path / "plan.yaml",
        candidate={"model_dir": str(candidate)},
        baseline={"model_dir": str(baseline)},
    )


def test_cli_start_status_pause_resume_abort_and_history(tmp_path, cli_plan, capsys):
    data = tmp_path / "data"
    assert run(rollout(data, "start", str(cli_plan), "--by", "dee", "--note", "v4 card ok")) == 0
    assert "started: rollout ctl is running at step 0 (canary)" in capsys.readouterr().out
    assert run(rollout(data, "status", "ctl")) == 0
    out = capsys.readouterr().out
    assert "running" in out and "step 1 of 2: canary" in out and "no gate evaluation" in out
    store = open_rollout_store(f"sqlite:///{(data / 'rollouts.db').resolve()}")
    try:
        controller.step_once(store, "ctl", nothing, controller.now_us())
    finally:
        store.close()
    assert run(rollout(data, "status", "ctl")) == 0
    out = capsys.readouterr().out
    assert "last evaluation" in out and "hold" in out
    assert all(gate in out for gate in ("errors", "latency", "srm", "business"))
    assert run(rollout(data, "status", "ctl", "--json")) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["status"], status["step"], status["plan"]["name"]) == ("running", 0, "ctl")
    assert status["last_evaluation"]["verdict"] == "hold"
    assert run(rollout(data, "pause", "ctl", "--by", "ana", "--note", "look first")) == 0
    assert "paused: rollout ctl is paused" in capsys.readouterr().out
    assert run(rollout(data, "status", "ctl")) == 0
    assert "next: liftwise rollout resume ctl" in capsys.readouterr().out
    assert run(rollout(data, "pause", "ctl")) == 2
    assert "is paused: only a running rollout" in one_line_error(capsys)
    assert run(rollout(data, "resume", "ctl", "--by", "bob")) == 0
    assert run(rollout(data, "abort", "ctl", "--by", "cy")) == 0
    assert "candidate share 0.00%" in capsys.readouterr().out
    assert run(rollout(data, "history", "ctl")) == 0
    out = capsys.readouterr().out
    for word in ("start", "evaluate", "pause", "resume", "abort", "paused by ana: look first",
                 "manual abort by cy"):  # fmt: skip
        assert word in out
    assert run(rollout(data, "history", "ctl", "--json")) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["action"] for r in rows] == ["start", "evaluate", "pause", "resume", "abort"]
    assert rows[1]["evidence"]["verdict"] == "hold" and rows[4]["evidence"]["by"] == "cy"
    assert rows[0]["reason"] == "started by dee" and rows[0]["evidence"]["note"] == "v4 card ok"
    assert run(rollout(data, "history", "ctl", "--kind", "transition", "--json")) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4


def test_cli_history_answers_what_served_a_unit(tmp_path, cli_plan, capsys):
    from liftwise.serve.exposures import ExposureRecord, SqliteExposureLog
    from liftwise.sqlite import SqliteDatabase

    data = tmp_path / "data"
    assert run(rollout(data, "start", str(cli_plan))) == 0
    plan = parse_plan(plan_data())
    unit = next(u for u in range(1_000) if variants("ctl", [u], plan.holdout, 0.1)[0] == CANDIDATE)
    now = controller.now_us()
    log = SqliteExposureLog(SqliteDatabase(data / "exposures.db"))
    record = ExposureRecord(
        "req-1", "dec-1", "spring", unit, "fee_waiver", "fee_waiver", True, 12.5, 3.0, 3, 0.1,
        0.0, 0.2, None, "cand", "dir", now, None, "ctl", 0, "candidate",
    )  # fmt: skip
    log.append([record])
    log.close()
    at = dt.datetime.fromtimestamp(now / 1e6, tz=dt.UTC).isoformat()
    assert run(rollout(data, "history", "ctl", "--unit", str(unit), "--at", at)) == 0
    out = capsys.readouterr().out
    assert f"unit {unit} at" in out and "the candidate, model directory" in out
    assert "running at step 0 (canary)" in out and "fee_waiver" in out and "candidate" in out
    argv = rollout(data, "history", "ctl", "--unit", str(unit), "--at", at, "--json")
    assert run(argv) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["variant"] == "candidate" and answer["in_effect"]["action"] == "start"
    assert [d["request_id"] for d in answer["decisions"]] == ["req-1"]
    assert run(rollout(data, "history", "ctl", "--unit", str(unit))) == 2
    assert "--unit and --at together" in one_line_error(capsys)
    assert run(rollout(data, "history", "ctl", "--unit", "1", "--at", "noon")) == 2
    assert "option --at: not an ISO time" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "nope"], "option NAME: no rollout named 'nope'"),
        (["abort", "nope"], "option NAME: no rollout named 'nope'"),
        (["history", "nope"], "option NAME: no rollout named 'nope'"),
        (["history", "x", "--kind", "all"], "option --kind: not 'transition' or 'evaluation'"),
    ],
)
def test_cli_unknown_rollouts_and_bad_options_fail_in_one_line(tmp_path, capsys, argv, message):
    assert run(rollout(tmp_path / "data", *argv)) == 2
    assert message in one_line_error(capsys)


def test_cli_start_refuses_bad_plans_in_one_line(tmp_path, cli_plan, capsys):
    data = tmp_path / "data"
    bad = write_plan(tmp_path / "bad.yaml", steps=[{"name": "a", "share": 1.5}])
    assert run(rollout(data, "start", str(bad))) == 2
    assert "column 'steps[0].share'" in one_line_error(capsys)
    missing = write_plan(tmp_path / "missing.yaml", candidate={"model_dir": "nowhere"})
    assert run(rollout(data, "start", str(missing))) == 2
    err = one_line_error(capsys)
    assert "column 'candidate.model_dir'" in err and "no model.joblib" in err
    assert run(rollout(data, "start", str(cli_plan))) == 0
    capsys.readouterr()
    assert run(rollout(data, "start", str(cli_plan))) == 2
    assert "exists and is running" in one_line_error(capsys)
    assert run(rollout(data, "start", str(tmp_path / "absent.yaml"))) == 2
    one_line_error(capsys)


# --------------------------------------------------------------------------- promote


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small world's race winner registered as `rolled` v1 (not approved); the data
    directory and the race's model directory."""
    from liftwise.simulate import WorldConfig, simulate

    root = tmp_path_factory.mktemp("rollout_promote")
    simulate(WorldConfig(world="fintech", units=1_500, days=30, seed=21), root / "world")
    data = root / "data"
    argv = ["train", "--world", str(root / "world"), "--out", str(root / "race"), "--learners",
            "t_lgbm", "--n-boot", "10", "--seed", "3", "--data-dir", str(data),
            "--register", "rolled"]  # fmt: skip
    assert run(argv) == 0
    return data, root / "race" / "model"


def test_promote_goes_through_the_registry_approval_gate(registered, tmp_path, capsys):
    from liftwise.registry import ModelRegistry
    from liftwise.settings import Settings

    data, race_model = registered
    unknown = write_plan(
        tmp_path / "v9.yaml",
        candidate={"model_name": "rolled", "version": 9},
        baseline={"model_dir": str(race_model)},
    )
    assert run(rollout(data, "start", str(unknown))) == 2
    err = one_line_error(capsys)
    assert "column 'candidate.version'" in err and "has no version 9 (versions: 1)" in err
    no_champion = write_plan(
        tmp_path / "champion.yaml",
        candidate={"model_name": "rolled", "version": 1},
        baseline={"champion": "rolled"},
    )
    assert run(rollout(data, "start", str(no_champion))) == 2
    err = one_line_error(capsys)
    assert "column 'baseline.champion'" in err and "'rolled' has no champion" in err
    plan = write_plan(
        tmp_path / "v1.yaml",
        name="promo",
        candidate={"model_name": "rolled", "version": 1},
        baseline={"model_dir": str(race_model)},
        steps=[{"name": "all", "share": 1.0, "min_seconds": 0}],
    )
    assert run(rollout(data, "start", str(plan))) == 0
    assert run(rollout(data, "promote", "promo")) == 2
    assert "is running: only a completed rollout" in one_line_error(capsys)
    store = open_rollout_store(Settings(data_dir=data).rollouts)
    try:
        controller.step_once(store, "promo", good, controller.now_us() + SECOND)
        assert store.get("promo").status == "completed"
    finally:
        store.close()
    assert run(rollout(data, "promote", "promo", "--by", "bob")) == 2
    err = one_line_error(capsys)
    assert "rollout 'promo' cannot be promoted" in err and "is not approved" in err
    registry = ModelRegistry(Settings(data_dir=data))
    assert registry.champion("rolled") is None
    assert run(["model", "approve", "rolled", "1", "--by", "ana", "--note", "canary passed",
                "--data-dir", str(data)]) == 0  # fmt: skip
    capsys.readouterr()
    assert run(rollout(data, "promote", "promo", "--by", "bob")) == 0
    out = capsys.readouterr().out
    assert "promoted: rollout promo is promoted" in out and "champion: rolled v1" in out
    assert registry.champion("rolled").version == 1
    assert run(rollout(data, "history", "promo", "--kind", "transition", "--json")) == 0
    promoted = json.loads(capsys.readouterr().out)[-1]
    assert promoted["action"] == "promote" and promoted["evidence"]["by"] == "bob"
    assert promoted["evidence"]["champion"]["model_uri"] == "models:/rolled/1"
    assert run(rollout(data, "promote", "promo")) == 2
    assert "is promoted: only a completed rollout" in one_line_error(capsys)
