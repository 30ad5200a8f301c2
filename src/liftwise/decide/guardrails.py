"""Hard and soft guardrails as (units x arms) masks with a reason per blocked cell.

Hard: do-not-contact, contact-frequency caps over a rolling window of the exposure
history, eligibility predicates on unit features. Soft: the lower bound of the effect
(or of the expected profit) must clear a threshold. Capacities and the budget are the
optimiser's constraints, not masks.
"""

from __future__ import annotations

import datetime as dt
from enum import IntEnum
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from liftwise.decide.config import OPERATORS, DecisionConfig, EligibilityRule
from liftwise.errors import UserError
from liftwise.times import as_utc, utc_timestamps


class Reason(IntEnum):
    """Why a unit was left untreated, most fundamental first (lower code wins)."""

    TREATED = 0
    DO_NOT_CONTACT = 1
    CAP = 2
    INELIGIBLE = 3
    INTERVAL_BELOW_THRESHOLD = 4
    NEGATIVE_PROFIT = 5
    CAPACITY = 6
    BUDGET = 7
    PACING = 8  # real-time only: the budget paced so far is spent, the campaign's is not

    @property
    def label(self) -> str:
        return "" if self is Reason.TREATED else self.name.lower()


def block_do_not_contact(
    unit_ids: np.ndarray, do_not_contact: np.ndarray, *, assume_sorted: bool = False
) -> np.ndarray:
    """True for units on the do-not-contact list; a sorted unique list (``do_not_contact_ids``)
    is searched in O(n log m), so a real-time caller pays nothing per request for a long list."""
    listed = np.asarray(do_not_contact, dtype=np.int64)
    unit_ids = np.asarray(unit_ids)
    if listed.size == 0:
        return np.zeros(unit_ids.shape, dtype=bool)
    if not assume_sorted:
        listed = np.unique(listed)
    position = np.minimum(np.searchsorted(listed, unit_ids), listed.size - 1)
    return listed[position] == unit_ids


def do_not_contact_ids(config: DecisionConfig) -> np.ndarray:
    """Sorted unique ids of the config's list and file (the file is read here, once)."""
    listed = np.asarray(config.do_not_contact, dtype=np.int64)
    if config.do_not_contact_file is not None:
        listed = np.concatenate([listed, _read_id_list(config.do_not_contact_file)])
    return np.unique(listed)


def block_contact_cap(
    unit_ids: np.ndarray,
    exposures: pd.DataFrame | None,
    *,
    max_contacts: int,
    window_days: int,
    now: dt.datetime,
) -> np.ndarray:
    """True for units already treated ``max_contacts`` times in the last ``window_days``.

    Times compare in UTC: ``now`` and the history's times may carry zones or be naive
    (naive is UTC)."""
    if exposures is None or exposures.empty:
        return (
            np.zeros(len(unit_ids), dtype=bool)
            if max_contacts > 0
            else np.ones(len(unit_ids), dtype=bool)
        )
    _require_history_columns(exposures, "the exposure history")
    until = pd.Timestamp(as_utc(now))
    since = until - pd.Timedelta(days=window_days)
    occurred = utc_timestamps(exposures["occurred_at"], column="occurred_at")
    in_window = ((occurred >= since) & (occurred < until)).to_numpy()
    counts = pd.Series(exposures["unit_id"].to_numpy()[in_window]).value_counts()
    return counts.reindex(unit_ids, fill_value=0).to_numpy() >= max_contacts


def read_exposure_history(path: str | Path) -> pd.DataFrame:
    """The exposure history file (unit_id, occurred_at) for contact caps, its times parsed
    to UTC here so a bad one is refused naming the file and row."""
    from liftwise.ingest import read_table

    history = read_table(path)
    _require_history_columns(history, path)
    occurred = utc_timestamps(history["occurred_at"], file=path, column="occurred_at")
    return history.assign(occurred_at=occurred.set_axis(history.index))


def _require_history_columns(history: pd.DataFrame, source: str | Path) -> None:
    for column in ("unit_id", "occurred_at"):
        if column not in history.columns:
            raise UserError("missing column in the exposure history", file=source, column=column)


def _rule_mask(rule: EligibilityRule, features: pd.DataFrame, source: str) -> np.ndarray:
    """True where the unit satisfies the rule."""
    if rule.feature not in features.columns:
        raise UserError(
            f"eligibility rule on unknown feature (features: {', '.join(map(str, features.columns[:20]))}...)",
            file=source,
            column=rule.feature,
        )
    values = features[rule.feature]
    if rule.op in ("in", "not in"):
        options = rule.value if isinstance(rule.value, list) else [rule.value]
        inside = values.isin(options).to_numpy()
        return inside if rule.op == "in" else ~inside
    if isinstance(rule.value, list):
        raise UserError(
            f"operator '{rule.op}' takes one value, not a list", file=source, column=rule.feature
        )
    numeric = pd.api.types.is_numeric_dtype(values.dtype)
    if numeric != isinstance(rule.value, int | float):
        kind = "numeric" if numeric else "a text"
        raise UserError(
            f"eligibility value {rule.value!r} cannot be compared with {kind} feature",
            file=source,
            column=rule.feature,
        )
    return np.asarray(OPERATORS[rule.op](values, rule.value), dtype=bool)


def block_ineligible(
    features: pd.DataFrame, treatments: tuple[str, ...], rules: list[EligibilityRule], source: str
) -> np.ndarray:
    """(n, k) True where a rule that applies to the arm fails for the unit."""
    blocked = np.zeros((len(features), len(treatments)), dtype=bool)
    for rule in rules:
        failing = ~_rule_mask(rule, features, source)
        for j, arm in enumerate(treatments):
            if rule.arms is None or arm in rule.arms:
                blocked[:, j] |= failing
    return blocked


def lower_bound(
    point: np.ndarray, low: np.ndarray, high: np.ndarray, level: float, alpha: float
) -> np.ndarray:
    """One-sided lower bound at ``level`` from a two-sided (1 - alpha) interval, assuming a
    normal sampling distribution: point - z_level * (high - low) / (2 z_{1 - alpha/2})."""
    half = (high - low) / 2.0
    return point - norm.ppf(level) * half / norm.ppf(1 - alpha / 2)


def guardrail_reasons(
    unit_ids: np.ndarray,
    features: pd.DataFrame,
    treatments: tuple[str, ...],
    config: DecisionConfig,
    *,
    exposures: pd.DataFrame | None,
    now: dt.datetime,
    effect_lower: np.ndarray | None,
    profit_lower: np.ndarray | None,
    source: str = "decision config",
    do_not_contact: np.ndarray | None = None,
) -> np.ndarray:
    """(n, k) Reason codes: TREATED (0) where the arm is allowed, else the first blocker.

    ``do_not_contact``: the config's ids from ``do_not_contact_ids`` when the caller decides
    repeatedly (the real-time service); by default they are read from the config here."""
    n, k = len(unit_ids), len(treatments)
    reasons = np.full((n, k), Reason.TREATED, dtype=np.int8)

    def apply(mask: np.ndarray, reason: Reason) -> None:
        mask = np.broadcast_to(mask if mask.ndim == 2 else mask[:, None], (n, k))
        reasons[(reasons == Reason.TREATED) & mask] = reason

    if do_not_contact is None:
        do_not_contact = do_not_contact_ids(config)
    apply(block_do_not_contact(unit_ids, do_not_contact, assume_sorted=True), Reason.DO_NOT_CONTACT)
    if config.contact_cap is not None:
        cap = config.contact_cap
        apply(
            block_contact_cap(
                unit_ids,
                exposures,
                max_contacts=cap.max_contacts,
                window_days=cap.window_days,
                now=now,
            ),
            Reason.CAP,
        )
    if config.eligibility:
        apply(block_ineligible(features, treatments, config.eligibility, source), Reason.INELIGIBLE)
    soft = config.soft_guardrail
    if soft is not None:
        bound = effect_lower if soft.metric == "effect" else profit_lower
        if bound is not None:
            apply(bound <= soft.threshold, Reason.INTERVAL_BELOW_THRESHOLD)
        elif soft.require_interval:
            raise UserError(
                "the soft guardrail needs per-unit intervals, which this model does not give",
                file=source,
                column="soft_guardrail",
            )
    return reasons


def _read_id_list(path) -> np.ndarray:
    """Unit ids from a file: one per line, or a CSV/Parquet with a ``unit_id`` column."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such file", file=path, column="do_not_contact_file")
    if path.suffix in (".csv", ".parquet", ".pq"):
        table = pd.read_parquet(path) if path.suffix != ".csv" else pd.read_csv(path)
        if "unit_id" not in table.columns:
            raise UserError("missing column", file=path, column="unit_id")
        values = table["unit_id"]
    else:
        values = pd.Series([line.strip() for line in path.read_text().splitlines() if line.strip()])
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        raise UserError(f"not a unit id: '{values.iloc[row]}'", file=path, row=row)
    return numbers.to_numpy(dtype=np.int64)
