"""Budget optimiser: audited against an exact MIP (HiGHS), certificate, edge cases, reasons,
the budget curve, validation and determinism."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from liftwise.decide import Allocation, Untreated, budget_curve, optimize_budget

highspy = pytest.importorskip("highspy")

# --------------------------------------------------------------------------- helpers


def make_instance(
    n: int,
    k: int,
    seed: int,
    *,
    capacity: bool = False,
    mask: bool = False,
    free: bool = False,
    share: float | None = None,
):
    """Random offers: arm j costs about 2**j, profit = cost x (lognormal return - 0.8), so
    about half the options lose money and the best arm differs between units. Budget: a
    share (random unless given) of what giving every unit its best profitable arm costs."""
    rng = np.random.default_rng(seed)
    cost = rng.uniform(0.5, 2.0, (n, 1)) * 2.0 ** np.arange(k) * rng.uniform(0.7, 1.3, (n, k))
    profit = cost * (np.exp(rng.normal(0.0, 0.6, (n, k))) - 0.8)
    if free:  # some options cost nothing
        cost[rng.random((n, k)) < 0.05] = 0.0
    allowed = None
    if mask:
        allowed = rng.random((n, k)) < 0.8
        allowed[rng.random(n) < 0.05] = False  # some units may get nothing at all
    best_cost = np.where(profit > 0, cost, 0.0).max(axis=1).sum()
    budget = (rng.uniform(0.1, 0.7) if share is None else share) * best_cost
    cap = None
    if capacity:
        cap = np.full(k, np.inf)
        for j in rng.choice(k, size=rng.integers(1, k + 1), replace=False):
            cap[j] = rng.integers(0, max(2, n // 4))
    return profit, cost, budget, cap, allowed


def solve_mip(profit, cost, budget, capacity=None, allowed=None, time_limit=120.0):
    """The exact optimum: binary x_ij, sum_j x_ij <= 1, sum c x <= B, per-arm counts <= cap.

    Returns (objective, dual bound, status string)."""
    n, k = profit.shape
    ok = np.ones((n, k), dtype=bool) if allowed is None else allowed
    unit, arm = np.nonzero(ok)
    capped = [] if capacity is None else [j for j in range(k) if np.isfinite(capacity[j])]
    cap_row = {j: n + 1 + r for r, j in enumerate(capped)}
    starts, index, value = [0], [], []
    for i, j in zip(unit, arm, strict=True):
        index += [i, n]
        value += [1.0, float(cost[i, j])]
        if j in cap_row:
            index.append(cap_row[j])
            value.append(1.0)
        starts.append(len(index))
    lp = highspy.HighsLp()
    lp.num_col_ = unit.size
    lp.num_row_ = n + 1 + len(capped)
    lp.col_cost_ = profit[unit, arm].astype(np.float64)
    lp.col_lower_ = np.zeros(unit.size)
    lp.col_upper_ = np.ones(unit.size)
    lp.row_lower_ = np.full(lp.num_row_, -highspy.kHighsInf)
    lp.row_upper_ = np.concatenate([np.ones(n), [min(budget, 1e30)], [capacity[j] for j in capped]])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=np.float64)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.integrality_ = [highspy.HighsVarType.kInteger] * unit.size
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", time_limit)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("threads", 1)
    h.passModel(lp)
    h.run()
    info = h.getInfo()
    return (
        info.objective_function_value,
        info.mip_dual_bound,
        h.modelStatusToString(h.getModelStatus()),
    )


def check_feasible(a: Allocation, profit, cost, budget, cap=None, allowed=None) -> None:
    """Independent check of the allocation and its reported numbers."""
    n, k = profit.shape
    assert a.arm.shape == (n,) and a.reason.shape == (n,)
    treated = np.flatnonzero(a.arm >= 0)
    assert a.arm.max(initial=-1) < k and a.arm.min(initial=-1) >= -1
    spent = cost[treated, a.arm[treated]].sum()
    assert spent <= budget * (1 + 1e-12)
    assert a.cost == pytest.approx(spent, rel=1e-9, abs=1e-9)
    assert a.profit == pytest.approx(profit[treated, a.arm[treated]].sum(), rel=1e-9, abs=1e-9)
    counts = np.bincount(a.arm[treated], minlength=k)
    if cap is not None:
        assert (counts <= cap).all()
    if allowed is not None:
        assert allowed[treated, a.arm[treated]].all()
    assert a.gap >= 0 and a.upper_bound >= a.profit
    assert a.gap == pytest.approx(a.upper_bound - a.profit)
    assert (a.reason[treated] == Untreated.TREATED).all()
    assert (a.reason[a.arm < 0] != Untreated.TREATED).all()


def max_unit_profit(profit, allowed=None) -> float:
    ok = profit if allowed is None else np.where(allowed, profit, 0.0)
    return float(np.maximum(ok, 0.0).max(initial=0.0))


# --------------------------------------------------------------------------- against the MIP


@pytest.mark.parametrize("capacity", [False, True], ids=["budget", "capacities"])
def test_matches_exact_mip_on_small_instances(capacity: bool) -> None:
    matched = 0
    seeds = range(40)
    for seed in seeds:
        n, k = (20, 50, 100, 200)[seed % 4], (2, 3, 4)[seed % 3]
        profit, cost, budget, cap, allowed = make_instance(
            n, k, seed, capacity=capacity, mask=seed % 5 == 0, free=seed % 7 == 0
        )
        a = optimize_budget(profit, cost, budget, capacity=cap, allowed=allowed)
        check_feasible(a, profit, cost, budget, cap, allowed)
        best, _, status = solve_mip(profit, cost, budget, cap, allowed)
        assert status == "Optimal"
        scale = max(1.0, abs(best))
        # the MIP's own tolerances (1e-6 feasibility) can let it go marginally over
        assert a.profit <= best + 1e-6 * scale
        assert best <= a.upper_bound + 1e-6 * scale, "the certificate must bound the optimum"
        limit = max_unit_profit(profit, allowed) * (
            1 if cap is None else 1 + np.isfinite(cap).sum()
        )
        assert a.gap <= limit + 1e-9
        same = abs(a.profit - best) <= 1e-6 * scale
        matched += same
        if a.status == "optimal":
            assert same, f"seed {seed}: claimed optimal at {a.profit}, MIP has {best}"
    assert matched >= 0.9 * len(seeds)


def test_certificate_against_mip_at_10k_units() -> None:
    """10,000 units x 4 arms, budget only (HiGHS needs about 10-20 s here)."""
    profit, cost, budget, _, _ = make_instance(10_000, 4, 101, share=0.3)
    a = optimize_budget(profit, cost, budget)
    check_feasible(a, profit, cost, budget)
    best, bound, _ = solve_mip(profit, cost, budget, time_limit=120.0)
    assert a.profit <= bound + 1e-6 * bound
    assert best <= a.upper_bound + 1e-6 * best
    assert a.gap <= max_unit_profit(profit)
    assert a.relative_gap < 1e-5
    assert a.iterations == 1 and a.multiplier > 0
    if a.status == "optimal":
        assert a.profit >= best - 1e-6 * best


def test_certificate_against_mip_with_capacities_and_mask_at_5k_units() -> None:
    profit, cost, budget, _, allowed = make_instance(5_000, 4, 202, mask=True, share=0.5)
    cap = np.array([np.inf, 400, 250, 100])
    a = optimize_budget(profit, cost, budget, capacity=cap, allowed=allowed)
    check_feasible(a, profit, cost, budget, cap, allowed)
    best, bound, _ = solve_mip(profit, cost, budget, cap, allowed, time_limit=120.0)
    assert a.profit <= bound + 1e-6 * bound
    assert best <= a.upper_bound + 1e-6 * best
    assert a.gap <= 4 * max_unit_profit(profit, allowed)
    assert a.relative_gap < 1e-4
    assert (a.arm_multipliers[1:] > 0).all() and a.arm_multipliers[0] == 0


# --------------------------------------------------------------------------- edge cases


def test_zero_budget_treats_only_free_profitable_options() -> None:
    profit = np.array([[5.0, 3.0], [2.0, -1.0], [-1.0, 4.0], [1.0, 1.0]])
    cost = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    a = optimize_budget(profit, cost, 0.0)
    # unit 0 takes its free arm 1 (3.0), unit 2 nothing (its free arm loses money),
    # unit 3 the first of two equal free arms
    np.testing.assert_array_equal(a.arm, [1, -1, -1, 0])
    assert a.profit == 4.0 and a.cost == 0.0 and a.status == "optimal"
    assert a.reason[1] == Untreated.BUDGET and a.reason[2] == Untreated.BUDGET
    b = optimize_budget(profit[:, :1], np.ones((4, 1)), 0.0)
    assert (b.arm == -1).all() and b.profit == 0.0 and b.upper_bound == 0.0


@pytest.mark.parametrize("budget", [1e12, np.inf])
def test_unlimited_budget_gives_every_unit_its_best_arm(budget: float) -> None:
    profit, cost, _, _, allowed = make_instance(500, 4, 3, mask=True)
    a = optimize_budget(profit, cost, budget, allowed=allowed)
    masked = np.where(allowed, profit, -np.inf)
    expected = np.where(masked.max(axis=1) > 0, masked.argmax(axis=1), -1)
    np.testing.assert_array_equal(a.arm, expected)
    assert a.multiplier == 0.0 and a.gap == pytest.approx(0.0, abs=1e-9)
    none = ~allowed.any(axis=1)
    assert (a.reason[none] == Untreated.NOT_ALLOWED).all()
    losing = ~none & (masked.max(axis=1) <= 0)
    assert (a.reason[losing] == Untreated.NO_POSITIVE_PROFIT).all()


def test_all_negative_profits_treat_nobody() -> None:
    rng = np.random.default_rng(0)
    profit = -rng.uniform(0.1, 5.0, (100, 3))
    a = optimize_budget(profit, rng.uniform(0, 1, (100, 3)), 1e6)
    assert (a.arm == -1).all() and a.profit == 0.0 and a.upper_bound == 0.0
    assert (a.reason == Untreated.NO_POSITIVE_PROFIT).all()


def test_reasons_budget_and_capacity() -> None:
    # arm 0 is capped at one unit; the budget pays for two units of arm 1 at most
    profit = np.array(
        [[10.0, 1.0], [9.0, -1.0], [-1.0, 5.0], [-1.0, 4.0], [-1.0, 3.0], [-2.0, -2.0]]
    )
    cost = np.ones_like(profit)
    a = optimize_budget(profit, cost, 3.0, capacity=[1, np.inf])
    np.testing.assert_array_equal(a.arm, [0, -1, 1, 1, -1, -1])
    assert a.reason[1] == Untreated.CAPACITY  # only arm 0 pays, and it is full
    assert a.reason[4] == Untreated.BUDGET
    assert a.reason[5] == Untreated.NO_POSITIVE_PROFIT
    assert list(a.reason_labels()) == ["", "capacity", "", "", "budget", "no_positive_profit"]
    assert a.status == "optimal" and a.profit == 19.0


def test_capacities_and_mask_respected() -> None:
    profit, cost, budget, _, allowed = make_instance(3_000, 3, 5, mask=True, share=0.8)
    cap = np.array([0, 200, np.inf])
    a = optimize_budget(profit, cost, budget, capacity=cap, allowed=allowed)
    check_feasible(a, profit, cost, budget, cap, allowed)
    assert not (a.arm == 0).any() and (a.arm == 1).sum() == 200
    assert a.arm_multipliers[2] == 0.0 and a.arm_multipliers[1] > 0


def test_identical_units_are_taken_in_index_order() -> None:
    """Every slope ties: the first units by index win, and the answer is still exact."""
    profit = np.tile([3.0, 5.0], (1000, 1))
    cost = np.tile([1.0, 2.0], (1000, 1))
    a = optimize_budget(profit, cost, 250.0)
    assert (a.arm[:250] == 0).all() and (a.arm[250:] == -1).all()
    assert a.profit == pytest.approx(750.0) and a.upper_bound == pytest.approx(750.0)
    b = optimize_budget(profit, cost, 1500.0)  # everyone on arm 0, then 500 upgrades to arm 1
    assert (b.arm[:500] == 1).all() and (b.arm[500:] == 0).all()
    assert b.profit == pytest.approx(4000.0) and b.upper_bound == pytest.approx(4000.0)


def test_float32_inputs_match_float64() -> None:
    profit, cost, budget, cap, _ = make_instance(2_000, 4, 9, capacity=True)
    p32, c32 = profit.astype(np.float32), cost.astype(np.float32)
    a = optimize_budget(p32, c32, budget, capacity=cap)
    b = optimize_budget(p32.astype(np.float64), c32.astype(np.float64), budget, capacity=cap)
    np.testing.assert_array_equal(a.arm, b.arm)
    assert a.upper_bound == b.upper_bound and a.profit == b.profit


def test_empty_input() -> None:
    a = optimize_budget(np.empty((0, 3)), np.empty((0, 3)), 10.0)
    assert a.arm.shape == (0,) and a.profit == 0.0 and a.gap == 0.0


# --------------------------------------------------------------------------- determinism


def test_deterministic_across_runs_and_thread_counts() -> None:
    profit, cost, budget, cap, allowed = make_instance(20_000, 4, 11, capacity=True, mask=True)
    a = optimize_budget(profit, cost, budget, capacity=cap, allowed=allowed)
    b = optimize_budget(profit, cost, budget, capacity=cap, allowed=allowed)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        c = optimize_budget(profit, cost, budget, capacity=cap, allowed=allowed)
    finally:
        numba.set_num_threads(threads)
    for other in (b, c):
        np.testing.assert_array_equal(a.arm, other.arm)
        assert (a.profit, a.upper_bound, a.multiplier) == (
            other.profit,
            other.upper_bound,
            other.multiplier,
        )
        np.testing.assert_array_equal(a.arm_multipliers, other.arm_multipliers)


# --------------------------------------------------------------------------- budget curve


def test_budget_curve_brackets_the_optimiser() -> None:
    profit, cost, _, _, allowed = make_instance(3_000, 4, 13, mask=True, free=True)
    curve = budget_curve(profit, cost, allowed=allowed)
    assert len(curve) == 201 and curve.budget[0] == 0.0
    assert (np.diff(curve.profit) >= 0).all() and (np.diff(curve.upper_bound) >= -1e-9).all()
    assert (curve.upper_bound >= curve.profit - 1e-9).all()
    assert (curve.upper_bound - curve.profit <= max_unit_profit(profit, allowed) + 1e-9).all()
    # the LP bound is concave in the budget
    assert (np.diff(curve.upper_bound, 2) <= 1e-6 * curve.upper_bound[-1]).all()
    # at the last budget every unit has its best allowed arm
    masked = np.where(allowed, profit, 0.0)
    assert curve.profit[-1] == pytest.approx(np.maximum(masked, 0).max(axis=1).sum())
    # the last budget is the float sum of every step, a tie with rounding: give it an ulp
    for budget in [*curve.budget[:-1:40], curve.budget[-1] * (1 + 1e-12)]:
        a = optimize_budget(profit, cost, budget, allowed=allowed)
        point = budget_curve(profit, cost, [budget], allowed=allowed)
        assert point.upper_bound[0] == pytest.approx(a.upper_bound, rel=1e-9, abs=1e-9)
        assert point.profit[0] <= a.profit + 1e-9


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"profit": np.ones(3)}, "profit must be a 2-D"),
        ({"cost": np.ones((4, 2))}, "cost has shape"),
        ({"profit": np.array([[1.0, np.nan]] * 3)}, "profit contains NaN"),
        ({"cost": np.array([[1.0, np.inf]] * 3)}, "cost contains NaN"),
        ({"cost": np.array([[1.0, -0.5]] * 3)}, "cost must be >= 0"),
        ({"budget": -1.0}, "budget must be"),
        ({"budget": np.nan}, "budget must be"),
        ({"capacity": [1, 2, 3]}, "capacity must have one entry per arm"),
        ({"capacity": [1, -2]}, "capacity must be >= 0"),
        ({"capacity": [1.5, 2]}, "whole numbers"),
        ({"allowed": np.ones((3, 2), dtype=int)}, "allowed must be a boolean"),
        ({"allowed": np.ones((2, 2), dtype=bool)}, "allowed has shape"),
    ],
)
def test_validation_names_the_argument(kwargs: dict, match: str) -> None:
    args = {"profit": np.ones((3, 2)), "cost": np.ones((3, 2)), "budget": 1.0} | kwargs
    with pytest.raises(ValueError, match=match):
        optimize_budget(args.pop("profit"), args.pop("cost"), args.pop("budget"), **args)
