"""Point-in-time unit features: correct aggregates, nothing from after the cut-off."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from liftwise.features import experiment_frame, unit_features
from liftwise.simulate import World, WorldConfig, load_world, simulate


@pytest.fixture(scope="module")
def learning_world(tmp_path_factory) -> World:
    out = tmp_path_factory.mktemp("learning") / "world"
    simulate(WorldConfig(world="learning", units=3_000, days=42, seed=4), out)
    return load_world(out)


def _cutoff(world: World) -> dt.datetime:
    return world.campaign.decision_time


def test_fintech_aggregates_match_a_brute_force_groupby(fintech_world: World):
    cutoff = _cutoff(fintech_world)
    features = unit_features(fintech_world, cutoff)
    payments = fintech_world.read("payments")
    merchants = fintech_world.read("merchants").set_index("merchant_id")["category"]
    by_customer = payments.groupby("customer_id")
    expected_count = by_customer.size().reindex(features.index, fill_value=0)
    np.testing.assert_array_equal(features["txn_count"], expected_count)
    np.testing.assert_allclose(
        features["spend_total"],
        by_customer["amount_vnd"].sum().reindex(features.index, fill_value=0),
    )
    recent = payments[payments["ts"] >= pd.Timestamp(cutoff) - pd.Timedelta(days=30)]
    np.testing.assert_allclose(
        features["spend_30d"],
        recent.groupby("customer_id")["amount_vnd"].sum().reindex(features.index, fill_value=0),
    )
    last = by_customer["ts"].max().reindex(features.index)
    recency = ((pd.Timestamp(cutoff) - last).dt.total_seconds() / 86_400).fillna(60.0)
    np.testing.assert_allclose(features["recency_days"], recency, rtol=1e-12)
    grocery = payments[payments["merchant_id"].map(merchants) == "grocery"]
    share = grocery.groupby("customer_id")["amount_vnd"].sum() / by_customer["amount_vnd"].sum()
    np.testing.assert_allclose(
        features["share_grocery"], share.reindex(features.index).fillna(0), rtol=1e-12
    )
    night = payments[payments["ts"].dt.hour < 6].groupby("customer_id").size() / by_customer.size()
    np.testing.assert_allclose(
        features["share_night"], night.reindex(features.index).fillna(0), rtol=1e-12
    )
    weekend = (
        payments[payments["ts"].dt.weekday >= 5].groupby("customer_id").size() / by_customer.size()
    )
    np.testing.assert_allclose(
        features["share_weekend"], weekend.reindex(features.index).fillna(0), rtol=1e-12
    )
    cards = fintech_world.read("cards").groupby("customer_id").size()
    np.testing.assert_array_equal(features["cards_total"], cards.reindex(features.index))


def _plant_future_events(world: World, target, table: str, ts_column: str) -> World:
    """Copy the world and append events at and after the cut-off with extreme values."""
    shutil.copytree(world.path, target)
    copy = load_world(target)
    events = copy.read(table)
    future = events.sample(n=2_000, random_state=0, replace=True).copy()
    offsets = pd.to_timedelta(np.arange(len(future)) % 20, unit="D")
    future[ts_column] = (
        pd.Timestamp(_cutoff(world)) + offsets
    )  # the first is exactly at the cut-off
    for column in future.columns:
        if column not in (ts_column,) and future[column].dtype.kind == "f":
            future[column] = future[column] * 1_000
    if "amount_vnd" in future:
        future["amount_vnd"] = future["amount_vnd"] * 1_000
    combined = pd.concat([events, future], ignore_index=True)
    schema = pq.read_schema(copy.table_path(table))
    pq.write_table(
        pa.Table.from_pandas(combined, schema=schema, preserve_index=False), copy.table_path(table)
    )
    return copy


@pytest.mark.parametrize(
    "world_fixture, table, ts_column",
    [
        ("fintech_world", "payments", "ts"),
        ("learning_world", "sessions", "started_at"),
    ],
)
def test_events_at_or_after_the_cutoff_never_reach_the_training_frame(
    request, tmp_path, world_fixture, table, ts_column
):
    world: World = request.getfixturevalue(world_fixture)
    clean = experiment_frame(world)
    planted = experiment_frame(_plant_future_events(world, tmp_path / "planted", table, ts_column))
    pd.testing.assert_frame_equal(clean.data, planted.data)
    # and the same plant before the cut-off would have changed them: the test can fail
    earlier = unit_features(world, _cutoff(world) + dt.timedelta(days=30))
    moved = unit_features(
        _plant_future_events(world, tmp_path / "moved", table, ts_column),
        _cutoff(world) + dt.timedelta(days=30),
    )
    assert not earlier.equals(moved)


def test_experiment_frame_has_one_row_per_unit_with_arms_and_outcomes(fintech_world: World):
    frame = experiment_frame(fintech_world)
    assert len(frame.data) == 30_000 and frame.data["unit_id"].is_unique
    assert frame.arms == ("control", "cashback_10", "cashback_5", "fee_waiver")
    assert frame.outcomes[0] == "converted"
    assert len(frame.features) >= 30
    assignments = fintech_world.read("assignments").set_index("unit_id")["arm"]
    assert (frame.data.set_index("unit_id")["arm"] == assignments).all()
    assert np.isfinite(frame.X()).all()


def test_learning_frame_features(learning_world: World):
    frame = experiment_frame(learning_world)
    assert frame.outcomes == ("retained_30d", "revenue_usd")
    sessions = learning_world.read("sessions").groupby("learner_id").size()
    counts = frame.data.set_index("unit_id")["sessions"]
    np.testing.assert_array_equal(counts, sessions.reindex(counts.index, fill_value=0))
    assert {"days_since_last_session", "session_trend_14d", "plan=pro"} <= set(frame.features)
