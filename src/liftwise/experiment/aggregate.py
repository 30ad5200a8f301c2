"""Per-unit columns to summary statistics: sums per (arm, segment level, look) cell.

One ``np.bincount`` per column and per product of columns gives every cell's count, sum,
sum of squares and cross-products at once; the overall, per-segment and over-time
summaries are then sums over cells, so the statistics never touch per-unit data again.
Exposed units without an outcome row count in ``n`` with zero metrics (as GrowthBook), in
a "(no outcome row)" segment level. Products are formed in one reused buffer: no
allocation per column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from liftwise.experiment.data import NO_OUTCOME_LEVEL, UnitData
from liftwise.stats.moments import JointMoments, Moments, proportion_moments

Pair = tuple[str, str]


def pair(a: str, b: str) -> Pair:
    """Canonical key of the product of two columns."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class ArmSums:
    """Count, sums and sums of products of one arm (arrays of any common shape)."""

    n: np.ndarray
    sums: dict[str, np.ndarray]
    products: dict[Pair, np.ndarray]

    def moments(self, column: str) -> Moments:
        return Moments.from_sums(self.n, self.sums[column], self.products[pair(column, column)])

    def proportion(self, column: str) -> Moments:
        return proportion_moments(self.sums[column], self.n)

    def joint(self, y: str, x: str) -> JointMoments:
        return JointMoments.from_sums(
            self.n,
            self.sums[y],
            self.sums[x],
            self.products[pair(y, y)],
            self.products[pair(x, x)],
            self.products[pair(x, y)],
        )


@dataclass(frozen=True)
class CellSums:
    """Sums over cells of shape (arms, levels, looks) for one segment dimension."""

    dimension: str | None
    levels: list[str]
    n: np.ndarray
    sums: dict[str, np.ndarray]
    products: dict[Pair, np.ndarray]

    def _map(self, apply: Callable[[np.ndarray], np.ndarray]) -> CellSums:
        return CellSums(
            dimension=self.dimension,
            levels=self.levels,
            n=apply(self.n),
            sums={k: apply(v) for k, v in self.sums.items()},
            products={k: apply(v) for k, v in self.products.items()},
        )

    def overall(self) -> CellSums:
        """Everything summed: shape (arms,)."""
        return self._map(lambda a: a.sum(axis=(1, 2)))

    def by_level(self) -> CellSums:
        """Summed over looks: shape (arms, levels)."""
        return self._map(lambda a: a.sum(axis=2))

    def cumulative_looks(self) -> CellSums:
        """Units exposed up to each look: shape (arms, looks)."""
        return self._map(lambda a: np.cumsum(a.sum(axis=1), axis=1))

    def arm(self, index: int) -> ArmSums:
        return ArmSums(
            n=self.n[index],
            sums={k: v[index] for k, v in self.sums.items()},
            products={k: v[index] for k, v in self.products.items()},
        )


def aggregate(
    units: UnitData,
    columns: dict[str, np.ndarray],
    pairs: Iterable[Pair],
) -> list[CellSums]:
    """Cell sums for every segment dimension (the first also keeps the looks axis; with no
    segments, one dimension ``None`` with a single level ``all``)."""
    k, looks = len(units.arms), units.looks
    missing = units.n_exposed - units.n_with_row  # (arms, looks) units without a row
    has_missing = bool(missing.sum()) and bool(units.segments)
    dimensions: list[tuple[str | None, np.ndarray, list[str]]] = (
        [(name, codes, labels) for name, (codes, labels) in units.segments.items()]
        if units.segments
        else [(None, np.zeros(units.row_code.size, dtype=np.int32), ["all"])]
    )
    row = units.row_code
    valid = row >= 0
    arm_of, look_of = row // looks, row % looks
    plans = []
    for index, (name, codes, labels) in enumerate(dimensions):
        levels = [*labels, NO_OUTCOME_LEVEL] if has_missing else list(labels)
        t = looks if index == 0 else 1
        s = len(levels)
        cell = arm_of * (s * t) + codes * t + (look_of if t > 1 else 0)
        code = np.where(valid, cell + 1, 0)
        plans.append((name, levels, s, t, code))

    def cells(code: np.ndarray, s: int, t: int, weights: np.ndarray | None) -> np.ndarray:
        counts = np.bincount(code, weights=weights, minlength=k * s * t + 1)
        return counts[1:].reshape(k, s, t)

    results = []
    pair_list = sorted(set(pairs))
    sums_by_plan: list[dict[str, np.ndarray]] = [{} for _ in plans]
    products_by_plan: list[dict[Pair, np.ndarray]] = [{} for _ in plans]
    for column, values in columns.items():
        for plan_sums, (_, _, s, t, code) in zip(sums_by_plan, plans, strict=True):
            plan_sums[column] = cells(code, s, t, values)
    buffer = np.empty(row.size, dtype=np.float64)
    for a, b in pair_list:
        if a == b and a in units.binary:  # 0/1: the square is the value itself
            for plan_products, plan_sums in zip(products_by_plan, sums_by_plan, strict=True):
                plan_products[(a, b)] = plan_sums[a]
            continue
        np.multiply(columns[a], columns[b], out=buffer)
        for plan_products, (_, _, s, t, code) in zip(products_by_plan, plans, strict=True):
            plan_products[(a, b)] = cells(code, s, t, buffer)
    for (name, levels, s, t, code), sums, products in zip(
        plans, sums_by_plan, products_by_plan, strict=True
    ):
        n = cells(code, s, t, None).astype(np.float64)
        extra = missing if t > 1 else missing.sum(axis=1, keepdims=True)
        n[:, s - 1 if has_missing else 0, :] += extra
        results.append(CellSums(dimension=name, levels=levels, n=n, sums=sums, products=products))
    return results
