"""Evaluate uplift rankings and policies: curves, AUUC / Qini in both the scikit-uplift
and the causalml normalisations, uplift@k, Profit@K, ROI, multi-arm policy profit, and
bootstrap confidence intervals (definitions in docs/metrics.md)."""

from liftwise.evaluate.bootstrap import (
    METRICS,
    Interval,
    bootstrap_ci,
    metric_with_ci,
    resample_indices,
)
from liftwise.evaluate.metrics import (
    Curve,
    auuc,
    max_profit,
    perfect_qini_curve,
    perfect_uplift_curve,
    policy_max_profit,
    policy_profit_at_k,
    policy_profit_curve,
    profit_at_k,
    profit_curve,
    qini_coefficient,
    qini_curve,
    roi,
    uplift_at_k,
    uplift_curve,
)

__all__ = [
    "METRICS",
    "Curve",
    "Interval",
    "auuc",
    "bootstrap_ci",
    "max_profit",
    "metric_with_ci",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "policy_max_profit",
    "policy_profit_at_k",
    "policy_profit_curve",
    "profit_at_k",
    "profit_curve",
    "qini_coefficient",
    "qini_curve",
    "resample_indices",
    "roi",
    "uplift_at_k",
    "uplift_curve",
]
