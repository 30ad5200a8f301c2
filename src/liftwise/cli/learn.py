"""Commands that learn and apply uplift models: train (the model race) and score."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from liftwise.cli.app import app, comma_list, console, note, stdout
from liftwise.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from liftwise.contracts.experiment import ExperimentFrame
    from liftwise.evaluate.bundle import ModelBundle
    from liftwise.evaluate.race import RaceResult
    from liftwise.settings import Settings


def _pairs(specs: list[str] | None, option: str) -> dict[str, float]:
    """``ARM=NUMBER`` options into a dict, with one-line errors naming the option."""
    out: dict[str, float] = {}
    for spec in specs or []:
        name, sep, number = spec.rpartition("=")
        if not sep or not name:
            raise UserError(f"expected ARM=NUMBER, got '{spec}'", option=option)
        try:
            out[name] = float(number)
        except ValueError:
            raise UserError(f"not a number: '{number}' in '{spec}'", option=option) from None
        if out[name] < 0:
            raise UserError(f"cost of '{name}' must be >= 0, got {number}", option=option)
    return out


@app.command("train")
def train_command(
    out: Annotated[
        Path, typer.Option(help="Directory for the race table, plots, report and model.")
    ],
    data: Annotated[Path | None, typer.Option(help="Experiment table (CSV or Parquet).")] = None,
    treatment: Annotated[str | None, typer.Option(help="Column with each unit's arm.")] = None,
    control: Annotated[str | None, typer.Option(help="Label of the control arm.")] = None,
    outcomes: Annotated[
        list[str] | None,
        typer.Option(
            "--outcome",
            help="Outcome column to optimise (binary or continuous); more outcomes after the "
            "first are declared only, so they are never features.",
            callback=comma_list,
        ),
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option(
            help="Feature columns, comma-separated or repeated (default: every column that is "
            "not the treatment, an outcome, the id or a written-out index).",
            callback=comma_list,
        ),
    ] = None,
    unit_id: Annotated[
        str | None,
        typer.Option(help="Unique integer id column (default: unit_id; none: row numbers)."),
    ] = None,
    world: Annotated[
        Path | None, typer.Option(help="Train on a generated world's past campaign instead.")
    ] = None,
    learners: Annotated[
        list[str] | None,
        typer.Option(
            help="Learners, comma-separated or repeated (default: the standard race).",
            callback=comma_list,
        ),
    ] = None,
    value_per_outcome: Annotated[
        float | None,
        typer.Option(help="Money per unit of outcome (default 1; worlds: margin per conversion)."),
    ] = None,
    cost: Annotated[
        list[str] | None,
        typer.Option(
            help="Contact cost per treated unit, ARM=C (comma-separated or repeated).",
            callback=comma_list,
        ),
    ] = None,
    redemption_cost: Annotated[
        list[str] | None,
        typer.Option(
            help="Cost per converted treated unit, ARM=C (comma-separated or repeated).",
            callback=comma_list,
        ),
    ] = None,
    k: Annotated[float, typer.Option(help="Profit@K share of units that picks the winner.")] = 0.3,
    validation_fraction: Annotated[float, typer.Option(help="Share held out for scoring.")] = 0.3,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed (split, learners, bootstrap).")] = 0,
    track: Annotated[
        bool,
        typer.Option(
            "--track/--no-track",
            help="Log the race to MLflow: parameters, metrics with CIs, curves, the model.",
        ),
    ] = True,
    experiment: Annotated[str, typer.Option(help="MLflow experiment of the run.")] = "liftwise",
    register: Annotated[
        str | None,
        typer.Option(help="Register the winner as a new version of this model (challenger)."),
    ] = None,
    segment_column: Annotated[
        str | None,
        typer.Option(help="Column of --data whose values slice the model card (worlds: segment)."),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (default: LIFTWISE_DATA_DIR or ./data).")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI (default: LIFTWISE_TRACKING_URI or sqlite there)."),
    ] = None,
) -> None:
    """Run the model race on an experiment; keep the winner (by Profit@K) and the report,
    and log the race to MLflow (optionally registering the winner)."""
    from liftwise.io import check_output

    check_output(out, kind="directory", inputs=(data, world))
    if register is not None and not track:
        raise UserError("registering needs a tracked run: drop --no-track", option="--register")
    if world is not None and data is not None:
        raise UserError(f"give --data or --world, not both (--world {world})", option="--data")
    if track:  # bad tracking settings fail now, not after a long race
        from liftwise.registry.store import reach_servers
        from liftwise.settings import Settings

        tracking = Settings.load(data_dir=data_dir, tracking_uri=tracking_uri)
        reach_servers(tracking)
    from liftwise.evaluate.economics import ArmCost, Economics
    from liftwise.evaluate.race import RaceSettings, run_race, winner_bundle
    from liftwise.evaluate.report import save_race
    from liftwise.learn.registry import DEFAULT_RACE

    names = tuple(learners) if learners else DEFAULT_RACE
    contact, redemption = _pairs(cost, "--cost"), _pairs(redemption_cost, "--redemption-cost")
    race = {
        "learners": names,
        "k": k,
        "validation_fraction": validation_fraction,
        "n_boot": n_boot,
        "seed": seed,
    }
    RaceSettings(outcome="", economics=Economics(), **race)  # declared ranges, before any data
    if value_per_outcome is not None:
        Economics(value_per_outcome=value_per_outcome)
    if world is not None:
        frame, defaults, policy, world_kind, currency = _world_inputs(world)
        outcome = outcomes[0] if outcomes else frame.outcomes[0]
        value = value_per_outcome if value_per_outcome is not None else defaults.value_per_outcome
        costs = dict(defaults.costs)
    else:
        frame = _table_inputs(data, treatment, control, outcomes, unit_id, features)
        outcome = frame.outcomes[0]
        value = 1.0 if value_per_outcome is None else value_per_outcome
        costs, policy, world_kind, currency = {}, None, None, ""
    source = world or data
    assert source is not None  # one of them was required above
    for arm in set(contact) | set(redemption):
        base = costs.get(arm, ArmCost())
        costs[arm] = ArmCost(
            contact=contact.get(arm, base.contact), redemption=redemption.get(arm, base.redemption)
        )
    if outcome not in frame.outcomes:
        raise UserError(f"unknown outcome (known: {', '.join(frame.outcomes)})", option="--outcome")
    economics = Economics(value_per_outcome=value, costs=costs)
    settings = RaceSettings(outcome=outcome, economics=economics, **race)
    segments = None
    if segment_column is not None:  # an unknown column fails now, not after the race
        from liftwise.registry.tracking import source_segments

        segments = source_segments(source, frame, segment_column)
    with console.status("racing") as status:
        result = run_race(frame, settings, current_policy=policy, progress=status.update)
    bundle = winner_bundle(result, frame, world=world_kind, currency=currency)
    paths = save_race(result, bundle, out)
    _print_race(result, currency)
    stdout.print(f"winner: {result.winner}; report {paths['report']}; model {paths['model']}")
    if track:
        _track(result, bundle, frame, source, segments, experiment, register, tracking)


def _table_inputs(
    data: Path | None,
    treatment: str | None,
    control: str | None,
    outcomes: list[str] | None,
    unit_id: str | None,
    features: list[str] | None,
) -> ExperimentFrame:
    """The experiment of a ``--data`` table (its first outcome is the one optimised)."""
    if data is None or treatment is None or control is None or not outcomes:
        given = {"--data": data, "--treatment": treatment, "--control": control}
        missing = next((name for name, value in given.items() if value is None), "--outcome")
        raise UserError("required unless --world is given", option=missing)
    from liftwise.ingest import load_experiment

    return load_experiment(
        data,
        treatment=treatment,
        control=control,
        outcomes=outcomes,
        unit_id=unit_id,
        features=features,
        note=note,
    )


def _track(
    result: RaceResult,
    bundle: ModelBundle,
    frame: ExperimentFrame,
    source: Path,
    segments: pd.Series | None,
    experiment: str,
    register: str | None,
    settings: Settings,
) -> None:
    """Log the race to MLflow and, with --register, register its winner."""
    from liftwise.registry.tracking import describe_dataset, log_race, source_segments

    with console.status("logging the race to MLflow"):
        run_id = log_race(
            result,
            bundle,
            frame,
            settings=settings,
            experiment=experiment,
            dataset=describe_dataset(source, frame),
            segments=segments if segments is not None else source_segments(source, frame),
        )
    stdout.print(f"tracked: run {run_id} in experiment '{experiment}' ({settings.tracking})")
    if register is not None:
        from liftwise.registry.models import ModelRegistry

        ref = ModelRegistry(settings).register(run_id, register)
        stdout.print(
            f"registered: {ref.name} v{ref.version} (challenger); approve with `liftwise model "
            f"approve {ref.name} {ref.version} --by WHO --note TEXT`"
        )


def _world_inputs(path: Path):
    """A world's campaign as a frame, its economics, current policy, kind and currency."""
    from liftwise.evaluate.economics import campaign_economics
    from liftwise.features import experiment_frame
    from liftwise.simulate import load_world

    world = load_world(path)
    frame = experiment_frame(world)
    policy = world.read("current_policy").set_index("unit_id")["arm"]
    economics = campaign_economics(frame, world.campaign.arms)
    return frame, economics, policy, world.name, world.campaign.currency


def _print_race(result, currency: str) -> None:
    table = Table(
        title=f"model race: Profit@{result.settings.k:.0%} on {result.n_validation:,} validation units {currency}"
    )
    for column in ("candidate", "Profit@K", "95% CI", "best K", "max profit", "fit s"):
        table.add_column(column, justify="left" if column == "candidate" else "right")
    ordered = result.table.sort_values("profit_at_k", ascending=False)
    for row in ordered.itertuples():
        name = f"{row.name} *" if row.winner else row.name
        table.add_row(
            name,
            f"{row.profit_at_k:,.0f}",
            f"{row.profit_at_k_low:,.0f} .. {row.profit_at_k_high:,.0f}",
            f"{row.best_k:,}",
            f"{row.max_profit:,.0f}",
            f"{row.fit_seconds:.1f}" if row.kind == "learner" else "",
        )
    stdout.print(table)


UnitIdOption = Annotated[
    str | None,
    typer.Option(
        help="Id column of the table (default: the model's training id column, else unit_id)."
    ),
]
NumberRowsOption = Annotated[
    bool, typer.Option(help="Use 0-based row numbers as unit ids when the table has no id column.")
]
MaxUnseenOption = Annotated[
    float | None,
    typer.Option(
        help="Refuse when more than this share of rows in any column has a category level "
        "unseen in training (default 0.01; 1 allows all; unseen levels are always reported)."
    ),
]


@app.command("score")
def score_command(
    model: Annotated[Path, typer.Option(help="Model directory written by `liftwise train`.")],
    data: Annotated[
        Path, typer.Option(help="Units to score: a CSV/Parquet table, or a world directory.")
    ],
    out: Annotated[Path, typer.Option(help="Output file (.parquet or .csv).")],
    alpha: Annotated[float, typer.Option(help="Interval level is 1 - alpha.")] = 0.05,
    unit_id: UnitIdOption = None,
    number_rows: NumberRowsOption = False,
    max_unseen_share: MaxUnseenOption = None,
) -> None:
    """Per unit and arm: effect, its interval where available, and expected net profit."""

    from liftwise.evaluate.bundle import ScoringSettings, load_bundle, score_units
    from liftwise.io import TABLE_SUFFIXES, check_output, write_frame

    ScoringSettings(alpha=alpha)
    check_output(out, inputs=(data, model), suffixes=TABLE_SUFFIXES)
    bundle = load_bundle(model)
    ids, X, _features, _now = _units_to_score(
        bundle, data, unit_id, number_rows=number_rows, max_unseen_share=max_unseen_share
    )
    scores = score_units(bundle, X, ids, alpha=alpha)
    write_frame(out, scores)
    stdout.print(f"scored {len(ids):,} units x {len(bundle.treatments)} arms -> {out}")


@app.command("decide")
def decide_command(
    model: Annotated[Path, typer.Option(help="Model directory written by `liftwise train`.")],
    data: Annotated[
        Path, typer.Option(help="Units to decide for: a CSV/Parquet table, or a world directory.")
    ],
    budget: Annotated[float, typer.Option(help="Total expected treatment cost allowed.")],
    out: Annotated[Path, typer.Option(help="Decision table to write (.parquet or .csv).")],
    guardrails: Annotated[
        Path | None,
        typer.Option(
            help="YAML: costs, capacity, do_not_contact, eligibility, contact_cap, soft_guardrail."
        ),
    ] = None,
    exposures: Annotated[
        Path | None, typer.Option(help="Exposure history (unit_id, occurred_at) for contact caps.")
    ] = None,
    unit_id: UnitIdOption = None,
    number_rows: NumberRowsOption = False,
    max_unseen_share: MaxUnseenOption = None,
) -> None:
    """Choose one arm (or none) per unit under the budget and guardrails, with reasons."""
    import datetime as dt

    from liftwise.decide.batch import decide_batch
    from liftwise.decide.config import load_decision_config
    from liftwise.evaluate.bundle import load_bundle
    from liftwise.io import TABLE_SUFFIXES, check_output, write_frame

    check_output(out, inputs=(data, model, guardrails, exposures), suffixes=TABLE_SUFFIXES)
    config = load_decision_config(guardrails, budget=budget)
    bundle = load_bundle(model)
    ids, X, features, now = _units_to_score(
        bundle, data, unit_id, number_rows=number_rows, max_unseen_share=max_unseen_share
    )
    history = None
    if exposures is not None:
        from liftwise.decide.guardrails import read_exposure_history

        history = read_exposure_history(exposures)
    decisions = decide_batch(
        bundle,
        X,
        ids,
        features,
        config,
        exposures=history,
        now=now or dt.datetime.now(dt.UTC),
        source=str(guardrails or "decision config"),
    )
    write_frame(out, decisions.table)
    summary = decisions.summary()
    table = Table(title=f"decisions: budget {budget:,.0f}")
    for column in ("arm", "units"):
        table.add_column(column)
    for arm, count in decisions.arm_counts().items():
        table.add_row(arm, f"{count:,}")
    for reason, count in decisions.reason_counts().items():
        table.add_row(f"  untreated: {reason}", f"{count:,}")
    stdout.print(table)
    if config.soft_guardrail is not None and not decisions.interval_used:
        console.print(
            f"note: soft_guardrail skipped: {bundle.learner_name} gives no per-unit intervals "
            "(set require_interval: true to refuse such models)"
        )
    stdout.print(
        f"expected profit {summary.expected_profit:,.2f}, cost {summary.expected_cost:,.2f}, "
        f"certified gap {summary.gap:,.2f} (bound {summary.upper_bound:,.2f}) -> {out}"
    )


def _units_to_score(
    bundle, data: Path, unit_id: str | None, *, number_rows: bool, max_unseen_share: float | None
):
    """(ids, X, feature table, decision time) from a table or a world directory."""

    import numpy as np

    if data.is_dir():
        from liftwise.features import unit_features
        from liftwise.simulate import load_world

        world = load_world(data)
        if bundle.world != world.name:
            raise UserError(
                f"the model was trained on {bundle.world or 'a table'}, not a {world.name} world",
                file=data,
            )
        now = world.campaign.decision_time
        table = unit_features(world, now)
        X = table[list(bundle.features)].to_numpy(dtype=np.float64)
        features = table.join(
            world.read(world.campaign.unit_table).set_index(world.campaign.unit_key),
            rsuffix="_raw",
        )
        return table.index.to_numpy(), X, features, now
    from liftwise.evaluate.bundle import table_units
    from liftwise.ingest import EncodingLimits, read_table

    limits = EncodingLimits(
        **({} if max_unseen_share is None else {"max_unseen_share": max_unseen_share})
    )
    raw = read_table(data)
    ids, X = table_units(
        bundle,
        raw,
        source=str(data),
        unit_id=unit_id,
        number_rows=number_rows,
        max_unseen_share=limits.max_unseen_share,
        note=note,
    )
    return ids, X, raw, None
