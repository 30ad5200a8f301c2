"""Commands over synthetic worlds: simulate, validate, describe, quickstart."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from liftwise.cli.app import app, comma_list, console, progress_bar, stdout
from liftwise.errors import UserError

if TYPE_CHECKING:  # stage modules load inside commands, so `--help` stays instant
    from liftwise.contracts.validate import ValidationReport
    from liftwise.simulate import WorldConfig
    from liftwise.simulate.config import ArmConfig
    from liftwise.simulate.summary import WorldSummary

DEFAULT_DATA_DIR = Path("data")


def _parse_arm_ratios(world: str, specs: list[str]) -> tuple[ArmConfig, ...] | None:
    """``NAME=RATIO`` options -> the campaign's arms with the world's costs, control first."""
    if not specs:
        return None
    import importlib

    defaults = {
        a.name: a for a in importlib.import_module(f"liftwise.simulate.{world}").DEFAULT_ARMS
    }
    control = next(iter(defaults))
    arms: dict[str, ArmConfig] = {}
    for spec in specs:
        name, sep, ratio = spec.partition("=")
        if not sep:
            raise UserError(f"expected NAME=RATIO, got '{spec}'", option="--arm")
        if name not in defaults:
            raise UserError(
                f"unknown arm '{name}' for world {world} (known: {', '.join(defaults)})",
                option="--arm",
            )
        try:
            value = float(ratio)
        except ValueError:
            raise UserError(
                f"ratio of '{name}' is not a number: '{ratio}'", option="--arm"
            ) from None
        arms[name] = defaults[name].model_copy(update={"ratio": value})
    if control not in arms:
        raise UserError(f"the control arm '{control}' must be listed", option="--arm")
    ordered = [arms.pop(control), *arms.values()]
    return tuple(ordered)


def _world_config(**kwargs: Any) -> WorldConfig:
    """Build the config, turning pydantic's messages into one line naming the option."""
    from pydantic import ValidationError

    from liftwise.simulate import WorldConfig

    try:
        return WorldConfig(**kwargs)
    except ValidationError as err:
        first = err.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else None
        raise UserError(first["msg"], option=option) from None


@app.command("simulate")
def simulate_command(
    world: Annotated[str, typer.Option(help="World to generate: fintech or learning.")],
    out: Annotated[Path, typer.Option(help="Output directory (replaced atomically).")],
    units: Annotated[int, typer.Option(help="Number of customers or learners.")] = 100_000,
    days: Annotated[int, typer.Option(help="Days of history before the decision date.")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed; same arguments, same bytes.")] = 0,
    realism: Annotated[
        str, typer.Option(help="v2: weekday and hour-of-day seasonality; v1: flat.")
    ] = "v2",
    zipf_exponent: Annotated[
        float, typer.Option(help="Zipf exponent of merchant popularity (fintech).")
    ] = 1.1,
    decision_date: Annotated[
        str, typer.Option(help="Date of the past campaign (YYYY-MM-DD).")
    ] = "2026-06-01",
    window_days: Annotated[int, typer.Option(help="Outcome window after the campaign.")] = 30,
    arm: Annotated[
        list[str] | None,
        typer.Option(
            help="Campaign arms NAME=RATIO, comma-separated or repeated; ratios sum to 1.",
            callback=comma_list,
        ),
    ] = None,
) -> None:
    """Generate a synthetic world with ground truth as Parquet tables plus a manifest."""
    if world not in {"fintech", "learning"}:
        raise UserError(f"unknown world '{world}' (choose fintech or learning)", option="--world")
    try:
        date = dt.date.fromisoformat(decision_date)
    except ValueError:
        raise UserError(f"not a date: '{decision_date}'", option="--decision-date") from None
    config = _world_config(
        world=world,
        units=units,
        days=days,
        seed=seed,
        realism=realism,
        zipf_exponent=zipf_exponent,
        decision_date=date,
        outcome_window_days=window_days,
        arms=_parse_arm_ratios(world, arm or []),
    )
    from liftwise.io import check_output
    from liftwise.simulate import simulate

    check_output(out, kind="directory")
    with progress_bar(f"simulating {world}", total=units) as advance:
        manifest = simulate(config, out, progress=advance)
    stdout.print(f"wrote {out} ({_sizes_line(manifest.sizes)})")


def _sizes_line(sizes: dict[str, int]) -> str:
    return ", ".join(f"{name} {rows:,}" for name, rows in sorted(sizes.items()))


@app.command("validate")
def validate_command(
    directory: Annotated[Path, typer.Argument(help="World directory to check.")],
    report: Annotated[
        Path | None, typer.Option(help="Also write every kept violation to this CSV file.")
    ] = None,
) -> None:
    """Check every table against its contract, the manifest hashes and cross-table rules.

    Exits 2 when any rule is broken; prints each broken rule with its count and first rows.
    """
    from liftwise.contracts.validate import validate_world
    from liftwise.io import check_output
    from liftwise.simulate import load_world

    if report is not None:
        check_output(report, inputs=(directory,), suffixes=(".csv",), option="--report")
    world = load_world(directory)
    total = sum(t.rows for t in world.manifest.tables.values())
    with progress_bar("validating", total=total) as advance:
        result = validate_world(directory, progress=advance)
    if report is not None:
        _write_violations_csv(result, report)
    if result.ok:
        stdout.print(f"{directory}: valid ({_sizes_line(result.rows_checked)})")
        return
    _print_violations(result)
    raise typer.Exit(2)


def _print_violations(result: ValidationReport) -> None:
    table = Table(title=f"{result.total:,} violations", show_lines=False)
    for column in ("file", "column", "rule", "count", "first rows"):
        table.add_column(column)
    for (file, column, rule), count in sorted(result.counts.items()):
        rows = [
            v.row for v in result.violations if (v.file, v.column, v.rule) == (file, column, rule)
        ]
        first = ", ".join("-" if r is None else str(r) for r in rows[:5])
        table.add_row(file, column, rule, f"{count:,}", first)
    console.print(table)
    for violation in result.violations[:20]:
        console.print(violation.one_line(), markup=False, highlight=False)


def _write_violations_csv(result: ValidationReport, path: Path) -> None:
    from liftwise.io import atomic_path

    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "column", "row", "rule", "value"])
        for v in result.violations:
            writer.writerow([v.file, v.column, "" if v.row is None else v.row, v.rule, v.value])


@app.command("describe")
def describe_command(
    directory: Annotated[Path, typer.Argument(help="World directory.")],
) -> None:
    """Print a short summary of a world: sizes, unit types, true effects, baseline policies."""
    from liftwise.simulate import load_world
    from liftwise.simulate.summary import summarize_world

    _print_summary(summarize_world(load_world(directory)))


def _print_summary(summary: WorldSummary) -> None:
    stdout.print(
        f"[bold]{summary.world}[/] world, seed {summary.seed}: {_sizes_line(summary.sizes)}"
    )
    types = Table(title="latent unit types (ground truth)")
    types.add_column("type")
    types.add_column("share", justify="right")
    for name, share in summary.unit_type_share.items():
        types.add_row(name, f"{share:.1%}")
    stdout.print(types)
    money = summary.currency
    policies = Table(title=f"true value of simple policies ({money}, vs treating nobody)")
    for column in ("policy", "treated", "true ATE", "incremental net profit"):
        policies.add_column(column, justify="right" if column != "policy" else "left")
    for row in summary.policies:
        ate = "" if row.average_effect is None else f"{row.average_effect:+.4f}"
        policies.add_row(row.name, f"{row.treated:,}", ate, f"{row.incremental_net_profit:,.0f}")
    stdout.print(policies)


@app.command("quickstart")
def quickstart_command(
    out: Annotated[Path, typer.Option(help="Directory for everything the run writes.")] = (
        DEFAULT_DATA_DIR / "quickstart"
    ),
    units: Annotated[int, typer.Option(help="Customers in the generated world.")] = 50_000,
    days: Annotated[int, typer.Option(help="Days of payment history.")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    learners: Annotated[
        list[str] | None,
        typer.Option(
            help="Learners for the race, comma-separated or repeated.", callback=comma_list
        ),
    ] = None,
) -> None:
    """Generate a fintech world, race the learners, decide a campaign under a budget and
    value it with ground truth against every baseline; writes an HTML report."""
    from liftwise.io import check_output
    from liftwise.pipeline.quickstart import QUICK_RACE, run_quickstart

    check_output(out, kind="directory")
    if units < 1_000:
        raise UserError("the quickstart needs at least 1,000 customers", option="--units")
    names = tuple(learners) if learners else QUICK_RACE
    with console.status("quickstart") as status:
        result = run_quickstart(
            out, units=units, days=days, seed=seed, learners=names, say=status.update
        )
    table = Table(
        title=f"true value of each policy (VND, vs treating nobody); budget {result.budget:,.0f}"
    )
    for column in ("policy", "treated", "true expected cost", "true incremental net profit"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in result.policies:
        name = f"[bold]{row.name}[/]" if row.name == "liftwise" else row.name
        table.add_row(
            name, f"{row.treated:,}", f"{row.expected_cost:,.0f}", f"{row.incremental_profit:,.0f}"
        )
    stdout.print(table)
    summary = result.decisions.summary()
    stdout.print(
        f"race winner {result.race.winner}; optimiser gap {summary.gap:,.0f} VND "
        f"(bound {summary.upper_bound:,.0f}); report {result.report}"
    )
