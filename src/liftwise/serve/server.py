"""Run the decision service: check the config once, then several uvicorn workers.

Workers cannot receive Python objects, so the config travels as a JSON file named by
``LIFTWISE_SERVE_CONFIG``; with several workers, ``PROMETHEUS_MULTIPROC_DIR`` points at a
fresh directory so any worker's /metrics adds up every worker's counters. Both live in a
temporary directory removed at shutdown.

Each worker listens on its own ``SO_REUSEPORT`` socket, bound once its app is built, so
the kernel spreads connections over the ready workers. (uvicorn's own ``--workers`` share
one socket, and whichever worker wakes first accepts a whole burst of connections: with a
client's keep-alive pool, one worker took all the load and the other idled.) The
supervisor restarts a worker that dies and stops them all on SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liftwise.errors import UserError
from liftwise.serve.config import CONFIG_ENV, ServeConfig, write_config
from liftwise.serve.observe import MULTIPROC_ENV

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("liftwise.serve")

BACKLOG = 2048
GRACEFUL_SECONDS = 10
MAX_QUICK_FAILURES = 5  # workers dying within QUICK_SECONDS of their start, in a row
QUICK_SECONDS = 10.0


def check_config(config: ServeConfig) -> str:
    """Build the service once (decision config, model, stores) so a misconfiguration is
    one line before any worker starts; returns the model version it would serve."""
    from liftwise.serve.app import build_service

    service = build_service(config)
    try:
        current = service.holder.current
        return f"{current.key.name} v{current.key.version}" if current else "no model yet"
    finally:
        service.close()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(_family(host)) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _refuse_taken(host: str, port: int) -> None:
    """SO_REUSEPORT would let a second server share the port silently: refuse instead."""
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    with socket.socket(_family(probe)) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((probe, port)) == 0:
            raise UserError(f"something already listens on {host}:{port}", parameter="port")


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def _uvicorn_config(app: Any) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        app,
        access_log=False,  # the app logs every request as one JSON line
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )


def worker_main(host: str, port: int) -> None:
    """One worker process: build the app from the config file, then listen and serve."""
    import uvicorn

    from liftwise.serve.app import app_from_env

    app = app_from_env()
    sock = listen(host, port)  # from here the kernel hands this worker its share
    log.info("worker listening", extra={"event": "worker_listening", "host": host, "port": port})
    uvicorn.Server(_uvicorn_config(app)).run(sockets=[sock])


def run_server(config: ServeConfig, *, host: str, port: int, workers: int) -> None:
    """Serve until SIGINT/SIGTERM (workers finish their requests, then stop)."""
    _refuse_taken(host, port)
    with tempfile.TemporaryDirectory(prefix="liftwise-serve-") as tmp:
        os.environ[CONFIG_ENV] = str(write_config(config, Path(tmp) / "serve.json"))
        metrics_dir = Path(tmp) / "metrics"
        metrics_dir.mkdir()
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
        # even one worker runs in a child: uvicorn re-raises SIGTERM after its graceful
        # shutdown, which would end this process before the directory is removed
        Supervisor(host, port, workers).run()


class Supervisor:
    """Keeps ``count`` worker processes alive until told to stop."""

    def __init__(self, host: str, port: int, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self.context = multiprocessing.get_context("spawn")
        self.stopping = threading.Event()

    def _start(self) -> tuple[multiprocessing.process.BaseProcess, float]:
        process = self.context.Process(
            target=worker_main, args=(self.host, self.port), name="liftwise-serve-worker"
        )
        process.start()
        return process, time.monotonic()

    def _stop_signal(self, signum: int, _frame: object) -> None:
        self.stopping.set()

    def run(self) -> None:
        previous = {s: signal.signal(s, self._stop_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        workers = [self._start() for _ in range(self.count)]
        quick_failures = 0
        try:
            while not self.stopping.wait(0.5):
                for i, (process, started) in enumerate(workers):
                    if process.is_alive():
                        continue
                    lived = time.monotonic() - started
                    quick_failures = quick_failures + 1 if lived < QUICK_SECONDS else 0
                    log.error(
                        "worker died; restarting",
                        extra={
                            "event": "worker_died",
                            "worker_pid": process.pid,
                            "exitcode": process.exitcode,
                            "lived_s": round(lived, 1),
                        },
                    )
                    if quick_failures >= MAX_QUICK_FAILURES:
                        raise UserError(
                            f"workers keep dying at start-up (exit code {process.exitcode}); "
                            "see the log above"
                        )
                    workers[i] = self._start()
        finally:
            for process, _ in workers:
                if process.is_alive() and process.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + GRACEFUL_SECONDS + 5
            for process, _ in workers:
                process.join(max(0.0, deadline - time.monotonic()))
                if process.is_alive():
                    process.kill()
                    process.join()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
