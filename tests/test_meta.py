"""Meta-learners (S, T, X, DR) on LightGBM / CatBoost: contract, recovery of known
heterogeneous multi-arm effects, propensities, intervals, determinism, no arm folding."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone

from liftwise.learn.base import UpliftLearner
from liftwise.learn.base_models import CATBOOST_DEFAULTS, LIGHTGBM_DEFAULTS, make_base_model
from liftwise.learn.meta import (
    DRLearner,
    SLearner,
    TLearner,
    XLearner,
    cross_fit_propensity,
    make_meta_learner,
)

KINDS = ("s", "t", "x", "dr")
DESIGN = (0.4, 0.3, 0.3)
# One thread in tests: on a shared 2-core machine, 2-thread LightGBM fits slow down 5-20x
# whenever another process is busy (OpenMP threads spin-wait on each other).
SMALL = {"n_estimators": 100, "num_leaves": 15, "n_jobs": 1}
TINY = {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 20, "n_jobs": 1}
TINY_CB = {"iterations": 40, "depth": 4, "thread_count": 1}


def _kw(kind: str, **extra: object) -> dict:
    """Small, fast settings: DR with two folds and few bootstrap fits. DR-only extras are
    dropped for the other kinds."""
    kw: dict = {"params": SMALL, "random_state": 0}
    if kind == "dr":
        kw.update(n_folds=2, n_bootstrap=10)
    else:
        extra = {k: v for k, v in extra.items() if k not in ("n_folds", "n_bootstrap")}
    kw.update(extra)
    return kw


def simulate(n: int, outcome: str, seed: int, design: tuple[float, ...] = DESIGN):
    """Two treatment arms with different smooth heterogeneous effects; returns
    (X, treatment, y, true effects (n, 2))."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 5))
    t = rng.choice(len(design), size=n, p=design)
    rows = np.arange(n)
    if outcome == "continuous":
        mu0 = X[:, 0] + 0.5 * X[:, 1] ** 2
        tau = np.column_stack([1.0 + X[:, 0], 0.5 - X[:, 1] + 0.5 * X[:, 2]])
        arm_mean = mu0[:, None] + np.column_stack([np.zeros(n), tau])
        y = arm_mean[rows, t] + rng.normal(0.0, 1.0, n)
    else:
        logits = (-0.5 + 0.5 * X[:, 0])[:, None] + np.column_stack(
            [np.zeros(n), 0.3 + 0.8 * X[:, 0], 0.2 - 0.8 * X[:, 1]]
        )
        p = expit(logits)
        tau = p[:, 1:] - p[:, :1]
        y = (rng.uniform(size=n) < p[rows, t]).astype(np.float64)
    return X, t, y, tau


@pytest.fixture(scope="module")
def data():
    """Training sets (20K continuous, 30K binary) and a shared 4K test set per outcome."""
    out = {}
    for outcome, n in (("continuous", 20_000), ("binary", 30_000)):
        out[outcome] = (simulate(n, outcome, seed=1), simulate(4_000, outcome, seed=2))
    return out


@pytest.fixture(scope="module")
def fitted(data):
    """Lazily fitted learners keyed by (kind, outcome), shared across tests."""
    cache: dict = {}

    def get(kind: str, outcome: str) -> UpliftLearner:
        if (kind, outcome) not in cache:
            (X, t, y, _), _ = data[outcome]
            cache[kind, outcome] = make_meta_learner(kind, **_kw(kind)).fit(X, t, y)
        return cache[kind, outcome]

    return get


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("kind", KINDS)
def test_contract_basics(kind: str) -> None:
    X, t, y, _ = simulate(2_000, "continuous", seed=3)
    learner = make_meta_learner(kind, params=TINY, random_state=0)
    assert isinstance(learner, UpliftLearner)
    params = learner.get_params()
    assert params["base_model"] == "lightgbm" and params["random_state"] == 0
    copy = clone(learner)
    assert copy.get_params() == params
    assert not hasattr(copy, "n_arms_")  # constructor stores params only
    if kind == "dr":
        learner.set_params(n_folds=2, n_bootstrap=3)
    assert learner.fit(X, t, y) is learner
    tau = learner.predict(X[:50])
    outcomes = learner.predict_outcomes(X[:50])
    assert tau.shape == (50, 2) and outcomes.shape == (50, 3)
    assert np.isfinite(tau).all() and np.isfinite(outcomes).all()
    np.testing.assert_allclose(outcomes[:, 1:] - outcomes[:, :1], tau, atol=1e-10)

    # picklable with joblib, predictions unchanged
    buffer = io.BytesIO()
    joblib.dump(learner, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict(X[:50]), tau)

    # binary outcome -> outcomes are probabilities under every arm (S/T/DR control column)
    yb = (y > np.median(y)).astype(float)
    fitted = clone(learner).fit(X, t, yb)
    assert fitted.outcome_kind_ == "binary"
    probs = fitted.predict_outcomes(X[:50])
    assert probs.shape == (50, 3)
    assert ((probs[:, 0] >= 0) & (probs[:, 0] <= 1)).all()


def test_defaults_are_the_documented_ones() -> None:
    lgb = make_base_model("lightgbm", "regressor", random_state=7).get_params()
    assert lgb["n_estimators"] == 200 and lgb["learning_rate"] == 0.05
    assert lgb["num_leaves"] == 31 and lgb["min_child_samples"] == 50
    assert lgb["n_jobs"] == 1 and lgb["deterministic"] and lgb["random_state"] == 7
    cb = make_base_model("catboost", "classifier", {"depth": 4}, random_state=7).get_params()
    assert cb["iterations"] == 300 and cb["depth"] == 4 and cb["thread_count"] == 1
    assert cb["random_seed"] == 7 and cb["allow_writing_files"] is False
    assert LIGHTGBM_DEFAULTS["n_jobs"] <= 2 and CATBOOST_DEFAULTS["thread_count"] <= 2


# --------------------------------------------------------------------------- recovery

# Minimum correlation of predicted with true per-unit effects, per arm.
MIN_CORR = {
    "continuous": {"s": 0.8, "t": 0.85, "x": 0.85, "dr": 0.85},
    "binary": {"s": 0.7, "t": 0.65, "x": 0.7, "dr": 0.65},
}
# Tolerance on the average effect vs the true mean effect: about 4 standard errors of the
# sample's own noise (seed 1's arm 1 difference in means is already 0.04 low), more for the
# S-learner, whose trees shrink effects toward zero (a known regularisation bias).
ATE_TOL = {
    "continuous": {"s": 0.15, "t": 0.1, "x": 0.1, "dr": 0.1},
    "binary": {"s": 0.025, "t": 0.025, "x": 0.025, "dr": 0.025},
}


@pytest.mark.parametrize("outcome", ["continuous", "binary"])
@pytest.mark.parametrize("kind", KINDS)
def test_recovers_heterogeneous_effects(kind: str, outcome: str, data, fitted) -> None:
    _, (X_test, _, _, tau_test) = data[outcome]
    learner = fitted(kind, outcome)
    pred = learner.predict(X_test)
    for arm in range(2):
        corr = np.corrcoef(pred[:, arm], tau_test[:, arm])[0, 1]
        assert corr > MIN_CORR[outcome][kind], (arm, corr)
        assert abs(pred[:, arm].mean() - tau_test[:, arm].mean()) < ATE_TOL[outcome][kind], arm
    # the arms' effects are different functions: arm 1's prediction tracks arm 1's truth
    assert (
        np.corrcoef(pred[:, 0], tau_test[:, 0])[0, 1]
        > np.corrcoef(pred[:, 0], tau_test[:, 1])[0, 1]
    )


def test_dr_ate_and_its_standard_error(data, fitted) -> None:
    """The AIPW average (``ate_``) agrees with the difference in means on randomised data
    (both estimate the same average; they differ by the regression adjustment) and its
    standard error is the size the sample implies."""
    (_, t, y, _), _ = data["continuous"]
    dr = fitted("dr", "continuous")
    dim = np.array([y[t == a].mean() - y[t == 0].mean() for a in (1, 2)])
    dim_se = np.array(
        [
            np.sqrt(y[t == a].var() / (t == a).sum() + y[t == 0].var() / (t == 0).sum())
            for a in (1, 2)
        ]
    )
    assert ((dr.ate_stderr_ > 0.5 * dim_se) & (dr.ate_stderr_ < 1.5 * dim_se)).all()
    assert (np.abs(dr.ate_ - dim) < 2 * dr.ate_stderr_).all(), (dr.ate_, dim)


def test_catboost_base_model() -> None:
    X, t, y, tau = simulate(4_000, "continuous", seed=4)
    for kind in ("t", "dr"):
        extra = {"n_bootstrap": 2, "n_folds": 2} if kind == "dr" else {}
        learner = make_meta_learner(
            kind, base_model="catboost", params=TINY_CB, random_state=0, **extra
        ).fit(X, t, y)
        assert type(learner.effect_models_[0] if kind == "dr" else learner.models_[0]).__name__ == (
            "CatBoostRegressor"
        )
        pred = learner.predict(X)
        assert pred.shape == (4_000, 2)
        assert np.corrcoef(pred[:, 0], tau[:, 0])[0, 1] > 0.7
    yb = (y > np.median(y)).astype(float)
    s = SLearner(base_model="catboost", params=TINY_CB, random_state=0).fit(X, t, yb)
    assert type(s.model_).__name__ == "CatBoostClassifier"
    probs = s.predict_outcomes(X[:100])
    assert ((probs >= 0) & (probs <= 1)).all()


# --------------------------------------------------------------------------- propensity


def test_estimated_propensity_is_near_design_on_randomised_data(data) -> None:
    (X, t, _, _), _ = data["continuous"]
    e = cross_fit_propensity(X, t, params=SMALL, n_folds=2, random_state=0)
    assert e.shape == (len(t), 3)
    assert ((e >= 0.01) & (e <= 0.99)).all()
    np.testing.assert_allclose(e.mean(axis=0), DESIGN, atol=0.01)
    assert np.abs(e - np.asarray(DESIGN)).mean() < 0.05


@pytest.mark.parametrize("kind", ["x", "dr"])
def test_design_and_estimated_propensity_both_work(kind: str, data, fitted) -> None:
    (X, t, y, _), (X_test, _, _, tau_test) = data["continuous"]
    design = make_meta_learner(kind, **_kw(kind, propensity=list(DESIGN))).fit(X, t, y)
    estimated = fitted(kind, "continuous")
    np.testing.assert_array_equal(design.predict_propensity(X_test[:5]), np.tile(DESIGN, (5, 1)))
    e_hat = estimated.predict_propensity(X_test)
    np.testing.assert_allclose(e_hat.mean(axis=0), DESIGN, atol=0.02)
    for learner in (design, estimated):
        pred = learner.predict(X_test)
        for arm in range(2):
            assert np.corrcoef(pred[:, arm], tau_test[:, arm])[0, 1] > 0.85


def test_dr_uses_propensity_in_observational_data() -> None:
    """Confounded assignment: arm 1 is given mostly to units with high baseline outcome.
    The DR-learner with estimated propensities still recovers the ATE; a naive difference
    in means would be far off."""
    rng = np.random.default_rng(5)
    n = 20_000
    X = rng.uniform(-1, 1, (n, 3))
    p1 = expit(2.0 * X[:, 0])
    t = (rng.uniform(size=n) < p1).astype(int)
    tau = 0.5 + 0.5 * X[:, 1]
    y = 2.0 * X[:, 0] + t * tau + rng.normal(0, 1, n)
    naive = y[t == 1].mean() - y[t == 0].mean()
    assert abs(naive - tau.mean()) > 0.8
    dr = DRLearner(params=SMALL, n_folds=2, n_bootstrap=0, random_state=0).fit(X, t, y)
    assert abs(dr.ate_[0] - tau.mean()) < 0.1
    assert abs(dr.predict(X)[:, 0].mean() - tau.mean()) < 0.1


# --------------------------------------------------------------------------- intervals


def test_dr_intervals_cover_the_true_effect(data, fitted) -> None:
    _, (X_test, _, _, tau_test) = data["continuous"]
    dr = fitted("dr", "continuous")
    assert dr.supports_interval
    lower, upper = dr.predict_interval(X_test, alpha=0.1)
    point = dr.predict(X_test)
    assert lower.shape == upper.shape == (len(X_test), 2)
    assert (lower <= point).all() and (point <= upper).all()
    width = upper - lower
    assert (width > 0).all()
    # not uninformative: much narrower than the spread of the true effects
    assert (width.mean(axis=0) < 2 * tau_test.std(axis=0)).all()
    coverage = ((lower <= tau_test) & (tau_test <= upper)).mean(axis=0)
    assert ((coverage > 0.7) & (coverage < 0.99)).all(), coverage
    # a smaller confidence level gives narrower intervals
    lo50, hi50 = dr.predict_interval(X_test, alpha=0.5)
    assert ((hi50 - lo50) < width).all()


def test_dr_intervals_binary_outcome(data, fitted) -> None:
    _, (X_test, _, _, tau_test) = data["binary"]
    lower, upper = fitted("dr", "binary").predict_interval(X_test, alpha=0.1)
    coverage = ((lower <= tau_test) & (tau_test <= upper)).mean(axis=0)
    assert ((upper - lower) > 0).all()
    assert ((coverage > 0.6) & (coverage < 0.995)).all(), coverage


def test_learners_without_intervals_say_so() -> None:
    X, t, y, _ = simulate(1_000, "continuous", seed=6)
    t_learner = TLearner(params=TINY, random_state=0).fit(X, t, y)
    assert not t_learner.supports_interval
    with pytest.raises(NotImplementedError):
        t_learner.predict_interval(X)
    dr = DRLearner(params=TINY, n_folds=2, n_bootstrap=0, random_state=0).fit(X, t, y)
    assert not dr.supports_interval
    with pytest.raises(ValueError, match="n_bootstrap"):
        dr.predict_interval(X)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("kind", KINDS)
def test_fixed_random_state_is_deterministic(kind: str) -> None:
    X, t, y, _ = simulate(3_000, "continuous", seed=7)
    kw = {"params": TINY, "random_state": 3}
    if kind == "dr":
        kw.update(n_folds=2, n_bootstrap=3)
    a = make_meta_learner(kind, **kw).fit(X, t, y)
    b = make_meta_learner(kind, **kw).fit(X, t, y)
    np.testing.assert_array_equal(a.predict_outcomes(X), b.predict_outcomes(X))
    if kind == "dr":
        np.testing.assert_array_equal(a.predict_interval(X)[0], b.predict_interval(X)[0])
        other = make_meta_learner(kind, **{**kw, "random_state": 4}).fit(X, t, y)
        assert not np.array_equal(a.predict(X), other.predict(X))


def test_catboost_is_deterministic() -> None:
    X, t, y, _ = simulate(2_000, "continuous", seed=8)
    kw = {"base_model": "catboost", "params": TINY_CB, "random_state": 1}
    a = XLearner(**kw).fit(X, t, y).predict(X)
    b = XLearner(**kw).fit(X, t, y).predict(X)
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- arms


@pytest.mark.parametrize("kind", KINDS)
def test_arms_are_never_folded(kind: str) -> None:
    """Arm 2's effect is large, arm 1's is zero: arm 1 must stay near zero."""
    rng = np.random.default_rng(9)
    n = 12_000
    X = rng.uniform(-1, 1, (n, 4))
    t = rng.choice(3, size=n)
    y = X[:, 0] + 3.0 * (t == 2) + rng.normal(0, 1, n)
    learner = make_meta_learner(kind, **_kw(kind, n_bootstrap=0)).fit(X, t, y)
    ate = learner.predict(X).mean(axis=0)
    assert abs(ate[0]) < 0.1, ate
    assert abs(ate[1] - 3.0) < 0.15, ate


def test_sample_weight_is_passed_through() -> None:
    """Zero-weight rows with a wild outcome must not move the estimate."""
    X, t, y, tau = simulate(6_000, "continuous", seed=10)
    y = y.copy()
    w = np.ones_like(y)
    bad = (t == 1) & (np.arange(len(y)) % 10 == 0)
    y[bad] += 50.0
    w[bad] = 0.0
    for kind in KINDS:
        kw = _kw(kind, n_bootstrap=0)
        weighted = make_meta_learner(kind, **kw).fit(X, t, y, sample_weight=w)
        unweighted = make_meta_learner(kind, **kw).fit(X, t, y)
        err_w = abs(weighted.predict(X)[:, 0].mean() - tau[:, 0].mean())
        err_u = abs(unweighted.predict(X)[:, 0].mean() - tau[:, 0].mean())
        assert err_w < 0.2 < 2.0 < err_u, (kind, err_w, err_u)


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_value_error() -> None:
    X, t, y, _ = simulate(500, "continuous", seed=11)
    with pytest.raises(ValueError, match="kind"):
        make_meta_learner("z")
    with pytest.raises(ValueError, match="base_model"):
        make_meta_learner("t", base_model="xgboost")
    with pytest.raises(ValueError):
        make_meta_learner("s", propensity=[0.5, 0.5])  # S takes no propensity
    with pytest.raises(ValueError, match="base_model"):
        TLearner(base_model="xgboost").fit(X, t, y)
    with pytest.raises(ValueError, match="params"):
        TLearner(params=[1, 2]).fit(X, t, y)
    with pytest.raises(ValueError, match="missing codes"):
        TLearner(params=TINY).fit(X, np.where(t == 1, 2, t), y)  # arm 1 absent
    with pytest.raises(ValueError):
        SLearner(params=TINY).fit(X, t[:-1], y)
    with pytest.raises(ValueError, match="one probability per arm"):
        DRLearner(params=TINY, propensity=[0.5, 0.5]).fit(X, t, y)
    with pytest.raises(ValueError, match="sum to 1"):
        XLearner(params=TINY, propensity=[0.5, 0.3, 0.3]).fit(X, t, y)
    with pytest.raises(ValueError, match="propensity"):
        DRLearner(params=TINY, propensity="design").fit(X, t, y)
    with pytest.raises(ValueError, match="n_folds"):
        DRLearner(params=TINY, n_folds=1).fit(X, t, y)
    with pytest.raises(ValueError, match="n_bootstrap"):
        DRLearner(params=TINY, n_bootstrap=1).fit(X, t, y)
    with pytest.raises(ValueError, match="at least 3 per arm"):
        DRLearner(params=TINY).fit(X[:6], np.array([0, 0, 0, 0, 1, 1]), y[:6])
    dr = DRLearner(params=TINY, n_folds=2, n_bootstrap=2, random_state=0).fit(X, t, y)
    with pytest.raises(ValueError, match="features"):
        dr.predict(X[:, :3])
    with pytest.raises(ValueError, match="alpha"):
        dr.predict_interval(X, alpha=1.5)


# --------------------------------------------------------------------------- reference


def test_ate_agrees_with_causalml(data, fitted) -> None:
    """Sanity reference: causalml's T- and X-regressors on the same LightGBM settings."""
    meta = pytest.importorskip("causalml.inference.meta")
    import lightgbm as lgb

    (X, t, y, _), _ = data["continuous"]
    arms = np.array(["control", "a1", "a2"])[t]

    def base() -> lgb.LGBMRegressor:
        return make_base_model("lightgbm", "regressor", SMALL, random_state=0)

    reference_t = meta.BaseTRegressor(learner=base(), control_name="control")
    ref_t = np.asarray(reference_t.estimate_ate(X, treatment=arms, y=y)[0]).reshape(-1)
    reference_x = meta.BaseXRegressor(learner=base(), control_name="control")
    # causalml's X-learner takes the propensity within {control, arm}: 0.3 / (0.3 + 0.4)
    pair = {name: np.full(len(y), 0.3 / 0.7) for name in ("a1", "a2")}
    ref_x = np.asarray(reference_x.estimate_ate(X, treatment=arms, y=y, p=pair)[0]).reshape(-1)
    # causalml orders treatment groups alphabetically: a1, a2 -> arms 1, 2
    ours_t = fitted("t", "continuous").predict(X).mean(axis=0)
    ours_x = fitted("x", "continuous").predict(X).mean(axis=0)
    np.testing.assert_allclose(ours_t, ref_t, atol=0.05)
    np.testing.assert_allclose(ours_x, ref_x, atol=0.05)
