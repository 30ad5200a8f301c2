"""``liftwise model ...``: the registry and its approval gate from the terminal.

Register a tracked race's winner, approve a version (who and why), promote it to
champion, roll back, and look at versions, the audit history, the champion at any time
and the model cards. Every command takes ``--data-dir`` and ``--tracking-uri``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from liftwise.cli.app import app, console, stdout
from liftwise.errors import UserError

if TYPE_CHECKING:
    from liftwise.registry.models import ModelRef, ModelRegistry

model_app = typer.Typer(
    name="model",
    help="Registered models: register, approve, promote, roll back; versions, history, cards.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(model_app, name="model")

Name = Annotated[str, typer.Argument(help="Registered model name.", show_default=False)]
Version = Annotated[int, typer.Argument(help="Model version number.", show_default=False)]
DataDir = Annotated[
    Path | None,
    typer.Option(help="Data directory (default: LIFTWISE_DATA_DIR or ./data)."),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        help="MLflow tracking URI, e.g. http://127.0.0.1:5000 (default: LIFTWISE_TRACKING_URI "
        "or sqlite under the data directory)."
    ),
]
By = Annotated[
    str | None, typer.Option(help="Who does this, for the audit log (default: your user).")
]


def open_registry(data_dir: Path | None, tracking_uri: str | None) -> ModelRegistry:
    """The registry on the settings from options, then LIFTWISE_* variables, then defaults."""
    from liftwise.registry.models import ModelRegistry
    from liftwise.settings import Settings

    return ModelRegistry(Settings.load(data_dir=data_dir, tracking_uri=tracking_uri))


def _positive(version: int) -> int:
    if version < 1:
        raise UserError(f"versions start at 1, got {version}", option="VERSION")
    return version


def _say_ref(what: str, ref: ModelRef) -> None:
    aliases = ", ".join(ref.aliases) or "no alias"
    stdout.print(
        f"{what}: {ref.name} v{ref.version} ({aliases}); {ref.model_uri}; run {ref.run_id}"
    )


@model_app.command("register")
def register_command(
    run_id: Annotated[str, typer.Argument(help="MLflow run id of a tracked race.")],
    name: Name,
    by: By = None,
    data_dir: DataDir = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Register a race's winner as a new version (alias challenger) with its model card."""
    ref = open_registry(data_dir, tracking_uri).register(run_id, name, by=by)
    _say_ref("registered", ref)
    stdout.print(
        f"next: liftwise model approve {name} {ref.version} --by WHO --note TEXT, then "
        f"liftwise model promote {name} {ref.version}"
    )


@model_app.command("approve")
def approve_command(
    name: Name,
    version: Version,
    by: Annotated[str, typer.Option(help="Who approves (recorded in the audit log).")],
    note: Annotated[str, typer.Option(help="Why: what was reviewed (recorded).")],
    data_dir: DataDir = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Record a human approval of exactly this version (needed before promote)."""
    open_registry(data_dir, tracking_uri).approve(name, _positive(version), by=by, note=note)
    stdout.print(f"approved: {name} v{version} by {by.strip()}")


@model_app.command("promote")
def promote_command(
    name: Name,
    version: Version,
    by: By = None,
    data_dir: DataDir = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Move alias champion to an approved version (refused without an approval)."""
    registry = open_registry(data_dir, tracking_uri)
    before = registry.champion_at(name, dt.datetime.now(dt.UTC))
    ref = registry.promote(name, _positive(version), by=by)
    was = f" (was v{before})" if before not in (None, ref.version) else ""
    _say_ref(f"champion{was}", ref)


@model_app.command("rollback")
def rollback_command(
    name: Name,
    by: By = None,
    note: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    data_dir: DataDir = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Give champion back to the previous champion, in one command."""
    ref = open_registry(data_dir, tracking_uri).rollback(name, by=by, note=note)
    _say_ref("champion restored", ref)


@model_app.command("list")
def list_command(name: Name, data_dir: DataDir = None, tracking_uri: TrackingUri = None) -> None:
    """Every version: aliases, creation time, winner, Profit@K, approval, run."""
    infos = open_registry(data_dir, tracking_uri).describe_versions(name)
    table = Table(title=f"{name}: {len(infos)} version(s)")
    # the 32-character run id folds first, so a narrow terminal still shows every alias whole
    for column in ("version", "aliases", "created (UTC)", "learner", "Profit@K", "approved by"):
        table.add_column(
            column,
            justify="right" if column in ("version", "Profit@K") else "left",
            min_width=len("challenger") if column == "aliases" else None,
            overflow="fold",
        )
    table.add_column("run", overflow="fold")
    for info in infos:
        table.add_row(
            str(info.version),
            ", ".join(info.aliases),
            info.created.strftime("%Y-%m-%d %H:%M:%S"),
            info.learner,
            "" if info.profit_at_k is None else f"{info.profit_at_k:,.0f}",
            info.approved_by or "",
            info.run_id,
        )
    stdout.print(table)


@model_app.command("history")
def history_command(name: Name, data_dir: DataDir = None, tracking_uri: TrackingUri = None) -> None:
    """The audit log: registrations, approvals, promotions and rollbacks, oldest first."""
    registry = open_registry(data_dir, tracking_uri)
    entries = registry.history(name)
    if not entries:
        registry.require_model(name)
    table = Table(title=f"{name}: audit log")
    for column in ("at (UTC)", "action", "version", "champion from", "to", "by", "note"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            entry.at.strftime("%Y-%m-%d %H:%M:%S.%f"),
            entry.action,
            str(entry.version),
            "" if entry.from_version is None else str(entry.from_version),
            "" if entry.to_version is None else str(entry.to_version),
            entry.by,
            entry.note,
        )
    stdout.print(table)


@model_app.command("champion")
def champion_command(
    name: Name,
    at: Annotated[
        str | None,
        typer.Option(help="ISO time, e.g. 2025-03-01T09:30 (no zone = UTC): champion then."),
    ] = None,
    data_dir: DataDir = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """The champion now (version, run, model URI, local bundle), or at a past time."""
    registry = open_registry(data_dir, tracking_uri)
    registry.require_model(name)
    if at is not None:
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError:
            raise UserError(f"not an ISO time: '{at}'", option="--at") from None
        version = registry.champion_at(name, when)
        stdout.print(
            f"{name} at {at}: " + (f"v{version}" if version is not None else "no champion")
        )
        return
    ref = registry.champion(name)
    if ref is None:
        stdout.print(f"{name} has no champion yet")
        return
    _say_ref("champion", ref)
    stdout.print(f"bundle: {ref.bundle_dir}")


@model_app.command("card")
def card_command(
    name: Name,
    version: Version,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the HTML card in the web browser.")
    ] = False,
    data_dir: DataDir = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Print a version's model card (Markdown); --open shows the HTML one."""
    paths = open_registry(data_dir, tracking_uri).card(name, _positive(version))
    stdout.print(paths["md"].read_text(), markup=False, highlight=False)
    console.print(f"card: {paths['md']} and {paths['html']}")
    if open_:
        import webbrowser

        if not webbrowser.open(paths["html"].resolve().as_uri()):
            raise UserError("no web browser found; open the HTML file yourself", option="--open")
