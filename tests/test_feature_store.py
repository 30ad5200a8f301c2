"""The Feast feature store: repo layout, point-in-time training frames (no leakage through
late-created values), one row per input row, TTL, online reads on SQLite and Redis."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from liftwise.errors import UserError
from liftwise.features.offline import unit_features
from liftwise.features.snapshots import decision_time, snapshot_times
from liftwise.features.store import (
    FeatureRepo,
    build_feature_repo,
    find_feature_repo,
    redis_connection_string,
)
from liftwise.io import write_parquet
from liftwise.settings import Settings
from liftwise.simulate import World, WorldConfig, load_world, simulate

DAY = dt.timedelta(days=1)
ABSURD = 1e12


def _world(root: Path, **config: object) -> World:
    simulate(WorldConfig(**config), root / "world")
    return load_world(root / "world")


@pytest.fixture(scope="module")
def fintech(tmp_path_factory: pytest.TempPathFactory) -> World:
    """2,000 customers, 45 days: cut-offs every 7 days back from the decision time."""
    return _world(
        tmp_path_factory.mktemp("fs_fintech"), world="fintech", units=2_000, days=45, seed=5
    )


@pytest.fixture(scope="module")
def learning(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _world(
        tmp_path_factory.mktemp("fs_learning"), world="learning", units=1_500, days=30, seed=6
    )


@pytest.fixture(scope="module")
def repo(fintech: World, tmp_path_factory: pytest.TempPathFactory) -> FeatureRepo:
    settings = Settings.load(data_dir=tmp_path_factory.mktemp("fs_data"))
    built = build_feature_repo(fintech, settings, every_days=7)
    built.materialize(decision_time(fintech))
    return built


def _frame_at(world: World, when: dt.datetime, ids: np.ndarray | None = None) -> pd.DataFrame:
    """An entity frame asking for every unit (or ``ids``) at ``when`` (naive UTC)."""
    ids = world.read("outcomes", columns=["unit_id"])["unit_id"].to_numpy() if ids is None else ids
    return pd.DataFrame({"unit_id": ids, "event_timestamp": pd.Timestamp(when)})


def _features(repo: FeatureRepo, frame: pd.DataFrame) -> pd.DataFrame:
    return repo.training_frame(frame).set_index("unit_id")[list(repo.feature_names)]


def test_repo_folder_holds_only_the_config_and_the_definitions(repo: FeatureRepo):
    assert sorted(p.name for p in repo.path.iterdir()) == [
        "feature_definitions.py",
        "feature_store.yaml",
    ]
    config = repo.store.config
    assert config.offline_store.type == "duckdb"
    assert config.online_store.type == "sqlite"
    assert Path(config.online_store.path).is_relative_to(repo.path.parent.parent.resolve())
    for spec in repo.meta["views"].values():
        schema = pq.read_schema(repo.build_dir / spec["file"])
        for column in ("event_timestamp", "created_timestamp"):
            assert schema.field(column).type == pa.timestamp("us", tz="UTC")


def test_views_serve_the_offline_features_by_name(repo: FeatureRepo, fintech: World):
    offline = unit_features(fintech, decision_time(fintech))
    assert repo.feature_names == tuple(offline.columns)
    views = {view.name: view for view in repo.store.list_feature_views()}
    assert set(views) == {
        "customer_activity",
        "customer_spend_mix",
        "customer_profile",
        "merchant_stats",
    }
    for view in views.values():
        assert len(view.features) >= 10
        assert {str(field.dtype) for field in view.features} == {"Float64"}
    assert [e.name for e in views["merchant_stats"].entity_columns] == ["merchant_id"]
    assert set(repo.versions()) == set(views)


@pytest.mark.parametrize("world_name", ["fintech", "learning"])
def test_training_frame_at_the_decision_time_equals_the_offline_features(
    world_name: str, request: pytest.FixtureRequest, tmp_path: Path
):
    world = request.getfixturevalue(world_name)
    store = build_feature_repo(world, Settings.load(data_dir=tmp_path), every_days=7)
    when = decision_time(world)
    got = _features(store, _frame_at(world, when))
    want = unit_features(world, when)
    pd.testing.assert_frame_equal(got, want.loc[got.index], check_names=False)
    assert len(store.meta["views"]) >= 2


def test_between_snapshots_the_previous_snapshot_serves_until_the_ttl(
    repo: FeatureRepo, fintech: World
):
    decision = decision_time(fintech)
    ids = np.arange(0, 2_000, 7)
    earlier = decision - 7 * DAY
    got = _features(repo, _frame_at(fintech, decision - 3 * DAY, ids))
    pd.testing.assert_frame_equal(got, unit_features(fintech, earlier).loc[ids], check_names=False)
    # a snapshot serves for the TTL (= the spacing) after its cut-off, then expires
    assert repo.ttl == 7 * DAY
    fresh = _features(repo, _frame_at(fintech, decision + repo.ttl - dt.timedelta(hours=1), ids))
    pd.testing.assert_frame_equal(
        fresh, unit_features(fintech, decision).loc[ids], check_names=False
    )
    expired = _features(repo, _frame_at(fintech, decision + repo.ttl + dt.timedelta(hours=1), ids))
    assert expired.isna().all().all()
    before_first = repo.snapshot_times[0] - dt.timedelta(hours=1)
    assert (
        _features(repo, _frame_at(fintech, before_first.replace(tzinfo=None), ids))
        .isna()
        .all()
        .all()
    )


def test_one_row_per_input_row_in_input_order(repo: FeatureRepo, fintech: World):
    decision = decision_time(fintech)
    rng = np.random.default_rng(3)
    n = 400
    ids = rng.integers(0, 2_000, n)
    ids[:5] = [17, 17, 17, 999_999, 17]  # duplicates and a unit the store does not know
    offsets = rng.integers(0, 40, n)
    offsets[:5] = [0, 0, 9, 0, 0]
    stamps = pd.Series(pd.Timestamp(decision) - pd.to_timedelta(offsets, unit="D") * 0.5)
    # the same instants written three ways: naive UTC, UTC, and Vietnam time
    aware = stamps.dt.tz_localize("UTC")
    mixed = [
        s if i % 3 == 0 else (a if i % 3 == 1 else a.tz_convert("Asia/Ho_Chi_Minh"))
        for i, (s, a) in enumerate(zip(stamps, aware, strict=True))
    ]
    entities = pd.DataFrame(
        {"unit_id": ids, "event_timestamp": np.array(mixed, dtype=object), "label": np.arange(n)},
        index=pd.Index(rng.permutation(n) + 10_000, name="row"),
    )
    out = repo.training_frame(entities, ["txn_count", "recency_days", "share_dining"])
    assert len(out) == n
    assert out.index.equals(entities.index)
    assert list(out.columns) == [
        "unit_id",
        "event_timestamp",
        "label",
        "txn_count",
        "recency_days",
        "share_dining",
    ]
    assert (out["label"].to_numpy() == np.arange(n)).all()
    # expected: the latest snapshot at or before each timestamp, within the TTL
    cutoffs = [t.replace(tzinfo=None) for t in repo.snapshot_times]
    offline = {c: unit_features(fintech, c) for c in cutoffs}
    for row, (unit, when) in enumerate(zip(ids, stamps, strict=True)):
        usable = [c for c in cutoffs if c <= when and when - c <= repo.ttl]
        got = out.iloc[row][["txn_count", "recency_days", "share_dining"]].to_numpy(dtype=float)
        if unit == 999_999 or not usable:
            assert np.isnan(got).all(), row
        else:
            want = offline[max(usable)].loc[unit, ["txn_count", "recency_days", "share_dining"]]
            np.testing.assert_allclose(got, want.to_numpy(dtype=float), err_msg=f"row {row}")
    assert np.isnan(out.iloc[3]["txn_count"])
    assert out.iloc[0]["txn_count"] == out.iloc[1]["txn_count"] == out.iloc[4]["txn_count"]


def test_the_file_offline_store_gives_the_same_frame(repo: FeatureRepo, fintech: World):
    decision = decision_time(fintech)
    entities = pd.DataFrame(
        {
            "unit_id": [5, 5, 6, 123_456, 7],
            "event_timestamp": [
                decision,
                decision,
                decision - 2 * DAY,
                decision,
                decision + 30 * DAY,
            ],
        }
    )
    duck = repo.training_frame(entities)
    file_store = FeatureRepo.open(repo.path, offline_store="file")
    pd.testing.assert_frame_equal(file_store.training_frame(entities), duck)
    assert duck.iloc[3:].drop(columns=["unit_id", "event_timestamp"]).isna().all().all()


def _plant(repo: FeatureRepo, view: str, rows: pd.DataFrame) -> None:
    """Append rows to a view's snapshot file, as a late backfill would."""
    path = repo.build_dir / repo.meta["views"][view]["file"]
    table = pq.read_table(path)
    extra = pa.Table.from_pandas(
        rows[table.schema.names], schema=table.schema, preserve_index=False
    )
    write_parquet(path, pa.concat_tables([table, extra]))


def test_values_known_after_the_decision_never_reach_training(fintech: World, tmp_path: Path):
    repo = build_feature_repo(fintech, Settings.load(data_dir=tmp_path), every_days=7)
    decision = pd.Timestamp(decision_time(fintech), tz="UTC")
    features = repo.meta["views"]["customer_activity"]["features"]
    between = decision - 2 * DAY  # entity time between the last two snapshots

    def leak(unit: int, event: pd.Timestamp, created: pd.Timestamp) -> dict:
        return {"unit_id": unit, "event_timestamp": event, "created_timestamp": created,
                **dict.fromkeys(features, ABSURD)}  # fmt: skip

    planted = pd.DataFrame(
        [
            leak(1, decision + DAY, decision + DAY),  # a later event
            leak(2, decision, decision + DAY),  # a late correction of the decision snapshot
            leak(3, decision - 3 * DAY, decision + DAY),  # late-created, earlier event
            leak(4, decision - 3 * DAY, decision - DAY),  # created after `between`
        ]
    )
    _plant(repo, "customer_activity", planted)
    entities = pd.DataFrame(
        {
            "unit_id": [1, 2, 3, 3, 4],
            "event_timestamp": [decision, decision, decision, between, between],
        }
    )
    refs = [f"customer_activity:{name}" for name in features]
    # the planted rows are reachable: Feast's join without the created cut-off leaks them
    naive = repo.store.get_historical_features(entity_df=entities.copy(), features=refs).to_df()
    assert (naive[features] == ABSURD).all(axis=1).sum() == 3
    frame = repo.training_frame(entities, features)
    assert not (frame[features] >= ABSURD).any().any()
    last, previous = (t.replace(tzinfo=None) for t in repo.snapshot_times[-1:-3:-1])
    want = pd.concat(
        [unit_features(fintech, last).loc[[1, 2, 3]], unit_features(fintech, previous).loc[[3, 4]]]
    )
    np.testing.assert_allclose(frame[features].to_numpy(), want[features].to_numpy())
    # a late value does count once it is known
    known = pd.DataFrame(
        {"unit_id": [4, 2], "event_timestamp": [decision - DAY / 2, decision + 2 * DAY]}
    )
    assert (repo.training_frame(known, features)[features] == ABSURD).all().all()


def test_online_store_on_sqlite(repo: FeatureRepo, fintech: World):
    decision = decision_time(fintech)
    online = repo.online_features(["12", "5", "999999", "12"])
    assert list(online.index) == [12, 5, 999_999, 12]
    assert online.index.name == "unit_id"
    assert list(online.columns) == list(repo.feature_names)
    offline = unit_features(fintech, decision)
    np.testing.assert_allclose(online.loc[[5]].to_numpy(), offline.loc[[5]].to_numpy())
    assert online.iloc[2].isna().all()
    lean = repo.online_values([12, 5, 999_999, 12])  # what the decision service reads
    np.testing.assert_array_equal(lean, online.to_numpy())
    assert repo.online_values([], features=["txn_count"]).shape == (0, 1)
    merchants = repo.online_features([0, 3], features=repo.features_of("merchant"))
    assert merchants.index.name == "merchant_id" and merchants.notna().all().all()


def test_online_store_on_redis(fintech: World, tmp_path: Path, redis_url: str):
    import redis

    client = redis.Redis.from_url(redis_url)
    project = f"liftwise_test_{uuid.uuid4().hex[:12]}"
    settings = Settings.load(data_dir=tmp_path, online_store="redis", redis_url=redis_url)
    repo = build_feature_repo(fintech, settings, every_days=7, project=project)
    try:
        assert repo.store.config.online_store.type == "redis"
        repo.materialize(decision_time(fintech))
        assert len(list(client.scan_iter(match=f"*{project}", count=1_000))) > 2_000
        online = repo.online_features([5, 999_999, 8])
        offline = unit_features(fintech, decision_time(fintech))
        np.testing.assert_allclose(online.loc[[5, 8]].to_numpy(), offline.loc[[5, 8]].to_numpy())
        assert online.loc[999_999].isna().all()
        # a rebuild replaces the old online values: empty until materialised again
        repo = build_feature_repo(fintech, settings, every_days=7, project=project)
        assert repo.online_features([5]).isna().all().all()
    finally:
        repo.store.teardown()
    assert list(client.scan_iter(match=f"*{project}")) == []


def test_rebuild_replaces_the_repo_and_keeps_versions(fintech: World, tmp_path: Path):
    settings = Settings.load(data_dir=tmp_path)
    first = build_feature_repo(fintech, settings, every_days=7)
    second = build_feature_repo(fintech, settings, every_days=7)
    assert second.versions() == first.versions()
    assert not first.build_dir.exists() and second.build_dir.exists()
    assert [p.name for p in (tmp_path / "feature_data" / "fintech").iterdir()] == [
        second.build_dir.name
    ]
    assert find_feature_repo(settings).build_dir == second.build_dir
    other = build_feature_repo(fintech, settings, every_days=14)
    assert other.versions() != second.versions()
    assert len(other.snapshot_times) == len(snapshot_times(fintech, 14)) == 4


def test_the_feast_cli_applies_the_generated_repo(learning: World, tmp_path: Path):
    repo = build_feature_repo(learning, Settings.load(data_dir=tmp_path), every_days=10)
    registry = Path(repo.store.config.registry.path)
    registry.unlink()
    feast = Path(sys.executable).with_name("feast")
    subprocess.run([str(feast), "-c", str(repo.path), "apply"], check=True, capture_output=True)
    again = FeatureRepo.open(repo.path)
    assert {v.name for v in again.store.list_feature_views()} == set(repo.meta["views"])


def test_open_refuses_what_is_not_a_liftwise_repo(tmp_path: Path):
    with pytest.raises(UserError, match="not a liftwise feature repo"):
        FeatureRepo.open(tmp_path)
    with pytest.raises(UserError, match="no feature repo here"):
        find_feature_repo(Settings.load(data_dir=tmp_path))


def test_bad_entity_frames_are_user_errors(repo: FeatureRepo):
    when = pd.Timestamp("2026-06-01")
    with pytest.raises(UserError, match="column 'event_timestamp'"):
        repo.training_frame(pd.DataFrame({"unit_id": [1]}))
    with pytest.raises(UserError, match="column 'unit_id', row 1: unit id is not an integer"):
        repo.training_frame(pd.DataFrame({"unit_id": ["1", "x"], "event_timestamp": [when, when]}))
    with pytest.raises(UserError, match="row 0: missing timestamp"):
        repo.training_frame(pd.DataFrame({"unit_id": [1], "event_timestamp": [pd.NaT]}))
    with pytest.raises(UserError, match="unknown feature 'nope'"):
        repo.training_frame(pd.DataFrame({"unit_id": [1], "event_timestamp": [when]}), ["nope"])
    with pytest.raises(UserError, match="column 'merchant_id'"):
        repo.training_frame(
            pd.DataFrame({"unit_id": [1], "event_timestamp": [when]}), ["merchant_avg_ticket"]
        )
    with pytest.raises(UserError, match="column 'txn_count'"):
        repo.training_frame(
            pd.DataFrame({"unit_id": [1], "event_timestamp": [when], "txn_count": [0]})
        )


def test_merchant_features_join_on_merchant_id(repo: FeatureRepo):
    when = pd.Timestamp(repo.snapshot_times[-1])
    frame = repo.training_frame(
        pd.DataFrame({"unit_id": [1, 2], "merchant_id": [0, 0], "event_timestamp": [when, when]}),
        ["txn_count", "merchant_txn_count", "merchant_popularity_rank"],
    )
    assert frame["merchant_txn_count"].nunique() == 1 and frame["merchant_txn_count"].iloc[0] > 0
    assert frame["txn_count"].notna().all()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("redis://127.0.0.1:6379/0", "127.0.0.1:6379,db=0"),
        ("redis://:secret@cache:6380/2", "cache:6380,db=2,password=secret"),
        ("rediss://cache", "cache:6379,db=0,ssl=true"),
    ],
)
def test_redis_urls_become_feast_connection_strings(url: str, expected: str):
    assert redis_connection_string(url) == expected


def test_a_bad_redis_url_names_the_setting():
    with pytest.raises(UserError, match="redis_url"):
        redis_connection_string("http://localhost")
