"""The optimiser's exact core: reduced-cost fixing, then a branch and bound over the few
units still in doubt, which proves an allocation optimal (docs/optimizer.md, step 4).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from liftwise.decide import _optimizer_kernels as kernels
from liftwise.decide._optimizer_dual import Relaxed
from liftwise.decide._optimizer_primal import totals_of

MAX_CORE = 2000  # the exact search runs only when at most this many units are in doubt
REL_EPS = 1e-9  # relative tolerance of "strictly better" in the exact search


class _CoreOptions(NamedTuple):
    """Every core unit's options as (core units, arms + 1) matrices: column 0 is "none",
    column j + 1 is arm j."""

    arm: np.ndarray  # int64: -1 for none, else the arm
    profit: np.ndarray  # float64
    cost: np.ndarray  # float64
    loss: np.ndarray  # reduced profit p - lam c - mu lost against the unit's best option
    keep: np.ndarray  # bool: the option survives reduced-cost fixing


def exact_core(
    profit: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    budget: float,
    cap: np.ndarray,
    rel: Relaxed,
    value: float,
    max_nodes: int,
) -> tuple[np.ndarray | None, int, bool]:
    """Reduced-cost fixing plus branch and bound on the units still in doubt.

    Any allocation worth more than ``value`` loses less than G = dual - value of reduced
    profit p - lam c - mu, so each unit can only use options within G of its best; units
    left with one option are fixed. If at most MAX_CORE units remain, a depth-first
    search over them finds the optimum (or stops at ``max_nodes``).
    Returns (new arm or None, nodes, proven optimal).
    """
    eps = REL_EPS * max(1.0, abs(rel.dual))
    slack = rel.dual - value
    if slack <= eps:
        return None, 0, True
    core, fixed_arm = _fix_units(profit, cost, allowed, rel, slack + eps)
    if core.size > MAX_CORE or max_nodes <= 0:
        return None, 0, False
    fixed_cost, fixed_profit, fixed_counts = totals_of(profit, cost, fixed_arm)
    options = _core_options(profit, cost, allowed, rel, core, slack + eps)
    # branch on the most expensive units first: their choice moves the budget most
    unit_order = np.argsort(-np.where(options.keep, options.cost, 0.0).max(axis=1), kind="stable")
    kept = [_kept_by_loss(options, u) for u in unit_order]
    flat = _flat_options(options, unit_order, kept)
    bases, steps = _hull_steps(options, unit_order, kept, rel.mu)
    best = np.full(core.size, -1, dtype=np.int64)
    found, nodes, complete = kernels.branch_and_bound(
        flat,
        bases,
        steps,
        budget - fixed_cost,
        fixed_counts,
        cap,
        np.where(np.isfinite(cap), rel.mu, 0.0),
        fixed_profit,
        (value, eps, max_nodes),
        best,
    )
    if not np.isfinite(found):
        return None, nodes, complete
    new = fixed_arm
    new[core[unit_order]] = flat[1][best]
    return new, nodes, complete


def _fix_units(
    profit: np.ndarray, cost: np.ndarray, allowed: np.ndarray, rel: Relaxed, within: float
) -> tuple[np.ndarray, np.ndarray]:
    """(core units, allocation of the fixed units): a unit with a single option whose
    reduced profit is less than ``within`` below its best is fixed to it; the others (the
    core) get -1 here."""
    n = profit.shape[0]
    n_survivors = np.empty(n, dtype=np.int64)
    best_option = np.empty(n, dtype=np.int32)
    kernels.count_survivors(
        profit, cost, allowed, rel.mu, rel.lam, within, n_survivors, best_option
    )
    core = np.flatnonzero(n_survivors >= 2)
    fixed_arm = best_option.copy()
    fixed_arm[core] = -1
    return core, fixed_arm


def _core_options(
    profit: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    rel: Relaxed,
    core: np.ndarray,
    within: float,
) -> _CoreOptions:
    """The core units' options with their reduced-profit loss and whether they survive."""
    k = profit.shape[1]
    core_profit = profit[core].astype(np.float64)
    core_cost = cost[core].astype(np.float64)
    ok = np.ones_like(core_profit, dtype=bool) if allowed.shape[0] == 0 else allowed[core]
    reduced = np.where(ok, core_profit - rel.mu - rel.lam * core_cost, -np.inf)
    top = np.maximum(reduced.max(axis=1), 0.0)
    loss = np.column_stack([top, top[:, None] - reduced])
    return _CoreOptions(
        arm=np.tile(np.arange(-1, k), (core.size, 1)),
        profit=np.column_stack([np.zeros(core.size), core_profit]),
        cost=np.column_stack([np.zeros(core.size), core_cost]),
        loss=loss,
        keep=loss < within,
    )


def _kept_by_loss(options: _CoreOptions, unit: int) -> np.ndarray:
    """The unit's surviving option columns, best (least loss) first."""
    idx = np.flatnonzero(options.keep[unit])
    return idx[np.argsort(options.loss[unit, idx], kind="stable")]


def _flat_options(
    options: _CoreOptions, unit_order: np.ndarray, kept: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(offsets per unit, arm, profit, cost) of the surviving options, unit after unit in
    search order, each unit's best first."""
    offsets = np.concatenate([[0], np.cumsum([idx.size for idx in kept])]).astype(np.int64)
    chosen = [(u, idx) for u, idx in zip(unit_order, kept, strict=True)]
    arm = np.concatenate([np.empty(0, np.int64), *(options.arm[u, idx] for u, idx in chosen)])
    return (
        offsets,
        arm.astype(np.int64),
        np.concatenate([np.empty(0), *(options.profit[u, idx] for u, idx in chosen)]),
        np.concatenate([np.empty(0), *(options.cost[u, idx] for u, idx in chosen)]),
    )


def _hull_steps(
    options: _CoreOptions, unit_order: np.ndarray, kept: list[np.ndarray], mu: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The branch and bound's LP bound data: ``bases`` = suffix sums (over search order)
    of each unit's cheapest surviving option's (cost, profit - mu), and ``steps`` =
    (unit, cost step, net step) of every unit's hull above that option, by slope desc."""
    n_core, width = options.profit.shape
    base_cost, base_net = np.zeros(n_core), np.zeros(n_core)
    step_unit: list[int] = []
    step_cost: list[float] = []
    step_net: list[float] = []
    scratch = (
        np.empty(width),
        np.empty(width),
        np.empty(width, np.int64),
        np.empty(width),
        np.empty(width),
    )
    hull_ok = options.keep.copy()
    vertices = np.empty(width, dtype=np.int64)
    mu_ext = np.concatenate([[0.0], mu])
    for t, u in enumerate(unit_order):
        idx = kept[t]
        net = options.profit[u] - mu_ext
        cost = options.cost[u]
        cheapest = idx[np.lexsort((-net[idx], cost[idx]))[0]]
        base_cost[t], base_net[t] = cost[cheapest], net[cheapest]
        hull_ok[u, cheapest] = False  # the base itself
        base = (base_net[t], base_cost[t])
        n_hull = kernels.row_hull(
            options.profit, options.cost, mu_ext, hull_ok, u, base, scratch, vertices
        )
        prev_net, prev_cost = base_net[t], base_cost[t]
        for v in vertices[:n_hull]:
            step_unit.append(t)
            step_cost.append(cost[v] - prev_cost)
            step_net.append(net[v] - prev_net)
            prev_net, prev_cost = net[v], cost[v]
    cost_a, net_a = np.array(step_cost, dtype=np.float64), np.array(step_net, dtype=np.float64)
    slope = np.where(cost_a > 0, net_a / np.where(cost_a > 0, cost_a, 1.0), np.inf)
    order = np.argsort(-slope, kind="stable")
    bases = (
        np.concatenate([np.cumsum(base_cost[::-1])[::-1], [0.0]]),
        np.concatenate([np.cumsum(base_net[::-1])[::-1], [0.0]]),
    )
    return bases, (np.array(step_unit, dtype=np.int64)[order], cost_a[order], net_a[order])
