"""Meta-learners (S, T, X, DR) for several arms against one control, on LightGBM or CatBoost.

Every learner follows :class:`~liftwise.learn.base.UpliftLearner`: treatment holds integer
arm codes (0 = control, 1..K), ``predict`` returns the K effects against control and
``predict_outcomes`` the K + 1 expected outcomes (column 0 = control). Binary outcomes
(only 0/1) get classifiers read through ``predict_proba``; anything else gets regressors.
Effect stages (X- and DR-learner) are always regressors. Arms are never folded together:
each arm has its own models, imputed effects and pseudo-outcomes.

The formulas, the cross-fitting, the propensities and the interval method are written out in
``docs/learners.md``. The plan's "CatBoostUplift" is any of these with
``base_model="catboost"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy.stats import norm
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from liftwise.learn.base import UpliftLearner, check_uplift_data, outcome_kind
from liftwise.learn.base_models import (
    check_base_model,
    fit_class_model,
    fit_model,
    predict_class_proba,
    predict_mean,
)

MetaKind = Literal["s", "t", "x", "dr"]
_MAX_SEED = 2**31 - 1

__all__ = [
    "DRLearner",
    "SLearner",
    "TLearner",
    "XLearner",
    "cross_fit_propensity",
    "make_meta_learner",
]


# --------------------------------------------------------------------------- helpers


def _check_params(params: object) -> Mapping[str, Any] | None:
    if params is not None and not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict or None, got {type(params).__name__}")
    return params


def _outcome_task(kind: str) -> Literal["classifier", "regressor"]:
    return "classifier" if kind == "binary" else "regressor"


def _check_n_folds(n_folds: object) -> int:
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    return int(n_folds)


def _check_clip(clip: object) -> float:
    if not isinstance(clip, int | float) or not 0.0 <= float(clip) < 0.5:
        raise ValueError(f"propensity_clip must be in [0, 0.5), got {clip!r}")
    return float(clip)


def _design_propensity(propensity: object, n_arms: int) -> np.ndarray | None:
    """None (estimate) or the per-arm design probabilities, validated."""
    if propensity is None:
        return None
    if isinstance(propensity, str | bytes) or not isinstance(propensity, Sequence | np.ndarray):
        raise ValueError(
            "propensity must be None (estimate it) or a sequence of per-arm design "
            f"probabilities, got {propensity!r}"
        )
    p = np.asarray(propensity, dtype=np.float64).reshape(-1)
    if p.shape != (n_arms,):
        raise ValueError(
            f"propensity must hold one probability per arm ({n_arms} arms incl. control), "
            f"got {p.size}"
        )
    if not np.isfinite(p).all() or (p <= 0).any() or (p >= 1).any():
        raise ValueError(f"propensity values must lie strictly between 0 and 1, got {p.tolist()}")
    if abs(p.sum() - 1.0) > 1e-6:
        raise ValueError(f"propensity must sum to 1, sums to {p.sum():.6g}")
    return p


def _folds(
    treatment: np.ndarray, y: np.ndarray, kind: str, n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K folds so every training part holds every arm (and, for binary
    outcomes, both outcome values of each arm when there are enough of them)."""
    counts = np.bincount(treatment)
    if counts.min() < n_folds:
        arm = int(np.argmin(counts))
        raise ValueError(
            f"treatment arm {arm} has {counts.min()} units; cross-fitting with "
            f"n_folds={n_folds} needs at least {n_folds} per arm"
        )
    strata = treatment
    if kind == "binary":
        joint = treatment * 2 + y.astype(np.int64)
        joint_counts = np.bincount(joint)
        if joint_counts[joint_counts > 0].min() >= n_folds:
            strata = joint
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(treatment), 1)), strata))


def _one_hot_arms(treatment_or_arm: np.ndarray | int, n: int, n_arms: int) -> np.ndarray:
    """K indicator columns (arm 1..K); control is all zeros."""
    out = np.zeros((n, n_arms - 1))
    if isinstance(treatment_or_arm, int | np.integer):
        if treatment_or_arm > 0:
            out[:, int(treatment_or_arm) - 1] = 1.0
        return out
    t = np.asarray(treatment_or_arm)
    rows = np.flatnonzero(t > 0)
    out[rows, t[rows] - 1] = 1.0
    return out


def _clip_propensity(e: np.ndarray, clip: float) -> np.ndarray:
    return np.clip(e, clip, 1.0 - clip)


def cross_fit_propensity(
    X: object,
    treatment: object,
    sample_weight: object = None,
    *,
    base_model: str = "lightgbm",
    params: Mapping[str, Any] | None = None,
    n_folds: int = 3,
    clip: float = 0.01,
    random_state: int | None = None,
) -> np.ndarray:
    """Out-of-fold arm probabilities P(T = a | X), shape (n, n_arms), clipped to
    ``[clip, 1 - clip]``: each unit's row comes from a multiclass base classifier not
    trained on it. A diagnostic (e.g. on randomised data it should sit near the design
    ratios); the DR-learner runs the same computation on its own folds.
    """
    treatment_arr = np.asarray(treatment)
    X, t, _, w, n_arms = check_uplift_data(
        X, treatment_arr, np.zeros(len(treatment_arr)), sample_weight
    )
    base_model = check_base_model(base_model)
    n_folds = _check_n_folds(n_folds)
    clip = _check_clip(clip)
    rs = check_random_state(random_state)
    e = np.empty((len(t), n_arms))
    for train, test in _folds(t, t, "continuous", n_folds, rs.randint(_MAX_SEED)):
        model = fit_class_model(
            base_model, X[train], t[train], w[train], params, rs.randint(_MAX_SEED)
        )
        e[test] = predict_class_proba(model, X[test], n_arms)
    return _clip_propensity(e, clip)


class _MetaLearner(UpliftLearner):
    """Shared plumbing: validation of fit/predict inputs and per-model seeds."""

    def _start_fit(
        self, X: object, treatment: object, y: object, sample_weight: object
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        self._base = check_base_model(self.base_model)
        self._params = _check_params(self.params)
        X, t, y, w, n_arms = check_uplift_data(X, treatment, y, sample_weight)
        self.n_arms_ = n_arms
        self.n_features_in_ = X.shape[1]
        self.outcome_kind_ = outcome_kind(y)
        self._rs = check_random_state(self.random_state)
        return X, t, y, w, n_arms

    def _seed(self) -> int:
        return int(self._rs.randint(_MAX_SEED))

    def _fit(
        self,
        task: Literal["classifier", "regressor"],
        X: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
    ) -> Any:
        return fit_model(self._base, task, X, y, w, self._params, self._seed())

    def _end_fit(self) -> None:
        # Scratch attributes must not survive into the pickled, fitted learner.
        for name in ("_base", "_params", "_rs"):
            self.__dict__.pop(name, None)

    def _check_X(self, X: object) -> np.ndarray:
        check_is_fitted(self, "n_arms_")
        X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} was fitted with "
                f"{self.n_features_in_}"
            )
        return X


class _PropensityMixin:
    """Arm propensities at prediction time: the design's, or the fitted models' average."""

    propensity_models_: list[Any]
    design_propensity_: np.ndarray | None
    n_arms_: int

    def predict_propensity(self, X: object) -> np.ndarray:
        """P(T = a | X) for every arm, shape (n, n_arms): the design probabilities when
        given, else the (clipped) estimate of the fitted propensity model(s)."""
        X = self._check_X(X)  # type: ignore[attr-defined]
        if self.design_propensity_ is not None:
            return np.tile(self.design_propensity_, (X.shape[0], 1))
        e = np.mean(
            [predict_class_proba(m, X, self.n_arms_) for m in self.propensity_models_], axis=0
        )
        return _clip_propensity(e, self.propensity_clip)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- S-learner


class SLearner(_MetaLearner):
    """One base model on ``[X, one-hot arm]``; outcome under arm a by setting its indicator.

    The indicator block has K columns (arms 1..K); control is all zeros.
    """

    def __init__(
        self,
        base_model: str = "lightgbm",
        params: dict[str, Any] | None = None,
        random_state: int | None = None,
    ) -> None:
        self.base_model = base_model
        self.params = params
        self.random_state = random_state

    def fit(
        self, X: object, treatment: object, y: object, sample_weight: object = None
    ) -> SLearner:
        X, t, y, w, n_arms = self._start_fit(X, treatment, y, sample_weight)
        Xa = np.hstack([X, _one_hot_arms(t, len(t), n_arms)])
        self.model_ = self._fit(_outcome_task(self.outcome_kind_), Xa, y, w)
        self._end_fit()
        return self

    def predict_outcomes(self, X: object) -> np.ndarray:
        X = self._check_X(X)
        n = X.shape[0]
        return np.column_stack(
            [
                predict_mean(self.model_, np.hstack([X, _one_hot_arms(a, n, self.n_arms_)]))
                for a in range(self.n_arms_)
            ]
        )


# --------------------------------------------------------------------------- T-learner


class TLearner(_MetaLearner):
    """One base model per arm, fitted on that arm's units: mu_a(x) = E[Y | X = x, T = a]."""

    def __init__(
        self,
        base_model: str = "lightgbm",
        params: dict[str, Any] | None = None,
        random_state: int | None = None,
    ) -> None:
        self.base_model = base_model
        self.params = params
        self.random_state = random_state

    def fit(
        self, X: object, treatment: object, y: object, sample_weight: object = None
    ) -> TLearner:
        X, t, y, w, n_arms = self._start_fit(X, treatment, y, sample_weight)
        task = _outcome_task(self.outcome_kind_)
        self.models_ = [self._fit(task, X[t == a], y[t == a], w[t == a]) for a in range(n_arms)]
        self._end_fit()
        return self

    def predict_outcomes(self, X: object) -> np.ndarray:
        X = self._check_X(X)
        return np.column_stack([predict_mean(m, X) for m in self.models_])


# --------------------------------------------------------------------------- X-learner


class XLearner(_PropensityMixin, _MetaLearner):
    """Künzel et al. (2019) X-learner, one arm against control at a time.

    1. T-stage: mu_a(x) per arm on that arm's units.
    2. Imputed effects for arm a: ``D1 = Y - mu_0(X)`` on units with T = a and
       ``D0 = mu_a(X) - Y`` on control units.
    3. Effect regressors ``tau_a1`` on (X, D1) of arm-a units and ``tau_a0`` on (X, D0) of
       control units.
    4. ``tau_a(x) = g_a(x) tau_a0(x) + (1 - g_a(x)) tau_a1(x)`` with
       ``g_a = e_a / (e_a + e_0)``, the probability of arm a among units in {0, a}.

    ``propensity``: None estimates e(x) with one multiclass base classifier fitted on all
    units (it is only evaluated at prediction time, so no cross-fitting is needed), clipped
    to ``[propensity_clip, 1 - propensity_clip]``; or a sequence of per-arm design
    probabilities (length n_arms, control first, summing to 1).

    ``predict_outcomes``: column 0 = mu_0(x), column a = mu_0(x) + tau_a(x).
    """

    def __init__(
        self,
        base_model: str = "lightgbm",
        params: dict[str, Any] | None = None,
        propensity: Sequence[float] | None = None,
        propensity_clip: float = 0.01,
        random_state: int | None = None,
    ) -> None:
        self.base_model = base_model
        self.params = params
        self.propensity = propensity
        self.propensity_clip = propensity_clip
        self.random_state = random_state

    def fit(
        self, X: object, treatment: object, y: object, sample_weight: object = None
    ) -> XLearner:
        X, t, y, w, n_arms = self._start_fit(X, treatment, y, sample_weight)
        _check_clip(self.propensity_clip)
        self.design_propensity_ = _design_propensity(self.propensity, n_arms)
        task = _outcome_task(self.outcome_kind_)
        self.outcome_models_ = [
            self._fit(task, X[t == a], y[t == a], w[t == a]) for a in range(n_arms)
        ]
        control = t == 0
        X0, y0, w0 = X[control], y[control], w[control]
        self.effect_models_treated_ = []
        self.effect_models_control_ = []
        for a in range(1, n_arms):
            arm = t == a
            d1 = y[arm] - predict_mean(self.outcome_models_[0], X[arm])
            d0 = predict_mean(self.outcome_models_[a], X0) - y0
            self.effect_models_treated_.append(self._fit("regressor", X[arm], d1, w[arm]))
            self.effect_models_control_.append(self._fit("regressor", X0, d0, w0))
        self.propensity_models_ = []
        if self.design_propensity_ is None:
            self.propensity_models_.append(
                fit_class_model(self._base, X, t, w, self._params, self._seed())
            )
        self._end_fit()
        return self

    def _effects(self, X: np.ndarray) -> np.ndarray:
        e = self.predict_propensity(X)
        out = np.empty((X.shape[0], self.n_arms_ - 1))
        for a in range(1, self.n_arms_):
            g = e[:, a] / (e[:, a] + e[:, 0])
            tau1 = predict_mean(self.effect_models_treated_[a - 1], X)
            tau0 = predict_mean(self.effect_models_control_[a - 1], X)
            out[:, a - 1] = g * tau0 + (1.0 - g) * tau1
        return out

    def predict(self, X: object) -> np.ndarray:
        return self._effects(self._check_X(X))

    def predict_outcomes(self, X: object) -> np.ndarray:
        X = self._check_X(X)
        mu0 = predict_mean(self.outcome_models_[0], X)
        return np.column_stack([mu0, mu0[:, None] + self._effects(X)])


# --------------------------------------------------------------------------- DR-learner


class DRLearner(_PropensityMixin, _MetaLearner):
    """Kennedy (2020/2023) DR-learner for several arms, cross-fitted, with bootstrap intervals.

    1. Split the units into ``n_folds`` folds (stratified by arm, and by outcome for binary
       outcomes). For each fold, fit on the other folds: mu_a(x) for every arm (on that
       arm's units) and, unless the design propensity is given, a multiclass classifier
       e_a(x) = P(T = a | X = x). Predict both on the held-out fold, so every unit's
       nuisance values come from models never trained on it.
    2. Pseudo-outcome of arm a for **every** unit (multi-valued-treatment AIPW score)::

           phi_a = mu_a - mu_0 + 1{T=a} (Y - mu_a) / e_a - 1{T=0} (Y - mu_0) / e_0

       E[phi_a | X] = tau_a(X) if either the mu's or the e's are right. Units of other arms
       contribute mu_a - mu_0 only. (Restricting to units with T in {0, a} would need the
       conditional propensities e_a / (e_a + e_0) instead.)
    3. Final stage: a regressor of phi_a on X per arm -> ``predict``.

    ``predict_outcomes``: column 0 = the average of the fold models mu_0, column a = that
    plus the final-stage effect, so ``predict_outcomes[:, a] - [:, 0] == predict[:, a-1]``.

    ``predict_interval``: the final stage refitted on ``n_bootstrap`` bootstrap resamples of
    (X, phi); the interval is the point estimate +- z_{1-alpha/2} times the bootstrap
    standard deviation. It captures the sampling noise of the final stage given the
    pseudo-outcomes; it ignores the variability of the nuisance fits and the fold split, and
    any bias of the final-stage regressor. ``n_bootstrap=0`` disables intervals.

    ``propensity``: None estimates it (cross-fitted, clipped to ``[propensity_clip,
    1 - propensity_clip]``), or a sequence of per-arm design probabilities (length n_arms,
    control first, summing to 1) used as is.

    Fitted extras: ``ate_`` (K,) the AIPW average effects (weighted mean of phi_a) and
    ``ate_stderr_`` their standard errors.
    """

    def __init__(
        self,
        base_model: str = "lightgbm",
        params: dict[str, Any] | None = None,
        propensity: Sequence[float] | None = None,
        propensity_clip: float = 0.01,
        n_folds: int = 3,
        n_bootstrap: int = 20,
        random_state: int | None = None,
    ) -> None:
        self.base_model = base_model
        self.params = params
        self.propensity = propensity
        self.propensity_clip = propensity_clip
        self.n_folds = n_folds
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    @property
    def supports_interval(self) -> bool:  # type: ignore[override]
        return (
            isinstance(self.n_bootstrap, int | np.integer)
            and not isinstance(self.n_bootstrap, bool)
            and self.n_bootstrap >= 2
        )

    def fit(
        self, X: object, treatment: object, y: object, sample_weight: object = None
    ) -> DRLearner:
        X, t, y, w, n_arms = self._start_fit(X, treatment, y, sample_weight)
        n_folds = _check_n_folds(self.n_folds)
        clip = _check_clip(self.propensity_clip)
        if (
            isinstance(self.n_bootstrap, bool)
            or not isinstance(self.n_bootstrap, int | np.integer)
            or self.n_bootstrap < 0
            or self.n_bootstrap == 1
        ):
            raise ValueError(f"n_bootstrap must be 0 or an integer >= 2, got {self.n_bootstrap!r}")
        self.design_propensity_ = _design_propensity(self.propensity, n_arms)
        task = _outcome_task(self.outcome_kind_)
        n = len(t)

        mu = np.empty((n, n_arms))
        e = np.empty((n, n_arms))
        self.control_models_ = []
        self.propensity_models_ = []
        for train, test in _folds(t, y, self.outcome_kind_, n_folds, self._seed()):
            t_train = t[train]
            for a in range(n_arms):
                rows = train[t_train == a]
                model = self._fit(task, X[rows], y[rows], w[rows])
                mu[test, a] = predict_mean(model, X[test])
                if a == 0:
                    self.control_models_.append(model)
            if self.design_propensity_ is None:
                pmodel = fit_class_model(
                    self._base, X[train], t_train, w[train], self._params, self._seed()
                )
                self.propensity_models_.append(pmodel)
                e[test] = _clip_propensity(predict_class_proba(pmodel, X[test], n_arms), clip)
            else:
                e[test] = self.design_propensity_

        resid0 = (t == 0) * (y - mu[:, 0]) / e[:, 0]
        phi = np.empty((n, n_arms - 1))
        for a in range(1, n_arms):
            phi[:, a - 1] = mu[:, a] - mu[:, 0] + (t == a) * (y - mu[:, a]) / e[:, a] - resid0

        total = w.sum()
        self.ate_ = (w[:, None] * phi).sum(axis=0) / total
        self.ate_stderr_ = np.sqrt(((w[:, None] * (phi - self.ate_)) ** 2).sum(axis=0)) / total

        self.effect_models_ = [self._fit("regressor", X, phi[:, k], w) for k in range(n_arms - 1)]
        self.bootstrap_models_ = []
        for _ in range(self.n_bootstrap):
            rows = self._rs.randint(0, n, size=n)
            self.bootstrap_models_.append(
                [self._fit("regressor", X[rows], phi[rows, k], w[rows]) for k in range(n_arms - 1)]
            )
        self._end_fit()
        return self

    def predict(self, X: object) -> np.ndarray:
        X = self._check_X(X)
        return np.column_stack([predict_mean(m, X) for m in self.effect_models_])

    def predict_outcomes(self, X: object) -> np.ndarray:
        X = self._check_X(X)
        mu0 = np.mean([predict_mean(m, X) for m in self.control_models_], axis=0)
        return np.column_stack([mu0, mu0[:, None] + self.predict(X)])

    def predict_interval(self, X: object, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (n, n_arms - 1): point effect +- z * bootstrap sd."""
        if not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        X = self._check_X(X)
        if not self.supports_interval or len(self.bootstrap_models_) < 2:
            raise ValueError("intervals need n_bootstrap >= 2 at fit time")
        point = self.predict(X)
        boots = np.stack(
            [np.column_stack([predict_mean(m, X) for m in bag]) for bag in self.bootstrap_models_]
        )
        half = norm.ppf(1.0 - float(alpha) / 2.0) * boots.std(axis=0, ddof=1)
        return point - half, point + half


# --------------------------------------------------------------------------- factory

_KINDS: dict[str, type[_MetaLearner]] = {
    "s": SLearner,
    "t": TLearner,
    "x": XLearner,
    "dr": DRLearner,
}


def make_meta_learner(kind: MetaKind, base_model: str = "lightgbm", **params: Any) -> UpliftLearner:
    """A meta-learner by kind ("s", "t", "x", "dr") on ``base_model``; ``params`` are the
    learner's constructor arguments (e.g. ``params={...}``, ``random_state=0``,
    ``propensity=[0.5, 0.5]``). Raises ValueError for an unknown kind, base model or
    argument."""
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"kind must be one of {tuple(_KINDS)}, got {kind!r}")
    check_base_model(base_model)
    cls = _KINDS[kind]
    try:
        return cls(base_model=base_model, **params)
    except TypeError as exc:
        raise ValueError(f"{cls.__name__}: {exc}") from exc
