"""The race winner as an MLflow ``pyfunc`` model: per input row, the effect and expected
net profit of every treatment arm, and the best arm.

The model's only artefact is the liftwise bundle directory (``load_bundle``); predictions
are :func:`~liftwise.evaluate.bundle.score_units` reshaped to one row per unit, so the
registry, ``mlflow models serve`` and ``liftwise score`` agree to the last digit. The
signature and the pinned pip requirements are explicit: MLflow never infers them (which
would run the slow model once more at logging time).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel  # liftwise.registry has switched telemetry off

from liftwise.contracts.experiment import UNIT_ID
from liftwise.errors import UserError
from liftwise.evaluate.bundle import ModelBundle, load_bundle, score_units

BUNDLE_ARTIFACT = "bundle"
DEFAULT_ALPHA = 0.05  # effect intervals at 95%

# What unpickling and running a bundle imports (liftwise's own dependencies and its learn
# extra, less plotting), pinned to the installed versions; MLflow adds its own pin.
INFERENCE_PACKAGES = (
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "pandera",
    "pyyaml",
    "rich",
    "typer",
    "scikit-learn",
    "scipy",
    "lightgbm",
    "catboost",
    "numba",
    "joblib",
    "cloudpickle",
)

# Per-arm output columns, in order: name[arm] for every treatment arm.
ARM_COLUMNS = ("effect", "effect_low", "effect_high", "expected_outcome", "expected_profit")


def pip_requirements() -> list[str]:
    """``package==installed-version`` for every package a bundle needs at inference."""
    pins = []
    for package in INFERENCE_PACKAGES:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:  # an optional learner library that is not installed
            continue
    return pins


def output_columns(bundle: ModelBundle) -> list[str]:
    """The prediction's columns: unit id, ``name[arm]`` per arm, control outcome, best arm."""
    per_arm = [f"{name}[{arm}]" for arm in bundle.treatments for name in ARM_COLUMNS]
    return [UNIT_ID, *per_arm, "control_outcome", "best_arm", "best_expected_profit"]


def predict_frame(
    bundle: ModelBundle, frame: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA
) -> pd.DataFrame:
    """One row per input row: effects, intervals, outcomes and expected profit per arm;
    ``best_arm`` is the arm of highest expected profit, or the control when none is positive.

    ``frame`` holds the bundle's feature columns (others are ignored) and optionally
    ``unit_id`` (default: the row number).
    """
    missing = [name for name in bundle.features if name not in frame.columns]
    if missing:
        raise UserError(
            f"missing feature column(s) {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""),
            column=missing[0],
        )
    ids = frame[UNIT_ID].to_numpy() if UNIT_ID in frame.columns else np.arange(len(frame))
    X = frame[list(bundle.features)].to_numpy(dtype=np.float64)
    long = score_units(bundle, X, ids, alpha=alpha)
    n, k = len(frame), len(bundle.treatments)
    out: dict[str, Any] = {UNIT_ID: np.asarray(ids, dtype=np.int64)}
    for name in ARM_COLUMNS:
        values = long[name].to_numpy(dtype=np.float64).reshape(n, k)  # unit-major, arm-minor
        for index, arm in enumerate(bundle.treatments):
            out[f"{name}[{arm}]"] = values[:, index]
    out["control_outcome"] = long["control_outcome"].to_numpy(dtype=np.float64)[::k]
    profit = long["expected_profit"].to_numpy(dtype=np.float64).reshape(n, k)
    best = profit.argmax(axis=1) if k else np.zeros(n, dtype=int)
    best_profit = profit[np.arange(n), best] if n else np.zeros(0)
    arms = np.asarray(bundle.treatments, dtype=object)
    out["best_arm"] = np.where(best_profit > 0, arms[best], bundle.arms[0])
    out["best_expected_profit"] = np.maximum(best_profit, 0.0)
    return pd.DataFrame(out)[output_columns(bundle)]


def signature(bundle: ModelBundle) -> Any:
    """The MLflow signature: float features plus an optional ``unit_id`` in, the columns of
    :func:`predict_frame` out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    inputs: list[ColSpec | TensorSpec] = [ColSpec("double", name) for name in bundle.features]
    inputs.append(ColSpec("long", UNIT_ID, required=False))
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec("long" if name == UNIT_ID else "string" if name == "best_arm" else "double", name)
        for name in output_columns(bundle)
    ]
    params = ParamSchema([ParamSpec("alpha", "double", DEFAULT_ALPHA)])
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=params)


class LiftwiseUpliftModel(PythonModel):
    """The pyfunc wrapper: loads the bundle from the model's ``bundle`` artefact."""

    def load_context(self, context: Any) -> None:
        self.bundle = load_bundle(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        alpha = float((params or {}).get("alpha", DEFAULT_ALPHA))
        return predict_frame(self.bundle, pd.DataFrame(model_input), alpha=alpha)
