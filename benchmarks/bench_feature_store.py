"""Benchmark: the Feast feature store — point-in-time training frames and online reads.

1. Training frame: ``FeatureRepo.training_frame`` for N entity rows (default 1M: every
   customer of a 100K-customer fintech world at 10 random decision times) x 20 features
   from three feature views, on Feast's DuckDB offline store (liftwise's default) against
   Feast's default file (dask) store, each run in a fresh process: median seconds, rows/s
   and peak RSS.
2. Online reads after ``materialize``: latency p50 / p99 of one entity and of batches of
   100 and 1,000, on the SQLite online store (default) and on Redis (127.0.0.1:6379), for
   liftwise's ``FeatureRepo.online_values`` (what the decision service reads) and for
   the raw Feast call it wraps.

Prints tables; not a test. The machine is shared and noisy: medians are quoted.

    .venv/bin/python benchmarks/bench_feature_store.py [--units 100000] [--times 10]
        [--repeats 3] [--calls 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

N_FEATURES = 20
SEED = 7

FRAME_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import pandas as pd
    from liftwise.features.store import FeatureRepo
    repo_path, entities_path, store, features = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    entities = pd.read_parquet(entities_path)
    repo = FeatureRepo.open(repo_path, offline_store=store)
    repo.store  # open the registry before timing
    start = time.perf_counter()
    frame = repo.training_frame(entities, features.split(","))
    seconds = time.perf_counter() - start
    names = features.split(",")
    print(json.dumps({
        "seconds": seconds,
        "rows": len(frame),
        "filled": float(frame[names].notna().mean().mean()),
        "checksum": float(frame[names].fillna(0).to_numpy().sum()),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    """
)


def build(root: Path, units: int, online_store: str, project: str):
    """A fintech world's feature repo under ``root`` (online store as asked), decision time."""
    from liftwise.features.snapshots import decision_time
    from liftwise.features.store import build_feature_repo
    from liftwise.settings import Settings
    from liftwise.simulate import WorldConfig, load_world, simulate

    world_dir = root / "world"
    if not world_dir.exists():
        simulate(WorldConfig(world="fintech", units=units, days=90, seed=SEED), world_dir)
    world = load_world(world_dir)
    settings = Settings(data_dir=root / online_store, online_store=online_store)
    repo = build_feature_repo(world, settings, every_days=7, project=project)
    return repo, decision_time(world)


def entity_rows(repo, units: int, times: int) -> pd.DataFrame:
    """Every unit at ``times`` decision times drawn uniformly over the snapshot window."""
    rng = np.random.default_rng(SEED)
    first, last = repo.snapshot_times[0], repo.snapshot_times[-1]
    span_us = int((last - first).total_seconds() * 1e6)
    offsets = rng.integers(0, span_us, size=units * times)
    stamps = pd.Timestamp(first) + pd.to_timedelta(offsets, unit="us")
    return pd.DataFrame(
        {"unit_id": np.tile(np.arange(units, dtype=np.int64), times), "event_timestamp": stamps}
    )


def frame_runs(repo, entities_path: Path, store: str, features: list[str], repeats: int) -> list[dict]:  # fmt: skip
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                FRAME_CHILD,
                str(repo.path),
                str(entities_path),
                store,
                ",".join(features),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def latencies(call, ids: np.ndarray, batch: int, calls: int) -> np.ndarray:
    """Milliseconds per call for ``calls`` calls of ``batch`` random ids (after 5 warm-ups)."""
    rng = np.random.default_rng(SEED + batch)
    for _ in range(5):
        call(rng.choice(ids, size=batch).tolist())
    out = np.empty(calls)
    for i in range(calls):
        chosen = rng.choice(ids, size=batch).tolist()
        start = time.perf_counter()
        call(chosen)
        out[i] = (time.perf_counter() - start) * 1e3
    return out


def online_table(repo, features: list[str], units: int, calls: int) -> list[tuple]:
    view_of = {n: v for v, spec in repo.meta["views"].items() for n in spec["features"]}
    refs = [f"{view_of[name]}:{name}" for name in features]
    ids = np.arange(units)

    def raw(chosen: list[int]) -> None:
        repo.store.get_online_features(
            features=refs, entity_rows=[{"unit_id": i} for i in chosen]
        ).to_dict()

    def lean(chosen: list[int]) -> None:
        repo.online_values(chosen, features)

    rows = []
    for batch in (1, 100, 1000):
        n = max(20, calls // (1 if batch == 1 else 4 if batch == 100 else 10))
        for name, call in (("Feast get_online_features", raw), ("liftwise online_values", lean)):  # fmt: skip
            ms = latencies(call, ids, batch, n)
            rows.append((batch, name, n, *np.percentile(ms, [50, 99])))
    return rows


def redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping())
    except redis.exceptions.ConnectionError:
        return False


def frames_section(repo, root: Path, args: argparse.Namespace) -> None:
    """Training frames on the DuckDB and the file offline store, in fresh processes."""
    features = list(repo.feature_names[:N_FEATURES])
    views = sorted({v for v, s in repo.meta["views"].items() if set(s["features"]) & set(features)})  # fmt: skip
    entities = entity_rows(repo, args.units, args.times)
    entities_path = root / "entities.parquet"
    entities.to_parquet(entities_path)
    print(f"training frame: {len(entities):,} entity rows x {len(features)} features "
          f"from {len(views)} views ({', '.join(views)}); median of {args.repeats} "
          "fresh processes\n")  # fmt: skip
    stores = ["duckdb"] + ([] if args.skip_file_store else ["file"])
    results = {s: frame_runs(repo, entities_path, s, features, args.repeats) for s in stores}
    header = f"{'offline store':<28} {'median s':>9} {'rows/s':>11} {'peak RSS MB':>12} {'filled':>7} {'vs DuckDB':>10}"  # fmt: skip
    print(header)
    print("-" * len(header))
    base = statistics.median(r["seconds"] for r in results["duckdb"])
    for store, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_mb"] for r in runs)
        label = {"duckdb": "DuckDB (liftwise)", "file": "file / dask (Feast default)"}[store]
        print(f"{label:<28} {seconds:>9.2f} {len(entities) / seconds:>11,.0f} {peak:>12,.0f} "
              f"{runs[0]['filled']:>7.1%} {seconds / base:>9.2f}x")  # fmt: skip
    if "file" in results:
        same = abs(results["file"][0]["checksum"] - results["duckdb"][0]["checksum"])
        scale = abs(results["duckdb"][0]["checksum"]) or 1.0
        print(f"same values from both stores: {same / scale < 1e-9}")


def online_section(repo, root: Path, decided, args: argparse.Namespace) -> None:
    """Materialise, then time online reads on SQLite and (when reachable) Redis."""
    features = list(repo.feature_names[:N_FEATURES])
    repos = [("sqlite", repo)]
    if redis_up():
        redis_repo, _ = build(root, args.units, "redis", f"bench_{uuid.uuid4().hex[:8]}")
        repos.append(("redis", redis_repo))
    else:
        print("(Redis not reachable at 127.0.0.1:6379: SQLite only)")
    tables = []
    for name, store_repo in repos:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # Feast prints its progress
            store_repo.materialize(decided)
        print(f"materialize {args.units:,} customers into {name}: {time.perf_counter() - start:.1f} s")  # fmt: skip
        tables.append((name, online_table(store_repo, features, args.units, args.calls)))
        if name == "redis":
            store_repo.store.teardown()
    print(f"\nonline reads of {len(features)} features (ms per call)")
    header = f"{'online store':<12} {'batch':>6} {'reader':<27} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8}"  # fmt: skip
    print(header)
    print("-" * len(header))
    for name, rows in tables:
        for batch, reader, n, p50, p99 in rows:
            print(f"{name:<12} {batch:>6,} {reader:<27} {n:>6} {p50:>8.2f} {p99:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000, help="customers in the world")
    parser.add_argument("--times", type=int, default=10, help="decision times per customer")
    parser.add_argument("--repeats", type=int, default=3, help="training-frame runs per store")
    parser.add_argument("--calls", type=int, default=200, help="single-entity online reads")
    parser.add_argument("--skip-file-store", action="store_true", help="DuckDB store only")
    parser.add_argument("--skip-frames", action="store_true", help="online reads only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        repo, decided = build(root, args.units, "sqlite", f"bench_{uuid.uuid4().hex[:8]}")
        print(f"fintech world: {args.units:,} customers, {len(repo.snapshot_times)} weekly "
              f"snapshots; world + feature build {time.perf_counter() - start:.1f} s")  # fmt: skip
        if not args.skip_frames:
            frames_section(repo, root, args)
        online_section(repo, root, decided, args)


if __name__ == "__main__":
    main()
