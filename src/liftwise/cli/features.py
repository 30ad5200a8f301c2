"""`liftwise features`: build a world's Feast repo, materialise it, training frames, online reads."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from liftwise.cli.app import app, comma_list, console, progress_bar, stdout
from liftwise.errors import UserError

if TYPE_CHECKING:  # stage modules load inside commands, so `--help` stays instant
    from liftwise.features.store import FeatureRepo
    from liftwise.settings import Settings

features_app = typer.Typer(
    help="The Feast feature store: build a world's repo, materialise, training frames, online.",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")

DataDir = Annotated[
    Path | None,
    typer.Option(help="Root of every embedded store (default: LIFTWISE_DATA_DIR or ./data)."),
]
WorldName = Annotated[
    str | None, typer.Option(help="Repo of this world (default: the only repo under --data-dir).")
]
FeatureList = Annotated[
    list[str] | None,
    typer.Option(
        help="Features, comma-separated or repeated (default: every unit feature).",
        callback=comma_list,
    ),
]


def _settings(data_dir: Path | None, online_store: str | None = None) -> Settings:
    from liftwise.settings import Settings

    return Settings.load(data_dir=data_dir, online_store=online_store)


def _repo(data_dir: Path | None, world: str | None) -> FeatureRepo:
    from liftwise.features.store import find_feature_repo

    return find_feature_repo(_settings(data_dir), world)


def _moment(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"not an ISO date or datetime: '{text}'", option=option) from None


@features_app.command("build")
def build_command(
    world_dir: Annotated[
        Path, typer.Argument(help="World directory written by `liftwise simulate`.")
    ],
    data_dir: DataDir = None,
    online_store: Annotated[
        str | None, typer.Option(help="Online store: sqlite (default, under --data-dir) or redis.")
    ] = None,
    every_days: Annotated[int, typer.Option(help="Days between feature snapshots.")] = 7,
) -> None:
    """Compute feature snapshots from the world's raw tables and write its Feast repo (apply)."""
    from liftwise.features.snapshots import snapshot_times
    from liftwise.features.store import build_feature_repo
    from liftwise.io import check_output
    from liftwise.simulate import load_world

    if online_store is not None and online_store not in {"sqlite", "redis"}:
        raise UserError(f"choose sqlite or redis, got '{online_store}'", option="--online-store")
    settings = _settings(data_dir, online_store)
    check_output(settings.data_dir, kind="directory", inputs=(world_dir,), option="--data-dir")
    world = load_world(world_dir)
    total = len(snapshot_times(world, every_days))
    with progress_bar(f"feature snapshots ({world.name})", total=total) as advance:
        repo = build_feature_repo(world, settings, every_days=every_days, progress=advance)
    table = Table(title=f"feature repo {repo.path} ({total} snapshots, TTL {repo.ttl.days} days)")
    for column in ("view", "entity", "features", "rows", "version"):
        table.add_column(column, justify="left" if column in {"view", "entity"} else "right")
    for name, spec in repo.meta["views"].items():
        table.add_row(
            name, spec["entity"], str(len(spec["features"])), f"{spec['rows']:,}", spec["version"]
        )
    stdout.print(table)
    stdout.print(
        f"online store: {settings.online_store}; fill it with "
        f"`liftwise features materialize --world {repo.world}`"
    )


@features_app.command("materialize")
def materialize_command(
    data_dir: DataDir = None,
    world: WorldName = None,
    end: Annotated[
        str | None,
        typer.Option(help="Load values up to this time (ISO, UTC; default: the last snapshot)."),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="From this time (ISO, UTC; default: the first snapshot).")
    ] = None,
) -> None:
    """Load each entity's latest feature values into the online store."""
    repo = _repo(data_dir, world)
    until = _moment(end, "--end") or repo.snapshot_times[-1]
    repo.materialize(until, _moment(start, "--start"))
    stdout.print(f"materialised {len(repo.meta['views'])} views of {repo.path} up to {until}")


@features_app.command("training-frame")
def training_frame_command(
    entities: Annotated[
        Path, typer.Argument(help="Entity table (Parquet or CSV): unit_id, event_timestamp, ...")
    ],
    out: Annotated[Path, typer.Option(help="Output table (.parquet or .csv).")],
    data_dir: DataDir = None,
    world: WorldName = None,
    features: FeatureList = None,
) -> None:
    """Point-in-time correct features for each entity row (one output row per input row)."""
    from liftwise.ingest import read_table
    from liftwise.io import TABLE_SUFFIXES, check_output, write_frame

    check_output(out, inputs=(entities,), suffixes=TABLE_SUFFIXES)
    repo = _repo(data_dir, world)
    table = read_table(entities)
    with console.status(f"point-in-time join of {len(table):,} rows"):
        try:
            frame = repo.training_frame(table, features or None)
        except UserError as error:
            if error.file is None:
                error = UserError(error.message, file=entities, column=error.column, row=error.row)
            raise error from None
    write_frame(out, frame)
    stdout.print(f"wrote {len(frame):,} rows x {frame.shape[1] - table.shape[1]} features -> {out}")


@features_app.command("online")
def online_command(
    unit_ids: Annotated[
        list[str], typer.Argument(help="Ids to look up (merchant ids for merchant features).")
    ],
    data_dir: DataDir = None,
    world: WorldName = None,
    features: FeatureList = None,
) -> None:
    """Print the online store's latest values as JSON, one object per id (unknown: nulls)."""
    repo = _repo(data_dir, world)
    frame = repo.online_features(unit_ids, features or None)
    key = frame.index.name
    rows = [
        {key: int(unit), **{n: (None if math.isnan(v) else v) for n, v in values.items()}}
        for unit, values in zip(frame.index, frame.to_dict(orient="records"), strict=True)
    ]
    print(json.dumps(rows, indent=2))
