"""The FastAPI app: routes, dependencies, error bodies, lifespan.

``create_app(config)`` builds everything a worker needs (model, stores, budget) eagerly,
so a misconfiguration fails at start-up with one line; the lifespan starts the model poller
(blue-green swaps) and closes the stores. ``app_from_env`` is the factory uvicorn workers
import by name (``liftwise.serve.app:app_from_env``), reading the config file named by
``LIFTWISE_SERVE_CONFIG``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client.core import Metric

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
from liftwise.serve.engine import DecisionEngine, decision_json, micros, utc_now
from liftwise.serve.errors import ServeError
from liftwise.serve.exposures import PostgresExposureLog, SqliteExposureLog
from liftwise.serve.features import FeatureResolver
from liftwise.serve.ledger import Committed, Ledger, SplitLedger, SqliteLedger
from liftwise.serve.models import (
    BundleDirSource,
    ModelHolder,
    ModelKey,
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
from liftwise.serve.schemas import (
    BatchDecisionRequest,
    BatchDecisionResponse,
    BudgetStatus,
    Decision,
    DecisionRequest,
    ErrorBody,
    Health,
    ModelVersion,
    Readiness,
)
from liftwise.serve.sqlite import SqliteDatabase, sqlite_path
from liftwise.settings import Settings

JSON = "application/json"
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Invalid JSON."),
        (404, "Unknown unit: not in the online store and no inline features."),
        (409, "The request id was already used for another unit."),
        (413, "Batch larger than the server's maximum."),
        (422, "A missing, mistyped or out-of-range field (named in the message)."),
        (503, "No model loaded yet, or a store is unreachable: retry."),
    )
}


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

    def model(self) -> ServingModel:
        model = self.holder.current
        if model is None:
            raise ServeError(
                503, "no_model", f"no model loaded yet from {self.holder.source.description}"
            )
        return model

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
        yield gauge("liftwise_budget_total", "Campaign budget.", from_ledger_units(self.pacing.total),
                    {"campaign": self.config.campaign})  # fmt: skip
        yield gauge("liftwise_budget_spent", "Expected cost reserved so far (all workers).",
                    from_ledger_units(budget.spent), {"campaign": self.config.campaign})  # fmt: skip
        yield gauge("liftwise_budget_allowed", "Spend the pacing allows by now.",
                    from_ledger_units(self.pacing.allowance(utc_now())),
                    {"campaign": self.config.campaign})  # fmt: skip
        model = self.holder.current
        if model is not None:
            yield gauge("liftwise_model_info", "The model version this worker serves.", 1.0,
                        {"name": model.key.name, "version": model.key.version})  # fmt: skip

    def close(self) -> None:
        self.holder.stop()
        self.ledger.close()


def open_ledger(config: ServeConfig, settings: Settings, logger: logging.Logger) -> Ledger:
    """The exposure log and budget store the settings name; one SQLite transaction when
    both are SQLite, the reserve -> log -> confirm protocol otherwise."""
    url = settings.exposures
    if url.startswith(("postgresql://", "postgres://")):
        log_: Any = PostgresExposureLog(url, config.exposure_table)
        db = None
    else:
        db = SqliteDatabase(sqlite_path(url), synchronous=config.sqlite_synchronous)
        log_ = SqliteExposureLog(db, config.exposure_table)
    if settings.budget_store == "redis":
        budget: Any = RedisBudget(settings.redis_url, config.campaign)
    elif db is not None:
        return SqliteLedger(log_, SqliteBudget(db, config.campaign))
    else:
        budget_db = SqliteDatabase(
            settings.data_dir / "budget.db", synchronous=config.sqlite_synchronous
        )
        budget = SqliteBudget(budget_db, config.campaign)
    ledger = SplitLedger(log_, budget)
    released = ledger.reconcile(int(config.reservation_grace_seconds * 1e6), micros(utc_now()))
    if released:
        logger.warning("released orphaned budget reservations",
                       extra={"event": "budget_reconciled", "released": released})  # fmt: skip
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
        raise UserError("set a budget (--budget) or a decision config with one", option="budget")
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
    history = ledger.log if decision_config.contact_cap is not None else None  # type: ignore[attr-defined]
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
    service_ref: dict[str, Service] = {}

    def on_swap(old: ServingModel | None, new: ServingModel) -> None:
        logger.info(
            "model swapped",
            extra={"event": "model_swap", "model": new.key.name, "version": new.key.version,
                   "from_version": old.key.version if old else None},
        )  # fmt: skip
        if "service" in service_ref:
            service_ref["service"].metrics.swaps.inc()

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
        metrics=ServeMetrics(lambda: service.state_metrics()),
        logger=logger,
        repo=repo,
    )
    service_ref["service"] = service
    return service


# --------------------------------------------------------------------------- HTTP plumbing


class _FastJSONRequest(Request):
    """Parses the body with pydantic-core (Rust; ~2.5x the stdlib on a 1.5 MB batch) and
    refuses NaN/Infinity, which are not JSON."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body, allow_inf_nan=False)
            except ValueError as err:
                position = _error_position(str(err))
                raise json.JSONDecodeError(
                    str(err), body.decode("utf-8", "replace"), position
                ) from None
        return self._json


def _error_position(message: str) -> int:
    """pydantic-core says 'at line L column C'; report the column (good enough for one-line
    bodies, which most are)."""
    tail = message.rsplit("column ", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0


class FastJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_FastJSONRequest(request.scope, request.receive))

        return route


def _field_path(loc: Iterable[Any]) -> str:
    """('body', 'decisions', 3, 'unit_id') -> 'decisions[3].unit_id'."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _error_response(request: Request, error: ServeError) -> JSONResponse:
    info = request.scope.get("liftwise")
    if isinstance(info, dict):
        info["error"] = error.code
    headers = {"Retry-After": "1"} if error.status == 503 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _store_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning a store is unreachable or busy: 503, retry."""
    errors: list[type[BaseException]] = [sqlite3.OperationalError]
    with contextlib.suppress(ImportError):
        import redis

        errors += [redis.ConnectionError, redis.TimeoutError]
    with contextlib.suppress(ImportError):
        import psycopg

        errors += [psycopg.OperationalError]
    return tuple(errors)


def _install_error_handlers(app: FastAPI, logger: logging.Logger) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            detail = (first.get("ctx") or {}).get("error", "")
            return _error_response(
                request, ServeError(400, "invalid_json", f"invalid JSON: {detail}".rstrip(": "), "body")
            )  # fmt: skip
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return _error_response(request, ServeError(422, "invalid_request", message, _field_path(first["loc"])))  # fmt: skip

    @app.exception_handler(ServeError)
    async def refused(request: Request, exc: ServeError) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        return _error_response(request, ServeError(422, "invalid_request", exc.one_line()))

    store_errors = _store_errors()

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, store_errors):
            logger.warning("store unavailable", extra={"event": "store_error", "error": repr(exc)})
            return _error_response(
                request, ServeError(503, "store_unavailable", f"a store is unavailable: {type(exc).__name__}")
            )  # fmt: skip
        logger.error("request failed", exc_info=exc, extra={"event": "internal_error"})
        return _error_response(request, ServeError(500, "internal", "internal error (logged)"))


# --------------------------------------------------------------------------- routes


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def _respond(payload: object) -> Response:
    return Response(pydantic_core.to_json(payload), media_type=JSON)


def _note(request: Request, **fields: Any) -> None:
    info = request.scope.get("liftwise")
    if isinstance(info, dict):
        info.update(fields)


def _routes() -> APIRouter:
    router = APIRouter(route_class=FastJSONRoute)

    @router.post(
        "/v1/decisions", response_model=Decision, responses=ERRORS, tags=["decisions"],
        summary="Decide for one unit",
    )  # fmt: skip
    def decide_one(body: DecisionRequest, request: Request, service: ServiceDep) -> Response:
        """Score the unit with the serving model, apply the guardrails and the shared
        budget, log the exposure, return the decision. A retried ``request_id`` returns the
        logged decision (``replayed: true``)."""
        _note(request, request_id=body.request_id, unit_id=body.unit_id)
        model = service.model()
        [result] = service.engine.decide([body], model, batch=False)
        service.count([result])
        record = result.record
        _note(request, arm=record.arm, reason=record.reason, decision_id=record.decision_id,
              model_version=record.model_version, replayed=result.replayed)  # fmt: skip
        return _respond(decision_json(record, result.replayed))

    @router.post(
        "/v1/decisions:batch", response_model=BatchDecisionResponse, responses=ERRORS,
        tags=["decisions"], summary="Decide for many units",
    )  # fmt: skip
    def decide_many(body: BatchDecisionRequest, request: Request, service: ServiceDep) -> Response:
        """Up to the server's ``max_batch`` units; a refused unit refuses the whole batch
        (nothing logged, nothing spent). Better units reserve budget first."""
        count = len(body.decisions)
        _note(request, units=count)
        if count > service.config.max_batch:
            raise ServeError(
                413, "batch_too_large",
                f"{count} units, more than this server's maximum of {service.config.max_batch}",
                "decisions",
            )  # fmt: skip
        model = service.model()
        results = service.engine.decide(body.decisions, model, batch=True)
        service.count(results)
        _note(request, model_version=model.key.version,
              treated=sum(r.record.treated for r in results),
              replayed=sum(r.replayed for r in results))  # fmt: skip
        return _respond({"decisions": [decision_json(r.record, r.replayed) for r in results]})

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

    @router.get("/v1/model", response_model=ModelVersion, responses=ERRORS, tags=["operations"])
    def model(service: ServiceDep) -> ModelVersion:
        """The version this worker serves now."""
        key: ModelKey = service.model().key
        return ModelVersion(name=key.name, version=key.version)

    @router.get("/healthz", response_model=Health, tags=["operations"])
    def healthz() -> Health:
        """The process is up (liveness)."""
        return Health(status="ok")

    @router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}},
                tags=["operations"])  # fmt: skip
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

    @router.get("/metrics", tags=["operations"], response_class=Response,
                responses={200: {"content": {"text/plain": {}}}})  # fmt: skip
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
    _install_error_handlers(app, service.logger)
    app.include_router(_routes())
    app.add_middleware(ObserveMiddleware, metrics=service.metrics, logger=service.logger,
                       log_requests=config.log_requests)  # fmt: skip
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory: ``uvicorn --factory liftwise.serve.app:app_from_env``."""
    return create_app(config_from_env())
