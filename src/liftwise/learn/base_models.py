"""LightGBM / CatBoost base models for the meta-learners: defaults, construction, fitting.

The meta-learners never talk to LightGBM or CatBoost directly; they ask this module for a
classifier (binary outcomes, treatment-arm propensities) or a regressor (continuous
outcomes, imputed effects, pseudo-outcomes), fit it with :func:`fit_model` and read
predictions with :func:`predict_mean` / :func:`predict_class_proba`.

Defaults are small, fast and deterministic for a fixed seed. ``params`` overrides them
using the library's own (scikit-learn wrapper) parameter names, e.g.
``{"n_estimators": 100, "num_leaves": 15}`` for LightGBM or ``{"iterations": 100,
"depth": 4}`` for CatBoost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

BaseModelName = Literal["lightgbm", "catboost"]
Task = Literal["classifier", "regressor"]
BASE_MODELS: tuple[str, ...] = ("lightgbm", "catboost")

LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 50,
    "subsample": 0.8,
    "subsample_freq": 1,  # bagging only happens with a non-zero frequency
    "colsample_bytree": 0.8,
    "n_jobs": 1,  # threads spin-wait on a busy 2-core box; one thread is faster there
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,  # deterministic=True needs the histogram layout fixed
}

CATBOOST_DEFAULTS: dict[str, Any] = {
    "iterations": 300,
    "depth": 6,
    "learning_rate": 0.08,
    "thread_count": 1,
    "verbose": False,
    "allow_writing_files": False,
}

_SEED_KEY = {"lightgbm": "random_state", "catboost": "random_seed"}


def check_base_model(base_model: object) -> str:
    """Return the base-model name or raise ValueError naming the accepted ones."""
    if base_model not in BASE_MODELS:
        raise ValueError(f"base_model must be one of {BASE_MODELS}, got {base_model!r}")
    return str(base_model)


def default_params(base_model: str) -> dict[str, Any]:
    """A copy of the defaults for ``base_model`` (without the seed)."""
    base_model = check_base_model(base_model)
    return dict(LIGHTGBM_DEFAULTS if base_model == "lightgbm" else CATBOOST_DEFAULTS)


def make_base_model(
    base_model: str,
    task: Task,
    params: Mapping[str, Any] | None = None,
    random_state: int | None = None,
    n_classes: int = 2,
) -> Any:
    """An unfitted classifier or regressor: defaults, then ``params``, then the seed.

    The seed is only set when ``params`` does not set it itself. ``n_classes > 2`` makes
    a multiclass classifier (CatBoost needs the loss named; LightGBM infers it).
    """
    base_model = check_base_model(base_model)
    if task not in ("classifier", "regressor"):
        raise ValueError(f"task must be 'classifier' or 'regressor', got {task!r}")
    if params is not None and not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict or None, got {type(params).__name__}")
    merged = default_params(base_model)
    merged.update(params or {})
    seed_key = _SEED_KEY[base_model]
    if random_state is not None and seed_key not in (params or {}):
        merged[seed_key] = int(random_state)
    if base_model == "lightgbm":
        import lightgbm as lgb

        cls = lgb.LGBMClassifier if task == "classifier" else lgb.LGBMRegressor
        return cls(**merged)
    import catboost as cb

    if task == "classifier":
        if n_classes > 2 and "loss_function" not in merged:
            merged["loss_function"] = "MultiClass"
        return cb.CatBoostClassifier(**merged)
    return cb.CatBoostRegressor(**merged)


class ConstantModel:
    """Stands in for a base model when the training target does not vary.

    Gradient-boosting classifiers refuse a single class (and CatBoost a constant target),
    which happens e.g. for an arm with no conversions in a small fold.
    """

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __repr__(self) -> str:
        return f"ConstantModel({self.value!r})"


def fit_model(
    base_model: str,
    task: Task,
    X: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
    random_state: int | None = None,
) -> Any:
    """Fit a classifier (y in {0, 1}) or regressor on (X, y, sample_weight).

    Returns a :class:`ConstantModel` holding the (weighted) mean when ``y`` is constant.
    Read predictions with :func:`predict_mean`.
    """
    if len(y) == 0:
        raise ValueError("cannot fit a base model on zero rows")
    if np.all(y == y[0]):
        return ConstantModel(float(y[0]))
    model = make_base_model(base_model, task, params, random_state)
    target = y.astype(np.int64) if task == "classifier" else y
    model.fit(X, target, sample_weight=sample_weight)
    return model


def predict_mean(model: Any, X: np.ndarray) -> np.ndarray:
    """Expected target: P(y = 1) for a binary classifier, the prediction for a regressor."""
    if isinstance(model, ConstantModel):
        return np.full(X.shape[0], model.value)
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        classes = np.asarray(model.classes_).astype(np.int64)
        return proba[:, int(np.flatnonzero(classes == 1)[0])]
    return np.asarray(model.predict(X), dtype=np.float64).reshape(-1)


def fit_class_model(
    base_model: str,
    X: np.ndarray,
    labels: np.ndarray,
    sample_weight: np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
    random_state: int | None = None,
) -> Any:
    """Fit a (multiclass) classifier of integer ``labels``; used for arm propensities."""
    labels = labels.astype(np.int64)
    present = np.unique(labels)
    if present.size == 1:
        return ConstantModel(float(present[0]))
    model = make_base_model(
        base_model, "classifier", params, random_state, n_classes=int(present.size)
    )
    model.fit(X, labels, sample_weight=sample_weight)
    return model


def predict_class_proba(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """P(label = k | X) for k = 0..n_classes-1, shape (n, n_classes).

    Columns are aligned by the model's ``classes_``; a class the model never saw gets 0.
    """
    out = np.zeros((X.shape[0], n_classes))
    if isinstance(model, ConstantModel):
        out[:, int(model.value)] = 1.0
        return out
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    classes = np.asarray(model.classes_).astype(np.int64).reshape(-1)
    out[:, classes] = proba
    return out
