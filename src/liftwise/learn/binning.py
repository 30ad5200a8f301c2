"""Histogram binning of features: quantile bin edges from a row subsample, uint8 codes.

Every feature gets at most ``n_bins`` finite bins. The edges come from the quantiles of a
random subsample of rows (at most ``max_rows``); a feature with at most ``n_bins`` distinct
values in the subsample gets one bin per value (edges at the midpoints). A value ``x``
falls in bin ``b = #{edges <= x}`` (``numpy.searchsorted(edges, x, side="right")``), so
``-inf`` lands in bin 0 and ``+inf`` in the last finite bin. NaN always has the dedicated
code ``n_bins`` (hence ``n_bins <= 255``: codes fit in one byte).

The coded matrix is row-major ``(n, p)`` uint8, one eighth of a float64 matrix: a tree
gathers the rows of a node and reads all the features it drew from one cache line.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MAX_BINS = 255


def compute_bin_edges(
    X: np.ndarray, n_bins: int, *, max_rows: int = 100_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges per feature: ``(edges, n_edges)``, ``edges`` (p, n_bins - 1) padded with +inf.

    Uses at most ``max_rows`` sampled rows, gathered eight features at a time (one cache
    line of a row) into a small buffer and sorted there: never a copy of ``X``.
    """
    if not 2 <= n_bins <= MAX_BINS:
        raise ValueError(f"n_bins must be in [2, {MAX_BINS}], got {n_bins}")
    n, p = X.shape
    if n > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
    else:
        rows = np.arange(n)
    edges = np.full((p, n_bins - 1), np.inf)
    n_edges = np.zeros(p, dtype=np.int32)
    group = 8
    buf = np.empty((min(group, p), len(rows)))
    for f0 in range(0, p, group):
        block = buf[: min(group, p - f0)]
        _gather_columns(X, rows, f0, block)
        block.sort(axis=1)  # NaN sorts last
        for c in range(block.shape[0]):
            n_edges[f0 + c] = _edges_of_sorted(block[c], n_bins, edges[f0 + c])
    return edges, n_edges


@njit(cache=True)
def _gather_columns(X, rows, f0, out):  # pragma: no cover - compiled
    for i in range(rows.shape[0]):
        r = rows[i]
        for c in range(out.shape[0]):
            out[c, i] = X[r, f0 + c]


@njit(cache=True)
def _edges_of_sorted(s, n_bins, out):  # pragma: no cover - compiled
    """Edges of one sorted column (NaN at the end) into ``out``; returns their number.

    Midpoints between distinct values when there are at most ``n_bins`` of them, else the
    quantiles at 1/n_bins, ..., (n_bins-1)/n_bins (linear interpolation, as
    ``numpy.quantile``); duplicate and non-finite edges are dropped.
    """
    k = s.shape[0]
    while k > 0 and np.isnan(s[k - 1]):
        k -= 1
    if k == 0:
        return 0
    distinct = 1
    for i in range(1, k):
        if s[i] != s[i - 1]:
            distinct += 1
    j = 0
    if distinct <= n_bins:
        for i in range(1, k):
            if s[i] != s[i - 1]:
                cut = 0.5 * (s[i - 1] + s[i])
                if np.isfinite(cut):
                    out[j] = cut
                    j += 1
        return j
    last = -np.inf
    for q in range(1, n_bins):
        pos = q * (k - 1) / n_bins
        lo = int(np.floor(pos))
        hi = min(lo + 1, k - 1)
        cut = s[lo] + (pos - lo) * (s[hi] - s[lo])
        if np.isfinite(cut) and cut > last:
            out[j] = cut
            j += 1
            last = cut
    return j


_CELLS = 1024


@njit(parallel=True, cache=True)
def _bin_rows(X, edges, n_edges, lo, scale, table, nan_code, out):  # pragma: no cover
    """Bin code = #edges <= x. A uniform grid of ``_CELLS`` cells over each feature's edge
    range gives a starting guess (``table``: #edges below the cell), then at most a few
    steps along the sorted edges make it exact, whatever rounding did to the guess."""
    n, p = X.shape
    last = table.shape[1] - 1
    for i in prange(n):
        for f in range(p):
            x = X[i, f]
            if np.isnan(x):
                out[i, f] = nan_code
                continue
            ne = n_edges[f]
            if ne == 0:
                out[i, f] = 0
                continue
            pos = (x - lo[f]) * scale[f] if scale[f] > 0.0 else 0.0
            if pos <= 0.0:
                b = 0
            elif pos >= last:
                b = table[f, last]
            else:
                b = table[f, int(pos)]
            while b > 0 and edges[f, b - 1] > x:
                b -= 1
            while b < ne and edges[f, b] <= x:
                b += 1
            out[i, f] = b


def apply_bins(X: np.ndarray, edges: np.ndarray, n_edges: np.ndarray, nan_code: int) -> np.ndarray:
    """Codes of ``X`` (float64, any memory order) as a C-ordered (n, p) uint8 matrix;
    the same codes as ``numpy.searchsorted(edges[f], X[:, f], side="right")``, NaN ->
    ``nan_code``."""
    p = edges.shape[0]
    lo = np.zeros(p)
    scale = np.zeros(p)
    table = np.zeros((p, _CELLS), dtype=np.int32)
    for f in range(p):
        k = int(n_edges[f])
        if k == 0:
            continue
        first, last = edges[f, 0], edges[f, k - 1]
        lo[f] = first
        if last > first:
            scale[f] = _CELLS / (last - first)
            starts = first + np.arange(_CELLS) / scale[f]
            table[f] = np.searchsorted(edges[f, :k], starts, side="left")
    out = np.empty(X.shape, dtype=np.uint8)
    _bin_rows(X, edges, n_edges, lo, scale, table, np.uint8(nan_code), out)
    return out
