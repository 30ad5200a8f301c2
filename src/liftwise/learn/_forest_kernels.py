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

# --------------------------------------------------------------------------- random


@njit(cache=True)
def _uniform(state):  # pragma: no cover - compiled
    """Next splitmix64 draw as a float in [0, 1); ``state`` is a 1-element uint64 array."""
    z = state[0] + _GOLDEN
    state[0] = z
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return np.float64(z >> _S11) * _TWO_M53


@njit(cache=True)
def _select_range(n, k, state, out):  # pragma: no cover - compiled
    """k of 0..n-1 without replacement into ``out`` (Knuth's selection sampling; sorted)."""
    need = k
    m = 0
    for i in range(n):
        if _uniform(state) * (n - i) < need:
            out[m] = i
            m += 1
            need -= 1
            if need == 0:
                break


@njit(cache=True)
def _select_from(src, n_src, k, state, sel):  # pragma: no cover - compiled
    """k of ``src[:n_src]`` into ``sel`` without replacement, in input order."""
    need = k
    m = 0
    for i in range(n_src):
        if _uniform(state) * (n_src - i) < need:
            sel[m] = src[i]
            m += 1
            need -= 1
            if need == 0:
                break


# ------------------------------------------------------------------------- criteria


@njit(cache=True)
def _clip(p):  # pragma: no cover - compiled
    return min(max(p, _EPS), 1.0 - _EPS)


@njit(cache=True)
def _divergence(crit, pt, pc):  # pragma: no cover - compiled
    """D(P^t : P^c) of two Bernoulli distributions with success rates pt, pc."""
    if crit == CRIT_KL:
        pt = _clip(pt)
        pc = _clip(pc)
        return pt * math.log(pt / pc) + (1.0 - pt) * math.log((1.0 - pt) / (1.0 - pc))
    d = pt - pc
    if crit == CRIT_ED:
        return 2.0 * d * d
    pc = _clip(pc)  # CRIT_CHI
    return d * d / (pc * (1.0 - pc))


@njit(cache=True)
def _node_divergence(crit, means, n_arms):  # pragma: no cover - compiled
    """Mean over treatment arms of D(P^k : P^0)."""
    total = 0.0
    for k in range(1, n_arms):
        total += _divergence(crit, means[k], means[0])
    return total / (n_arms - 1)


@njit(cache=True)
def _split_gain(crit, n_arms, sw_l, swy_l, sw_r, swy_r, m_par, d_par, shrink, m_l, m_r):
    # pragma: no cover - compiled
    """Gain of one candidate split; children means are shrunk toward the node's means."""
    w_l = 0.0
    w_r = 0.0
    for a in range(n_arms):
        m_l[a] = (swy_l[a] + shrink * m_par[a]) / (sw_l[a] + shrink)
        m_r[a] = (swy_r[a] + shrink * m_par[a]) / (sw_r[a] + shrink)
        w_l += sw_l[a]
        w_r += sw_r[a]
    if crit <= CRIT_CHI:
        w = w_l + w_r
        return (
            w_l / w * _node_divergence(crit, m_l, n_arms)
            + w_r / w * _node_divergence(crit, m_r, n_arms)
            - d_par
        )
    total = 0.0
    for k in range(1, n_arms):
        diff = (m_l[k] - m_l[0]) - (m_r[k] - m_r[0])
        if crit == CRIT_DDP:
            total += abs(diff)
        else:  # CRIT_MSE
            wl = sw_l[0] + sw_l[k]
            wr = sw_r[0] + sw_r[k]
            total += wl * wr / ((wl + wr) * (wl + wr)) * diff * diff
    return total / (n_arms - 1)


# ------------------------------------------------------------------------------ tree


@njit(cache=True)
def _partition(lc, lw, lwy, lt, lo, hi, f, thr, nan_code, nan_left):  # pragma: no cover
    """Reorder rows lo..hi-1 of the tree's local data so those going left come first;
    returns the first row of the right part. Whole rows move (codes, weights, arm), so
    every node's rows stay contiguous and later passes read memory sequentially."""
    p = lc.shape[1]
    i = lo
    j = hi - 1
    while True:
        while i <= j:
            c = lc[i, f]
            go_left = nan_left if c == nan_code else c <= thr
            if go_left:
                i += 1
            else:
                break
        while i <= j:
            c = lc[j, f]
            go_left = nan_left if c == nan_code else c <= thr
            if go_left:
                break
            j -= 1
        if i >= j:
            return i
        for k in range(p):
            tmp_c = lc[i, k]
            lc[i, k] = lc[j, k]
            lc[j, k] = tmp_c
        tmp_w = lw[i]
        lw[i] = lw[j]
        lw[j] = tmp_w
        tmp_w = lwy[i]
        lwy[i] = lwy[j]
        lwy[j] = tmp_w
        tmp_t = lt[i]
        lt[i] = lt[j]
        lt[j] = tmp_t
        i += 1
        j -= 1


@njit(cache=True)
def _grow_tree(
    lc,
    lw,
    lwy,
    lt,
    n_struct,
    honest,
    n_arms,
    n_bins_f,
    nan_code,
    prior,
    crit,
    max_depth,
    min_leaf,
    min_treat,
    mtry,
    shrink,
    leaf_prior,
    min_gain,
    state,
    feature,
    threshold,
    nan_left,
    left,
    right,
    value,
    gain,
):  # pragma: no cover - compiled
    """Grow one tree depth-first with an explicit stack; returns its number of nodes.

    The tree's rows are local copies: ``lc`` codes (rows, p), ``lw`` weights, ``lwy``
    weight * outcome, ``lt`` arms. Rows ``[0, n_struct)`` are the structure sample that
    chooses the splits; when ``honest`` the rows after it are the estimation sample that
    fills ``value``, otherwise the structure rows fill it too.
    """
    p = lc.shape[1]
    n_rows = lc.shape[0]
    max_nodes = left.shape[0]
    width = np.int64(nan_code) + 1
    hsw = np.zeros((mtry, width, n_arms))
    hswy = np.zeros((mtry, width, n_arms))
    hcnt = np.zeros((mtry, width, n_arms), dtype=np.int64)
    feats = np.arange(p)
    tot_sw = np.empty(n_arms)
    tot_swy = np.empty(n_arms)
    tot_cnt = np.empty(n_arms, dtype=np.int64)
    m_par = np.empty(n_arms)
    sw_l = np.empty(n_arms)
    swy_l = np.empty(n_arms)
    cnt_l = np.empty(n_arms, dtype=np.int64)
    sw_c = np.empty(n_arms)
    swy_c = np.empty(n_arms)
    cnt_c = np.empty(n_arms, dtype=np.int64)
    sw_r = np.empty(n_arms)
    swy_r = np.empty(n_arms)
    m_l = np.empty(n_arms)
    m_r = np.empty(n_arms)
    est_sw = np.empty(n_arms)
    est_swy = np.empty(n_arms)

    # stack entries: node, s_lo, s_hi, e_lo, e_hi, depth, parent
    stack = np.empty((max_nodes, 7), dtype=np.int64)
    stack[0, 0] = 0
    stack[0, 1] = 0
    stack[0, 2] = n_struct
    stack[0, 3] = n_struct if honest else 0
    stack[0, 4] = n_rows if honest else n_struct
    stack[0, 5] = 0
    stack[0, 6] = -1
    top = 1
    n_nodes = 1
    root_w = 0.0
    for j in range(n_struct):
        root_w += lw[j]
    if root_w <= 0.0:
        root_w = 1.0

    while top > 0:
        top -= 1
        node = stack[top, 0]
        s_lo = stack[top, 1]
        s_hi = stack[top, 2]
        e_lo = stack[top, 3]
        e_hi = stack[top, 4]
        depth = stack[top, 5]
        parent = stack[top, 6]

        # ---- node value: estimation-sample means shrunk toward the parent's value
        for a in range(n_arms):
            est_sw[a] = 0.0
            est_swy[a] = 0.0
        for j in range(e_lo, e_hi):
            a = lt[j]
            est_sw[a] += lw[j]
            est_swy[a] += lwy[j]
        for a in range(n_arms):
            pr = prior[a] if parent < 0 else value[parent, a]
            den = est_sw[a] + leaf_prior
            value[node, a] = (est_swy[a] + leaf_prior * pr) / den if den > 0.0 else pr
        feature[node] = -1
        threshold[node] = 0
        nan_left[node] = 0
        left[node] = -1
        right[node] = -1
        gain[node] = 0.0

        if depth >= max_depth or s_hi - s_lo < 2 * min_leaf or n_nodes + 2 > max_nodes:
            continue

        # ---- draw mtry features (partial Fisher-Yates) and build their histograms
        for q in range(mtry):
            j = q + int(_uniform(state) * (p - q))
            tmp_f = feats[q]
            feats[q] = feats[j]
            feats[j] = tmp_f
        hsw[:, :, :] = 0.0
        hswy[:, :, :] = 0.0
        hcnt[:, :, :] = 0
        for j in range(s_lo, s_hi):
            a = lt[j]
            wr = lw[j]
            wy = lwy[j]
            for q in range(mtry):
                b = lc[j, feats[q]]
                hsw[q, b, a] += wr
                hswy[q, b, a] += wy
                hcnt[q, b, a] += 1
        thin = False
        for a in range(n_arms):
            tot_sw[a] = 0.0
            tot_swy[a] = 0.0
            tot_cnt[a] = 0
            for b in range(width):
                tot_sw[a] += hsw[0, b, a]
                tot_swy[a] += hswy[0, b, a]
                tot_cnt[a] += hcnt[0, b, a]
            if tot_cnt[a] < 2 * min_treat:
                thin = True
            m_par[a] = tot_swy[a] / tot_sw[a] if tot_sw[a] > 0.0 else value[node, a]
        if thin:
            continue
        d_par = _node_divergence(crit, m_par, n_arms) if crit <= CRIT_CHI else 0.0

        # ---- scan thresholds: left = finite bins <= b (+ the NaN bin if sent left)
        best = min_gain
        best_q = -1
        best_b = 0
        best_nan = 0
        for q in range(mtry):
            nb = n_bins_f[feats[q]]
            n_nan = 0
            for a in range(n_arms):
                n_nan += hcnt[q, nan_code, a]
                sw_c[a] = 0.0
                swy_c[a] = 0.0
                cnt_c[a] = 0
            n_dirs = 2 if n_nan > 0 else 1
            for b in range(nb):
                for a in range(n_arms):
                    sw_c[a] += hsw[q, b, a]
                    swy_c[a] += hswy[q, b, a]
                    cnt_c[a] += hcnt[q, b, a]
                for d in range(n_dirs):
                    ok = True
                    n_l = 0
                    n_r = 0
                    for a in range(n_arms):
                        cnt_l[a] = cnt_c[a] + d * hcnt[q, nan_code, a]
                        c_r = tot_cnt[a] - cnt_l[a]
                        if cnt_l[a] < min_treat or c_r < min_treat:
                            ok = False
                            break
                        n_l += cnt_l[a]
                        n_r += c_r
                    if not ok or n_l < min_leaf or n_r < min_leaf:
                        continue
                    for a in range(n_arms):
                        sw_l[a] = sw_c[a] + d * hsw[q, nan_code, a]
                        swy_l[a] = swy_c[a] + d * hswy[q, nan_code, a]
                        sw_r[a] = tot_sw[a] - sw_l[a]
                        swy_r[a] = tot_swy[a] - swy_l[a]
                    g = _split_gain(
                        crit, n_arms, sw_l, swy_l, sw_r, swy_r, m_par, d_par, shrink, m_l, m_r
                    )
                    if g > best:
                        best = g
                        best_q = q
                        best_b = b
                        best_nan = d
        if best_q < 0:
            continue

        # ---- split: reorder both samples' rows, push the children (left on top)
        f = feats[best_q]
        node_w = 0.0
        for a in range(n_arms):
            node_w += tot_sw[a]
        feature[node] = f
        threshold[node] = best_b
        nan_left[node] = best_nan
        gain[node] = best * node_w / root_w
        nan_l = best_nan == 1
        s_mid = _partition(lc, lw, lwy, lt, s_lo, s_hi, f, best_b, nan_code, nan_l)
        if honest:
            e_mid = _partition(lc, lw, lwy, lt, e_lo, e_hi, f, best_b, nan_code, nan_l)
        else:
            e_mid = s_mid
        lc_id = n_nodes
        rc_id = n_nodes + 1
        n_nodes += 2
        left[node] = lc_id
        right[node] = rc_id
        stack[top, 0] = rc_id
        stack[top, 1] = s_mid
        stack[top, 2] = s_hi
        stack[top, 3] = e_mid
        stack[top, 4] = e_hi
        stack[top, 5] = depth + 1
        stack[top, 6] = node
        top += 1
        stack[top, 0] = lc_id
        stack[top, 1] = s_lo
        stack[top, 2] = s_mid
        stack[top, 3] = e_lo
        stack[top, 4] = e_mid
        stack[top, 5] = depth + 1
        stack[top, 6] = node
        top += 1
    return n_nodes


@njit(cache=True)
def _gather(codes, y, t, w, src, n_src, n_struct, state, lc, lw, lwy, lt):  # pragma: no cover
    """Copy the tree's rows ``src[:n_src]`` into its local arrays: a random ``n_struct`` of
    them (selection sampling) to the front, the others after them, both in row order."""
    p = codes.shape[1]
    need = n_struct
    ns = 0
    ne = n_struct
    for i in range(n_src):
        r = src[i]
        if _uniform(state) * (n_src - i) < need:
            pos = ns
            ns += 1
            need -= 1
        else:
            pos = ne
            ne += 1
        for k in range(p):
            lc[pos, k] = codes[r, k]
        lw[pos] = w[r]
        lwy[pos] = w[r] * y[r]
        lt[pos] = t[r]


@njit(parallel=True, cache=True)
def grow_batch(
    codes,
    y,
    t,
    w,
    n_arms,
    n_bins_f,
    nan_code,
    prior,
    crit,
    max_depth,
    min_leaf,
    min_treat,
    mtry,
    shrink,
    leaf_prior,
    min_gain,
    honest,
    use_groups,
    group_seeds,
    tree_seeds,
    n_half,
    n_tree,
    n_struct,
    work_idx,
    work_codes,
    work_w,
    work_wy,
    work_t,
    feature,
    threshold,
    nan_left,
    left,
    right,
    value,
    gain,
    n_nodes,
):  # pragma: no cover - compiled
    """Grow ``len(tree_seeds)`` trees in parallel: tree b uses row b of every ``work_*``
    buffer and writes row b of the outputs.

    Sampling: with ``use_groups`` the group's half-sample (``n_half`` of n rows, drawn from
    ``group_seeds[b]``, identical for the trees of one group) and then ``n_tree`` of its
    rows; otherwise ``n_tree`` of all n rows. Of the tree's rows, ``n_struct`` (all when
    not honest) form the structure sample, the rest the estimation sample. All draws are
    without replacement.
    """
    n = codes.shape[0]
    for b in prange(tree_seeds.shape[0]):
        ws = work_idx[b]
        state = np.empty(1, dtype=np.uint64)
        sample = ws[n_half : n_half + n_tree]
        if use_groups:
            half = ws[:n_half]
            state[0] = group_seeds[b]
            _select_range(n, n_half, state, half)
            state[0] = tree_seeds[b]
            if n_tree == n_half:
                sample[:] = half
            else:
                _select_from(half, n_half, n_tree, state, sample)
        else:
            state[0] = tree_seeds[b]
            _select_range(n, n_tree, state, sample)
        lc = work_codes[b]
        lw = work_w[b]
        lwy = work_wy[b]
        lt = work_t[b]
        _gather(codes, y, t, w, sample, n_tree, n_struct, state, lc, lw, lwy, lt)
        n_nodes[b] = _grow_tree(
            lc,
            lw,
            lwy,
            lt,
            n_struct,
            honest,
            n_arms,
            n_bins_f,
            nan_code,
            prior,
            crit,
            max_depth,
            min_leaf,
            min_treat,
            mtry,
            shrink,
            leaf_prior,
            min_gain,
            state,
            feature[b],
            threshold[b],
            nan_left[b],
            left[b],
            right[b],
            value[b],
            gain[b],
        )


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
    codes,
    nan_code,
    feature,
    threshold,
    nan_left,
    left,
    right,
    value,
    group_size,
    want_var,
    out_mean,
    out_var,
):  # pragma: no cover - compiled
    """Forest mean of the leaf values (``out_mean`` (m, n_arms)) and, with ``want_var``,
    the little-bags variance of each arm's effect (``out_var`` (m, n_arms - 1)).

    Rows are processed in blocks of 512, trees in the outer loop of a block (a tree's
    nodes stay in cache); blocks run in parallel.
    """
    m = codes.shape[0]
    n_trees = feature.shape[0]
    n_arms = value.shape[2]
    n_eff = n_arms - 1
    block = 512
    n_blocks = (m + block - 1) // block
    n_groups = n_trees // group_size if group_size > 0 else 0
    for blk in prange(n_blocks):
        lo = blk * block
        hi = min(m, lo + block)
        size = hi - lo
        g_sum = np.zeros((size, n_eff))
        t_sq = np.zeros((size, n_eff))
        b_sum = np.zeros((size, n_eff))
        b_sq = np.zeros((size, n_eff))
        for i in range(lo, hi):
            for a in range(n_arms):
                out_mean[i, a] = 0.0
        for tr in range(n_trees):
            for i in range(lo, hi):
                node = 0
                while left[tr, node] >= 0:
                    c = codes[i, feature[tr, node]]
                    go_left = nan_left[tr, node] == 1 if c == nan_code else c <= threshold[tr, node]
                    node = left[tr, node] if go_left else right[tr, node]
                for a in range(n_arms):
                    out_mean[i, a] += value[tr, node, a]
                if want_var:
                    for k in range(n_eff):
                        e = value[tr, node, k + 1] - value[tr, node, 0]
                        g_sum[i - lo, k] += e
                        t_sq[i - lo, k] += e * e
            if want_var and (tr + 1) % group_size == 0:
                for i in range(size):
                    for k in range(n_eff):
                        gm = g_sum[i, k] / group_size
                        b_sum[i, k] += gm
                        b_sq[i, k] += gm * gm
                        g_sum[i, k] = 0.0
        for i in range(lo, hi):
            for a in range(n_arms):
                out_mean[i, a] /= n_trees
        if want_var:
            n_used = n_groups * group_size
            for i in range(size):
                for k in range(n_eff):
                    mean = b_sum[i, k] / n_groups
                    var_between = max(b_sq[i, k] / n_groups - mean * mean, 0.0)
                    var_total = max(t_sq[i, k] / n_used - mean * mean, 0.0)
                    noise = max(var_total - var_between, 0.0) / (group_size - 1)
                    out_var[lo + i, k] = _debias(var_between, noise, n_groups)
