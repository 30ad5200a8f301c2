"""Uplift learners: meta-learners on LightGBM/CatBoost and liftwise's own uplift forest.

Heavy modules load on first use: ``from liftwise.learn import TLearner`` imports LightGBM,
``UpliftRandomForest`` numba; the contract and the registry stay light.
"""

from __future__ import annotations

from typing import Any

from liftwise.learn.base import UpliftLearner, check_uplift_data, outcome_kind
from liftwise.learn.registry import make_learner

_LAZY = {
    "SLearner": "liftwise.learn.meta",
    "TLearner": "liftwise.learn.meta",
    "XLearner": "liftwise.learn.meta",
    "DRLearner": "liftwise.learn.meta",
    "make_meta_learner": "liftwise.learn.meta",
    "UpliftRandomForest": "liftwise.learn.forest",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'liftwise.learn' has no attribute {name!r}")


__all__ = [
    "DRLearner",
    "SLearner",
    "TLearner",
    "UpliftLearner",
    "UpliftRandomForest",
    "XLearner",
    "check_uplift_data",
    "make_learner",
    "make_meta_learner",
    "outcome_kind",
]
