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
from sklearn.utils.validation import check_array, check_consistent_length

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

    Returns ``(X, treatment, y, sample_weight, n_arms)``; raises ValueError naming the
    argument at fault, as scikit-learn does.
    """
    X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
    y = check_array(y, ensure_2d=False, dtype=np.float64)
    treatment = np.asarray(treatment)
    if treatment.ndim != 1:
        raise ValueError(f"treatment must be 1-d, got shape {treatment.shape}")
    if not np.issubdtype(treatment.dtype, np.integer):
        if not np.all(np.mod(treatment, 1) == 0):
            raise ValueError("treatment must hold integer arm codes (0 = control)")
        treatment = treatment.astype(np.int64)
    check_consistent_length(X, treatment, y)
    if treatment.min() < 0:
        raise ValueError("treatment codes must be >= 0 (0 = control)")
    n_arms = int(treatment.max()) + 1
    counts = np.bincount(treatment, minlength=n_arms)
    if n_arms < 2 or (counts == 0).any():
        missing = np.flatnonzero(counts == 0).tolist()
        raise ValueError(
            f"treatment needs control (0) and every arm code up to {n_arms - 1}; "
            f"missing codes: {missing or [1]}"
        )
    if sample_weight is None:
        sample_weight = np.ones(len(y))
    else:
        sample_weight = check_array(sample_weight, ensure_2d=False, dtype=np.float64)
        check_consistent_length(y, sample_weight)
        if (sample_weight < 0).any():
            raise ValueError("sample_weight must be non-negative")
    return X, treatment.astype(np.int64), y, sample_weight, n_arms


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
