"""The MLflow connection every registry module shares: lazy import, URIs from Settings,
experiments whose artefacts live under ``settings.artifact_root``.

MLflow takes seconds to import, so nothing here imports it at module level; telemetry is
switched off before the first import (``MLFLOW_DISABLE_TELEMETRY``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from liftwise.errors import UserError
from liftwise.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # liftwise prints its own
# MLflow retries a failed request 7 times with a doubling backoff and waits 120 s for each:
# minutes of silence when a server goes away. A few seconds is enough on a network that works.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
PROBE_TIMEOUT_SECONDS = 3.0

_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def mlflow_module() -> Any:
    """``import mlflow`` with telemetry off (the import is slow: call it only when needed)."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import mlflow

    # MLflow's SQL store uses a SQLAlchemy loader SQLAlchemy 2.1 deprecates: not the user's
    warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")
    return mlflow


def is_server(uri: str) -> bool:
    """True for an MLflow tracking server (http/https), False for an embedded store."""
    return uri.startswith(("http://", "https://"))


def reach_servers(settings: Settings) -> None:
    """Refuse at once, naming the URI, a tracking or registry server that does not answer
    MLflow's ``/health`` within a few seconds (MLflow itself would retry for minutes). An
    answer that needs credentials (401, 403) counts: the server is there."""
    for uri in dict.fromkeys((settings.tracking, settings.registry)):
        if not is_server(uri):
            continue
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_SECONDS)
        except urllib.error.HTTPError as err:
            if err.code not in (401, 403):
                raise UserError(
                    f"{uri} answers /health with HTTP {err.code}: not an MLflow tracking server",
                    parameter="tracking_uri",
                ) from None
        except (OSError, ValueError) as err:
            cause = getattr(err, "reason", err)
            reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
            raise UserError(
                f"cannot reach the MLflow server at {uri} ({reason}); is it running?",
                parameter="tracking_uri",
            ) from None


def client(settings: Settings) -> MlflowClient:
    """A client on the settings' tracking and registry URIs (no global state touched)."""
    reach_servers(settings)
    mlflow = mlflow_module()
    if not is_server(settings.tracking):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return mlflow.MlflowClient(tracking_uri=settings.tracking, registry_uri=settings.registry)


@contextlib.contextmanager
def active_store(settings: Settings) -> Iterator[Any]:
    """Point MLflow's fluent API (``mlflow.start_run``, ``log_model``) at the settings' store
    for the duration, then restore whatever the process used before."""
    reach_servers(settings)
    mlflow = mlflow_module()
    before = {name: os.environ.get(name) for name in _URI_VARIABLES}
    if not is_server(settings.tracking):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking)
    mlflow.set_registry_uri(settings.registry)
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(before["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(before["MLFLOW_REGISTRY_URI"])
        for name, value in before.items():  # set_*_uri(None) leaves the variables behind
            if value is None:
                os.environ.pop(name, None)


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Set environment variables for the duration (MLflow reads its switches from there)."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def experiment_artifact_location(settings: Settings, name: str) -> str | None:
    """Where an embedded store keeps an experiment's artefacts: a folder per experiment
    under ``artifact_root`` (``None`` for a server, which decides for itself)."""
    if is_server(settings.tracking):
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if folder != name:  # keep two names that sanitise alike apart
        folder += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return (settings.artifact_root / folder).resolve().as_uri()


def ensure_experiment(settings: Settings, name: str) -> str:
    """The id of experiment ``name``, created on first use."""
    if not name.strip():
        raise UserError("experiment name must not be empty", parameter="experiment")
    tracking = client(settings)
    experiment = tracking.get_experiment_by_name(name)
    if experiment is None:
        return tracking.create_experiment(
            name, artifact_location=experiment_artifact_location(settings, name)
        )
    if experiment.lifecycle_stage == "deleted":
        raise UserError(
            f"experiment '{name}' is deleted in {settings.tracking}; restore it "
            "(`mlflow experiments restore`) or choose another name",
            parameter="experiment",
        )
    return experiment.experiment_id


def lost_server(error: BaseException) -> str | None:
    """One line naming the server when ``error`` is MLflow giving up on a tracking server
    that went away after :func:`reach_servers` found it (MLflow raises its own exception
    with the retries' story inside); None for any other error."""
    mlflow_exception = getattr(_loaded("mlflow.exceptions"), "MlflowException", None)
    requests_error = getattr(_loaded("requests.exceptions"), "RequestException", None)
    if mlflow_exception is not None and isinstance(error, mlflow_exception):
        message = str(error.message) if hasattr(error, "message") else str(error)
        found = re.match(r"API request to (\S+) failed with exception", message)
        if found is None:
            return None
        where = found.group(1)
    elif requests_error is not None and isinstance(error, requests_error):
        request = getattr(error, "request", None)
        where = getattr(request, "url", None) or "the tracking server"
    else:
        return None
    return f"lost the MLflow server: a request to {where} failed after retries; is it running?"


def _loaded(module: str) -> Any:
    """A module only if something already imported it (never import MLflow to inspect)."""
    import sys

    return sys.modules.get(module)


def not_found(error: Exception) -> bool:
    """Whether an MLflow error means 'no such entity' (run, model, version, alias)."""
    code = getattr(error, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")
