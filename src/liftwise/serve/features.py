"""Each unit's feature row: inline values first, the online store for the rest.

Every model feature must come from one of the two; a missing or mistyped one, or a unit the
store does not know when nothing was given inline, is refused with the field's JSON path.
Eligibility rules may also read features outside the model (e.g. a raw ``region``) and the
request's context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from liftwise.serve.errors import ServeError
from liftwise.serve.schemas import DecisionRequest

_NUMBER_TYPES = frozenset({float, int, bool, type(None)})

FieldPath = Callable[[int, str], str]  # (index in this call, field) -> the request's JSON path
StoreRow = dict[str, float]  # a unit's online-store values by feature name ({} when unknown)
NO_COLUMNS = pd.DataFrame()  # without eligibility rules nothing reads the frame


@dataclass(frozen=True)
class Resolved:
    X: np.ndarray  # (n, p) float64, the model's feature order
    eligibility: pd.DataFrame  # the columns eligibility rules read (empty without rules)


class FeatureResolver:
    """Builds model matrices from requests; ``repo`` is a liftwise FeatureRepo or None."""

    def __init__(self, repo: Any | None, eligibility_features: Sequence[str] = ()) -> None:
        self.repo = repo
        self.store_features = frozenset(repo.feature_names) if repo is not None else frozenset()
        self.eligibility_features = tuple(dict.fromkeys(eligibility_features))

    def resolve(
        self, items: Sequence[DecisionRequest], features: tuple[str, ...], field: FieldPath
    ) -> Resolved:
        wanted = frozenset(features)
        rows: list[list[Any] | None] = []
        need_store: list[int] = []
        for i, item in enumerate(items):
            given = item.features or {}
            if wanted <= given.keys():
                row = [given[name] for name in features]
                if not _NUMBER_TYPES.issuperset(map(type, row)):
                    _refuse_mistyped(row, features, field, i)
                rows.append(row)
            else:
                rows.append(None)
                need_store.append(i)
        store = self._store_rows(items, need_store, features, field) if need_store else {}
        for i in need_store:
            rows[i] = self._merge(items[i], store, features, field, i)
        X = np.array(rows, dtype=np.float64).reshape(len(items), len(features))
        return Resolved(X, self._eligibility(items, X, features, store, field))

    def _store_rows(
        self,
        items: Sequence[DecisionRequest],
        indices: list[int],
        features: tuple[str, ...],
        field: FieldPath,
    ) -> dict[int, StoreRow]:
        """Store rows of the units at ``indices``; refuses units the store cannot help."""
        first = indices[0]
        if self.repo is None:
            missing = _first_missing(items[first], features)
            raise ServeError(
                422,
                "missing_feature",
                "missing (give it inline: this server has no online feature store)",
                field(first, f"features.{missing}"),
            )
        names = [
            n
            for n in dict.fromkeys((*features, *self.eligibility_features))
            if n in self.store_features
        ]
        if names:
            values = self.repo.online_values([items[i].unit_id for i in indices], features=names)
            known = ~np.isnan(values).all(axis=1)
        else:  # the store serves none of these features
            values = np.empty((len(indices), 0))
            known = np.zeros(len(indices), dtype=bool)
        out: dict[int, StoreRow] = {}
        for row, i in enumerate(indices):
            if not known[row] and not items[i].features:
                raise ServeError(
                    404,
                    "unknown_unit",
                    f"unit {items[i].unit_id} is not in the online feature store and no "
                    "features were given inline",
                    field(i, "unit_id"),
                )
            out[i] = dict(zip(names, values[row].tolist(), strict=True)) if known[row] else {}
        return out

    def _merge(
        self,
        item: DecisionRequest,
        store: dict[int, StoreRow],
        features: tuple[str, ...],
        field: FieldPath,
        i: int,
    ) -> list[Any]:
        given = item.features or {}
        stored = store[i]
        row: list[Any] = []
        for name in features:
            if name in given:
                value = given[name]
                if type(value) not in _NUMBER_TYPES:
                    _refuse_mistyped([value], (name,), field, i)
            elif name in stored:
                value = stored[name]
            else:
                where = (
                    "not in the online feature store"
                    if name not in self.store_features
                    else f"unit {item.unit_id} has no row in the online feature store"
                )
                raise ServeError(
                    422,
                    "missing_feature",
                    f"missing (give it inline: {where})",
                    field(i, f"features.{name}"),
                )
            row.append(value)
        return row

    def _eligibility(
        self,
        items: Sequence[DecisionRequest],
        X: np.ndarray,
        features: tuple[str, ...],
        store: dict[int, StoreRow],
        field: FieldPath,
    ) -> pd.DataFrame:
        """The columns eligibility rules read: model features from X, others from the
        inline features, the context or the store (in that order)."""
        if not self.eligibility_features:
            return NO_COLUMNS
        columns: dict[str, Any] = {}
        position = {name: j for j, name in enumerate(features)}
        outside = [n for n in self.eligibility_features if n not in position]
        lacking = [
            i
            for i, item in enumerate(items)
            if i not in store
            and any(
                not ((item.features and n in item.features) or (item.context and n in item.context))
                for n in outside
            )
        ]
        if lacking and self.repo is not None:
            store = {**store, **self._store_rows(items, lacking, features, field)}
        for name in self.eligibility_features:
            if name in position:
                columns[name] = X[:, position[name]]
                continue
            values: list[Any] = []
            for i, item in enumerate(items):
                for source in (item.features, item.context):
                    if source and name in source:
                        values.append(source[name])
                        break
                else:
                    stored = store.get(i)
                    if stored is not None and name in stored:
                        values.append(stored[name])
                    else:
                        raise ServeError(
                            422,
                            "missing_feature",
                            "missing (an eligibility rule reads it; give it in features or "
                            "context)",
                            field(i, f"features.{name}"),
                        )
            columns[name] = values
        return pd.DataFrame(columns, index=range(len(items)))


def _first_missing(item: DecisionRequest, features: tuple[str, ...]) -> str:
    given = item.features or {}
    return next(name for name in features if name not in given)


def _refuse_mistyped(row: list[Any], names: Sequence[str], field: FieldPath, i: int) -> None:
    for name, value in zip(names, row, strict=True):
        if type(value) not in _NUMBER_TYPES:
            raise ServeError(
                422,
                "mistyped_feature",
                f"must be a number (or null), got {type(value).__name__} {value!r:.40}",
                field(i, f"features.{name}"),
            )
