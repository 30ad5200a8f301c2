"""`liftwise serve` as a real multi-worker server in its own process group, driven over
loopback by concurrent clients: one budget shared by every worker (SQLite and Redis),
counters added up across workers, SIGKILL under load with nothing acknowledged lost
(SQLite, and PostgreSQL with the reservation protocol), blue-green swaps through
`liftwise model promote` and `rollback` with zero failed requests, a graceful SIGTERM, and
the CLI's errors."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from liftwise.cli import run
from liftwise.features import experiment_frame
from liftwise.serve.exposures import ExposureRecord, PostgresExposureLog, SqliteExposureLog
from liftwise.serve.server import free_port
from liftwise.serve.sqlite import SqliteDatabase
from liftwise.simulate import World

START_SECONDS = 120  # a worker imports the stack and loads the model (slow on a busy machine)


# ---------------------------------------------------------------------- the server process


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def pids(self, event: str) -> set[int]:
        return {line["pid"] for line in self.lines() if line.get("event") == event}

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait()
        self.signal(signal.SIGKILL)  # workers left behind, if any


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen | None = None,
             timeout: float = START_SECONDS) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited ({process.returncode}) before {what}")
        with contextlib.suppress(httpx.HTTPError):
            if condition():
                return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def serving(tmp_path: Path, *args: str, workers: int = 2, ready: bool = True,
            port: int | None = None) -> Iterator[Server]:  # fmt: skip
    """`liftwise serve ARGS` on a free port; with ``ready``, wait until every worker has
    loaded the model and /readyz answers 200."""
    port = port or free_port()
    log = tmp_path / f"serve-{port}-{time.monotonic_ns()}.log"
    argv = [sys.executable, "-m", "liftwise", "serve", "--port", str(port),
            "--workers", str(workers), *args]  # fmt: skip
    # TMPDIR: a killed server cannot remove its config directory; leave it in tmp_path
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "TMPDIR": str(tmp_path)}
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        if ready:
            wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "readiness",
                     process)  # fmt: skip
            wait_for(lambda: len(server.pids("worker_listening")) >= workers, "every worker",
                     process)  # fmt: skip
        else:
            wait_for(lambda: httpx.get(f"{server.url}/healthz").status_code == 200, "liveness",
                     process)  # fmt: skip
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------- load


@dataclass
class Outcome:
    """What a client saw: decisions acknowledged (200), refusals, and requests that got no
    answer (connection errors: the server died while they were in flight)."""

    acked: dict[str, dict] = field(default_factory=dict)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    unanswered: dict[str, dict] = field(default_factory=dict)  # request id -> body
    versions: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: dict, response: httpx.Response | None) -> None:
        with self.lock:
            if response is None:
                self.unanswered[body["request_id"]] = body
            elif response.status_code == 200:
                decision = response.json()
                self.acked[body["request_id"]] = decision
                self.versions.append((time.monotonic(), decision["model"]["version"]))
            else:
                self.refused.append((body["request_id"], response.status_code, response.text))


def load(url: str, bodies: Iterator[dict], outcome: Outcome, stop: threading.Event,
         threads: int = 6, keepalive: bool = True) -> list[threading.Thread]:  # fmt: skip
    """``threads`` clients sending single decisions back to back until ``stop`` is set or the
    bodies run out, each on its own keep-alive connection (or a new connection per request,
    which the kernel hands to any worker)."""
    lock = threading.Lock()
    limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30, limits=limits) as http:
            while not stop.is_set():
                with lock:
                    body = next(bodies, None)
                if body is None:
                    return
                try:
                    response = http.post("/v1/decisions", json=body)
                except httpx.HTTPError:
                    response = None
                outcome.record(body, response)
                if response is None and stop.wait(0.05):
                    return

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    return workers


@pytest.fixture(scope="module")
def requests_for(serve_world: World, serve_model: Path) -> Callable[[str], Iterator[dict]]:
    """Endless single-decision bodies over the world's units, features inline, fresh ids."""
    from liftwise.evaluate.bundle import load_bundle

    features = load_bundle(serve_model).features
    frame = experiment_frame(serve_world).data
    rows = [
        (int(unit), dict(zip(features, map(float, values), strict=True)))
        for unit, values in zip(frame["unit_id"], frame[list(features)].to_numpy(), strict=True)
    ]

    def bodies(tag: str) -> Iterator[dict]:
        i = 0
        while True:
            unit, values = rows[i % len(rows)]
            yield {"request_id": f"{tag}-{i}", "unit_id": unit, "features": values}
            i += 1

    return bodies


def metric(text: str, series: str, **labels: str) -> float:
    """Sum of a Prometheus series' samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(series)}(?:\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


# ---------------------------------------------------------------------- budget across workers


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_workers_share_one_budget_and_never_overspend(tmp_path, serve_model, requests_for, store, request):  # fmt: skip
    budget = 400_000.0
    campaign = f"shared-{uuid.uuid4().hex[:8]}"
    args = ["--model", str(serve_model), "--budget", str(budget), "--campaign", campaign,
            "--data-dir", str(tmp_path / "data")]  # fmt: skip
    if store == "redis":
        args += ["--budget-store", "redis", "--redis-url", request.getfixturevalue("redis_url")]
    outcome = Outcome()
    try:
        with serving(tmp_path, *args) as server:
            stop = threading.Event()
            bodies = iter(list(itertools.islice(requests_for(campaign), 600)))
            for thread in load(server.url, bodies, outcome, stop, threads=8, keepalive=False):
                thread.join(timeout=120)
            state = httpx.get(f"{server.url}/v1/budget").json()
            metrics = httpx.get(f"{server.url}/metrics").text
            served_by = server.pids("request")
            server.signal(signal.SIGTERM)  # a graceful stop: exit 0, no worker left behind
            assert server.process.wait(timeout=60) == 0
            for pid in server.pids("model_swap"):
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)
    finally:
        if store == "redis":
            import redis

            client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
            client.delete(*client.keys(f"liftwise:budget:{{{campaign}}}:*") or ["-"])
    assert not outcome.refused and not outcome.unanswered and len(outcome.acked) == 600
    treated = [d for d in outcome.acked.values() if d["treated"]]
    spent = sum(d["expected_cost"] for d in treated)
    assert 0 < spent <= state["spent"] <= budget
    assert state["spent"] - spent < 1e-3 * len(treated) + 1e-6  # ledger units round up
    assert sum(state["units"].values()) == len(treated)
    assert "budget" in {d["reason"] for d in outcome.acked.values()}  # the budget did bind
    assert len(served_by) == 2  # both workers decided
    # counters from both workers, added up by whichever worker answered /metrics
    assert metric(metrics, "liftwise_serve_requests_total", route="/v1/decisions", status="200") == 600  # fmt: skip
    assert metric(metrics, "liftwise_serve_decisions_total") == 600
    assert metric(metrics, "liftwise_serve_decisions_total", reason="treated") == len(treated)
    assert metric(metrics, "liftwise_budget_spent", campaign=campaign) == state["spent"]
    assert metric(metrics, "liftwise_serve_request_seconds_count", route="/v1/decisions") == 600


# ---------------------------------------------------------------------- SIGKILL under load


def _logged(log: str, tmp_path: Path, table: str) -> dict[str, ExposureRecord]:
    if log == "sqlite":
        db = SqliteDatabase(tmp_path / "data" / "exposures.db")
        try:
            rows = SqliteExposureLog(db, table).read_all()
        finally:
            db.close()
    else:
        rows = PostgresExposureLog(log, table).read_all()
    return {row.request_id: row for row in rows}


@pytest.mark.parametrize("log", ["sqlite", "postgres"])
def test_sigkill_under_load_loses_no_acknowledged_decision(tmp_path, serve_model, requests_for, log, request):  # fmt: skip
    table = f"exposures_{uuid.uuid4().hex[:10]}"
    args = ["--model", str(serve_model), "--budget", "2000000", "--data-dir",
            str(tmp_path / "data"), "--exposure-table", table, "--no-log-requests",
            "--reservation-grace-seconds", "1"]  # fmt: skip
    if log == "postgres":
        log = request.getfixturevalue("postgres_dsn")
        args += ["--exposure-log", log]
    outcome = Outcome()
    bodies = requests_for(table)
    try:
        with serving(tmp_path, *args) as server:
            stop = threading.Event()
            clients = load(server.url, bodies, outcome, stop, threads=8)
            wait_for(lambda: len(outcome.acked) >= 400, "400 acknowledged decisions", timeout=120)
            server.signal(signal.SIGKILL)  # every worker and the supervisor, mid-request
            server.process.wait()
            time.sleep(0.5)
            stop.set()
            for client in clients:
                client.join(timeout=60)
        acked_before = dict(outcome.acked)
        assert acked_before and not outcome.refused
        logged = _logged(log, tmp_path, table)
        for request_id, decision in acked_before.items():  # every acknowledged one is there
            row = logged[request_id]
            assert (row.decision_id, row.arm, row.expected_cost, row.unit_id) == (
                decision["decision_id"], decision["arm"], decision["expected_cost"],
                decision["unit_id"])  # fmt: skip
        assert set(logged) - set(acked_before) <= set(outcome.unanswered)  # only in-flight ones
        time.sleep(1.2)  # past the reservation grace: pending reservations are orphans now
        with serving(tmp_path, *args) as server:  # restart; clients retry what went unanswered
            retry = Outcome()
            for client in load(server.url, iter(list(outcome.unanswered.values())), retry,
                               threading.Event(), threads=4):  # fmt: skip
                client.join(timeout=60)
            state = httpx.get(f"{server.url}/v1/budget").json()
        assert not retry.refused and not retry.unanswered
        for request_id, decision in retry.acked.items():  # a logged one is replayed as logged
            if request_id in logged:
                assert decision["replayed"] and decision["decision_id"] == logged[request_id].decision_id  # fmt: skip
        final = _logged(log, tmp_path, table)
        acknowledged = {**acked_before, **retry.acked}
        assert set(final) == set(acknowledged)  # exactly the acknowledged decisions
        assert all(final[r].decision_id == d["decision_id"] for r, d in acknowledged.items())
        assert round(state["spent"] * 1000) == sum(row.cost_units for row in final.values())
    finally:
        if log != "sqlite":
            import psycopg

            with psycopg.connect(log, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")


# ---------------------------------------------------------------------- blue-green swaps


@pytest.fixture(scope="module")
def registered(serve_world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two versions of one registered model (two seeds), both approved, no champion yet."""
    root = tmp_path_factory.mktemp("serve_registry")
    data_dir, name = root / "data", "serve-swap"
    for seed in ("1", "2"):
        argv = ["train", "--world", str(serve_world.path), "--out", str(root / f"race{seed}"),
                "--learners", "t_lgbm", "--n-boot", "10", "--seed", seed, "--data-dir",
                str(data_dir), "--register", name]  # fmt: skip
        assert run(argv) == 0
    for version in ("1", "2"):
        assert run(["model", "approve", name, version, "--by", "ana", "--note", "reviewed",
                    "--data-dir", str(data_dir)]) == 0  # fmt: skip
    return data_dir, name


def test_promote_and_rollback_swap_models_under_load_without_a_failed_request(tmp_path, registered, requests_for):  # fmt: skip
    data_dir, name = registered
    args = ["--model-name", name, "--data-dir", str(data_dir), "--budget", "1e9",
            "--poll-seconds", "0.2", "--no-log-requests"]  # fmt: skip
    with serving(tmp_path, *args, ready=False) as server:
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["model"] == "not loaded"
        early = httpx.post(f"{server.url}/v1/decisions", json=next(requests_for("early")))
        assert early.status_code == 503 and early.json()["error"] == "no_model"
        assert early.headers["retry-after"] == "1"
        assert run(["model", "promote", name, "1", "--data-dir", str(data_dir)]) == 0
        wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "the champion")
        wait_for(lambda: len(server.pids("model_swap")) >= 2, "both workers on v1")
        wait_for(lambda: len(server.pids("worker_listening")) >= 2, "both workers listening")

        outcome, stop = Outcome(), threading.Event()
        clients = load(server.url, requests_for("swap"), outcome, stop, threads=4)

        def serving_only(version: str) -> Callable[[], bool]:
            def check() -> bool:
                with outcome.lock:
                    recent = [v for _, v in outcome.versions[-40:]]
                return len(recent) == 40 and set(recent) == {version}

            return check

        try:
            wait_for(serving_only("1"), "load on v1", timeout=60)
            assert run(["model", "promote", name, "2", "--data-dir", str(data_dir)]) == 0
            wait_for(serving_only("2"), "every worker on v2", timeout=90)
            assert run(["model", "rollback", name, "--by", "ops", "--note", "test",
                        "--data-dir", str(data_dir)]) == 0  # fmt: skip
            wait_for(serving_only("1"), "every worker back on v1", timeout=90)
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=60)
        metrics = httpx.get(f"{server.url}/metrics").text
    assert not outcome.refused and not outcome.unanswered  # zero failed requests
    versions = [v for _, v in outcome.versions]
    runs = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
    assert runs[0] == "1" and runs[-1] == "1" and "2" in runs
    assert metric(metrics, "liftwise_serve_model_swaps_total") >= 4  # two swaps in each worker
    assert metric(metrics, "liftwise_model_info", name=name, version="1") == 1


# ---------------------------------------------------------------------- the command line


def test_serve_help_and_one_line_errors(tmp_path, serve_model, capsys):
    assert run(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--model", "--model-name", "--budget", "--guardrails", "--workers",
                   "--campaign-start", "--pacing", "--exposure-log", "--budget-store",
                   "--redis-url", "--feature-repo", "--port"):  # fmt: skip
        assert option in out
    model = ["--model", str(serve_model), "--data-dir", str(tmp_path / "data")]
    cases = [
        (["--budget", "1"], "exactly one of --model"),
        ([*model], "set a budget"),
        ([*model, "--budget", "-5"], "option --budget"),
        ([*model, "--budget", "1", "--model-name", "x"], "exactly one of --model"),
        (["--model", str(tmp_path), "--budget", "1"], "option --model"),
        ([*model, "--budget", "1", "--guardrails", str(tmp_path / "none.yaml")], "no such file"),
        ([*model, "--budget", "1", "--campaign-start", "2025-02-01", "--campaign-end",
          "2025-01-01"], "--campaign-end must be after"),
        ([*model, "--budget", "1", "--campaign-start", "soon", "--campaign-end", "later"],
         "option --campaign-start"),
        ([*model, "--budget", "1", "--exposure-log", "mysql://db"], "option --exposure-log"),
        ([*model, "--budget", "1", "--budget-store", "etcd"], "option --budget-store"),
    ]  # fmt: skip
    for argv, message in cases:
        assert run(["serve", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, (argv, err)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run(["serve", *model, "--budget", "1", "--port", str(port)]) == 2
        assert "already listens" in capsys.readouterr().err
