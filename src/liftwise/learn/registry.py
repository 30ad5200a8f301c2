"""Learners by name, for the model race and the CLI (``--learners t_lgbm,dr_catboost``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from liftwise.errors import UserError
from liftwise.learn.base import UpliftLearner

if TYPE_CHECKING:  # meta imports the base models; keep this registry light
    from liftwise.learn.meta import MetaKind

Builder = Callable[[int, tuple[float, ...] | None], UpliftLearner]
_META_KINDS: tuple[MetaKind, ...] = ("s", "t", "x", "dr")

# Race settings of the DR-learner: 2 folds and 10 bootstrap final stages keep it within a
# few times a T-learner's cost while still giving per-unit intervals.
DR_RACE_PARAMS = {"n_folds": 2, "n_bootstrap": 10}


def _meta(kind: MetaKind, base: str) -> Builder:
    def build(seed: int, propensity: tuple[float, ...] | None) -> UpliftLearner:
        from liftwise.learn.meta import make_meta_learner

        extra: dict[str, object] = dict(DR_RACE_PARAMS) if kind == "dr" else {}
        if kind in ("x", "dr") and propensity is not None:
            extra["propensity"] = propensity
        return make_meta_learner(kind, base_model=base, random_state=seed, **extra)

    return build


def _forest(seed: int, propensity: tuple[float, ...] | None) -> UpliftLearner:
    from liftwise.learn.forest import UpliftRandomForest

    return UpliftRandomForest(random_state=seed)


LEARNERS: dict[str, Builder] = {
    **{f"{kind}_lgbm": _meta(kind, "lightgbm") for kind in _META_KINDS},
    **{f"{kind}_catboost": _meta(kind, "catboost") for kind in _META_KINDS},
    "uplift_forest": _forest,
}

# The plan's names for two of them.
ALIASES = {"CatBoostUplift": "dr_catboost", "UpliftRF": "uplift_forest"}

DEFAULT_RACE = ("s_lgbm", "t_lgbm", "x_lgbm", "dr_lgbm", "t_catboost", "uplift_forest")


def make_learner(
    name: str, seed: int = 0, propensity: tuple[float, ...] | None = None
) -> UpliftLearner:
    """A fresh, unfitted learner by registry name (or alias); ``propensity`` is the
    experiment's design (arm probabilities, control first) when known."""
    check_learner_names((name,))
    return LEARNERS[ALIASES.get(name, name)](seed, propensity)


def check_learner_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` unchanged when every one is a registry name or alias, so a race refuses a
    typo before it fits anything."""
    for name in names:
        if ALIASES.get(name, name) not in LEARNERS:
            known = ", ".join([*LEARNERS, *ALIASES])
            raise UserError(f"unknown learner '{name}' (known: {known})", parameter="learners")
    return tuple(names)
