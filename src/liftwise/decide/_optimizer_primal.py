"""The optimiser's feasible allocation, built from the relaxed one: the LP solution
without its fractional unit, the greedy continuation over the next hull steps,
single-unit moves, and the rounding repair of the budget. See docs/optimizer.md, step 3.
"""

from __future__ import annotations

import numpy as np

from liftwise.decide import _optimizer_kernels as kernels
from liftwise.decide._optimizer_dual import Relaxed, Steps, chunk_offsets, step_buffers
from liftwise.decide._optimizer_kernels import N_CHUNKS

_BATCH = 1 << 16  # the greedy continuation sorts this many candidate steps at a time


def greedy_primal(
    profit: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    budget: float,
    cap: np.ndarray,
    rel: Relaxed,
) -> np.ndarray:
    """A feasible allocation from the relaxed one: the LP solution without its fractional
    unit, minus each over-full arm's weakest units (approximate multipliers can overfill
    an arm), then the greedy continuation over the next hull steps in slope order, then
    single-unit moves to any allowed arm. Works in place on ``rel``'s arrays."""
    arm, steps_taken, counts = rel.arm, rel.steps_taken, rel.counts
    room = budget - rel.prefix_cost
    for j in np.flatnonzero(counts > cap):
        units = np.flatnonzero(arm == j)
        arm_profit = profit[units, j].astype(np.float64)
        arm_cost = cost[units, j].astype(np.float64)
        weakness = rel.lam * arm_cost + rel.mu[j] - arm_profit
        drop = units[top_indices(weakness, int(counts[j] - cap[j]))]
        arm[drop] = -1
        steps_taken[drop] = 0
        counts[j] -= drop.size
        room += float(cost[drop, j].sum())
    hull, per_chunk = (rel.hull_arms, rel.hull_sizes), np.zeros(N_CHUNKS, dtype=np.int64)
    args = (profit, cost, rel.mu, hull, steps_taken, room, rel.floor_key)
    kernels.upgrade_candidates(*args, per_chunk, step_buffers(0), per_chunk)
    candidates = step_buffers(int(per_chunk.sum()))
    kernels.upgrade_candidates(*args, chunk_offsets(per_chunk), candidates, per_chunk)
    state = (arm, steps_taken, np.zeros(arm.shape[0], dtype=np.bool_), counts)
    room = _continue(candidates, rel.hull_arms, state, room, cap)
    del candidates
    _polish(profit, cost, allowed, arm, room, counts, cap)
    return arm


def _continue(
    candidates: Steps,
    hull_arms: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    room: float,
    cap: np.ndarray,
) -> float:
    """Scan the candidate steps in (slope desc, unit, position) order, sorting only the
    steepest _BATCH at a time: the scan is over once no remaining step fits the room."""
    slope, cost_step, unit, position = candidates
    rest = np.arange(slope.size)
    while rest.size:
        rest_slope = slope[rest]
        if rest.size > _BATCH:
            cut = rest.size - _BATCH
            in_batch = rest_slope >= np.partition(rest_slope, cut)[cut]  # ties at the cut join
        else:
            in_batch = np.ones(rest.size, dtype=bool)
        batch = rest[in_batch]
        room = kernels.take_steps(
            batch[np.argsort(-slope[batch], kind="stable")],
            (cost_step, unit, position),
            hull_arms,
            state,
            room,
            cap,
        )
        rest = rest[~in_batch]
        if rest.size and room < cost_step[rest].min():
            break
    return room


def top_indices(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` largest values, largest first; ties: lower index first."""
    if count >= values.size:
        return np.argsort(-values, kind="stable")
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    cut = np.partition(values, values.size - count)[values.size - count]
    above = np.flatnonzero(values > cut)
    idx = np.concatenate([above, np.flatnonzero(values == cut)[: count - above.size]])
    return idx[np.argsort(-values[idx], kind="stable")]


def _polish(
    profit: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    arm: np.ndarray,
    room: float,
    counts: np.ndarray,
    cap: np.ndarray,
    rounds: int = 3,
) -> None:
    """Single-unit moves (upgrade, switch, treat) by decreasing gain while they fit.
    Rounds after the first revisit only the units that had a move (room only shrinks)."""
    units = np.empty(0, dtype=np.int64)  # first round: every unit
    for _ in range(rounds):
        size = units.size or profit.shape[0]
        moves = (np.empty(size, dtype=np.int64), np.empty(size), np.empty(size))
        kernels.best_moves(profit, cost, allowed, arm, room, counts, cap, units, moves)
        movable = np.flatnonzero(moves[0] >= 0)
        units = movable if units.size == 0 else units[movable]  # later rounds: these only
        if units.size == 0:
            break
        target, gain, extra_cost = (m[movable] for m in moves)
        del moves
        keep = np.ones(units.size, dtype=bool)
        for j in np.flatnonzero(np.isfinite(cap)):  # a capped arm takes its best few only
            into = np.flatnonzero(target == j)
            keep[into] = False
            keep[into[top_indices(gain[into], int(cap[j] - counts[j]))]] = True
        order = np.flatnonzero(keep)
        order = order[np.argsort(-gain[order], kind="stable")]
        room, moved = kernels.apply_moves(
            units[order], extra_cost[order], target[order], arm, room, counts, cap
        )
        if moved == 0:
            break


def totals_of(
    profit: np.ndarray, cost: np.ndarray, arm: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """(cost, profit, units per arm) of an allocation, summed in a fixed order."""
    sums = np.zeros((N_CHUNKS, 2))
    counts = np.zeros((N_CHUNKS, profit.shape[1]), dtype=np.int64)
    kernels.allocation_totals(profit, cost, arm, sums, counts)
    total = sums.sum(axis=0)
    return float(total[0]), float(total[1]), counts.sum(axis=0)


def repair_budget(profit: np.ndarray, cost: np.ndarray, arm: np.ndarray, budget: float) -> None:
    """Rounding only: drop the treated units with the least profit per cost until the
    allocation's cost, summed as reported, is within the budget."""
    spent, _, _ = totals_of(profit, cost, arm)
    if spent <= budget:
        return
    treated = np.flatnonzero(arm >= 0)
    arm_cost = cost[treated, arm[treated]].astype(np.float64)
    arm_profit = profit[treated, arm[treated]].astype(np.float64)
    ratio = np.where(arm_cost > 0, arm_profit / np.where(arm_cost > 0, arm_cost, 1.0), np.inf)
    for i in treated[np.argsort(ratio, kind="stable")]:
        spent -= float(cost[i, arm[i]])
        arm[i] = -1
        if spent < budget:
            break
    while totals_of(profit, cost, arm)[0] > budget:  # pragma: no cover - float paranoia
        arm[np.flatnonzero(arm >= 0)[0]] = -1
