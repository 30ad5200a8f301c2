"""Generate a world into a directory atomically, with its manifest, and read it back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from liftwise import __version__
from liftwise.contracts import TableContract, world_contracts
from liftwise.contracts.manifest import (
    MANIFEST,
    Campaign,
    CampaignSummary,
    Manifest,
    TableEntry,
    read_manifest,
)
from liftwise.contracts.validate import check_table_file, read_checked
from liftwise.errors import UserError
from liftwise.io import atomic_directory, sha256_file, write_json
from liftwise.simulate.config import WorldConfig
from liftwise.simulate.sink import TableSink

Progress = Callable[[int], None]


class WorldGenerator(Protocol):
    """A world module's entry point: write every table into ``sink``; return the campaign
    and its summary for the manifest."""

    def __call__(
        self, config: WorldConfig, sink: TableSink, progress: Progress
    ) -> tuple[Campaign, CampaignSummary]: ...


def _generator(world: str) -> WorldGenerator:
    """The world's generate function (imported lazily: each world is its own module)."""
    import importlib

    return importlib.import_module(f"liftwise.simulate.{world}").generate


def simulate(config: WorldConfig, out: str | Path, progress: Progress | None = None) -> Manifest:
    """Generate ``config``'s world into ``out`` (replaced atomically) and return its manifest."""
    out = Path(out)
    _refuse_foreign_directory(out)
    generator = _generator(config.world)
    contracts = world_contracts(config.world)
    with atomic_directory(out) as tmp:
        sink = TableSink(tmp, contracts)
        try:
            campaign, summary = generator(config, sink, progress or (lambda _n: None))
            rows = sink.close()
        except BaseException:
            sink.abort()
            raise
        manifest = Manifest(
            liftwise_version=__version__,
            world=config.world,
            seed=config.seed,
            config=config,
            sizes=rows,
            tables={
                name: TableEntry(
                    file=f"{name}.parquet",
                    rows=rows[name],
                    contract=f"{contracts[name].name}/{contracts[name].version}",
                    sha256=sha256_file(tmp / f"{name}.parquet"),
                )
                for name in sorted(rows)
            },
            campaign=campaign,
            summary=summary,
        )
        write_json(tmp / MANIFEST, manifest.dump())
    return manifest


def _refuse_foreign_directory(out: Path) -> None:
    """Never replace a directory that is not a liftwise world (a typo could wipe $HOME)."""
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists())
    ):
        raise UserError(
            "exists and is not a liftwise world; choose an empty or new directory",
            parameter="out",
            file=out,
        )


@dataclass(frozen=True)
class World:
    """A generated world on disk: its manifest and lazy access to each table."""

    path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.world

    @property
    def campaign(self) -> Campaign:
        return self.manifest.campaign

    def table_path(self, name: str) -> Path:
        entry = self.manifest.tables.get(name)
        if entry is None:
            raise UserError(
                f"no table '{name}' in this world (tables: {', '.join(self.manifest.tables)})",
                file=self.path / MANIFEST,
            )
        return self.path / entry.file

    def read(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read ``columns`` (default all) of a whole table, checked against its contract:
        present, not empty, the contract's kinds, no nulls where it has none, unique key
        when the key is read. A violation is one UserError naming file, column and row."""
        return read_checked(self.table_path(name), self._contract(name), columns)

    def stream_path(self, name: str, columns: list[str]) -> Path:
        """The file of a large table to stream ``columns`` of with pyarrow, after the checks
        its metadata allows (present, not empty, columns and kinds, null counts)."""
        path = self.table_path(name)
        check_table_file(path, self._contract(name), columns)
        return path

    def _contract(self, name: str) -> TableContract:
        return world_contracts(self.name)[name]


def load_world(path: str | Path) -> World:
    """Open a world directory; a missing or unreadable manifest is a one-line UserError."""
    return World(path=Path(path), manifest=read_manifest(path))
