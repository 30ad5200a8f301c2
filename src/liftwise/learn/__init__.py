"""Uplift learners: meta-learners on LightGBM/CatBoost and liftwise's own uplift forest."""

from liftwise.learn.base import UpliftLearner, check_uplift_data, outcome_kind

__all__ = ["UpliftLearner", "check_uplift_data", "outcome_kind"]
