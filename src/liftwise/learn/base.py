"""The uplift-learner contract (scikit-learn style) and its input validation.

Every learner: the constructor stores parameters only; ``fit(X, treatment, y,
sample_weight=None)`` returns self; ``predict(X)`` returns the effect of each treatment
arm against control, shape (n, n_arms - 1); ``predict_outcomes(X)`` the expected outcome
under every arm, shape (n, n_arms), column 0 = control; ``predict_interval(X, alpha)``
lower and upper bounds of the effects where the learner supports it.

``treatment`` holds integer arm codes: 0 is control and 1..K the treatment arms (see
``ExperimentFrame.treatment_codes``). Arms are never folded together.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator

from liftwise.errors import ParameterError
from liftwise.learn.validation import (
    check_arm_codes,
    check_matrix,
    check_same_length,
    check_vector,
)

OutcomeKind = Literal["binary", "continuous"]


def outcome_kind(y: np.ndarray) -> OutcomeKind:
    """Binary when every value is 0 or 1, continuous otherwise."""
    return "binary" if np.isin(np.unique(y), (0.0, 1.0)).all() else "continuous"


def check_uplift_data(
    X: object,
    treatment: object,
    y: object,
    sample_weight: object = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Validate and convert inputs: X float64 (n, p), treatment int codes with a control (0)
    and every arm up to the largest present, y float64 finite, weights positive.

    Returns ``(X, treatment, y, sample_weight, n_arms)``; raises a ParameterError (a
    ValueError, as scikit-learn raises) naming the argument at fault.
    """
    X = check_matrix(X, "X", allow_nan=True)
    y = check_vector(y, "y")
    treatment = check_arm_codes(treatment)
    check_same_length("X", {"X": X, "treatment": treatment, "y": y})
    n_arms = int(treatment.max()) + 1
    counts = np.bincount(treatment, minlength=n_arms)
    if n_arms < 2 or (counts == 0).any():
        missing = np.flatnonzero(counts == 0).tolist()
        raise ParameterError(
            f"treatment needs control (0) and every arm code up to {n_arms - 1}; "
            f"missing codes: {missing or [1]}",
            parameter="treatment",
        )
    if sample_weight is None:
        sample_weight = np.ones(len(y))
    else:
        sample_weight = check_vector(sample_weight, "sample_weight")
        check_same_length("y", {"y": y, "sample_weight": sample_weight})
        if (sample_weight < 0).any():
            raise ParameterError("sample_weight must be non-negative", parameter="sample_weight")
    return X, treatment, y, sample_weight, n_arms


class UpliftLearner(BaseEstimator):
    """Base class: shared validation, the predict/predict_outcomes relation, tags."""

    supports_interval: bool = False

    def predict(self, X: object) -> np.ndarray:
        """Effect of each treatment arm against control, shape (n, n_arms - 1)."""
        outcomes = self.predict_outcomes(X)
        return outcomes[:, 1:] - outcomes[:, :1]

    def predict_outcomes(self, X: object) -> np.ndarray:  # pragma: no cover - abstract
        """Expected outcome under every arm, shape (n, n_arms); column 0 is control."""
        raise NotImplementedError

    def predict_interval(self, X: object, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) bounds of the effects at level 1 - alpha, each (n, n_arms - 1)."""
        raise NotImplementedError(f"{type(self).__name__} gives no per-unit intervals")
