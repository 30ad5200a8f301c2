"""Learners by name, for the model race and the CLI (``--learners t_lgbm,dr_catboost``)."""

from __future__ import annotations

from collections.abc import Callable

from liftwise.errors import UserError
from liftwise.learn.base import UpliftLearner


def _meta(kind: str, base: str) -> Callable[[int], UpliftLearner]:
    def build(seed: int) -> UpliftLearner:
        from liftwise.learn.meta import make_meta_learner

        return make_meta_learner(kind, base_model=base, random_state=seed)

    return build


def _forest(seed: int) -> UpliftLearner:
    from liftwise.learn.forest import UpliftRandomForest

    return UpliftRandomForest(random_state=seed)


LEARNERS: dict[str, Callable[[int], UpliftLearner]] = {
    **{f"{kind}_lgbm": _meta(kind, "lightgbm") for kind in ("s", "t", "x", "dr")},
    **{f"{kind}_catboost": _meta(kind, "catboost") for kind in ("s", "t", "x", "dr")},
    "uplift_forest": _forest,
}

# The plan's names for two of them.
ALIASES = {"CatBoostUplift": "dr_catboost", "UpliftRF": "uplift_forest"}

DEFAULT_RACE = ("s_lgbm", "t_lgbm", "x_lgbm", "dr_lgbm", "dr_catboost", "uplift_forest")


def make_learner(name: str, seed: int = 0) -> UpliftLearner:
    """A fresh, unfitted learner by registry name (or alias)."""
    key = ALIASES.get(name, name)
    if key not in LEARNERS:
        known = ", ".join([*LEARNERS, *ALIASES])
        raise UserError(f"unknown learner '{name}' (known: {known})", option="--learners")
    return LEARNERS[key](seed)
