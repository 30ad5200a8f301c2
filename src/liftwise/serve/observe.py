"""Prometheus metrics and one structured JSON log line per request.

With several uvicorn workers, ``liftwise serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory before the workers start; each worker then writes its counters there and
any worker's /metrics aggregates all of them. Budget and model figures are read from the
budget store and the serving model at scrape time, so they are exact across workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import pydantic_core
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
ROUTES = (
    "/v1/decisions",
    "/v1/decisions:batch",
    "/v1/budget",
    "/v1/model",
    "/healthz",
    "/readyz",
    "/metrics",
)


def multiprocess_mode() -> bool:
    """True when this process's metric values live in the shared multiprocess directory."""
    return bool(os.environ.get(MULTIPROC_ENV)) and values.ValueClass is not values.MutexValue


class ServeMetrics:
    """Request, error, latency and decision counters of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "liftwise_serve_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "liftwise_serve_errors",
            "Refused or failed requests by route and error code.",
            ["route", "error"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "liftwise_serve_request_seconds",
            "Request latency in the server by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "liftwise_serve_decisions",
            "Decisions by arm and reason (replays excluded).",
            ["arm", "reason"],
            registry=self.registry,
        )
        self.replays = Counter(
            "liftwise_serve_replays",
            "Retried requests answered from the exposure log.",
            registry=self.registry,
        )
        self.swaps = Counter(
            "liftwise_serve_model_swaps",
            "Model versions swapped in by this process.",
            registry=self.registry,
        )
        self.state = _StateCollector()
        self.registry.register(self.state)
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def watch(self, state: Callable[[], Iterable[Metric]]) -> None:
        """Gauges to read at scrape time (budget and model figures)."""
        self.state.source = state

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        children = self._children.get(key)
        if children is None:  # labels() costs a lock and a lookup: once per route and status
            children = self._children[key] = (
                self.requests.labels(route, str(status)),
                self.latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format: every worker's counters when several run."""
        if not multiprocess_mode():
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(self.state)
        return generate_latest(registry)


class _StateCollector(Collector):
    """Gauges read at scrape time (budget spent, allowance, serving model)."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[Metric]] | None = None

    def collect(self) -> Iterable[Metric]:
        if self.source is None:
            return
        with contextlib.suppress(Exception):  # a store outage must not break /metrics
            yield from self.source()


def gauge(
    name: str, documentation: str, value: float, labels: dict[str, str] | None = None
) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


# --------------------------------------------------------------------------- logs

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return pydantic_core.to_json(out, fallback=str).decode()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (a redirect after start-up is followed)."""

    def __init__(self) -> None:
        super().__init__(None)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> logging.Logger:
    """The ``liftwise.serve`` logger writing JSON lines to stderr (set up once)."""
    logger = logging.getLogger("liftwise.serve")
    if not any(getattr(h, "liftwise_json", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler.liftwise_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


class ObserveMiddleware:
    """Pure ASGI middleware: latency and status of every request into the metrics, and one
    log line per request with what the handler put in ``scope["liftwise"]``."""

    def __init__(
        self, app: Any, metrics: ServeMetrics, logger: logging.Logger, log_requests: bool
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logger
        self.log_requests = log_requests

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        info: dict[str, Any] = {}
        scope["liftwise"] = info

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - start
            path = scope.get("path", "")
            route = path if path in ROUTES else "other"
            self.metrics.observe(route, status, seconds)
            if status >= 400:
                self.metrics.errors.labels(route, str(info.get("error", status))).inc()
            if self.log_requests and route not in ("/metrics", "/healthz", "/readyz"):
                self.logger.info(
                    "request",
                    extra={
                        "event": "request",
                        "method": scope.get("method"),
                        "path": path,
                        "status": status,
                        "latency_ms": round(seconds * 1000, 3),
                        **info,
                    },
                )
