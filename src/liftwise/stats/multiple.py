"""Multiple-comparison corrections: several arms and metrics, one error budget.

Holm (1979) controls the family-wise error rate (the chance of any false positive) and is
uniformly more powerful than Bonferroni; Benjamini & Hochberg (1995) controls the false
discovery rate (the expected share of false positives among the discoveries). Both return
adjusted p-values, equal to statsmodels ``multipletests`` (``holm``, ``fdr_bh``); NaN
p-values (no data) stay NaN and do not count in the family.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Correction = Literal["holm", "bh", "none"]


def _finite(p_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p_values, dtype=np.float64)
    keep = ~np.isnan(p)
    return p, keep


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down: sort ascending, p_(i) * (m - i + 1), running maximum, capped at 1."""
    p, keep = _finite(p_values)
    out = np.full(p.shape, np.nan)
    values = p[keep]
    m = values.size
    if m:
        order = np.argsort(values, kind="stable")
        scaled = np.maximum.accumulate(values[order] * (m - np.arange(m)))
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(scaled, 1.0)
        out[keep] = adjusted
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up: sort ascending, p_(i) * m / i, running minimum from the
    largest down, capped at 1."""
    p, keep = _finite(p_values)
    out = np.full(p.shape, np.nan)
    values = p[keep]
    m = values.size
    if m:
        order = np.argsort(values, kind="stable")
        scaled = values[order] * m / np.arange(1, m + 1)
        stepped = np.minimum.accumulate(scaled[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
        out[keep] = adjusted
    return out


def adjust(p_values: np.ndarray, method: Correction) -> np.ndarray:
    """Adjusted p-values by ``method`` (``none`` returns them unchanged)."""
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=np.float64).copy()
    raise ValueError(f"unknown correction {method!r} (holm, bh or none)")
