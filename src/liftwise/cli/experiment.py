"""``liftwise experiment``: assign units, analyse an experiment, try it on a world, plan its size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from liftwise.cli.app import app, comma_list, console, progress_bar, stdout
from liftwise.errors import UserError

if TYPE_CHECKING:
    from liftwise.experiment.world import WorldDesign

experiment_app = typer.Typer(
    name="experiment",
    help="Controlled experiments: assignment, analysis with a report, power.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(experiment_app, name="experiment")


def _number(text: str, option: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{what} is not a number: '{text}'", option=option) from None


def parse_ratios(spec: str, option: str) -> dict[str, float]:
    """``a=0.45,b=0.45,control=0.1`` -> ordered {arm: ratio}."""
    ratios: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise UserError(f"expected ARM=RATIO, got '{item}'", option=option)
        if name in ratios:
            raise UserError(f"arm '{name}' listed twice", option=option)
        ratios[name] = _number(value, option, f"ratio of '{name}'")
    if not ratios:
        raise UserError("no arms given", option=option)
    return ratios


def _range(spec: str) -> tuple[float, float]:
    low, sep, high = spec.partition("-")
    if not sep:
        raise UserError(f"expected LO-HI such as 0-0.5, got '{spec}'", option="--layer-range")
    return _number(low, "--layer-range", "lower end"), _number(high, "--layer-range", "upper end")


@experiment_app.command("assign")
def assign_command(
    units_file: Annotated[Path, typer.Argument(help="CSV or Parquet file with the unit ids.")],
    experiment: Annotated[str, typer.Option(help="Experiment name (the default hash salt).")],
    arms: Annotated[
        str, typer.Option(help="Arms and weights summing to 1: a=0.45,b=0.45,control=0.1")
    ],
    out: Annotated[Path, typer.Option(help="Assignment table to write (.parquet or .csv).")],
    coverage: Annotated[float, typer.Option(help="Share of eligible units enrolled (0-1].")] = 1.0,
    holdout: Annotated[float, typer.Option(help="Share held out of every experiment [0-1).")] = 0.0,
    holdout_name: Annotated[
        str, typer.Option(help="Which holdout group (same name, same units).")
    ] = "global",
    layer: Annotated[
        str | None, typer.Option(help="Layer for mutually exclusive experiments.")
    ] = None,
    layer_range: Annotated[
        str, typer.Option(help="This experiment's slice LO-HI of the layer.")
    ] = "0-1",
    salt: Annotated[
        str | None, typer.Option(help="Hash salt (default: the experiment name).")
    ] = None,
    id_column: Annotated[str, typer.Option(help="Column of the unit ids.")] = "unit_id",
) -> None:
    """Assign units to arms by salted SHA-256 hashing (deterministic, stateless).

    Writes unit_id, experiment, arm, status (assigned, holdout, outside_layer,
    not_covered) and bucket; raising --coverage later never moves a unit between arms.
    """
    from pydantic import ValidationError

    from liftwise.contracts.ids import require_unique_ids
    from liftwise.experiment.assign import Design, assign_units
    from liftwise.experiment.data import read_table, unit_id_values
    from liftwise.io import TABLE_SUFFIXES, check_output, write_frame

    check_output(out, inputs=(units_file,), suffixes=TABLE_SUFFIXES)
    try:
        design = Design(
            name=experiment,
            arms=parse_ratios(arms, "--arms"),
            coverage=coverage,
            holdout=holdout,
            holdout_name=holdout_name,
            layer=layer,
            layer_range=_range(layer_range),
            salt=salt,
        )
    except ValidationError as err:
        first = err.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else None
        raise UserError(first["msg"].removeprefix("Value error, "), option=option) from None
    table = read_table(units_file, [id_column], require=True)
    values = unit_id_values(table.column(id_column), str(units_file), id_column)
    require_unique_ids(values, file=units_file, column=id_column)  # one row per unit
    with progress_bar("assigning", total=len(values)) as advance:
        assignment = assign_units(values, design, source=str(units_file), progress=advance)
    write_frame(out, assignment)
    counts = assignment["arm"].value_counts().reindex(design.arm_names, fill_value=0)
    status = assignment["status"].value_counts()
    stdout.print(
        f"wrote {out}: "
        + ", ".join(f"{arm} {int(n):,}" for arm, n in counts.items())
        + "; "
        + ", ".join(f"{s} {int(n):,}" for s, n in status.items())
    )


def _metric(payload: dict[str, Any], name: str, option: str) -> dict[str, Any]:
    for metric in payload.get("metrics", []):
        if metric.get("name") == name:
            return metric
    raise UserError(
        f"no metric named '{name}' (define it with --binary/--continuous/--ratio)", option=option
    )


def _split(spec: str, separator: str, option: str, form: str) -> tuple[str, str]:
    left, sep, right = spec.partition(separator)
    if not sep or not left or not right:
        raise UserError(f"expected {form}, got '{spec}'", option=option)
    return left, right


def build_config(config: Path | None, **flags: Any) -> Any:
    """The analysis config: the YAML file (if any), then the command-line flags on top."""
    from liftwise.experiment.config import parse_config, read_payload

    payload = {} if config is None else read_payload(config, option="--config")
    for key in ("control", "experiment", "alpha", "correction", "looks", "sequential_tuning"):
        if flags.get(key) is not None:
            payload[key] = flags[key]
    if flags.get("arms"):
        payload["arms"] = parse_ratios(flags["arms"], "--arms")
    metrics = payload.setdefault("metrics", [])
    metrics += [{"name": c, "type": "binary"} for c in flags.get("binary") or []]
    metrics += [{"name": c, "type": "continuous"} for c in flags.get("continuous") or []]
    for spec in flags.get("ratio") or []:
        name, fraction = _split(spec, "=", "--ratio", "NAME=NUMERATOR/DENOMINATOR")
        numerator, denominator = _split(fraction, "/", "--ratio", "NAME=NUMERATOR/DENOMINATOR")
        metrics.append(
            {"name": name, "type": "ratio", "numerator": numerator, "denominator": denominator}
        )
    for spec in flags.get("covariate") or []:
        name, column = _split(spec, "=", "--covariate", "METRIC=COLUMN")
        _metric(payload, name, "--covariate")["covariate"] = column
    for spec in flags.get("guardrail") or []:
        name, margin = _split(spec, "=", "--guardrail", "METRIC=MARGIN or METRIC=MARGIN%")
        relative = margin.endswith("%")
        value = _number(margin.rstrip("%"), "--guardrail", f"margin of '{name}'")
        _metric(payload, name, "--guardrail")["guardrail"] = {
            "margin": value / 100 if relative else value,
            "relative": relative,
        }
    for name in flags.get("lower_is_better") or []:
        _metric(payload, name, "--lower-is-better")["higher_is_better"] = False
    if flags.get("segment"):
        payload["segments"] = [*payload.get("segments", []), *flags["segment"]]
    if (
        flags.get("revenue")
        or flags.get("cost")
        or flags.get("compare")
        or flags.get("profit_covariate")
    ):
        profit = payload.setdefault("profit", {})
        for key, flag in (
            ("revenue", "revenue"),
            ("cost", "cost"),
            ("covariate", "profit_covariate"),
        ):
            if flags.get(flag):
                profit[key] = flags[flag]
        if flags.get("compare"):
            profit["comparisons"] = [
                list(_split(s, ":", "--compare", "TREATMENT:BASELINE")) for s in flags["compare"]
            ]
    if "control" not in payload:
        raise UserError(
            "which arm is the control? give --control or 'control:' in --config", option="--control"
        )
    return parse_config(payload, source=str(config) if config else "command-line options")


@experiment_app.command("analyze")
def analyze_command(
    exposures: Annotated[
        str, typer.Argument(help="Exposures: CSV/Parquet file or sqlite:///db?table=T.")
    ],
    outcomes: Annotated[Path, typer.Argument(help="Outcomes per unit: CSV or Parquet file.")],
    out: Annotated[Path, typer.Option(help="Directory for report.html and summary.json.")],
    config: Annotated[
        Path | None, typer.Option(help="YAML analysis config (flags add to it).")
    ] = None,
    control: Annotated[str | None, typer.Option(help="The control (baseline) arm.")] = None,
    arms: Annotated[
        str | None,
        typer.Option(help="Expected ratios for the SRM check: a=0.45,b=0.45,control=0.1"),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Keep exposures of this experiment only.")
    ] = None,
    binary: Annotated[
        list[str] | None,
        typer.Option(help="0/1 metric column (comma-separated or repeated).", callback=comma_list),
    ] = None,
    continuous: Annotated[
        list[str] | None,
        typer.Option(
            help="Numeric metric column (comma-separated or repeated).", callback=comma_list
        ),
    ] = None,
    ratio: Annotated[
        list[str] | None,
        typer.Option(
            help="Ratio metric NAME=NUMERATOR/DENOMINATOR (comma-separated or repeated).",
            callback=comma_list,
        ),
    ] = None,
    covariate: Annotated[
        list[str] | None,
        typer.Option(
            help="CUPED covariate METRIC=COLUMN (comma-separated or repeated).", callback=comma_list
        ),
    ] = None,
    guardrail: Annotated[
        list[str] | None,
        typer.Option(
            help="Guardrail METRIC=MARGIN (absolute) or METRIC=MARGIN% (relative); "
            "comma-separated or repeated.",
            callback=comma_list,
        ),
    ] = None,
    lower_is_better: Annotated[
        list[str] | None,
        typer.Option(
            help="Metric where a decrease is good (comma-separated or repeated).",
            callback=comma_list,
        ),
    ] = None,
    segment: Annotated[
        list[str] | None,
        typer.Option(
            help="Segment column for the deep-dive (comma-separated or repeated).",
            callback=comma_list,
        ),
    ] = None,
    revenue: Annotated[
        str | None, typer.Option(help="Net profit: column of gross value per unit.")
    ] = None,
    cost: Annotated[
        str | None, typer.Option(help="Net profit: column of treatment cost per unit.")
    ] = None,
    profit_covariate: Annotated[
        str | None, typer.Option(help="Net profit: CUPED covariate column.")
    ] = None,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            help="Profit comparison TREATMENT:BASELINE (comma-separated or repeated).",
            callback=comma_list,
        ),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Significance level (default 0.05).")] = None,
    correction: Annotated[
        str | None, typer.Option(help="Multiple testing: holm (default), bh, none.")
    ] = None,
    looks: Annotated[
        int | None, typer.Option(help="Time points of the sequential path (default 30).")
    ] = None,
    sequential_tuning: Annotated[
        float | None, typer.Option(help="Sequential tuning n* (default 5000).")
    ] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "liftwise experiment",
) -> None:
    """Analyse an experiment: SRM, effects with Welch/z/delta-method/CUPED intervals, always-
    valid intervals, guardrails, segments and net profit uplift; writes report.html and
    summary.json. Units exposed to more than one arm are excluded and counted."""
    from liftwise.io import check_output

    log_file = None if "://" in exposures else exposures
    check_output(out, kind="directory", inputs=(log_file, outcomes, config))
    settings = build_config(
        config,
        control=control,
        arms=arms,
        experiment=experiment,
        binary=binary,
        continuous=continuous,
        ratio=ratio,
        covariate=covariate,
        guardrail=guardrail,
        lower_is_better=lower_is_better,
        segment=segment,
        revenue=revenue,
        cost=cost,
        profit_covariate=profit_covariate,
        compare=compare,
        alpha=alpha,
        correction=correction,
        looks=looks,
        sequential_tuning=sequential_tuning,
    )
    from liftwise.experiment.analyze import analyze_files
    from liftwise.experiment.report import write_report

    # a transient spinner, not a bar: a user error mid-way leaves only its one line
    with console.status("analysing"):
        analysis = analyze_files(exposures, outcomes, settings)
        paths = write_report(analysis, out, title=title)
    _print_verdict(analysis)
    stdout.print(f"wrote {paths['report']} and {paths['summary']}")


def _print_verdict(analysis: Any) -> None:
    from liftwise.experiment.report import level

    verdict = analysis.verdict()
    units = analysis.units
    stdout.print(
        f"units analysed {units.analysed_units:,} ({', '.join(f'{a} {n:,}' for a, n in analysis.n_by_arm.items())}); "
        f"excluded (several arms) {units.multi_arm_units:,}; without outcome row {units.units_without_outcome_row:,}"
    )
    if analysis.srm is not None:
        stdout.print(
            f"SRM: {'MISMATCH' if analysis.srm.mismatch else 'ok'} (p = {analysis.srm.p_value:.3g})"
        )
    if verdict["guardrails_passed"] is not None:
        stdout.print(f"guardrails: {'all passed' if verdict['guardrails_passed'] else 'FAILED'}")
    for uplift in analysis.profit:
        e = uplift.per_unit
        stdout.print(
            f"net profit {uplift.treatment} vs {uplift.baseline}: {e.estimate:,.4g} per unit "
            f"({level(e.alpha)} CI {e.ci_low:,.4g} to {e.ci_high:,.4g})"
            + (" -> confident gain" if uplift.confident_gain else "")
        )
    for item in verdict["segment_regressions"]:
        stdout.print(
            f"regression: {item['metric']} {item['treatment']} vs {item['baseline']} in {item['dimension']} {', '.join(item['segments'])}"
        )


@experiment_app.command("from-world")
def from_world_command(
    world_dir: Annotated[
        Path, typer.Argument(help="A fintech world directory (liftwise simulate).")
    ],
    out: Annotated[Path, typer.Option(help="Directory for exposures, outcomes, config and truth.")],
    design: Annotated[
        str,
        typer.Option(help="campaign (the world's own) or policy (policy vs current vs control)."),
    ] = "campaign",
    policy: Annotated[
        Path | None,
        typer.Option(help="Policy design: decisions file (unit_id, arm); default oracle."),
    ] = None,
    exposure_days: Annotated[
        int, typer.Option(help="Spread synthetic exposure times over this many days.")
    ] = 14,
    seed: Annotated[
        int, typer.Option(help="Seed of exposure times (and the policy design's salt).")
    ] = 0,
) -> None:
    """Turn a synthetic world's campaign into exposures.parquet, outcomes.parquet,
    experiment.yaml and truth.json (the true effects), ready for `experiment analyze`."""
    if design not in ("campaign", "policy"):
        raise UserError(f"unknown design '{design}' (campaign or policy)", option="--design")
    from liftwise.experiment.data import read_table
    from liftwise.experiment.world import write_world_experiment
    from liftwise.io import check_output
    from liftwise.simulate import load_world

    check_output(out, kind="directory", inputs=(world_dir, policy))
    decisions = None
    if policy is not None:
        decisions = read_table(policy, ["unit_id", "arm"], require=True).to_pandas()
    world = load_world(world_dir)
    paths = write_world_experiment(
        world,
        out,
        design=cast("WorldDesign", design),  # checked against the two designs above
        policy=decisions,
        exposure_days=exposure_days,
        seed=seed,
    )
    stdout.print(f"wrote {', '.join(str(p) for p in paths.values())}")
    stdout.print(
        f"next: liftwise experiment analyze {paths['exposures']} {paths['outcomes']} "
        f"--config {paths['config']} --out {out / 'report'}"
    )


@experiment_app.command("power")
def power_command(
    sd: Annotated[
        float | None, typer.Option(help="Standard deviation of the metric per unit.")
    ] = None,
    baseline_rate: Annotated[
        float | None, typer.Option(help="0/1 metric: the control's rate (sets the sd).")
    ] = None,
    effect: Annotated[
        float | None, typer.Option(help="Absolute effect to detect -> sample size.")
    ] = None,
    n_control: Annotated[
        float | None, typer.Option(help="Units in control -> minimum detectable effect.")
    ] = None,
    ratio: Annotated[float, typer.Option(help="Treatment units per control unit.")] = 1.0,
    alpha: Annotated[float, typer.Option(help="Two-sided significance level.")] = 0.05,
    target_power: Annotated[
        float, typer.Option("--power", help="Probability of detecting the effect.")
    ] = 0.8,
    variance_reduction: Annotated[
        float, typer.Option(help="CUPED: share of variance removed (rho^2).")
    ] = 0.0,
    test: Annotated[str, typer.Option(help="z (default) or t.")] = "z",
) -> None:
    """Plan an experiment: units needed for an effect, or the effect detectable with n units."""
    from liftwise.stats.power import minimum_detectable_effect, proportion_sd, sample_size

    if (sd is None) == (baseline_rate is None):
        raise UserError("give exactly one of --sd and --baseline-rate", option="--sd")
    if (effect is None) == (n_control is None):
        raise UserError("give exactly one of --effect and --n-control", option="--effect")
    if test not in ("z", "t"):
        raise UserError(f"unknown test '{test}' (z or t)", option="--test")
    if not 0 <= variance_reduction < 1:
        raise UserError("must be in [0, 1)", option="--variance-reduction")
    spread = sd if sd is not None else proportion_sd(float(baseline_rate))  # type: ignore[arg-type]
    if not spread or spread <= 0:
        raise UserError(
            "the standard deviation must be positive",
            option="--sd" if sd is not None else "--baseline-rate",
        )
    spread *= (1 - variance_reduction) ** 0.5
    common = {"ratio": ratio, "alpha": alpha, "target_power": target_power, "test": test}
    try:
        if effect is not None:
            n = sample_size(effect, spread, **common)  # type: ignore[arg-type]
            stdout.print(
                f"units needed: control {int(-(-n // 1)):,}, treatment {int(-(-n * ratio // 1)):,}"
            )
        else:
            mde = minimum_detectable_effect(spread, float(n_control), **common)  # type: ignore[arg-type, arg-type]
            stdout.print(f"minimum detectable effect: {mde:.6g} (absolute), sd {spread:.6g}")
    except ValueError as err:
        raise UserError(str(err), option="--effect") from None
