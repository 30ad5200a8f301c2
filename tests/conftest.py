"""Shared fixtures: small generated worlds, built once per test session."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from liftwise.report import SHELL_MARKER
from liftwise.simulate import World, WorldConfig, load_world, simulate

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own LIFTWISE_DATA_DIR, so none writes into the checkout's data/
    (MLflow's database there would be shared by concurrent runs)."""
    monkeypatch.setenv("LIFTWISE_DATA_DIR", str(tmp_path_factory.mktemp("liftwise_data")))


@pytest.fixture(scope="session")
def fintech_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A 30K-customer, 60-day fintech world (v2 seasonality)."""
    out = tmp_path_factory.mktemp("fintech") / "world"
    simulate(WorldConfig(world="fintech", units=30_000, days=60, seed=11, chunk_units=10_000), out)
    return load_world(out)


@pytest.fixture(scope="session")
def fintech_world_v1(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A flat (v1) world with a steeper Zipf law; 63 days = 9 whole weeks."""
    out = tmp_path_factory.mktemp("fintech_v1") / "world"
    simulate(
        WorldConfig(
            world="fintech", units=10_000, days=63, seed=12, realism="v1", zipf_exponent=1.5
        ),
        out,
    )
    return load_world(out)


# ---------------------------------------------------------------------- servers on this machine


def require_server(name: str, reachable: bool) -> None:
    """A server a test needs: skip when it is not running here, but fail under CI=true,
    where a skipped test would hide that the check never ran."""
    if reachable:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not reachable and CI=true")
    pytest.skip(f"{name} is not reachable")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis at 127.0.0.1:6379 (database 0)."""
    import redis

    url = "redis://127.0.0.1:6379/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        reachable = bool(client.ping())
    except redis.RedisError:
        reachable = False
    finally:
        client.close()
    require_server("Redis at 127.0.0.1:6379", reachable)
    return url


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The PostgreSQL at 127.0.0.1:5432, database ``test`` (trust authentication)."""
    import psycopg

    dsn = os.environ.get("LIFTWISE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        reachable = True
    except psycopg.Error:
        reachable = False
    require_server(f"PostgreSQL at {dsn}", reachable)
    return dsn


_APT_LOCK = threading.Lock()
_APT_UPDATED: list[bool] = []


def debian_tool(binary: str, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` first when it is missing
    (``apt-get update`` once per session). A tool that cannot be had fails the test under
    CI=true or as root (where installing it is possible), and skips it otherwise."""
    found = shutil.which(binary)
    if found is not None:
        return found
    with _APT_LOCK:
        problem = _apt_install(package) if shutil.which("apt-get") else "no apt-get here"
    found = shutil.which(binary)
    if found is not None:
        return found
    message = f"{binary} (Debian package {package}) is missing: {problem or 'not on PATH'}"
    if os.environ.get("CI") == "true" or os.geteuid() == 0:
        pytest.fail(message)
    pytest.skip(message)


def _apt_install(package: str) -> str | None:
    """Install ``package`` with apt-get; the last lines of its output when it fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [["apt-get", "install", "-y", "-q", package]]
    if not _APT_UPDATED:
        steps.insert(0, ["apt-get", "update", "-q"])
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            return " ".join(argv) + ": " + (done.stderr or done.stdout).strip()[-500:]
        if argv[1] == "update":
            _APT_UPDATED.append(True)
    return None


# ---------------------------------------------------------------------- a served model


@pytest.fixture(scope="session")
def serve_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A 3K-customer, 30-day fintech world for the decision service."""
    out = tmp_path_factory.mktemp("serve_world") / "world"
    simulate(WorldConfig(world="fintech", units=3_000, days=30, seed=21), out)
    return load_world(out)


@pytest.fixture(scope="session")
def serve_model(serve_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The world's race winner (a T-learner on LightGBM), not tracked: its model directory."""
    from liftwise.cli import run

    out = tmp_path_factory.mktemp("serve_race") / "race"
    argv = ["train", "--world", str(serve_world.path), "--out", str(out), "--learners",
            "t_lgbm", "--n-boot", "10", "--seed", "3", "--no-track"]  # fmt: skip
    assert run(argv) == 0
    return out / "model"


def _assert_shell_page(page: str) -> None:
    assert page.count("<html") == 1 and page.count("</html>") == 1
    assert f'<body class="{SHELL_MARKER}">' in page
    assert '<meta name="generator" content="liftwise ' in page
    assert not re.search(r"\bnan\b", page, flags=re.IGNORECASE), "a nan on the page"


@pytest.fixture
def shell_page() -> Callable[[str], None]:
    """Asserts that an HTML page is one page of the report shell (its marker, one <html>,
    no ``nan`` anywhere)."""
    return _assert_shell_page
