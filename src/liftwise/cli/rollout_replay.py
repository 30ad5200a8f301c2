"""``liftwise rollout simulate`` and ``rehearsal-candidate``: live traffic from a world
against a running service, and candidates that are bad on purpose (docs/rollouts.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from liftwise.cli.app import console, progress_bar, stdout
from liftwise.cli.rollout import rollout_app

if TYPE_CHECKING:
    from liftwise.rollout.replay import ReplayReport


@rollout_app.command("simulate")
def simulate_command(
    world: Annotated[Path, typer.Option(help="World directory (`liftwise simulate`).")],
    url: Annotated[
        str, typer.Option(help="The decision service, e.g. http://127.0.0.1:8000.")
    ] = "http://127.0.0.1:8000",
    rate: Annotated[float, typer.Option(help="Decision requests per second (open loop).")] = 200.0,
    units: Annotated[int | None, typer.Option(help="Units to replay (default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Order of the units.")] = 0,
    duration: Annotated[
        float | None, typer.Option(help="Stop the traffic after this many seconds.")
    ] = None,
    loop: Annotated[
        bool, typer.Option(help="Start over at the first unit when all are sent (--duration).")
    ] = False,
    outcome_delay: Annotated[
        float, typer.Option(help="Seconds after a decision its outcome is posted.")
    ] = 1.0,
    outcomes: Annotated[
        bool, typer.Option(help="Post outcomes from the world's ground truth.")
    ] = True,
    senders: Annotated[int, typer.Option(help="Sender threads (connections).")] = 8,
) -> None:
    """Send a world's units to a running `liftwise serve` and feed back their true outcomes."""
    from liftwise.rollout.replay import ReplaySettings, planned_requests, run_replay, world_traffic
    from liftwise.simulate import load_world

    traffic = world_traffic(load_world(world))
    settings = ReplaySettings(rate=rate, units=units, seed=seed, duration=duration, loop=loop,
                              outcome_delay_seconds=outcome_delay, post_outcomes=outcomes,
                              senders=senders)  # fmt: skip
    total = planned_requests(traffic, settings)
    with progress_bar(f"replaying to {url}", total=total) as advance:
        report = run_replay(url, traffic, settings, progress=advance)
    _print_report(report)


def _print_report(report: ReplayReport) -> None:
    errors = ", ".join(f"{k}: {v:,}" for k, v in report.errors.items()) or "none"
    stdout.print(
        f"requests {report.requests:,}, answered {report.answered:,}, errors {errors}; "
        f"latency p50 {report.latency_p50_ms:.2f} ms, p99 {report.latency_p99_ms:.2f} ms; "
        f"{report.achieved_rate:,.0f}/s over {report.seconds:.1f} s"
    )
    failed = ", ".join(f"{k}: {v:,}" for k, v in report.outcome_errors.items()) or "none"
    stdout.print(
        f"outcomes posted {report.outcomes_posted:,}, accepted {report.outcomes_accepted:,}, "
        f"refused {failed}"
    )
    table = Table(title="decisions per variant (net profit per unit, from ground truth)")
    for column in ("variant", "decisions", "treated", "true expected", "realised"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for v in report.variants.values():
        table.add_row(v.variant, f"{v.decisions:,}", f"{v.treated:,}",
                      f"{v.true_expected_net_profit_per_unit:,.2f}",
                      f"{v.realised_net_profit_per_unit:,.2f}")  # fmt: skip
    stdout.print(table)
    if {"candidate", "baseline"} <= report.variants.keys():
        console.print(f"true uplift (candidate - baseline): {report.true_uplift():,.2f} per unit")


@rollout_app.command("rehearsal-candidate")
def rehearsal_command(
    model: Annotated[Path, typer.Option(help="The model directory to wrap.")],
    kind: Annotated[
        str,
        typer.Option(
            help="slow (sleeps --latency-ms), broken (raises on --error-rate of calls), "
            "harmful (reflected effects: treats sleeping dogs) or same (an A/A candidate)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Where to write the candidate's model directory.")],
    latency_ms: Annotated[float, typer.Option(help="Added to every prediction (slow).")] = 80.0,
    error_rate: Annotated[float, typer.Option(help="Share of calls that raise (broken).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the failures (broken).")] = 0,
) -> None:
    """Write a candidate that is bad on purpose, to rehearse a rollout plan's gates."""
    from liftwise.evaluate.bundle import load_bundle, save_bundle
    from liftwise.io import atomic_directory
    from liftwise.rollout.faults import rehearsal_bundle

    bundle = rehearsal_bundle(
        load_bundle(model), kind, latency_ms=latency_ms, error_rate=error_rate, seed=seed
    )
    with atomic_directory(out) as tmp:
        save_bundle(bundle, tmp)
    stdout.print(f"rehearsal candidate ({kind}) of {model}: {out}")
