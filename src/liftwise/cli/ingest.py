"""Commands that turn real experiment data into a saved experiment frame: ingest, hillstrom."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from liftwise.cli.app import app, comma_list, note, stdout

if TYPE_CHECKING:  # stage modules load inside commands, so `--help` stays instant
    from liftwise.contracts.experiment import ExperimentFrame

OutOption = Annotated[
    Path,
    typer.Option("--out", help="Parquet file to write; its metadata goes to <out>.json."),
]


@app.command("ingest")
def ingest(
    data: Annotated[
        Path, typer.Option("--data", help="Experiment table (.csv, .csv.gz, .parquet, .pq).")
    ],
    treatment: Annotated[
        str, typer.Option("--treatment", help="Column holding each unit's assigned arm.")
    ],
    control: Annotated[
        str, typer.Option("--control", help="Label of the untreated arm in the treatment column.")
    ],
    outcome: Annotated[
        list[str],
        typer.Option(
            "--outcome", help="Outcome columns, comma-separated or repeated.", callback=comma_list
        ),
    ],
    out: OutOption,
    unit_id: Annotated[
        str | None,
        typer.Option(
            "--unit-id",
            help="Integer unique id column (default: a column named unit_id; none: row numbers).",
        ),
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option(
            "--features",
            help="Feature columns, comma-separated or repeated (default: every column that is "
            "not the treatment, an outcome, the id or a written-out index).",
            callback=comma_list,
        ),
    ] = None,
    max_categories: Annotated[
        int,
        typer.Option(
            "--max-categories", min=1, help="Most levels a text feature may have (one-hot)."
        ),
    ] = 50,
) -> None:
    """Load a randomised experiment from your own table, validate it and save it."""
    from liftwise.ingest import load_experiment
    from liftwise.io import PARQUET_SUFFIXES, check_output

    check_output(out, inputs=(data,), suffixes=PARQUET_SUFFIXES)
    frame = load_experiment(
        data,
        treatment=treatment,
        control=control,
        outcomes=outcome,
        unit_id=unit_id,
        features=features or None,
        max_categories=max_categories,
        note=note,
    )
    _save_and_summarise(frame, out)


@app.command("hillstrom")
def hillstrom(
    data: Annotated[Path, typer.Option("--data", help="The Hillstrom (MineThatData) CSV.")],
    out: OutOption,
) -> None:
    """Load the Hillstrom e-mail experiment (control: No E-Mail), validate it and save it."""
    from liftwise.ingest import load_hillstrom
    from liftwise.io import PARQUET_SUFFIXES, check_output

    check_output(out, inputs=(data,), suffixes=PARQUET_SUFFIXES)
    _save_and_summarise(load_hillstrom(data), out)


def _save_and_summarise(frame: ExperimentFrame, out: Path) -> None:
    """Save, then show rows and outcome means per arm so the user can sanity-check the load."""
    from liftwise.ingest import save_experiment

    save_experiment(frame, out)
    summary = frame.arm_summary()
    table = Table(
        title=f"{len(frame.data):,} rows, {len(frame.features)} features -> {out}",
        title_justify="left",
    )
    table.add_column("arm")
    table.add_column("rows", justify="right")
    for name in frame.outcomes:
        table.add_column(f"mean {name}", justify="right")
    for arm, row in summary.iterrows():
        cells = [f"{row[name]:.5g}" for name in frame.outcomes]
        table.add_row(str(arm), f"{int(row['rows']):,}", *cells)
    stdout.print(table)
