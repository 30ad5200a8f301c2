"""Compiled (numba) kernels of the budget optimiser (:mod:`liftwise.decide.optimizer`).

Every pass over the (units, arms) inputs splits the units into ``N_CHUNKS`` fixed chunks
(``prange`` over them where it pays) and adds within a chunk in unit order, so sums never
depend on the number of threads. Names used throughout:

- ``net`` = profit - mu: an option's profit net of its arm's capacity multiplier mu;
- a unit's *hull* is the upper concave hull of its options' (cost, net) from "nothing" at
  (0, 0): ``hull_arms[unit, :hull_sizes[unit]]`` lists the vertices' arms by increasing
  cost; a *step* goes from one vertex to the next and has a cost step, a net step and a
  slope (net step / cost step);
- a slope's *key* is its float64 bit pattern read as uint64: non-negative doubles order
  like their keys, which the radix select uses;
- ``allowed`` is the (units, arms) mask of allowed options, or an empty (0, arms) array
  when every option is allowed.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

N_CHUNKS = 16  # fixed split of every pass: sums never depend on the thread count
DIGIT_BITS = 12  # the radix select reads a slope's 64 bits 12 at a time (6 levels at most)
N_DIGITS = 1 << DIGIT_BITS


# --------------------------------------------------------------------------- helpers


@njit(cache=True)
def chunk_bounds(n_units, chunk):  # pragma: no cover - compiled
    """Units [lo, hi) of chunk ``chunk`` of N_CHUNKS."""
    return chunk * n_units // N_CHUNKS, (chunk + 1) * n_units // N_CHUNKS


@njit(cache=True)
def step_slope(net_step, cost_step):  # pragma: no cover - compiled
    """Net profit per cost of a hull step; a free upgrade is infinitely steep."""
    return net_step / cost_step if cost_step > 0.0 else np.inf


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def scan_values(values, out):  # pragma: no cover - compiled
    """Per chunk of rows: (1 if a value is not finite, smallest value)."""
    n_rows, n_cols = values.shape
    for chunk in range(N_CHUNKS):
        lo, hi = chunk_bounds(n_rows, chunk)
        any_bad = 0.0
        smallest = np.inf
        for i in range(lo, hi):
            for j in range(n_cols):
                value = values[i, j]
                if not np.isfinite(value):
                    any_bad = 1.0
                elif value < smallest:
                    smallest = value
        out[chunk, 0] = any_bad
        out[chunk, 1] = smallest


# --------------------------------------------------------------------------- hulls


@njit(cache=True, inline="always")
def row_hull(profit, cost, mu, allowed, unit, base, scratch, out):  # pragma: no cover - compiled
    """Upper concave hull of ``unit``'s options net = profit - mu above ``base`` =
    (net, cost).

    Writes the hull's option indices into ``out`` by increasing cost (strictly increasing
    net, non-increasing slopes; collinear points are kept) and returns how many. Options
    with net <= base net are dominated by the base (costs are >= its cost); ties in
    (cost, net) keep the lower index. ``scratch`` = (sorted net, sorted cost, sorted
    option, hull net, hull cost), each of the row's length.
    """
    base_net, base_cost = base
    sorted_net, sorted_cost, sorted_option, hull_net, hull_cost = scratch
    has_mask = allowed.shape[0] > 0
    n_sorted = 0
    for j in range(profit.shape[1]):  # insertion sort by (cost asc, net desc, index asc)
        if has_mask and not allowed[unit, j]:
            continue
        net = profit[unit, j] - mu[j]
        if net <= base_net:
            continue
        option_cost = cost[unit, j]
        slot = n_sorted
        while slot > 0 and (
            sorted_cost[slot - 1] > option_cost
            or (sorted_cost[slot - 1] == option_cost and sorted_net[slot - 1] < net)
        ):
            sorted_net[slot] = sorted_net[slot - 1]
            sorted_cost[slot] = sorted_cost[slot - 1]
            sorted_option[slot] = sorted_option[slot - 1]
            slot -= 1
        sorted_net[slot] = net
        sorted_cost[slot] = option_cost
        sorted_option[slot] = j
        n_sorted += 1
    n_hull = 0
    for t in range(n_sorted):
        net = sorted_net[t]
        option_cost = sorted_cost[t]
        if net <= (hull_net[n_hull - 1] if n_hull > 0 else base_net):
            continue  # costs at least as much, earns no more
        while n_hull > 0:
            top_net, top_cost = hull_net[n_hull - 1], hull_cost[n_hull - 1]
            below_net = hull_net[n_hull - 2] if n_hull > 1 else base_net
            below_cost = hull_cost[n_hull - 2] if n_hull > 1 else base_cost
            if (top_net - below_net) * (option_cost - top_cost) < (net - top_net) * (
                top_cost - below_cost
            ):  # the top vertex lies below the chord: drop it
                n_hull -= 1
            else:
                break
        hull_net[n_hull] = net
        hull_cost[n_hull] = option_cost
        out[n_hull] = sorted_option[t]
        n_hull += 1
    return n_hull


@njit(cache=True, parallel=True)
def unit_hulls(profit, cost, allowed, mu, hull_arms, hull_sizes):  # pragma: no cover - compiled
    """Every unit's hull of (cost, profit - mu) from "nothing" at (0, 0)."""
    n_units, n_arms = profit.shape
    for chunk in prange(N_CHUNKS):
        lo, hi = chunk_bounds(n_units, chunk)
        scratch = (
            np.empty(n_arms),
            np.empty(n_arms),
            np.empty(n_arms, dtype=np.int64),
            np.empty(n_arms),
            np.empty(n_arms),
        )
        vertices = np.empty(n_arms, dtype=np.int64)
        for i in range(lo, hi):
            n_hull = row_hull(profit, cost, mu, allowed, i, (0.0, 0.0), scratch, vertices)
            for s in range(n_hull):
                hull_arms[i, s] = vertices[s]
            hull_sizes[i] = n_hull


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def flatten_steps(
    profit, cost, hull_arms, hull_sizes, offsets, slope, cost_step, profit_step
):  # pragma: no cover - compiled
    """Every hull step as (slope, cost step, profit step), unit i's from ``offsets[i]``,
    in (unit, position) order."""
    n_units = profit.shape[0]
    for chunk in range(N_CHUNKS):
        lo, hi = chunk_bounds(n_units, chunk)
        for i in range(lo, hi):
            prev_profit = 0.0
            prev_cost = 0.0
            start = offsets[i]
            for s in range(hull_sizes[i]):
                arm = hull_arms[i, s]
                vertex_profit = float(profit[i, arm])
                vertex_cost = float(cost[i, arm])
                slope[start + s] = step_slope(vertex_profit - prev_profit, vertex_cost - prev_cost)
                cost_step[start + s] = vertex_cost - prev_cost
                profit_step[start + s] = vertex_profit - prev_profit
                prev_profit = vertex_profit
                prev_cost = vertex_cost


# --------------------------------------------------------------------------- relaxation


@njit(cache=True, parallel=True)
def radix_pass(profit, cost, mu, hull, select, hist, offsets, out):  # pragma: no cover - compiled
    """One radix-select pass over the bits of the hull steps' slope keys.

    ``select`` = (prefix, bits below it, digit shift): steps whose key shifted right by
    the bits below equals ``prefix`` (every step when that shift is 64) either add their
    cost to ``hist`` = (cost, count) per chunk and digit ``(key >> digit shift) & mask``
    (``out`` empty) or are copied into ``out`` = (slope, cost step, unit, position) in
    unit order from ``offsets[chunk]``. Non-negative doubles order like their bit
    patterns, so the select is exact.
    """
    hull_arms, hull_sizes = hull
    hist_cost, hist_count = hist
    out_slope, out_cost_step, out_unit, out_position = out
    collect = out_slope.shape[0] > 0
    n_units = profit.shape[0]
    prefix, bits_below, digit_shift = select
    every = bits_below >= 64
    prefix_shift = np.uint64(0 if every else bits_below)
    digit_shift_u = np.uint64(digit_shift)
    digit_mask = np.uint64(N_DIGITS - 1)
    for chunk in prange(N_CHUNKS):
        lo, hi = chunk_bounds(n_units, chunk)
        slope_buf = np.empty(1)
        slope_key = slope_buf.view(np.uint64)
        write = offsets[chunk]
        for i in range(lo, hi):
            prev_net = 0.0
            prev_cost = 0.0
            for s in range(hull_sizes[i]):
                arm = hull_arms[i, s]
                vertex_net = profit[i, arm] - mu[arm]
                vertex_cost = cost[i, arm]
                cost_step = vertex_cost - prev_cost
                slope_buf[0] = step_slope(vertex_net - prev_net, cost_step)
                key = slope_key[0]
                if every or (key >> prefix_shift) == prefix:
                    if collect:
                        out_slope[write] = slope_buf[0]
                        out_cost_step[write] = cost_step
                        out_unit[write] = i
                        out_position[write] = s
                        write += 1
                    else:
                        digit = (key >> digit_shift_u) & digit_mask
                        hist_cost[chunk, digit] += cost_step
                        hist_count[chunk, digit] += 1
                prev_net = vertex_net
                prev_cost = vertex_cost


@njit(cache=True, parallel=True)
def assign_prefix(
    profit, cost, allowed, mu, lam, hull, critical, out
):  # pragma: no cover - compiled
    """The LP solution without its fractional unit, and the Lagrangian dual sum.

    A step is taken when its slope key beats the critical step's, or ties it and comes
    first in (unit, position) order; ``critical`` = (key, unit, position). ``out`` =
    (arm, steps taken, sums, counts): per chunk sums = (cost, profit, dual sum) and units
    per arm. The dual sum, max(0, max_j p - mu_j - lam c) over all allowed options,
    ignores the hulls, so the bound stands on its own.
    """
    hull_arms, hull_sizes = hull
    critical_key, critical_unit, critical_position = critical
    arm_out, steps_taken, sums, counts = out
    n_units, n_arms = profit.shape
    has_mask = allowed.shape[0] > 0
    for chunk in prange(N_CHUNKS):
        lo, hi = chunk_bounds(n_units, chunk)
        slope_buf = np.empty(1)
        slope_key = slope_buf.view(np.uint64)
        sum_cost = 0.0
        sum_profit = 0.0
        sum_dual = 0.0
        for i in range(lo, hi):
            prev_net = 0.0
            prev_cost = 0.0
            n_taken = 0
            for s in range(hull_sizes[i]):
                arm = hull_arms[i, s]
                vertex_net = profit[i, arm] - mu[arm]
                vertex_cost = cost[i, arm]
                slope_buf[0] = step_slope(vertex_net - prev_net, vertex_cost - prev_cost)
                key = slope_key[0]
                ahead = i < critical_unit or (i == critical_unit and s < critical_position)
                if key > critical_key or (key == critical_key and ahead):
                    n_taken = s + 1
                else:
                    break
                prev_net = vertex_net
                prev_cost = vertex_cost
            steps_taken[i] = n_taken
            if n_taken > 0:
                arm = hull_arms[i, n_taken - 1]
                arm_out[i] = arm
                sum_cost += cost[i, arm]
                sum_profit += profit[i, arm]
                counts[chunk, arm] += 1
            else:
                arm_out[i] = -1
            best_reduced = 0.0
            for j in range(n_arms):
                if has_mask and not allowed[i, j]:
                    continue
                reduced = profit[i, j] - mu[j] - lam * cost[i, j]
                if reduced > best_reduced:
                    best_reduced = reduced
            sum_dual += best_reduced
        sums[chunk, 0] = sum_cost
        sums[chunk, 1] = sum_profit
        sums[chunk, 2] = sum_dual


# --------------------------------------------------------------------------- primal


@njit(cache=True, parallel=True)
def upgrade_candidates(
    profit, cost, mu, hull, steps_taken, room, floor_key, offsets, out, counts
):  # pragma: no cover - compiled
    """Upgrade steps that could still fit: each unit's hull steps after ``steps_taken``
    while each costs at most ``room`` (one that does not fit blocks the rest) and its
    slope key is at least ``floor_key``. Counted per chunk into ``counts``, and copied
    into ``out`` = (slope, cost step, unit, position) from ``offsets[chunk]`` unless
    ``out`` is empty."""
    hull_arms, hull_sizes = hull
    out_slope, out_cost_step, out_unit, out_position = out
    fill = out_slope.shape[0] > 0
    n_units = profit.shape[0]
    for chunk in prange(N_CHUNKS):
        lo, hi = chunk_bounds(n_units, chunk)
        write = offsets[chunk]
        n_found = 0
        slope_buf = np.empty(1)
        slope_key = slope_buf.view(np.uint64)
        for i in range(lo, hi):
            prev_net = 0.0
            prev_cost = 0.0
            for s in range(hull_sizes[i]):
                arm = hull_arms[i, s]
                vertex_net = profit[i, arm] - mu[arm]
                vertex_cost = cost[i, arm]
                if s >= steps_taken[i]:
                    cost_step = vertex_cost - prev_cost
                    slope_buf[0] = step_slope(vertex_net - prev_net, cost_step)
                    if cost_step > room or slope_key[0] < floor_key:
                        break
                    if fill:
                        out_slope[write] = slope_buf[0]
                        out_cost_step[write] = cost_step
                        out_unit[write] = i
                        out_position[write] = s
                        write += 1
                    n_found += 1
                prev_net = vertex_net
                prev_cost = vertex_cost
        counts[chunk] = n_found


@njit(cache=True)
def take_steps(order, steps, hull_arms, state, room, cap):  # pragma: no cover - compiled
    """Greedy continuation: take the candidate ``steps`` = (cost step, unit, position) in
    the given order while the room and the target arm's capacity allow; a step that does
    not fit blocks its unit's later steps. ``state`` = (arm, steps taken, blocked,
    counts), updated. Returns the room left."""
    step_cost, step_unit, step_position = steps
    arm, steps_taken, blocked, counts = state
    for t in range(order.shape[0]):
        step = order[t]
        unit = step_unit[step]
        position = step_position[step]
        if blocked[unit] or steps_taken[unit] != position:
            continue
        new_arm = hull_arms[unit, position]
        old_arm = arm[unit]
        extra_cost = step_cost[step]
        if extra_cost <= room and (new_arm == old_arm or counts[new_arm] + 1 <= cap[new_arm]):
            room -= extra_cost
            if old_arm >= 0:
                counts[old_arm] -= 1
            counts[new_arm] += 1
            arm[unit] = new_arm
            steps_taken[unit] = position + 1
        else:
            blocked[unit] = True
    return room


@njit(cache=True, parallel=True)
def best_moves(
    profit, cost, allowed, arm, room, counts, cap, units, moves
):  # pragma: no cover - compiled
    """The most profitable switch to another allowed arm that fits the room left, for
    the listed units (every unit when ``units`` is empty): ``moves`` = (target arm or -1,
    profit gained, extra cost)."""
    target, gain, extra_cost = moves
    n_arms = profit.shape[1]
    has_mask = allowed.shape[0] > 0
    n_listed = units.shape[0] if units.shape[0] > 0 else profit.shape[0]
    for chunk in prange(N_CHUNKS):
        lo, hi = chunk_bounds(n_listed, chunk)
        for e in range(lo, hi):
            unit = units[e] if units.shape[0] > 0 else e
            current = arm[unit]
            current_profit = profit[unit, current] if current >= 0 else 0.0
            current_cost = cost[unit, current] if current >= 0 else 0.0
            best_gain = 0.0
            best_arm = -1
            best_extra = 0.0
            for j in range(n_arms):
                if j == current or (has_mask and not allowed[unit, j]) or counts[j] + 1 > cap[j]:
                    continue
                move_gain = profit[unit, j] - current_profit
                move_cost = cost[unit, j] - current_cost
                if move_gain > best_gain and move_cost <= room:
                    best_gain, best_arm, best_extra = move_gain, j, move_cost
            target[e] = best_arm
            gain[e] = best_gain
            extra_cost[e] = best_extra


@njit(cache=True)
def apply_moves(units, extra_cost, target, arm, room, counts, cap):  # pragma: no cover - compiled
    """Apply the candidate moves in the given order while they still fit; returns (room
    left, moves applied)."""
    n_moved = 0
    for e in range(units.shape[0]):
        unit = units[e]
        new_arm = target[e]
        if extra_cost[e] <= room and counts[new_arm] + 1 <= cap[new_arm]:
            room -= extra_cost[e]
            if arm[unit] >= 0:
                counts[arm[unit]] -= 1
            counts[new_arm] += 1
            arm[unit] = new_arm
            n_moved += 1
    return room, n_moved


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def allocation_totals(profit, cost, arm, sums, counts):  # pragma: no cover - compiled
    """Per chunk: the allocation's cost and profit, and units per arm."""
    n_units = profit.shape[0]
    for chunk in range(N_CHUNKS):
        lo, hi = chunk_bounds(n_units, chunk)
        sum_cost = 0.0
        sum_profit = 0.0
        for i in range(lo, hi):
            unit_arm = arm[i]
            if unit_arm >= 0:
                sum_cost += cost[i, unit_arm]
                sum_profit += profit[i, unit_arm]
                counts[chunk, unit_arm] += 1
        sums[chunk, 0] = sum_cost
        sums[chunk, 1] = sum_profit


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def reason_codes(profit, allowed, arm, full, codes, reason):  # pragma: no cover - compiled
    """codes = (not allowed, no positive profit, capacity, budget); 0 for treated units.
    ``full[j]``: arm j has no room left."""
    n_units, n_arms = profit.shape
    has_mask = allowed.shape[0] > 0
    for chunk in range(N_CHUNKS):
        lo, hi = chunk_bounds(n_units, chunk)
        for i in range(lo, hi):
            if arm[i] >= 0:
                reason[i] = 0
                continue
            any_allowed = False
            any_positive = False
            any_room = False
            for j in range(n_arms):
                if has_mask and not allowed[i, j]:
                    continue
                any_allowed = True
                if profit[i, j] > 0:
                    any_positive = True
                    if not full[j]:
                        any_room = True
            if not any_allowed:
                reason[i] = codes[0]
            elif not any_positive:
                reason[i] = codes[1]
            elif not any_room:
                reason[i] = codes[2]
            else:
                reason[i] = codes[3]


# --------------------------------------------------------------------------- exact core


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def count_survivors(
    profit, cost, allowed, mu, lam, slack, n_survivors, best_option
):  # pragma: no cover - compiled
    """Reduced-cost fixing: how many options (incl. none) of each unit have a reduced
    profit within ``slack`` of the unit's best, and the best option (-1: none)."""
    n_units, n_arms = profit.shape
    has_mask = allowed.shape[0] > 0
    for chunk in range(N_CHUNKS):
        lo, hi = chunk_bounds(n_units, chunk)
        for i in range(lo, hi):
            best_reduced = 0.0
            best_arm = -1
            for j in range(n_arms):
                if has_mask and not allowed[i, j]:
                    continue
                reduced = profit[i, j] - mu[j] - lam * cost[i, j]
                if reduced > best_reduced:
                    best_reduced = reduced
                    best_arm = j
            n_close = 1 if best_reduced < slack else 0  # "none" has reduced profit 0
            for j in range(n_arms):
                if has_mask and not allowed[i, j]:
                    continue
                if best_reduced - (profit[i, j] - mu[j] - lam * cost[i, j]) < slack:
                    n_close += 1
            n_survivors[i] = n_close
            best_option[i] = best_arm


@njit(cache=True)
def core_bound(
    depth, used, value, room, bases, steps, counts, cap, mu
):  # pragma: no cover - compiled
    """Upper bound on the core's profit once core units [0, ``depth``) are assigned
    (``used`` of the room, worth ``value``); see ``branch_and_bound``."""
    suffix_base_cost, suffix_base_net = bases
    step_unit, step_cost, step_net = steps
    budget_left = room - used - suffix_base_cost[depth]
    if budget_left < 0.0:
        return -np.inf
    lp_value = suffix_base_net[depth]
    for e in range(step_unit.shape[0]):
        if step_unit[e] < depth:
            continue
        if step_cost[e] <= budget_left:
            budget_left -= step_cost[e]
            lp_value += step_net[e]
        else:
            lp_value += step_net[e] * (budget_left / step_cost[e])
            break
    for j in range(counts.shape[0]):
        if np.isfinite(cap[j]):
            lp_value += mu[j] * (cap[j] - counts[j])
    return value + lp_value


@njit(cache=True)
def branch_and_bound(
    options, bases, steps, room, counts, cap, mu, fixed, limits, best
):  # pragma: no cover - compiled
    """Depth-first search over the core units' surviving options for an allocation worth
    more than the incumbent. ``options`` = (offsets per unit, arm, profit, cost), best
    option first; ``fixed`` = profit of the fixed units; ``limits`` = (incumbent, eps,
    max nodes). Bound at depth t: the LP over the unassigned units' hull ``steps`` (of
    p - mu, from each unit's cheapest option, ``bases`` = suffix sums of those) plus mu
    times the capacity left. Writes the best options found into ``best``.
    Returns (value found or -inf, nodes, completed)."""
    option_offsets, option_arm, option_profit, option_cost = options
    incumbent, eps, max_nodes = limits
    suffix_base_cost = bases[0]
    n_core = option_offsets.shape[0] - 1
    found = -np.inf
    target = incumbent
    current = np.full(n_core + 1, -1, dtype=np.int64)
    next_option = np.zeros(n_core + 1, dtype=np.int64)
    used = 0.0
    value = 0.0
    nodes = 0

    if n_core == 0:
        if room >= 0.0 and (counts <= cap).all() and fixed > target + eps:
            found = fixed
        return found, nodes, True
    if core_bound(0, used, value, room, bases, steps, counts, cap, mu) + fixed <= target + eps:
        return found, nodes, True
    depth = 0
    while depth >= 0:
        option = current[depth]
        if option >= 0:  # undo the option tried last at this depth
            used -= option_cost[option]
            value -= option_profit[option]
            if option_arm[option] >= 0:
                counts[option_arm[option]] -= 1
            current[depth] = -1
        if nodes >= max_nodes:
            return found, nodes, False
        option = option_offsets[depth] + next_option[depth]
        if option >= option_offsets[depth + 1]:
            depth -= 1
            continue
        next_option[depth] += 1
        nodes += 1
        used += option_cost[option]
        value += option_profit[option]
        arm = option_arm[option]
        if arm >= 0:
            counts[arm] += 1
        current[depth] = option
        if (arm >= 0 and counts[arm] > cap[arm]) or used + suffix_base_cost[depth + 1] > room:
            continue
        if depth + 1 == n_core:
            if fixed + value > target + eps:
                target = fixed + value
                found = target
                for t in range(n_core):
                    best[t] = current[t]
            continue
        bound = core_bound(depth + 1, used, value, room, bases, steps, counts, cap, mu)
        if bound + fixed <= target + eps:
            continue
        depth += 1
        next_option[depth] = 0
        current[depth] = -1
    return found, nodes, True
