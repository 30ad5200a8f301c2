"""What the service measures per variant during a step, and what gates read.

Each worker counts its own decisions, errors and latencies per variant
(:class:`VariantCounters`, cumulative since the step began) and writes them to the
rollout store every second; the gates read the sum over workers. Latencies are kept as a
histogram over fixed bounds (:data:`LATENCY_BOUNDS_MS`), so workers' counts add up and a
p99 over the whole step costs nothing to keep. Net profit per unit comes from outcomes
joined to exposures (:class:`ProfitMoments`: count, sum, sum of squares).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# upper bounds of the latency histogram's buckets (ms); a last, open bucket catches the rest
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 40, 50, 60, 75, 100, 150, 250, 500, 1000, 2500,
)  # fmt: skip


def latency_bucket(milliseconds: float) -> int:
    """Index of the histogram bucket a latency falls in (len(bounds) = the open one)."""
    return int(np.searchsorted(LATENCY_BOUNDS_MS, milliseconds, side="left"))


@dataclass
class VariantCounters:
    """One variant's operational counts over a step (one worker's, or summed)."""

    decisions: int = 0  # answered decisions (2xx), replays excluded
    errors: int = 0  # 5xx answers
    timeouts: int = 0  # decisions slower than the plan's timeout_ms
    treated: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))

    def record(self, milliseconds: float, *, error: bool, treated: bool = False) -> None:
        if error:
            self.errors += 1
        else:
            self.decisions += 1
            self.treated += int(treated)
        self.latency[latency_bucket(milliseconds)] += 1

    def add(self, other: VariantCounters) -> VariantCounters:
        return VariantCounters(
            self.decisions + other.decisions,
            self.errors + other.errors,
            self.timeouts + other.timeouts,
            self.treated + other.treated,
            [a + b for a, b in zip(self.latency, other.latency, strict=True)],
        )

    @property
    def requests(self) -> int:
        return self.decisions + self.errors

    def quantile_ms(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (conservative: the true
        quantile is at most this); inf when it is in the open bucket, nan without data."""
        total = sum(self.latency)
        if total == 0:
            return float("nan")
        rank = int(np.ceil(q * total))
        index = int(np.searchsorted(np.cumsum(self.latency), max(rank, 1), side="left"))
        return LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else float("inf")

    def slower_than(self, milliseconds: float) -> int:
        """Requests in buckets entirely above ``milliseconds``."""
        first = int(np.searchsorted(LATENCY_BOUNDS_MS, milliseconds, side="left"))
        return sum(self.latency[first + 1 :]) if first < len(LATENCY_BOUNDS_MS) else 0


@dataclass(frozen=True)
class ProfitMoments:
    """Net profit per unit of one variant's units with outcomes: n, sum, sum of squares."""

    n: int = 0
    total: float = 0.0
    total_squares: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 denominator)."""
        if self.n < 2:
            return float("nan")
        return max(0.0, (self.total_squares - self.total**2 / self.n) / (self.n - 1))
