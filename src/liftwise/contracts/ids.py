"""Unit ids, checked once: integers (also integral floats or numeric text), none missing,
and unique where a table has one row per unit.

Every stage that takes ids from a user's table (ingest, train, score, decide, the
feature store) calls these, so an id problem reads the same everywhere: one line naming
the file, the column and the first bad row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from liftwise.errors import UserError

SHOWN_DUPLICATES = 5  # duplicated ids named in the error


def integer_ids(
    values: pd.Series | np.ndarray | Sequence[object],
    *,
    column: str,
    file: str | Path | None = None,
) -> np.ndarray:
    """Ids as int64; a missing, fractional, infinite or non-numeric id is a UserError
    naming its 0-based row."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    series = series.reset_index(drop=True)
    if pd.api.types.is_integer_dtype(series.dtype) and not series.isna().any():
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_bool_dtype(series.dtype):
        raise UserError("unit ids must be integers, not booleans", file=file, column=column)
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(numbers) | (numbers != np.floor(numbers))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = series.iloc[row]
        words = "missing unit id" if pd.isna(value) else f"unit id is not an integer ({value!r})"
        raise UserError(words, file=file, column=column, row=row)
    return numbers.astype(np.int64)


def require_unique_ids(
    ids: np.ndarray, *, column: str, file: str | Path | None = None
) -> np.ndarray:
    """``ids`` unchanged when no id repeats; else a UserError naming the first repeated ids
    (in row order) and the row where the first repeat occurs."""
    repeated = pd.Series(ids).duplicated().to_numpy()
    if not repeated.any():
        return ids
    row = int(np.flatnonzero(repeated)[0])
    first = int(np.flatnonzero(ids == ids[row])[0])
    repeats = pd.unique(ids[repeated])
    named = ", ".join(str(v) for v in repeats[:SHOWN_DUPLICATES])
    more = ", ..." if len(repeats) > SHOWN_DUPLICATES else ""
    which = "" if len(repeats) == 1 else f"{ids[row]} "
    raise UserError(
        f"duplicate unit id{'s' if len(repeats) > 1 else ''} {named}{more} "
        f"({which}first at row {first})",
        file=file,
        column=column,
        row=row,
    )
