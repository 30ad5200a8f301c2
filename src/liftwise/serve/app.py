"""The FastAPI app: routes, error bodies, lifespan, and the decision routes' fast path.

``create_app(config)`` builds everything a worker needs (model, stores, budget) eagerly,
so a misconfiguration fails at start-up with one line; the lifespan starts the model poller
(blue-green swaps) and closes the stores. ``app_from_env`` is the factory workers import by
name (``liftwise.serve.app:app_from_env``), reading the config file named by
``LIFTWISE_SERVE_CONFIG``. The two decision routes are functions of the raw body
(:class:`DecisionRoutes`) that FastAPI documents and serves, and that a pure ASGI
middleware (:class:`FastPath`) answers directly on the hot path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client.core import Metric
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool

from liftwise import __version__
from liftwise.decide.config import DecisionConfig, load_decision_config
from liftwise.errors import UserError
from liftwise.serve.budget import (
    Pacing,
    RedisBudget,
    SqliteBudget,
    from_ledger_units,
    to_ledger_units,
)
from liftwise.serve.config import ServeConfig, config_from_env
from liftwise.serve.dashboard import dashboard_router
from liftwise.serve.engine import DecisionEngine, decision_json, micros, utc_now
from liftwise.serve.errors import ServeError
from liftwise.serve.exposures import SqliteExposureLog, open_exposure_log
from liftwise.serve.features import FeatureResolver
from liftwise.serve.ledger import Committed, Ledger, SplitLedger, SqliteLedger
from liftwise.serve.models import (
    BundleDirSource,
    ModelHolder,
    ModelSource,
    RegistrySource,
    ServingModel,
    serving_model,
)
from liftwise.serve.observe import (
    ObserveMiddleware,
    ServeMetrics,
    configure_logging,
    gauge,
    multiprocess_mode,
)
from liftwise.serve.outcomes import OutcomeStore, outcome_store
from liftwise.serve.routes_outcomes import outcome_routes
from liftwise.serve.schemas import (
    BatchDecisionResponse,
    BudgetStatus,
    Decision,
    DecisionRequest,
    Health,
    ModelVersion,
    Readiness,
    ServedModel,
    batch_request_model,
    error_responses,
)
from liftwise.settings import Settings
from liftwise.sqlite import SqliteDatabase

JSON = "application/json"
ERRORS = error_responses(
    {
        400: "Invalid JSON.",
        404: "Unknown unit: not in the online store and no inline features.",
        409: "The request id was already used for another unit.",
        413: "Batch larger than the server's maximum.",
        422: "A missing, mistyped or out-of-range field (named in the message).",
        503: "No model loaded yet, or a store is unreachable: retry.",
    }
)


# --------------------------------------------------------------------------- the service


@dataclass
class Service:
    """Everything the routes use, built once per worker (the dependency they inject)."""

    config: ServeConfig
    settings: Settings
    decision_config: DecisionConfig
    holder: ModelHolder
    engine: DecisionEngine
    ledger: Ledger
    pacing: Pacing
    metrics: ServeMetrics
    logger: logging.Logger
    repo: Any | None
    outcomes: OutcomeStore
    inline: bool = False

    def model(self) -> ServingModel:
        model = self.holder.current
        if model is None:
            raise ServeError(
                503, "no_model", f"no model loaded yet from {self.holder.source.description}"
            )
        return model

    async def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking decision work: in the thread pool when the stores are remote (a
        round trip should not stall the event loop), else inline (SQLite answers in
        microseconds, and a thread hop costs more than it saves)."""
        if self.inline:
            return function(*args, **kwargs)
        return await run_in_threadpool(function, *args, **kwargs)

    def count(self, results: list[Committed]) -> None:
        """Decision counters, one increment per (arm, reason) present."""
        fresh = Counter(
            (c.record.arm, c.record.reason or "treated") for c in results if not c.replayed
        )
        for (arm, reason), n in fresh.items():
            self.metrics.decisions.labels(arm, reason).inc(n)
        replays = len(results) - sum(fresh.values())
        if replays:
            self.metrics.replays.inc(replays)

    def state_metrics(self) -> Iterable[Metric]:
        budget = self.ledger.budget_state()
        yield gauge(
            "liftwise_budget_total",
            "Campaign budget.",
            from_ledger_units(self.pacing.total),
            {"campaign": self.config.campaign},
        )
        yield gauge(
            "liftwise_budget_spent",
            "Expected cost reserved so far (all workers).",
            from_ledger_units(budget.spent),
            {"campaign": self.config.campaign},
        )
        yield gauge(
            "liftwise_budget_allowed",
            "Spend the pacing allows by now.",
            from_ledger_units(self.pacing.allowance(utc_now())),
            {"campaign": self.config.campaign},
        )
        if self.pacing.window is not None:  # the budget alerts project spend to the end
            yield gauge(
                "liftwise_budget_window_end_seconds",
                "End of the campaign window (Unix time).",
                self.pacing.window[1].replace(tzinfo=dt.UTC).timestamp(),
                {"campaign": self.config.campaign},
            )
        model = self.holder.current
        if model is not None:
            yield gauge(
                "liftwise_model_info",
                "The model version this worker serves.",
                1.0,
                {"name": model.key.name, "version": model.key.version},
            )

    def close(self) -> None:
        self.holder.stop()
        self.ledger.close()


def open_ledger(config: ServeConfig, settings: Settings, logger: logging.Logger) -> Ledger:
    """The exposure log and budget store the settings name; one SQLite transaction when
    both are SQLite, the reserve -> log -> confirm protocol otherwise."""
    log_ = open_exposure_log(
        settings.exposures, config.exposure_table, synchronous=config.sqlite_synchronous
    )
    budget: Any
    if settings.budget_store == "redis":
        budget = RedisBudget(settings.redis_url, config.campaign)
    elif isinstance(log_, SqliteExposureLog):
        return SqliteLedger(log_, SqliteBudget(log_.db, config.campaign))
    else:
        budget_db = SqliteDatabase(
            settings.data_dir / "budget.db", synchronous=config.sqlite_synchronous
        )
        budget = SqliteBudget(budget_db, config.campaign)
    ledger = SplitLedger(log_, budget)
    released = ledger.reconcile(int(config.reservation_grace_seconds * 1e6), micros(utc_now()))
    if released:
        logger.warning(
            "released orphaned budget reservations",
            extra={"event": "budget_reconciled", "released": released},
        )
    return ledger


def model_source(config: ServeConfig, settings: Settings) -> ModelSource:
    if config.model_dir is not None:
        return BundleDirSource(config.model_dir)
    return RegistrySource(str(config.model_name), settings)


def build_service(config: ServeConfig) -> Service:
    """Load the decision config, the model and the stores; fail with a UserError if any is
    unusable (a registry model without a champion yet is not an error: /readyz says so)."""
    logger = configure_logging()
    settings = config.settings()
    if config.decision_config is None and config.budget is None:
        raise UserError("set a budget, or a decision config with one", parameter="budget")
    decision_config = load_decision_config(config.decision_config, budget=config.budget)
    source_name = str(config.decision_config or "decision config")
    source = model_source(config, settings)
    repo = None
    if config.feature_repo is not None:
        from liftwise.features.store import FeatureRepo

        repo = FeatureRepo.open(config.feature_repo)
    ledger = open_ledger(config, settings, logger)
    pacing = Pacing(
        total=to_ledger_units(decision_config.budget),
        window=config.window(),
        capacity=dict(decision_config.capacity),
    )
    history = ledger.log if decision_config.contact_cap is not None else None
    engine = DecisionEngine(
        decision_config,
        pacing,
        ledger,
        FeatureResolver(repo, [rule.feature for rule in decision_config.eligibility]),
        campaign=config.campaign,
        bid_price=config.bid_price,
        history=history,
        source=source_name,
    )
    metrics = ServeMetrics()

    def on_swap(old: ServingModel | None, new: ServingModel) -> None:
        logger.info(
            "model swapped",
            extra={
                "event": "model_swap",
                "model": new.key.name,
                "version": new.key.version,
                "from_version": old.key.version if old else None,
            },
        )
        if old is not None:  # the first load is not a swap
            metrics.swaps.inc()

    holder = ModelHolder(
        source,
        lambda bundle, key, token: serving_model(bundle, key, token, decision_config, source_name),
        config.poll_seconds,
        on_swap=on_swap,
    )
    holder.refresh()
    service = Service(
        config=config,
        settings=settings,
        decision_config=decision_config,
        holder=holder,
        engine=engine,
        ledger=ledger,
        pacing=pacing,
        metrics=metrics,
        logger=logger,
        repo=repo,
        outcomes=outcome_store(ledger.log),
        inline=config.inline if config.inline is not None else isinstance(ledger, SqliteLedger),
    )
    metrics.watch(service.state_metrics)
    return service


def served_model(model: ServingModel) -> ServedModel:
    """The model's name and version with the race metrics ``liftwise train`` saved in its
    bundle (``winner_bundle``'s metadata), each null when absent."""
    meta = model.bundle.metadata
    interval = meta.get("profit_at_k_ci") or (None, None)
    return ServedModel(
        name=model.key.name,
        version=model.key.version,
        learner=model.bundle.learner_name,
        k=meta.get("k"),
        profit_at_k=meta.get("profit_at_k"),
        profit_at_k_low=interval[0],
        profit_at_k_high=interval[1],
    )


# --------------------------------------------------------------------------- errors


def _field_path(loc: Iterable[Any]) -> str:
    """('decisions', 3, 'features', 'age') -> 'decisions[3].features.age'."""
    out = ""
    for part in loc:
        if part in ("body", "[key]") and not isinstance(part, int):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = str(part) or '""'
            out += f".{name}" if out else name
    return out or "body"


def refusal(error: ValidationError) -> ServeError:
    """The first validation error of a request body as a ServeError naming its field:
    400 for a body that is not JSON, 413 for a batch over the maximum, else 422."""
    return first_refusal(error.errors(include_url=False)[0])


BATCH_ITEMS = {"decisions": "units", "outcomes": "outcomes"}  # a batch body's list: its items


def first_refusal(first: Mapping[str, Any]) -> ServeError:
    """A pydantic (or FastAPI) error entry as the ServeError naming its field."""
    kind, loc = first["type"], tuple(p for p in first["loc"] if p != "body")
    ctx = first.get("ctx") or {}
    if kind == "json_invalid":
        return ServeError(400, "invalid_json", f"invalid JSON: {ctx.get('error', '')}", "body")
    if kind == "too_long" and len(loc) == 1 and loc[0] in BATCH_ITEMS:
        return ServeError(
            413,
            "batch_too_large",
            f"{ctx.get('actual_length', 'too many')} {BATCH_ITEMS[loc[0]]}, more than this "
            f"server's maximum of {ctx.get('max_length')}",
            loc[0],
        )
    message = "required" if kind == "missing" else str(first["msg"]).removeprefix("Value error, ")
    return ServeError(422, "invalid_request", message, _field_path(loc))


def _store_errors() -> tuple[type[Exception], ...]:
    """Exceptions meaning a store is unreachable or busy: 503, retry."""
    errors: list[type[Exception]] = [sqlite3.OperationalError]
    with contextlib.suppress(ImportError):
        import redis

        errors += [redis.ConnectionError, redis.TimeoutError]
    with contextlib.suppress(ImportError):
        import psycopg

        errors += [psycopg.OperationalError]
    return tuple(errors)


STORE_ERRORS = _store_errors()


def as_serve_error(exc: Exception, logger: logging.Logger) -> ServeError:
    """Any exception of a request as the ServeError it is answered with (logged when it is
    the service's fault)."""
    if isinstance(exc, ServeError):
        return exc
    if isinstance(exc, ValidationError):
        return refusal(exc)
    if isinstance(exc, UserError):
        return ServeError(422, "invalid_request", exc.one_line())
    if isinstance(exc, STORE_ERRORS):
        logger.warning("store unavailable", extra={"event": "store_error", "error": repr(exc)})
        return ServeError(503, "store_unavailable", f"a store is unavailable: {type(exc).__name__}")
    logger.error("request failed", exc_info=exc, extra={"event": "internal_error"})
    return ServeError(500, "internal", "internal error (logged)")


def _error_body(error: ServeError, info: dict[str, Any]) -> bytes:
    info["error"] = error.code
    return pydantic_core.to_json(error.body(info.get("request_id")))


def _headers(status: int) -> dict[str, str] | None:
    return {"Retry-After": "1"} if status == 503 else None


def _install_error_handlers(app: FastAPI, logger: logging.Logger) -> None:
    """Errors of the other routes, answered in the same JSON shape."""

    async def answer(request: Request, exc: Exception) -> Response:
        error = as_serve_error(exc, logger)
        info = request.scope.setdefault("liftwise", {})
        return Response(
            _error_body(error, info),
            status_code=error.status,
            media_type=JSON,
            headers=_headers(error.status),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        return await answer(request, first_refusal({"type": "", **first}))

    for kind in (ServeError, UserError, *STORE_ERRORS):  # answered inside the middleware,
        app.add_exception_handler(kind, answer)  # so /metrics counts the status
    app.add_exception_handler(Exception, answer)


# --------------------------------------------------------------------------- decisions


class DecisionRoutes:
    """POST /v1/decisions and /v1/decisions:batch as functions of the raw body returning
    (status, JSON bytes). The FastAPI routes (the documented API) and the fast path both
    call them. The body is validated straight from JSON by pydantic-core (3x faster than
    FastAPI's parse-then-validate on a large batch); ``info`` collects what the request log
    line reports."""

    def __init__(self, service: Service, batch: type[BaseModel]) -> None:
        self.service = service
        self.batch = batch

    async def one(self, body: bytes, info: dict[str, Any]) -> tuple[int, bytes]:
        service = self.service
        try:
            item = DecisionRequest.model_validate_json(body)
            info["request_id"], info["unit_id"] = item.request_id, item.unit_id
            model = service.model()
            [result] = await service.run(service.engine.decide, [item], model, batch=False)
        except Exception as exc:
            return self._refused(exc, info)
        service.count([result])
        record = result.record
        info.update(
            arm=record.arm,
            reason=record.reason,
            decision_id=record.decision_id,
            model_version=record.model_version,
            replayed=result.replayed,
        )
        return 200, pydantic_core.to_json(decision_json(record, result.replayed))

    async def many(self, body: bytes, info: dict[str, Any]) -> tuple[int, bytes]:
        service = self.service
        try:
            items = self.batch.model_validate_json(body).decisions  # type: ignore[attr-defined]
            info["units"] = len(items)
            model = service.model()
            results = await service.run(service.engine.decide, items, model, batch=True)
        except Exception as exc:
            return self._refused(exc, info)
        service.count(results)
        info.update(
            model_version=model.key.version,
            treated=sum(r.record.treated for r in results),
            replayed=sum(r.replayed for r in results),
        )
        payload = {"decisions": [decision_json(r.record, r.replayed) for r in results]}
        return 200, pydantic_core.to_json(payload)

    def _refused(self, exc: Exception, info: dict[str, Any]) -> tuple[int, bytes]:
        error = as_serve_error(exc, self.service.logger)
        return error.status, _error_body(error, info)

    def paths(self) -> dict[str, Callable[[bytes, dict[str, Any]], Awaitable[tuple[int, bytes]]]]:
        return {"/v1/decisions": self.one, "/v1/decisions:batch": self.many}


class FastPath:
    """Pure ASGI middleware answering the decision routes without FastAPI's routing,
    dependency and exception layers (~0.15 ms a request, a third of a single decision);
    every other request, and every other method, goes to the app."""

    def __init__(self, app: Any, routes: DecisionRoutes) -> None:
        self.app = app
        self.paths = routes.paths()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        handler = self.paths.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status, payload = await handler(b"".join(chunks), scope.setdefault("liftwise", {}))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        if status == 503:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


# --------------------------------------------------------------------------- routes


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody of a route that validates its raw body itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }


def _with_request_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Add the request models (validated by the routes, not by FastAPI) to the OpenAPI
    components, so the document, /docs and schemathesis see the real request schemas."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _, defs = models_json_schema(
                [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def get_service(request: Request) -> Service:  # async: no thread-pool hop
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def _routes(decisions: DecisionRoutes) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/decisions",
        response_model=Decision,
        responses=ERRORS,
        tags=["decisions"],
        summary="Decide for one unit",
        openapi_extra=_request_body(DecisionRequest),
    )
    async def decide_one(request: Request) -> Response:
        """Score the unit with the serving model, apply the guardrails and the shared
        budget, log the exposure, return the decision. A retried ``request_id`` returns the
        logged decision (``replayed: true``)."""
        info = request.scope.setdefault("liftwise", {})
        status, payload = await decisions.one(await request.body(), info)
        return Response(payload, status_code=status, media_type=JSON, headers=_headers(status))

    @router.post(
        "/v1/decisions:batch",
        response_model=BatchDecisionResponse,
        responses=ERRORS,
        tags=["decisions"],
        summary="Decide for many units",
        openapi_extra=_request_body(decisions.batch),
    )
    async def decide_many(request: Request) -> Response:
        """Up to the server's ``max_batch`` units; a refused unit refuses the whole batch
        (nothing logged, nothing spent). Better units reserve budget first."""
        info = request.scope.setdefault("liftwise", {})
        status, payload = await decisions.many(await request.body(), info)
        return Response(payload, status_code=status, media_type=JSON, headers=_headers(status))

    @router.get("/v1/budget", response_model=BudgetStatus, tags=["operations"])
    def budget(service: ServiceDep) -> BudgetStatus:
        """Spent, allowed by the pacing now, remaining, treated units per arm."""
        state = service.ledger.budget_state()
        window = service.pacing.window
        total = from_ledger_units(service.pacing.total)
        spent = from_ledger_units(state.spent)
        return BudgetStatus(
            campaign=service.config.campaign,
            budget=total,
            spent=spent,
            allowed_now=from_ledger_units(service.pacing.allowance(utc_now())),
            remaining=total - spent,
            units=state.units,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
        )

    @router.get("/v1/model", response_model=ServedModel, responses=ERRORS, tags=["operations"])
    async def model(service: ServiceDep) -> ServedModel:
        """The version this worker serves now, with its race's Profit@K."""
        return served_model(service.model())

    @router.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz() -> Health:
        """The process is up (liveness)."""
        return Health(status="ok")

    @router.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness}},
        tags=["operations"],
    )
    def readyz(service: ServiceDep) -> Response:
        """Model loaded and every store reachable (readiness)."""
        checks: dict[str, str] = {}
        current = service.holder.current
        checks["model"] = (
            "ok" if current is not None else (service.holder.last_error or "not loaded")
        )
        try:
            service.ledger.ping()
            checks["stores"] = "ok"
        except Exception as err:
            checks["stores"] = f"{type(err).__name__}: {err}"
        if service.repo is not None:
            checks["feature_repo"] = "ok" if service.repo.build_dir.is_dir() else "build missing"
        ready = all(v == "ok" for v in checks.values())
        body = Readiness(
            ready=ready,
            model=ModelVersion(name=current.key.name, version=current.key.version)
            if current
            else None,
            checks=checks,
        )
        return Response(body.model_dump_json(), status_code=200 if ready else 503, media_type=JSON)

    @router.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    def metrics(service: ServiceDep) -> Response:
        """Prometheus text format (every worker's counters when several run)."""
        return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4")

    return router


def create_app(config: ServeConfig) -> FastAPI:
    """The decision service for ``config`` (model, stores and budget loaded now)."""
    service = build_service(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.holder.start()
        try:
            yield
        finally:
            service.close()
            if multiprocess_mode():
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(
        title="liftwise decisions",
        version=__version__,
        description="Real-time uplift decisions under a shared budget, with exposure logging.",
        lifespan=lifespan,
    )
    app.state.service = service
    decisions = DecisionRoutes(service, batch_request_model(config.max_batch))
    _install_error_handlers(app, service.logger)
    app.include_router(_routes(decisions))
    app.include_router(outcome_routes())
    app.include_router(dashboard_router())
    _with_request_schemas(app, [DecisionRequest, decisions.batch])
    app.add_middleware(FastPath, routes=decisions)  # inside ObserveMiddleware (added last)
    app.add_middleware(
        ObserveMiddleware,
        metrics=service.metrics,
        logger=service.logger,
        log_requests=config.log_requests,
    )
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory: ``uvicorn --factory liftwise.serve.app:app_from_env``."""
    return create_app(config_from_env())
