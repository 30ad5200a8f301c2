"""Salted hashing of unit ids: one uniform draw in [0, 1) per (salt, unit), the same in
every process and on every machine.

The algorithm (docs/experiments.md has golden vectors): the unit id becomes text
(integers in decimal, also ``42.0`` read from a CSV; strings as they are); the draw is
the first 8 bytes of SHA-256 of ``f"{salt}:{id}"`` as a big-endian unsigned 64-bit
integer, shifted right by 11 bits and divided by 2**53, a float that is exact in
binary64. Experiments (``liftwise.experiment.assign``) and rollouts
(``liftwise.rollout.split``) place units with it; it lives below both so the decision
service can use it too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from liftwise.errors import UserError

_BUCKET_SCALE = 2.0**-53
_BATCH = 100_000


def unit_keys(unit_ids: Iterable[object] | np.ndarray, *, source: str = "unit ids") -> list[str]:
    """The text each unit id is hashed as: integers (also integral floats) in decimal,
    strings unchanged; anything else is a UserError naming the row."""
    values = np.asarray(unit_ids) if not isinstance(unit_ids, np.ndarray) else unit_ids
    if values.dtype.kind in "iu":
        return [str(v) for v in values.tolist()]
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.floor(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise UserError(
                f"unit id {values[row].item()!r} is not an integer", file=source, row=row
            )
        return [str(int(v)) for v in values.tolist()]
    keys: list[str] = []
    for row, value in enumerate(values.tolist()):
        if (
            isinstance(value, bool)
            or value is None
            or (isinstance(value, float) and not value.is_integer())
        ):
            raise UserError(
                f"unit id {value!r} is neither an integer nor text", file=source, row=row
            )
        keys.append(str(int(value)) if isinstance(value, int | float) else str(value))
    return keys


def bucket(salt: str, unit_id: object) -> float:
    """One unit's uniform draw in [0, 1) for ``salt`` (step 2 of the module docstring)."""
    return float(buckets(salt, [unit_id])[0])


def buckets(
    salt: str, unit_ids: Iterable[object] | np.ndarray, *, source: str = "unit ids"
) -> np.ndarray:
    """Uniform draws in [0, 1) for many units (float64), hashed in batches."""
    keys = unit_keys(unit_ids, source=source)
    prefix = f"{salt}:".encode()
    sha256 = hashlib.sha256
    out = np.empty(len(keys), dtype=np.float64)
    for start in range(0, len(keys), _BATCH):
        part = keys[start : start + _BATCH]
        digests = b"".join(sha256(prefix + key.encode()).digest()[:8] for key in part)
        words = np.frombuffer(digests, dtype=">u8").astype(np.uint64)
        out[start : start + len(part)] = (words >> np.uint64(11)).astype(np.float64) * _BUCKET_SCALE
    return out
