"""Where the served model comes from, and blue-green swaps between versions.

A :class:`ModelSource` says which version should be served now (``token``) and loads it:
a bundle directory (a new ``model.joblib`` there is a new version) or the registry's
``champion`` alias. :class:`ModelHolder` polls the source in a background thread, loads
and warms a new version beside the serving one, then swaps one reference: every request
reads the reference once, so it is scored wholly by one version, and no request waits
for a load. The version swapped out stays loaded, so a rollback to it is instant.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from liftwise.decide.batch import INTERVAL_ALPHA, decision_economics
from liftwise.decide.config import DecisionConfig
from liftwise.errors import UserError
from liftwise.evaluate.bundle import MODEL_FILE, ModelBundle, load_bundle
from liftwise.io import sha256_file
from liftwise.serve.predict import interval_predictor, outcome_predictor
from liftwise.settings import Settings

log = logging.getLogger("liftwise.serve")


@dataclass(frozen=True)
class ModelKey:
    """What a response names: the model and its version (registry number or file hash)."""

    name: str
    version: str


@dataclass(frozen=True)
class ServingModel:
    """A loaded version with everything the request path needs precomputed."""

    key: ModelKey
    bundle: ModelBundle
    token: object  # the source's identity of this version
    features: tuple[str, ...]
    treatments: tuple[str, ...]
    control: str
    value_per_outcome: float
    contact: np.ndarray  # per treatment arm
    redemption: np.ndarray
    predict_outcomes: Callable[[np.ndarray], np.ndarray]
    predict_interval: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None


def serving_model(
    bundle: ModelBundle, key: ModelKey, token: object, config: DecisionConfig, source: str
) -> ServingModel:
    """Check the bundle against the decision config, precompute its money, warm it up."""
    config.check_arms(bundle.treatments, source=source)
    economics = decision_economics(bundle, config)
    contact, redemption = economics.arrays(bundle.treatments)
    model = ServingModel(
        key=key,
        bundle=bundle,
        token=token,
        features=tuple(bundle.features),
        treatments=tuple(bundle.treatments),
        control=bundle.arms[0],
        value_per_outcome=economics.value_per_outcome,
        contact=contact,
        redemption=redemption,
        predict_outcomes=outcome_predictor(bundle.learner),
        predict_interval=interval_predictor(bundle.learner, INTERVAL_ALPHA),
    )
    warm = np.zeros((1, len(model.features)))  # first calls allocate and compile; not on requests
    model.predict_outcomes(warm)
    if model.predict_interval is not None:
        model.predict_interval(warm)
    return model


class ModelSource(Protocol):
    """Which version to serve, and how to load it."""

    description: str

    def token(self) -> object | None:
        """A cheap identity of the version that should be served now (None: no model yet)."""
        ...

    def load(self, token: object) -> tuple[ModelBundle, ModelKey]: ...


class BundleDirSource:
    """A ModelBundle directory; replacing its model.joblib (``liftwise train``) is a new
    version, named by the first 12 hex digits of the file's SHA-256."""

    def __init__(self, directory: str | Path, name: str | None = None) -> None:
        self.directory = Path(directory)
        if not (self.directory / MODEL_FILE).is_file():
            raise UserError(
                f"no {MODEL_FILE} here (train one with `liftwise train`)",
                file=self.directory,
                parameter="model_dir",
            )
        self.name = name or self.directory.resolve().name
        self.description = f"model directory {self.directory}"

    def token(self) -> object | None:
        try:
            stat = (self.directory / MODEL_FILE).stat()
        except FileNotFoundError:
            return None  # mid-replacement: keep serving what is loaded
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def load(self, token: object) -> tuple[ModelBundle, ModelKey]:
        version = sha256_file(self.directory / MODEL_FILE)[:12]
        return load_bundle(self.directory), ModelKey(self.name, version)


class RegistrySource:
    """The registry model's ``champion`` version (one registry call per poll; each new
    version's bundle is downloaded once into the registry's cache)."""

    def __init__(self, name: str, settings: Settings) -> None:
        from liftwise.registry import ModelRegistry

        self.name = name
        self.registry = ModelRegistry(settings)
        self.description = f"registry model '{name}' (alias champion) at {settings.registry}"
        self._refs: dict[int, object] = {}

    def token(self) -> object | None:
        ref = self.registry.champion(self.name)
        if ref is None:
            return None
        self._refs[ref.version] = ref
        return ref.version

    def load(self, token: object) -> tuple[ModelBundle, ModelKey]:
        ref = self._refs[int(token)]  # type: ignore[call-overload]
        return load_bundle(ref.bundle_dir), ModelKey(self.name, str(ref.version))  # type: ignore[attr-defined]


class ModelHolder:
    """The serving version, refreshed from the source; swaps are one reference write."""

    def __init__(
        self,
        source: ModelSource,
        build: Callable[[ModelBundle, ModelKey, object], ServingModel],
        poll_seconds: float,
        on_swap: Callable[[ServingModel | None, ServingModel], None] | None = None,
    ) -> None:
        self.source = source
        self.build = build
        self.poll_seconds = poll_seconds
        self.on_swap = on_swap
        self.current: ServingModel | None = None
        self.previous: ServingModel | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()

    def refresh(self) -> bool:
        """Serve the source's current version; True if it changed. Errors leave the serving
        version in place (and are kept in ``last_error`` for /readyz)."""
        with self._refresh_lock:
            token = self.source.token()
            current = self.current
            if token is None or (current is not None and token == current.token):
                return False
            if self.previous is not None and token == self.previous.token:
                fresh = self.previous  # blue-green: the old colour is still loaded
            else:
                bundle, key = self.source.load(token)
                fresh = self.build(bundle, key, token)
            self.previous, self.current = current, fresh
            self.last_error = None
            if self.on_swap is not None:
                self.on_swap(current, fresh)
            return True

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as err:  # keep serving the loaded version; say why
                self.last_error = f"{type(err).__name__}: {err}"
                log.error(
                    "model refresh failed",
                    extra={"event": "model_refresh_failed", "error": self.last_error},
                )

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=5)
            self._thread = None

    def wait_for(self, version: str, timeout: float = 30.0) -> bool:
        """Block until ``version`` is served (tests, and scripted rollouts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.current is not None and self.current.key.version == version:
                return True
            time.sleep(0.05)
        return False
