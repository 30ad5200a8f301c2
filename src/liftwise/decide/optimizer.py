"""Budget optimiser: at most one arm per unit, the most expected profit within a budget.

The problem is a multiple-choice knapsack (MCKP) with optional per-arm capacities. It is
solved by Lagrangian relaxation: the budget multiplier ``lam`` comes exactly from the
convex hull of every unit's (cost, profit) options (a radix select over hull slopes, no
full sort), capacity multipliers ``mu`` from a cutting-plane search; a greedy primal is
built from the relaxed solution, polished, and, when few units are in doubt, proved
optimal by a small branch and bound. Every answer carries its certificate: the dual value
is an upper bound on the best possible profit. See docs/optimizer.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum

import numba
import numpy as np
from numba import njit, prange
from scipy.optimize import linprog

__all__ = ["Allocation", "BudgetCurve", "Untreated", "budget_curve", "optimize_budget"]

NCHUNK = 16  # fixed split of every parallel pass: sums never depend on the thread count
_DIGIT_BITS = 12  # the radix select reads a slope's 64 bits 12 at a time (6 levels at most)
_NBINS = 1 << _DIGIT_BITS
_COLLECT = 1 << 18  # a radix bucket with at most this many segments is sorted directly
_CONTINUE = 1 << 18  # about this many steps below the critical one are continued over
_BATCH = 1 << 16  # the greedy continuation sorts this many candidate steps at a time
_SAMPLES = (1 << 17, 1 << 20)  # sample sizes the capacity multipliers are searched on first
_MAX_CORE = 2000  # the exact search runs only when at most this many units are in doubt
_PARALLEL_MIN = 100_000  # fewer units run on one thread: waking the pool costs more
_MAX_ARMS = 32767  # hull vertices are stored as int16 arm indices
_REL_EPS = 1e-9  # relative tolerance of "strictly better" in the exact search


class Untreated(IntEnum):
    """Why a unit got no arm (TREATED for a treated unit).

    Codes 5-7 equal ``liftwise.decide.guardrails.Reason``'s NEGATIVE_PROFIT, CAPACITY and
    BUDGET, so the decision table can use them as they are.
    """

    TREATED = 0
    NO_POSITIVE_PROFIT = 5  # every allowed arm has expected profit <= 0
    CAPACITY = 6  # every allowed profitable arm is full
    BUDGET = 7  # a profitable arm had room: the budget went to better units
    NOT_ALLOWED = 8  # no arm is allowed for this unit

    @property
    def label(self) -> str:
        return "" if self is Untreated.TREATED else self.name.lower()


@dataclass(frozen=True)
class Allocation:
    """One arm per unit (-1: none) with the certificate of how far from optimal it can be.

    ``upper_bound`` is the Lagrangian dual value, an upper bound on the profit of every
    feasible allocation (and on the LP relaxation), so the true optimum lies in
    ``[profit, upper_bound]`` and ``gap`` bounds the profit left on the table.
    ``status`` is "optimal" when the exact search proved no allocation beats ``profit``
    by more than a 1e-9 relative tolerance, else "feasible" (certificate only).
    """

    arm: np.ndarray  # (n,) int32, -1 = no arm
    profit: float
    cost: float
    upper_bound: float
    gap: float
    relative_gap: float
    multiplier: float  # lam: profit per unit of budget at the margin
    arm_multipliers: np.ndarray  # (k,) mu: profit per unit of each arm's capacity
    reason: np.ndarray  # (n,) int8 Untreated codes
    iterations: int  # dual evaluations (one per multiplier vector tried)
    status: str
    nodes: int  # nodes of the exact search (0 when it did not run)

    def reason_codes(self) -> np.ndarray:
        """The (n,) int8 ``Untreated`` code of every unit (0 for treated units)."""
        return self.reason

    def reason_labels(self) -> np.ndarray:
        """The (n,) reason as text ("" for treated units), e.g. for a decision table."""
        labels = np.array([""] * (max(Untreated) + 1), dtype=object)
        for code in Untreated:
            labels[code] = code.label
        return labels[self.reason]


@dataclass(frozen=True)
class BudgetCurve:
    """Profit against budget: a feasible greedy value and the LP upper bound per budget."""

    budget: np.ndarray
    profit: np.ndarray  # integral greedy (LP solution without its fractional unit)
    upper_bound: np.ndarray  # LP relaxation = Lagrangian dual optimum

    def __len__(self) -> int:
        return len(self.budget)


# --------------------------------------------------------------------------- validation


def _check_inputs(
    profit: np.ndarray,
    cost: np.ndarray,
    budget: float,
    capacity: np.ndarray | None,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """Arrays the kernels accept; ValueError naming the argument otherwise."""
    profit = _float_matrix(profit, "profit")
    cost = _float_matrix(cost, "cost")
    if cost.shape != profit.shape:
        raise ValueError(f"cost has shape {cost.shape} but profit has shape {profit.shape}")
    k = profit.shape[1]
    if k > _MAX_ARMS:
        raise ValueError(f"profit has {k} arms; at most {_MAX_ARMS} are supported")
    _finite_min(profit, "profit")
    if _finite_min(cost, "cost") < 0:
        raise ValueError("cost must be >= 0 everywhere")
    budget = float(budget)
    if not budget >= 0:  # also catches NaN
        raise ValueError(f"budget must be a number >= 0 (inf: unlimited), got {budget}")
    cap = np.full(k, np.inf)
    if capacity is not None:
        cap = np.asarray(capacity, dtype=np.float64).reshape(-1)
        if cap.shape != (k,):
            raise ValueError(f"capacity must have one entry per arm ({k}), got {cap.size}")
        if np.isnan(cap).any() or (cap < 0).any():
            raise ValueError("capacity must be >= 0 (inf or None: unlimited)")
        finite = np.isfinite(cap)
        if (cap[finite] != np.floor(cap[finite])).any():
            raise ValueError("capacity must hold whole numbers of units")
    if allowed is None:
        mask = np.empty((0, k), dtype=np.bool_)
    else:
        mask = np.asarray(allowed)
        if mask.dtype != np.bool_:
            raise ValueError(f"allowed must be a boolean array, got dtype {mask.dtype}")
        if mask.shape != profit.shape:
            raise ValueError(f"allowed has shape {mask.shape} but profit has shape {profit.shape}")
        mask = np.ascontiguousarray(mask)
    return profit, cost, budget, cap, mask


def _float_matrix(a: np.ndarray, name: str) -> np.ndarray:
    """A C-contiguous float32/float64 (units, arms) matrix with finite values."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (units, arms) array, got shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one arm (column)")
    if a.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        a = a.astype(np.float64)
    a = np.ascontiguousarray(a)
    return a


def _finite_min(a: np.ndarray, name: str) -> float:
    """The smallest entry of ``a``; ValueError if any entry is NaN or infinite."""
    if a.size == 0:
        return 0.0
    out = np.zeros((NCHUNK, 2))
    _scan_values(a, out)
    if out[:, 0].any():
        raise ValueError(f"{name} contains NaN or infinite values")
    return float(out[:, 1].min())


@contextmanager
def _threads_for(n: int) -> Iterator[None]:
    """One numba thread for small problems (results never depend on the thread count)."""
    if n >= _PARALLEL_MIN:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


# --------------------------------------------------------------------------- kernels


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def _scan_values(a, out):  # pragma: no cover - compiled
    """Per chunk of rows: (1 if a value is not finite, smallest value)."""
    n, k = a.shape
    for ch in range(NCHUNK):
        lo, hi = _chunk(n, ch)
        bad = 0.0
        low = np.inf
        for i in range(lo, hi):
            for j in range(k):
                x = a[i, j]
                if not np.isfinite(x):
                    bad = 1.0
                elif x < low:
                    low = x
        out[ch, 0] = bad
        out[ch, 1] = low


@njit(cache=True)
def _chunk(n, c):  # pragma: no cover - compiled
    """Units [lo, hi) of chunk ``c`` of NCHUNK."""
    return c * n // NCHUNK, (c + 1) * n // NCHUNK


@njit(cache=True)
def _slope(dq, dc):  # pragma: no cover - compiled
    """Profit per cost of a hull segment; a free upgrade is infinitely steep."""
    return dq / dc if dc > 0.0 else np.inf


@njit(cache=True, inline="always")
def _row_hull(p, c, mu, allowed, i, base, scratch, out):  # pragma: no cover - compiled
    """Upper concave hull of row i's options q = p - mu above ``base`` = (q, cost);
    ``allowed`` is the (n, k) mask or empty (every option allowed).

    Writes the hull's option indices into ``out`` by increasing cost (strictly increasing
    q, non-increasing slopes; collinear points are kept) and returns how many. Options
    with q <= base q are dominated by the base (costs are >= its cost); ties in (cost, q)
    keep the lower index. ``scratch`` = (sq, sc, order, hq, hc), each of the row's length.
    """
    base_q, base_c = base
    sq, sc, order, hq, hc = scratch
    has_mask = allowed.shape[0] > 0
    m = 0
    for j in range(p.shape[1]):  # insertion sort by (cost asc, q desc, index asc)
        if has_mask and not allowed[i, j]:
            continue
        q = p[i, j] - mu[j]
        if q <= base_q:
            continue
        cj = c[i, j]
        t = m
        while t > 0 and (sc[t - 1] > cj or (sc[t - 1] == cj and sq[t - 1] < q)):
            sq[t] = sq[t - 1]
            sc[t] = sc[t - 1]
            order[t] = order[t - 1]
            t -= 1
        sq[t] = q
        sc[t] = cj
        order[t] = j
        m += 1
    h = 0
    for t in range(m):
        q = sq[t]
        cj = sc[t]
        if q <= (hq[h - 1] if h > 0 else base_q):
            continue  # costs at least as much, earns no more
        while h > 0:
            tq, tc = hq[h - 1], hc[h - 1]
            pq = hq[h - 2] if h > 1 else base_q
            pc = hc[h - 2] if h > 1 else base_c
            if (tq - pq) * (cj - tc) < (q - tq) * (tc - pc):  # top below the chord
                h -= 1
            else:
                break
        hq[h] = q
        hc[h] = cj
        out[h] = order[t]
        h += 1
    return h


@njit(cache=True, parallel=True)
def _hulls(profit, cost, allowed, mu, vert, nvert):  # pragma: no cover - compiled
    """Every unit's hull of (cost, profit - mu) from "nothing" at (0, 0)."""
    n, k = profit.shape
    for ch in prange(NCHUNK):
        lo, hi = _chunk(n, ch)
        scratch = (np.empty(k), np.empty(k), np.empty(k, dtype=np.int64), np.empty(k), np.empty(k))
        out = np.empty(k, dtype=np.int64)
        for i in range(lo, hi):
            h = _row_hull(profit, cost, mu, allowed, i, (0.0, 0.0), scratch, out)
            for s in range(h):
                vert[i, s] = out[s]
            nvert[i] = h


@njit(cache=True, parallel=True)
def _radix_pass(profit, cost, mu, hull, select, hist, offsets, out):  # pragma: no cover - compiled
    """One radix-select pass over the bits of the hull steps' slopes.

    ``select`` = (prefix, bits below it, digit shift): steps whose key shifted right by
    the bits below equals ``prefix`` (every step when that shift is 64) either add their
    cost to ``hist`` = (cost, count) per chunk and digit ``(key >> digit shift) & mask``
    (``out`` empty) or are copied into ``out`` = (slope, cost, unit, position) in unit
    order from ``offsets[chunk]``. Non-negative doubles order like their bit patterns,
    so the select is exact.
    """
    vert, nvert = hull
    hist_dc, hist_cnt = hist
    out_slope, out_dc, out_unit, out_pos = out
    collect = out_slope.shape[0] > 0
    n = profit.shape[0]
    prefix, below, digit_shift = select
    every = below >= 64
    pshift = np.uint64(0 if every else below)
    dshift = np.uint64(digit_shift)
    mask = np.uint64(_NBINS - 1)
    for ch in prange(NCHUNK):
        lo, hi = _chunk(n, ch)
        buf = np.empty(1)
        bits = buf.view(np.uint64)
        w = offsets[ch]
        for i in range(lo, hi):
            pq = 0.0
            pc = 0.0
            for s in range(nvert[i]):
                v = vert[i, s]
                qv = profit[i, v] - mu[v]
                cv = cost[i, v]
                dc = cv - pc
                buf[0] = _slope(qv - pq, dc)
                key = bits[0]
                if every or (key >> pshift) == prefix:
                    if collect:
                        out_slope[w] = buf[0]
                        out_dc[w] = dc
                        out_unit[w] = i
                        out_pos[w] = s
                        w += 1
                    else:
                        d = (key >> dshift) & mask
                        hist_dc[ch, d] += dc
                        hist_cnt[ch, d] += 1
                pq = qv
                pc = cv


@njit(cache=True, parallel=True)
def _assign_prefix(
    profit, cost, allowed, mu, lam, hull, critical, out
):  # pragma: no cover - compiled
    """The LP solution without its fractional unit, and the Lagrangian dual sum.

    A step is taken when its slope key beats the critical step's, or ties it and comes
    first in (unit, position) order; ``critical`` = (key, unit, position). ``out`` =
    (arm, pos, sums, counts): per chunk sums = (cost, profit, dual sum) and units per arm.
    The dual sum, max(0, max_j p - mu_j - lam c) over all allowed options, ignores the
    hulls, so the bound stands on its own.
    """
    vert, nvert = hull
    key_star, u_star, s_star = critical
    arm, pos, sums, counts = out
    n, k = profit.shape
    has_mask = allowed.shape[0] > 0
    for ch in prange(NCHUNK):
        lo, hi = _chunk(n, ch)
        buf = np.empty(1)
        bits = buf.view(np.uint64)
        s_cost = 0.0
        s_profit = 0.0
        s_dual = 0.0
        for i in range(lo, hi):
            pq = 0.0
            pc = 0.0
            m = 0
            for s in range(nvert[i]):
                v = vert[i, s]
                qv = profit[i, v] - mu[v]
                cv = cost[i, v]
                buf[0] = _slope(qv - pq, cv - pc)
                key = bits[0]
                ahead = i < u_star or (i == u_star and s < s_star)
                if key > key_star or (key == key_star and ahead):
                    m = s + 1
                else:
                    break
                pq = qv
                pc = cv
            pos[i] = m
            if m > 0:
                v = vert[i, m - 1]
                arm[i] = v
                s_cost += cost[i, v]
                s_profit += profit[i, v]
                counts[ch, v] += 1
            else:
                arm[i] = -1
            best = 0.0
            for j in range(k):
                if has_mask and not allowed[i, j]:
                    continue
                r = profit[i, j] - mu[j] - lam * cost[i, j]
                if r > best:
                    best = r
            s_dual += best
        sums[ch, 0] = s_cost
        sums[ch, 1] = s_profit
        sums[ch, 2] = s_dual


@njit(cache=True, parallel=True)
def _candidates(
    profit, cost, mu, hull, pos, room, floor, offsets, out, counts
):  # pragma: no cover - compiled
    """Upgrade steps that could still fit: each unit's hull steps after ``pos`` while
    each costs at most ``room`` (one that does not fit blocks the rest) and its slope key
    is at least ``floor``. Counted per chunk into ``counts``, and copied into ``out`` =
    (slope, cost, unit, position) from ``offsets[chunk]`` unless ``out`` is empty."""
    vert, nvert = hull
    out_slope, out_dc, out_unit, out_pos = out
    fill = out_slope.shape[0] > 0
    n = profit.shape[0]
    for ch in prange(NCHUNK):
        lo, hi = _chunk(n, ch)
        w = offsets[ch]
        cnt = 0
        buf = np.empty(1)
        bits = buf.view(np.uint64)
        for i in range(lo, hi):
            pq = 0.0
            pc = 0.0
            for s in range(nvert[i]):
                v = vert[i, s]
                qv = profit[i, v] - mu[v]
                cv = cost[i, v]
                if s >= pos[i]:
                    dc = cv - pc
                    buf[0] = _slope(qv - pq, dc)
                    if dc > room or bits[0] < floor:
                        break
                    if fill:
                        out_slope[w] = buf[0]
                        out_dc[w] = dc
                        out_unit[w] = i
                        out_pos[w] = s
                        w += 1
                    cnt += 1
                pq = qv
                pc = cv
        counts[ch] = cnt


@njit(cache=True)
def _scan(order, steps, vert, state, room, cap):  # pragma: no cover - compiled
    """Greedy continuation: take the candidate ``steps`` = (cost, unit, position) in the
    given order while the room and the target arm's capacity allow; a step that does not
    fit blocks its unit's later steps. ``state`` = (arm, pos, blocked, counts), updated."""
    c_dc, c_unit, c_pos = steps
    arm, pos, blocked, counts = state
    for t in range(order.shape[0]):
        e = order[t]
        i = c_unit[e]
        s = c_pos[e]
        if blocked[i] or pos[i] != s:
            continue
        new = vert[i, s]
        old = arm[i]
        dc = c_dc[e]
        if dc <= room and (new == old or counts[new] + 1 <= cap[new]):
            room -= dc
            if old >= 0:
                counts[old] -= 1
            counts[new] += 1
            arm[i] = new
            pos[i] = s + 1
        else:
            blocked[i] = True
    return room


@njit(cache=True, parallel=True)
def _best_moves(
    profit, cost, allowed, arm, room, counts, cap, units, moves
):  # pragma: no cover - compiled
    """The most profitable switch to another allowed arm that fits the room left, for
    the listed units (every unit when ``units`` is empty): ``moves`` = (target arm or -1,
    profit gained, extra cost)."""
    target, gain, dcost = moves
    k = profit.shape[1]
    has_mask = allowed.shape[0] > 0
    n = units.shape[0] if units.shape[0] > 0 else profit.shape[0]
    for ch in prange(NCHUNK):
        lo, hi = _chunk(n, ch)
        for e in range(lo, hi):
            i = units[e] if units.shape[0] > 0 else e
            a = arm[i]
            p0 = profit[i, a] if a >= 0 else 0.0
            c0 = cost[i, a] if a >= 0 else 0.0
            best = 0.0
            bj = -1
            bd = 0.0
            for j in range(k):
                if j == a or (has_mask and not allowed[i, j]) or counts[j] + 1 > cap[j]:
                    continue
                g = profit[i, j] - p0
                d = cost[i, j] - c0
                if g > best and d <= room:
                    best, bj, bd = g, j, d
            target[e] = bj
            gain[e] = best
            dcost[e] = bd


@njit(cache=True)
def _apply_moves(units, dcost, target, arm, room, counts, cap):  # pragma: no cover - compiled
    """Apply the candidate moves in the given order while they still fit."""
    moved = 0
    for e in range(units.shape[0]):
        i = units[e]
        j = target[e]
        if dcost[e] <= room and counts[j] + 1 <= cap[j]:
            room -= dcost[e]
            if arm[i] >= 0:
                counts[arm[i]] -= 1
            counts[j] += 1
            arm[i] = j
            moved += 1
    return room, moved


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def _survivors(profit, cost, allowed, mu, lam, slack, nsurv, choice):  # pragma: no cover - compiled
    """Reduced-cost fixing: how many options (incl. none) of each unit have a reduced
    profit within ``slack`` of the unit's best, and the best option (-1: none)."""
    n, k = profit.shape
    has_mask = allowed.shape[0] > 0
    for ch in range(NCHUNK):
        lo, hi = _chunk(n, ch)
        for i in range(lo, hi):
            best = 0.0
            bj = -1
            for j in range(k):
                if has_mask and not allowed[i, j]:
                    continue
                r = profit[i, j] - mu[j] - lam * cost[i, j]
                if r > best:
                    best = r
                    bj = j
            cnt = 1 if best < slack else 0  # "none" has reduced profit 0
            for j in range(k):
                if has_mask and not allowed[i, j]:
                    continue
                if best - (profit[i, j] - mu[j] - lam * cost[i, j]) < slack:
                    cnt += 1
            nsurv[i] = cnt
            choice[i] = bj


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def _totals(profit, cost, arm, sums, counts):  # pragma: no cover - compiled
    """Per chunk: the allocation's cost and profit, and units per arm."""
    n = profit.shape[0]
    for ch in range(NCHUNK):
        lo, hi = _chunk(n, ch)
        sc = 0.0
        sp = 0.0
        for i in range(lo, hi):
            a = arm[i]
            if a >= 0:
                sc += cost[i, a]
                sp += profit[i, a]
                counts[ch, a] += 1
        sums[ch, 0] = sc
        sums[ch, 1] = sp


@njit(cache=True)
def _core_bound(t, used, val, room, bases, steps, counts, cap, mu):  # pragma: no cover - compiled
    """Upper bound on the core's profit once units [0, t) are assigned (see below)."""
    sb_c, sb_q = bases
    seg_unit, seg_dc, seg_dq = steps
    b = room - used - sb_c[t]
    if b < 0.0:
        return -np.inf
    lp = sb_q[t]
    for e in range(seg_unit.shape[0]):
        if seg_unit[e] < t:
            continue
        if seg_dc[e] <= b:
            b -= seg_dc[e]
            lp += seg_dq[e]
        else:
            lp += seg_dq[e] * (b / seg_dc[e])
            break
    for j in range(counts.shape[0]):
        if np.isfinite(cap[j]):
            lp += mu[j] * (cap[j] - counts[j])
    return val + lp


@njit(cache=True)
def _branch_and_bound(
    options, bases, steps, room, counts, cap, mu, fixed, limits, best
):  # pragma: no cover - compiled
    """Depth-first search over the core units' surviving options for an allocation worth
    more than the incumbent. ``options`` = (offsets per unit, arm, profit, cost), best
    option first; ``fixed`` = profit of the fixed units; ``limits`` = (incumbent, eps,
    max nodes). Bound at depth t: the LP over the unassigned units' hull ``steps`` (of
    p - mu, from each unit's cheapest option, ``bases`` = suffix sums of those) plus mu
    times the capacity left. Writes the best options found into ``best``.
    Returns (value found or -inf, nodes, completed)."""
    opt_off, opt_arm, opt_p, opt_c = options
    incumbent, eps, max_nodes = limits
    sb_c = bases[0]
    m = opt_off.shape[0] - 1
    found = -np.inf
    z = incumbent
    cur = np.full(m + 1, -1, dtype=np.int64)
    nxt = np.zeros(m + 1, dtype=np.int64)
    used = 0.0
    val = 0.0
    nodes = 0

    if m == 0:
        if room >= 0.0 and (counts <= cap).all() and fixed > z + eps:
            found = fixed
        return found, nodes, True
    if _core_bound(0, used, val, room, bases, steps, counts, cap, mu) + fixed <= z + eps:
        return found, nodes, True
    depth = 0
    while depth >= 0:
        o = cur[depth]
        if o >= 0:  # undo the option tried last at this depth
            used -= opt_c[o]
            val -= opt_p[o]
            if opt_arm[o] >= 0:
                counts[opt_arm[o]] -= 1
            cur[depth] = -1
        if nodes >= max_nodes:
            return found, nodes, False
        o = opt_off[depth] + nxt[depth]
        if o >= opt_off[depth + 1]:
            depth -= 1
            continue
        nxt[depth] += 1
        nodes += 1
        used += opt_c[o]
        val += opt_p[o]
        a = opt_arm[o]
        if a >= 0:
            counts[a] += 1
        cur[depth] = o
        if (a >= 0 and counts[a] > cap[a]) or used + sb_c[depth + 1] > room:
            continue
        if depth + 1 == m:
            if fixed + val > z + eps:
                z = fixed + val
                found = z
                for t in range(m):
                    best[t] = cur[t]
            continue
        bound = _core_bound(depth + 1, used, val, room, bases, steps, counts, cap, mu)
        if bound + fixed <= z + eps:
            continue
        depth += 1
        nxt[depth] = 0
        cur[depth] = -1
    return found, nodes, True


# --------------------------------------------------------------------------- relaxation


@dataclass
class _Relaxed:
    """The LP relaxation at fixed capacity multipliers ``mu``, solved exactly in ``lam``."""

    mu: np.ndarray
    lam: float
    dual: float  # L(lam, mu): an upper bound on every feasible allocation
    vert: np.ndarray  # (n, k) int16 hull vertices of (cost, profit - mu)
    nvert: np.ndarray  # (n,) int16
    arm: np.ndarray  # (n,) int32 the LP solution without its fractional unit
    pos: np.ndarray  # (n,) int16 hull steps taken by each unit
    prefix_cost: float
    counts: np.ndarray  # (k,) int64 units per arm in ``arm``
    slope_counts: np.ndarray  # (k,) float LP units per arm, fractional unit included
    floor: np.uint64  # slope key above which the greedy continuation looks (see _critical)


def _critical(profit, cost, mu, vert, nvert, budget):
    """The LP's critical hull step: (key, unit, position, fraction taken, floor key).

    Steps sorted by (slope desc, unit, position) are taken while the budget lasts; the
    first that does not fit is critical and its slope is the optimal ``lam``. Found with
    a radix select on the slope bits, _DIGIT_BITS at a time, until the critical bucket
    holds at most _COLLECT steps; those are sorted. The floor key bounds about the
    steepest _CONTINUE steps below the critical one, which the greedy continuation
    then considers (0: all).
    """
    n = profit.shape[0]
    hull = (vert, nvert)
    hist = (np.zeros((NCHUNK, _NBINS)), np.zeros((NCHUNK, _NBINS), dtype=np.int64))
    no_offsets = np.zeros(NCHUNK, dtype=np.int64)
    room = budget
    prefix, above_bits, floor = 0, 64, np.uint64(0)  # above_bits: key bits not yet fixed
    while True:
        width = min(_DIGIT_BITS, above_bits)
        shift = above_bits - width
        hist[0][:] = 0.0
        hist[1][:] = 0
        select = (np.uint64(prefix), above_bits, shift)
        _radix_pass(profit, cost, mu, hull, select, hist, no_offsets, _steps(0))
        total, count = hist[0].sum(axis=0), hist[1].sum(axis=0)
        above = np.cumsum(total[::-1])  # cost of every step at or above each digit
        idx = int(np.searchsorted(above, room, side="right"))
        if idx == _NBINS:
            if above_bits == 64:
                return np.uint64(0), n, 0, 0.0, floor  # everything fits: lam = 0
            idx = int(np.flatnonzero(count[::-1])[-1])  # rounding: the lowest non-empty digit
        digit = _NBINS - 1 - idx
        room -= above[idx] - total[digit]
        below = np.cumsum(count[digit::-1])  # steps at or below the critical digit
        if below[-1] >= _CONTINUE:  # a finer floor for the greedy continuation
            floor_digit = digit - int(np.searchsorted(below, _CONTINUE))
            floor = np.uint64((prefix << width | floor_digit) << shift)
        prefix = prefix << width | digit
        above_bits = shift
        if count[digit] <= _COLLECT or above_bits == 0:
            break
    out = _steps(int(count[digit]))
    _radix_pass(
        profit,
        cost,
        mu,
        hull,
        (np.uint64(prefix), above_bits, 0),
        hist,
        _offsets(hist[1][:, digit]),
        out,
    )
    slope, dc, unit, step = out
    order = np.argsort(-slope, kind="stable")  # ties: unit, then position
    cum = np.cumsum(dc[order])
    t = min(int(np.searchsorted(cum, room, side="right")), slope.size - 1)
    e = order[t]
    theta = min(max((room - (cum[t] - dc[e])) / dc[e], 0.0), 1.0) if dc[e] > 0 else 1.0
    return np.float64(slope[e]).view(np.uint64), int(unit[e]), int(step[e]), theta, floor


def _steps(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrays for ``size`` hull steps: (slope, cost, unit, position)."""
    return np.empty(size), np.empty(size), np.empty(size, np.int64), np.empty(size, np.int64)


def _offsets(per_chunk: np.ndarray) -> np.ndarray:
    """Where each chunk starts writing, given how many items each chunk has."""
    return np.concatenate(([0], np.cumsum(per_chunk)[:-1])).astype(np.int64)


def _relax(profit, cost, allowed, mu, budget, cap) -> _Relaxed:
    """Exact LP relaxation in ``lam`` for fixed ``mu``: hulls, critical step, dual value."""
    n, k = profit.shape
    vert = np.zeros((n, k), dtype=np.int16)
    nvert = np.zeros(n, dtype=np.int16)
    _hulls(profit, cost, allowed, mu, vert, nvert)
    key, u_star, s_star, theta, floor = _critical(profit, cost, mu, vert, nvert, budget)
    lam = float(np.uint64(key).view(np.float64))
    arm = np.empty(n, dtype=np.int32)
    pos = np.empty(n, dtype=np.int16)
    sums = np.zeros((NCHUNK, 3))
    counts = np.zeros((NCHUNK, k), dtype=np.int64)
    critical = (np.uint64(key), u_star, s_star)
    _assign_prefix(
        profit, cost, allowed, mu, lam, (vert, nvert), critical, (arm, pos, sums, counts)
    )
    total = sums.sum(axis=0)
    counts = counts.sum(axis=0)
    capped = np.isfinite(cap)
    dual = float(total[2]) + float(np.dot(mu[capped], cap[capped]))
    if lam > 0:
        dual += lam * budget
    slope_counts = counts.astype(np.float64)
    if u_star < n:  # the fractional unit moves theta of the way along its critical step
        if s_star > 0:
            slope_counts[vert[u_star, s_star - 1]] -= theta
        slope_counts[vert[u_star, s_star]] += theta
    prefix_cost = float(total[0])
    return _Relaxed(mu, lam, dual, vert, nvert, arm, pos, prefix_cost, counts, slope_counts, floor)


def _capacity_multipliers(
    profit, cost, allowed, budget, cap, tol, max_iter
) -> tuple[_Relaxed, int]:
    """Minimise g(mu) = min_lam L(lam, mu) over mu >= 0 (one multiplier per capped arm).

    mu = 0 is optimal when the LP at mu = 0 respects every capacity. Otherwise a
    trust-region cutting-plane search runs on evenly spread samples of _SAMPLES units
    (budget and capacities scaled to each), each starting from the last one's
    multipliers, then on all units. Any mu gives a valid bound; the search makes it tight.
    Returns the relaxation at the best mu and the number of dual evaluations.
    """
    n, k = profit.shape
    capped = np.flatnonzero(np.isfinite(cap))
    rel = _relax(profit, cost, allowed, np.zeros(k), budget, cap)
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
        p, c = profit[rows], cost[rows]
        mask = allowed if allowed.shape[0] == 0 else allowed[rows]
        sub = _relax(p, c, mask, rel.mu, budget * share, cap * share)
        # the sample's optimum is off by ~1/sqrt(size), costing ~1/size of g: no need to be finer
        limits = (max(tol, 1.0 / size), max_iter)
        sub, used = _cutting_planes(
            p, c, mask, budget * share, cap * share, sub, upper, half, limits
        )
        iterations += used + 1
        half = np.maximum(sub.mu / np.sqrt(size), 1e-6 * upper)  # the next search starts near it
        rel = sub
    if rel.arm.shape[0] != n:
        rel = _relax(profit, cost, allowed, rel.mu, budget, cap)
        iterations += 1
    rel, used = _cutting_planes(
        profit, cost, allowed, budget, cap, rel, upper, half, (tol, max_iter)
    )
    return rel, iterations + used


def _cutting_planes(
    profit, cost, allowed, budget, cap, rel, upper, half, limits
) -> tuple[_Relaxed, int]:
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
        rel = _relax(profit, cost, allowed, mu, budget, cap)
        evaluations += 1
        if rel.dual <= best.dual - 0.1 * predicted:
            if (np.abs(mu[capped] - centre) >= 0.99 * half).any():
                half = half * 2.0
            best = rel
        elif rel.dual > best.dual:
            half = half * 0.5
    return best, evaluations


# --------------------------------------------------------------------------- primal


def _greedy_primal(profit, cost, allowed, budget, cap, rel: _Relaxed) -> np.ndarray:
    """A feasible allocation from the relaxed one: the LP solution without its fractional
    unit, minus each over-full arm's weakest units (approximate multipliers can overfill
    an arm), then the greedy continuation over the next hull steps in slope order, then
    single-unit moves to any allowed arm. Works in place on ``rel``'s arrays."""
    arm, pos, counts = rel.arm, rel.pos, rel.counts
    room = budget - rel.prefix_cost
    for j in np.flatnonzero(counts > cap):
        units = np.flatnonzero(arm == j)
        p, c = profit[units, j].astype(np.float64), cost[units, j].astype(np.float64)
        drop = units[_top(rel.lam * c + rel.mu[j] - p, int(counts[j] - cap[j]))]
        arm[drop] = -1
        pos[drop] = 0
        counts[j] -= drop.size
        room += float(cost[drop, j].sum())
    hull, per_chunk = (rel.vert, rel.nvert), np.zeros(NCHUNK, dtype=np.int64)
    args = (profit, cost, rel.mu, hull, pos, room, rel.floor)
    _candidates(*args, per_chunk, _steps(0), per_chunk)
    out = _steps(int(per_chunk.sum()))
    _candidates(*args, _offsets(per_chunk), out, per_chunk)
    state = (arm, pos, np.zeros(arm.shape[0], dtype=np.bool_), counts)
    room = _continue(out, rel.vert, state, room, cap)
    del out
    _polish(profit, cost, allowed, arm, room, counts, cap)
    return arm


def _continue(candidates, vert, state, room, cap) -> float:
    """Scan the candidate steps in (slope desc, unit, position) order, sorting only the
    steepest _BATCH at a time: the scan is over once no remaining step fits the room."""
    slope, dc, unit, step = candidates
    rest = np.arange(slope.size)
    while rest.size:
        s = slope[rest]
        if rest.size > _BATCH:
            cut = rest.size - _BATCH
            sel = s >= np.partition(s, cut)[cut]  # ties at the cut join the batch
        else:
            sel = np.ones(rest.size, dtype=bool)
        batch = rest[sel]
        room = _scan(
            batch[np.argsort(-slope[batch], kind="stable")],
            (dc, unit, step),
            vert,
            state,
            room,
            cap,
        )
        rest = rest[~sel]
        if rest.size and room < dc[rest].min():
            break
    return room


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` largest values, largest first; ties: lower index first."""
    if count >= values.size:
        return np.argsort(-values, kind="stable")
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    cut = np.partition(values, values.size - count)[values.size - count]
    above = np.flatnonzero(values > cut)
    idx = np.concatenate([above, np.flatnonzero(values == cut)[: count - above.size]])
    return idx[np.argsort(-values[idx], kind="stable")]


def _polish(profit, cost, allowed, arm, room, counts, cap, rounds=3) -> None:
    """Single-unit moves (upgrade, switch, treat) by decreasing gain while they fit.
    Rounds after the first revisit only the units that had a move (room only shrinks)."""
    units = np.empty(0, dtype=np.int64)  # first round: every unit
    for _ in range(rounds):
        size = units.size or profit.shape[0]
        moves = (np.empty(size, dtype=np.int64), np.empty(size), np.empty(size))
        _best_moves(profit, cost, allowed, arm, room, counts, cap, units, moves)
        movable = np.flatnonzero(moves[0] >= 0)
        units = movable if units.size == 0 else units[movable]  # later rounds: these only
        if units.size == 0:
            break
        to, gain, dcost = (m[movable] for m in moves)
        del moves
        keep = np.ones(units.size, dtype=bool)
        for j in np.flatnonzero(np.isfinite(cap)):  # a capped arm takes its best few only
            into = np.flatnonzero(to == j)
            keep[into] = False
            keep[into[_top(gain[into], int(cap[j] - counts[j]))]] = True
        order = np.flatnonzero(keep)
        order = order[np.argsort(-gain[order], kind="stable")]
        room, moved = _apply_moves(units[order], dcost[order], to[order], arm, room, counts, cap)
        if moved == 0:
            break


def _totals_of(profit, cost, arm) -> tuple[float, float, np.ndarray]:
    """(cost, profit, units per arm) of an allocation, summed in a fixed order."""
    sums = np.zeros((NCHUNK, 2))
    counts = np.zeros((NCHUNK, profit.shape[1]), dtype=np.int64)
    _totals(profit, cost, arm, sums, counts)
    total = sums.sum(axis=0)
    return float(total[0]), float(total[1]), counts.sum(axis=0)


def _repair_budget(profit, cost, arm, budget) -> None:
    """Rounding only: drop the treated units with the least profit per cost until the
    allocation's cost, summed as reported, is within the budget."""
    spent, _, _ = _totals_of(profit, cost, arm)
    if spent <= budget:
        return
    treated = np.flatnonzero(arm >= 0)
    c = cost[treated, arm[treated]].astype(np.float64)
    p = profit[treated, arm[treated]].astype(np.float64)
    ratio = np.where(c > 0, p / np.where(c > 0, c, 1.0), np.inf)
    for i in treated[np.argsort(ratio, kind="stable")]:
        spent -= float(cost[i, arm[i]])
        arm[i] = -1
        if spent < budget:
            break
    while _totals_of(profit, cost, arm)[0] > budget:  # pragma: no cover - float paranoia
        arm[np.flatnonzero(arm >= 0)[0]] = -1


# --------------------------------------------------------------------------- exact core


def _exact_core(profit, cost, allowed, budget, cap, rel: _Relaxed, arm, value, max_nodes):
    """Reduced-cost fixing plus branch and bound on the units still in doubt.

    Any allocation worth more than ``value`` loses less than G = dual - value of reduced
    profit p - lam c - mu, so each unit can only use options within G of its best; units
    left with one option are fixed. If at most _MAX_CORE units remain, a depth-first
    search over them finds the optimum (or stops at ``max_nodes``).
    Returns (new arm or None, nodes, proven optimal).
    """
    n, k = profit.shape
    eps = _REL_EPS * max(1.0, abs(rel.dual))
    slack = rel.dual - value
    if slack <= eps:
        return None, 0, True
    nsurv = np.empty(n, dtype=np.int64)
    choice = np.empty(n, dtype=np.int32)
    _survivors(profit, cost, allowed, rel.mu, rel.lam, slack + eps, nsurv, choice)
    core = np.flatnonzero(nsurv >= 2)
    if core.size > _MAX_CORE or max_nodes <= 0:
        return None, 0, False
    fixed_arm = choice.copy()
    fixed_arm[core] = -1
    fixed_cost, fixed_profit, fixed_counts = _totals_of(profit, cost, fixed_arm)
    lam, mu = rel.lam, rel.mu
    # core options, each unit's sorted by reduced-profit loss d (best first)
    P = profit[core].astype(np.float64)
    C = cost[core].astype(np.float64)
    ok = np.ones_like(P, dtype=bool) if allowed.shape[0] == 0 else allowed[core]
    R = np.where(ok, P - mu - lam * C, -np.inf)
    top = np.maximum(R.max(axis=1), 0.0)
    # option 0 of every core unit is "none"; option j + 1 is arm j
    arms = np.tile(np.arange(-1, k), (core.size, 1))
    loss = np.column_stack([top, top[:, None] - R])
    opt_p = np.column_stack([np.zeros(core.size), P])
    opt_c = np.column_stack([np.zeros(core.size), C])
    keep = loss < slack + eps
    # branch on the most expensive units first: their choice moves the budget most
    unit_order = np.argsort(-np.where(keep, opt_c, 0.0).max(axis=1), kind="stable")
    o_arm, o_p, o_c, off = [], [], [], [0]
    base_c, base_q = np.zeros(core.size), np.zeros(core.size)
    seg_u, seg_dc, seg_dq = [], [], []
    scratch = (
        np.empty(k + 1),
        np.empty(k + 1),
        np.empty(k + 1, np.int64),
        np.empty(k + 1),
        np.empty(k + 1),
    )
    hull_ok = keep.copy()
    hull_buf = np.empty(k + 1, dtype=np.int64)
    mu_ext = np.concatenate([[0.0], mu])
    for t, u in enumerate(unit_order):
        idx = np.flatnonzero(keep[u])
        idx = idx[np.argsort(loss[u, idx], kind="stable")]
        o_arm.append(arms[u, idx])
        o_p.append(opt_p[u, idx])
        o_c.append(opt_c[u, idx])
        off.append(off[-1] + idx.size)
        q = opt_p[u] - mu_ext
        c = opt_c[u]
        cheapest = idx[np.lexsort((-q[idx], c[idx]))[0]]
        base_c[t], base_q[t] = c[cheapest], q[cheapest]
        hull_ok[u, cheapest] = False  # the base itself
        h = _row_hull(opt_p, opt_c, mu_ext, hull_ok, u, (base_q[t], base_c[t]), scratch, hull_buf)
        pq, pc = base_q[t], base_c[t]
        for v in hull_buf[:h]:
            seg_u.append(t)
            seg_dc.append(c[v] - pc)
            seg_dq.append(q[v] - pq)
            pq, pc = q[v], c[v]
    seg_dc_a, seg_dq_a = np.array(seg_dc, dtype=np.float64), np.array(seg_dq, dtype=np.float64)
    seg_slope = np.where(seg_dc_a > 0, seg_dq_a / np.where(seg_dc_a > 0, seg_dc_a, 1.0), np.inf)
    seg_order = np.argsort(-seg_slope, kind="stable")
    sb_c = np.concatenate([np.cumsum(base_c[::-1])[::-1], [0.0]])
    sb_q = np.concatenate([np.cumsum(base_q[::-1])[::-1], [0.0]])
    option_arm = np.concatenate([np.empty(0, np.int64), *o_arm]).astype(np.int64)
    options = (
        np.array(off),
        option_arm,
        np.concatenate([np.empty(0), *o_p]),
        np.concatenate([np.empty(0), *o_c]),
    )
    steps = (np.array(seg_u, dtype=np.int64)[seg_order], seg_dc_a[seg_order], seg_dq_a[seg_order])
    best = np.full(core.size, -1, dtype=np.int64)
    found, nodes, complete = _branch_and_bound(
        options,
        (sb_c, sb_q),
        steps,
        budget - fixed_cost,
        fixed_counts,
        cap,
        np.where(np.isfinite(cap), mu, 0.0),
        fixed_profit,
        (value, eps, max_nodes),
        best,
    )
    if not np.isfinite(found):
        return None, nodes, complete
    new = fixed_arm
    new[core[unit_order]] = option_arm[best]
    return new, nodes, complete


# --------------------------------------------------------------------------- public API


def optimize_budget(
    profit: np.ndarray,
    cost: np.ndarray,
    budget: float,
    *,
    capacity: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    tol: float = 1e-5,
    max_iter: int = 100,
    max_nodes: int = 1_000_000,
) -> Allocation:
    """Give each unit at most one arm to maximise total expected profit.

    Constraints: total expected cost <= ``budget``; at most ``capacity[j]`` units on arm
    j (inf: unlimited); only cells with ``allowed`` True. ``profit`` and ``cost`` are
    (n, k) float32/float64, cost >= 0. Options with profit <= 0 are never used; options
    that cost nothing and earn something are used even with a zero budget.

    ``tol`` and ``max_iter`` bound the capacity-multiplier search (unused without
    capacities, where the multiplier is exact); ``max_nodes`` bounds the exact search on
    the units in doubt (0: skip it). Without capacities ``gap`` never exceeds the largest
    single-unit profit; see docs/optimizer.md for what holds with capacities.
    """
    profit, cost, budget, cap, allowed = _check_inputs(profit, cost, budget, capacity, allowed)
    n, k = profit.shape
    if n == 0:
        nothing = np.empty(0, np.int32)
        return Allocation(
            nothing,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            np.zeros(k),
            nothing.astype(np.int8),
            0,
            "optimal",
            0,
        )
    with _threads_for(n):
        rel, iterations = _capacity_multipliers(profit, cost, allowed, budget, cap, tol, max_iter)
        arm = _greedy_primal(profit, cost, allowed, budget, cap, rel)
        _repair_budget(profit, cost, arm, budget)
        spent, value, counts = _totals_of(profit, cost, arm)
        new, nodes, proven = _exact_core(
            profit, cost, allowed, budget, cap, rel, arm, value, max_nodes
        )
        if new is not None:
            _repair_budget(profit, cost, new, budget)
            new_spent, new_value, new_counts = _totals_of(profit, cost, new)
            if new_value > value:
                arm, spent, value, counts = new, new_spent, new_value, new_counts
        reason = _reasons(profit, allowed, arm, counts, cap)
    _check_feasible(arm, allowed, spent, budget, counts, cap)
    upper = max(rel.dual, value)  # a feasible value above the computed dual is rounding
    gap = upper - value
    return Allocation(
        arm=arm,
        profit=value,
        cost=spent,
        upper_bound=upper,
        gap=gap,
        relative_gap=gap / max(abs(upper), np.finfo(np.float64).tiny),
        multiplier=rel.lam,
        arm_multipliers=rel.mu.copy(),
        reason=reason,
        iterations=iterations,
        status="optimal" if proven else "feasible",
        nodes=nodes,
    )


def _check_feasible(arm, allowed, spent, budget, counts, cap) -> None:
    """The allocation must respect the budget, the capacities and the mask."""
    if spent > budget:
        raise AssertionError(f"allocation costs {spent} > budget {budget}")
    if (counts > cap).any():
        raise AssertionError(f"arm counts {counts} exceed capacities {cap}")
    if allowed.shape[0]:
        treated = np.flatnonzero(arm >= 0)
        if not allowed[treated, arm[treated]].all():
            raise AssertionError("allocation uses a cell that is not allowed")


def _reasons(profit, allowed, arm, counts, cap) -> np.ndarray:
    """Untreated code per unit: not allowed, no positive profit, capacity, else budget."""
    reason = np.empty(arm.shape[0], dtype=np.int8)
    order = (
        Untreated.NOT_ALLOWED,
        Untreated.NO_POSITIVE_PROFIT,
        Untreated.CAPACITY,
        Untreated.BUDGET,
    )
    codes = np.array(order, dtype=np.int8)
    _reason_codes(profit, allowed, arm, counts >= cap, codes, reason)
    return reason


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def _reason_codes(profit, allowed, arm, full, codes, reason):  # pragma: no cover - compiled
    """codes = (not allowed, no positive profit, capacity, budget); 0 for treated units."""
    n, k = profit.shape
    has_mask = allowed.shape[0] > 0
    for ch in range(NCHUNK):
        lo, hi = _chunk(n, ch)
        for i in range(lo, hi):
            if arm[i] >= 0:
                reason[i] = 0
                continue
            any_ok = False
            any_pos = False
            any_room = False
            for j in range(k):
                if has_mask and not allowed[i, j]:
                    continue
                any_ok = True
                if profit[i, j] > 0:
                    any_pos = True
                    if not full[j]:
                        any_room = True
            if not any_ok:
                reason[i] = codes[0]
            elif not any_pos:
                reason[i] = codes[1]
            elif not any_room:
                reason[i] = codes[2]
            else:
                reason[i] = codes[3]


@njit(cache=True)  # serial: a light pass, not worth a parallel compile
def _flatten(profit, cost, vert, nvert, offsets, slope, dc, dp):  # pragma: no cover - compiled
    """Every hull step as (slope, cost step, profit step), in (unit, position) order."""
    n = profit.shape[0]
    for ch in range(NCHUNK):
        lo, hi = _chunk(n, ch)
        for i in range(lo, hi):
            pq = 0.0
            pc = 0.0
            w = offsets[i]
            for s in range(nvert[i]):
                v = vert[i, s]
                qv = float(profit[i, v])
                cv = float(cost[i, v])
                slope[w + s] = _slope(qv - pq, cv - pc)
                dc[w + s] = cv - pc
                dp[w + s] = qv - pq
                pq = qv
                pc = cv


def budget_curve(
    profit: np.ndarray,
    cost: np.ndarray,
    budgets: np.ndarray | None = None,
    *,
    allowed: np.ndarray | None = None,
    points: int = 201,
) -> BudgetCurve:
    """Profit against budget for every budget at once (no capacities).

    One sort of all units' hull steps by slope, then cumulative sums: at budget B the LP
    bound takes the steps that fit plus a fraction of the next; the greedy value (a
    feasible allocation, what ``optimize_budget`` improves on) stops before it, so the two
    differ by less than one unit's profit. ``budgets`` defaults to ``points`` budgets from
    0 to the cost of giving every unit its best arm.
    """
    profit, cost, _, _, allowed = _check_inputs(profit, cost, 0.0, None, allowed)
    n, k = profit.shape
    vert = np.zeros((n, k), dtype=np.int16)
    nvert = np.zeros(n, dtype=np.int16)
    with _threads_for(n):
        _hulls(profit, cost, allowed, np.zeros(k), vert, nvert)
    offsets = np.concatenate(([0], np.cumsum(nvert, dtype=np.int64)))
    size = int(offsets[-1])
    slope, dc, dp = np.empty(size), np.empty(size), np.empty(size)
    _flatten(profit, cost, vert, nvert, offsets[:-1], slope, dc, dp)
    del vert, nvert
    order = np.argsort(-slope, kind="stable")
    dc, dp = dc[order], dp[order]
    del slope, order
    cum_c = np.concatenate(([0.0], np.cumsum(dc)))
    cum_p = np.concatenate(([0.0], np.cumsum(dp)))
    if budgets is None:
        budgets = np.linspace(0.0, cum_c[-1], points)
    budgets = np.asarray(budgets, dtype=np.float64).reshape(-1)
    if np.isnan(budgets).any() or (budgets < 0).any():
        raise ValueError("budgets must be >= 0")
    taken = np.searchsorted(cum_c, budgets, side="right") - 1  # steps that fit
    greedy = cum_p[taken]
    nxt = np.minimum(taken, size - 1)  # the first step that does not fit
    left = np.where(taken < size, budgets - cum_c[taken], 0.0)
    frac = np.clip(left / np.where(taken < size, dc[nxt], 1.0), 0.0, 1.0) if size else 0.0
    lp = greedy + (frac * dp[nxt] if size else 0.0)
    return BudgetCurve(budget=budgets, profit=greedy, upper_bound=lp)
