"""A fitted model with everything needed to score new units: features, arms, money.

Saved as ``model.joblib`` (the learner) plus ``model.json`` (readable metadata) in one
directory, both written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from pydantic import Field

from liftwise import __version__
from liftwise.contracts.ids import integer_ids, require_unique_ids
from liftwise.errors import UserError
from liftwise.evaluate.economics import Economics, expected_profit
from liftwise.ingest.experiment import (
    DEFAULT_MAX_UNSEEN_SHARE,
    Note,
    encode_like,
    resolve_unit_id,
)
from liftwise.io import atomic_path, write_json
from liftwise.learn.base import UpliftLearner
from liftwise.params import Parameters

MODEL_FILE = "model.joblib"
META_FILE = "model.json"
TRAIN_MODEL_DIR = "model"  # where `liftwise train --out DIR` puts the bundle


@dataclass
class ModelBundle:
    """A learner fitted on ``features`` (encoded names) for ``arms`` (control first)."""

    learner: UpliftLearner
    learner_name: str
    features: tuple[str, ...]
    arms: tuple[str, ...]
    outcome: str
    economics: Economics
    world: str | None = None  # the world kind when features come from a world's raw tables
    id_column: str | None = None  # the training table's unit id column (None: numbered rows)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def treatments(self) -> tuple[str, ...]:
        return self.arms[1:]

    def describe(self) -> dict[str, Any]:
        return {
            "learner": self.learner_name,
            "features": list(self.features),
            "arms": list(self.arms),
            "outcome": self.outcome,
            "economics": self.economics.model_dump(),
            "world": self.world,
            "unit_id_column": self.id_column,
            "liftwise_version": __version__,
            **self.metadata,
        }


class ScoringSettings(Parameters):
    """How scores are reported: effect intervals at level ``1 - alpha``."""

    alpha: float = Field(default=0.05, gt=0, lt=1)


def save_bundle(bundle: ModelBundle, directory: str | Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / MODEL_FILE) as tmp:
        joblib.dump(bundle, tmp, compress=3)
    write_json(directory / META_FILE, bundle.describe())


def load_bundle(directory: str | Path) -> ModelBundle:
    """Load a saved bundle from its directory or from the directory ``liftwise train --out``
    wrote (its ``model/``); a missing or foreign directory is a one-line UserError."""
    directory = Path(directory)
    path = directory / MODEL_FILE
    if not path.is_file() and (directory / TRAIN_MODEL_DIR / MODEL_FILE).is_file():
        path = directory / TRAIN_MODEL_DIR / MODEL_FILE
    if not path.is_file():
        raise UserError(f"no {MODEL_FILE} here (train one with `liftwise train`)", file=directory)
    bundle = joblib.load(path)
    if not isinstance(bundle, ModelBundle):
        raise UserError("not a liftwise model bundle", file=path)
    return bundle


def score_units(
    bundle: ModelBundle, X: np.ndarray, unit_ids: np.ndarray, *, alpha: float = 0.05
) -> pd.DataFrame:
    """Per unit and treatment arm: effect, its interval where the learner gives one, the
    expected outcome under the arm and the expected incremental net profit."""
    ScoringSettings(alpha=alpha)
    learner = bundle.learner
    outcomes = learner.predict_outcomes(X)
    effects = outcomes[:, 1:] - outcomes[:, :1]
    contact, redemption = bundle.economics.arrays(bundle.treatments)
    profit = expected_profit(
        outcomes,
        value_per_outcome=bundle.economics.value_per_outcome,
        contact_cost=contact,
        redemption_cost=redemption,
    )
    if getattr(learner, "supports_interval", False):
        low, high = learner.predict_interval(X, alpha=alpha)
    else:
        low = high = np.full_like(effects, np.nan)
    n, k = effects.shape
    return pd.DataFrame(
        {
            "unit_id": np.repeat(unit_ids, k),
            "arm": np.tile(np.asarray(bundle.treatments, dtype=object), n),
            "effect": effects.reshape(-1),
            "effect_low": low.reshape(-1),
            "effect_high": high.reshape(-1),
            "expected_outcome": outcomes[:, 1:].reshape(-1),
            "control_outcome": np.repeat(outcomes[:, 0], k),
            "expected_profit": profit.reshape(-1),
        }
    )


def table_units(
    bundle: ModelBundle,
    table: pd.DataFrame,
    *,
    source: str,
    unit_id: str | None = None,
    number_rows: bool = False,
    max_unseen_share: float = DEFAULT_MAX_UNSEEN_SHARE,
    note: Note | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, X) of a raw table to score: ids from ``unit_id``, else the column the model
    was trained with, else ``unit_id`` (unique integers; row numbers only with
    ``number_rows``), and X encoded as training did (see ``encode_like``)."""
    column = resolve_unit_id(
        table.columns, unit_id, recorded=bundle.id_column, source=source, number_rows=number_rows
    )
    if column is None:
        ids = np.arange(len(table), dtype=np.int64)
    else:
        ids = integer_ids(table[column], file=source, column=column)
        require_unique_ids(ids, file=source, column=column)
    encoded = encode_like(
        table, bundle.features, source=source, max_unseen_share=max_unseen_share, note=note
    )
    return ids, encoded.to_numpy(dtype=np.float64)
