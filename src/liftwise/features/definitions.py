"""The feature views each world serves through Feast, and the Feast objects built from a build.

The views group :func:`liftwise.features.offline.unit_features` columns by theme (one Feast
feature view per theme, all keyed by ``unit_id``) and add a merchant view for the fintech
world. The names are the offline names, so a model trained on the store's training frame
scores the offline features and back. The generated Feast repo's definitions file calls
:func:`feast_objects` on its build directory, so ``feast apply`` and liftwise register
exactly the same objects.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liftwise.contracts import learning
from liftwise.contracts.fintech import CARD_TYPES, CATEGORIES, REGIONS, SEGMENTS
from liftwise.errors import UserError
from liftwise.features.offline import HOUR_BLOCKS

if TYPE_CHECKING:
    from feast import Entity, FeatureView

BUILD_FILE = "build.json"
BUILD_FORMAT = 1
EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
UNIT_KEY = "unit_id"
MERCHANT_KEY = "merchant_id"


@dataclass(frozen=True)
class EntitySpec:
    """A Feast entity: its name and the one integer join key."""

    name: str
    join_key: str
    description: str


@dataclass(frozen=True)
class ViewSpec:
    """One feature view: a theme of Float64 features of one entity."""

    name: str
    entity: str
    features: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class WorldViews:
    """A world's entities and views; ``unit_entity`` is the campaign's unit (join key unit_id)."""

    unit_entity: str
    entities: tuple[EntitySpec, ...]
    views: tuple[ViewSpec, ...]

    def entity(self, name: str) -> EntitySpec:
        return next(e for e in self.entities if e.name == name)

    def unit_views(self) -> tuple[ViewSpec, ...]:
        return tuple(v for v in self.views if v.entity == self.unit_entity)


MERCHANT_FEATURES = (
    "merchant_txn_count",
    "merchant_spend_total",
    "merchant_avg_ticket",
    "merchant_txn_share",
    "merchant_txn_count_30d",
    "merchant_spend_30d",
    "merchant_spend_trend_30d",
    "merchant_days_since_last_txn",
    "merchant_share_evening",
    "merchant_share_weekend",
    "merchant_popularity_rank",
    "merchant_category_code",
    "merchant_is_online",
)

FINTECH = WorldViews(
    unit_entity="customer",
    entities=(
        EntitySpec(
            "customer", UNIT_KEY, "A bank customer (= campaign unit, customers.customer_id)."
        ),
        EntitySpec("merchant", MERCHANT_KEY, "A merchant (merchants.merchant_id)."),
    ),
    views=(
        ViewSpec(
            "customer_activity",
            "customer",
            (
                "txn_count",
                "spend_total",
                "avg_ticket",
                "ticket_cv",
                "recency_days",
                "txn_count_7d",
                "txn_count_30d",
                "spend_30d",
                "spend_trend_30d",
                *(f"share_{block}" for block in HOUR_BLOCKS),
                "share_weekend",
            ),
            "Recency, frequency, monetary value, 30-day trend, time-of-day and weekend shares.",
        ),
        ViewSpec(
            "customer_spend_mix",
            "customer",
            tuple(f"share_{category}" for category in CATEGORIES),
            "Share of spend by merchant category.",
        ),
        ViewSpec(
            "customer_profile",
            "customer",
            (
                "tenure_months",
                "age_band",
                "income_band",
                *(f"segment={s}" for s in SEGMENTS),
                *(f"region={r}" for r in REGIONS),
                *(f"cards_{kind}" for kind in CARD_TYPES),
                "cards_total",
            ),
            "Tenure, ordinal age and income bands, segment and region one-hots, cards held.",
        ),
        ViewSpec(
            "merchant_stats",
            "merchant",
            MERCHANT_FEATURES,
            "Merchant popularity, ticket size, trend, rhythm, category and channel as numbers.",
        ),
    ),
)

LEARNING = WorldViews(
    unit_entity="learner",
    entities=(
        EntitySpec("learner", UNIT_KEY, "A learner (= campaign unit, learners.learner_id)."),
    ),
    views=(
        ViewSpec(
            "learner_engagement",
            "learner",
            (
                "sessions",
                "minutes",
                "lessons",
                "minutes_per_session",
                "days_since_last_session",
                "sessions_7d",
                "sessions_14d",
                "sessions_30d",
                "minutes_30d",
                "session_trend_14d",
            ),
            "Study volume, recency and the 14-day engagement trend.",
        ),
        ViewSpec(
            "learner_profile",
            "learner",
            (
                "tenure_days",
                "age_band",
                *(f"plan={p}" for p in learning.PLANS),
                *(f"goal={g}" for g in learning.GOALS),
                "share_evening",
                "share_weekend",
            ),
            "Tenure, age band, plan and goal one-hots, evening and weekend study habits.",
        ),
    ),
)

WORLD_VIEWS = {"fintech": FINTECH, "learning": LEARNING}


def world_views(world: str) -> WorldViews:
    """The views a world serves; an unknown world is a UserError."""
    try:
        return WORLD_VIEWS[world]
    except KeyError:
        raise UserError(
            f"no feature views for world '{world}' (known: {', '.join(WORLD_VIEWS)})"
        ) from None


@dataclass(frozen=True)
class FeastDefinitions:
    """The Feast objects of one build, by name: what ``feast apply`` registers."""

    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, FeatureView] = field(default_factory=dict)

    def objects(self) -> list[Any]:
        return [*self.entities.values(), *self.views.values()]


def read_build(build_dir: str | Path) -> dict[str, Any]:
    """The build's metadata (world, snapshot times, views, data files and their hashes)."""
    path = Path(build_dir) / BUILD_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError("not a liftwise feature build (no build.json)", file=path.parent) from None
    except json.JSONDecodeError as error:
        raise UserError(f"unreadable build metadata: {error}", file=path) from None
    if meta.get("format") != BUILD_FORMAT:
        raise UserError(
            f"feature build format {meta.get('format')!r}, expected {BUILD_FORMAT}: rebuild it",
            file=path,
        )
    return meta


def feast_objects(build_dir: str | Path) -> FeastDefinitions:
    """Entities and feature views (with their Parquet sources) of the build in ``build_dir``.

    Every view reads its own Parquet file: ``event_timestamp`` is the snapshot's cut-off,
    ``created_timestamp`` when the value became known; the TTL is the snapshot spacing.
    """
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.data_format import ParquetFormat
    from feast.types import Float64

    build_dir = Path(build_dir).resolve()
    meta = read_build(build_dir)
    entities = {
        name: Entity(
            name=name,
            join_keys=[spec["join_key"]],
            value_type=ValueType.INT64,
            description=spec["description"],
        )
        for name, spec in meta["entities"].items()
    }
    ttl = dt.timedelta(days=meta["ttl_days"])
    views = {}
    for name, spec in meta["views"].items():
        source = FileSource(
            name=f"{name}_snapshots",
            path=str(build_dir / spec["file"]),
            file_format=ParquetFormat(),
            timestamp_field=EVENT_TIMESTAMP,
            created_timestamp_column=CREATED_TIMESTAMP,
            description=f"Point-in-time snapshots of {name}, one row per entity and cut-off.",
        )
        views[name] = FeatureView(
            name=name,
            entities=[entities[spec["entity"]]],
            ttl=ttl,
            schema=[Field(name=feature, dtype=Float64) for feature in spec["features"]],
            source=source,
            online=True,
            description=spec["description"],
            tags={"liftwise_world": meta["world"], "liftwise_version": spec["version"]},
        )
    return FeastDefinitions(entities=entities, views=views)
