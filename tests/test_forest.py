"""UpliftRandomForest: the learner contract, effect recovery, criteria, honesty, determinism,
interval coverage, input validation and memory."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from liftwise.learn.binning import apply_bins, compute_bin_edges
from liftwise.learn.forest import UpliftRandomForest

# --------------------------------------------------------------------------- helpers


def simulate(n: int, seed: int, *, binary: bool = True, p: int = 8, nan_share: float = 0.0):
    """Three arms (control, 1, 2) with different effect functions of different features."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n, p))
    t = rng.integers(0, 3, n)
    if binary:
        tau = np.column_stack([0.12 * (X[:, 0] > 0), 0.08 * X[:, 1]])
        base = 0.3 + 0.1 * X[:, 2]
    else:
        tau = np.column_stack([1.0 + np.sin(2.0 * X[:, 0]), 1.5 * X[:, 1] * (X[:, 3] > 0)])
        base = 2.0 * X[:, 2]
    mu = base + np.where(t == 1, tau[:, 0], 0.0) + np.where(t == 2, tau[:, 1], 0.0)
    y = (rng.random(n) < mu).astype(float) if binary else mu + rng.normal(size=n)
    if nan_share:
        X[rng.random(n) < nan_share, 4] = np.nan
    return X, t, y, tau


def qini(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    """Area between the Qini curve and the random line, per unit (0 for a random score)."""
    order = np.argsort(-score, kind="stable")
    y, treated = y[order], treated[order]
    n_t = np.cumsum(treated)
    n_c = np.cumsum(~treated)
    y_t = np.cumsum(y * treated)
    y_c = np.cumsum(y * ~treated)
    curve = y_t - y_c * np.divide(n_t, n_c, out=np.zeros(len(y)), where=n_c > 0)
    random_line = curve[-1] * np.arange(1, len(y) + 1) / len(y)
    return float(np.mean(curve - random_line) / len(y))


@pytest.fixture(scope="module")
def binary_data():
    return simulate(40_000, seed=1), simulate(5_000, seed=2)


@pytest.fixture(scope="module")
def binary_forest(binary_data):
    (X, t, y, _), _ = binary_data
    return UpliftRandomForest(n_estimators=60, random_state=0).fit(X, t, y)


# ------------------------------------------------------------------------- contract


def test_constructor_stores_params_and_clone_round_trips():
    params = dict(
        n_estimators=10,
        criterion="ed",
        max_depth=5,
        min_samples_leaf=30,
        min_samples_treatment=5,
        max_features=0.5,
        n_bins=32,
        subsample=0.3,
        honest=False,
        ci_group_size=2,
        shrinkage=3.0,
        leaf_prior=0.5,
        min_impurity_gain=0.0,
        random_state=7,
        n_jobs=2,
    )
    model = UpliftRandomForest(**params)
    assert model.get_params() == params
    copy = clone(model)
    assert copy.get_params() == params and copy is not model
    # invalid values are stored unchanged and only rejected at fit time
    odd = UpliftRandomForest(n_bins=999, criterion="nope")
    assert odd.n_bins == 999 and odd.criterion == "nope"


def test_fit_returns_self_and_shapes(binary_data, binary_forest):
    (X, t, y, _), (X_test, *_rest) = binary_data
    model = UpliftRandomForest(n_estimators=4, random_state=0)
    assert model.fit(X[:5000], t[:5000], y[:5000]) is model
    effects = binary_forest.predict(X_test)
    outcomes = binary_forest.predict_outcomes(X_test)
    lower, upper = binary_forest.predict_interval(X_test, alpha=0.1)
    assert effects.shape == (len(X_test), 2) and outcomes.shape == (len(X_test), 3)
    np.testing.assert_allclose(effects, outcomes[:, 1:] - outcomes[:, :1])
    assert lower.shape == upper.shape == effects.shape
    assert np.all(lower <= effects) and np.all(effects <= upper) and np.all(upper > lower)
    assert ((outcomes > 0) & (outcomes < 1)).all()
    assert binary_forest.n_arms_ == 3 and binary_forest.criterion_ == "kl"
    assert binary_forest.supports_interval


def test_pickle_round_trip(binary_data, binary_forest):
    _, (X_test, *_rest) = binary_data
    again = pickle.loads(pickle.dumps(binary_forest))
    np.testing.assert_array_equal(again.predict(X_test), binary_forest.predict(X_test))


def test_binning_matches_searchsorted_with_nan_and_infinities():
    rng = np.random.default_rng(0)
    n = 20_000
    X = np.column_stack(
        [
            rng.standard_normal(n),
            rng.integers(0, 3, n).astype(float),  # few distinct values: one bin each
            np.full(n, 2.0),  # constant
            rng.exponential(size=n) ** 3,  # heavy tail
        ]
    )
    X[::7, 0] = np.nan
    X[::11, 1] = np.inf
    X[::13, 3] = -np.inf
    for n_bins in (2, 16, 64, 255):
        edges, n_edges = compute_bin_edges(X, n_bins, max_rows=5_000)
        assert (n_edges <= n_bins - 1).all() and n_edges[2] == 0
        assert n_edges[1] == min(2, n_bins - 1)  # {0, 1, 2, inf}: inf shares the top bin
        codes = apply_bins(X, edges, n_edges, n_bins)
        expected = np.stack(
            [np.searchsorted(edges[f, : n_edges[f]], X[:, f], side="right") for f in range(4)],
            axis=1,
        )
        expected[np.isnan(X)] = n_bins
        np.testing.assert_array_equal(codes, expected)
        assert codes.dtype == np.uint8 and codes.flags.c_contiguous
    # quantile bins hold similar numbers of rows
    counts = np.bincount(codes[:, 0][codes[:, 0] < 255], minlength=int(n_edges[0]) + 1)
    assert counts.min() > 0.3 * counts.mean()


# ------------------------------------------------------------------------- accuracy


def test_recovers_binary_effects_of_two_arms(binary_data, binary_forest):
    _, (X_test, t_test, y_test, tau) = binary_data
    effects = binary_forest.predict(X_test)
    for k in range(2):
        assert np.corrcoef(effects[:, k], tau[:, k])[0, 1] > 0.8, k
    # Qini of each arm on held-out data: well above a random ranking, near the oracle's
    rng = np.random.default_rng(0)
    for k in range(2):
        rows = (t_test == 0) | (t_test == k + 1)
        treated = t_test[rows] == k + 1
        model_q = qini(y_test[rows], treated, effects[rows, k])
        random_q = qini(y_test[rows], treated, rng.random(rows.sum()))
        oracle_q = qini(y_test[rows], treated, tau[rows, k])
        assert model_q > 0.5 * oracle_q > 0, (k, model_q, oracle_q)
        assert model_q > random_q + 0.004, (k, model_q, random_q)
    # gain-based importances point at the effect features (x0, x1), then the base (x2)
    top = np.argsort(binary_forest.feature_importances_)[::-1][:2]
    assert set(top) == {0, 1}
    assert binary_forest.feature_importances_.sum() == pytest.approx(1.0)


def test_recovers_continuous_effects_of_two_arms():
    X, t, y, _ = simulate(30_000, seed=3, binary=False)
    X_test, _, _, tau = simulate(4_000, seed=4, binary=False)
    model = UpliftRandomForest(n_estimators=40, min_samples_leaf=50, random_state=1).fit(X, t, y)
    assert model.criterion_ == "mse" and model.outcome_kind_ == "continuous"
    effects = model.predict(X_test)
    for k in range(2):
        assert np.corrcoef(effects[:, k], tau[:, k])[0, 1] > 0.8, k


def test_missing_values_get_their_own_bin():
    """The effect lives in the missingness of x4: NaN rows must get their own (larger)
    effect, which only works if NaN is split on rather than imputed."""
    rng = np.random.default_rng(5)
    n = 30_000
    X = rng.uniform(-1, 1, size=(n, 4))
    missing = rng.random(n) < 0.3
    X[missing, 2] = np.nan
    t = rng.integers(0, 2, n)
    y = X[:, 0] + t * np.where(missing, 2.0, 0.0) + rng.normal(size=n)
    model = UpliftRandomForest(n_estimators=20, max_features=None, random_state=0).fit(X, t, y)
    effects = model.predict(X)[:, 0]
    assert effects[missing].mean() > 1.5 and abs(effects[~missing].mean()) < 0.3
    assert np.argmax(model.feature_importances_) == 2


# ------------------------------------------------------------------------- criteria


def test_every_criterion_runs_and_they_differ(binary_data):
    (X, t, y, _), (X_test, _, _, tau) = binary_data
    preds = {}
    for criterion in ("kl", "ed", "chi", "ddp", "mse"):
        model = UpliftRandomForest(n_estimators=10, criterion=criterion, random_state=0)
        preds[criterion] = model.fit(X, t, y).predict(X_test)
        assert model.criterion_ == criterion
        # ddp (|difference of effects|, unweighted by child size) peels off small children
        # and is the weakest; the others track the effect closely even with 10 trees
        floor = 0.25 if criterion == "ddp" else 0.6
        for k in range(2):
            assert np.corrcoef(preds[criterion][:, k], tau[:, k])[0, 1] > floor, criterion
    names = list(preds)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.allclose(preds[a], preds[b]), (a, b)
    # the binary-only divergences refuse a continuous outcome; 'auto' picks 'mse' for it
    y_cont = y + np.random.default_rng(0).normal(size=len(y))
    for criterion in ("kl", "ed", "chi"):
        with pytest.raises(ValueError, match="binary"):
            UpliftRandomForest(n_estimators=2, criterion=criterion).fit(X, t, y_cont)
    model = UpliftRandomForest(n_estimators=2, criterion="ddp").fit(X, t, y_cont)
    assert model.criterion_ == "ddp"


def test_honest_and_adaptive_both_work(binary_data):
    (X, t, y, _), (X_test, _, _, tau) = binary_data
    honest = UpliftRandomForest(n_estimators=20, honest=True, random_state=0).fit(X, t, y)
    adaptive = UpliftRandomForest(n_estimators=20, honest=False, random_state=0).fit(X, t, y)
    e_h, e_a = honest.predict(X_test), adaptive.predict(X_test)
    assert not np.allclose(e_h, e_a)
    for effects in (e_h, e_a):
        assert np.corrcoef(effects[:, 0], tau[:, 0])[0, 1] > 0.6
    # adaptive trees see twice the rows per split, so they grow more nodes
    assert adaptive.n_nodes_.mean() > honest.n_nodes_.mean()


def test_deterministic_whatever_the_thread_count(binary_data):
    (X, t, y, _), (X_test, *_rest) = binary_data
    X, t, y = X[:15_000], t[:15_000], y[:15_000]
    kwargs = dict(n_estimators=6, random_state=3)
    a = UpliftRandomForest(**kwargs, n_jobs=1).fit(X, t, y)
    b = UpliftRandomForest(**kwargs, n_jobs=2).fit(X, t, y)
    c = UpliftRandomForest(**kwargs, n_jobs=1).fit(X, t, y)
    np.testing.assert_array_equal(a.predict_outcomes(X_test), b.predict_outcomes(X_test))
    np.testing.assert_array_equal(a.predict_outcomes(X_test), c.predict_outcomes(X_test))
    np.testing.assert_array_equal(a.predict_interval(X_test)[0], b.predict_interval(X_test)[0])
    other = UpliftRandomForest(n_estimators=6, random_state=4).fit(X, t, y)
    assert not np.array_equal(a.predict(X_test), other.predict(X_test))


# ------------------------------------------------------------------------ intervals


def _smooth(n: int, rng: np.random.Generator):
    X = rng.uniform(-1.0, 1.0, size=(n, 5))
    t = rng.integers(0, 2, n)
    tau = 1.0 + 0.5 * X[:, 0]
    return X, t, X[:, 1] + tau * t + rng.normal(size=n), tau


def test_interval_coverage_on_a_smooth_effect():
    """Nominal 90% intervals cover the true conditional effect for most test points, and
    their width matches the estimator's actual error: intervals 5x too narrow (or wide)
    fail both checks."""
    X_test, _, _, tau = _smooth(1_000, np.random.default_rng(99))
    covered, errors, halves = [], [], []
    for rep in range(3):
        X, t, y, _ = _smooth(20_000, np.random.default_rng(rep))
        model = UpliftRandomForest(n_estimators=200, min_samples_leaf=25, random_state=rep)
        model.fit(X, t, y)
        lower, upper = model.predict_interval(X_test, alpha=0.1)
        effect = model.predict(X_test)[:, 0]
        covered.append((lower[:, 0] <= tau) & (tau <= upper[:, 0]))
        errors.append(effect - tau)
        halves.append((upper[:, 0] - lower[:, 0]) / 2)
    coverage = np.mean(covered)
    assert 0.7 <= coverage <= 0.99, coverage
    # root-mean-square error vs the intervals' implied standard error
    ratio = np.sqrt(np.mean(np.square(errors))) / np.sqrt(np.mean(np.square(halves) / 1.645**2))
    assert 0.4 < ratio < 2.0, ratio


def test_interval_variance_tracks_the_sampling_variance():
    """Across independent training sets, the little-bags variance at fixed points is of
    the order of the forest's actual sampling variance (conservative, not 5x off)."""
    X_test, *_rest = _smooth(100, np.random.default_rng(7))
    preds, variances = [], []
    for rep in range(8):
        X, t, y, _ = _smooth(10_000, np.random.default_rng(100 + rep))
        model = UpliftRandomForest(n_estimators=200, min_samples_leaf=25, random_state=rep)
        model.fit(X, t, y)
        preds.append(model.predict(X_test)[:, 0])
        variances.append(model.predict_variance(X_test)[:, 0])
    ratio = np.mean(variances) / np.mean(np.var(preds, axis=0, ddof=1))
    assert 0.5 < ratio < 5.0, ratio


# ---------------------------------------------------------------------- bad inputs


def test_bad_input_raises_value_error(binary_data):
    (X, t, y, _), _ = binary_data
    X, t, y = X[:2000], t[:2000], y[:2000]
    small = dict(n_estimators=2, min_samples_leaf=10)
    cases = [
        (X, t + 1, y, {}),  # no control arm
        (X, np.where(t == 1, 2, t), y, {}),  # arm 1 missing
        (X, t - 1, y, {}),  # negative codes
        (X, t[:-1], y, {}),  # lengths differ
        (X, t, np.where(np.arange(len(y)) == 3, np.nan, y), {}),  # NaN outcome
        (X, t + 0.5, y, {}),  # non-integer arms
        (X, t, y, {"n_bins": 256}),
        (X, t, y, {"n_bins": 1}),
        (X, t, y, {"criterion": "gini"}),
        (X, t, y, {"subsample": 0.7}),  # > 0.5 with little bags
        (X, t, y, {"subsample": 0.0}),
        (X, t, y, {"n_estimators": 3}),  # not a multiple of ci_group_size
        (X, t, y, {"max_features": 0}),
        (X, t, y, {"max_features": 1.5}),
        (X, t, y, {"max_features": "all"}),
        (X, t, y, {"min_samples_leaf": 0}),
        (X, t, y, {"min_samples_leaf": 2000}),  # more than the structure sample
        (X, t, y, {"shrinkage": -1.0}),
        (X, t, y, {"max_depth": -1}),
        (X, t, y, {"n_jobs": 0}),
    ]
    for X_, t_, y_, params in cases:
        with pytest.raises(ValueError):
            UpliftRandomForest(**{**small, **params}).fit(X_, t_, y_)
    with pytest.raises(ValueError):
        UpliftRandomForest(**small).fit(X, t, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(NotFittedError):
        UpliftRandomForest().predict(X)
    model = UpliftRandomForest(**small).fit(X, t, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError):
        model.predict_interval(X, alpha=1.5)
    no_ci = UpliftRandomForest(**small, ci_group_size=1, subsample=0.8).fit(X, t, y)
    with pytest.raises(ValueError, match="ci_group_size"):
        no_ci.predict_interval(X)


def test_sample_weight_changes_the_fit(binary_data):
    (X, t, y, _), (X_test, *_rest) = binary_data
    X, t, y = X[:10_000], t[:10_000], y[:10_000]
    weights = np.where(X[:, 0] > 0, 3.0, 1.0)
    plain = UpliftRandomForest(n_estimators=4, random_state=0).fit(X, t, y)
    ones = UpliftRandomForest(n_estimators=4, random_state=0).fit(X, t, y, np.ones(len(y)))
    weighted = UpliftRandomForest(n_estimators=4, random_state=0).fit(X, t, y, weights)
    np.testing.assert_array_equal(plain.predict(X_test), ones.predict(X_test))
    assert not np.allclose(plain.predict(X_test), weighted.predict(X_test))


# --------------------------------------------------------------------------- memory


def test_memory_stays_within_twice_the_input():
    """Fitting on 200K x 20 float64 (32 MB): the memory fit allocates on top of X (traced
    peak) stays below X's size, so the total stays within 2x, and the fitted model is
    small. (numba's own small per-tree scratch arrays are not traced.)"""
    rng = np.random.default_rng(0)
    n, p = 200_000, 20
    X = rng.normal(size=(n, p))
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.3 + 0.1 * (X[:, 0] > 0) * t).astype(float)
    UpliftRandomForest(n_estimators=2, random_state=0).fit(X[:2000], t[:2000], y[:2000])
    tracemalloc.start()
    try:
        model = UpliftRandomForest(n_estimators=20, random_state=0, n_jobs=2).fit(X, t, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.0 * X.nbytes, peak / X.nbytes
    assert len(pickle.dumps(model)) < 0.05 * X.nbytes
