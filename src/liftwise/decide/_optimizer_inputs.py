"""The arrays and the thread setting the optimiser's kernels run with.

Shared by :func:`liftwise.decide.optimizer.optimize_budget` and
:func:`liftwise.decide.curve.budget_curve`: inputs are checked once here, with a
``ValueError`` naming the argument, and are then used as they are (no copy when already
C-contiguous float32/float64).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np

from liftwise.decide import _optimizer_kernels as kernels

MAX_ARMS = 32767  # hull vertices are stored as int16 arm indices
PARALLEL_MIN = 100_000  # fewer units run on one thread: waking the pool costs more


def check_inputs(
    profit: np.ndarray,
    cost: np.ndarray,
    budget: float,
    capacity: np.ndarray | None,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """(profit, cost, budget, capacity, allowed) as the kernels accept them: capacity
    (k,) with inf for unlimited, allowed (n, k) bool or empty (0, k) when not given."""
    profit = _float_matrix(profit, "profit")
    cost = _float_matrix(cost, "cost")
    if cost.shape != profit.shape:
        raise ValueError(f"cost has shape {cost.shape} but profit has shape {profit.shape}")
    n_arms = profit.shape[1]
    if n_arms > MAX_ARMS:
        raise ValueError(f"profit has {n_arms} arms; at most {MAX_ARMS} are supported")
    _finite_min(profit, "profit")
    if _finite_min(cost, "cost") < 0:
        raise ValueError("cost must be >= 0 everywhere")
    budget = float(budget)
    if not budget >= 0:  # also catches NaN
        raise ValueError(f"budget must be a number >= 0 (inf: unlimited), got {budget}")
    return profit, cost, budget, _capacity(capacity, n_arms), _mask(allowed, profit.shape)


def _capacity(capacity: np.ndarray | None, n_arms: int) -> np.ndarray:
    """(k,) float64 whole numbers or inf; all inf when not given."""
    if capacity is None:
        return np.full(n_arms, np.inf)
    cap = np.asarray(capacity, dtype=np.float64).reshape(-1)
    if cap.shape != (n_arms,):
        raise ValueError(f"capacity must have one entry per arm ({n_arms}), got {cap.size}")
    if np.isnan(cap).any() or (cap < 0).any():
        raise ValueError("capacity must be >= 0 (inf or None: unlimited)")
    finite = np.isfinite(cap)
    if (cap[finite] != np.floor(cap[finite])).any():
        raise ValueError("capacity must hold whole numbers of units")
    return cap


def _mask(allowed: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """C-contiguous (n, k) bool, or an empty (0, k) array meaning "every cell allowed"."""
    if allowed is None:
        return np.empty((0, shape[1]), dtype=np.bool_)
    mask = np.asarray(allowed)
    if mask.dtype != np.bool_:
        raise ValueError(f"allowed must be a boolean array, got dtype {mask.dtype}")
    if mask.shape != shape:
        raise ValueError(f"allowed has shape {mask.shape} but profit has shape {shape}")
    return np.ascontiguousarray(mask)


def _float_matrix(a: np.ndarray, name: str) -> np.ndarray:
    """A C-contiguous float32/float64 (units, arms) matrix."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (units, arms) array, got shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one arm (column)")
    if a.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        a = a.astype(np.float64)
    return np.ascontiguousarray(a)


def _finite_min(a: np.ndarray, name: str) -> float:
    """The smallest entry of ``a``; ValueError if any entry is NaN or infinite."""
    if a.size == 0:
        return 0.0
    out = np.zeros((kernels.N_CHUNKS, 2))
    kernels.scan_values(a, out)
    if out[:, 0].any():
        raise ValueError(f"{name} contains NaN or infinite values")
    return float(out[:, 1].min())


@contextmanager
def threads_for(n_units: int) -> Iterator[None]:
    """One numba thread for small problems (results never depend on the thread count)."""
    if n_units >= PARALLEL_MIN:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)
