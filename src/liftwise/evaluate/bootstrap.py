"""Percentile bootstrap confidence intervals for any metric (see docs/metrics.md).

Units are resampled with replacement, within strata when ``stratify`` is given (pass the
treatment codes: every arm then keeps its size, as in the experiment's design). One seed
gives the same interval on every machine: the resampled indices come from uniform draws
in a fixed order, generated in large vectorised batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from liftwise.evaluate import metrics

__all__ = ["METRICS", "Interval", "bootstrap_ci", "metric_with_ci", "resample_indices"]

_BATCH_CELLS = 1 << 22  # indices drawn per batch (32 MiB of uniforms), bounds memory at 1M units


@dataclass(frozen=True)
class Interval:
    """A metric on the full sample with its bootstrap percentile interval and standard error."""

    estimate: float
    low: float
    high: float
    se: float


def _strata(n: int, stratify: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units grouped by stratum: (units in stratum order, each column's stratum start, size)."""
    if stratify is None:
        return np.arange(n), np.zeros(n, dtype=np.int64), np.full(n, n, dtype=np.int64)
    labels = np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"stratify must have shape ({n},), got {labels.shape}")
    _, group = np.unique(labels, return_inverse=True)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    column_group = group[order]
    return order, starts[column_group], sizes[column_group]


def _index_batches(
    n: int, n_boot: int, seed: int, stratify: np.ndarray | None
) -> Iterator[np.ndarray]:
    """Resampled unit indices, (rows, n) per batch: column j draws uniformly, with
    replacement, from the stratum of the j-th unit in stratum order."""
    order, start, size = _strata(n, stratify)
    rng = np.random.default_rng(seed)
    rows = max(1, _BATCH_CELLS // n)
    for first in range(0, n_boot, rows):
        uniform = rng.random((min(rows, n_boot - first), n))
        offset = np.minimum((uniform * size).astype(np.int64), size - 1)
        yield order[start + offset]


def resample_indices(
    n: int, *, n_boot: int = 200, seed: int = 0, stratify: np.ndarray | None = None
) -> np.ndarray:
    """All bootstrap resamples as an (n_boot, n) index matrix (the ones ``bootstrap_ci`` uses)."""
    _check_settings(n, n_boot, 0.05)
    return np.vstack(list(_index_batches(n, n_boot, seed, stratify)))


def _check_settings(n: int, n_boot: int, alpha: float) -> None:
    if n < 1:
        raise ValueError("arrays must hold at least one unit")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 2:
        raise ValueError(f"n_boot must be an int >= 2, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    stratify: np.ndarray | None = None,
) -> Interval:
    """``metric(*arrays)`` with a percentile interval at level 1 - alpha.

    Every array is indexed by unit on its first axis and resampled together; bind other
    arguments with ``functools.partial``. ``se`` is the standard deviation of the
    bootstrap replicates. Errors raised by the metric on a resample propagate.
    """
    if not arrays:
        raise ValueError("arrays: pass at least one array to resample")
    data = [np.asarray(a) for a in arrays]
    n = len(data[0])
    for position, array in enumerate(data[1:], start=2):
        if len(array) != n:
            raise ValueError(f"arrays: array {position} has {len(array)} units, array 1 has {n}")
    _check_settings(n, n_boot, alpha)
    estimate = float(metric(*data))
    replicates = np.array(
        [
            metric(*(array[rows] for array in data))
            for batch in _index_batches(n, n_boot, seed, stratify)
            for rows in batch
        ],
        dtype=np.float64,
    )
    if not np.isfinite(replicates).all():
        raise ValueError("metric returned a non-finite value on a bootstrap resample")
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return Interval(estimate, float(low), float(high), float(replicates.std(ddof=1)))


def _max_profit_value(*args: Any, **kwargs: Any) -> float:
    return metrics.max_profit(*args, **kwargs)[1]


METRICS: dict[str, Callable[..., float]] = {
    "auuc": metrics.auuc,
    "qini_coefficient": metrics.qini_coefficient,
    "uplift_at_k": metrics.uplift_at_k,
    "profit_at_k": metrics.profit_at_k,
    "max_profit": _max_profit_value,
    "roi": metrics.roi,
}
"""Single-arm metrics by name, each ``f(y, treatment, score, **params) -> float``."""


def metric_with_ci(
    name: str,
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    *,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
    **params: object,
) -> Interval:
    """A ``METRICS`` entry with its interval, resampling within treatment arms.

    ``params`` go to the metric (``arm``, ``normalize``, ``k``, costs...); a per-unit
    ``conversion`` array is resampled with the units.
    """
    if name not in METRICS:
        raise ValueError(f"name must be one of {sorted(METRICS)}, got {name!r}")
    conversion = params.pop("conversion", None)
    metric: Callable[..., float] = partial(METRICS[name], **params)
    arrays = [np.asarray(y), np.asarray(treatment), np.asarray(score)]
    if conversion is not None:
        metric = partial(_conversion_as_fourth_array, metric)
        arrays.append(np.asarray(conversion))
    return bootstrap_ci(metric, *arrays, n_boot=n_boot, alpha=alpha, seed=seed, stratify=arrays[1])


def _conversion_as_fourth_array(
    metric: Callable[..., float],
    y: np.ndarray,
    treatment: np.ndarray,
    score: np.ndarray,
    conversion: np.ndarray,
) -> float:
    return metric(y, treatment, score, conversion=conversion)
