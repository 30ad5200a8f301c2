"""Feature snapshots for the feature store: the offline features as of a series of cut-offs.

A snapshot at cut-off ``c`` holds every unit's :func:`~liftwise.features.offline.unit_features`
as of ``c`` (events strictly before ``c``), stamped ``event_timestamp = created_timestamp = c``:
the value describes the unit at ``c`` and is known from ``c`` on. Cut-offs run every
``every_days`` days back from the campaign's decision time, so the decision time is always one
of them and the store's training frame there equals the offline features exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from liftwise.contracts.fintech import CATEGORIES
from liftwise.errors import UserError
from liftwise.features.definitions import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    MERCHANT_FEATURES,
    MERCHANT_KEY,
    ViewSpec,
    world_views,
)
from liftwise.features.offline import (
    HOUR_BLOCKS,
    US_PER_DAY,
    _batches,
    _share,
    _timestamp_us,
    _UnitSums,
    unit_features,
)
from liftwise.io import ParquetStream, sha256_file
from liftwise.simulate import World

TIMESTAMP = pa.timestamp("us", tz="UTC")


def decision_time(world: World) -> dt.datetime:
    """The campaign's decision time (naive, read as UTC like every world timestamp)."""
    return world.campaign.decision_time


def snapshot_times(world: World, every_days: int) -> list[dt.datetime]:
    """Cut-offs every ``every_days`` days back from the decision time, strictly after the
    history start (a cut-off there would see no events), oldest first."""
    if every_days < 1:
        raise UserError(f"must be at least 1 day, got {every_days}", parameter="every_days")
    end = decision_time(world)
    start = end - dt.timedelta(days=world.manifest.config.days)
    times, cutoff = [], end
    while cutoff > start:
        times.append(cutoff)
        cutoff -= dt.timedelta(days=every_days)
    return sorted(times)


def merchant_features(world: World, cutoff: dt.datetime) -> pd.DataFrame:
    """Per-merchant popularity, ticket, trend and rhythm from payments strictly before
    ``cutoff``, plus the merchant table's rank, category code and online flag."""
    merchants = world.read("merchants")
    ids = merchants["merchant_id"].to_numpy()
    sums = _UnitSums(ids)
    cutoff_us = int(np.datetime64(cutoff, "us").astype(np.int64))
    columns = ["merchant_id", "ts", "amount_vnd"]
    for batch in _batches(world.stream_path("payments", columns), columns, "ts", cutoff):
        index = sums.index(batch.column("merchant_id").to_numpy(), source="payments.parquet")
        amount = batch.column("amount_vnd").to_numpy().astype(np.float64)
        ts = _timestamp_us(batch.column("ts"))
        age_days = (cutoff_us - ts) / US_PER_DAY
        hour = (ts // 3_600_000_000) % 24
        weekday = ((ts // US_PER_DAY) + 3) % 7  # 1970-01-01 was a Thursday
        sums.add("count", index)
        sums.add("spend", index, amount)
        sums.latest(index, ts)
        recent, previous = age_days <= 30, (age_days > 30) & (age_days <= 60)
        sums.add("count_30d", index[recent])
        sums.add("spend_30d", index[recent], amount[recent])
        sums.add("spend_prev_30d", index[previous], amount[previous])
        start, end = HOUR_BLOCKS["evening"]
        sums.add("count_evening", index[(hour >= start) & (hour < end)])
        sums.add("count_weekend", index[weekday >= 5])
    count, spend = sums["count"], sums["spend"]
    never = sums.last_us == np.iinfo(np.int64).min
    history_days = float(world.manifest.config.days)
    values = {
        "merchant_txn_count": count,
        "merchant_spend_total": spend,
        "merchant_avg_ticket": _share(spend, count),
        "merchant_txn_share": count / max(count.sum(), 1.0),
        "merchant_txn_count_30d": sums["count_30d"],
        "merchant_spend_30d": sums["spend_30d"],
        "merchant_spend_trend_30d": np.log1p(sums["spend_30d"]) - np.log1p(sums["spend_prev_30d"]),
        "merchant_days_since_last_txn": np.where(
            never, history_days, (cutoff_us - sums.last_us) / US_PER_DAY
        ),
        "merchant_share_evening": _share(sums["count_evening"], count),
        "merchant_share_weekend": _share(sums["count_weekend"], count),
        "merchant_popularity_rank": merchants["popularity_rank"].to_numpy(dtype=np.float64),
        "merchant_category_code": pd.Categorical(
            merchants["category"], categories=list(CATEGORIES)
        ).codes.astype(np.float64),
        "merchant_is_online": (merchants["city"] == "online").to_numpy(dtype=np.float64),
    }
    return pd.DataFrame(
        {name: values[name] for name in MERCHANT_FEATURES},
        index=pd.Index(ids, name=MERCHANT_KEY),
    )


def _snapshot_table(
    frame: pd.DataFrame, key: str, features: tuple[str, ...], cutoff: dt.datetime
) -> pa.Table:
    """One cut-off's rows: key, event and created timestamps (both the cut-off), features."""
    stamp = pa.array(
        np.full(len(frame), np.datetime64(cutoff, "us").astype(np.int64)), type=pa.int64()
    ).cast(TIMESTAMP)
    columns: dict[str, pa.Array] = {
        key: pa.array(frame.index.to_numpy(dtype=np.int64), type=pa.int64()),
        EVENT_TIMESTAMP: stamp,
        CREATED_TIMESTAMP: stamp,
    }
    columns.update(
        {
            name: pa.array(frame[name].to_numpy(dtype=np.float64), type=pa.float64())
            for name in features
        }
    )
    return pa.table(columns)


def _schema(key: str, features: tuple[str, ...]) -> pa.Schema:
    return pa.schema(
        [
            pa.field(key, pa.int64(), nullable=False),
            pa.field(EVENT_TIMESTAMP, TIMESTAMP, nullable=False),
            pa.field(CREATED_TIMESTAMP, TIMESTAMP, nullable=False),
            *(pa.field(name, pa.float64()) for name in features),
        ]
    )


def _check_unit_views(world: World, columns: pd.Index, views: tuple[ViewSpec, ...]) -> None:
    """The unit views must cover the offline feature columns exactly (names drift otherwise)."""
    served = [name for view in views for name in view.features]
    if sorted(served) != sorted(columns):
        missing = sorted(set(columns) - set(served))
        extra = sorted(set(served) - set(columns))
        raise RuntimeError(
            f"{world.name} feature views out of step with unit_features: "
            f"not served {missing}, unknown {extra}"
        )


def write_snapshots(
    world: World,
    out: Path,
    times: list[dt.datetime],
    progress: Callable[[int], None] | None = None,
) -> tuple[tuple[str, ...], dict[str, dict[str, object]]]:
    """Write one Parquet file per view with a snapshot per cut-off in ``times``.

    Returns the offline feature order and, per view, its file, row count and SHA-256.
    Memory stays at one cut-off's features: each snapshot is appended as it is computed.
    """
    views = world_views(world.name)
    key_of = {e.name: e.join_key for e in views.entities}
    streams = {
        view.name: ParquetStream(
            out / f"{view.name}.parquet", _schema(key_of[view.entity], view.features)
        )
        for view in views.views
    }
    order: tuple[str, ...] = ()
    try:
        for cutoff in times:
            units = unit_features(world, cutoff)
            _check_unit_views(world, units.columns, views.unit_views())
            order = tuple(units.columns)
            frames = {views.unit_entity: units}
            if any(view.entity == "merchant" for view in views.views):
                frames["merchant"] = merchant_features(world, cutoff)
            for view in views.views:
                table = _snapshot_table(
                    frames[view.entity], key_of[view.entity], view.features, cutoff
                )
                streams[view.name].write(table)
            if progress is not None:
                progress(1)
        for stream in streams.values():
            stream.close()
    except BaseException:
        for stream in streams.values():
            stream.abort()
        raise
    files = {
        name: {
            "file": stream.path.name,
            "rows": stream.rows,
            "sha256": sha256_file(stream.path),
        }
        for name, stream in streams.items()
    }
    return order, files
