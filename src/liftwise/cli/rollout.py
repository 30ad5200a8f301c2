"""``liftwise rollout ...``: gated rollouts of a candidate model in the decision service.

The group lives here; its commands live in ``rollout_control.py`` (start, status, pause,
resume, promote, abort, history) and ``rollout_replay.py`` (simulate: live traffic from a
world, and rehearsal candidates)."""

from __future__ import annotations

import typer

from liftwise.cli.app import app

rollout_app = typer.Typer(
    name="rollout",
    help="Gated rollouts: canary -> ramp -> full with automatic rollback (docs/rollouts.md).",
    no_args_is_help=True,
)
app.add_typer(rollout_app, name="rollout")
