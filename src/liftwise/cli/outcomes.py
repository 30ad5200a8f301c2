"""``liftwise outcomes import``: outcomes of logged decisions from a file, in one go."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liftwise.cli.app import app, stdout

outcomes_app = typer.Typer(
    name="outcomes",
    help="Outcomes (revenue, cost) of the decision service's logged decisions.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(outcomes_app, name="outcomes")


@outcomes_app.command("import")
def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet: decision_id or unit_id, revenue, optional cost, observed_at."
        ),
    ],
    campaign: Annotated[str, typer.Option(help="Campaign whose decisions unit ids join to.")],
    exposure_log: Annotated[
        str | None,
        typer.Option(help="sqlite:///PATH or postgresql://... (default: SQLite in the data dir)."),
    ] = None,
    exposure_table: Annotated[str, typer.Option(help="Exposure log table.")] = "exposures",
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (default: LIFTWISE_DATA_DIR or ./data).")
    ] = None,
) -> None:
    """Record every row's outcome in one transaction: all rows or none (a row without its
    decision, or with other values than the decision's recorded outcome, refuses the file)."""
    from liftwise.errors import UserError
    from liftwise.experiment.data import read_table
    from liftwise.serve.config import TABLE_NAME
    from liftwise.serve.engine import micros, utc_now
    from liftwise.serve.outcomes import OutcomeRefusal, open_outcomes, outcomes_from_table
    from liftwise.settings import Settings
    from liftwise.sqlite import sqlite_path

    if not TABLE_NAME.match(exposure_table):
        raise UserError(f"not a table name: {exposure_table!r}", parameter="exposure_table")
    settings = Settings.load(data_dir=data_dir, exposure_log=exposure_log)
    url = settings.exposures
    if not url.startswith(("postgresql://", "postgres://")) and not sqlite_path(url).is_file():
        raise UserError(f"no exposure log at {url}", parameter="exposure_log")
    items = outcomes_from_table(read_table(file), str(file))
    store = open_outcomes(url, exposure_table)
    try:
        results = store.record(items, campaign, micros(utc_now()))
    except OutcomeRefusal as refused:
        raise UserError(
            f"{refused.message} ({refused.code})",
            file=file,
            column=refused.field,
            row=refused.index,
        ) from None
    finally:
        store.close()
    replayed = sum(r.replayed for r in results)
    stdout.print(f"{file}: {len(results) - replayed} accepted, {replayed} replayed")
