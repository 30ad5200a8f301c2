"""Predicted outcomes per arm on the request path, without the learners' per-call overhead.

LightGBM's scikit-learn wrapper validates and converts its input on every call, and each
Booster call sets up a predictor: ~0.1 ms per base model for one row, before any tree is
walked. For the S- and T-learners on LightGBM (and constant models), the boosters are
compiled once, at model load, into one array-walking kernel (:mod:`liftwise.serve.trees`);
any other learner is served through its own ``predict_outcomes``. The equality of both
paths is a test (tests/test_serve.py). A rehearsal candidate (liftwise.rollout.faults) is
served as the learner it wraps, compiled where that one is, with its fault around it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from liftwise.learn.base import UpliftLearner
from liftwise.learn.base_models import ConstantModel
from liftwise.learn.meta import SLearner, TLearner
from liftwise.rollout.faults import RehearsalLearner
from liftwise.serve.trees import compile_boosters

Predict = Callable[[np.ndarray], np.ndarray]


def _binary_booster(model: Any) -> Any | None:
    """The booster of a LightGBM binary classifier or regressor (their mean is its
    prediction), else None."""
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
    except ImportError:  # pragma: no cover - lightgbm is part of the learn extra
        return None
    if isinstance(model, LGBMClassifier):
        classes = np.asarray(model.classes_).astype(np.int64).tolist()
        return model.booster_ if classes == [0, 1] else None  # P(y = 1), binary objective
    if isinstance(model, LGBMRegressor):
        return model.booster_
    return None


def _means(models: list[Any]) -> Predict | None:
    """``X -> (n, len(models))`` expected outcomes of LightGBM or constant base models, all
    walked in one kernel call; None if any model is of another kind."""
    constants = {i: m.value for i, m in enumerate(models) if isinstance(m, ConstantModel)}
    boosted = [i for i in range(len(models)) if i not in constants]
    boosters = [_binary_booster(models[i]) for i in boosted]
    if any(b is None for b in boosters):
        return None
    compiled = compile_boosters(boosters) if boosters else None
    if boosters and compiled is None:
        return None

    def predict(X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], len(models)))
        if compiled is not None:
            out[:, boosted] = compiled.predict(X)
        for i, value in constants.items():
            out[:, i] = value
        return out

    return predict


def outcome_predictor(learner: UpliftLearner) -> Predict:
    """``X (n, p) float64 -> outcomes (n, arms)``, control first: the compiled path where
    one exists, else the learner's own method."""
    if isinstance(learner, RehearsalLearner):
        return learner.wrap(outcome_predictor(learner.inner))
    if type(learner) is TLearner:
        means = _means(list(learner.models_))
        if means is not None:
            return means
    if type(learner) is SLearner:
        mean = _means([learner.model_])
        if mean is not None:
            arms = learner.n_arms_

            def s_learner(X: np.ndarray) -> np.ndarray:
                # every arm's copy of X in one matrix: one kernel call instead of one per arm
                n, p = X.shape
                stacked = np.zeros((arms * n, p + arms - 1))
                for a in range(arms):
                    stacked[a * n : (a + 1) * n, :p] = X
                    if a:
                        stacked[a * n : (a + 1) * n, p + a - 1] = 1.0
                return mean(stacked).reshape(arms, n).T

            return s_learner
    return learner.predict_outcomes


def interval_predictor(
    learner: UpliftLearner, alpha: float
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """The learner's effect interval, or None when it gives none."""
    if not getattr(learner, "supports_interval", False):
        return None
    return lambda X: learner.predict_interval(X, alpha=alpha)
