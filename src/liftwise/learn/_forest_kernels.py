"""Compiled (numba) kernels of :class:`liftwise.learn.forest.UpliftRandomForest`.

Everything random here uses a splitmix64 stream seeded per tree (and per little-bags
group), never numba's per-thread ``np.random`` state, so a tree is the same whichever
thread grows it: results do not depend on the number of threads.

Tree layout (one row per tree in the forest arrays; node 0 is the root):
``feature[node]`` (-1 for a leaf), ``threshold[node]`` (bin code; finite codes
``<= threshold`` go left), ``nan_left[node]`` (1: the NaN code goes left),
``left[node]``/``right[node]`` (-1 for a leaf), ``value[node, arm]`` (shrunk outcome
mean of every arm, kept for inner nodes too), ``gain[node]`` (split gain times the
node's share of the root's structure weight; feature importances).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

CRIT_KL = 0
CRIT_ED = 1
CRIT_CHI = 2
CRIT_DDP = 3
CRIT_MSE = 4
CRITERIA = {"kl": CRIT_KL, "ed": CRIT_ED, "chi": CRIT_CHI, "ddp": CRIT_DDP, "mse": CRIT_MSE}
BINARY_ONLY = ("kl", "ed", "chi")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0
_EPS = 1e-6
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# --------------------------------------------------------------------------- structures


class TrainData(NamedTuple):
    """The whole training set, as the forest's kernels read it."""

    codes: np.ndarray  # (n, p) uint8 bin codes
    outcome: np.ndarray  # (n,) float64
    arm: np.ndarray  # (n,) int64 treatment arm, 0 = control
    weight: np.ndarray  # (n,) float64 sample weight


class TreeRows(NamedTuple):
    """Local copies of the rows of one tree (or, with a leading batch axis, of a batch of
    trees): the structure sample first, the estimation sample after it."""

    codes: np.ndarray  # (rows, p) uint8
    weight: np.ndarray  # (rows,) float64
    weighted_y: np.ndarray  # (rows,) float64 weight * outcome
    arm: np.ndarray  # (rows,) uint8


class TreeArrays(NamedTuple):
    """One tree's nodes (or, with a leading tree axis, a forest's): see the layout above."""

    feature: np.ndarray  # int32, -1 for a leaf
    threshold: np.ndarray  # int32 bin code
    nan_left: np.ndarray  # uint8
    left: np.ndarray  # int32, -1 for a leaf
    right: np.ndarray  # int32, -1 for a leaf
    value: np.ndarray  # (nodes, arms) float64
    gain: np.ndarray  # float64


class SplitSettings(NamedTuple):
    """How a tree chooses and fills its nodes (the forest's hyper-parameters)."""

    n_arms: int
    n_bins: np.ndarray  # (p,) int64 finite bins of every feature
    nan_code: np.uint8  # the NaN bin's code (above every finite bin)
    prior: np.ndarray  # (n_arms,) the root's shrinkage target: each arm's overall mean
    criterion: int  # CRIT_*
    max_depth: int
    min_leaf: int  # structure rows in each child
    min_treatment: int  # structure rows of every arm in each child
    mtry: int  # features drawn per node
    shrinkage: float  # pseudo-count of a candidate child's means toward the node's
    leaf_prior: float  # pseudo-count of a node's values toward its parent's
    min_gain: float  # a split must gain strictly more


class Sampling(NamedTuple):
    """Which rows a tree draws (see ``grow_batch``)."""

    honest: bool
    use_groups: bool
    n_half: int  # rows of a little-bags group's half-sample (0 without groups)
    n_tree: int  # rows of each tree
    n_struct: int  # of those, the structure sample


class ArmSums(NamedTuple):
    """Per-arm sums of a set of rows: weight, weight * outcome and row count (arrays whose
    last axis is the arm)."""

    weight: np.ndarray
    weighted_y: np.ndarray
    n_rows: np.ndarray


# --------------------------------------------------------------------------- random


@njit(cache=True)
def _uniform(state):  # pragma: no cover - compiled
    """Next splitmix64 draw as a float in [0, 1); ``state`` is a 1-element uint64 array."""
    mixed = state[0] + _GOLDEN
    state[0] = mixed
    mixed = (mixed ^ (mixed >> _S30)) * _MIX1
    mixed = (mixed ^ (mixed >> _S27)) * _MIX2
    mixed = mixed ^ (mixed >> _S31)
    return np.float64(mixed >> _S11) * _TWO_M53


@njit(cache=True)
def _select_range(n_items, n_pick, state, out):  # pragma: no cover - compiled
    """``n_pick`` of 0..n_items-1 without replacement into ``out`` (Knuth's selection
    sampling; sorted)."""
    need = n_pick
    n_taken = 0
    for i in range(n_items):
        if _uniform(state) * (n_items - i) < need:
            out[n_taken] = i
            n_taken += 1
            need -= 1
            if need == 0:
                break


@njit(cache=True)
def _select_from(src, n_src, n_pick, state, sel):  # pragma: no cover - compiled
    """``n_pick`` of ``src[:n_src]`` into ``sel`` without replacement, in input order."""
    need = n_pick
    n_taken = 0
    for i in range(n_src):
        if _uniform(state) * (n_src - i) < need:
            sel[n_taken] = src[i]
            n_taken += 1
            need -= 1
            if need == 0:
                break


# ------------------------------------------------------------------------- criteria


@njit(cache=True)
def _clip(rate):  # pragma: no cover - compiled
    """A success rate kept away from 0 and 1 (logs and ratios stay finite)."""
    return min(max(rate, _EPS), 1.0 - _EPS)


@njit(cache=True)
def _divergence(crit, pt, pc):  # pragma: no cover - compiled
    """D(P^t : P^c) of two Bernoulli distributions with success rates pt, pc."""
    if crit == CRIT_KL:
        pt = _clip(pt)
        pc = _clip(pc)
        return pt * math.log(pt / pc) + (1.0 - pt) * math.log((1.0 - pt) / (1.0 - pc))
    diff = pt - pc
    if crit == CRIT_ED:
        return 2.0 * diff * diff
    pc = _clip(pc)  # CRIT_CHI
    return diff * diff / (pc * (1.0 - pc))


@njit(cache=True)
def _node_divergence(crit, means, n_arms):  # pragma: no cover - compiled
    """Mean over treatment arms of D(P^k : P^0)."""
    total = 0.0
    for k in range(1, n_arms):
        total += _divergence(crit, means[k], means[0])
    return total / (n_arms - 1)


@njit(cache=True)
def _split_gain(
    crit,
    n_arms,
    left_weight,
    left_wy,
    right_weight,
    right_wy,
    node_mean,
    node_div,
    shrink,
    left_mean,
    right_mean,
):  # pragma: no cover - compiled
    """Gain of one candidate split; children means are shrunk toward the node's means.
    ``*_wy`` are the children's per-arm sums of weight * outcome; ``node_div`` is the
    node's divergence (divergence criteria only)."""
    left_total = 0.0
    right_total = 0.0
    for a in range(n_arms):
        left_mean[a] = (left_wy[a] + shrink * node_mean[a]) / (left_weight[a] + shrink)
        right_mean[a] = (right_wy[a] + shrink * node_mean[a]) / (right_weight[a] + shrink)
        left_total += left_weight[a]
        right_total += right_weight[a]
    if crit <= CRIT_CHI:
        total = left_total + right_total
        return (
            left_total / total * _node_divergence(crit, left_mean, n_arms)
            + right_total / total * _node_divergence(crit, right_mean, n_arms)
            - node_div
        )
    score = 0.0
    for k in range(1, n_arms):
        diff = (left_mean[k] - left_mean[0]) - (right_mean[k] - right_mean[0])
        if crit == CRIT_DDP:
            score += abs(diff)
        else:  # CRIT_MSE
            pair_left = left_weight[0] + left_weight[k]
            pair_right = right_weight[0] + right_weight[k]
            share = pair_left * pair_right / ((pair_left + pair_right) * (pair_left + pair_right))
            score += share * diff * diff
    return score / (n_arms - 1)


# ------------------------------------------------------------------------------ tree


@njit(cache=True, inline="always")  # once per row and split: no call
def _goes_left(code, threshold, nan_code, nan_left):  # pragma: no cover - compiled
    """Whether a row with bin ``code`` goes to the left child of the split."""
    return nan_left if code == nan_code else code <= threshold


@njit(cache=True)
def _partition(rows, lo, hi, feature, threshold, nan_code, nan_left):  # pragma: no cover
    """Reorder rows lo..hi-1 of the tree's local ``rows`` so those going left come first;
    returns the first row of the right part. Whole rows move (codes, weights, arm), so
    every node's rows stay contiguous and later passes read memory sequentially."""
    codes, weight, weighted_y, arm = rows
    n_features = codes.shape[1]
    i = lo
    j = hi - 1
    while True:
        while i <= j and _goes_left(codes[i, feature], threshold, nan_code, nan_left):
            i += 1
        while i <= j and not _goes_left(codes[j, feature], threshold, nan_code, nan_left):
            j -= 1
        if i >= j:
            return i
        for k in range(n_features):
            swap_code = codes[i, k]
            codes[i, k] = codes[j, k]
            codes[j, k] = swap_code
        swap_value = weight[i]
        weight[i] = weight[j]
        weight[j] = swap_value
        swap_value = weighted_y[i]
        weighted_y[i] = weighted_y[j]
        weighted_y[j] = swap_value
        swap_arm = arm[i]
        arm[i] = arm[j]
        arm[j] = swap_arm
        i += 1
        j -= 1


@njit(cache=True)
def _new_arm_sums(shape):  # pragma: no cover - compiled
    """Zeroed ArmSums of the given shape (last axis: arms)."""
    return ArmSums(np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=np.int64))


@njit(cache=True)
def _push(stack, top, node, structure, estimation, depth, parent):  # pragma: no cover
    """Put a node on the stack: its structure and estimation row ranges (lo, hi), its
    depth and parent; returns the new top."""
    stack[top, 0] = node
    stack[top, 1] = structure[0]
    stack[top, 2] = structure[1]
    stack[top, 3] = estimation[0]
    stack[top, 4] = estimation[1]
    stack[top, 5] = depth
    stack[top, 6] = parent
    return top + 1


@njit(cache=True)
def _set_leaf(tree, rows, node, parent, est_lo, est_hi, settings, est_sums):  # pragma: no cover
    """Make ``node`` a leaf whose values are the estimation rows' arm means shrunk toward
    the parent's values (the prior at the root)."""
    est_weight, est_weighted_y = est_sums
    for a in range(settings.n_arms):
        est_weight[a] = 0.0
        est_weighted_y[a] = 0.0
    for j in range(est_lo, est_hi):
        a = rows.arm[j]
        est_weight[a] += rows.weight[j]
        est_weighted_y[a] += rows.weighted_y[j]
    leaf_prior = settings.leaf_prior
    for a in range(settings.n_arms):
        target = settings.prior[a] if parent < 0 else tree.value[parent, a]
        den = est_weight[a] + leaf_prior
        tree.value[node, a] = (
            (est_weighted_y[a] + leaf_prior * target) / den if den > 0.0 else target
        )
    tree.feature[node] = -1
    tree.threshold[node] = 0
    tree.nan_left[node] = 0
    tree.left[node] = -1
    tree.right[node] = -1
    tree.gain[node] = 0.0


@njit(cache=True)
def _draw_features(features, mtry, state):  # pragma: no cover - compiled
    """Move a random ``mtry`` of ``features`` to its front (partial Fisher-Yates)."""
    n_features = features.shape[0]
    for q in range(mtry):
        pick = q + int(_uniform(state) * (n_features - q))
        drawn = features[pick]
        features[pick] = features[q]
        features[q] = drawn


@njit(cache=True, inline="always")
def _fill_histograms(rows, lo, hi, features, mtry, hist):  # pragma: no cover - compiled
    """Per drawn feature, bin and arm: the weight, weighted outcome and count of rows
    [lo, hi)."""
    hist.weight[:, :, :] = 0.0
    hist.weighted_y[:, :, :] = 0.0
    hist.n_rows[:, :, :] = 0
    for j in range(lo, hi):
        a = rows.arm[j]
        row_weight = rows.weight[j]
        row_weighted_y = rows.weighted_y[j]
        for q in range(mtry):
            b = rows.codes[j, features[q]]
            hist.weight[q, b, a] += row_weight
            hist.weighted_y[q, b, a] += row_weighted_y
            hist.n_rows[q, b, a] += 1


@njit(cache=True)
def _node_totals(hist, node_value, settings, totals, node_mean):  # pragma: no cover
    """The node's per-arm sums (from the first drawn feature's histogram) and means (its
    value where an arm has no weight); True if an arm is too thin to split."""
    width = hist.weight.shape[1]
    thin = False
    for a in range(settings.n_arms):
        totals.weight[a] = 0.0
        totals.weighted_y[a] = 0.0
        totals.n_rows[a] = 0
        for b in range(width):
            totals.weight[a] += hist.weight[0, b, a]
            totals.weighted_y[a] += hist.weighted_y[0, b, a]
            totals.n_rows[a] += hist.n_rows[0, b, a]
        if totals.n_rows[a] < 2 * settings.min_treatment:
            thin = True
        node_mean[a] = (
            totals.weighted_y[a] / totals.weight[a] if totals.weight[a] > 0.0 else node_value[a]
        )
    return thin


@njit(cache=True, inline="always")
def _best_split(hist, features, totals, node_mean, settings, scratch):  # pragma: no cover
    """Scan every drawn feature's thresholds (left = finite bins <= b, plus the NaN bin
    when sent left) for the split with the largest gain above ``min_gain``.

    Returns (gain, drawn feature's slot or -1 if none qualifies, threshold bin, NaN
    left)."""
    below, left_count, left_weight, left_wy, right_weight, right_wy, left_mean, right_mean = scratch
    n_arms = settings.n_arms
    nan_code = settings.nan_code
    min_treatment = settings.min_treatment
    min_leaf = settings.min_leaf
    crit = settings.criterion
    node_div = _node_divergence(crit, node_mean, n_arms) if crit <= CRIT_CHI else 0.0
    best = settings.min_gain
    best_q = -1
    best_b = 0
    best_nan = 0
    for q in range(settings.mtry):
        n_finite = settings.n_bins[features[q]]
        n_nan = 0
        for a in range(n_arms):
            n_nan += hist.n_rows[q, nan_code, a]
            below.weight[a] = 0.0
            below.weighted_y[a] = 0.0
            below.n_rows[a] = 0
        n_dirs = 2 if n_nan > 0 else 1
        for b in range(n_finite):
            for a in range(n_arms):
                below.weight[a] += hist.weight[q, b, a]
                below.weighted_y[a] += hist.weighted_y[q, b, a]
                below.n_rows[a] += hist.n_rows[q, b, a]
            for d in range(n_dirs):  # d = 1: the NaN bin goes left
                ok = True
                n_left = 0
                n_right = 0
                for a in range(n_arms):
                    left_count[a] = below.n_rows[a] + d * hist.n_rows[q, nan_code, a]
                    right_count = totals.n_rows[a] - left_count[a]
                    if left_count[a] < min_treatment or right_count < min_treatment:
                        ok = False
                        break
                    n_left += left_count[a]
                    n_right += right_count
                if not ok or n_left < min_leaf or n_right < min_leaf:
                    continue
                for a in range(n_arms):
                    left_weight[a] = below.weight[a] + d * hist.weight[q, nan_code, a]
                    left_wy[a] = below.weighted_y[a] + d * hist.weighted_y[q, nan_code, a]
                    right_weight[a] = totals.weight[a] - left_weight[a]
                    right_wy[a] = totals.weighted_y[a] - left_wy[a]
                gain = _split_gain(
                    crit,
                    n_arms,
                    left_weight,
                    left_wy,
                    right_weight,
                    right_wy,
                    node_mean,
                    node_div,
                    settings.shrinkage,
                    left_mean,
                    right_mean,
                )
                if gain > best:
                    best = gain
                    best_q = q
                    best_b = b
                    best_nan = d
    return best, best_q, best_b, best_nan


@njit(cache=True)
def _new_split_scratch(n_arms):  # pragma: no cover - compiled
    """Per-arm work arrays of ``_best_split``."""
    return (
        _new_arm_sums((n_arms,)),  # finite bins <= the threshold
        np.empty(n_arms, dtype=np.int64),  # left child: count,
        np.empty(n_arms),  # weight,
        np.empty(n_arms),  # weighted outcome
        np.empty(n_arms),  # right child: weight,
        np.empty(n_arms),  # weighted outcome
        np.empty(n_arms),  # left child's shrunk means
        np.empty(n_arms),  # right child's shrunk means
    )


@njit(cache=True)
def _total(values):  # pragma: no cover - compiled
    """Sum of a 1-D array, added in order."""
    total = 0.0
    for i in range(values.shape[0]):
        total += values[i]
    return total


@njit(cache=True)
def _split_node(tree, rows, node, split, ranges, honest, settings):  # pragma: no cover
    """Record ``split`` = (feature, threshold bin, NaN left, importance gain) at ``node``
    and reorder its structure and estimation rows, ``ranges`` = (structure lo, hi,
    estimation lo, hi), so each sample's left rows come first; returns where the right
    rows start in each sample."""
    feature, threshold, nan_left, gain = split
    s_lo, s_hi, e_lo, e_hi = ranges
    tree.feature[node] = feature
    tree.threshold[node] = threshold
    tree.nan_left[node] = nan_left
    tree.gain[node] = gain
    nan_goes_left = nan_left == 1
    nan_code = settings.nan_code
    s_mid = _partition(rows, s_lo, s_hi, feature, threshold, nan_code, nan_goes_left)
    if honest:
        e_mid = _partition(rows, e_lo, e_hi, feature, threshold, nan_code, nan_goes_left)
    else:
        e_mid = s_mid
    return s_mid, e_mid


@njit(cache=True)
def _grow_tree(rows, n_struct, honest, settings, state, tree):  # pragma: no cover - compiled
    """Grow one tree depth-first with an explicit stack; returns its number of nodes.

    ``rows`` (TreeRows) are the tree's local copies: rows ``[0, n_struct)`` are the
    structure sample that chooses the splits; when ``honest`` the rows after it are the
    estimation sample that fills the node values, otherwise the structure rows fill them
    too. Writes the nodes into ``tree`` (TreeArrays); ``state`` is the tree's random
    stream.
    """
    n_features = rows.codes.shape[1]
    n_rows = rows.codes.shape[0]
    max_nodes = tree.left.shape[0]
    n_arms = settings.n_arms
    mtry = settings.mtry
    hist = _new_arm_sums((mtry, np.int64(settings.nan_code) + 1, n_arms))
    totals = _new_arm_sums((n_arms,))
    node_mean = np.empty(n_arms)
    features = np.arange(n_features)
    est_sums = (np.empty(n_arms), np.empty(n_arms))
    split_scratch = _new_split_scratch(n_arms)

    # stack entries: node, structure lo, hi, estimation lo, hi, depth, parent
    stack = np.empty((max_nodes, 7), dtype=np.int64)
    estimation = (n_struct, n_rows) if honest else (0, n_struct)
    top = _push(stack, 0, 0, (0, n_struct), estimation, 0, -1)
    n_nodes = 1
    root_weight = _total(rows.weight[:n_struct])
    if root_weight <= 0.0:
        root_weight = 1.0

    while top > 0:
        top -= 1
        node = stack[top, 0]
        s_lo = stack[top, 1]
        s_hi = stack[top, 2]
        e_lo = stack[top, 3]
        e_hi = stack[top, 4]
        depth = stack[top, 5]
        parent = stack[top, 6]
        _set_leaf(tree, rows, node, parent, e_lo, e_hi, settings, est_sums)
        if (
            depth >= settings.max_depth
            or s_hi - s_lo < 2 * settings.min_leaf
            or n_nodes + 2 > max_nodes
        ):
            continue
        _draw_features(features, mtry, state)
        _fill_histograms(rows, s_lo, s_hi, features, mtry, hist)
        if _node_totals(hist, tree.value[node], settings, totals, node_mean):
            continue
        best, best_q, best_b, best_nan = _best_split(
            hist, features, totals, node_mean, settings, split_scratch
        )
        if best_q < 0:
            continue

        split = (features[best_q], best_b, best_nan, best * _total(totals.weight) / root_weight)
        s_mid, e_mid = _split_node(
            tree, rows, node, split, (s_lo, s_hi, e_lo, e_hi), honest, settings
        )
        left_id = n_nodes
        right_id = n_nodes + 1
        n_nodes += 2
        tree.left[node] = left_id
        tree.right[node] = right_id
        top = _push(stack, top, right_id, (s_mid, s_hi), (e_mid, e_hi), depth + 1, node)
        top = _push(stack, top, left_id, (s_lo, s_mid), (e_lo, e_mid), depth + 1, node)
    return n_nodes


@njit(cache=True)
def _gather(data, src, n_src, n_struct, state, rows):  # pragma: no cover - compiled
    """Copy the tree's rows ``src[:n_src]`` into its local ``rows``: a random ``n_struct``
    of them (selection sampling) to the front, the others after them, both in row order."""
    n_features = data.codes.shape[1]
    need = n_struct
    n_structure = 0
    n_estimation = n_struct
    for i in range(n_src):
        row = src[i]
        if _uniform(state) * (n_src - i) < need:
            pos = n_structure
            n_structure += 1
            need -= 1
        else:
            pos = n_estimation
            n_estimation += 1
        for k in range(n_features):
            rows.codes[pos, k] = data.codes[row, k]
        rows.weight[pos] = data.weight[row]
        rows.weighted_y[pos] = data.weight[row] * data.outcome[row]
        rows.arm[pos] = data.arm[row]


@njit(cache=True)
def _draw_rows(n, sampling, group_seed, tree_seed, draws, state):  # pragma: no cover
    """The tree's rows into ``draws[n_half:]``: with groups, ``n_tree`` of the group's
    half-sample (``n_half`` of the n rows drawn from ``group_seed`` into ``draws[:n_half]``,
    identical for the trees of one group); otherwise ``n_tree`` of all n rows. Leaves
    ``state`` at the tree's stream."""
    n_half = sampling.n_half
    n_tree = sampling.n_tree
    sample = draws[n_half : n_half + n_tree]
    if sampling.use_groups:
        half = draws[:n_half]
        state[0] = group_seed
        _select_range(n, n_half, state, half)
        state[0] = tree_seed
        if n_tree == n_half:
            sample[:] = half
        else:
            _select_from(half, n_half, n_tree, state, sample)
    else:
        state[0] = tree_seed
        _select_range(n, n_tree, state, sample)
    return sample


@njit(parallel=True, cache=True)
def grow_batch(
    data, settings, sampling, group_seeds, tree_seeds, work_draws, work_rows, out, n_nodes
):  # pragma: no cover - compiled
    """Grow ``len(tree_seeds)`` trees in parallel: tree b uses row b of ``work_draws`` and
    of every ``work_rows`` (TreeRows) buffer and writes row b of ``out`` (TreeArrays) and
    ``n_nodes``.

    Sampling (``sampling``): with ``use_groups`` the group's half-sample (``n_half`` of n
    rows, drawn from ``group_seeds[b]``, identical for the trees of one group) and then
    ``n_tree`` of its rows; otherwise ``n_tree`` of all n rows. Of the tree's rows,
    ``n_struct`` (all when not honest) form the structure sample, the rest the estimation
    sample. All draws are without replacement.
    """
    n = data.codes.shape[0]
    for b in prange(tree_seeds.shape[0]):
        state = np.empty(1, dtype=np.uint64)
        sample = _draw_rows(n, sampling, group_seeds[b], tree_seeds[b], work_draws[b], state)
        rows = TreeRows(
            work_rows.codes[b], work_rows.weight[b], work_rows.weighted_y[b], work_rows.arm[b]
        )
        _gather(data, sample, sampling.n_tree, sampling.n_struct, state, rows)
        tree = TreeArrays(
            out.feature[b],
            out.threshold[b],
            out.nan_left[b],
            out.left[b],
            out.right[b],
            out.value[b],
            out.gain[b],
        )
        n_nodes[b] = _grow_tree(rows, sampling.n_struct, sampling.honest, settings, state, tree)


# ------------------------------------------------------------------------- predict


@njit(cache=True)
def _debias(var_between, group_noise, n_groups):  # pragma: no cover - compiled
    """grf's objective-Bayes debiasing of ``var_between - group_noise`` (never negative).

    Posterior mean of the true variance S >= 0 under a flat prior, taking
    ``var_between - group_noise ~ N(S, se^2)``: the mean of a normal truncated at 0.
    """
    est = var_between - group_noise
    se = max(var_between, group_noise) * math.sqrt(2.0 / n_groups)
    if se <= 0.0:
        return max(est, 0.0)
    ratio = est / se
    den = 0.5 * math.erfc(-ratio / math.sqrt(2.0))
    if den < 1e-300:  # far in the tail: E[S | S > 0] ~ se^2 / |est|
        return se * se / abs(est)
    return est + se * _INV_SQRT_2PI * math.exp(-0.5 * ratio * ratio) / den


@njit(parallel=True, cache=True)
def predict_forest(
    codes, nan_code, forest, group_size, want_var, out_mean, out_var
):  # pragma: no cover - compiled
    """Forest mean of the leaf values (``out_mean`` (m, n_arms)) and, with ``want_var``,
    the little-bags variance of each arm's effect (``out_var`` (m, n_arms - 1)).
    ``forest`` is a TreeArrays with a leading tree axis.

    Rows are processed in blocks of 512, trees in the outer loop of a block (a tree's
    nodes stay in cache); blocks run in parallel.
    """
    feature = forest.feature
    threshold = forest.threshold
    nan_left = forest.nan_left
    left = forest.left
    right = forest.right
    value = forest.value
    n_rows = codes.shape[0]
    n_trees = feature.shape[0]
    n_arms = value.shape[2]
    n_eff = n_arms - 1
    block = 512
    n_blocks = (n_rows + block - 1) // block
    n_groups = n_trees // group_size if group_size > 0 else 0
    for blk in prange(n_blocks):
        lo = blk * block
        hi = min(n_rows, lo + block)
        size = hi - lo
        group_effect_sum = np.zeros((size, n_eff))
        tree_effect_sq = np.zeros((size, n_eff))
        group_mean_sum = np.zeros((size, n_eff))
        group_mean_sq = np.zeros((size, n_eff))
        for i in range(lo, hi):
            for a in range(n_arms):
                out_mean[i, a] = 0.0
        for tr in range(n_trees):
            for i in range(lo, hi):
                node = 0
                while left[tr, node] >= 0:
                    code = codes[i, feature[tr, node]]
                    go_left = (
                        nan_left[tr, node] == 1 if code == nan_code else code <= threshold[tr, node]
                    )
                    node = left[tr, node] if go_left else right[tr, node]
                for a in range(n_arms):
                    out_mean[i, a] += value[tr, node, a]
                if want_var:
                    for k in range(n_eff):
                        effect = value[tr, node, k + 1] - value[tr, node, 0]
                        group_effect_sum[i - lo, k] += effect
                        tree_effect_sq[i - lo, k] += effect * effect
            if want_var and (tr + 1) % group_size == 0:
                for i in range(size):
                    for k in range(n_eff):
                        group_mean = group_effect_sum[i, k] / group_size
                        group_mean_sum[i, k] += group_mean
                        group_mean_sq[i, k] += group_mean * group_mean
                        group_effect_sum[i, k] = 0.0
        for i in range(lo, hi):
            for a in range(n_arms):
                out_mean[i, a] /= n_trees
        if want_var:
            n_used = n_groups * group_size
            for i in range(size):
                for k in range(n_eff):
                    mean = group_mean_sum[i, k] / n_groups
                    var_between = max(group_mean_sq[i, k] / n_groups - mean * mean, 0.0)
                    var_total = max(tree_effect_sq[i, k] / n_used - mean * mean, 0.0)
                    noise = max(var_total - var_between, 0.0) / (group_size - 1)
                    out_var[lo + i, k] = _debias(var_between, noise, n_groups)
