"""Uplift metrics: parity with scikit-uplift and causalml, deterministic ties, profit by
brute force, the multi-arm IPW policy estimator by simulation, bootstrap intervals.

scikit-uplift and causalml are test-only references. ``sklift.metrics`` imports as is with
scikit-learn 1.9 (only ``sklift.viz`` needs ``sklearn.utils.check_matplotlib_support``,
which moved); ``stable_cumsum`` is deprecated there, so its FutureWarning is silenced
and, once scikit-learn removes it, re-created below for the reference only.
"""

from __future__ import annotations

from functools import partial
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import auc as sklearn_auc

from liftwise.errors import ParameterError, UserError
from liftwise.evaluate import (
    auuc,
    bootstrap,
    bootstrap_ci,
    max_profit,
    metric_with_ci,
    perfect_qini_curve,
    perfect_uplift_curve,
    policy_max_profit,
    policy_profit_at_k,
    policy_profit_curve,
    profit_at_k,
    profit_curve,
    qini_coefficient,
    qini_curve,
    resample_indices,
    roi,
    uplift_at_k,
    uplift_curve,
)

TOL = {"rtol": 1e-9, "atol": 1e-9}  # assert_allclose
APPROX = {"rel": 1e-9, "abs": 1e-9}  # pytest.approx


# ------------------------------------------------------------------------ references


pytestmark = [
    pytest.mark.filterwarnings("ignore:.*stable_cumsum:FutureWarning"),  # scikit-uplift
    pytest.mark.filterwarnings("ignore:The set_:PendingDeprecationWarning"),  # causalml's shap
]


@pytest.fixture(scope="module")
def sk() -> ModuleType:
    """``sklift.metrics.metrics``, with a test-only shim if scikit-learn drops stable_cumsum."""
    import sklearn.utils.extmath as extmath

    if not hasattr(extmath, "stable_cumsum"):  # removed in scikit-learn 1.10
        extmath.stable_cumsum = lambda arr, **_: np.cumsum(arr, dtype=np.float64)
    from sklift.metrics import metrics

    return metrics


def allow_continuous(sk: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lift scikit-uplift's binary-outcome check: its curve arithmetic is the same for a
    continuous outcome, so it stays the reference there (treatment is always 0/1)."""
    monkeypatch.setattr(sk, "check_is_binary", lambda array: None)


@pytest.fixture(scope="module")
def causalml() -> ModuleType:
    from causalml.metrics import visualize

    return visualize


def make_data(
    seed: int,
    n: int = 400,
    *,
    binary: bool = True,
    arms: int = 1,
    ties: bool = False,
    top_run: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, treatment, score) with some real uplift; ``top_run`` puts that many treated
    units at the top of the ranking (the start where control is still empty)."""
    rng = np.random.default_rng(seed)
    treatment = rng.integers(0, arms + 1, n)
    x = rng.normal(size=n)
    effect = (0.08 + 0.15 * np.tanh(x)) * (treatment > 0)
    if binary:
        y = (rng.random(n) < 0.3 + effect).astype(np.float64)
    else:
        y = np.round(rng.gamma(2.0, 10.0, n) * (1 + effect) - 5.0 * (treatment == 2), 3)
    score = x + rng.normal(scale=0.5, size=n)
    if ties:
        score = np.round(score, 1)
    if top_run:
        treated = np.flatnonzero(treatment > 0)[:top_run]
        score[treated] = 10.0 + np.arange(top_run)
    return y, treatment, score


def arm_subset(
    y: np.ndarray, treatment: np.ndarray, score: np.ndarray, arm: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a binary reference sees for ``arm``: the {0, arm} units, treatment as 0/1."""
    keep = (treatment == 0) | (treatment == arm)
    return y[keep], (treatment[keep] == arm).astype(int), score[keep]


def frame(y: np.ndarray, treatment: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"y": y, "w": treatment, "model": score})


# -------------------------------------------------------------- scikit-uplift parity


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("ties", [False, True])
def test_curves_match_sklift(
    sk: ModuleType, monkeypatch: pytest.MonkeyPatch, binary: bool, ties: bool
) -> None:
    if not binary:
        allow_continuous(sk, monkeypatch)
    # scikit-uplift also puts points only at tie-group ends, so ties agree too.
    y, t, s = make_data(1, binary=binary, ties=ties, top_run=4)
    for ours, theirs in [(uplift_curve, sk.uplift_curve), (qini_curve, sk.qini_curve)]:
        curve = ours(y, t, s)
        x_ref, y_ref = theirs(y, s, t)
        np.testing.assert_array_equal(curve.x, x_ref)
        np.testing.assert_allclose(curve.y, y_ref, **TOL)


@pytest.mark.parametrize("ties", [False, True])
def test_auuc_and_qini_match_sklift(sk: ModuleType, ties: bool) -> None:
    y, t, s = make_data(2, ties=ties, top_run=3)
    assert auuc(y, t, s, normalize="sklift") == pytest.approx(
        sk.uplift_auc_score(y, s, t), **APPROX
    )
    for negative_effect in (True, False):
        assert qini_coefficient(
            y, t, s, normalize="sklift", negative_effect=negative_effect
        ) == pytest.approx(sk.qini_auc_score(y, s, t, negative_effect=negative_effect), **APPROX)
    # None: the raw areas of the very curves scikit-uplift draws.
    assert auuc(y, t, s, normalize=None) == pytest.approx(
        sklearn_auc(*sk.uplift_curve(y, s, t)), **APPROX
    )
    x_q, y_q = sk.qini_curve(y, s, t)
    raw_qini = sklearn_auc(x_q, y_q) - x_q[-1] * y_q[-1] / 2
    assert qini_coefficient(y, t, s, normalize=None) == pytest.approx(raw_qini, **APPROX)


def test_continuous_qini_matches_sklift(sk: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    allow_continuous(sk, monkeypatch)
    y, t, s = make_data(3, binary=False)
    assert qini_coefficient(y, t, s) == pytest.approx(sk.qini_auc_score(y, s, t), **APPROX)
    # Without negative effects the perfect curve's x reaches Q(n), an outcome total:
    # meaningless for spend; scikit-uplift's auc fails on it, we say why.
    with pytest.raises(ValueError, match="negative_effect=False"):
        qini_coefficient(y, t, s, negative_effect=False)


def test_perfect_curves_match_sklift(sk: ModuleType) -> None:
    for seed in range(3):  # both branches of the perfect-uplift ordering
        y, t, _ = make_data(seed, n=300)
        if seed == 1:  # more control responders than treated non-responders
            y, t = 1 - y, 1 - t
        curve = perfect_uplift_curve(y, t)
        x_ref, y_ref = sk.perfect_uplift_curve(y, t)
        np.testing.assert_array_equal(curve.x, x_ref)
        np.testing.assert_allclose(curve.y, y_ref, **TOL)
        for negative_effect in (True, False):
            curve = perfect_qini_curve(y, t, negative_effect=negative_effect)
            x_ref, y_ref = sk.perfect_qini_curve(y, t, negative_effect=negative_effect)
            np.testing.assert_allclose(curve.x, x_ref, **TOL)
            np.testing.assert_allclose(curve.y, y_ref, **TOL)


def test_perfect_qini_without_negative_effects_needs_a_positive_gain(sk: ModuleType) -> None:
    y, t, s = make_data(20)
    y = 1 - y  # the treatment now lowers the outcome: Q(n) < 0
    with pytest.raises(ValueError, match="negative_effect=False"):
        qini_coefficient(y, t, s, negative_effect=False)
    with pytest.raises(ValueError):  # scikit-uplift's auc fails on the reversed x
        sk.qini_auc_score(y, s, t, negative_effect=False)


def test_oracle_ranking_scores_one_under_sklift_normalisation() -> None:
    y, t, _ = make_data(4)
    oracle = 2.0 * (y == t) + t  # scikit-uplift's perfect ordering
    assert auuc(y, t, oracle) == pytest.approx(1.0, abs=1e-12)
    y_c, t_c, _ = make_data(4, binary=False)  # continuous: liftwise's documented extension
    assert auuc(y_c, t_c, np.where(t_c == 1, y_c, -y_c)) == pytest.approx(1.0, abs=1e-12)
    assert qini_coefficient(y_c, t_c, np.where(t_c == 1, y_c, -y_c)) == pytest.approx(1.0)


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("strategy", ["overall", "by_group"])
@pytest.mark.parametrize("k", [0.2, 0.5, 0.9, 37, 150])
def test_uplift_at_k_matches_sklift(
    sk: ModuleType, monkeypatch: pytest.MonkeyPatch, binary: bool, strategy: str, k: float
) -> None:
    if not binary:
        allow_continuous(sk, monkeypatch)
    y, t, s = make_data(5, binary=binary)
    assert uplift_at_k(y, t, s, k, strategy=strategy) == pytest.approx(
        sk.uplift_at_k(y, s, t, strategy=strategy, k=k), **APPROX
    )


# -------------------------------------------------------------------- causalml parity


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("top_run", [0, 5])
def test_matches_causalml(causalml: ModuleType, binary: bool, top_run: int) -> None:
    # top_run exercises causalml's straight-line fill where control is still empty.
    y, t, s = make_data(6, n=300, binary=binary, top_run=top_run)
    df = frame(y, t, s)
    assert auuc(y, t, s, normalize="causalml") == pytest.approx(
        causalml.auuc_score(df)["model"], **APPROX
    )
    assert qini_coefficient(y, t, s, normalize="causalml") == pytest.approx(
        causalml.qini_score(df)["model"], **APPROX
    )
    gain = causalml.get_cumgain(df)["model"].to_numpy()
    qini = causalml.get_qini(df)["model"].to_numpy()
    np.testing.assert_allclose(uplift_curve(y, t, s, convention="causalml").y, gain, **TOL)
    np.testing.assert_allclose(qini_curve(y, t, s, convention="causalml").y, qini, **TOL)
    # After the top run the conventions agree: one curve, two normalisations.
    tail = slice(top_run + 10, None)
    np.testing.assert_allclose(uplift_curve(y, t, s).y[tail], gain[tail], **TOL)


# ------------------------------------------------------------------------- multi-arm


def test_per_arm_metrics_ignore_other_arms(
    sk: ModuleType, causalml: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_continuous(sk, monkeypatch)
    y, t, s = make_data(7, n=600, binary=False, arms=3)
    for arm in (1, 2, 3):
        ys, ts, ss = arm_subset(y, t, s, arm)
        np.testing.assert_allclose(
            uplift_curve(y, t, s, arm=arm).y, sk.uplift_curve(ys, ss, ts)[1], **TOL
        )
        np.testing.assert_allclose(
            qini_curve(y, t, s, arm=arm).y, sk.qini_curve(ys, ss, ts)[1], **TOL
        )
        assert qini_coefficient(y, t, s, arm=arm) == pytest.approx(
            sk.qini_auc_score(ys, ss, ts), **APPROX
        )
        assert uplift_at_k(y, t, s, 0.3, arm=arm) == pytest.approx(
            sk.uplift_at_k(ys, ss, ts, strategy="overall", k=0.3), **APPROX
        )
        df = frame(ys, ts, ss)
        assert auuc(y, t, s, arm=arm, normalize="causalml") == pytest.approx(
            causalml.auuc_score(df)["model"], **APPROX
        )
        assert qini_coefficient(y, t, s, arm=arm, normalize="causalml") == pytest.approx(
            causalml.qini_score(df)["model"], **APPROX
        )
    # Changing another arm's units changes nothing for arm 1.
    other = t == 2
    y2, s2 = y.copy(), s.copy()
    y2[other], s2[other] = 1e6, -1e6
    assert auuc(y2, t, s2, arm=1) == auuc(y, t, s, arm=1)


def test_score_matrix_uses_the_arm_column() -> None:
    y, t, s = make_data(8, arms=2)
    matrix = np.column_stack([s, -s])
    assert auuc(y, t, matrix, arm=2) == auuc(y, t, -s, arm=2)
    assert auuc(y, t, matrix, arm=1) == auuc(y, t, s, arm=1)


# ------------------------------------------------------------------------------ ties


def test_row_order_never_changes_a_result() -> None:
    """Tied scores form one group; only the ranking of groups matters, not row order."""
    y, t, s = make_data(9, n=500, binary=False, arms=2, ties=True)
    conversion = (y > 20).astype(float)
    s = np.round(s)  # about 8 big tie groups
    scores = np.round(np.column_stack([s, 0.5 * s + 1]), 0)
    costs = {"value_per_outcome": 1.0, "contact_cost": 2.0, "redemption_cost": 5.0}

    def everything(perm: np.ndarray) -> list[np.ndarray | float]:
        yy, tt, ss, cc, mm = y[perm], t[perm], s[perm], conversion[perm], scores[perm]
        out: list[np.ndarray | float] = []
        for arm in (1, 2):
            for convention in ("sklift", "causalml"):
                out += [uplift_curve(yy, tt, ss, arm, convention=convention).y]
                out += [qini_curve(yy, tt, ss, arm, convention=convention).y]
            for normalize in ("sklift", "causalml", None):
                out += [
                    auuc(yy, tt, ss, arm, normalize),
                    qini_coefficient(yy, tt, ss, arm, normalize),
                ]
            for k in (0.1, 0.33, 77):
                for strategy in ("overall", "by_group"):
                    out.append(uplift_at_k(yy, tt, ss, k, arm, strategy))
                out.append(profit_at_k(yy, tt, ss, k, arm=arm, conversion=cc, **costs))
            out.append(profit_curve(yy, tt, ss, arm=arm, conversion=cc, **costs).y)
        policy = {"propensity": [1 / 3] * 3, "conversion": cc, **costs}
        out.append(policy_profit_curve(yy, tt, mm, **policy).y)
        out.append(policy_profit_at_k(yy, tt, mm, 0.4, **policy))
        return out

    rng = np.random.default_rng(0)
    reference = everything(np.arange(len(y)))
    for _ in range(3):
        for ours, ref in zip(everything(rng.permutation(len(y))), reference, strict=True):
            np.testing.assert_allclose(ours, ref, **TOL)


def test_curve_points_are_tie_group_ends() -> None:
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=float)
    t = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    s = np.array([3, 3, 3, 2, 2, 1, 1, 1], dtype=float)
    curve = uplift_curve(y, t, s)
    np.testing.assert_array_equal(curve.x, [0, 3, 5, 8])
    # Top 3 (one group): treated 1/2, control 1/1 -> (0.5 - 1) * 3.
    assert curve.y[1] == pytest.approx(-1.5)


def test_inside_a_tie_group_each_unit_counts_as_the_group_average() -> None:
    y, t, _ = make_data(10, binary=False)
    conversion = (y > 15).astype(float)
    s = np.zeros(len(y))  # one group: every k sees the whole sample's means
    ate = y[t == 1].mean() - y[t == 0].mean()
    for k in (1, 10, 0.5, 399):
        assert uplift_at_k(y, t, s, k) == pytest.approx(ate, **APPROX)
        count = k if isinstance(k, int) else int(k * len(y))
        expected = count * (2.0 * ate - 1.0 - 3.0 * conversion[t == 1].mean())
        got = profit_at_k(
            y,
            t,
            s,
            k,
            value_per_outcome=2.0,
            contact_cost=1.0,
            redemption_cost=3.0,
            conversion=conversion,
        )
        assert got == pytest.approx(expected, **APPROX)


# ---------------------------------------------------------------------------- profit


def brute_force_profit(
    y: np.ndarray,
    t: np.ndarray,
    s: np.ndarray,
    conversion: np.ndarray,
    value: float,
    contact: float,
    redemption: float,
) -> tuple[np.ndarray, np.ndarray]:
    """profit(k) and cost(k) for every k by explicit subsetting (no ties in s)."""
    order = np.argsort(-s)
    profits, costs = [0.0], [0.0]
    for k in range(1, len(y) + 1):
        top = order[:k]
        treated, control = top[t[top] == 1], top[t[top] == 0]
        r_t = y[treated].mean() if treated.size else 0.0
        r_c = y[control].mean() if control.size else 0.0
        c_t = conversion[treated].mean() if treated.size else 0.0
        costs.append(k * (contact + redemption * c_t))
        profits.append(k * value * (r_t - r_c) - costs[-1])
    return np.array(profits), np.array(costs)


@pytest.mark.parametrize("binary", [True, False])
def test_profit_curve_equals_brute_force(binary: bool) -> None:
    y, t, s = make_data(11, n=250, binary=binary, top_run=3)
    conversion = y if binary else (y > 18).astype(float)
    value, contact, redemption = (40.0, 1.5, 6.0) if binary else (1.0, 1.5, 6.0)
    costs = {"value_per_outcome": value, "contact_cost": contact, "redemption_cost": redemption}
    kwargs = costs if binary else {**costs, "conversion": conversion}
    expected, cost = brute_force_profit(y, t, s, conversion, value, contact, redemption)

    curve = profit_curve(y, t, s, **kwargs)
    np.testing.assert_array_equal(curve.x, np.arange(len(y) + 1))
    np.testing.assert_allclose(curve.y, expected, **TOL)
    for k, count in [(17, 17), (0.4, 100), (1.0, 250)]:
        assert profit_at_k(y, t, s, k, **kwargs) == pytest.approx(expected[count], **APPROX)
        assert roi(y, t, s, k, **kwargs) == pytest.approx(expected[count] / cost[count], **APPROX)
    k_best, best = max_profit(y, t, s, **kwargs)
    assert k_best == int(np.argmax(expected))
    assert best == pytest.approx(expected.max(), **APPROX)
    assert 0 < k_best < len(y)  # an interior optimum, so the test can tell


def test_profit_without_costs_is_value_times_uplift_and_losses_pick_nobody() -> None:
    y, t, s = make_data(12)
    curve = profit_curve(y, t, s, value_per_outcome=3.0, contact_cost=0.0, redemption_cost=0.0)
    np.testing.assert_allclose(curve.y, 3.0 * uplift_curve(y, t, s).y, **TOL)
    assert max_profit(y, t, s, value_per_outcome=1.0, contact_cost=10.0, redemption_cost=0.0) == (
        0,
        0.0,
    )


# ------------------------------------------------------------ multi-arm IPW estimator


def policy_world(seed: int, n: int, arms: int = 2) -> dict[str, np.ndarray]:
    """Fixed units with known potential outcomes Y(0..K) and a noisy model's scores."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    base = 0.2 + 0.1 * np.tanh(x[:, 0])
    effects = np.column_stack([0.15 * np.tanh(x[:, 0] + a * x[:, 1]) for a in range(arms)])
    p_outcome = np.column_stack([base, np.clip(base[:, None] + effects, 0, 1)])
    u = rng.random(n)[:, None]  # common random numbers across arms
    potential = (u < p_outcome).astype(float)  # (n, K + 1)
    scores = effects + rng.normal(scale=0.05, size=effects.shape)
    logits = np.column_stack([np.zeros(n), 0.5 * x[:, :1] * np.arange(1, arms + 1)])
    per_unit = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return {"potential": potential, "scores": scores, "per_unit": per_unit}


POLICY_COSTS = {
    "value_per_outcome": 30.0,
    "contact_cost": np.array([0.5, 1.0]),
    "redemption_cost": np.array([2.0, 4.0]),
}


def true_policy_profit(world: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit true incremental profit of each unit's best arm, in ranking order, and the
    ranking (descending best score)."""
    scores, potential = world["scores"], world["potential"]
    best = np.argmax(scores, axis=1) + 1
    rows = np.arange(len(best))
    y_arm = potential[rows, best]
    value, contact, redemption = POLICY_COSTS.values()
    gain = value * (y_arm - potential[:, 0]) - contact[best - 1] - redemption[best - 1] * y_arm
    order = np.argsort(-scores.max(axis=1))
    return gain[order], order


def assign(rng: np.random.Generator, propensity: np.ndarray) -> np.ndarray:
    """One draw of each unit's arm from its design probabilities (n, K + 1)."""
    cumulative = np.cumsum(propensity, axis=1)
    return (rng.random((len(propensity), 1)) > cumulative[:, :-1]).sum(axis=1)


@pytest.mark.parametrize("design", ["vector", "per_unit"])
def test_policy_ipw_estimator_is_unbiased(design: str) -> None:
    world = policy_world(13, n=1000)
    true_gain, _ = true_policy_profit(world)
    truth = np.r_[0.0, np.cumsum(true_gain)]
    n = len(true_gain)
    vector = np.array([0.4, 0.35, 0.25])
    propensity = np.broadcast_to(vector, (n, 3)) if design == "vector" else world["per_unit"]
    rng = np.random.default_rng(0)
    estimates, naive = [], []
    for _ in range(1000):
        t = assign(rng, propensity)
        y = world["potential"][np.arange(n), t]
        p = vector if design == "vector" else propensity
        estimates.append(policy_profit_curve(y, t, world["scores"], propensity=p, **POLICY_COSTS).y)
        naive.append(
            policy_profit_at_k(y, t, world["scores"], n, propensity=[1 / 3] * 3, **POLICY_COSTS)
        )
    estimates = np.array(estimates)
    ks = [100, 400, 1000]
    mc_se = estimates[:, ks].std(axis=0, ddof=1) / np.sqrt(len(estimates))
    assert np.all(np.abs(estimates[:, ks].mean(axis=0) - truth[ks]) < 4 * mc_se)
    # The check has power: wrong design probabilities are off by far more.
    assert abs(np.mean(naive) - truth[n]) > 10 * mc_se[-1]


def test_policy_ipw_single_large_sample_within_standard_errors() -> None:
    world = policy_world(14, n=200_000)
    true_gain, order = true_policy_profit(world)
    n = len(true_gain)
    p = np.array([0.5, 0.25, 0.25])
    t = assign(np.random.default_rng(1), np.broadcast_to(p, (n, 3)))
    y = world["potential"][np.arange(n), t]
    curve = policy_profit_curve(y, t, world["scores"], propensity=p, **POLICY_COSTS)

    # Exact variance of each unit's Horvitz-Thompson term over its random arm.
    best = np.argmax(world["scores"], axis=1) + 1
    rows = np.arange(n)
    value, _, redemption = POLICY_COSTS.values()
    y_arm, y_0 = world["potential"][rows, best], world["potential"][:, 0]
    p_arm = p[best]
    term_arm = (value - redemption[best - 1]) * y_arm / p_arm
    term_control = -value * y_0 / p[0]
    mean = p_arm * term_arm + p[0] * term_control
    second = p_arm * term_arm**2 + p[0] * term_control**2
    variance = (second - mean**2)[order]
    for k in (n // 10, n // 2, n):
        se = np.sqrt(variance[:k].sum())
        assert abs(curve.y[k] - true_gain[:k].sum()) < 4 * se
    k_best, best_profit = policy_max_profit(y, t, world["scores"], propensity=p, **POLICY_COSTS)
    assert best_profit == curve.y.max() and curve.y[k_best] == best_profit
    assert policy_profit_at_k(y, t, world["scores"], k_best, propensity=p, **POLICY_COSTS) == (
        pytest.approx(best_profit, **APPROX)
    )


# ------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_and_batch_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    y, t, s = make_data(15)
    metric = partial(auuc, normalize="causalml")
    first = bootstrap_ci(metric, y, t, s, n_boot=50, seed=3, stratify=t)
    assert bootstrap_ci(metric, y, t, s, n_boot=50, seed=3, stratify=t) == first
    assert bootstrap_ci(metric, y, t, s, n_boot=50, seed=4, stratify=t) != first
    monkeypatch.setattr(bootstrap, "_BATCH_CELLS", 3 * len(y) + 1)  # 3 rows per batch
    assert bootstrap_ci(metric, y, t, s, n_boot=50, seed=3, stratify=t) == first
    assert first.low < first.estimate < first.high and first.se > 0


def test_stratified_resamples_keep_every_arm_size() -> None:
    _, t, _ = make_data(16, n=301, arms=3)
    indices = resample_indices(len(t), n_boot=40, seed=0, stratify=t)
    assert indices.shape == (40, 301)
    sizes = np.bincount(t)
    assert all(np.array_equal(np.bincount(t[row], minlength=4), sizes) for row in indices)
    assert len(np.unique(indices[0])) < 301  # with replacement
    plain = resample_indices(len(t), n_boot=40, seed=0)
    assert any(not np.array_equal(np.bincount(t[row], minlength=4), sizes) for row in plain)


def difference_in_means(y: np.ndarray, treatment: np.ndarray) -> float:
    return float(y[treatment == 1].mean() - y[treatment == 0].mean())


def test_bootstrap_interval_covers_the_truth() -> None:
    rng = np.random.default_rng(17)
    t = np.r_[np.ones(200, int), np.zeros(200, int)]
    covered, reps = 0, 200
    for rep in range(reps):
        y = (rng.random(len(t)) < 0.3 + 0.1 * t).astype(float)  # true effect 0.1
        interval = bootstrap_ci(difference_in_means, y, t, n_boot=200, seed=rep, stratify=t)
        covered += interval.low <= 0.1 <= interval.high
    assert 0.89 <= covered / reps <= 0.99


def test_metric_with_ci_by_name() -> None:
    y, t, s = make_data(18, binary=False)
    conversion = (y > 20).astype(float)
    got = metric_with_ci("qini_coefficient", y, t, s, n_boot=30, normalize="causalml")
    expected = bootstrap_ci(
        partial(qini_coefficient, normalize="causalml"), y, t, s, n_boot=30, stratify=t
    )
    assert got == expected
    costs = {"value_per_outcome": 1.0, "contact_cost": 1.0, "redemption_cost": 2.0}
    got = metric_with_ci("max_profit", y, t, s, n_boot=30, conversion=conversion, **costs)
    assert got.estimate == max_profit(y, t, s, conversion=conversion, **costs)[1]
    assert got.low <= got.high


# ------------------------------------------------------------------------ bad inputs


Y, T, S = make_data(19, n=50)
COSTS = {"value_per_outcome": 1.0, "contact_cost": 0.1, "redemption_cost": 0.0}


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: auuc(Y, T[:-1], S), "treatment"),
        (lambda: auuc(Y, T, S[:-1]), "score"),
        (lambda: auuc(np.r_[Y[:-1], np.nan], T, S), "y"),
        (lambda: auuc(Y, np.ones_like(T), S), "no control"),
        (lambda: auuc(Y, T, S, arm=2), "arm=2"),
        (lambda: auuc(Y, T, S, arm=0), "arm"),
        (lambda: auuc(Y, T + 0.5, S), "treatment"),
        (lambda: auuc(Y, T, S, normalize="area"), "normalize"),
        (lambda: uplift_curve(Y, T, S, convention="mine"), "convention"),
        (lambda: uplift_at_k(Y, T, S, 0), "k=0"),
        (lambda: uplift_at_k(Y, T, S, 1.5), "k=1.5"),
        (lambda: uplift_at_k(Y, T, S, 51), "k=51"),
        (lambda: uplift_at_k(Y, T, S, 0.3, strategy="top"), "strategy"),
        (lambda: profit_curve(Y * 3.5, T, S, **{**COSTS, "redemption_cost": 1.0}), "conversion"),
        (lambda: profit_curve(Y, T, S, **COSTS, conversion=Y[:-1]), "conversion"),
        (lambda: roi(Y, T, S, 10, **{**COSTS, "contact_cost": 0.0}), "contact_cost"),
        (lambda: policy_profit_curve(Y, T, S, propensity=[0.5, 0.5], **COSTS), "scores"),
        (
            lambda: policy_profit_curve(Y, T, S[:, None], propensity=[0.5, 0.6], **COSTS),
            "propensity",
        ),
        (
            lambda: policy_profit_curve(Y, T, S[:, None], propensity=[1 / 3] * 3, **COSTS),
            "propensity",
        ),
        (
            lambda: policy_profit_curve(Y, T, S[:, None], propensity=[1.0, 0.0], **COSTS),
            "propensity",
        ),
        (
            lambda: policy_profit_curve(
                Y, T, S[:, None], propensity=[0.5, 0.5], **{**COSTS, "contact_cost": [1, 2]}
            ),
            "contact_cost",
        ),
        (
            lambda: policy_profit_curve(Y, T * 2, S[:, None], propensity=[0.5, 0.5], **COSTS),
            "treatment",
        ),
        (lambda: bootstrap_ci(np.mean, Y, T[:-1]), "arrays"),
        (lambda: bootstrap_ci(np.mean, Y, n_boot=1), "n_boot"),
        (lambda: bootstrap_ci(np.mean, Y, alpha=1.5), "alpha"),
        (lambda: bootstrap_ci(np.mean, Y, stratify=T[:-1]), "stratify"),
        (lambda: metric_with_ci("gini", Y, T, S), "name"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        call()


def _nan_at_end(values: np.ndarray) -> np.ndarray:
    return np.r_[values[:-1].astype(np.float64), np.nan]


PROPENSITY = {"propensity": [0.5, 0.5], **COSTS}
# every public metric, called with (y, treatment, score or scores, conversion)
METRIC_CALLS = {
    "uplift_curve": lambda y, t, s, c: uplift_curve(y, t, s),
    "qini_curve": lambda y, t, s, c: qini_curve(y, t, s),
    "auuc": lambda y, t, s, c: auuc(y, t, s),
    "qini_coefficient": lambda y, t, s, c: qini_coefficient(y, t, s, normalize="causalml"),
    "uplift_at_k": lambda y, t, s, c: uplift_at_k(y, t, s, 0.5),
    "profit_curve": lambda y, t, s, c: profit_curve(y, t, s, **COSTS, conversion=c),
    "profit_at_k": lambda y, t, s, c: profit_at_k(y, t, s, 10, **COSTS, conversion=c),
    "max_profit": lambda y, t, s, c: max_profit(y, t, s, **COSTS, conversion=c),
    "roi": lambda y, t, s, c: roi(y, t, s, 10, **COSTS, conversion=c),
    "perfect_uplift_curve": lambda y, t, s, c: perfect_uplift_curve(y, t),
    "policy_profit_curve": lambda y, t, s, c: policy_profit_curve(
        y, t, s[:, None] if np.ndim(s) == 1 else s, **PROPENSITY, conversion=c
    ),
    "policy_max_profit": lambda y, t, s, c: policy_max_profit(
        y, t, s[:, None] if np.ndim(s) == 1 else s, **PROPENSITY, conversion=c
    ),
}
SCORED = [name for name in METRIC_CALLS if not name.startswith("perfect")]
WITH_CONVERSION = ["profit_curve", "profit_at_k", "max_profit", "roi", "policy_profit_curve"]


def _score_name(metric: str) -> str:
    return "scores" if metric.startswith("policy") else "score"


def _bad_input_cases() -> list:
    """(metric, changed argument, bad value, parameter the error must name): a length
    mismatch, a NaN and a 2-d array where a 1-d one is expected, per argument. Lengths
    are measured against y, so a short array is named, never y itself."""
    two_columns = np.column_stack([Y, Y])
    cases = []
    for metric in METRIC_CALLS:
        cases += [
            (metric, "y", _nan_at_end(Y), "y"),
            (metric, "y", two_columns, "y"),
            (metric, "t", T[:-1], "treatment"),
            (metric, "t", _nan_at_end(T), "treatment"),
            (metric, "t", np.column_stack([T, T]), "treatment"),
        ]
    for metric in SCORED:
        cases += [
            (metric, "s", S[:-1], _score_name(metric)),
            (metric, "s", _nan_at_end(S), _score_name(metric)),
        ]
    for metric in WITH_CONVERSION:
        cases += [
            (metric, "c", Y[:-1], "conversion"),
            (metric, "c", _nan_at_end(Y), "conversion"),
            (metric, "c", two_columns, "conversion"),
        ]
    return [pytest.param(*case, id=f"{case[0]}-{case[3]}-{i}") for i, case in enumerate(cases)]


@pytest.mark.parametrize(("metric", "argument", "value", "parameter"), _bad_input_cases())
def test_bad_arrays_raise_one_user_error_naming_the_parameter(
    metric: str, argument: str, value: np.ndarray, parameter: str
) -> None:
    """Mismatched lengths, NaN and 2-d arrays, through the one shared validation (scikit-
    learn's validators): a UserError (the CLI prints one line) naming the parameter, and
    still a ValueError for scikit-learn-style callers."""
    arrays = {"y": Y, "t": T, "s": S, "c": Y}
    arrays[argument] = value
    with pytest.raises(UserError) as caught:
        METRIC_CALLS[metric](arrays["y"], arrays["t"], arrays["s"], arrays["c"])
    error = caught.value
    assert isinstance(error, ParameterError) and isinstance(error, ValueError)
    assert error.parameter == parameter
    assert error.one_line().startswith(f"parameter {parameter}: ")
    assert "\n" not in error.one_line()


def test_a_three_dimensional_score_is_refused_naming_score() -> None:
    with pytest.raises(ParameterError, match=r"parameter score: .*dim 3") as caught:
        auuc(Y, T, S[:, None, None])
    assert caught.value.parameter == "score"
