"""Which variant serves a unit: holdout, baseline or candidate, by salted hash.

Two independent draws of :mod:`liftwise.hashing` (the hash experiments assign with):

1. ``bucket("rollout/<salt>/holdout", id) < holdout``: held out, never treated, at any
   step (the same units for the whole rollout).
2. Otherwise ``bucket("rollout/<salt>/candidate", id) < share``: the candidate; else the
   baseline.

The candidate's units at share s are a subset of those at any larger share, so ramping
up only moves units from the baseline to the candidate, never back and forth; a rollback
(share 0) sends every one of them to the baseline. Separate salts keep the holdout
independent of the ramp: the holdout is the same random 5% whatever the step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

from liftwise.hashing import buckets

Variant = Literal["holdout", "baseline", "candidate"]
HOLDOUT: Variant = "holdout"
BASELINE: Variant = "baseline"
CANDIDATE: Variant = "candidate"
VARIANTS: tuple[Variant, ...] = (HOLDOUT, BASELINE, CANDIDATE)
# the integer codes of :func:`variant_codes`, in VARIANTS order
HOLDOUT_CODE, BASELINE_CODE, CANDIDATE_CODE = 0, 1, 2


def holdout_salt(salt: str) -> str:
    return f"rollout/{salt}/holdout"


def candidate_salt(salt: str) -> str:
    return f"rollout/{salt}/candidate"


def variant_codes(
    salt: str, unit_ids: Iterable[object] | np.ndarray, holdout: float, share: float
) -> np.ndarray:
    """Variant code per unit (0 holdout, 1 baseline, 2 candidate) at candidate ``share``
    of the non-holdout units."""
    ids = unit_ids if isinstance(unit_ids, np.ndarray) else np.asarray(list(unit_ids))
    codes = np.full(len(ids), BASELINE_CODE, dtype=np.int8)
    if len(ids) == 0:
        return codes
    if share > 0:
        codes[buckets(candidate_salt(salt), ids) < share] = CANDIDATE_CODE
    if holdout > 0:
        codes[buckets(holdout_salt(salt), ids) < holdout] = HOLDOUT_CODE
    return codes


def variants(
    salt: str, unit_ids: Iterable[object] | np.ndarray, holdout: float, share: float
) -> list[Variant]:
    """Variant name per unit (see :func:`variant_codes`)."""
    return [VARIANTS[c] for c in variant_codes(salt, unit_ids, holdout, share).tolist()]


def expected_shares(holdout: float, share: float) -> dict[Variant, float]:
    """The share of all units each variant should get: what the SRM check expects."""
    return {
        HOLDOUT: holdout,
        BASELINE: (1.0 - holdout) * (1.0 - share),
        CANDIDATE: (1.0 - holdout) * share,
    }
