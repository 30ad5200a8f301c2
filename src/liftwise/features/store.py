"""The Feast feature store of a world: build the repo, point-in-time training frames, the
online store.

Layout under the data directory (paths in ``feature_store.yaml`` are absolute)::

    <data_dir>/feature_repo/<world>/          the Feast repo: feature_store.yaml and
        feature_store.yaml                    feature_definitions.py, nothing else
        feature_definitions.py                (``feast apply`` runs every .py file there)
    <data_dir>/feature_data/<world>/<build>/  one build: build.json, a Parquet file of
                                              snapshots per view, registry.db, online.db

A rebuild writes a new build directory, then swaps the repo folder in one rename, so a
reader sees the old build or the new one, never a mix; the old build is then removed
(its Redis keys too). Training frames use Feast's point-in-time join with
``filter_by_created_timestamp=True``: a value counts only if both its event timestamp and
its created timestamp are at or before the entity row's timestamp.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import yaml

from liftwise.contracts.ids import integer_ids
from liftwise.errors import UserError
from liftwise.features.definitions import (
    BUILD_FILE,
    BUILD_FORMAT,
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    UNIT_KEY,
    feast_objects,
    read_build,
    world_views,
)
from liftwise.features.snapshots import decision_time, snapshot_times, write_snapshots
from liftwise.io import atomic_directory, sha256_file, write_json
from liftwise.settings import Settings
from liftwise.simulate import World
from liftwise.times import as_utc

if TYPE_CHECKING:
    import feast

STORE_YAML = "feature_store.yaml"
DEFINITIONS_FILE = "feature_definitions.py"
ROW_COLUMN = "_liftwise_row"
OfflineStoreKind = Literal["duckdb", "file"]
OFFLINE_STORES: tuple[str, ...] = get_args(OfflineStoreKind)
log = logging.getLogger(__name__)

DEFINITIONS_TEMPLATE = '''"""Feast definitions of the liftwise {world} world's features (build {build_id}).

Written by `liftwise features build`; do not edit, rebuild instead. The objects are built by
liftwise.features.definitions from the build's metadata and Parquet snapshots in
{build_dir}
so `feast -c <this folder> apply` registers exactly what liftwise serves.
"""

from liftwise.features.definitions import feast_objects

_build = feast_objects({build_dir_literal})

{bindings}
'''


@contextlib.contextmanager
def _quiet_feast() -> Iterator[None]:
    """Feast and DuckDB emit deprecation warnings on every call; they are not the user's.

    Feast's modules reset the warning filters when imported, so import them first."""
    import feast  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _as_utc(moment: dt.datetime, parameter: str) -> dt.datetime:
    """A timezone-aware UTC datetime; naive input is read as UTC (like world timestamps)."""
    if not isinstance(moment, dt.datetime):
        raise UserError(f"expected a datetime, got {moment!r}", parameter=parameter)
    return as_utc(moment)


class FeatureRepo:
    """A liftwise Feast repo of one world: its feature store, training frames, online reads."""

    def __init__(
        self,
        path: Path,
        build_dir: Path,
        meta: dict[str, Any],
        offline_store: OfflineStoreKind = "duckdb",
    ) -> None:
        self.path = path
        self.build_dir = build_dir
        self.meta = meta
        self.world: str = meta["world"]
        self.offline_store = offline_store
        self._online_plans: dict[tuple[str, ...] | None, tuple[list[str], list[str], str]] = {}

    def __repr__(self) -> str:
        return f"FeatureRepo({str(self.path)!r}, world={self.world!r}, build={self.build_dir.name})"

    @classmethod
    def open(cls, path: str | Path, *, offline_store: OfflineStoreKind = "duckdb") -> FeatureRepo:
        """Open a repo written by :func:`build_feature_repo`; anything else is a UserError.

        ``offline_store="file"`` swaps the repo's DuckDB offline store for Feast's default
        file (dask) store, for comparisons; the repo on disk is unchanged.
        """
        if offline_store not in OFFLINE_STORES:
            raise UserError(
                f"unknown offline store '{offline_store}' (choose {' or '.join(OFFLINE_STORES)})",
                parameter="offline_store",
            )
        path = Path(path)
        config_file = path / STORE_YAML
        if not config_file.is_file() or not (path / DEFINITIONS_FILE).is_file():
            raise UserError(
                f"not a liftwise feature repo (needs {STORE_YAML} and {DEFINITIONS_FILE}); "
                "build one with `liftwise features build WORLD_DIR`",
                file=path,
            )
        try:
            config = yaml.safe_load(config_file.read_text()) or {}
            registry = config["registry"]
            registry_path = Path(registry["path"] if isinstance(registry, dict) else registry)
        except (yaml.YAMLError, KeyError, TypeError) as error:
            raise UserError(f"unreadable feature store config: {error}", file=config_file) from None
        build_dir = registry_path.parent
        meta = read_build(build_dir)
        return cls(path=path, build_dir=build_dir, meta=meta, offline_store=offline_store)

    @cached_property
    def store(self) -> feast.FeatureStore:
        """The Feast FeatureStore of this repo (created once, then reused)."""
        from feast import FeatureStore, RepoConfig

        with _quiet_feast():
            if self.offline_store == "duckdb":
                return FeatureStore(repo_path=str(self.path))
            raw = yaml.safe_load((self.path / STORE_YAML).read_text())
            raw["offline_store"] = {"type": self.offline_store}
            config = RepoConfig(**raw)
            config.repo_path = self.path
            return FeatureStore(config=config)

    @property
    def project(self) -> str:
        return str(self.meta["project"])

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The unit entity's features, in the order of ``unit_features``' columns."""
        return tuple(self.meta["feature_order"])

    @property
    def entities(self) -> dict[str, str]:
        """Entity name -> join key."""
        return {name: spec["join_key"] for name, spec in self.meta["entities"].items()}

    def features_of(self, entity: str) -> tuple[str, ...]:
        """Every feature served for ``entity`` (``customer``/``learner``, ``merchant``)."""
        if entity not in self.meta["entities"]:
            raise UserError(
                f"unknown entity '{entity}' (known: {', '.join(self.meta['entities'])})",
                parameter="entity",
            )
        if entity == self.meta["unit_entity"]:
            return self.feature_names
        return tuple(
            name
            for spec in self.meta["views"].values()
            if spec["entity"] == entity
            for name in spec["features"]
        )

    @property
    def snapshot_times(self) -> list[dt.datetime]:
        """The snapshots' cut-offs (UTC), oldest first; the last is the decision time."""
        return [dt.datetime.fromisoformat(t) for t in self.meta["snapshot_times"]]

    @property
    def ttl(self) -> dt.timedelta:
        """How long a snapshot stays valid in training frames (the snapshot spacing)."""
        return dt.timedelta(days=self.meta["ttl_days"])

    def versions(self) -> dict[str, str]:
        """Feature-view name -> version (hash of its definition and its data file's SHA-256)."""
        return {name: spec["version"] for name, spec in self.meta["views"].items()}

    def _views_of(self, features: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
        """Requested names (default: the unit features) and each one's feature view."""
        view_of = {
            name: view for view, spec in self.meta["views"].items() for name in spec["features"]
        }
        names = list(dict.fromkeys(self.feature_names if features is None else features))
        unknown = [name for name in names if name not in view_of]
        if unknown:
            raise UserError(
                f"unknown feature '{unknown[0]}' (views: {', '.join(self.meta['views'])}; "
                "see `liftwise features build` output or docs/features.md)",
                parameter="features",
            )
        if not names:
            raise UserError("no features requested", parameter="features")
        return names, {name: view_of[name] for name in names}

    def _join_keys(self, views: set[str]) -> list[str]:
        keys = {self.meta["entities"][self.meta["views"][v]["entity"]]["join_key"] for v in views}
        return sorted(keys, key=lambda k: (k != UNIT_KEY, k))

    def training_frame(
        self, entities: pd.DataFrame, features: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Point-in-time correct features for each row of ``entities``.

        ``entities`` has ``unit_id`` (and ``merchant_id`` for merchant features) and
        ``event_timestamp`` (tz-aware, or naive UTC) plus any other columns, which are kept.
        Returns one row per input row in input order (same index) with the feature columns
        added. A value counts only if its event timestamp and its created timestamp are both
        at or before the row's timestamp and it is at most the TTL old; otherwise NaN.
        Timestamps are truncated to microseconds, the offline store's resolution.
        """
        if not isinstance(entities, pd.DataFrame):
            raise UserError(f"entities must be a DataFrame, got {type(entities).__name__}")
        names, view_of = self._views_of(features)
        keys = self._join_keys(set(view_of.values()))
        for column in (*keys, EVENT_TIMESTAMP):
            if column not in entities.columns:
                raise UserError("missing column in the entity frame", column=column)
        clash = [name for name in names if name in entities.columns]
        if clash:
            raise UserError(
                "the entity frame already has a column named like a requested feature",
                column=clash[0],
            )
        lookup = pd.DataFrame({key: _integer_ids(entities[key], key) for key in keys})
        lookup[EVENT_TIMESTAMP] = _utc_timestamps(entities[EVENT_TIMESTAMP])
        values = np.full((len(entities), len(names)), np.nan)
        if len(entities):
            # Feast's file store drops and merges duplicate rows: ask once per distinct key
            group = lookup.groupby([*keys, EVENT_TIMESTAMP], sort=False).ngroup().to_numpy()
            unique = lookup.drop_duplicates(ignore_index=True)
            unique = unique.assign(**{ROW_COLUMN: np.arange(len(unique), dtype=np.int64)})
            refs = [f"{view_of[name]}:{name}" for name in names]
            with _quiet_feast():
                joined = self.store.get_historical_features(
                    entity_df=unique, features=refs, filter_by_created_timestamp=True
                ).to_df()
            found = (
                joined.set_index(ROW_COLUMN)[names]
                .reindex(np.arange(len(unique)))
                .to_numpy(dtype=np.float64, na_value=np.nan)
            )
            values = found[group]
        added = pd.DataFrame(values, index=entities.index, columns=names)
        return pd.concat([entities, added], axis=1)

    def materialize(self, end: dt.datetime, start: dt.datetime | None = None) -> None:
        """Load each entity's latest snapshot in ``[start, end]`` into the online store.

        ``start`` defaults to the first snapshot, so a fresh online store gets every entity.
        Naive datetimes are read as UTC.
        """
        end = _as_utc(end, "end")
        start = _as_utc(start, "start") if start is not None else self.snapshot_times[0]
        if start > end:
            raise UserError(f"start {start} is after end {end}", parameter="end")
        with _quiet_feast():
            self.store.materialize(start_date=start, end_date=end)

    def _online_plan(self, features: Sequence[str] | None) -> tuple[list[str], list[str], str]:
        """Feature names, Feast references and the one join key of an online read (cached:
        the request path asks for the same features every time)."""
        cache_key = None if features is None else tuple(features)
        plan = self._online_plans.get(cache_key)
        if plan is None:
            names, view_of = self._views_of(features)
            keys = self._join_keys(set(view_of.values()))
            if len(keys) != 1:
                raise UserError(
                    "online features of one entity at a time (requested several entities)",
                    parameter="features",
                )
            plan = (names, [f"{view_of[name]}:{name}" for name in names], keys[0])
            self._online_plans[cache_key] = plan
        return plan

    def online_values(
        self, unit_ids: Sequence[str | int], features: Sequence[str] | None = None
    ) -> np.ndarray:
        """Latest materialised values as a float64 matrix, one row per id in the order given
        (all NaN for an id the online store does not know); the lean read for serving."""
        names, refs, key = self._online_plan(features)
        if all(type(value) is int for value in unit_ids):
            ids = list(unit_ids)
        else:
            ids = _integer_ids(pd.Series(list(unit_ids), dtype=object), key).tolist()
        distinct = list(dict.fromkeys(ids))
        values = np.full((len(ids), len(names)), np.nan)
        if distinct:
            with _quiet_feast():
                response = self.store.get_online_features(
                    features=refs, entity_rows=[{key: value} for value in distinct]
                ).to_dict()
            found = np.array(
                [response[name] for name in names], dtype=np.float64
            ).T  # None (unknown id) -> NaN
            if len(distinct) == len(ids):
                values = found
            else:
                position = {value: row for row, value in enumerate(distinct)}
                values = found[[position[value] for value in ids]]
        return values.reshape(len(ids), len(names))

    def online_features(
        self, unit_ids: Sequence[str | int], features: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """:meth:`online_values` as a table: columns the features, index the ids in the order
        given (named after the join key)."""
        names, _, key = self._online_plan(features)
        ids = _integer_ids(pd.Series(list(unit_ids), dtype=object), key).tolist()
        values = self.online_values(ids, features)
        return pd.DataFrame(values, columns=names, index=pd.Index(ids, dtype=np.int64, name=key))


def _integer_ids(values: pd.Series, column: str) -> pd.Series:
    """Ids as int64 (the shared id check: a missing or non-integer id names its row)."""
    return pd.Series(integer_ids(values, column=column))


def _utc_timestamps(values: pd.Series) -> pd.Series:
    """Timestamps as tz-aware UTC in microseconds; naive ones are read as UTC."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        try:
            values = pd.to_datetime(values, utc=True, format="mixed")
        except (ValueError, TypeError) as error:
            raise UserError(f"not a timestamp: {error}", column=EVENT_TIMESTAMP) from None
    stamps = values.reset_index(drop=True)
    missing = stamps.isna()
    if missing.any():
        raise UserError(
            "missing timestamp", column=EVENT_TIMESTAMP, row=int(np.flatnonzero(missing)[0])
        )
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    return stamps.dt.floor("us").astype("datetime64[us, UTC]")


def redis_connection_string(url: str) -> str:
    """Feast's ``host:port,db=N[,password=..][,ssl=true]`` from a ``redis://`` URL."""
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss"} or not parsed.hostname:
        raise UserError(
            f"expected redis://host:port/db, got '{url}'", option="redis_url (LIFTWISE_REDIS_URL)"
        )
    database = parsed.path.strip("/") or "0"
    if not database.isdigit():
        raise UserError(f"database must be a number, got '{database}'", parameter="redis_url")
    parts = [f"{parsed.hostname}:{parsed.port or 6379}", f"db={database}"]
    if parsed.password:
        parts.append(f"password={parsed.password}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def default_project(world: str, settings: Settings) -> str:
    """``liftwise_<world>_<8 hex of the data directory>``: two data directories sharing one
    Redis never overwrite each other's online values."""
    digest = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:8]
    return f"liftwise_{world}_{digest}"


def _view_version(spec: dict[str, Any], ttl_days: int, key: str) -> str:
    """Hash of what defines a view (entity, key, features, types, TTL, timestamps) and its data."""
    definition = {
        "name": spec["name"],
        "entity": spec["entity"],
        "join_key": key,
        "features": [[name, "Float64"] for name in spec["features"]],
        "ttl_days": ttl_days,
        "timestamps": [EVENT_TIMESTAMP, CREATED_TIMESTAMP],
        "data_sha256": spec["sha256"],
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def _build_meta(
    world: World,
    project: str,
    every_days: int,
    times: list[dt.datetime],
    order: tuple[str, ...],
    files: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    views = world_views(world.name)
    meta_views = {}
    for view in views.views:
        spec = {
            "name": view.name,
            "entity": view.entity,
            "features": list(view.features),
            "description": view.description,
            **files[view.name],
        }
        spec["version"] = _view_version(spec, every_days, views.entity(view.entity).join_key)
        meta_views[view.name] = spec
    return {
        "format": BUILD_FORMAT,
        "world": world.name,
        "world_path": str(world.path.resolve()),
        "world_manifest_sha256": sha256_file(world.path / "manifest.json"),
        "project": project,
        "unit_entity": views.unit_entity,
        "entities": {
            e.name: {"join_key": e.join_key, "description": e.description} for e in views.entities
        },
        "every_days": every_days,
        "ttl_days": every_days,
        "snapshot_times": [_as_utc(t, "snapshot").isoformat() for t in times],
        "decision_time": _as_utc(decision_time(world), "decision_time").isoformat(),
        "feature_order": list(order),
        "views": meta_views,
    }


def _store_config(meta: dict[str, Any], build_dir: Path, settings: Settings) -> dict[str, Any]:
    """feature_store.yaml: DuckDB offline store, SQLite (under the build) or Redis online."""
    online: dict[str, Any] = (
        {"type": "sqlite", "path": str(build_dir / "online.db")}
        if settings.online_store == "sqlite"
        else {"type": "redis", "connection_string": redis_connection_string(settings.redis_url)}
    )
    return {
        "project": meta["project"],
        "project_description": f"liftwise {meta['world']} world features",
        "provider": "local",
        "registry": {
            "registry_type": "file",
            "path": str(build_dir / "registry.db"),
            "cache_ttl_seconds": 60,
        },
        "offline_store": {"type": "duckdb"},
        "online_store": online,
        "entity_key_serialization_version": 3,
    }


def _write_repo_folder(folder: Path, meta: dict[str, Any], build_dir: Path, settings: Settings):
    """The Feast repo folder: feature_store.yaml and the definitions file, nothing else."""
    header = (
        f"# Feast repo of the liftwise {meta['world']} world, written by `liftwise features "
        "build`.\n# Do not edit: rebuild. Use with `feast -c <this folder> apply` etc.\n"
    )
    config = _store_config(meta, build_dir, settings)
    (folder / STORE_YAML).write_text(header + yaml.safe_dump(config, sort_keys=False))
    bindings = [f'{name} = _build.entities["{name}"]' for name in meta["entities"]]
    bindings += [f'{name} = _build.views["{name}"]' for name in meta["views"]]
    (folder / DEFINITIONS_FILE).write_text(
        DEFINITIONS_TEMPLATE.format(
            world=meta["world"],
            build_id=build_dir.name,
            build_dir=build_dir,
            build_dir_literal=repr(str(build_dir)),
            bindings="\n".join(bindings),
        )
    )


def _refuse_foreign_directory(folder: Path) -> None:
    """Never replace a folder that is not a liftwise feature repo (a typo could wipe data)."""
    if folder.exists() and (
        not folder.is_dir() or (any(folder.iterdir()) and not (folder / DEFINITIONS_FILE).is_file())
    ):
        raise UserError(
            "exists and is not a liftwise feature repo; move it away or choose another --data-dir",
            file=folder,
        )


def _previous_store(folder: Path) -> Any | None:
    """The Feast config of the repo about to be replaced (to clear its online store)."""
    if not (folder / STORE_YAML).is_file():
        return None
    try:
        from feast.repo_config import load_repo_config

        with _quiet_feast():
            return load_repo_config(folder, folder / STORE_YAML)
    except Exception as error:  # a broken old repo must not block a rebuild
        log.warning("cannot read the previous feature repo %s: %s", folder, error)
        return None


def _retire(previous: Any | None, data_root: Path, keep: Path) -> None:
    """Clear the replaced build's online store (Redis keys) and delete old build folders."""
    if previous is not None:
        try:
            from feast import FeatureStore

            with _quiet_feast():
                FeatureStore(config=previous).teardown()
        except Exception as error:
            log.warning("could not tear down the previous feature store: %s", error)
    for child in data_root.iterdir():
        if child.is_dir() and child != keep and not child.name.startswith("."):
            shutil.rmtree(child, ignore_errors=True)


def build_feature_repo(
    world: World,
    settings: Settings,
    *,
    every_days: int = 7,
    progress: Callable[[int], None] | None = None,
    project: str | None = None,
) -> FeatureRepo:
    """Compute the world's feature snapshots, write them and the Feast repo folder
    ``<settings.feature_repo>/<world>``, and register the definitions (``feast apply``).

    ``progress(1)`` is called after each snapshot (``len(snapshot_times(world, every_days))``
    in all). Re-running replaces the repo atomically; the online store starts empty, fill it
    with :meth:`FeatureRepo.materialize`. ``project`` defaults to :func:`default_project`.
    """
    from feast import FeatureStore

    times = snapshot_times(world, every_days)
    folder = settings.feature_repo / world.name
    _refuse_foreign_directory(folder)
    project = project or default_project(world.name, settings)
    data_root = (settings.data_dir / "feature_data" / world.name).resolve()
    build_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    build_dir = data_root / build_id
    staging = data_root / f".{build_id}.tmp"
    staging.mkdir(parents=True)
    try:
        order, files = write_snapshots(world, staging, times, progress)
        meta = _build_meta(world, project, every_days, times, order, files)
        write_json(staging / BUILD_FILE, meta)
        os.replace(staging, build_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    previous = _previous_store(folder)
    try:
        with atomic_directory(folder) as tmp:
            _write_repo_folder(tmp, meta, build_dir, settings)
            with _quiet_feast():
                FeatureStore(repo_path=str(tmp)).apply(feast_objects(build_dir).objects())
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    _retire(previous, data_root, keep=build_dir)
    return FeatureRepo.open(folder)


def find_feature_repo(settings: Settings, world: str | None = None) -> FeatureRepo:
    """The repo of ``world`` under the settings' data directory; without a world, the only
    repo there (several is a UserError asking for one)."""
    root = settings.feature_repo
    if world is not None:
        return FeatureRepo.open(root / world)
    worlds = sorted(p.parent.name for p in root.glob(f"*/{STORE_YAML}")) if root.is_dir() else []
    if not worlds:
        raise UserError(
            "no feature repo here; build one with `liftwise features build WORLD_DIR`",
            file=root,
        )
    if len(worlds) > 1:
        raise UserError(
            f"several feature repos ({', '.join(worlds)}): choose one", parameter="world"
        )
    return FeatureRepo.open(root / worlds[0])
