"""The optimiser's Lagrangian relaxation: the budget multiplier ``lam`` (exact, from the
critical hull step found by a radix select) and the capacity multipliers ``mu`` (a
trust-region cutting-plane search). Its dual value is the certificate: an upper bound on
the profit of every feasible allocation. See docs/optimizer.md, steps 1, 2 and 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from liftwise.decide import _optimizer_kernels as kernels
from liftwise.decide._optimizer_kernels import DIGIT_BITS, N_CHUNKS, N_DIGITS

_COLLECT = 1 << 18  # a radix bucket with at most this many steps is sorted directly
_CONTINUE = 1 << 18  # about this many steps below the critical one are continued over
_SAMPLES = (1 << 17, 1 << 20)  # sample sizes the capacity multipliers are searched on first

Steps = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # slope, cost step, unit, position


@dataclass
class Relaxed:
    """The LP relaxation at fixed capacity multipliers ``mu``, solved exactly in ``lam``."""

    mu: np.ndarray
    lam: float
    dual: float  # L(lam, mu): an upper bound on every feasible allocation
    hull_arms: np.ndarray  # (n, k) int16 hull vertices of (cost, profit - mu)
    hull_sizes: np.ndarray  # (n,) int16
    arm: np.ndarray  # (n,) int32 the LP solution without its fractional unit
    steps_taken: np.ndarray  # (n,) int16 hull steps taken by each unit
    prefix_cost: float
    counts: np.ndarray  # (k,) int64 units per arm in ``arm``
    slope_counts: np.ndarray  # (k,) float LP units per arm, fractional unit included
    floor_key: np.uint64  # slope key above which the greedy continuation looks


def step_buffers(size: int) -> Steps:
    """Arrays for ``size`` hull steps: (slope, cost step, unit, position)."""
    return np.empty(size), np.empty(size), np.empty(size, np.int64), np.empty(size, np.int64)


def chunk_offsets(per_chunk: np.ndarray) -> np.ndarray:
    """Where each chunk starts writing, given how many items each chunk has."""
    return np.concatenate(([0], np.cumsum(per_chunk)[:-1])).astype(np.int64)


def _critical_step(
    profit: np.ndarray,
    cost: np.ndarray,
    mu: np.ndarray,
    hull: tuple[np.ndarray, np.ndarray],
    budget: float,
) -> tuple[np.uint64, int, int, float, np.uint64]:
    """The LP's critical hull step: (key, unit, position, fraction taken, floor key).

    Steps sorted by (slope desc, unit, position) are taken while the budget lasts; the
    first that does not fit is critical and its slope is the optimal ``lam``. Found with
    a radix select on the slope bits, DIGIT_BITS at a time, until the critical bucket
    holds at most _COLLECT steps; those are sorted. The floor key bounds about the
    steepest _CONTINUE steps below the critical one, which the greedy continuation
    then considers (0: all).
    """
    n = profit.shape[0]
    hist = (np.zeros((N_CHUNKS, N_DIGITS)), np.zeros((N_CHUNKS, N_DIGITS), dtype=np.int64))
    no_offsets = np.zeros(N_CHUNKS, dtype=np.int64)
    room = budget
    prefix, above_bits, floor = 0, 64, np.uint64(0)  # above_bits: key bits not yet fixed
    while True:
        width = min(DIGIT_BITS, above_bits)
        shift = above_bits - width
        hist[0][:] = 0.0
        hist[1][:] = 0
        select = (np.uint64(prefix), above_bits, shift)
        kernels.radix_pass(profit, cost, mu, hull, select, hist, no_offsets, step_buffers(0))
        total, count = hist[0].sum(axis=0), hist[1].sum(axis=0)
        above = np.cumsum(total[::-1])  # cost of every step at or above each digit
        idx = int(np.searchsorted(above, room, side="right"))
        if idx == N_DIGITS:
            if above_bits == 64:
                return np.uint64(0), n, 0, 0.0, floor  # everything fits: lam = 0
            idx = int(np.flatnonzero(count[::-1])[-1])  # rounding: the lowest non-empty digit
        digit = N_DIGITS - 1 - idx
        room -= above[idx] - total[digit]
        below = np.cumsum(count[digit::-1])  # steps at or below the critical digit
        if below[-1] >= _CONTINUE:  # a finer floor for the greedy continuation
            floor_digit = digit - int(np.searchsorted(below, _CONTINUE))
            floor = np.uint64((prefix << width | floor_digit) << shift)
        prefix = prefix << width | digit
        above_bits = shift
        if count[digit] <= _COLLECT or above_bits == 0:
            break
    bucket = step_buffers(int(count[digit]))
    select = (np.uint64(prefix), above_bits, 0)
    kernels.radix_pass(
        profit, cost, mu, hull, select, hist, chunk_offsets(hist[1][:, digit]), bucket
    )
    slope, cost_step, unit, position = bucket
    order = np.argsort(-slope, kind="stable")  # ties: unit, then position
    cum = np.cumsum(cost_step[order])
    rank = min(int(np.searchsorted(cum, room, side="right")), slope.size - 1)
    step = order[rank]
    dc = cost_step[step]
    theta = min(max((room - (cum[rank] - dc)) / dc, 0.0), 1.0) if dc > 0 else 1.0
    key = np.float64(slope[step]).view(np.uint64)
    return key, int(unit[step]), int(position[step]), theta, floor


def relax(
    profit: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    mu: np.ndarray,
    budget: float,
    cap: np.ndarray,
) -> Relaxed:
    """Exact LP relaxation in ``lam`` for fixed ``mu``: hulls, critical step, dual value."""
    n, k = profit.shape
    hull_arms = np.zeros((n, k), dtype=np.int16)
    hull_sizes = np.zeros(n, dtype=np.int16)
    kernels.unit_hulls(profit, cost, allowed, mu, hull_arms, hull_sizes)
    hull = (hull_arms, hull_sizes)
    key, u_star, s_star, theta, floor = _critical_step(profit, cost, mu, hull, budget)
    lam = float(np.uint64(key).view(np.float64))
    arm = np.empty(n, dtype=np.int32)
    steps_taken = np.empty(n, dtype=np.int16)
    sums = np.zeros((N_CHUNKS, 3))
    counts = np.zeros((N_CHUNKS, k), dtype=np.int64)
    critical = (np.uint64(key), u_star, s_star)
    out = (arm, steps_taken, sums, counts)
    kernels.assign_prefix(profit, cost, allowed, mu, lam, hull, critical, out)
    total = sums.sum(axis=0)
    counts = counts.sum(axis=0)
    capped = np.isfinite(cap)
    dual = float(total[2]) + float(np.dot(mu[capped], cap[capped]))
    if lam > 0:
        dual += lam * budget
    slope_counts = counts.astype(np.float64)
    if u_star < n:  # the fractional unit moves theta of the way along its critical step
        if s_star > 0:
            slope_counts[hull_arms[u_star, s_star - 1]] -= theta
        slope_counts[hull_arms[u_star, s_star]] += theta
    return Relaxed(
        mu=mu,
        lam=lam,
        dual=dual,
        hull_arms=hull_arms,
        hull_sizes=hull_sizes,
        arm=arm,
        steps_taken=steps_taken,
        prefix_cost=float(total[0]),
        counts=counts,
        slope_counts=slope_counts,
        floor_key=floor,
    )


def capacity_multipliers(
    profit: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    budget: float,
    cap: np.ndarray,
    tol: float,
    max_iter: int,
) -> tuple[Relaxed, int]:
    """Minimise g(mu) = min_lam L(lam, mu) over mu >= 0 (one multiplier per capped arm).

    mu = 0 is optimal when the LP at mu = 0 respects every capacity. Otherwise a
    trust-region cutting-plane search runs on evenly spread samples of _SAMPLES units
    (budget and capacities scaled to each), each starting from the last one's
    multipliers, then on all units. Any mu gives a valid bound; the search makes it tight.
    Returns the relaxation at the best mu and the number of dual evaluations.
    """
    n, k = profit.shape
    capped = np.flatnonzero(np.isfinite(cap))
    rel = relax(profit, cost, allowed, np.zeros(k), budget, cap)
    if capped.size == 0 or (rel.slope_counts[capped] <= cap[capped] + 1e-9).all():
        return rel, 1
    upper = np.maximum(profit.max(axis=0).astype(np.float64), 0.0)  # beyond: the arm is never used
    iterations = 1
    half = 0.5 * upper  # box half-width of the first search
    for size in _SAMPLES:
        if n <= 2 * size:
            break
        rows = np.linspace(0, n - 1, size).round().astype(np.int64)
        share = size / n
        sample_profit, sample_cost = profit[rows], cost[rows]
        mask = allowed if allowed.shape[0] == 0 else allowed[rows]
        sub = relax(sample_profit, sample_cost, mask, rel.mu, budget * share, cap * share)
        # the sample's optimum is off by ~1/sqrt(size), costing ~1/size of g: no need to be finer
        limits = (max(tol, 1.0 / size), max_iter)
        sample = (sample_profit, sample_cost, mask)
        sub, used = _cutting_planes(*sample, budget * share, cap * share, sub, upper, half, limits)
        iterations += used + 1
        half = np.maximum(sub.mu / np.sqrt(size), 1e-6 * upper)  # the next search starts near it
        rel = sub
    if rel.arm.shape[0] != n:
        rel = relax(profit, cost, allowed, rel.mu, budget, cap)
        iterations += 1
    rel, used = _cutting_planes(
        profit, cost, allowed, budget, cap, rel, upper, half, (tol, max_iter)
    )
    return rel, iterations + used


def _cutting_planes(
    profit: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    budget: float,
    cap: np.ndarray,
    rel: Relaxed,
    upper: np.ndarray,
    half: np.ndarray,
    limits: tuple[float, int],
) -> tuple[Relaxed, int]:
    """Trust-region Kelley: minimise the cutting-plane model of g(mu) (convex, piecewise
    linear; cap - LP units per arm is a subgradient) in the box mu_best +- ``half``
    within [0, ``upper``]; the box doubles after a good step that reached its edge and
    halves when g rises. ``limits`` = (tol, max evaluations): stops when the model
    predicts less than ``tol`` (relative) improvement."""
    tol, max_iter = limits
    k = profit.shape[1]
    capped = np.flatnonzero(np.isfinite(cap))
    half = np.maximum(half[capped], 1e-12)
    best = rel
    rows, rhs = [], []
    evaluations = 0
    while evaluations < max_iter:
        sub = cap[capped] - rel.slope_counts[capped]
        rows.append(np.append(sub, -1.0))  # t >= g_s + sub . (mu - mu_s)
        rhs.append(float(sub @ rel.mu[capped]) - rel.dual)
        centre = best.mu[capped]
        box = zip(
            np.maximum(centre - half, 0.0), np.minimum(centre + half, upper[capped]), strict=True
        )
        res = linprog(
            np.append(np.zeros(capped.size), 1.0),
            A_ub=np.array(rows),
            b_ub=np.array(rhs),
            bounds=[*box, (None, None)],
            method="highs",
        )
        if res.status != 0:  # pragma: no cover - the model is bounded and feasible
            break
        predicted = best.dual - float(res.x[-1])
        if predicted <= tol * max(1.0, abs(best.dual)):
            break
        mu = np.zeros(k)
        mu[capped] = res.x[:-1]
        rel = relax(profit, cost, allowed, mu, budget, cap)
        evaluations += 1
        if rel.dual <= best.dual - 0.1 * predicted:
            if (np.abs(mu[capped] - centre) >= 0.99 * half).any():
                half = half * 2.0
            best = rel
        elif rel.dual > best.dual:
            half = half * 0.5
    return best, evaluations
