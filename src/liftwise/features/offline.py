"""Point-in-time unit features computed from a world's raw tables, streamed in batches.

Only events strictly before the cut-off (the campaign's decision time) count, so a
training frame never sees the future. Event tables are read record batch by record batch
and aggregated with ``np.bincount`` into per-unit sums: memory grows with the number of
units, not of events. The Feast feature repo (a later stage) serves the same definitions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from liftwise.contracts import learning
from liftwise.contracts.experiment import ExperimentFrame
from liftwise.contracts.fintech import (
    AGE_BANDS,
    CARD_TYPES,
    CATEGORIES,
    INCOME_BANDS,
    REGIONS,
    SEGMENTS,
)
from liftwise.errors import UserError
from liftwise.simulate import World

BATCH_ROWS = 2_000_000
US_PER_DAY = 86_400_000_000
HOUR_BLOCKS = {"night": (0, 6), "morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24)}

# Outcomes each world's experiment frame carries, primary (binary) first.
WORLD_OUTCOMES = {
    "fintech": ("converted", "margin_vnd", "spend_vnd"),
    "learning": ("retained_30d", "revenue_usd"),
}


def experiment_frame(world: World, cutoff: dt.datetime | None = None) -> ExperimentFrame:
    """The world's past campaign as an experiment frame: arm, outcomes and features per unit.

    Features are computed as of ``cutoff`` (default: the campaign's decision time).
    """
    cutoff = cutoff or world.campaign.decision_time
    return frame_from_features(world, unit_features(world, cutoff))


def frame_from_features(world: World, features: pd.DataFrame) -> ExperimentFrame:
    """The world's past campaign joined with ``features`` (index = unit id), from any source:
    this module's point-in-time builders or the feature store's training frame."""
    campaign = world.campaign
    outcomes = world.read("outcomes", columns=["unit_id", "arm", *WORLD_OUTCOMES[world.name]])
    data = outcomes.merge(
        features, left_on="unit_id", right_index=True, how="left", validate="one_to_one"
    )
    control = campaign.control
    arms = (control, *sorted(name for name in campaign.arm_names if name != control))
    outcome_columns = WORLD_OUTCOMES[world.name]
    data[list(outcome_columns)] = data[list(outcome_columns)].astype(np.float64)
    frame = ExperimentFrame(
        data=data.reset_index(drop=True),
        control=control,
        arms=arms,
        outcomes=outcome_columns,
        features=tuple(features.columns),
        source=str(world.path),
    )
    return frame.validate()


def unit_features(world: World, cutoff: dt.datetime) -> pd.DataFrame:
    """Per-unit feature table (index = unit id) for any world."""
    builders: dict[str, Callable[[World, dt.datetime], pd.DataFrame]] = {
        "fintech": fintech_features,
        "learning": learning_features,
    }
    return builders[world.name](world, cutoff)


def _batches(
    path: object, columns: list[str], cutoff_column: str, cutoff: dt.datetime
) -> Iterator[pa.RecordBatch]:
    """Record batches of the events strictly before ``cutoff`` (the point-in-time rule)."""
    limit = pa.scalar(cutoff, type=pa.timestamp("us"))
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns):
        keep = pc.less(batch.column(cutoff_column), limit)
        yield batch.filter(keep)


class _UnitSums:
    """Accumulates per-unit sums of event columns across record batches."""

    def __init__(self, unit_ids: np.ndarray) -> None:
        self.unit_ids = unit_ids
        self.order = np.argsort(unit_ids, kind="stable")
        self.sorted_ids = unit_ids[self.order]
        self.sums: dict[str, np.ndarray] = {}
        self.last_us = np.full(len(unit_ids), np.iinfo(np.int64).min, dtype=np.int64)

    def index(self, ids: np.ndarray, *, source: str) -> np.ndarray:
        """Position of each event's unit; an event for an unknown unit is a UserError."""
        pos = np.searchsorted(self.sorted_ids, ids)
        pos = np.minimum(pos, len(self.sorted_ids) - 1)
        bad = self.sorted_ids[pos] != ids
        if bad.any():
            raise UserError(
                f"unit {ids[np.flatnonzero(bad)[0]]} is not in the unit table", file=source
            )
        return self.order[pos]

    def add(self, name: str, index: np.ndarray, weights: np.ndarray | None = None) -> None:
        total = np.bincount(index, weights=weights, minlength=len(self.unit_ids))
        self.sums[name] = self.sums.get(name, 0.0) + total

    def latest(self, index: np.ndarray, ts_us: np.ndarray) -> None:
        np.maximum.at(self.last_us, index, ts_us)

    def __getitem__(self, name: str) -> np.ndarray:
        return np.asarray(self.sums.get(name, np.zeros(len(self.unit_ids))), dtype=np.float64)


def _timestamp_us(column: pa.Array) -> np.ndarray:
    return column.cast(pa.timestamp("us")).cast(pa.int64()).to_numpy(zero_copy_only=False)


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    return np.divide(part, whole, out=np.zeros_like(part), where=whole > 0)


def _days_since_last(sums: _UnitSums, cutoff_us: int, horizon_days: int) -> np.ndarray:
    """Days since the last event; units without events get the whole history length."""
    never = sums.last_us == np.iinfo(np.int64).min
    days = (cutoff_us - sums.last_us) / US_PER_DAY
    return np.where(never, float(horizon_days), days)


def _one_hot(values: pd.Series, levels: tuple[str, ...], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}={level}": (values == level).to_numpy(dtype=np.float64) for level in levels}


def _ordinal(values: pd.Series, levels: tuple[str, ...]) -> np.ndarray:
    return pd.Categorical(values, categories=list(levels), ordered=True).codes.astype(np.float64)


def fintech_features(world: World, cutoff: dt.datetime) -> pd.DataFrame:
    """RFM, trend, category, time-of-day and weekday shares, cards and profile per customer."""
    customers = world.read("customers")
    ids = customers["customer_id"].to_numpy()
    sums = _UnitSums(ids)
    cutoff_us = int(np.datetime64(cutoff, "us").astype(np.int64))
    history_days = world.manifest.config.days
    merchants = world.read("merchants", columns=["merchant_id", "category"])
    merchant_sums = _UnitSums(merchants["merchant_id"].to_numpy())  # only for id lookup
    category_codes = pd.Categorical(merchants["category"], categories=list(CATEGORIES)).codes
    columns = ["customer_id", "merchant_id", "ts", "amount_vnd"]
    for batch in _batches(world.stream_path("payments", columns), columns, "ts", cutoff):
        index = sums.index(batch.column("customer_id").to_numpy(), source="payments.parquet")
        amount = batch.column("amount_vnd").to_numpy().astype(np.float64)
        ts = _timestamp_us(batch.column("ts"))
        age_days = (cutoff_us - ts) / US_PER_DAY
        hour = (ts // 3_600_000_000) % 24
        weekday = ((ts // US_PER_DAY) + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
        merchant = merchant_sums.index(
            batch.column("merchant_id").to_numpy(), source="payments.parquet"
        )
        category = category_codes[merchant]
        sums.add("count", index)
        sums.add("spend", index, amount)
        sums.add("spend_sq", index, amount**2)
        sums.latest(index, ts)
        for days in (7, 30):
            recent = age_days <= days
            sums.add(f"count_{days}d", index[recent])
            sums.add(f"spend_{days}d", index[recent], amount[recent])
        previous = (age_days > 30) & (age_days <= 60)
        sums.add("spend_prev_30d", index[previous], amount[previous])
        for code, name in enumerate(CATEGORIES):
            mask = category == code
            sums.add(f"spend_{name}", index[mask], amount[mask])
        for block, (start, end) in HOUR_BLOCKS.items():
            mask = (hour >= start) & (hour < end)
            sums.add(f"count_{block}", index[mask])
        weekend = weekday >= 5
        sums.add("count_weekend", index[weekend])
    count, spend = sums["count"], sums["spend"]
    mean_ticket = _share(spend, count)
    features: dict[str, np.ndarray] = {
        "tenure_months": customers["tenure_months"].to_numpy(dtype=np.float64),
        "age_band": _ordinal(customers["age_band"], AGE_BANDS),
        "income_band": _ordinal(customers["income_band"], INCOME_BANDS),
        **_one_hot(customers["segment"], SEGMENTS, "segment"),
        **_one_hot(customers["region"], REGIONS, "region"),
        "txn_count": count,
        "spend_total": spend,
        "avg_ticket": mean_ticket,
        "ticket_cv": np.sqrt(np.maximum(_share(sums["spend_sq"], count) - mean_ticket**2, 0))
        / np.maximum(mean_ticket, 1.0),
        "recency_days": _days_since_last(sums, cutoff_us, history_days),
        "txn_count_7d": sums["count_7d"],
        "txn_count_30d": sums["count_30d"],
        "spend_30d": sums["spend_30d"],
        "spend_trend_30d": np.log1p(sums["spend_30d"]) - np.log1p(sums["spend_prev_30d"]),
        **{f"share_{name}": _share(sums[f"spend_{name}"], spend) for name in CATEGORIES},
        **{f"share_{block}": _share(sums[f"count_{block}"], count) for block in HOUR_BLOCKS},
        "share_weekend": _share(sums["count_weekend"], count),
    }
    features.update(_card_features(world, ids, cutoff))
    return pd.DataFrame(features, index=pd.Index(ids, name="unit_id"))


def _card_features(world: World, ids: np.ndarray, cutoff: dt.datetime) -> dict[str, np.ndarray]:
    """Number of cards and of each card type issued before the cut-off."""
    cards = world.read("cards", columns=["customer_id", "card_type", "issued_at"])
    cards = cards[cards["issued_at"] < pd.Timestamp(cutoff)]
    index = _UnitSums(ids).index(cards["customer_id"].to_numpy(), source="cards.parquet")
    out = {
        f"cards_{kind}": np.bincount(
            index[(cards["card_type"] == kind).to_numpy()], minlength=len(ids)
        ).astype(np.float64)
        for kind in CARD_TYPES
    }
    out["cards_total"] = np.bincount(index, minlength=len(ids)).astype(np.float64)
    return out


def learning_features(world: World, cutoff: dt.datetime) -> pd.DataFrame:
    """Engagement volume, recency, trend, rhythm and profile per learner."""
    learners = world.read("learners")
    ids = learners["learner_id"].to_numpy()
    sums = _UnitSums(ids)
    cutoff_us = int(np.datetime64(cutoff, "us").astype(np.int64))
    history_days = world.manifest.config.days
    columns = ["learner_id", "started_at", "minutes", "lessons_completed"]
    for batch in _batches(world.stream_path("sessions", columns), columns, "started_at", cutoff):
        index = sums.index(batch.column("learner_id").to_numpy(), source="sessions.parquet")
        ts = _timestamp_us(batch.column("started_at"))
        minutes = batch.column("minutes").to_numpy().astype(np.float64)
        lessons = batch.column("lessons_completed").to_numpy().astype(np.float64)
        age_days = (cutoff_us - ts) / US_PER_DAY
        hour = (ts // 3_600_000_000) % 24
        weekday = ((ts // US_PER_DAY) + 3) % 7
        sums.add("sessions", index)
        sums.add("minutes", index, minutes)
        sums.add("lessons", index, lessons)
        sums.latest(index, ts)
        for days in (7, 14, 30):
            recent = age_days <= days
            sums.add(f"sessions_{days}d", index[recent])
            sums.add(f"minutes_{days}d", index[recent], minutes[recent])
        previous = (age_days > 14) & (age_days <= 28)
        sums.add("sessions_prev_14d", index[previous])
        evening = (hour >= 18) & (hour < 24)
        sums.add("sessions_evening", index[evening])
        sums.add("sessions_weekend", index[weekday >= 5])
    sessions = sums["sessions"]
    features = {
        "tenure_days": learners["tenure_days"].to_numpy(dtype=np.float64),
        "age_band": _ordinal(learners["age_band"], learning.AGE_BANDS),
        **_one_hot(learners["plan"], learning.PLANS, "plan"),
        **_one_hot(learners["goal"], learning.GOALS, "goal"),
        "sessions": sessions,
        "minutes": sums["minutes"],
        "lessons": sums["lessons"],
        "minutes_per_session": _share(sums["minutes"], sessions),
        "days_since_last_session": _days_since_last(sums, cutoff_us, history_days),
        "sessions_7d": sums["sessions_7d"],
        "sessions_14d": sums["sessions_14d"],
        "sessions_30d": sums["sessions_30d"],
        "minutes_30d": sums["minutes_30d"],
        "session_trend_14d": np.log1p(sums["sessions_14d"]) - np.log1p(sums["sessions_prev_14d"]),
        "share_evening": _share(sums["sessions_evening"], sessions),
        "share_weekend": _share(sums["sessions_weekend"], sessions),
    }
    return pd.DataFrame(features, index=pd.Index(ids, name="unit_id"))
