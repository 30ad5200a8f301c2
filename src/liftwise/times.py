"""UTC time handling shared by every stage: one reading of naive times (they are UTC, like
every timestamp liftwise writes) and one parser for timestamp columns from users' files.

Comparing a zone-aware time with a naive one raises in Python and pandas, so every
comparison goes through these helpers and happens in UTC.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from liftwise.errors import UserError


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A zone-aware UTC datetime; a naive one is read as UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """The same instant as a naive UTC datetime (what the embedded stores keep)."""
    return as_utc(moment).replace(tzinfo=None)


_ZONE_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"


def utc_timestamps(
    values: pd.Series, *, file: str | Path | None = None, column: str | None = None
) -> pd.Series:
    """A column of ISO 8601 times (``Z``, offsets and mixed forms alike) or datetimes as
    zone-aware UTC; naive values are read as UTC. The first missing or unparseable value is
    a UserError naming its (0-based data) row.

    Times with and without a zone are parsed apart: pandas' ISO 8601 parser gives a naive
    time that follows an offset time that offset (2.x), shifting it by hours."""
    values = values.reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = pd.to_datetime(values, utc=True)
    else:
        text = values.astype("string")
        zoned = text.str.contains(_ZONE_SUFFIX, regex=True).fillna(False).to_numpy(dtype=bool)
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
        for part in (zoned, ~zoned):
            if part.any():
                parsed[part] = pd.to_datetime(
                    text[part], utc=True, format="ISO8601", errors="coerce"
                )
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"not a timestamp: {values.iloc[row]!r} (expected ISO 8601)",
            file=file,
            column=column,
            row=row,
        )
    return parsed
