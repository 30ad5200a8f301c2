"""``liftwise rollout start|status|pause|resume|promote|abort|history``: a rollout's life
from the terminal (docs/rollouts.md).

``start`` checks the plan file and that its candidate and baseline exist, then writes it
to the rollout store (``--rollout-store``, default ``sqlite:///<data_dir>/rollouts.db``),
where every ``liftwise serve --campaign`` worker of its campaign picks it up. The gates
run inside the service; these commands read the state and history and make the manual
moves (liftwise.rollout.controller), each one a compare-and-set with a history row that
says who did it and why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from liftwise.cli.app import console, stdout
from liftwise.cli.model import DataDir, TrackingUri
from liftwise.cli.rollout import rollout_app
from liftwise.errors import UserError

if TYPE_CHECKING:
    from liftwise.rollout.explain import UnitAtTime
    from liftwise.rollout.gates import Evaluation
    from liftwise.rollout.store import HistoryEntry, Kind, RolloutState, RolloutStore
    from liftwise.serve.exposures import ExposureRecord
    from liftwise.settings import Settings

Name = Annotated[str, typer.Argument(help="Rollout name (the plan's name).", show_default=False)]
RolloutStoreUrl = Annotated[
    str | None,
    typer.Option(
        "--rollout-store",
        help="Rollout store: sqlite:///PATH or postgresql://... (default: "
        "LIFTWISE_ROLLOUT_STORE or sqlite:///<data_dir>/rollouts.db).",
    ),
]
By = Annotated[
    str | None, typer.Option(help="Who does this, for the history (default: your user).")
]
Note = Annotated[str, typer.Option(help="Why (recorded in the history).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _user(by: str | None) -> str:
    if by is not None:
        if not by.strip():
            raise UserError("say who does this (not empty)", option="--by")
        return by.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    from liftwise.settings import Settings

    return Settings.load(data_dir=data_dir, **overrides)


def _store(settings: Settings) -> RolloutStore:
    from liftwise.rollout.store import open_rollout_store

    return open_rollout_store(settings.rollouts)


def _time(at_us: int) -> str:
    moment = dt.datetime.fromtimestamp(at_us / 1e6, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _say_state(what: str, state: RolloutState) -> None:
    step = state.plan.steps[state.step]
    stdout.print(
        f"{what}: rollout {state.name} is {state.status} at step {state.step} ({step.name}), "
        f"candidate share {state.share:.2%}",
        markup=False,
        highlight=False,
    )


# --------------------------------------------------------------------------- start


@rollout_app.command("start")
def start_command(
    plan_file: Annotated[
        Path, typer.Argument(metavar="PLAN", help="Rollout plan YAML.", show_default=False)
    ],
    data_dir: DataDir = None,
    rollout_store: RolloutStoreUrl = None,
    tracking_uri: TrackingUri = None,
    by: By = None,
    note: Note = "",
) -> None:
    """Check a plan (its keys, its candidate and baseline) and start it: status running at
    step 0; the campaign's `liftwise serve` workers pick it up within a second."""
    from liftwise.cli.model import open_registry
    from liftwise.rollout.controller import now_us, start
    from liftwise.rollout.plan import load_plan

    plan = load_plan(plan_file)
    settings = _settings(data_dir, rollout_store=rollout_store, tracking_uri=tracking_uri)
    store = _store(settings)
    try:
        state = start(
            store,
            plan,
            now_us=now_us(),
            registry=lambda: open_registry(data_dir, tracking_uri),
            source=str(plan_file),
            by=_user(by),
            note=note,
        )
    finally:
        store.close()
    _say_state("started", state)
    stdout.print(
        f"candidate {plan.candidate.description}; baseline {plan.baseline.description}; "
        f"holdout {plan.holdout:.1%}; campaign {plan.campaign}; steps "
        + " -> ".join(f"{s.name} {s.share:.0%}" for s in plan.steps),
        markup=False,
        highlight=False,
    )


# --------------------------------------------------------------------------- status


def _gates_table(evaluation: Evaluation) -> Table:
    table = Table(title=f"gates at step {evaluation.step} ({evaluation.step_name})")
    for column in ("gate", "verdict", "reason"):
        table.add_column(column, overflow="fold")
    for gate in evaluation.gates:
        table.add_row(gate.gate, gate.verdict, gate.reason)
    return table


NEXT = {
    "paused": "next: liftwise rollout resume {name} (or abort)",
    "completed": "next: liftwise rollout promote {name} (or abort)",
}


def _status_lines(state: RolloutState, now: int, last: HistoryEntry | None) -> list[str]:
    from liftwise.rollout.controller import seconds_between

    plan, step = state.plan, state.plan.steps[state.step]
    lines = [
        f"rollout {state.name} (campaign {state.campaign}): {state.status}"
        + (f" ({state.reason})" if state.reason else ""),
        f"step {state.step + 1} of {len(plan.steps)}: {step.name}, candidate share "
        f"{state.share:.2%} of the non-holdout units (holdout {plan.holdout:.1%})",
    ]
    if state.status in ("running", "paused"):
        lines.append(
            f"on this step {_duration(seconds_between(state.step_started_us, now))} (minimum "
            f"{step.min_seconds:g} s, maximum wait {step.max_wait_seconds:g} s); since "
            f"{_time(state.step_started_us)} UTC"
        )
    else:
        lines.append(f"{state.status} since {_time(state.updated_us)} UTC")
    lines.append(f"candidate {plan.candidate.description}; baseline {plan.baseline.description}")
    if last is None:
        lines.append("no gate evaluation yet (the campaign's `liftwise serve` workers run them)")
    else:
        lines.append(f"last evaluation {_time(last.at_us)} UTC: {last.verdict}: {last.reason}")
    if state.status in NEXT:
        lines.append(NEXT[state.status].format(name=state.name))
    return lines


@rollout_app.command("status")
def status_command(
    name: Name,
    json_: Json = False,
    data_dir: DataDir = None,
    rollout_store: RolloutStoreUrl = None,
) -> None:
    """The rollout's status, step, share, time on the step and the last evaluation's gates."""
    from liftwise.rollout.controller import now_us, require_state, seconds_between
    from liftwise.rollout.explain import last_entry
    from liftwise.rollout.gates import Evaluation

    store = _store(_settings(data_dir, rollout_store=rollout_store))
    try:
        state = require_state(store, name)
        now = now_us()
        last = last_entry(store, name, now, kind="evaluation")
    finally:
        store.close()
    evaluation = None if last is None else Evaluation.model_validate_json(last.evidence)
    if json_:
        fields = dataclasses.asdict(state) | {"plan": state.plan.model_dump(mode="json")}
        out = fields | {
            "seconds_on_step": seconds_between(state.step_started_us, now),
            "last_evaluation": None if evaluation is None else evaluation.model_dump(mode="json"),
        }
        print(json.dumps(out, indent=2))
        return
    for line in _status_lines(state, now, last):
        stdout.print(line, markup=False, highlight=False)
    if evaluation is not None and evaluation.gates:
        stdout.print(_gates_table(evaluation))


# --------------------------------------------------------------------------- moves


def _move_command(kind: str, help_text: str) -> None:
    """Register ``liftwise rollout KIND NAME`` for one of the controller's manual moves."""
    past = {"pause": "paused", "resume": "resumed", "abort": "aborted"}[kind]

    def command(
        name: Name,
        by: By = None,
        note: Note = "",
        data_dir: DataDir = None,
        rollout_store: RolloutStoreUrl = None,
    ) -> None:
        from liftwise.rollout.controller import move, now_us

        store = _store(_settings(data_dir, rollout_store=rollout_store))
        try:
            state = move(store, name, kind, by=_user(by), now_us=now_us(), note=note)
        finally:
            store.close()
        _say_state(past, state)

    command.__doc__ = help_text
    rollout_app.command(kind)(command)


_move_command(
    "pause", "Hold a running rollout at its step and share (still measured; never advanced)."
)
_move_command(
    "resume", "Let a paused rollout's gates advance it again (the step's maximum wait restarts)."
)
_move_command("abort", "End a rollout for good: share 0, every non-holdout unit gets the baseline.")


@rollout_app.command("promote")
def promote_command(
    name: Name,
    by: By = None,
    data_dir: DataDir = None,
    rollout_store: RolloutStoreUrl = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Make a completed rollout's candidate what is served: a registered version becomes
    champion through the registry's approval gate (refused unless approved); a model
    directory is only marked promoted (serve it with `liftwise serve --model DIR`)."""
    from liftwise.cli.model import open_registry
    from liftwise.rollout.controller import now_us, promote

    store = _store(_settings(data_dir, rollout_store=rollout_store, tracking_uri=tracking_uri))
    try:
        done = promote(
            store,
            name,
            by=_user(by),
            now_us=now_us(),
            registry=lambda: open_registry(data_dir, tracking_uri),
        )
    finally:
        store.close()
    _say_state("promoted", done.state)
    if done.champion is not None:
        was = done.champion.champion_before
        stdout.print(
            f"champion: {done.champion.model_name} v{done.champion.version}"
            + (f" (was v{was})" if was not in (None, done.champion.version) else "")
            + f"; {done.champion.model_uri}; workers serve it as the rollout ends",
            markup=False,
            highlight=False,
        )
    else:
        stdout.print(
            f"the candidate is a model directory, not a registered version: serve "
            f"{done.serve_model_dir} from now on (liftwise serve --model "
            f"{done.serve_model_dir}); workers go back to their own --model meanwhile",
            markup=False,
            highlight=False,
        )


# --------------------------------------------------------------------------- history


def _entry_json(entry: HistoryEntry) -> dict[str, Any]:
    return dataclasses.asdict(entry) | {"evidence": json.loads(entry.evidence)}


def _history_table(name: str, entries: list[HistoryEntry]) -> Table:
    table = Table(title=f"rollout {name}: {len(entries)} history row(s)")
    for column in ("at (UTC)", "action", "status", "step", "share", "verdict"):
        table.add_column(column, justify="right" if column in ("step", "share") else "left")
    table.add_column("reason", overflow="fold", min_width=24)
    for entry in entries:
        table.add_row(
            _time(entry.at_us),
            entry.action,
            entry.status,
            str(entry.step),
            f"{entry.share:.2%}",
            entry.verdict or "",
            entry.reason or "",
        )
    return table


def _parse_time(text: str) -> int:
    from liftwise.times import as_utc

    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"not an ISO time: {text!r}", option="--at") from None
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (as_utc(moment) - epoch) // dt.timedelta(microseconds=1)


@rollout_app.command("history")
def history_command(
    name: Name,
    json_: Json = False,
    kind: Annotated[
        str | None, typer.Option(help="Only 'transition' or only 'evaluation' rows.")
    ] = None,
    unit: Annotated[
        int | None, typer.Option(help="With --at: what served this unit id then, and why.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(help="ISO time for --unit, e.g. 2026-12-04T21:30 (no zone = UTC)."),
    ] = None,
    window: Annotated[
        float, typer.Option(help="Show the unit's decisions this many seconds around --at.")
    ] = 3600.0,
    exposure_log: Annotated[
        str | None,
        typer.Option(
            help="Exposure log for --unit (default: LIFTWISE_EXPOSURE_LOG or "
            "sqlite:///<data_dir>/exposures.db)."
        ),
    ] = None,
    exposure_table: Annotated[str, typer.Option(help="Exposure log table.")] = "exposures",
    data_dir: DataDir = None,
    rollout_store: RolloutStoreUrl = None,
) -> None:
    """Every transition and gate evaluation, oldest first; with --unit and --at, what
    served that unit at that time and why (state, variant, decisions, last evaluation)."""
    from liftwise.rollout.controller import require_state

    if (unit is None) != (at is None):
        raise UserError("give --unit and --at together", option="--unit" if at else "--at")
    if kind not in (None, "transition", "evaluation"):
        raise UserError(f"not 'transition' or 'evaluation': {kind!r}", option="--kind")
    if window < 0:
        raise UserError(f"must be at least 0, got {window:g}", option="--window")
    settings = _settings(data_dir, rollout_store=rollout_store, exposure_log=exposure_log)
    store = _store(settings)
    try:
        if unit is not None and at is not None:
            _explain(store, settings, name, unit, _parse_time(at), window, exposure_table, json_)
            return
        entries = store.history(name, kind=cast("Kind | None", kind))
        if not entries:
            require_state(store, name)
    finally:
        store.close()
    if json_:
        print(json.dumps([_entry_json(e) for e in entries], indent=2))
    else:
        stdout.print(_history_table(name, entries))


def _explain(
    store: RolloutStore,
    settings: Settings,
    name: str,
    unit: int,
    at_us: int,
    window: float,
    table: str,
    json_: bool,
) -> None:
    from liftwise.rollout.explain import explain_unit

    answer = explain_unit(store, name, unit, at_us)
    span = int(window * 1e6)
    decisions = _unit_decisions(settings, table, unit, at_us - span, at_us + span)
    if json_:
        print(json.dumps(_explanation_json(answer, decisions), indent=2))
        return
    lines = [
        f"unit {unit} at {_time(at_us)} UTC, rollout {name}: {answer.serves}",
        f"why: {answer.why}",
    ]
    if answer.last_evaluation is not None:
        last = answer.last_evaluation
        lines.append(
            f"last evaluation before: {_time(last.at_us)} UTC {last.verdict}: {last.reason}"
        )
    for line in lines:
        stdout.print(line, markup=False, highlight=False)
    if decisions is None:
        return
    title = f"unit {unit}: decisions within {window:g} s of {_time(at_us)} UTC"
    out = Table(title=title)
    for column in ("decided (UTC)", "rollout", "step", "variant", "model", "arm", "reason"):
        out.add_column(column, overflow="fold")
    for record in decisions:
        out.add_row(
            _time(record.decided_at_us),
            record.rollout or "",
            "" if record.rollout_step is None else str(record.rollout_step),
            record.variant or "",
            f"{record.model_name} {record.model_version}",
            record.arm,
            record.reason or "",
        )
    stdout.print(out)


def _explanation_json(answer: UnitAtTime, decisions: list[ExposureRecord] | None) -> dict[str, Any]:
    entry, last = answer.in_effect, answer.last_evaluation
    return {
        "rollout": answer.rollout,
        "unit_id": answer.unit_id,
        "at_us": answer.at_us,
        "variant": answer.variant,
        "serves": answer.serves,
        "why": answer.why,
        "in_effect": None if entry is None else _entry_json(entry),
        "last_evaluation": None if last is None else _entry_json(last),
        "decisions": None
        if decisions is None
        else [dataclasses.asdict(record) for record in decisions],
    }


def _unit_decisions(
    settings: Settings, table: str, unit: int, since_us: int, until_us: int
) -> list[ExposureRecord] | None:
    """The unit's logged decisions in the window; None (with a note) without a log."""
    from liftwise.serve.exposures import open_exposure_log
    from liftwise.sqlite import sqlite_path

    url = settings.exposures
    if not url.startswith(("postgresql://", "postgres://")) and not sqlite_path(url).is_file():
        console.print(f"note: no exposure log at {url}: decisions not shown", markup=False)
        return None
    log = open_exposure_log(url, table)
    try:
        return log.unit_decisions(unit, since_us, until_us)
    finally:
        log.close()
