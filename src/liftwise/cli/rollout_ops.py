"""``liftwise rollout alert-rules``: the operations side of rollouts (Prometheus alerts;
the live dashboard is the service's ``GET /dashboard``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liftwise.cli.app import note
from liftwise.cli.rollout import rollout_app


@rollout_app.command("alert-rules")
def alert_rules_command(
    out: Annotated[
        Path | None,
        typer.Option(help="Write the rules to this file (default: print them)."),
    ] = None,
) -> None:
    """Print or write the Prometheus alert rules for the service and its rollouts:
    per-variant error rate and p99, budget burn rate, failed gates, aborted rollouts."""
    from liftwise.serve.alerting import alert_rules, write_alert_rules

    if out is None:
        typer.echo(alert_rules(), nl=False)
        return
    note(f"alert rules written to {write_alert_rules(out)} (load them under rule_files:)")
