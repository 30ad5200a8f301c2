"""Rehearsal candidates: models that are bad on purpose, to prove a rollout plan stops them.

A team should see its plan abort a bad model before a real one hurts customers. Each
rehearsal wraps a real bundle's learner (:class:`RehearsalLearner`) and injects one fault:

- ``slow``: sleeps ``latency_ms`` on every prediction (the latency gate must fail);
- ``broken``: raises a RuntimeError on a share ``error_rate`` of predictions (the error
  gate must fail). The first call in a process succeeds: the service warms a model up
  with one call when it loads it, and a model that cannot load is refused before it ever
  serves, which is not what a rehearsal rehearses;
- ``harmful``: treats sleeping dogs. Each arm's predicted effect is reflected around
  control, ``mu'_arm = mu_control - (mu_arm - mu_control)``, so the units treatment hurts
  most look best (the business gate must fail);
- ``same``: identical predictions, an A/A candidate (every gate must pass).

The decision service compiles an S- or T-learner on LightGBM into one kernel
(liftwise.serve.predict); a rehearsal learner is never compiled itself: the service
compiles the wrapped learner and puts the fault around it (:meth:`RehearsalLearner.wrap`),
so apart from the fault a rehearsal behaves exactly like the original, speed included.
The class lives in the package (not in a test) because joblib pickles it by reference.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, get_args

import numpy as np
from pydantic import Field

from liftwise.errors import UserError
from liftwise.evaluate.bundle import ModelBundle
from liftwise.learn.base import UpliftLearner
from liftwise.params import Parameters

FaultKind = Literal["slow", "broken", "harmful", "same"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
DEFAULT_LATENCY_MS = 80.0
Predict = Callable[[Any], np.ndarray]  # X -> outcomes (n, arms)


class InjectedFailure(RuntimeError):
    """The failure a ``broken`` rehearsal raises (a RuntimeError, as a crashing model's)."""


class FaultSettings(Parameters):
    """A rehearsal's fault, range-checked (one line naming the parameter)."""

    kind: FaultKind
    latency_ms: float = Field(DEFAULT_LATENCY_MS, ge=0, le=60_000)
    error_rate: float = Field(1.0, ge=0, le=1)
    seed: int = Field(0, ge=0)


def reflect_outcomes(outcomes: np.ndarray) -> np.ndarray:
    """Outcomes (n, arms; control first) with every arm's effect reflected around control."""
    control = outcomes[:, :1]
    reflected = np.array(outcomes, dtype=np.float64, copy=True)
    reflected[:, 1:] = control - (outcomes[:, 1:] - control)
    return reflected


class RehearsalLearner(UpliftLearner):
    """``inner`` with one injected fault (see the module docstring)."""

    def __init__(
        self,
        inner: UpliftLearner,
        kind: FaultKind = "same",
        latency_ms: float = DEFAULT_LATENCY_MS,
        error_rate: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.inner = inner
        self.kind = kind
        self.latency_ms = latency_ms
        self.error_rate = error_rate
        self.seed = seed

    # per-process state, built on first use and never pickled: each worker draws its own
    _RUNTIME = ("_lock", "_calls", "_draws")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        for key in self._RUNTIME:
            state.pop(key, None)
        return state

    @property
    def supports_interval(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.inner, "supports_interval", False))

    def fit(self, X: object, treatment: object, y: object, sample_weight: object = None) -> Any:
        self.inner.fit(X, treatment, y, sample_weight=sample_weight)
        return self

    def predict_outcomes(self, X: object) -> np.ndarray:
        return self.wrap(self.inner.predict_outcomes)(X)

    def predict_interval(self, X: object, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """The inner interval of each effect; reflected (``(-high, -low)``) when harmful.
        The fault itself is injected once per scoring call, in :meth:`predict_outcomes`."""
        low, high = self.inner.predict_interval(X, alpha=alpha)
        return (-high, -low) if self.kind == "harmful" else (low, high)

    def wrap(self, predict: Callable[[Any], np.ndarray]) -> Predict:
        """``predict`` (the inner learner's outcomes, compiled or not) with the fault."""
        if self.kind == "harmful":
            return lambda X: reflect_outcomes(predict(X))
        if self.kind == "same":
            return predict

        def faulty(X: Any) -> np.ndarray:
            self.inject()
            return predict(X)

        return faulty

    def inject(self) -> None:
        """Sleep (slow) or maybe raise (broken) for one scoring call."""
        if self.kind == "slow":
            time.sleep(self.latency_ms / 1000.0)
        elif self.kind == "broken" and self._fails():
            raise InjectedFailure("rehearsal candidate 'broken': injected prediction failure")

    def _fails(self) -> bool:
        if not hasattr(self, "_lock"):
            self._lock = threading.Lock()
            self._calls = 0
            self._draws = np.random.default_rng(self.seed)
        with self._lock:
            self._calls += 1
            draw = float(self._draws.random())
            return self._calls > 1 and draw < self.error_rate


def rehearsal_bundle(
    bundle: ModelBundle,
    kind: str,
    *,
    latency_ms: float = DEFAULT_LATENCY_MS,
    error_rate: float = 1.0,
    seed: int = 0,
) -> ModelBundle:
    """A copy of ``bundle`` whose learner wraps the original with the fault ``kind``."""
    if kind not in FAULT_KINDS:
        raise UserError(
            f"unknown rehearsal kind {kind!r} (kinds: {', '.join(FAULT_KINDS)})",
            parameter="kind",
        )
    settings = FaultSettings(kind=kind, latency_ms=latency_ms, error_rate=error_rate, seed=seed)
    learner = RehearsalLearner(
        bundle.learner,
        kind=settings.kind,
        latency_ms=settings.latency_ms,
        error_rate=settings.error_rate,
        seed=settings.seed,
    )
    return dataclasses.replace(
        bundle,
        learner=learner,
        learner_name=f"{bundle.learner_name}+{kind}",
        metadata={**bundle.metadata, "rehearsal": settings.model_dump()},
    )
